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
from meterlake.stages.outages import SERVICE_COLS, Service

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


def _hand_lake(root: Path) -> Path:
    """Feeder F1: area A1 (master M0, customers c1..c4), area A2 (master M9, customers d1, d2).
    M0 goes off at 23:30 on Jan 2 and on at 01:00 on Jan 3 (an interruption into the next
    date); M9 goes off three times (Jan 1, 3, 5) and c4, filed under A1, each time with it."""
    from meterlake.lake import Lake
    from meterlake.schemas.archive import LANDING as ARCHIVE
    from meterlake.schemas.events import LANDING as EVENTS

    lake = Lake(root)
    meters = [("M0", None, "A1", "area_master")] + [(f"c{i}", f"C{i}", "A1", "customer") for i in range(1, 5)]
    meters += [("M9", None, "A2", "area_master"), ("d1", "D1", "A2", "customer"), ("d2", "D2", "A2", "customer")]
    lineage = {"source_file": "f.csv", "source_line": 2, "delivered_at": dt.datetime(2026, 1, 10)}
    archive = pl.DataFrame(
        [
            {
                "snapshot_date": dt.date(2025, 12, 1),
                "meter_id": m,
                "customer_id": c,
                "area_id": a,
                "feeder_id": "F1",
                "role": r,
                "customer_class": "resident" if c else None,
                "tariff_id": "RES_TIER" if c else None,
                "multiplier": 1.0,
                "register_max": 1e6,
                "prepay": 0,
                "pv_capacity_kw": 0.0,
                "org_id": None,
                **lineage,
            }
            for m, c, a, r in meters
        ]
    )
    lake.write_partition(ARCHIVE.clean, dt.date(2025, 12, 1), ARCHIVE.clean.conform(archive).collect())
    at = lambda d, hm: dt.datetime(2026, 1, d, *hm)  # noqa: E731
    events = [("M0", at(2, (23, 30)), "POWER_OFF"), ("M0", at(3, (1, 0)), "POWER_ON")]
    for d in (1, 3, 5):
        events += [("M9", at(d, (8, 0)), "POWER_OFF"), ("M9", at(d, (9, 0)), "POWER_ON")]
        events += [("c4", at(d, (8, 1)), "POWER_OFF"), ("c4", at(d, (9, 0)), "POWER_ON")]
    frame = pl.DataFrame(
        [
            {"meter_id": m, "event_time": t, "event_code": c, "value": None, "event_date": t.date(), **lineage}
            for m, t, c in events
        ],
        schema_overrides={"value": pl.Float64},
    )
    for (day,), part in frame.partition_by("event_date", as_dict=True).items():
        lake.write_partition(EVENTS.clean, day, EVENTS.clean.conform(part).collect())
    return root


def test_a_range_gives_the_same_files_as_its_days_one_by_one_or_in_two_runs(tmp_path: Path) -> None:
    """The stage works the run's dates in one pass: an interruption running past midnight
    into a date of the run, or into the first date of a later run, and the mapping windows
    of every date come out the same whether the dates are run together, one by one or in
    two runs."""
    dates = [dt.date(2026, 1, d) for d in range(1, 7)]
    lakes = {name: _hand_lake(tmp_path / name) for name in ("range", "by_day", "halves")}

    def run(name: str, days: list[dt.date]) -> None:
        settings = Settings(landing=tmp_path / "landing", lake=lakes[name])
        pipeline.run_stage(settings, "outages", days, "t", progress=lambda _m: None)

    run("range", dates)
    for d in dates:
        run("by_day", [d])
    run("halves", dates[:2])
    run("halves", dates[2:])
    whole = digests(lakes["range"]) | suspects(lakes["range"])
    assert digests(lakes["by_day"]) | suspects(lakes["by_day"]) == whole
    assert digests(lakes["halves"]) | suspects(lakes["halves"]) == whole
    # A1's customers were off from 00:00 to 01:00 on Jan 3 (the interruption of Jan 2)
    md = pl.read_parquet(lakes["range"] / "marts" / "outage_meter_days" / "date=2026-01-03" / "*.parquet")
    assert md.filter(pl.col("off_at_midnight")).sort("meter_id")["meter_id"].to_list() == ["M0", "c1", "c2", "c3", "c4"]
    assert md.filter(pl.col("meter_id") == "c1")["outage_min"].to_list() == [60.0]
    # c4 was off with its area from 00:00 to 01:00 and on its own from 08:01 to 09:00: both
    # count, whether Jan 3 is run with Jan 2 or alone (day by day, the area's hour was lost)
    c4 = md.filter(pl.col("meter_id") == "c4").select("outage_min", "first_slot", "last_slot", "off_at_midnight")
    assert c4.rows() == [(119.0, 1, 4, True)]
    # c4 follows A2's outages: a mapping suspect from Jan 3 (two coincidences) on
    found = pl.read_parquet(
        lakes["range"] / "marts" / "outage_mapping_suspects" / "**" / "*.parquet", hive_partitioning=True
    )
    assert sorted(found.filter(pl.col("meter_id") == "c4")["date"].to_list()) == dates[2:]


def suspects(lake: Path) -> dict[str, str]:
    return {
        p.relative_to(lake).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((lake / "marts" / "outage_mapping_suspects").rglob("*.parquet"))
    }


def test_service_on_gives_each_day_the_rows_of_the_snapshot_valid_on_it() -> None:
    def snap(ids: list[str]) -> pl.DataFrame:
        return pl.DataFrame({c: ids if c == "meter_id" else [f"{c}-{i}" for i in ids] for c in SERVICE_COLS})

    svc = Service.__new__(Service)
    svc.snaps = ["2026-01-02", "2026-01-04"]
    svc._read = {"2026-01-02": snap(["a", "b"]), "2026-01-04": snap(["c"])}
    days = [dt.date(2026, 1, d) for d in (5, 1, 2, 3, 4, 3)]  # unsorted, a day twice, one before any snapshot
    got = svc.on(days)
    assert got.columns == ["date", *SERVICE_COLS]
    assert got.select("date", "meter_id").rows() == [
        (dt.date(2026, 1, 2), "a"),
        (dt.date(2026, 1, 2), "b"),
        (dt.date(2026, 1, 3), "a"),
        (dt.date(2026, 1, 3), "b"),
        (dt.date(2026, 1, 4), "c"),
        (dt.date(2026, 1, 5), "c"),
    ]
    kept = svc.on(days, pl.col("meter_id") != "a")
    assert kept.select("date", "meter_id").rows() == [
        (dt.date(2026, 1, 2), "b"),
        (dt.date(2026, 1, 3), "b"),
        (dt.date(2026, 1, 4), "c"),
        (dt.date(2026, 1, 5), "c"),
    ]
    none = svc.on(days, pl.col("meter_id") == "x")
    assert none.height == 0 and none.schema["date"] == pl.Date
