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
