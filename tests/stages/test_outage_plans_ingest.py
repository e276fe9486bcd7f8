"""Ingest of outage notices (停电计划): revisions, and the rows quarantined with a reason."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
from landing_kit import put

from meterlake import pipeline
from meterlake.lake import Lake
from meterlake.schemas import LANDINGS
from meterlake.settings import Settings

D1 = dt.date(2026, 1, 1)
ARCHIVE = (
    "snapshot_date,meter_id,customer_id,area_id,feeder_id,role,customer_class,tariff_id,multiplier,register_max,prepay\n"
    "2026-01-01,0001,C1,A1,F1,customer,resident,RES_TIER,1,100000,0\n"
    "2026-01-01,0003,,A1,F1,area_master,,,80,1000000,0\n"
)


def ingest(landing: Path, lake: Path, run_id: str):
    return pipeline.run_stage(Settings(landing=landing, lake=lake), "ingest", [D1], run_id, progress=lambda _m: None)


def quarantine(lake: Path) -> pl.DataFrame:
    return pl.concat(
        [
            pl.read_parquet(f, hive_partitioning=True)
            for f in sorted((lake / "marts" / "quarantine").rglob("*.parquet"))
        ],
        how="diagonal_relaxed",
    )


HEADER = "plan_id,kind,feeder_id,area_id,planned_start,planned_end,notice_time\n"


def test_plans_are_revised_by_plan_id_and_bad_plans_are_quarantined(tmp_path: Path) -> None:
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    put(landing, "archive/archive_20260101.csv", ARCHIVE, "2026-01-01T00:00:00")
    put(
        landing,
        "outage_plans/plans_1.csv",
        HEADER + "P1,planned,F1,A1,2026-01-01 09:00:00,2026-01-01 12:00:00,2025-12-20 10:00:00\n"
        "P2,temporary,F1,,2026-01-01 14:00:00,2026-01-01 13:00:00,2025-12-31 10:00:00\n"  # ends before it starts
        "P3,planned,F1,A1,2026-01-01 09:00:00,2026-01-01 10:00:00,2026-01-01 09:30:00\n"  # notice after start
        "P4,planned,F9,,2026-01-01 09:00:00,2026-01-01 10:00:00,2025-12-20 10:00:00\n"  # unknown feeder
        "P5,planned,F1,A7,2026-01-01 09:00:00,2026-01-01 10:00:00,2025-12-20 10:00:00\n",  # unknown area
        "2025-12-20T03:00:00",
    )
    # a later delivery revises P1: it ends at 13:00
    put(
        landing,
        "outage_plans/plans_2.csv",
        HEADER + "P1,planned,F1,A1,2026-01-01 09:00:00,2026-01-01 13:00:00,2025-12-20 10:00:00\n",
        "2025-12-21T03:00:00",
    )
    result = ingest(landing, lake, "r1")
    clean = Lake(lake).scan(LANDINGS["outage_plans"].clean, [D1]).collect()
    assert clean.select("plan_id", "planned_end").rows() == [("P1", dt.datetime(2026, 1, 1, 13))]
    q = quarantine(lake).filter(pl.col("source_file").str.starts_with("outage_plans/")).sort("source_file", "line")
    assert q.select("source_file", "line", "reason").rows() == [
        ("outage_plans/plans_1.csv", 2, "superseded"),
        ("outage_plans/plans_1.csv", 3, "end_before_start"),
        ("outage_plans/plans_1.csv", 4, "notice_after_start"),
        ("outage_plans/plans_1.csv", 5, "unknown_feeder"),
        ("outage_plans/plans_1.csv", 6, "unknown_area"),
    ]
    acc = {r["dataset"]: r for r in result.details["accounting"]}["outage_plans"]
    assert (acc["read"], acc["clean"], acc["quarantined"], acc["duplicate"], acc["unaccounted"]) == (6, 1, 5, 0, 0)


def plan_rows(lake: Path, table: str, layer: str = "marts") -> list[tuple[str, str]]:
    """(partition folder, plan_id) of every row of ``table`` that names a plan."""
    out = []
    for f in sorted((lake / layer / table).glob("*=*/*.parquet")):
        ids = pl.read_parquet(f)["plan_id"].drop_nulls()
        out += [(f.parent.name, p) for p in ids.to_list()]
    return sorted(out)


def test_a_plan_revised_to_another_date_is_only_where_its_latest_version_says(tmp_path: Path) -> None:
    """A later delivery moves P1 from 31 January to 1 February, a run after the first: the
    old row leaves the clean table (quarantined as superseded) and the January marts."""
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    s = Settings(landing=landing, lake=lake, progress=False)
    jan31, feb1 = dt.date(2026, 1, 31), dt.date(2026, 2, 1)
    put(landing, "archive/archive_20260101.csv", ARCHIVE, "2026-01-01T00:00:00")
    put(
        landing,
        "outage_plans/plans_1.csv",
        HEADER + "P1,planned,F1,A1,2026-01-31 09:00:00,2026-01-31 12:00:00,2026-01-20 10:00:00\n"
        "P2,planned,F1,A1,2026-01-30 09:00:00,2026-01-30 12:00:00,2026-01-20 10:00:00\n",
        "2026-01-20T03:00:00",
    )
    pipeline.run(s, jan31, jan31, stages=["ingest", "outages"], progress=lambda _m: None)
    assert plan_rows(lake, "outage_plan_checks") == [("month=2026-01", "P1"), ("month=2026-01", "P2")]
    put(
        landing,
        "outage_plans/plans_2.csv",
        HEADER + "P1,planned,F1,A1,2026-02-01 09:00:00,2026-02-01 12:00:00,2026-01-25 10:00:00\n",
        "2026-01-25T03:00:00",
    )
    pipeline.run(s, feb1, feb1, stages=["ingest", "outages"], progress=lambda _m: None)
    # the clean table: P1 on 1 February only, P2 untouched
    assert plan_rows(lake, "outage_plans", "clean") == [
        ("planned_date=2026-01-30", "P2"),
        ("planned_date=2026-02-01", "P1"),
    ]
    q = quarantine(lake).filter(pl.col("source_file").str.starts_with("outage_plans/"))
    assert q.select("source_file", "line", "reason").rows() == [("outage_plans/plans_1.csv", 2, "superseded")]
    # the plan checks: P1 in February's only (January's was rewritten without it)
    assert plan_rows(lake, "outage_plan_checks") == [("month=2026-01", "P2"), ("month=2026-02", "P1")]


def test_a_plan_revised_to_another_date_in_one_delivery_run_is_not_doubled(tmp_path: Path) -> None:
    """Both deliveries of P1 (2 January, then moved to 1 January) reach the lake in one run."""
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    put(landing, "archive/archive_20260101.csv", ARCHIVE, "2026-01-01T00:00:00")
    put(
        landing,
        "outage_plans/plans_1.csv",
        HEADER + "P1,planned,F1,A1,2026-01-02 09:00:00,2026-01-02 12:00:00,2025-12-20 10:00:00\n",
        "2025-12-20T03:00:00",
    )
    put(
        landing,
        "outage_plans/plans_2.csv",
        HEADER + "P1,temporary,F1,,2026-01-01 09:00:00,2026-01-01 12:00:00,2025-12-21 10:00:00\n",
        "2025-12-21T03:00:00",
    )
    result = pipeline.run_stage(
        Settings(landing=landing, lake=lake), "ingest", [D1, D1 + dt.timedelta(days=1)], "r1", progress=lambda _m: None
    )
    assert plan_rows(lake, "outage_plans", "clean") == [("planned_date=2026-01-01", "P1")]
    clean = Lake(lake).scan(LANDINGS["outage_plans"].clean).collect()
    assert clean.select("plan_id", "kind").rows() == [("P1", "temporary")]
    acc = {r["dataset"]: r for r in result.details["accounting"]}["outage_plans"]
    assert (acc["read"], acc["clean"], acc["quarantined"], acc["duplicate"], acc["unaccounted"]) == (2, 1, 1, 0, 0)


def test_a_plan_moved_before_the_run_leaves_the_later_month_it_was_checked_in(tmp_path: Path) -> None:
    """P1, checked in February's plan checks, is moved to January by a delivery that a run
    for a January date ingests: February's checks (a month the run does not cover) lose it."""
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    s = Settings(landing=landing, lake=lake, progress=False)
    jan20, feb10 = dt.date(2026, 1, 20), dt.date(2026, 2, 10)
    put(landing, "archive/archive_20260101.csv", ARCHIVE, "2026-01-01T00:00:00")
    put(
        landing,
        "outage_plans/plans_1.csv",
        HEADER + "P1,planned,F1,A1,2026-02-10 09:00:00,2026-02-10 12:00:00,2026-01-02 10:00:00\n",
        "2026-01-02T03:00:00",
    )
    pipeline.run(s, feb10, feb10, stages=["ingest", "outages"], progress=lambda _m: None)
    assert plan_rows(lake, "outage_plan_checks") == [("month=2026-02", "P1")]
    put(
        landing,
        "outage_plans/plans_2.csv",
        HEADER + "P1,planned,F1,A1,2026-01-20 09:00:00,2026-01-20 12:00:00,2026-01-05 10:00:00\n",
        "2026-01-05T03:00:00",
    )
    pipeline.run(s, jan20, jan20, stages=["ingest", "outages"], progress=lambda _m: None)
    assert plan_rows(lake, "outage_plans", "clean") == [("planned_date=2026-01-20", "P1")]
    assert plan_rows(lake, "outage_plan_checks") == [("month=2026-01", "P1")]
