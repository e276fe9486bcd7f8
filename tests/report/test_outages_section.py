"""The report's outages section: reliability per scope, plan compliance, frequent-outage customers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from meterlake.publish import ReportConfig
from meterlake.report import data as d
from meterlake.report.html import NO_DATA
from meterlake.report.outages import outages_section, reliability_table

CFG = ReportConfig()


def test_the_least_reliable_areas_come_first() -> None:
    rel = pl.DataFrame(
        {"scope": ["area", "area", "feeder"], "scope_id": ["A1", "A2", "F1"], "rs1": [0.999, 0.99, 0.995]}
    )
    assert reliability_table(rel, "area", 10)["scope_id"].to_list() == ["A2", "A1"]


def test_section_lists_plans_with_deviations_first_and_says_when_there_is_no_data(tmp_path: Path) -> None:
    inputs = d.ReportInputs(lake=tmp_path, dates=[dt.date(2026, 1, 5)])
    empty = outages_section(inputs, CFG)
    assert not empty.has_data and NO_DATA in empty.body
    inputs.marts["outage_events"] = pl.DataFrame(
        {"level": ["area", "customer"], "cause": ["planned", "fault"], "momentary": [False, False]}
    )
    inputs.marts["outage_plan_checks"] = pl.DataFrame(
        {
            "plan_id": ["P-ok", "P-late"],
            "kind": ["planned", "planned"],
            "area_id": ["A1", "A2"],
            "planned_start": [dt.datetime(2026, 1, 5, 9), dt.datetime(2026, 1, 6, 9)],
            "status": ["executed", "executed"],
            "notice_lead_hours": [200.0, 72.0],
            "planned_min": [60.0, 60.0],
            "actual_min": [60.0, 90.0],
            "customers_in_scope": [10, 20],
            "customers_affected": [10, 20],
            "deviations": ["", "late_notice,overrun"],
        }
    )
    body = outages_section(inputs, CFG).body
    assert body.index("P-late") < body.index("P-ok")
    assert "late_notice,overrun" in body and "Frequent-outage customers" in body


def test_the_page_shows_the_section_after_line_loss() -> None:
    from meterlake.report import html

    order = [s.__name__ for s in html.sections()]
    assert order.index("outages_section") == order.index("monthly_loss_section") + 1
