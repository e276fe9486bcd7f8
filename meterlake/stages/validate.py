"""Validate: VEE on curves and registers, meter_daily and collection_daily.

For each date D of the run, from the clean tables of the lake:

* ``marts/meter_daily/date=D``: daily primary kWh per meter in service
  (:mod:`meterlake.transforms.meter_daily`);
* ``marts/vee_findings/date=D``: what the VEE checks found (:mod:`meterlake.transforms.vee`);
* ``marts/interval_edits/date=D``: every curve slot replaced by an estimate
  (:mod:`meterlake.transforms.estimation`), raw curves untouched;
* ``marts/collection_daily/date=D``: 采集成功率 and curve completeness per area.

What it reads for D, bounded: the archive snapshots valid on D-1 and D; the register
partitions D and D+1 in full, and up to ``max_gap_days`` on either side only for the
meters that lack one of those readings (to share a gap's difference); the curves of D and
of its like days (filtered to the meters being estimated); the events of D; and
meter_daily of the ``history.days`` before D (high/low checks) and of the days sharing a
gap with D (curve weights, for those meters only).

Dates are validated one after the other, so memory is that of one county-day whatever
the range. A day whose reading is missing shares a gap with other days: a reading that
arrives can close a gap that opened earlier (its earlier days were ``missing`` when they
were built), and a day's curve weighs the shares of the whole gap. The meter_daily
partitions of those other days (when the lake holds them) are patched, the rows of those
meters only, and returned in ``StageResult.dates`` so later stages rebuild them too.
Every partition written is a function of the lake's clean tables: a rerun writes
identical files.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ..config import ConfigError
from ..lake import Lake
from ..schemas._base import MissingColumnsError, Table
from ..schemas.archive import LANDING as ARCHIVE_LANDING
from ..schemas.collection_daily import COLLECTION_DAILY
from ..schemas.curves import LANDING as CURVES_LANDING
from ..schemas.events import LANDING as EVENTS_LANDING
from ..schemas.interval_edits import INTERVAL_EDITS
from ..schemas.meter_daily import METER_DAILY
from ..schemas.outage_meter_days import OUTAGE_METER_DAYS
from ..schemas.registers import LANDING as REGISTERS_LANDING
from ..schemas.vee_findings import VEE_FINDINGS
from ..transforms import dates, estimation
from ..transforms import meter_daily as md
from ..transforms.vee import VeeConfig, validate_day
from . import StageContext, StageError, StageResult

ARCHIVE = ARCHIVE_LANDING.clean
CURVES = CURVES_LANDING.clean
REGISTERS = REGISTERS_LANDING.clean
EVENTS = EVENTS_LANDING.clean

READING_COLS = ["meter_id", "freeze_date", *md.REGISTERS, "remaining_yuan"]


@dataclass(frozen=True)
class _Lake(Lake):
    """The lake as validate reads it: the partitions of a clean table listed once per run
    (validate writes marts only), those of a mart on every call (it writes meter_daily)."""

    listed: dict[str, list[str]] = field(default_factory=dict, compare=False)

    def partitions(self, table: Table, key: str | None = None) -> list[str]:
        if table.layer != "clean" or key is not None:
            return super().partitions(table, key)
        if table.name not in self.listed:
            self.listed[table.name] = super().partitions(table)
        return self.listed[table.name]


def _present(lake: Lake, table: Table, dates: list[dt.date]) -> list[dt.date]:
    have = set(lake.partitions(table))
    return [d for d in dates if d.isoformat() in have]


def archive_for(lake: Lake, dates: list[dt.date]) -> pl.LazyFrame:
    """The archive snapshots valid on ``dates`` (the latest one on or before each), read
    by partition: a lake with a snapshot a day reads one or two of them, not all."""
    parts = sorted(lake.partitions(ARCHIVE))
    keep = set()
    for d in dates:
        before = [p for p in parts if p <= d.isoformat()]
        if before:
            keep.add(before[-1])
    return lake.scan(ARCHIVE, sorted(keep))


def _readings(lake: Lake, dates: list[dt.date], meters: pl.DataFrame | None = None) -> pl.DataFrame:
    lf = lake.scan(REGISTERS, _present(lake, REGISTERS, dates)).select(READING_COLS)
    if meters is not None:
        # a filter on a literal set is applied while each file is decoded (a semi-join
        # would read every partition whole first)
        lf = lf.filter(pl.col("meter_id").is_in(meters["meter_id"].implode()))
    return lf.collect()


def _around(
    lake: Lake, core: pl.DataFrame, lacking: pl.DataFrame, first: dt.date, last: dt.date, gap: int
) -> pl.DataFrame:
    """Readings of the ``lacking`` meters outside the run, up to ``gap`` days either side.

    Read in widening steps (a week, then the rest) and only for the meters still without
    a reading on that side: most gaps are short, and the look-ahead is usually empty.
    """
    out = []
    for side in ("before", "after"):
        todo = lacking
        steps = [(1, min(7, gap)), (min(7, gap) + 1, gap)] if gap > 7 else [(1, gap)]
        for lo, hi in steps:
            if not todo.height:
                break
            if side == "before":
                window = dates.days(first - dt.timedelta(days=hi), first - dt.timedelta(days=lo))
            else:
                window = dates.days(last + dt.timedelta(days=1 + lo), last + dt.timedelta(days=1 + hi))
            got = _readings(lake, window, todo)
            out.append(got)
            todo = todo.join(got.select("meter_id").unique(), on="meter_id", how="anti")
    return pl.concat(out) if out else core.clear()


def _note_quality(day: dt.date, frame: pl.DataFrame) -> str:
    q = Counter(frame["quality"].to_list()) if frame.height else Counter()
    return (
        f"meter_daily {day}: {q.get('actual', 0):,} actual, {q.get('estimated', 0):,} estimated, "
        f"{q.get('missing', 0):,} missing"
    )


def run(ctx: StageContext, dates: list[dt.date]) -> StageResult:
    """Validate each date in order (memory stays that of one county-day, whatever the range).

    A multi-day run is the same as running its dates one after the other: a gap that a
    later date's reading closes rebuilds the earlier dates as it would day by day.
    """
    result = StageResult(stage="validate")
    dates = sorted(set(dates))
    if not dates:
        return result
    try:
        cfg = ctx.config("vee", VeeConfig)
    except ConfigError as exc:
        raise StageError(f"validate: {exc}") from exc
    severities: Counter[str] = Counter()
    rebuilt: set[dt.date] = set()
    lacking = 0
    lake = _Lake(ctx.lake.root)
    for day in dates:
        try:
            out = _validate_date(ctx, lake, cfg, day, later={d for d in dates if d > day})
        except MissingColumnsError as exc:
            raise StageError(f"validate {day}: {exc}") from exc
        for table, n in out["rows"].items():
            result.rows[table] = result.rows.get(table, 0) + n
        result.notes += out["notes"]
        severities.update(out["severities"])
        rebuilt |= set(out["rebuilt"])
        lacking += out["lacking"]
    result.dates = sorted(set(dates) | rebuilt)
    result.details = {
        "findings_by_severity": dict(severities),
        "rebuilt_dates": [d.isoformat() for d in sorted(rebuilt - set(dates))],
        "meters_lacking_reading": lacking,
    }
    return result


def _validate_date(ctx: StageContext, lake: Lake, cfg: VeeConfig, day: dt.date, later: set[dt.date]) -> dict:
    gap = cfg.registers.max_gap_days
    notes: list[str] = []
    rows: dict[str, int] = {}

    # --- archive and registers ---------------------------------------------------------
    both = [day - dt.timedelta(days=1), day]
    service = md.in_service(archive_for(lake, both), both).collect()
    in_run = service.filter(pl.col("date") == day)
    core = _readings(lake, [day, day + dt.timedelta(days=1)])
    # core holds the readings frozen on the day and the next: a meter lacks one when it is
    # missing from either (joined on the meter alone, cheaper than on meter and date)
    lacking = (
        pl.concat(
            [
                in_run.lazy()
                .select("meter_id")
                .join(core.lazy().filter(pl.col("freeze_date") == d).select("meter_id"), on="meter_id", how="anti")
                for d in (day, day + dt.timedelta(days=1))
            ]
        )
        .unique()
        .collect()
    )
    readings = pl.concat([core, _around(lake, core, lacking, day, day, gap)])
    reg_kw: dict[str, Any] = {"max_gap_days": gap, "rollover_fraction": cfg.registers.rollover_fraction}
    days = md.register_days(in_run.lazy(), readings.lazy(), **reg_kw).collect()
    ctx.progress(f"validate {day}: {in_run.height:,} meters in service, {lacking.height:,} lack a reading")
    # gaps the day shares with other days: their curves weigh the shares, and those days'
    # values change with this day's readings and curve
    gaps = md.shared_gaps(days)
    # from here on, only the meters of those gaps need their readings, and only the
    # multipliers of the day before are read from the archive: the county-wide frames go
    # before the curves are read
    readings = readings.filter(pl.col("meter_id").is_in(gaps["meter_id"].implode()))
    before = service.filter(pl.col("date") == day - dt.timedelta(days=1)).select("meter_id", "multiplier")
    n_lacking = lacking.height
    del service, in_run, core, lacking

    # --- VEE --------------------------------------------------------------------------------
    held = set(lake.partitions(METER_DAILY))
    window = dates.days(day - dt.timedelta(days=cfg.history.days), day - dt.timedelta(days=1))
    history = lake.scan(METER_DAILY, [d for d in window if d.isoformat() in held]).select(
        "meter_id", "date", "kwh", "reverse_kwh", "quality"
    )
    cal = cfg.calendar
    likes = estimation.like_dates(
        day,
        like_days=cfg.estimation.like_days,
        window_days=cfg.estimation.like_day_window_days,
        holidays=cal.holidays,
        workdays=cal.workdays,
    )
    vd = validate_day(
        day,
        days=days,
        curves=lake.scan(CURVES, [day]),
        readings=lake.scan(REGISTERS, [day]),
        like_curves=lake.scan(CURVES, _present(lake, CURVES, likes)),
        events=lake.scan(EVENTS, [day]),
        history=history,
        before=before.lazy(),
        cfg=cfg,
        outages=lake.scan(OUTAGE_METER_DAYS, [day]),
    )
    lake.write_partition(VEE_FINDINGS, day, vd.findings)
    lake.write_partition(INTERVAL_EDITS, day, vd.edits)
    lake.write_partition(COLLECTION_DAILY, day, vd.collection)
    sev = Counter(vd.findings["severity"].to_list())
    rows |= {
        "vee_findings": vd.findings.height,
        "interval_edits": vd.edits.height,
        "collection_daily": vd.collection.height,
    }
    notes.append(
        f"vee {day}: {vd.findings.height:,} findings ({sev.get('error', 0):,} error, "
        f"{sev.get('blocking', 0):,} blocking), {vd.counts['estimated_slots']:,} slots estimated"
    )
    ctx.progress(notes[-1])

    # --- meter_daily ------------------------------------------------------------------------
    other = [d for d in md.gap_dates(gaps, day) if d.isoformat() in held]
    old_curves = (
        lake.scan(METER_DAILY, other)
        .filter(pl.col("meter_id").is_in(gaps["meter_id"].implode()))
        .select(
            "meter_id",
            "date",
            "curve_slots_read",
            (pl.col("curve_kwh") / pl.col("multiplier")).alias("curve_kwh_meter"),
        )
        .collect()
    )
    curves = pl.concat([old_curves, vd.curve_days], how="vertical_relaxed").lazy()
    daily = md.meter_daily(days.lazy(), curves).collect()
    lake.write_partition(METER_DAILY, day, daily)
    rows["meter_daily"] = daily.height
    notes.append(_note_quality(day, daily))

    # --- the other days of those gaps: patch the rows of the meters concerned -------------------
    rebuilt = []
    for other_day in [d for d in other if d not in later]:
        hit = gaps.filter((pl.col("reading_from") <= other_day) & (pl.col("reading_to") > other_day)).select("meter_id")
        svc = md.in_service(archive_for(lake, [other_day]), [other_day]).join(hit.lazy(), on="meter_id", how="semi")
        fresh = md.meter_daily(md.register_days(svc, readings.lazy(), **reg_kw), curves)
        old = lake.scan(METER_DAILY, [other_day]).join(hit.lazy(), on="meter_id", how="anti")
        part = pl.concat([METER_DAILY.conform(old), METER_DAILY.conform(fresh)]).collect()
        lake.write_partition(METER_DAILY, other_day, part)
        rebuilt.append(other_day)
        rows["meter_daily"] += part.height
        notes.append(_note_quality(other_day, part) + f" (rebuilt: {hit.height:,} meters share a gap with {day})")
    return {"rows": rows, "notes": notes, "severities": sev, "rebuilt": rebuilt, "lacking": n_lacking}
