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

Consecutive dates are validated in one pass, up to ``BATCH_METER_DAYS`` meter-days (a
small utility's month is one pass; a county day is a pass of its own, so memory is that
of one county-day whatever the range), and a pass writes what its dates write one by
one. A day whose reading is missing shares a gap with other days: a reading that
arrives can close a gap that opened earlier (its earlier days were ``missing`` when they
were built), and a day's curve weighs the shares of the whole gap. The meter_daily
partitions of those other days (when the lake holds them) are patched, the rows of those
meters only, and returned in ``StageResult.dates`` so later stages rebuild them too:
those whose file changes (recorded first as pending dates, so that a run stopped before
the later stages have rebuilt them leaves them for the next run), and those already
pending. A patched partition that comes out byte for byte as the file it replaces (the
gap's shares did not move) is left as it is and not passed on: the lake is then as if
the day had not been touched, and an untouched day's later marts stand as they are.
Day by day, each date re-shares its gaps over what the other days hold at that moment:
a pass replays that chain over the gap meters' rows, each meter's dates in order and the
meters side by side (``_replay_chain``).
Every partition written is a function of the lake's clean tables: a rerun writes
identical files.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
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
from ..transforms.vee import VeeConfig, VeeDay, validate_day, validate_days
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
    return lake.scan(ARCHIVE, sorted({p for p in _snapshots(lake, dates).values() if p}))


def _snapshots(lake: Lake, dates: list[dt.date]) -> dict[dt.date, str | None]:
    """The archive partition valid on each of ``dates``: the latest on or before it (None: none)."""
    parts = sorted(lake.partitions(ARCHIVE))
    out: dict[dt.date, str | None] = {}
    for d in dates:
        before = [p for p in parts if p <= d.isoformat()]
        out[d] = before[-1] if before else None
    return out


def _readings(lake: Lake, dates: list[dt.date], meters: pl.DataFrame | None = None) -> pl.DataFrame:
    lf = lake.scan(REGISTERS, _present(lake, REGISTERS, dates)).select(READING_COLS)
    if meters is not None:
        # a filter on a literal set is applied while each file is decoded (a semi-join
        # would read every partition whole first)
        lf = lf.filter(pl.col("meter_id").is_in(meters["meter_id"].implode()))
    return lf.collect()


def _note_quality(day: dt.date, frame: pl.DataFrame) -> str:
    q = dict(frame["quality"].value_counts().rows()) if frame.height else {}
    return (
        f"meter_daily {day}: {q.get('actual', 0):,} actual, {q.get('estimated', 0):,} estimated, "
        f"{q.get('missing', 0):,} missing"
    )


#: meter-days validated in one pass: a small utility's month is one pass, a county day is
#: a pass of its own (memory stays that of one county-day, whatever the range)
BATCH_METER_DAYS = 200_000


def _meters_on(lake: Lake, dates: list[dt.date]) -> dict[dt.date, int]:
    """Each date's meters in service: the size of the archive snapshot valid on it (each
    snapshot counted once; the stage never writes the archive, so once a run)."""
    valid = _snapshots(lake, dates)
    sizes = {p: lake.scan(ARCHIVE, [p]).select(pl.len()).collect().item() for p in set(valid.values()) if p}
    return {d: sizes.get(valid[d] or "", 0) for d in dates}


def _batches(meters: dict[dt.date, int], dates: list[dt.date], limit: int | None = None) -> list[dt.date]:
    """The first dates of ``dates`` that one pass validates: consecutive dates whose
    meters in service (``meters``: :func:`_meters_on`) add up to at most ``limit``, and at
    least one date."""
    limit = BATCH_METER_DAYS if limit is None else limit
    out: list[dt.date] = []
    total = 0
    for d in dates:
        n = meters[d]
        if out and (total + n > limit or d != out[-1] + dt.timedelta(days=1)):
            break
        out.append(d)
        total += n
    return out


def run(ctx: StageContext, dates: list[dt.date]) -> StageResult:
    """Validate the dates in passes of consecutive dates (:func:`_batches`).

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
    todo = list(dates)
    meters = _meters_on(lake, todo)
    while todo:
        batch = _batches(meters, todo)
        try:
            out = _validate_batch(ctx, lake, cfg, batch, run_dates=set(dates))
        except MissingColumnsError as exc:
            raise StageError(f"validate {batch[0]}: {exc}") from exc
        todo = todo[len(out["dates"]) :]
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


#: the curve figures meter_daily carries, as a later date reads them back for its gap weights
_CURVE_COLS = ("curve_slots_read", "curve_kwh", "multiplier")


def _validate_batch(
    ctx: StageContext, lake: Lake, cfg: VeeConfig, batch: list[dt.date], run_dates: set[dt.date]
) -> dict:
    """Validate ``batch`` (consecutive dates) in one pass; returns what was done, with
    ``dates``: the first dates of ``batch`` it wrote (all of them unless a gap chain
    needs a cut, see below).

    Everything a date computes from its own inputs is computed for the whole batch at
    once: service, register days, VEE, and the meter_daily rows of every meter-day that
    shares no gap. What the dates pass on to each other is the chain of shared gaps: day
    by day, each date re-shares its gaps over the curves that the other days of the gap
    hold in meter_daily at that moment, and patches the earlier days. That chain is
    replayed here over the rows of the gap meters only, with the same frames and
    arithmetic as the day-by-day run; each partition is written once, as the day-by-day
    run leaves it.
    """
    reg = _register_days(ctx, lake, cfg, batch)
    held = set(lake.partitions(METER_DAILY))
    chain = _gap_chain(reg.shared, held, set(batch), run_dates)
    hazard = _history_hazard(lake, chain, batch[0], batch[-1])
    if hazard is not None:
        # a date patches a day before the pass whose row is actual: the history of the
        # dates after it reads the patched row, so the pass ends on that date
        return _validate_batch(ctx, lake, cfg, [d for d in batch if d <= hazard], run_dates)
    vd = _vee(lake, cfg, batch, reg, held)
    out = _write_vee(ctx, lake, batch, vd)
    written = _write_meter_daily(lake, cfg, batch, reg, vd, chain, held)
    out["rows"] |= written["rows"]
    out["notes"] += written["notes"]
    return out | {"dates": batch, "rebuilt": written["rebuilt"], "lacking": reg.lacking}


@dataclass
class _Registers:
    """What a pass's register days leave for the later steps (``_register_days``)."""

    #: the register days of the pass's meter-days (archive attributes, day status, deltas)
    days: pl.DataFrame | None
    #: the shared days, with the pair of readings around each gap
    shared: pl.DataFrame
    #: the service rows of the meters sharing a gap (the gap chain's patches read them)
    service: pl.DataFrame | None
    #: ``meter_id, multiplier`` (and ``date`` over several dates) valid the day before
    before: pl.DataFrame
    #: meter-days lacking a reading
    lacking: int


def _reg_kw(cfg: VeeConfig) -> dict[str, Any]:
    return {"max_gap_days": cfg.registers.max_gap_days, "rollover_fraction": cfg.registers.rollover_fraction}


def _register_days(ctx: StageContext, lake: Lake, cfg: VeeConfig, batch: list[dt.date]) -> _Registers:
    """Service and register days of the pass: the readings of its dates and the next day in
    full, and further out, a window step at a time, only for the meters lacking one."""
    gap = cfg.registers.max_gap_days
    one = len(batch) == 1
    b0, b1 = batch[0], batch[-1]
    with_before = [b0 - dt.timedelta(days=1), *batch]
    service = md.in_service(archive_for(lake, with_before), with_before).collect()
    in_run = service.filter(pl.col("date") == b0) if one else service.filter(pl.col("date").is_in(batch))
    core = _readings(lake, [*batch, b1 + dt.timedelta(days=1)])
    joined = md.next_day_rows(in_run, core)  # read by both: joined once
    lacking = md.lacking_days(in_run, core, joined)
    lacking_meters = lacking.select("meter_id").unique()
    steps = md.window_steps(gap)
    around = [core.clear()]
    if lacking_meters.height:
        first = steps[0][1]
        near = dates.days(b0 - dt.timedelta(days=first), b0 - dt.timedelta(days=1)) + dates.days(
            b1 + dt.timedelta(days=2), b1 + dt.timedelta(days=1 + first)
        )
        around.append(_readings(lake, near, lacking_meters))
        if len(steps) > 1:
            lo, hi = steps[1]
            seen = pl.concat([core.join(lacking_meters, on="meter_id", how="semi"), *around])
            todo = md.window_todo(lacking, seen, max_gap_days=gap)
            for side, window in (
                ("todo_before", dates.days(b0 - dt.timedelta(days=hi), b0 - dt.timedelta(days=lo))),
                ("todo_after", dates.days(b1 + dt.timedelta(days=1 + lo), b1 + dt.timedelta(days=1 + hi))),
            ):
                meters = todo.filter(side).select("meter_id").unique()
                if meters.height:
                    around.append(_readings(lake, window, meters))
    pairs = md.window_pairs(in_run, core, pl.concat(around), max_gap_days=gap, lacking=lacking, joined=joined)
    del joined
    days_all = md.finish_days(pairs, keep_pairs=True, **_reg_kw(cfg)).collect()
    shared = days_all.filter(pl.col("day_status") == "shared")
    days = days_all.drop(md.PAIR_COLUMNS)
    for d, n_in, n_lack in _per_date(batch, in_run, lacking):
        ctx.progress(f"validate {d}: {n_in:,} meters in service, {n_lack:,} lack a reading")
    before = (
        service.filter(pl.col("date") == b0 - dt.timedelta(days=1)).select("meter_id", "multiplier")
        if one
        else service.filter(pl.col("date") < b1).select(
            "meter_id", (pl.col("date") + pl.duration(days=1)).alias("date"), "multiplier"
        )
    )
    # the county-wide frames go with this function, before the curves are read: the gap
    # chain needs the service rows of the gap meters only
    gap_service = service.filter(pl.col("meter_id").is_in(shared["meter_id"].unique().implode()))
    return _Registers(days=days, shared=shared, service=gap_service, before=before, lacking=lacking.height)


def _vee(lake: Lake, cfg: VeeConfig, batch: list[dt.date], reg: _Registers, held: set[str]) -> VeeDay:
    """VEE of the pass's dates (:func:`~meterlake.transforms.vee.validate_days`; one date:
    ``validate_day``), with the like days and the history window of each."""
    assert reg.days is not None
    days = reg.days
    one = len(batch) == 1
    b0 = batch[0]
    cal = cfg.calendar
    likes = {
        d: estimation.like_dates(
            d,
            like_days=cfg.estimation.like_days,
            window_days=cfg.estimation.like_day_window_days,
            holidays=cal.holidays,
            workdays=cal.workdays,
        )
        for d in batch
    }
    vee_args: dict[str, Any] = {
        "days": days,
        "curves": lake.scan(CURVES, batch),
        "readings": lake.scan(REGISTERS, batch),
        "events": lake.scan(EVENTS, batch),
        "before": reg.before.lazy(),
        "cfg": cfg,
        "outages": lake.scan(OUTAGE_METER_DAYS, batch),
    }
    if one:
        window = dates.days(b0 - dt.timedelta(days=cfg.history.days), b0 - dt.timedelta(days=1))
        history = lake.scan(METER_DAILY, [d for d in window if d.isoformat() in held]).select(
            "meter_id", "date", "kwh", "reverse_kwh", "quality"
        )
        vd = validate_day(
            b0,
            like_curves=lake.scan(CURVES, _present(lake, CURVES, likes[b0])),
            history=history,
            **vee_args,
        )
    else:
        all_likes = sorted({x for d in batch for x in likes[d]})
        present = set(_present(lake, CURVES, all_likes))
        like_map = pl.DataFrame(
            [(d, x) for d in batch for x in likes[d] if x in present],
            schema={"date": pl.Date(), "_like_date": pl.Date()},
            orient="row",
        )
        vd = validate_days(
            batch,
            like_curves=lake.scan(CURVES, sorted(present)),
            like_map=like_map,
            history=_history(lake, cfg, days, held, b0),
            **vee_args,
        )
    return vd


def _write_vee(ctx: StageContext, lake: Lake, batch: list[dt.date], vd: VeeDay) -> dict:
    """vee_findings, interval_edits and collection_daily of every date of the pass."""
    rows: dict[str, int] = {}
    notes: list[str] = []
    sev: Counter[str] = Counter(vd.findings["severity"].to_list())
    parts: dict[str, dict[dt.date, pl.DataFrame]] = {}
    for table, frame in ((VEE_FINDINGS, vd.findings), (INTERVAL_EDITS, vd.edits), (COLLECTION_DAILY, vd.collection)):
        parts[table.name] = _split(frame, batch)
        # the pass's files of a table conformed in one query and written together (the same bytes)
        lake.write_partitions(table, {d: parts[table.name][d] for d in batch})
        rows[table.name] = frame.height
    for d in batch:
        f, e = parts[VEE_FINDINGS.name][d], parts[INTERVAL_EDITS.name][d]
        s = Counter(f["severity"].to_list())
        est = int((e["quality"] == "estimated").sum()) if e.height else 0
        notes.append(
            f"vee {d}: {f.height:,} findings ({s.get('error', 0):,} error, "
            f"{s.get('blocking', 0):,} blocking), {est:,} slots estimated"
        )
        ctx.progress(notes[-1])

    return {"rows": rows, "notes": notes, "severities": sev}


def _write_meter_daily(
    lake: Lake,
    cfg: VeeConfig,
    batch: list[dt.date],
    reg: _Registers,
    vd: VeeDay,
    chain: _Chain,
    held: set[str],
) -> dict:
    """meter_daily of every date of the pass, the gap chain replayed over it, and the days
    before the pass that the chain patches."""
    in_batch = set(batch)
    days, service = reg.days, reg.service
    assert days is not None and service is not None
    reg.days = reg.service = None  # dropped here, before the partitions are written
    daily = md.meter_daily(days.lazy(), vd.curve_days.lazy()).collect()
    final, hit = _replay_chain(
        lake, chain, reg.shared, service, days, daily, vd.curve_days, held, in_batch, _reg_kw(cfg)
    )
    del service, days
    own = _split(METER_DAILY.conform(daily).collect(), batch)
    del daily
    rows = {"meter_daily": 0}
    notes: list[str] = []
    parts: dict[dt.date, pl.DataFrame] = {}
    for d in batch:
        part = own[d]
        if d in hit:
            part = pl.concat([part.join(hit[d], on="meter_id", how="anti"), final.get(d, part.clear())])
        parts[d] = part
        rows["meter_daily"] += part.height
        notes.append(_note_quality(d, part))
    lake.write_partitions(METER_DAILY, parts)  # the pass's files together (the same bytes)
    del parts
    rebuilt = []
    pending = lake.read_pending_dates()
    for d in sorted(set(hit) - in_batch):
        old = METER_DAILY.conform(lake.scan(METER_DAILY, [d])).collect()
        part = pl.concat([old.join(hit[d], on="meter_id", how="anti"), final.get(d, old.clear())])
        changed = lake.write_partition_if_changed(METER_DAILY, d, part, before=partial(lake.add_pending_dates, [d]))
        rows["meter_daily"] += part.height
        why = f"{hit[d].height:,} meters share a gap with a later date"
        if changed or d in pending:
            rebuilt.append(d)
            notes.append(_note_quality(d, part) + f" (rebuilt: {why})")
        else:
            notes.append(_note_quality(d, part) + f" (rebuilt unchanged, not passed on: {why})")
    return {"rows": rows, "notes": notes, "rebuilt": rebuilt}


def _per_date(batch: list[dt.date], in_run: pl.DataFrame, lacking: pl.DataFrame) -> list[tuple[dt.date, int, int]]:
    n_in = dict(in_run.group_by("date").len().rows()) if in_run.height else {}
    n_lack = dict(lacking.group_by("date").len().rows()) if lacking.height else {}
    return [(d, n_in.get(d, 0), n_lack.get(d, 0)) for d in batch]


def _split(frame: pl.DataFrame, batch: list[dt.date]) -> dict[dt.date, pl.DataFrame]:
    """``frame`` per date of ``batch`` (an empty frame for a date without rows)."""
    if len(batch) == 1:  # a pass's frames hold its dates only: no copy
        return {batch[0]: frame}
    return dates.split_by_date(frame, batch)


def _history(lake: Lake, cfg: VeeConfig, days: pl.DataFrame, held: set[str], b0: dt.date) -> pl.LazyFrame:
    """The meter_daily rows the history checks of a pass's dates read: the lake's before
    the pass, and the pass's own (their actual rows, the only ones the checks count, are
    the register differences of the day alone: no gap, no curve)."""
    window = dates.days(b0 - dt.timedelta(days=cfg.history.days), b0 - dt.timedelta(days=1))
    cols = ["meter_id", "date", "kwh", "reverse_kwh", "quality"]
    lake_rows = lake.scan(METER_DAILY, [d for d in window if d.isoformat() in held]).select(cols)
    no_curves = pl.LazyFrame(
        schema={
            "meter_id": pl.String(),
            "date": pl.Date(),
            "curve_slots_read": pl.Int16(),
            "curve_kwh_meter": pl.Float64(),
        }
    )
    own = (
        md.meter_daily(days.filter(pl.col("day_status").is_in(["actual", "rollover"])).lazy(), no_curves)
        .select(cols)
        .collect()
    )
    return pl.concat([lake_rows, own.lazy()], how="vertical_relaxed")


@dataclass
class _Chain:
    """What the dates of a pass do to each other's meter_daily through shared gaps.

    ``gaps[E]``: ``(meter, reading_from, reading_to)`` of the gaps date E shares;
    ``reads[E]``: ``(meter, day)`` whose meter_daily curve figures E reads for the weights
    (the other days of its gaps held in meter_daily at that moment); ``patches[E]``: the
    ``(meter, day)`` rows E rebuilds (those of the reads not validated later in the run).
    """

    order: list[dt.date]
    gaps: dict[dt.date, list[tuple[str, dt.date, dt.date]]]
    reads: dict[dt.date, list[tuple[str, dt.date]]]
    patches: dict[dt.date, list[tuple[str, dt.date]]]


def _gap_chain(shared: pl.DataFrame, held: set[str], in_batch: set[dt.date], run_dates: set[dt.date]) -> _Chain:
    gaps: dict[dt.date, list[tuple[str, dt.date, dt.date]]] = {}
    for m, e, f, t in (
        shared.select("meter_id", "date", "reading_from", "reading_to").unique().sort("date", "meter_id").rows()
    ):
        gaps.setdefault(e, []).append((m, f, t))
    reads: dict[dt.date, list[tuple[str, dt.date]]] = {}
    patches: dict[dt.date, list[tuple[str, dt.date]]] = {}
    for e in sorted(gaps):
        for m, f, t in gaps[e]:
            for d in dates.days(f, t - dt.timedelta(days=1)):
                if d == e or not (d.isoformat() in held or (d in in_batch and d < e)):
                    continue
                reads.setdefault(e, []).append((m, d))
                if not (d in run_dates and d > e):
                    patches.setdefault(e, []).append((m, d))
    return _Chain(order=sorted(gaps), gaps=gaps, reads=reads, patches=patches)


def _history_hazard(lake: Lake, chain: _Chain, b0: dt.date, b1: dt.date) -> dt.date | None:
    """The first date of the pass (before its last) that patches an actual row of a day
    before the pass: day by day, the dates after it read that row patched."""
    before = {(m, d): e for e in chain.order for m, d in chain.patches.get(e, []) if d < b0 and e < b1}
    if not before:
        return None
    days_ = sorted({d for _, d in before})
    actual = (
        lake.scan(METER_DAILY, [d.isoformat() for d in days_])
        .filter(pl.col("meter_id").is_in(sorted({m for m, _ in before})) & (pl.col("quality") == "actual"))
        .select("meter_id", "date")
        .collect()
        .rows()
    )
    hits = [before[(m, d)] for m, d in actual if (m, d) in before]
    return min(hits) if hits else None


def _replay_chain(
    lake: Lake,
    chain: _Chain,
    shared: pl.DataFrame,
    service: pl.DataFrame,
    days: pl.DataFrame,
    daily: pl.DataFrame,
    curve_days: pl.DataFrame,
    held: set[str],
    in_batch: set[dt.date],
    reg_kw: dict[str, Any],
) -> tuple[dict[dt.date, pl.DataFrame], dict[dt.date, pl.DataFrame]]:
    """Replay the gap chain date by date over the gap meters' rows (each meter's dates in
    order; the meters side by side, a round per date of a meter's chain).

    Returns, per day it touches, the rows it leaves (conformed meter_daily rows) and the
    meters whose rows it replaced (a patched meter no longer in service has no row).
    """
    if not chain.order:
        return {}, {}
    meters = sorted({m for e in chain.order for m, _, _ in chain.gaps[e]})
    # the curve figures as meter_daily holds them: the pass's own rows, and the lake's
    own = {
        (m, d): tuple(v)
        for m, d, *v in METER_DAILY.conform(daily.filter(pl.col("meter_id").is_in(meters)))
        .select("meter_id", "date", *_CURVE_COLS)
        .collect()
        .rows()
    }
    lake_days = sorted({d for e in chain.order for _, d in chain.reads.get(e, []) if d.isoformat() in held})
    stored = {
        (m, d): tuple(v)
        for m, d, *v in lake.scan(METER_DAILY, [d.isoformat() for d in lake_days])
        .filter(pl.col("meter_id").is_in(meters))
        .select("meter_id", "date", *_CURVE_COLS)
        .collect()
        .rows()
    }
    # the rows each patch rebuilds: the day's service row with the pair of the gap
    targets = [(e, m, d) for e in chain.order for m, d in chain.patches.get(e, [])]
    rebuilt = _patch_days(lake, targets, shared, service, in_batch, reg_kw)
    own_shared = shared.drop(md.PAIR_COLUMNS)
    written: dict[tuple[str, dt.date], tuple | None] = {}
    frames: list[pl.DataFrame] = []
    hit: dict[dt.date, set[str]] = {}
    schema = {
        "meter_id": pl.String(),
        "date": pl.Date(),
        "curve_slots_read": pl.Int16(),
        "curve_kwh": pl.Float64(),
        "multiplier": pl.Float64(),
    }
    # a meter's gap re-sharing reads and writes that meter's rows only: the chain is replayed
    # in rounds, each meter's n-th date of the chain in round n (dates in order per meter)
    rounds: list[list[tuple[dt.date, str]]] = []
    depth: dict[str, int] = {}
    for e in chain.order:
        for m, _, _ in chain.gaps[e]:
            n = depth.get(m, 0)
            depth[m] = n + 1
            if n == len(rounds):
                rounds.append([])
            rounds[n].append((e, m))
    reads_of: dict[tuple[dt.date, str], list[dt.date]] = {}
    for e in chain.order:
        for m, d in chain.reads.get(e, []):
            reads_of.setdefault((e, m), []).append(d)
    patches_of: dict[tuple[dt.date, str], list[dt.date]] = {}
    for e in chain.order:
        for m, d in chain.patches.get(e, []):
            patches_of.setdefault((e, m), []).append(d)
    gap_cd = curve_days.filter(pl.col("meter_id").is_in(meters))
    for turn in rounds:
        cur = []
        for e, m in turn:
            for d in reads_of.get((e, m), []):
                if (m, d) in written:
                    v = written[(m, d)]
                elif d in in_batch and d < e:
                    v = own.get((m, d))
                else:
                    v = stored.get((m, d))
                if v is not None:
                    cur.append((m, d, *v))
        old = pl.DataFrame(cur, schema=schema, orient="row").select(
            "meter_id",
            "date",
            "curve_slots_read",
            (pl.col("curve_kwh") / pl.col("multiplier")).alias("curve_kwh_meter"),
        )
        at = pl.DataFrame([(m, e) for e, m in turn], schema={"meter_id": pl.String(), "date": pl.Date()}, orient="row")
        curves = pl.concat([old, gap_cd.join(at, on=["meter_id", "date"], how="semi")], how="vertical_relaxed")
        rows_e = [own_shared.join(at, on=["meter_id", "date"], how="semi")]
        if rebuilt.height:
            by = at.rename({"date": "_by"})
            rows_e.append(rebuilt.join(by, on=["meter_id", "_by"], how="semi").drop("_by"))
        out = METER_DAILY.conform(
            md.meter_daily(pl.concat(rows_e, how="diagonal_relaxed").lazy(), curves.lazy())
        ).collect()
        for e, m in turn:
            for d in patches_of.get((e, m), []):
                written[(m, d)] = None
                hit.setdefault(d, set()).add(m)
            hit.setdefault(e, set()).add(m)
        for m, d, *vals in out.select("meter_id", "date", *_CURVE_COLS).rows():
            written[(m, d)] = tuple(vals)
        frames.append(out.with_columns(pl.lit(len(frames), pl.Int32).alias("_seq")))
    last = pl.concat(frames).sort("_seq").unique(subset=["meter_id", "date"], keep="last", maintain_order=True)
    final = {key[0]: part.drop("_seq") for key, part in last.partition_by("date", as_dict=True).items()}
    return final, {d: pl.DataFrame({"meter_id": sorted(ms)}, schema={"meter_id": pl.String()}) for d, ms in hit.items()}


def _patch_days(
    lake: Lake,
    targets: list[tuple[dt.date, str, dt.date]],
    shared: pl.DataFrame,
    service: pl.DataFrame,
    in_batch: set[dt.date],
    reg_kw: dict[str, Any],
) -> pl.DataFrame:
    """The register days of the patched rows ``(E, meter, day)``: the meter's service row
    on the day with the pair of readings around E's gap (column ``_by`` = E)."""
    if not targets:
        return pl.DataFrame()
    t = pl.DataFrame(targets, schema={"_by": pl.Date(), "meter_id": pl.String(), "date": pl.Date()}, orient="row")
    outside = sorted({d for _, _, d in targets if d not in in_batch})
    svc = service.filter(pl.col("date").is_in(sorted(in_batch)))
    if outside:
        svc = pl.concat([svc, md.in_service(archive_for(lake, outside), outside).collect()], how="vertical_relaxed")
    pair = shared.select(
        "meter_id",
        pl.col("date").alias("_by"),
        pl.col("reading_from").alias("from_date"),
        pl.col("reading_to").alias("to_date"),
        *md.PAIR_COLUMNS,
        "total_kwh_from",
        "total_kwh_to",
    )
    j = svc.join(t, on=["meter_id", "date"], how="inner").join(pair, on=["meter_id", "_by"], how="inner")
    return md.finish_days(j.lazy(), **reg_kw).collect()
