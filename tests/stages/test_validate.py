"""The validate stage on a hand-made clean lake: every table written per date, reruns
byte-identical, a late reading closes a gap opened before the run, configuration from TOML."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import polars as pl
import pytest

from meterlake import pipeline
from meterlake.lake import Lake, file_identity
from meterlake.schemas.archive import LANDING as ARCHIVE
from meterlake.schemas.collection_daily import COLLECTION_DAILY
from meterlake.schemas.curves import LANDING as CURVES
from meterlake.schemas.curves import SLOTS
from meterlake.schemas.events import LANDING as EVENTS
from meterlake.schemas.interval_edits import INTERVAL_EDITS
from meterlake.schemas.meter_daily import METER_DAILY
from meterlake.schemas.registers import LANDING as REGISTERS
from meterlake.schemas.vee_findings import VEE_FINDINGS
from meterlake.settings import Settings
from meterlake.stages import StageError

SNAP = dt.date(2025, 12, 1)
DAYS = [dt.date(2026, 1, d) for d in range(1, 6)]
# meter -> role, area, multiplier, kWh (meter side) per day
METERS = {
    "mst": ("area_master", "A1", 40.0, 0.3),
    "c1": ("customer", "A1", 1.0, 9.6),
    "c2": ("customer", "A1", 1.0, 4.8),
    "head": ("feeder_head", None, 6000.0, 0.01),
    "d1": ("customer", None, 3000.0, 0.02),
}


def _lineage(df: pl.DataFrame, name: str) -> pl.DataFrame:
    return df.with_columns(
        pl.lit(f"{name}/f.csv").alias("source_file"),
        pl.int_range(2, df.height + 2).cast(pl.Int64).alias("source_line"),
        pl.lit(dt.datetime(2026, 1, 10)).alias("delivered_at"),
    )


def write_archive(lake: Lake) -> None:
    rows = [
        {
            "snapshot_date": SNAP,
            "meter_id": m,
            "customer_id": f"U{m}" if role == "customer" else None,
            "area_id": area,
            "feeder_id": "F1",
            "role": role,
            "customer_class": "resident" if role == "customer" else None,
            "tariff_id": "RES_TIER" if role == "customer" else None,
            "multiplier": mult,
            "register_max": 1_000_000.0,
            "prepay": 0,
            "pv_capacity_kw": 0.0 if role == "customer" else None,  # v2 archive: no PV
            "org_id": None,
        }
        for m, (role, area, mult, _) in METERS.items()
    ]
    table = ARCHIVE.clean
    lake.write_partition(table, SNAP, table.conform(_lineage(pl.DataFrame(rows), "archive")).collect())


def write_registers(lake: Lake, day: dt.date, skip: tuple[str, ...] = ()) -> None:
    """Readings frozen at 00:00 of ``day``: the per-day kWh accumulated since Dec 31."""
    n = (day - dt.date(2025, 12, 31)).days
    rows = [
        {"meter_id": m, "freeze_date": day, "total_kwh": round(1000.0 + kwh * n, 4), "reverse_kwh": 0.0}
        for m, (_, _, _, kwh) in METERS.items()
        if m not in skip
    ]
    table = REGISTERS.clean
    frame = pl.DataFrame(
        rows, schema={"meter_id": pl.String, "freeze_date": pl.Date, "total_kwh": pl.Float64, "reverse_kwh": pl.Float64}
    )
    for c in table.names:
        if c not in frame.columns and c not in ("source_file", "source_line", "delivered_at"):
            frame = frame.with_columns(pl.lit(None).cast(table.schema[c]).alias(c))
    lake.write_partition(table, day, table.conform(_lineage(frame, "registers")).collect())


def write_curves(lake: Lake, day: dt.date, holes: dict[str, list[int]] | None = None) -> None:
    rows = []
    for m, (_, _, _, kwh) in METERS.items():
        v: list[float | None] = [round(kwh / 96, 6)] * 96
        for i in (holes or {}).get(m, []):
            v[i] = None
        rows.append({"meter_id": m, "data_date": day, **dict(zip(SLOTS, v, strict=False))})
    table = CURVES.clean
    schema = {"meter_id": pl.String, "data_date": pl.Date, **dict.fromkeys(SLOTS, pl.Float64)}
    lake.write_partition(table, day, table.conform(_lineage(pl.DataFrame(rows, schema=schema), "curves")).collect())


def write_events(lake: Lake, day: dt.date) -> None:
    frame = pl.DataFrame(
        {
            "meter_id": ["c2"],
            "event_time": [dt.datetime.combine(day, dt.time(3))],
            "event_code": ["CLOCK_FAULT"],
            "value": [None],
            "event_date": [day],
        },
        schema_overrides={"value": pl.Float64},
    )
    table = EVENTS.clean
    lake.write_partition(table, day, table.conform(_lineage(frame, "events")).collect())


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    lk = Lake(tmp_path / "lake")
    write_archive(lk)
    for d in DAYS:
        write_registers(lk, d)
    for d in DAYS[:4]:
        write_curves(lk, d, holes={"c1": [10, 11]} if d == DAYS[1] else None)
        write_events(lk, d)
    return lk


def run(lake: Lake, dates: list[dt.date], config_dir: Path | None = None):
    settings = Settings(lake=lake.root, landing=lake.root.parent / "landing", config_dir=config_dir)
    return pipeline.run_stage(settings, "validate", dates, "test-run")


def digest(lake: Lake) -> dict[str, str]:
    out = {}
    for p in sorted((lake.root / "marts").rglob("*.parquet")):
        out[str(p.relative_to(lake.root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_writes_every_table_per_date(lake: Lake) -> None:
    result = run(lake, DAYS[:3])
    for table in (METER_DAILY, VEE_FINDINGS, INTERVAL_EDITS, COLLECTION_DAILY):
        assert lake.partitions(table) == [d.isoformat() for d in DAYS[:3]], table.name
    daily = lake.scan(METER_DAILY).collect()
    assert daily.height == 15
    assert daily["quality"].unique().to_list() == ["actual"]
    # the master: 0.3 kWh a day meter side x 40 = 12 kWh
    assert daily.filter(pl.col("meter_id") == "mst")["kwh"].to_list() == pytest.approx([12.0] * 3)
    assert result.rows == {
        "vee_findings": result.rows["vee_findings"],
        "interval_edits": 2,
        "collection_daily": 6,
        "meter_daily": 15,
    }
    assert "meter_daily 2026-01-01: 5 actual, 0 estimated, 0 missing" in result.notes
    # c1's two empty slots on Jan 2 were interpolated (0.1 each) and scaled to the register
    edits = lake.scan(INTERVAL_EDITS).collect()
    assert edits.select("meter_id", "slot", "method").rows() == [
        ("c1", 11, "linear_interpolation"),
        ("c1", 12, "linear_interpolation"),
    ]
    assert edits["kwh_meter"].to_list() == pytest.approx([0.1, 0.1])
    # the clock fault of c2 is a finding every day
    findings = lake.scan(VEE_FINDINGS).collect()
    assert findings.filter(pl.col("rule") == "vee.clock.fault")["meter_id"].to_list() == ["c2"] * 3
    # collection: one area row and one feeder_direct row (head + d1) per day, all read
    coll = lake.scan(COLLECTION_DAILY, [DAYS[0].isoformat()]).collect().sort("scope")
    assert coll.select("scope", "area_id", "meters_total", "meters_read").rows() == [
        ("area", "A1", 3, 3),
        ("feeder_direct", None, 2, 2),
    ]


def test_rerun_writes_identical_files(lake: Lake) -> None:
    run(lake, DAYS[:3])
    first = digest(lake)
    run(lake, DAYS[:3])
    assert digest(lake) == first


def test_late_reading_closes_a_gap_opened_before_the_run(tmp_path: Path) -> None:
    # day by day, as the daily DAG does: c1's reading of Jan 3 never arrives; Jan 4's lands
    lk = _c1_gap_lake(tmp_path / "lake")
    c1 = lambda: lk.scan(METER_DAILY).filter(pl.col("meter_id") == "c1").sort("date").collect()  # noqa: E731
    assert c1()["quality"].to_list() == ["actual", "missing"]  # Jan 2 has no Jan 3 reading
    result = run(lk, [DAYS[2]])
    # the Jan 4 reading closes the gap Jan 2..3: Jan 2 is rebuilt, both days estimated
    assert result.dates == [DAYS[1], DAYS[2]]
    assert result.details["rebuilt_dates"] == [DAYS[1].isoformat()]
    got = c1()
    assert got["quality"].to_list() == ["actual", "estimated", "estimated"]
    # 9.6 + 9.6 over two days with complete, equal curves: 9.6 each, by curve
    assert got["kwh"].to_list() == pytest.approx([9.6, 9.6, 9.6])
    assert got["method"].to_list() == ["register", "share_by_curve", "share_by_curve"]
    # the other meters of the rebuilt day are untouched
    assert lk.scan(METER_DAILY, [DAYS[1].isoformat()]).collect().height == 5


def _c1_gap_lake(root: Path) -> Lake:
    """c1's reading of Jan 3 never arrives; Jan 1 and Jan 2 validated day by day; then the
    registers of Jan 4 land (not yet validated)."""
    lk = Lake(root)
    write_archive(lk)
    write_registers(lk, DAYS[0])
    write_registers(lk, DAYS[1])
    write_registers(lk, DAYS[2], skip=("c1",))
    for d in DAYS[:3]:
        write_curves(lk, d)
    run(lk, [DAYS[0]])
    run(lk, [DAYS[1]])
    write_registers(lk, DAYS[3])
    return lk


def test_a_rebuilt_day_that_changes_is_pending_until_the_later_stages_have_run(tmp_path: Path) -> None:
    lk = _c1_gap_lake(tmp_path / "lake")
    assert lk.read_pending_dates() == set()
    result = run(lk, [DAYS[2]])
    # Jan 2 changed (c1 missing -> estimated): handed on, and recorded as pending (only the
    # chain's last stage clears it) so that a run stopped before the later stages rebuilt it
    # leaves it to the next run
    assert result.dates == [DAYS[1], DAYS[2]]
    assert lk.read_pending_dates() == {DAYS[1]}
    # rebuilt again with the same bytes, but still pending: handed on again
    again = run(lk, [DAYS[2]])
    assert again.dates == [DAYS[1], DAYS[2]]
    assert again.details["rebuilt_dates"] == [DAYS[1].isoformat()]


def test_a_rebuilt_day_that_comes_out_the_same_is_left_as_it_is_and_not_handed_on(tmp_path: Path) -> None:
    lk = _c1_gap_lake(tmp_path / "lake")
    run(lk, [DAYS[2]])
    lk.clear_pending_dates([DAYS[1], DAYS[2]])  # as the chain's last stage does
    jan2 = lk.partition_path(METER_DAILY, DAYS[1].isoformat())
    stamp, files = file_identity(jan2), digest(lk)
    result = run(lk, [DAYS[2]])
    # the Jan 4 reading re-shares c1's gap Jan 2..3 over the same curves: Jan 2's file comes
    # out byte for byte as it stands, so it is not replaced and the later stages skip it
    assert result.dates == [DAYS[2]]
    assert result.details["rebuilt_dates"] == []
    assert file_identity(jan2) == stamp
    assert digest(lk) == files
    assert lk.read_pending_dates() == set()
    assert any("rebuilt unchanged, not passed on: 1 meters share a gap" in n for n in result.notes)
    # c1's Jan 4 reading withdrawn, Jan 5's there: the gap now closes on Jan 5, Jan 2 changes
    write_registers(lk, DAYS[3], skip=("c1",))
    write_registers(lk, DAYS[4])
    moved = run(lk, [DAYS[2]])
    assert moved.dates == [DAYS[1], DAYS[2]]
    assert file_identity(jan2) != stamp
    assert lk.read_pending_dates() == {DAYS[1]}


def test_month_total_equals_register_difference_with_missing_readings(tmp_path: Path) -> None:
    lk = Lake(tmp_path / "lake")
    write_archive(lk)
    for d in DAYS:
        write_registers(lk, d, skip=("c2", "mst") if d in (DAYS[1], DAYS[2]) else ())
    for d in DAYS[:4]:
        write_curves(lk, d, holes={"c2": list(range(96))} if d == DAYS[1] else None)
    run(lk, DAYS[:4])
    daily = lk.scan(METER_DAILY).collect()
    totals = daily.group_by("meter_id").agg(pl.col("kwh").sum()).sort("meter_id")
    # 4 days x kWh x multiplier, whatever was estimated
    expected = {m: 4 * kwh * mult for m, (_, _, mult, kwh) in METERS.items()}
    assert dict(totals.rows()) == pytest.approx(expected)
    assert set(daily.filter(pl.col("meter_id") == "c2")["quality"]) == {"actual", "estimated"}


def test_configuration_from_a_user_folder(lake: Lake, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    text = (Path(__file__).resolve().parents[2] / "config" / "vee.toml").read_text(encoding="utf-8")
    (cfg / "vee.toml").write_text(
        text.replace('"vee.sum.curve_register" = "error"', '"vee.clock.fault" = "blocking"'), encoding="utf-8"
    )
    result = run(lake, [DAYS[0]], config_dir=cfg)
    findings = lake.scan(VEE_FINDINGS).collect()
    assert findings.filter(pl.col("rule") == "vee.clock.fault")["severity"].to_list() == ["blocking"]
    assert result.details["findings_by_severity"]["blocking"] == 1


def _lake_with_gaps(root: Path) -> Lake:
    lk = Lake(root)
    write_archive(lk)
    for d in DAYS:
        write_registers(lk, d, skip=("c1",) if d in (DAYS[1], DAYS[2]) else (("mst",) if d == DAYS[3] else ()))
    for d in DAYS[:4]:
        write_curves(lk, d, holes={"c1": list(range(30, 60))} if d == DAYS[2] else None)
    return lk


def test_a_range_gives_the_same_files_as_its_days_one_by_one(tmp_path: Path) -> None:
    together, apart = _lake_with_gaps(tmp_path / "a"), _lake_with_gaps(tmp_path / "b")
    run(together, DAYS[:4])
    for d in DAYS[:4]:
        run(apart, [d])
    assert digest(together) == digest(apart)
    daily = together.scan(METER_DAILY).collect()
    # c1's readings of Jan 2 and 3 are missing: Jan 1..3 share 1000+9.6 -> 1000+38.4, i.e. 28.8;
    # Jan 3's curve is incomplete, so evenly: 9.6 each
    c1 = daily.filter(pl.col("meter_id") == "c1").sort("date")
    assert c1["quality"].to_list() == ["estimated", "estimated", "estimated", "actual"]
    assert c1["kwh"].to_list() == pytest.approx([9.6] * 4)


def test_a_bad_configuration_is_a_one_line_stage_error(lake: Lake, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "vee.toml").write_text("[estimation]\nmax_interpolation_slots = -1\n", encoding="utf-8")
    with pytest.raises(StageError, match=r"validate: .*vee.toml: estimation.max_interpolation_slots"):
        run(lake, [DAYS[0]], config_dir=cfg)


def test_slots_inside_an_outage_are_zero_supply_and_an_unread_meter_without_power_is_counted(lake: Lake) -> None:
    from meterlake.schemas.collection_daily import COLLECTION_DAILY
    from meterlake.schemas.outage_meter_days import OUTAGE_METER_DAYS

    # on DAYS[1] c1's slots 11 and 12 (0-based 10, 11) are empty; it was off supply in them.
    # c2 was off at 00:00 of DAYS[1] and its register of that date did not arrive.
    day = DAYS[1]
    outage = pl.DataFrame(
        {
            "date": [day, day],
            "meter_id": ["c1", "c2"],
            "outage_min": [30.0, 20.0],
            "first_slot": [11, None],
            "last_slot": [12, None],
            "off_at_midnight": [False, True],
        },
        schema_overrides={"first_slot": pl.Int32, "last_slot": pl.Int32},
    )
    lake.write_partition(OUTAGE_METER_DAYS, day, outage)
    regs = lake.scan(REGISTERS.clean, [day]).collect().filter(pl.col("meter_id") != "c2")
    lake.write_partition(REGISTERS.clean, day, regs)
    run(lake, [day])
    edits = lake.scan(INTERVAL_EDITS, [day]).collect().filter(pl.col("meter_id") == "c1").sort("slot")
    assert edits.select("slot", "method", "kwh_meter").rows() == [(11, "outage_zero", 0.0), (12, "outage_zero", 0.0)]
    coll = lake.scan(COLLECTION_DAILY, [day]).collect().filter(pl.col("area_id") == "A1")
    assert coll.select("meters_total", "meters_read", "meters_unread_no_power").row(0) == (3, 2, 1)


def _lake_with_a_long_gap(root: Path) -> Lake:
    """c1's readings of Jan 2, 3 and 4 never arrive: Jan 1..4 share the difference Jan 1 ->
    Jan 5; mst's of Jan 3 neither (Jan 2..3 share). Every curve complete and flat."""
    lk = Lake(root)
    write_archive(lk)
    for d in DAYS:
        skip = ("c1",) if d in DAYS[1:4] else ()
        write_registers(lk, d, skip=skip + (("mst",) if d == DAYS[2] else ()))
    write_registers(lk, dt.date(2026, 1, 6))
    for d in DAYS:
        write_curves(lk, d)
    return lk


