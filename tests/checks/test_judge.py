"""The gate's verdict in polars: the same as Great Expectations' per-rule expectations.

The rules used to be judged by one GX expectation each (``expect_column_values_to_be_between``
on a metrics column, ``..._to_be_between`` / ``..._to_be_in_set`` on rows). The cases
here are worked out by hand, and the same frames go through those GX expectations
as an oracle, so the edge cases (missing values, NaN, infinity, inclusive bounds,
open bounds) keep GX's meaning. And GX re-checks the verdict of every run: a finding
flipped behind its back stops the gate.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from meterlake.checks import runner
from meterlake.checks.judge import metric_findings, row_findings
from meterlake.checks.runner import CheckError, SuiteInput, run_checks
from meterlake.checks.suites import RowRule, Rule, TableSuite

PARTS = ["date=2026-01-01", "date=2026-01-02", "date=2026-01-03", "date=2026-01-04", "date=2026-01-05"]
METRICS = pl.DataFrame(
    {
        "partition": PARTS,
        # a count that must be 0: one partition has 2, one is missing (null passes)
        "dups": pl.Series([0, 2, None, 0, 0], dtype=pl.Int64),
        # a share within [0, 0.02]: the bounds hold inclusive; NaN passes; inf fails
        "share": [0.0, 0.02, float("nan"), float("inf"), 0.020001],
        # at least 1: 1 passes, 0 fails, null passes
        "mult": pl.Series([1, 0, 3, None, 1], dtype=pl.Int64),
    }
)
RULES = (
    Rule("t.key.unique", "dups", max_value=0),
    Rule("t.quality.missing_share", "share", min_value=0.0, max_value=0.02, severity="warning"),
    Rule("t.multiplier.at_least_1", "mult", min_value=1),
)
#: by hand: (rule, partition) pairs that fail
FAILING = {
    ("t.key.unique", "date=2026-01-02"),
    ("t.quality.missing_share", "date=2026-01-04"),
    ("t.quality.missing_share", "date=2026-01-05"),
    ("t.multiplier.at_least_1", "date=2026-01-02"),
}

ROWS = pl.DataFrame(
    {
        "partition": ["date=2026-01-01"] * 3 + ["date=2026-01-02"] * 3,
        "area_id": ["A1", "A2", "A3", "A1", "A2", "A3"],
        "status": ["normal", "bogus", None, "high", "normal", "normal"],
        "loss_rate": [0.05, None, float("nan"), 1.5, -0.3, 0.8],
    }
)
ROW_RULES = (
    RowRule("t.status.codes", "status", kind="in_set", value_set=("normal", "high")),
    RowRule("t.loss_rate.plausible", "loss_rate", min_value=-0.2, max_value=0.8),
)


def _by_key(frame: pl.DataFrame) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["rule"], r["partition"]): r for r in frame.to_dicts()}


def test_metric_rules_by_hand() -> None:
    found = _by_key(metric_findings(METRICS, RULES, "t", "marts", "meterlake.t", {}))
    assert len(found) == len(RULES) * len(PARTS)
    assert {k for k, r in found.items() if not r["success"]} == FAILING
    assert found[("t.key.unique", "date=2026-01-02")]["observed"] == 2.0
    # a missing value passes and is reported as such
    assert found[("t.key.unique", "date=2026-01-03")]["observed"] is None
    assert math.isnan(METRICS["share"][2])  # a NaN, not a null: it passes too
    assert found[("t.quality.missing_share", "date=2026-01-03")]["success"] is True
    # infinity fails, with no observed number
    inf = found[("t.quality.missing_share", "date=2026-01-04")]
    assert inf["observed"] is None
    assert json.loads(inf["evidence"]) == {"metric": "share", "value": None}
    assert found[("t.quality.missing_share", "date=2026-01-02")]["expected"] == "between 0 and 0.02"
    assert json.loads(found[("t.multiplier.at_least_1", "date=2026-01-03")]["evidence"]) == {
        "metric": "mult",
        "value": 3,
    }


def test_partition_evidence_is_added_to_every_rule() -> None:
    evidence = {"date=2026-01-02": {"missing_list": ["kwh"], "error": "x 'y'"}}
    found = _by_key(metric_findings(METRICS, RULES, "t", "marts", "meterlake.t", evidence))
    assert json.loads(found[("t.multiplier.at_least_1", "date=2026-01-02")]["evidence"]) == {
        "metric": "mult",
        "value": 0,
        "missing_list": ["kwh"],
        "error": "x 'y'",
    }
    assert json.loads(found[("t.multiplier.at_least_1", "date=2026-01-01")]["evidence"]) == {
        "metric": "mult",
        "value": 1,
    }


def test_row_rules_by_hand() -> None:
    found = _by_key(row_findings(METRICS, ROWS, ROW_RULES, ("area_id",), "t", "marts", "meterlake.t.rows"))
    # every partition of the metrics frame gets a finding, rows or not
    assert len(found) == len(ROW_RULES) * len(PARTS)
    assert {k for k, r in found.items() if not r["success"]} == {
        ("t.status.codes", "date=2026-01-01"),  # bogus (None passes)
        ("t.loss_rate.plausible", "date=2026-01-02"),  # 1.5 and -0.3 (0.8 is on the bound; null and NaN pass)
    }
    rate = found[("t.loss_rate.plausible", "date=2026-01-02")]
    assert rate["observed"] == 2.0
    assert json.loads(rate["evidence"]) == {
        "column": "loss_rate",
        "unexpected_count": 2,
        "rows": [{"loss_rate": 1.5, "area_id": "A1"}, {"loss_rate": -0.3, "area_id": "A2"}],
    }
    assert found[("t.status.codes", "date=2026-01-03")]["observed"] == 0.0
    assert found[("t.status.codes", "date=2026-01-01")]["expectation"] == "expect_column_values_to_be_in_set"


# -- Great Expectations as the oracle -------------------------------------------------------


def _gx_failing(frame: pl.DataFrame, expectations: list[tuple[str, Any]]) -> set[tuple[str, str]]:
    """(rule, partition) that GX's own expectations find unexpected on ``frame``."""
    os.environ["GX_ANALYTICS_ENABLED"] = "False"
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("oracle")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": frame.to_pandas()})
    )
    failing = set()
    for rule, expectation in expectations:
        result = batch.validate(
            expectation, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["partition"]}
        )
        assert not (result.exception_info or {}).get("raised_exception")
        failing |= {(rule, row["partition"]) for row in result.result.get("unexpected_index_list") or []}
    return failing


