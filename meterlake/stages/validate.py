"""Validate: VEE on curves and registers, meter_daily and collection_daily.

For each date D of the run, from the clean tables of the lake:

* ``marts/meter_daily/date=D``: daily primary kWh per meter in service
  (:mod:`meterlake.transforms.meter_daily`);
* ``marts/vee_findings/date=D``: what the VEE checks found (:mod:`meterlake.transforms.vee`);
* ``marts/interval_edits/date=D``: every curve slot replaced by an estimate
  (:mod:`meterlake.transforms.estimation`), raw curves untouched;
* ``marts/collection_daily/date=D``: 采集成功率 and curve completeness per area.

What it reads, bounded: the archive snapshots valid from ``max_gap_days`` before the run;
register partitions D and D+1 in full, and ``max_gap_days`` on either side only for the
meters that lack one of those readings (to share a gap's difference); the curves of D and
of its like days (filtered to the meters being estimated); the events of D; and
meter_daily of the ``history.days`` before the run (high/low checks, gap weights).

A reading that arrives inside the run can close a gap that opened before it: the earlier
days of such gaps were ``missing`` when they were built. Their meter_daily partitions are
patched (the rows of those meters only) and returned in ``StageResult.dates`` so later
stages rebuild them too. Every partition written is a function of the lake's clean
tables: a rerun writes identical files.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import polars as pl

from ..lake import Lake
from ..schemas.archive import LANDING as ARCHIVE_LANDING
from ..schemas.collection_daily import COLLECTION_DAILY
from ..schemas.curves import LANDING as CURVES_LANDING
from ..schemas.events import LANDING as EVENTS_LANDING
from ..schemas.interval_edits import INTERVAL_EDITS
from ..schemas.meter_daily import METER_DAILY
from ..schemas.registers import LANDING as REGISTERS_LANDING
from ..schemas.vee_findings import VEE_FINDINGS
from ..transforms import estimation
from ..transforms import meter_daily as md
from ..transforms.vee import VeeConfig, validate_day
from . import StageContext, StageResult

ARCHIVE = ARCHIVE_LANDING.clean
CURVES = CURVES_LANDING.clean
REGISTERS = REGISTERS_LANDING.clean
EVENTS = EVENTS_LANDING.clean

READING_COLS = ["meter_id", "freeze_date", *md.REGISTERS, "remaining_yuan"]


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _present(lake: Lake, table, dates: list[dt.date]) -> list[dt.date]:
    have = set(lake.partitions(table))
    return [d for d in dates if d.isoformat() in have]


def archive_for(lake: Lake, first: dt.date, last: dt.date) -> pl.LazyFrame:
    """The archive snapshots that can be valid on some date in ``first..last``."""
    parts = sorted(lake.partitions(ARCHIVE))
    before = [p for p in parts if p <= first.isoformat()]
    keep = ([before[-1]] if before else []) + [p for p in parts if first.isoformat() < p <= last.isoformat()]
    return lake.scan(ARCHIVE, keep)


def _readings(lake: Lake, dates: list[dt.date], meters: pl.DataFrame | None = None) -> pl.DataFrame:
    lf = lake.scan(REGISTERS, _present(lake, REGISTERS, dates)).select(READING_COLS)
    if meters is not None:
        # a filter on a literal set is applied while each file is decoded (a semi-join
        # would read every partition whole first)
        lf = lf.filter(pl.col("meter_id").is_in(meters["meter_id"].implode()))
    return lf.collect()


def _around(lake: Lake, core: pl.DataFrame, lacking: pl.DataFrame, first: dt.date, last: dt.date, gap: int) -> pl.DataFrame:
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
                window = _days(first - dt.timedelta(days=hi), first - dt.timedelta(days=lo))
            else:
                window = _days(last + dt.timedelta(days=1 + lo), last + dt.timedelta(days=1 + hi))
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
    result = StageResult(stage="validate")
    dates = sorted(set(dates))
    if not dates:
        return result
    cfg = ctx.config("vee", VeeConfig)
    lake = ctx.lake
    gap = cfg.registers.max_gap_days
    first, last = dates[0], dates[-1]

    # --- archive and registers ---------------------------------------------------------
    archive = archive_for(lake, first - dt.timedelta(days=gap + 1), last)
    service = md.in_service(archive, sorted({*dates, first - dt.timedelta(days=1)})).collect()
    in_run = service.filter(pl.col("date").is_in(dates))
    core = _readings(lake, _days(first, last + dt.timedelta(days=1)))
    have = core.select("meter_id", pl.col("freeze_date").alias("date"))
    lacking = (
        pl.concat([
            in_run.select("meter_id", "date").join(have, on=["meter_id", "date"], how="anti"),
            in_run.select("meter_id", (pl.col("date") + pl.duration(days=1)).alias("date")).join(have, on=["meter_id", "date"], how="anti"),
        ])
        .select("meter_id")
        .unique()
    )
    extra = _around(lake, core, lacking, first, last, gap)
    readings = pl.concat([core, extra])
    reg_kw = dict(max_gap_days=gap, rollover_fraction=cfg.registers.rollover_fraction)
    days = md.register_days(in_run.lazy(), readings.lazy(), **reg_kw).collect()
    ctx.progress(f"validate: {in_run.height:,} meter-days in service, {lacking.height:,} meters lack a reading")

    # --- history: meter_daily of the days before the run, and the run's own actual days --
    held = set(lake.partitions(METER_DAILY))
    hist_cols = ["meter_id", "date", "kwh", "reverse_kwh", "quality"]
    actual = pl.col("day_status").is_in(["actual", "rollover"])
    run_history = days.select(
        "meter_id", "date",
        pl.when(actual).then(pl.col("delta_total_kwh_meter") * pl.col("multiplier")).alias("kwh"),
        pl.when(actual).then(pl.col("delta_reverse_kwh_meter") * pl.col("multiplier")).alias("reverse_kwh"),
        pl.when(actual).then(pl.lit("actual")).otherwise(pl.lit("not_actual")).alias("quality"),
    )

    def history_for(day: dt.date) -> pl.LazyFrame:
        window = _days(day - dt.timedelta(days=cfg.history.days), day - dt.timedelta(days=1))
        stored = [d for d in window if d.isoformat() in held and d not in set(dates)]
        return pl.concat(
            [lake.scan(METER_DAILY, stored).select(hist_cols), run_history.lazy().filter(pl.col("date") < day)],
            how="vertical_relaxed",
        )

    # --- VEE per date ---------------------------------------------------------------------
    cal = cfg.calendar
    curve_days = []
    findings_total: Counter[str] = Counter()
    for day in dates:
        likes = estimation.like_dates(
            day, like_days=cfg.estimation.like_days, window_days=cfg.estimation.like_day_window_days,
            holidays=cal.holidays, workdays=cal.workdays,
        )
        before = service.filter(pl.col("date") == day - dt.timedelta(days=1)).select("meter_id", "multiplier")
        vd = validate_day(
            day,
            days=days.filter(pl.col("date") == day),
            curves=lake.scan(CURVES, [day]),
            readings=lake.scan(REGISTERS, [day]),
            like_curves=lake.scan(CURVES, _present(lake, CURVES, likes)),
            events=lake.scan(EVENTS, [day]),
            history=history_for(day),
            before=before.lazy(),
            cfg=cfg,
        )
        lake.write_partition(VEE_FINDINGS, day, vd.findings)
        lake.write_partition(INTERVAL_EDITS, day, vd.edits)
        lake.write_partition(COLLECTION_DAILY, day, vd.collection)
        curve_days.append(vd.curve_days)
        sev = Counter(vd.findings["severity"].to_list())
        findings_total.update(sev)
        result.rows["vee_findings"] = result.rows.get("vee_findings", 0) + vd.findings.height
        result.rows["interval_edits"] = result.rows.get("interval_edits", 0) + vd.edits.height
        result.rows["collection_daily"] = result.rows.get("collection_daily", 0) + vd.collection.height
        result.notes.append(
            f"vee {day}: {vd.findings.height:,} findings ({sev.get('error', 0):,} error, "
            f"{sev.get('blocking', 0):,} blocking), {vd.counts['estimated_slots']:,} slots estimated"
        )
        ctx.progress(result.notes[-1])

    # --- meter_daily for the run's dates ----------------------------------------------------
    # curve figures of the days before the run, for the meters sharing a gap (weights)
    shared = days.filter(pl.col("day_status") == "shared").select("meter_id").unique()
    since = days.filter(pl.col("day_status") == "shared")["reading_from"].min() or first
    before_run = [d for d in _days(since, first - dt.timedelta(days=1)) if d.isoformat() in held]
    old_curves = (
        lake.scan(METER_DAILY, before_run if shared.height else [])
        .filter(pl.col("meter_id").is_in(shared["meter_id"].implode()))
        .select("meter_id", "date", "curve_slots_read", (pl.col("curve_kwh") / pl.col("multiplier")).alias("curve_kwh_meter"))
        .collect()
    )
    all_curves = pl.concat([old_curves, *curve_days], how="vertical_relaxed")
    daily = md.meter_daily(days.lazy(), all_curves.lazy()).collect()
    for day in dates:
        part = daily.filter(pl.col("date") == day)
        lake.write_partition(METER_DAILY, day, part)
        result.notes.append(_note_quality(day, part))
    result.rows["meter_daily"] = daily.height

    # --- earlier days whose gap a reading of this run closed ----------------------------------
    gaps = md.rebuild_meters(days, dates).collect()
    rebuilt = []
    for day in md.rebuild_dates(days, dates):
        if day.isoformat() not in held:
            continue  # never built: nothing to correct
        hit = gaps.filter((pl.col("reading_from") <= day) & (pl.col("reading_to") > day)).select("meter_id").unique()
        svc = md.in_service(archive, [day]).join(hit.lazy(), on="meter_id", how="semi")
        fresh = md.meter_daily(md.register_days(svc, readings.lazy(), **reg_kw), all_curves.lazy())
        old = lake.scan(METER_DAILY, [day]).join(hit.lazy(), on="meter_id", how="anti")
        part = pl.concat([METER_DAILY.conform(old), METER_DAILY.conform(fresh)]).collect()
        lake.write_partition(METER_DAILY, day, part)
        rebuilt.append(day)
        result.rows["meter_daily"] += part.height
        result.notes.append(_note_quality(day, part) + f" (rebuilt: {hit.height:,} meters' gaps closed)")

    result.dates = sorted(set(dates) | set(rebuilt))
    result.details = {
        "findings_by_severity": dict(findings_total),
        "rebuilt_dates": [d.isoformat() for d in rebuilt],
        "meters_lacking_reading": lacking.height,
    }
    return result
