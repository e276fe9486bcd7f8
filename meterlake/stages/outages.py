"""Outages: supply interruptions from the meters' events, plan compliance and reliability.

Runs between ingest and validate (validate reads ``outage_meter_days`` so that curve slots
inside an interruption are zero supply, not gaps to estimate). For each date D of the run,
from the clean events of D-1..D+1 (an interruption may cross midnight), the curves of those
days (only for meters whose OFF lacks its ON or ON its OFF) and the archive valid on D:

* ``marts/outage_events/date=D``, ``marts/outage_members/date=D``: area and customer
  interruptions starting on D, matched to plans (:mod:`meterlake.transforms.outages`);
* ``marts/outage_meter_days/date=D``: minutes each meter was without supply;
* ``marts/outage_mapping_suspects/date=D``: customers following another area's outages
  over the window ending D (the loss stage adds them to loss_diagnosis);

and for every month the dates touch, from that month's (and the trailing year's) events:
``reliability_monthly``, ``outage_plan_checks`` and ``frequent_outage_customers`` (also
for a month whose plan checks hold a plan that a later delivery moved to another month:
a plan is checked only where its latest version is). The run's dates are worked in one
pass: each step reads and writes every date at once.
Every partition is a function of the lake's clean tables: a rerun writes identical files.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from ..config import ConfigError
from ..lake import Lake
from ..schemas._base import Table
from ..schemas.archive import LANDING as ARCHIVE_LANDING
from ..schemas.curves import LANDING as CURVES_LANDING
from ..schemas.curves import SLOTS
from ..schemas.events import LANDING as EVENTS_LANDING
from ..schemas.frequent_outage_customers import FREQUENT_OUTAGE_CUSTOMERS
from ..schemas.outage_events import OUTAGE_EVENTS
from ..schemas.outage_mapping_suspects import OUTAGE_MAPPING_SUSPECTS
from ..schemas.outage_members import OUTAGE_MEMBERS
from ..schemas.outage_meter_days import OUTAGE_METER_DAYS
from ..schemas.outage_plan_checks import OUTAGE_PLAN_CHECKS
from ..schemas.outage_plans import LANDING as PLANS_LANDING
from ..schemas.reliability_monthly import RELIABILITY_MONTHLY
from ..transforms import outages as o
from ..transforms.dates import split_by_date
from . import StageContext, StageError, StageResult

ARCHIVE, CURVES, EVENTS, PLANS = ARCHIVE_LANDING.clean, CURVES_LANDING.clean, EVENTS_LANDING.clean, PLANS_LANDING.clean
SERVICE_COLS = ("meter_id", "customer_id", "area_id", "feeder_id", "role", "org_id")


def _span(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _held(lake: Lake, table: Table, days: list[dt.date]) -> list[dt.date]:
    have = set(lake.partitions(table))
    return [d for d in days if d.isoformat() in have]


class Service:
    """Meters in service by date (the archive snapshot valid on each), each snapshot read once."""

    def __init__(self, lake: Lake, cfg: o.OutageConfig) -> None:
        self.lake, self.cfg = lake, cfg
        self.snaps = sorted(lake.partitions(ARCHIVE))
        self._read: dict[str, pl.DataFrame] = {}

    def snapshot(self, day: dt.date) -> pl.DataFrame | None:
        snap = max((s for s in self.snaps if s <= day.isoformat()), default=None)
        if snap is None:
            return None
        if snap not in self._read:
            self._read[snap] = (
                self.lake.scan(ARCHIVE, [snap])
                .select(*SERVICE_COLS)
                .with_columns(pl.col("org_id").replace("", None).fill_null(self.cfg.reliability.default_org))
                .collect()
            )
        return self._read[snap]

    def on(self, dates: list[dt.date], keep: pl.Expr | None = None) -> pl.DataFrame:
        """``date`` + the archive columns for each of ``dates``, the rows ``keep`` selects."""
        # the days by the snapshot valid on each (consecutive: a later day's is the same or later),
        # each snapshot's rows filtered once and repeated a day at a time, in the order of the days
        groups: list[tuple[pl.DataFrame, list[dt.date]]] = []
        for day in sorted(set(dates)):
            snap = self.snapshot(day)
            if snap is None:
                continue
            if groups and groups[-1][0] is snap:
                groups[-1][1].append(day)
            else:
                groups.append((snap, [day]))
        frames = []
        for snap, days in groups:
            rows = (snap if keep is None else snap.filter(keep)).select(*SERVICE_COLS)
            each = pl.int_range(0, len(days) * rows.height, eager=True) // max(rows.height, 1)
            frames.append(
                pl.concat([rows] * len(days)).insert_column(0, pl.Series("date", days, pl.Date()).gather(each))
            )
        if not frames:
            return pl.DataFrame(schema={"date": pl.Date, **dict.fromkeys(SERVICE_COLS, pl.String)})
        return pl.concat(frames)


def plans(lake: Lake) -> pl.DataFrame:
    """Every plan, its latest delivery (a revision moving it to another date included)."""
    return (
        lake.scan(PLANS)
        .sort("delivered_at", "source_file", "source_line")
        .unique("plan_id", keep="last")
        .select(*o.PLAN_COLUMNS)
        .sort("plan_id")
        .collect()
    )


def interruptions_for(lake: Lake, dates: list[dt.date], svc: Service, cfg: o.OutageConfig) -> pl.DataFrame:
    """Meter interruptions starting on ``dates``, from the events of the days around them.

    Other events are the first evidence of supply. The curves (a county-day file is costly
    to decode) are read only for the meters whose lost ON or OFF their area's interruption
    does not cover: meters of an area whose master or customers reported power events too
    are closed by the area interruption they are part of.
    """
    window = _span(min(dates) - dt.timedelta(days=1), max(dates) + dt.timedelta(days=1))
    events = lake.scan(EVENTS, _held(lake, EVENTS, window)).select("meter_id", "event_time", "event_code").collect()
    power = o.power_events(events)
    odd = o.needs_evidence(power)
    no_curves = pl.LazyFrame(schema={"meter_id": pl.String, "date": pl.Date, **dict.fromkeys(SLOTS, pl.Float64)})
    evidence = o.supply_evidence(events.lazy(), no_curves, odd)
    intr = o.meter_interruptions(power, evidence, cfg)
    if odd.len():
        areas = svc.on(window, pl.col("meter_id").is_in(power["meter_id"].unique().implode()))
        lone = o.lone_meters(power, areas, cfg)
        if lone.len():
            # lost events of an interruption no other meter saw: the curves decide (D and D+1)
            days = [*dates, max(dates) + dt.timedelta(days=1)]
            curves = lake.scan(CURVES, _held(lake, CURVES, days)).rename({"data_date": "date"})
            evidence = pl.concat([evidence, o.supply_evidence(pl.LazyFrame(schema=events.schema), curves, lone)])
            intr = o.meter_interruptions(power, evidence, cfg)
    return intr.filter(pl.col("start_time").dt.date().is_in(pl.Series(dates, dtype=pl.Date).implode()))


def run(ctx: StageContext, dates: list[dt.date]) -> StageResult:
    """The run's dates in one pass: each step reads and writes every date at once."""
    result = StageResult(stage="outages")
    if not dates:
        return result
    try:
        cfg = ctx.config("outages", o.OutageConfig)
    except ConfigError as exc:
        raise StageError(f"outages: {exc}") from exc
    dates = sorted(set(dates))
    svc = Service(ctx.lake, cfg)
    plan_rows = plans(ctx.lake)
    events, members = daily_events(ctx, dates, svc, plan_rows, cfg, result)
    write_meter_days(ctx, dates, events, members, svc, result)
    write_mapping_suspects(ctx, dates, svc, cfg, result)
    write_months(ctx, months_to_write(ctx.lake, dates, plan_rows), plan_rows, svc, cfg, result)
    return result


