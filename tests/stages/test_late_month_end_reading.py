"""End to end: a month-end reading that arrives late rebuilds the month with the real
figures (ingest -> validate -> loss), leaving no substitution behind."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from meterlake import pipeline
from meterlake.generator import generate
from meterlake.lake import Lake
from meterlake.schemas.area_loss_monthly import AREA_LOSS_MONTHLY
from meterlake.settings import Settings

pytestmark = pytest.mark.slow

JAN28, JAN31, FEB1 = dt.date(2026, 1, 28), dt.date(2026, 1, 31), dt.date(2026, 2, 1)
STAGES = ["ingest", "validate", "loss"]


def _january(lake: Path) -> pl.DataFrame:
    return Lake(lake).scan(AREA_LOSS_MONTHLY, ["2026-01"]).collect().sort("area_id")


def test_a_late_closing_reading_rebuilds_the_month(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    generate(landing, meters=80, days=4, start=JAN28, seed=3)  # readings frozen up to 1 February
    closing = landing / "registers" / "registers_20260201.csv"
    text = closing.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    meters = pl.read_csv(landing / "_truth" / "meters.csv", infer_schema_length=0)
    customer, area = meters.filter(pl.col("role") == "customer").select("meter_id", "archive_area_id").row(0)
    held_back = [line for line in text[1:] if line.startswith(customer + ",")]
    assert len(held_back) == 1
    # the head-end delivers the closing readings without one customer's ...
    closing.write_text("".join(line for line in text if line not in held_back), encoding="utf-8")
    settings = Settings(landing=landing, lake=tmp_path / "lake")
    pipeline.run(settings, JAN28, JAN31, stages=STAGES, progress=lambda _m: None)
    before = _january(tmp_path / "lake")
    # its 31 January has no value: substituted with its mean of 28-30 January
    md = pl.read_parquet(tmp_path / "lake" / "marts" / "meter_daily" / "date=2026-01-31" / "part-0.parquet")
    assert md.filter(pl.col("meter_id") == customer)["quality"].item() == "missing"
    mean = (
        pl.scan_parquet(tmp_path / "lake" / "marts" / "meter_daily" / "**" / "*.parquet", hive_partitioning=True)
        .filter((pl.col("meter_id") == customer) & (pl.col("quality") != "missing"))
        .select(pl.col("kwh").mean())
        .collect()
        .item()
    )
    assert mean > 0
    others = before.filter(pl.col("area_id") == area)["substituted_kwh"].item() - mean

    # ... and sends it later in a file of its own: the run for 1 February rebuilds January
    late = landing / "registers" / "registers_20260201_late.csv"
    late.write_text(text[0] + held_back[0], encoding="utf-8")
    later = closing.stat().st_mtime + 3600
    os.utime(late, (later, later))
    pipeline.run(settings, FEB1, FEB1, stages=STAGES, progress=lambda _m: None)
    after = _january(tmp_path / "lake")
    # only the other meters' gaps (days the generator left unread) are still substituted
    assert after.filter(pl.col("area_id") == area)["substituted_kwh"].item() == pytest.approx(others, abs=1e-6)

    # and January reads as in a lake that had every reading on time
    closing.write_text("".join(text), encoding="utf-8")
    late.unlink()
    full = Settings(landing=landing, lake=tmp_path / "full")
    pipeline.run(full, JAN28, JAN31, stages=STAGES, progress=lambda _m: None)
    assert_frame_equal(after, _january(tmp_path / "full"))
