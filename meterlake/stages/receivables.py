"""The receivables stage: receivables_monthly, recovery_monthly, customer_credit_monthly, dunning_list.

Runs after billing. Reads bills_monthly, the clean payments, prepay_daily, the archive
and the clean inspections; writes, for every month from the first the dates touch to
the last the lake holds bills or payments for:

* ``receivables_monthly`` per ledger month (bills issued in it, payments dated in it).
  Arrears are running totals, so every later month is rebuilt too; a restated bill
  shows in ``restated_yuan`` against the amount the partition held before.
* ``recovery_monthly`` per consumption month (post-paid bills collected by their due
  date in the next month, prepay customers by their month-end balance).
* ``customer_credit_monthly`` per ledger month, over the trailing window.
* ``dunning_list`` on the day after each due date and on each month's last day, up to
  the day after the last day the lake holds.

The whole history of bills and payments is read: settlement is FIFO from the first
bill. Every write replaces one partition atomically.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import partial
from typing import Final

import polars as pl

from meterlake.config import ConfigError
from meterlake.lake import Lake
from meterlake.schemas.archive import LANDING as ARCHIVE
from meterlake.schemas.bills_monthly import BILLS_MONTHLY
from meterlake.schemas.customer_credit_monthly import CUSTOMER_CREDIT_MONTHLY
from meterlake.schemas.dunning_list import DUNNING_LIST
from meterlake.schemas.inspections import LANDING as INSPECTIONS
from meterlake.schemas.meter_daily import METER_DAILY
from meterlake.schemas.payments import LANDING as PAYMENTS
from meterlake.schemas.prepay_daily import PREPAY_DAILY
from meterlake.schemas.receivables_monthly import RECEIVABLES_MONTHLY
from meterlake.schemas.recovery_monthly import RECOVERY_MONTHLY
from meterlake.transforms.billing import BillingConfig
from meterlake.transforms.credit import credit_month, dunning, list_dates
from meterlake.transforms.dedup import archive_valid_on
from meterlake.transforms.receivables import (
    ReceivablesConfig,
    bill_schedule,
    bill_status_at_due,
    month_bounds,
    payment_ledger,
    receivables_month,
    shift_month,
)
from meterlake.transforms.recovery import recovery

from . import StageContext, StageError, StageResult

STAGE = "receivables"

#: the engine for the plans of many joins over already collected frames (the ledger, the
#: month's receivables, the dunning lists): on a county month (500k customers) the
#: in-memory engine took about half the CPU time of the streaming one on this project's
#: 2-core machine; the other plans scan files and stay on the default (streaming) engine
IN_MEMORY: Final = "in-memory"


def _month(d: dt.date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def _months(first: str, last: str) -> list[str]:
    out, m = [], first
    while m <= last:
        out.append(m)
        m = shift_month(m, 1)
    return out


def customer_key(*frames: pl.LazyFrame) -> pl.Enum:
    """An enum of every customer_id in ``frames``, in string order.

    Cast to it, customer_id joins, groups and sorts on integer codes, in the same order
    as the strings; the marts' contract casts it back to a string.
    """
    ids = pl.concat([f.select(pl.col("customer_id").cast(pl.String)) for f in frames]).drop_nulls().unique()
    return pl.Enum(ids.collect().to_series().sort())


def scope_on(archive: pl.LazyFrame, day: dt.date) -> pl.LazyFrame:
    """customer_id, feeder_id, org_id of the archive valid on ``day`` (a customer's first meter)."""
    valid = archive_valid_on(archive, day).filter(pl.col("customer_id").is_not_null())
    org = pl.col("org_id") if "org_id" in archive.collect_schema().names() else pl.lit(None, pl.String)
    return (
        valid.with_columns(org_id=org.cast(pl.String).replace("", None))
        .group_by("customer_id")
        .agg(pl.col("feeder_id", "org_id").sort_by("meter_id").first())
    )


def thefts_in(lake: Lake, archive: pl.LazyFrame, first: dt.date, last: dt.date) -> pl.LazyFrame:
    """customer_id of the meters an inspection found stealing (窃电) between the dates."""
    if not lake.partitions(INSPECTIONS.clean):
        return pl.LazyFrame(schema={"customer_id": pl.String})
    meters = archive.filter(pl.col("customer_id").is_not_null()).select("meter_id", "customer_id").unique()
    return (
        lake.scan(INSPECTIONS.clean)
        .filter((pl.col("outcome") == "theft") & pl.col("inspection_date").is_between(first, last))
        .join(meters, on="meter_id")
        .select("customer_id")
        .unique()
    )


def prepay_below_zero(lake: Lake, held: list[str], first: dt.date, last: dt.date) -> pl.LazyFrame:
    """customer_id, days: prepay days of the window with a computed balance below zero
    (``held``: the prepay_daily partitions)."""
    days = [d for d in held if first.isoformat() <= d <= last.isoformat()]
    if not days:
        return pl.LazyFrame(schema={"customer_id": pl.String, "days": pl.Int32})
    return (
        lake.scan(PREPAY_DAILY, days)
        .filter(pl.col("balance_yuan") < 0)
        .group_by("customer_id")
        .agg(days=pl.col("date").n_unique().cast(pl.Int32))
    )


@dataclass
class Books:
    """What every step of a run reads: the lake, the configs, the customer key, and the
    bills, their schedule, the payment ledger and each bill's status at its due date."""

    lake: Lake
    cfg: ReceivablesConfig
    billing: BillingConfig
    #: the last day the lake holds payments or meter_daily for, and payments alone for
    as_of: dt.date
    payments_as_of: dt.date | None
    archive: pl.LazyFrame
    #: the customer key's engine-side type (see :func:`customer_key`)
    key_type: pl.DataTypeExpr
    bills: pl.LazyFrame
    schedule: pl.LazyFrame
    ledger: pl.LazyFrame
    status: pl.LazyFrame
    #: the prepay_daily partitions (the stage reads them, never writes them)
    prepay_days: list[str]
    #: the archive's snapshot partitions (the stage never writes the archive)
    snapshots: list[str]
    #: :meth:`scope` of each snapshot read so far
    scopes: dict[tuple[str, ...], pl.LazyFrame] = field(default_factory=dict)

    def snapshot_on(self, day: dt.date) -> list[str]:
        """The archive partition valid on ``day``: the latest dated on or before it (none before the first)."""
        return [s for s in self.snapshots if s <= day.isoformat()][-1:]

    def archive_on(self, day: dt.date) -> pl.LazyFrame:
        """The archive snapshot valid on ``day`` (the latest dated on or before it) read alone:
        what :func:`archive_valid_on` keeps of the whole archive, without reading every
        snapshot the lake has kept (two a month grow to dozens)."""
        return self.lake.scan(ARCHIVE.clean, self.snapshot_on(day))

    def scope(self, day: dt.date) -> pl.LazyFrame:
        """:func:`scope_on` ``day``, keyed and collected, once per archive snapshot.

        Each snapshot is whole, so the scope valid on any day is that of the snapshot valid
        on it, whatever the day: a ledger month to date and the recovery of the same month
        (its last day) share one (500k customers grouped: ~0.4 s of CPU on a county)."""
        snapshot = tuple(self.snapshot_on(day))
        if snapshot not in self.scopes:
            self.scopes[snapshot] = self.keyed(scope_on(self.archive_on(day), day)).collect().lazy()
        return self.scopes[snapshot]

    def keyed(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """``frame`` with customer_id cast to the key: a join needs both sides alike."""
        return _keyed(frame, self.key_type)


def _keyed(frame: pl.LazyFrame, key_type: pl.DataTypeExpr) -> pl.LazyFrame:
    return frame.with_columns(pl.col("customer_id").cast(key_type))


def run(ctx: StageContext, dates: list[dt.date]) -> StageResult:
    try:
        cfg = ctx.config("receivables", ReceivablesConfig)
        billing = ctx.config("billing", BillingConfig)
    except ConfigError as exc:
        raise StageError(f"receivables: {exc}") from exc
    result = StageResult(stage=STAGE)
    lake = ctx.lake
    bill_months = lake.partitions(BILLS_MONTHLY)
    if not bill_months or not dates:
        result.notes.append("no bills to follow")
        return result
    pay_days = lake.partitions(PAYMENTS.clean)
    held_days = lake.partitions(METER_DAILY)
    as_of = dt.date.fromisoformat(max([*pay_days, *held_days[-1:]]))
    start = max(_month(min(dates)), bill_months[0])
    # a bill is issued the month after; months past the data are not ledgered
    ledger_months = _months(start, _month(as_of))

    ctx.progress("receivables: bills and payments")
    books = open_books(lake, cfg, billing, start, as_of, pay_days)
    rows = {RECEIVABLES_MONTHLY.name: 0, CUSTOMER_CREDIT_MONTHLY.name: 0, DUNNING_LIST.name: 0}
    grades: dict[str, int] = {}
    for m in ledger_months:
        ctx.progress(f"receivables: {m}")
        for name, n in ledger_month(books, m, grades).items():
            rows[name] += n
    rows[RECOVERY_MONTHLY.name] = 0
    for m in [b for b in bill_months if b >= shift_month(start, -1)]:
        rows[RECOVERY_MONTHLY.name] += recovery_month(books, m, result.notes)
    result.rows = rows
    result.details = {"ledger_months": ledger_months, "credit_grades": dict(sorted(grades.items()))}
    if not pay_days:
        result.notes.append("no payments in the lake: every post-paid bill is unpaid")
    return result


def open_books(
    lake: Lake, cfg: ReceivablesConfig, billing: BillingConfig, start: str, as_of: dt.date, pay_days: list[str]
) -> Books:
    """The customer key; the bills, their schedule, the payment ledger and each bill's status
    at its due date, each read and keyed once."""
    archive = lake.scan(ARCHIVE.clean)
    # the receivables already written that the months read back (restatements, credit windows)
    read_back = [
        m for m in lake.partitions(RECEIVABLES_MONTHLY) if m >= shift_month(start, 1 - cfg.credit.window_months)
    ]
    key = customer_key(
        archive, lake.scan(BILLS_MONTHLY), lake.scan(PAYMENTS.clean), lake.scan(RECEIVABLES_MONTHLY, read_back)
    )
    # the enum converted to its engine-side type once: a cast to the pl.Enum itself converts
    # its categories again each time (about 0.2 s a cast with a county's 500k customers)
    key_type = key.to_dtype_expr()

    keyed = partial(_keyed, key_type=key_type)

    # the bills' columns the transforms read, read and keyed once
    used = ["month", "customer_id", "period_end", "area_id", "customer_class", "prepay", "amount_yuan", "status"]
    bills = keyed(lake.scan(BILLS_MONTHLY).select(used)).collect().lazy()
    schedule = bill_schedule(bills, cfg.calendar).collect(engine=IN_MEMORY).lazy()
    ledger = (
        payment_ledger(keyed(lake.scan(PAYMENTS.clean))).collect(engine=IN_MEMORY).lazy()
        if pay_days
        else payment_ledger(keyed(pl.LazyFrame(schema={c.name: c.dtype for c in PAYMENTS.clean.columns})))
    )
    status = bill_status_at_due(schedule, ledger).collect(engine=IN_MEMORY).lazy()
    return Books(
        lake=lake,
        cfg=cfg,
        billing=billing,
        as_of=as_of,
        payments_as_of=dt.date.fromisoformat(pay_days[-1]) if pay_days else None,
        archive=archive,
        key_type=key_type,
        bills=bills,
        schedule=schedule,
        ledger=ledger,
        status=status,
        prepay_days=lake.partitions(PREPAY_DAILY),
        snapshots=lake.partitions(ARCHIVE.clean),
    )


def ledger_month(books: Books, m: str, grades: dict[str, int]) -> dict[str, int]:
    """Ledger month ``m``: receivables_monthly, customer_credit_monthly (its grades counted
    into ``grades``) and the month's dunning lists; the rows written per table."""
    lake, cfg = books.lake, books.cfg
    first, month_end = month_bounds(m)
    end = min(month_end, books.as_of)
    scope = books.scope(end)
    previous = books.keyed(lake.scan(RECEIVABLES_MONTHLY, [m])) if m in lake.partitions(RECEIVABLES_MONTHLY) else None
    rec = receivables_month(books.schedule, books.ledger, m, cfg, scope, previous, books.as_of).collect(
        engine=IN_MEMORY
    )
    lake.write_partition(RECEIVABLES_MONTHLY, m, rec)
    rows = {RECEIVABLES_MONTHLY.name: rec.height}

    window = _months(shift_month(m, -(cfg.credit.window_months - 1)), m)
    w_first = month_bounds(window[0])[0]
    written = set(lake.partitions(RECEIVABLES_MONTHLY))
    held_rec = [w for w in window if w in written]
    credit = credit_month(
        m,
        books.bills.filter(pl.col("month").is_in(window)),
        books.status.filter(pl.col("due_date").is_between(w_first, end)),
        books.keyed(lake.scan(RECEIVABLES_MONTHLY, held_rec)),
        books.keyed(prepay_below_zero(lake, books.prepay_days, w_first, end)),
        books.keyed(thefts_in(lake, books.archive, w_first, end)),
        cfg,
    ).collect()
    lake.write_partition(CUSTOMER_CREDIT_MONTHLY, m, credit)
    rows[CUSTOMER_CREDIT_MONTHLY.name] = credit.height
    for g, n in credit["credit_grade"].value_counts().iter_rows():
        grades[str(g)] = grades.get(str(g), 0) + int(n)

    rows[DUNNING_LIST.name] = 0
    for day in list_dates(first, month_end, cfg.calendar.due_day):
        if day > books.as_of + dt.timedelta(days=1):
            continue
        listed = dunning(day, books.schedule, books.ledger, books.keyed(credit.lazy()), scope, cfg).collect(
            engine=IN_MEMORY
        )
        lake.write_partition(DUNNING_LIST, day.isoformat(), listed)
        rows[DUNNING_LIST.name] += listed.height
    return rows


def recovery_month(books: Books, m: str, notes: list[str]) -> int:
    """recovery_monthly of consumption month ``m`` (a unit below its target is noted); its rows."""
    lake, cfg = books.lake, books.cfg
    first, end = month_bounds(m)
    due = (end + dt.timedelta(days=1)).replace(day=cfg.calendar.due_day)
    days = [d for d in books.prepay_days if first.isoformat() <= d <= end.isoformat()]
    prepay_month = books.keyed(
        lake.scan(PREPAY_DAILY, days) if days else pl.LazyFrame(schema={c.name: c.dtype for c in PREPAY_DAILY.columns})
    )
    rec = recovery(
        books.bills.filter(pl.col("month") == m),
        prepay_month,
        books.status,
        books.scope(end),
        m,
        due,
        books.payments_as_of,
        books.billing.prepay,
        cfg.recovery,
    ).collect()
    lake.write_partition(RECOVERY_MONTHLY, m, rec)
    below = rec.filter((pl.col("scope") == "org") & pl.col("below_target").fill_null(False))
    for r in below.iter_rows(named=True):
        notes.append(
            f"recovery {m} of unit {r['scope_id']}: {r['recovery_rate']:.2%} below the target "
            f"{r['target_rate']:.0%}" + ("" if r["postpaid_final"] else " (before the due date: not final)")
        )
    return rec.height