@pytest.mark.parametrize("limit", [None, 10])
def test_a_range_with_a_multi_day_gap_equals_its_days_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int | None
) -> None:
    from meterlake.stages import validate

    if limit is not None:
        # two dates a pass (5 meters in service a day): the gap crosses passes
        monkeypatch.setattr(validate, "BATCH_METER_DAYS", limit)
    together, apart = _lake_with_a_long_gap(tmp_path / "a"), _lake_with_a_long_gap(tmp_path / "b")
    # Jan 1 validated before the run, as the daily DAG did: the run closes its gap
    run(together, [DAYS[0]])
    run(apart, [DAYS[0]])
    result = run(together, DAYS[1:])
    for d in DAYS[1:]:
        run(apart, [d])
    assert digest(together) == digest(apart)
    assert result.details["rebuilt_dates"] == [DAYS[0].isoformat()]
    daily = together.scan(METER_DAILY).collect().sort("date")
    c1 = daily.filter(pl.col("meter_id") == "c1")
    # 1000 + 9.6 x 1 on Jan 1, 1000 + 9.6 x 5 on Jan 5: 38.4 over four days with equal,
    # complete curves: 9.6 each, by curve
    assert c1["quality"].to_list() == ["estimated"] * 4 + ["actual"]
    assert c1["method"].to_list() == ["share_by_curve"] * 4 + ["register"]
    assert c1["kwh"].to_list() == pytest.approx([9.6] * 5)
    # mst: 0.3 x 2 over Jan 2..3, x 40
    mst = daily.filter(pl.col("meter_id") == "mst")
    assert mst["quality"].to_list() == ["actual", "estimated", "estimated", "actual", "actual"]
    assert mst["kwh"].to_list() == pytest.approx([12.0] * 5)


