"""The report's monthly sections on hand-made frames; figures worked out by hand."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal

from meterlake.publish import ReportConfig
from meterlake.report import data as d
from meterlake.report import monthly as m
from meterlake.report.html import render

MONTHLY = pl.DataFrame(
    {
        "month": ["2026-01"] * 5,
        "area_id": ["A1", "A2", "A3", "A4", "A5"],
        "loss_rate": [0.04, 0.095, -0.02, None, 0.14],
        "status": ["normal", "normal", "negative", "uncomputable", "high"],
        "reason": [None, None, None, "master_missing", None],
        "band_low": [0.0, 0.0, 0.0, 0.0, -0.02],
        "band_high": [0.10, 0.10, 0.10, 0.10, 0.15],  # A5 has its own band: 14% is inside it
    }
)


def test_month_counts_high_negative_uncomputable_with_reasons() -> None:
    got = m.month_counts(MONTHLY.with_columns(pl.col("status").replace("normal", "high").alias("status")))
    # A1 and A2 now high, plus A5: 3 high, A3 negative, A4 uncomputable (master_missing)
    assert got.rows() == [("2026-01", 5, 3, 1, 1, "master_missing: 1")]


def test_worst_areas_are_furthest_outside_their_own_band() -> None:
    got = m.monthly_worst(MONTHLY, top=3).select("area_id", "band_excess")
    # A3: 0 - (-0.02) = 0.02 outside; A2: 0.095 - 0.10 = -0.005 (just inside);
    # A5: max(0.14 - 0.15, -0.02 - 0.14) = -0.01; A1: -0.04; A4 uncomputable is left out
    want = pl.DataFrame({"area_id": ["A3", "A2", "A5"], "band_excess": [0.02, -0.005, -0.01]})
    assert_frame_equal(got, want, abs_tol=1e-12)


def test_held_bills_by_reason_and_most_kwh_first() -> None:
    bills = pl.DataFrame(
        {
            "customer_id": ["U1", "U2", "U3"],
            "kwh_total": [100.0, 300.0, 50.0],
            "status": ["held", "held", "ok"],
            "exception_reasons": ["missing_days,estimated_share", "missing_days", None],
        }
    )
    counts, listed = m.held_bills(bills, top=10)
    assert counts.rows() == [("missing_days", 2), ("estimated_share", 1)]
    assert listed["customer_id"].to_list() == ["U2", "U1"]


def test_gate_warnings_one_row_per_failed_warning_rule() -> None:
    results = pl.DataFrame(
        {
            "table": ["t", "t", "t", "u"],
            "rule": ["t.share", "t.share", "t.key", "u.x"],
            "partition": ["date=2026-01-02", "date=2026-01-01", "date=2026-01-01", "month=2026-01"],
            "severity": ["warning", "warning", "blocking", "warning"],
            "success": [False, False, False, True],
            "observed": [0.3, 0.5, 1.0, 0.0],
            "expected": ["at most 0.2"] * 4,
            "description": ["share", "share", "key", "x"],
        }
    )
    got = m.gate_warnings(results)
    assert got.select("rule", "partitions", "first", "last", "worst").rows() == [
        ("t.share", 2, "date=2026-01-01", "date=2026-01-02", 0.5)
    ]


def test_sections_render_with_the_work_list_held_bills_and_warnings(tmp_path) -> None:
    inputs = d.ReportInputs(lake=tmp_path, dates=[])
    inputs.marts["area_loss_monthly"] = MONTHLY
    inputs.marts["loss_worklist_monthly"] = pl.DataFrame(
        {
            "month": ["2026-01"],
            "rank": [1],
            "area_id": ["A3"],
            "issue": ["negative"],
            "kwh_at_stake": [20.0],
            "action_zh": ["核对倍率"],
            "action_en": ["check the multiplier"],
        }
    )
    inputs.marts["bills_monthly"] = pl.DataFrame(
        {
            "month": ["2026-01"],
            "customer_id": ["U1"],
            "tariff_id": ["RES_TIER"],
            "kwh_total": [1.0],
            "amount_yuan": [0.54],
            "status": ["held"],
            "exception_reasons": ["missing_days"],
        }
    )
    inputs.check_results = pl.DataFrame(
        {
            "table": ["t"],
            "rule": ["t.share"],
            "partition": ["date=2026-01-01"],
            "severity": ["warning"],
            "success": [False],
            "observed": [0.3],
            "expected": ["at most 0.2"],
            "description": ["share"],
        }
    )
    page, sections = render(inputs, ReportConfig())
    keys = [s.key for s in sections]
    assert keys.index("loss") < keys.index("monthly") and "held" in keys and "warnings" in keys
    assert "核对倍率" in page and "check the multiplier" in page
    assert "1 of 1 bills are held" in page and "t.share" in page
