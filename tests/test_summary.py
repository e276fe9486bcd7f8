"""The end-of-run summary: paths stay whole on a narrow terminal."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from meterlake.summary import print_lake_status, print_run_summary

LONG = "/srv/meterlake/a-rather-long-folder-name/lake/reports/meterlake_report_2026-01-01_2026-01-31.html"


def _console(width: int) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=width, force_terminal=False, color_system=None), out


def test_run_summary_paths_are_single_lines_at_40_columns() -> None:
    console, out = _console(40)
    record = {
        "run_id": "r1",
        "start": "2026-01-01",
        "end": "2026-01-31",
        "status": "ok",
        "lake": "/srv/meterlake/a-rather-long-folder-name/lake",
        "stages": {"publish": {"seconds": 1.0, "rows": {}, "notes": [], "details": {"report": LONG}}},
        "record_path": "/srv/meterlake/a-rather-long-folder-name/lake/_meta/runs/20260201T000000Z-abcdef.json",
    }
    print_run_summary(record, console)
    lines = out.getvalue().splitlines()
    assert f"  {LONG}" in lines
    assert f"  {record['lake']}" in lines
    assert f"  {record['record_path']}" in lines


def test_lake_status_paths_are_single_lines_at_40_columns() -> None:
    console, out = _console(40)
    status: dict[str, Any] = {
        "lake": "/srv/meterlake/a-rather-long-folder-name/lake",
        "accounting": [],
        "tables": {},
        "reporting_db": "/srv/meterlake/a-rather-long-folder-name/lake.duckdb",
        "data_docs": None,
        "report": LONG,
    }
    print_lake_status(status, console)
    lines = out.getvalue().splitlines()
    assert f"  {LONG}" in lines
    assert f"  {status['reporting_db']}" in lines
    assert "  (not built yet)" in lines
