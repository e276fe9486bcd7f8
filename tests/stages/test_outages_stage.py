"""The outages stage on a generated landing zone, against the generator's truth."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import polars as pl
import pytest

from meterlake import pipeline
from meterlake.generate import generate
from meterlake.settings import Settings

START = dt.date(2026, 1, 1)
DAYS = 31
TOGETHER = dt.timedelta(minutes=5)


def digests(lake: Path) -> dict[str, str]:
    names = ("outage_events", "outage_members", "outage_meter_days", "reliability_monthly", "outage_plan_checks")
    return {
        p.relative_to(lake).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for name in names
        for p in sorted((lake / "marts" / name).rglob("*.parquet"))
    }


def compare(truth: pl.DataFrame, found: pl.DataFrame) -> pl.DataFrame:
    """Each injected outage with the event found for it (same area or meter, start within 5 min)."""
    t = truth.with_columns(pl.coalesce("area_id", "meter_id").str.split(";").alias("_where")).explode("_where")
    f = found.with_columns(pl.when(pl.col("level") == "area").then("area_id").otherwise("meter_id").alias("_where"))
    pairs = (
        t.join(f, on="_where", how="left", suffix="_found")
        .filter(
            pl.col("start_time_found").is_null()
            | ((pl.col("start_time_found") - pl.col("start_time")).abs() <= TOGETHER)
        )
        .sort("outage_no", "start_time_found")
        .unique(["outage_no", "_where"], keep="first")
    )
    return pairs


def table(pairs: pl.DataFrame, found: pl.DataFrame) -> pl.DataFrame:
    ok = (
        pl.col("outage_id").is_not_null()
        & (pl.col("cause") == pl.col("cause_found"))
        & (pl.col("plan_id").fill_null("") == pl.col("plan_id_found").fill_null(""))
        & (pl.col("deviations").fill_null("") == pl.col("deviations_found").fill_null(""))
        & (pl.col("momentary") == pl.col("momentary_found"))
    )
    return (
        pairs.with_columns(
            pl.when(pl.col("level") == "customer")
            .then(pl.lit("customer"))
            .when("momentary")
            .then(pl.lit("blip"))
            .otherwise(pl.col("cause"))
            .alias("injected"),
            pl.col("outage_id").is_not_null().alias("found"),
            ok.alias("right"),
        )
        .group_by("injected")
        .agg(
            pl.len().alias("injected_n"),
            pl.col("found").sum().alias("found_n"),
            pl.col("right").sum().alias("cause_plan_deviations_right"),
        )
        .sort("injected")
    )


@pytest.mark.slow
def test_every_injected_outage_is_found_with_its_cause_and_deviations_and_none_invented(tmp_path: Path) -> None:
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    generate(landing, meters=3000, days=DAYS, start=START, seed=7)
    settings = Settings(landing=landing, lake=lake)
    dates = [START + dt.timedelta(days=i) for i in range(DAYS)]
    for stage in ("ingest", "outages"):
        pipeline.run_stage(settings, stage, dates, "t", progress=lambda _m: None)
    truth = pl.read_csv(
        landing / "_truth" / "outages.csv",
        try_parse_dates=True,
        schema_overrides={"area_id": pl.String, "meter_id": pl.String},
    )
    found = pl.read_parquet(lake / "marts" / "outage_events" / "**" / "*.parquet", hive_partitioning=True)
    pairs = compare(truth, found)
    summary = table(pairs, found)
    print(summary)
    assert summary["injected_n"].to_list() == summary["found_n"].to_list()
    assert summary["injected_n"].to_list() == summary["cause_plan_deviations_right"].to_list()
    lost_on = pairs.filter(pl.col("note") == "its POWER_ON was lost")
    assert lost_on["end_source"].to_list() == ["curve"]  # read from the curve: no other meter saw it
    # the curve slot with energy starts at the injected end, less the events' jitter
    assert (lost_on["end_time"] - lost_on["end_time_found"]).dt.total_seconds().to_list() == [40]
    invented = found.join(pairs.select("outage_id"), on="outage_id", how="anti")
    assert invented.height == 0, invented
    plans = pl.read_parquet(lake / "marts" / "outage_plan_checks" / "**" / "*.parquet")
    plan_truth = pl.read_csv(landing / "_truth" / "outage_plans.csv")
    got = plans.select("plan_id", "status", pl.col("deviations").fill_null("")).sort("plan_id")
    want = plan_truth.select("plan_id", "status", pl.col("deviations").fill_null("")).sort("plan_id")
    assert got.rows() == want.rows()
    suspects = pl.read_parquet(lake / "marts" / "outage_mapping_suspects" / f"date={dates[-1]}" / "*.parquet")
    mapped = truth.filter(pl.col("note").str.starts_with("feeds customer"))["note"][0].split()[2]
    assert mapped in suspects["meter_id"].to_list()
    # a rerun writes identical files
    before = digests(lake)
    pipeline.run_stage(settings, "outages", dates, "t2", progress=lambda _m: None)
    assert digests(lake) == before