def test_a_range_in_passes_of_one_date_equals_one_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from meterlake.stages import validate

    one_pass, by_date = _lake_with_a_long_gap(tmp_path / "a"), _lake_with_a_long_gap(tmp_path / "b")
    run(one_pass, DAYS)
    monkeypatch.setattr(validate, "BATCH_METER_DAYS", 1)
    run(by_date, DAYS)
    assert digest(one_pass) == digest(by_date)


@pytest.mark.parametrize("make", [_lake_with_gaps, _lake_with_a_long_gap])
def test_rerunning_a_day_inside_its_neighbours_gap_chains_leaves_every_file_identical(tmp_path: Path, make) -> None:
    """Each date re-run alone (its gap re-shared over what the other days hold, and the
    other days of the gap patched again), then two dates together: nothing moves."""
    lk = make(tmp_path / "lake")
    days = [d for d in DAYS if lk.partition_path(CURVES.clean, d).exists()]
    run(lk, days)
    first = digest(lk)
    daily = lk.scan(METER_DAILY).collect()
    assert daily.filter(pl.col("quality") == "estimated").height > 0  # the gaps are there
    for d in days:
        result = run(lk, [d])
        assert digest(lk) == first, d
        # the days of the gap it shares are rebuilt, and handed on to the later stages
        assert set(result.dates) >= {d}
    run(lk, days[1:3])
    assert digest(lk) == first