def test_gx_expectations_agree_on_metric_rules() -> None:
    import great_expectations as gx

    oracle = _gx_failing(
        METRICS,
        [
            (
                r.rule,
                gx.expectations.ExpectColumnValuesToBeBetween(
                    column=r.metric, min_value=r.min_value, max_value=r.max_value
                ),
            )
            for r in RULES
        ],
    )
    assert oracle == FAILING


def test_gx_expectations_agree_on_row_rules() -> None:
    import great_expectations as gx

    expectations = [
        ("t.status.codes", gx.expectations.ExpectColumnValuesToBeInSet(column="status", value_set=["normal", "high"])),
        (
            "t.loss_rate.plausible",
            gx.expectations.ExpectColumnValuesToBeBetween(column="loss_rate", min_value=-0.2, max_value=0.8),
        ),
    ]
    oracle = _gx_failing(ROWS, expectations)
    ours = row_findings(METRICS, ROWS, ROW_RULES, ("area_id",), "t", "marts", "s").filter(~pl.col("success"))
    assert oracle == set(ours.select("rule", "partition").iter_rows())


# -- the run: GX re-checks the verdict ------------------------------------------------------


def _input() -> SuiteInput:
    suite = TableSuite(
        table="t",
        layer="marts",
        partition_key="date",
        grain="date",
        description="a test table",
        rules=(Rule("t.key.unique", "rows", max_value=0),),
    )
    metrics = pl.DataFrame({"partition": PARTS[:2], "rows": [0, 3], "present": [1, 1]})
    return SuiteInput(suite=suite, metrics=metrics)


def test_run_counts_and_gate(tmp_path: Path) -> None:
    report = run_checks([_input()], tmp_path / "gx", tmp_path / "docs", run_name="r1")
    assert report.findings.height == 2
    assert report.blocking.select("rule", "partition", "observed").rows() == [("t.key.unique", "date=2026-01-02", 3.0)]
    assert not report.passed
    (page,) = report.validation_pages
    text = page.read_text(encoding="utf-8")
    assert "t.key.unique" in text and "date=2026-01-02" in text


def test_a_verdict_gx_does_not_share_stops_the_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    judge = runner.judge

    def lenient(inp: SuiteInput) -> pl.DataFrame:
        return judge(inp).with_columns(success=pl.lit(True))  # claims the failing partition passed

    monkeypatch.setattr(runner, "judge", lenient)
    with pytest.raises(CheckError, match=r"disagree on 1 finding\(s\), e\.g\. marts/t date=2026-01-02 t\.key\.unique"):
        run_checks([_input()], tmp_path / "gx", tmp_path / "docs", run_name="r2")


def test_a_run_id_dateutil_misreads_is_filed_under_its_own_start(tmp_path: Path) -> None:
    # "9802ad" after the "Z": dateutil reads an offset of 98 hours ("ad" as anno Domini), and
    # GX, which reads a time out of every run name, failed on it (1 run id in ~1,500)
    run = "20261207T073309Z-9802ad"
    report = run_checks([_input()], tmp_path / "gx", tmp_path / "docs", run_name=run)
    (page,) = report.validation_pages
    assert f"run-{run}" in page.parts and "20261207T073309.000000Z" in page.parts


def test_run_time_of() -> None:
    import datetime as dt

    utc = dt.UTC
    assert runner.run_time_of("20260102T030405Z-abc123") == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=utc)
    now = dt.datetime(2026, 5, 6, 7, 8, tzinfo=utc)
    assert runner.run_time_of("r1", now=now) == now
    assert runner.run_time_of("2026-01-02", now=now) == now  # not a run id: the time it runs