def daily_events(
    ctx: StageContext,
    dates: list[dt.date],
    svc: Service,
    plan_rows: pl.DataFrame,
    cfg: o.OutageConfig,
    result: StageResult,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    lake = ctx.lake
    intr = interruptions_for(lake, dates, svc, cfg)
    # the areas of the meters that went off: their customers count (area interruptions)
    off = svc.on(dates, pl.col("meter_id").is_in(intr["meter_id"].unique().implode()))
    in_areas = svc.on(dates, pl.col("area_id").is_in(off["area_id"].drop_nulls().unique().implode()))
    grouped, members = o.group_interruptions(intr, pl.concat([off, in_areas]).unique(), cfg)
    events = o.match_plans(grouped, plan_rows, cfg).with_columns(pl.col("start_time").dt.date().alias("date"))
    members = members.with_columns(pl.col("start_time").dt.date().alias("date"))
    # an area interruption's date is its own start's; a member may have gone off the day before
    members = members.drop("date").join(events.select("outage_id", "date"), on="outage_id")
    for table, frame in ((OUTAGE_EVENTS, events), (OUTAGE_MEMBERS, members)):
        lake.write_partitions(table, split_by_date(frame, dates))
    real = events.filter(~pl.col("momentary"))
    result.rows |= {"outage_events": events.height, "outage_members": members.height}
    result.notes.append(
        f"outages: {intr.height:,} meter interruptions -> {real.filter(pl.col('level') == 'area').height:,} area, "
        f"{real.filter(pl.col('level') == 'customer').height:,} customer, "
        f"{events.height - real.height:,} momentary; {real.filter(pl.col('cause') == 'fault').height:,} faults"
    )
    ctx.progress(result.notes[-1])
    return events, members


def write_meter_days(
    ctx: StageContext,
    dates: list[dt.date],
    events: pl.DataFrame,
    members: pl.DataFrame,
    svc: Service,
    result: StageResult,
) -> None:
    """``outage_meter_days`` of every date from the run's interruptions at once.

    An interruption that started the day before a date and ran past midnight counts on the
    date too: one of the run's when that day is a date of the run, else read back from the
    lake. Either way a meter's minutes are the union of everything it was off by (its own
    interruption of the date and its area's running on from the day before alike), so a
    date run alone gives what the run of a range gives it.
    """

    def service_of(frame: pl.DataFrame, days: list[dt.date]) -> pl.DataFrame:
        return svc.on(days, pl.col("area_id").is_in(frame["area_id"].drop_nulls().unique().implode()))

    in_run = set(dates)
    before = sorted({d - dt.timedelta(days=1) for d in dates} - in_run)
    if before:
        # the interruptions of the days before the run's first dates running past midnight
        carried = (
            ctx.lake.scan(OUTAGE_EVENTS, before)
            .filter(pl.col("end_time").is_null() | (pl.col("end_time").dt.date() > pl.col("date")))
            .collect()
        )
        if carried.height:
            carried_members = (
                ctx.lake.scan(OUTAGE_MEMBERS, before)
                .join(carried.lazy().select("outage_id"), on="outage_id", how="semi")
                .collect()
            )
            events = pl.concat([events, carried], how="diagonal_relaxed")
            members = pl.concat([members, carried_members], how="diagonal_relaxed")
    parts = split_by_date(o.meter_days(events, members, service_of(events, sorted(in_run | set(before)))), dates)
    ctx.lake.write_partitions(OUTAGE_METER_DAYS, {day: parts[day] for day in dates})
    result.rows["outage_meter_days"] = result.rows.get("outage_meter_days", 0) + sum(parts[d].height for d in dates)


def write_mapping_suspects(
    ctx: StageContext, dates: list[dt.date], svc: Service, cfg: o.OutageConfig, result: StageResult
) -> None:
    """``outage_mapping_suspects`` of every date (each the window ending on it), in one pass."""
    lake = ctx.lake
    back = dt.timedelta(days=cfg.mapping.window_days - 1)
    # the windows of all the dates, read once (every partition is written by now)
    held = _held(lake, OUTAGE_EVENTS, _span(dates[0] - back, dates[-1]))
    events = lake.scan(OUTAGE_EVENTS, held).collect()
    members = lake.scan(OUTAGE_MEMBERS, held).collect()
    alone = events.filter(pl.col("level") == "customer")["meter_id"].unique().implode()
    customers = svc.on(dates, pl.col("meter_id").is_in(alone) & (pl.col("role") == "customer"))
    found = o.mapping_suspects_at(events, members, customers, dates, cfg)
    lake.write_partitions(OUTAGE_MAPPING_SUSPECTS, split_by_date(found, dates))
    result.rows["outage_mapping_suspects"] = result.rows.get("outage_mapping_suspects", 0) + found.height


def months_to_write(lake: Lake, dates: list[dt.date], plan_rows: pl.DataFrame) -> list[str]:
    """The months of ``dates``, and those whose plan checks hold a plan that a later delivery
    moved to another month (or withdrew): a plan is checked only where its latest version is."""
    months = {d.strftime("%Y-%m") for d in dates}
    held = lake.partitions(OUTAGE_PLAN_CHECKS)
    if held:
        checked = lake.scan(OUTAGE_PLAN_CHECKS, held).select("plan_id", "month").collect()
        now = plan_rows.select("plan_id", pl.col("planned_start").dt.strftime("%Y-%m").alias("_now"))
        stale = checked.join(now, on="plan_id", how="left").filter(pl.col("_now").ne_missing(pl.col("month")))
        months |= set(stale["month"].to_list())
    return sorted(months)


def _month_days(month: str) -> list[dt.date]:
    first = dt.date.fromisoformat(f"{month}-01")
    return _span(first, (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1))


def _affected(svc: Service, events: pl.DataFrame) -> pl.DataFrame:
    """Customers interrupted by ``events`` (the service rows of their areas only)."""
    areas = events["area_id"].drop_nulls().unique().implode()
    return o.affected_customers(events, svc.on(sorted(set(events["date"].to_list())), pl.col("area_id").is_in(areas)))


def write_months(
    ctx: StageContext,
    months: list[str],
    plan_rows: pl.DataFrame,
    svc: Service,
    cfg: o.OutageConfig,
    result: StageResult,
) -> None:
    lake = ctx.lake
    held_events = sorted(dt.date.fromisoformat(d) for d in lake.partitions(OUTAGE_EVENTS))
    horizon = dt.datetime.combine(held_events[-1] + dt.timedelta(days=1), dt.time()) if held_events else None
    if not months:
        return

    def trailing(days: list[dt.date]) -> dt.date:
        first = days[-1].replace(day=1)
        for _ in range(cfg.frequent.months - 1):
            first = (first - dt.timedelta(days=1)).replace(day=1)
        return first

    # every month's events, those around it and its trailing year, read once
    span = _span(trailing(_month_days(months[0])), _month_days(months[-1])[-1] + dt.timedelta(days=1))
    held = set(_held(lake, OUTAGE_EVENTS, span))
    every = lake.scan(OUTAGE_EVENTS, sorted(held)).collect()

    def events_of(days: list[dt.date]) -> pl.DataFrame:
        return every.filter(pl.col("date").is_between(days[0], days[-1]))

    for month in months:
        days = _month_days(month)
        events = events_of(days)
        affected = _affected(svc, events)
        served = svc.on([days[-1]], pl.col("role") == "customer")
        rel = o.reliability(affected, served, month)
        lake.write_partition(RELIABILITY_MONTHLY, month, rel)

        # plans of the month, against every event matched to them (a plan may run past month end)
        month_plans = plan_rows.filter(pl.col("planned_start").dt.strftime("%Y-%m") == month)
        around = _span(days[0] - dt.timedelta(days=1), days[-1] + dt.timedelta(days=1))
        matched = events_of(around)
        plan_days = sorted(set(month_plans["planned_start"].dt.date().to_list()))
        plan_svc = svc.on(plan_days, pl.col("feeder_id").is_in(month_plans["feeder_id"].unique().implode()))
        checks = o.plan_checks(month_plans, matched, plan_svc, horizon, cfg).with_columns(pl.lit(month).alias("month"))
        lake.write_partition(OUTAGE_PLAN_CHECKS, month, checks)

        # the trailing months: customers interrupted too often
        year = events_of(_span(trailing(days), days[-1]))
        frequent = o.frequent_customers(_affected(svc, year), month, cfg)
        lake.write_partition(FREQUENT_OUTAGE_CUSTOMERS, month, frequent)
        for table, frame in (
            ("reliability_monthly", rel),
            ("outage_plan_checks", checks),
            ("frequent_outage_customers", frequent),
        ):
            result.rows[table] = result.rows.get(table, 0) + frame.height
        executed = checks.filter(pl.col("status") == "executed").height
        deviating = checks.filter(pl.col("deviations") != "").height
        result.notes.append(
            f"outages {month}: {checks.height} plan(s), {executed} executed, {deviating} with deviations; "
            f"{frequent.height} frequent-outage customer(s)"
        )
