"""The billing stage: bills_monthly, prepay_daily, prepay_findings (recovery: the receivables stage).

Reads the ``meter_daily`` mart and the clean ``purchases`` table; writes:

* ``bills_monthly`` for every month the dates touch, from all meter_daily days of that
  month the lake holds (month-to-date for the current month), with annual tiers
  cumulated from the first day the lake holds for the year. Because tiers cumulate,
  a month's bills depend on every earlier day of its year: later months of the same
  year that already have bills are rebuilt too.
* ``prepay_daily`` and ``prepay_findings`` for each date (that meter_daily holds).
  Balances are running sums from each meter's first reading, so every later date
  that already has a prepay_daily partition is rebuilt as well. The balances start
  from the prepay_daily partition of the last day held before the month of the first
  date rebuilt (a checkpoint, kept up to date by that rule), or, when there is none,
  from the first day the lake holds (:func:`prepay_window`). Either way a rerun of
  the same dates reads the same inputs and writes identical files.
* Annual tiers start from the customer's kWh of the earlier months of the year:
  their bills where they are billed, else meter_daily (:func:`year_opening`).

Every write replaces one partition atomically (:meth:`Lake.write_partition`).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from meterlake.config import ConfigError
from meterlake.lake import Lake
from meterlake.schemas.bills_monthly import BILLS_MONTHLY
from meterlake.schemas.loss_diagnosis import LOSS_DIAGNOSIS
from meterlake.schemas.meter_daily import METER_DAILY
from meterlake.schemas.prepay_daily import PREPAY_DAILY
from meterlake.schemas.prepay_findings import PREPAY_FINDINGS
from meterlake.schemas.purchases import LANDING as PURCHASES
from meterlake.transforms.billing import (
    DAY_COLUMNS,
    BillingConfig,
    bill_segments,
    billable_days,
    multiplier_suspects,
    price_days,
    stable_sum,
)
from meterlake.transforms.dates import MonthKey as Month
from meterlake.transforms.dates import iso as _iso
from meterlake.transforms.dates import month_key as _month
from meterlake.transforms.dates import month_label as _label
from meterlake.transforms.dates import parse_dates as _dates
from meterlake.transforms.dates import split_by_date
from meterlake.transforms.prepay import (
    daily_net_purchases,
    prepay_balances,
    purchase_findings,
    purchase_ledger,
    unmatched_transactions,
)
from meterlake.transforms.tariffs import TariffBook, price_calendar

from . import StageContext, StageError, StageResult

STAGE = "billing"


def months_to_bill(dates: list[dt.date], billed: list[Month]) -> list[Month]:
    """Months the dates touch, plus later months of the same years already billed."""
    touched = {_month(d) for d in dates}
    later = {m for m in billed for t in touched if m[0] == t[0] and m > t}
    return sorted(touched | later)


def year_opening(lake: Lake, held: list[dt.date], month: Month) -> pl.LazyFrame | None:
    """Per customer, the kWh of ``month``'s year before the month (annual tiers).

    Months already billed give their bills' ``kwh_total`` (a few hundred thousand rows
    a month instead of a scan of every earlier day); months held but not billed are
    summed from meter_daily. Bills are rebuilt whenever an earlier day of their year
    is, so the two agree.
    """
    earlier = sorted({_month(d) for d in held if d.year == month[0] and _month(d) < month})
    if not earlier:
        return None
    billed = set(lake.partitions(BILLS_MONTHLY))
    parts = []
    from_bills = [_label(m) for m in earlier if _label(m) in billed]
    if from_bills:
        parts.append(lake.scan(BILLS_MONTHLY, from_bills).select("customer_id", kwh=pl.col("kwh_total")))
    from_days = [d for d in held if _month(d) in earlier and _label(_month(d)) not in billed]
    if from_days:
        parts.append(billable_days(lake.scan(METER_DAILY, _iso(from_days))).select("customer_id", "kwh"))
    return (
        pl.concat(parts)
        .group_by("customer_id")
        .agg(kwh_before=stable_sum(pl.col("kwh").fill_null(0.0)))
        .with_columns(year=pl.lit(month[0], pl.Int32))
    )


def prepay_window(lake: Lake, held: list[dt.date], rebuild: list[dt.date]) -> tuple[list[dt.date], dt.date | None]:
    """The meter_daily days to price for prepay balances, and the checkpoint day.

    Balances are running sums. When the last day held before the month of the first
    date to rebuild has a prepay_daily partition, its balances are the opening
    (checkpoint) and only the days from that month's first day are priced; that
    partition is up to date because rebuilding any day rebuilds every later day that
    has a partition. Otherwise every day from the first the lake holds is priced.
    """
    month_start = rebuild[0].replace(day=1)
    before = [d for d in held if d < month_start]
    checkpoint = before[-1] if before else None
    if checkpoint is not None and checkpoint.isoformat() not in lake.partitions(PREPAY_DAILY):
        checkpoint = None
    start = month_start if checkpoint is not None else held[0]
    return [d for d in held if start <= d <= rebuild[-1]], checkpoint


def month_suspects(lake: Lake, month: Month) -> pl.DataFrame:
    """Multiplier suspects of the line-loss diagnosis in windows ending in ``month``
    (the loss stage runs first); empty when the lake holds no diagnosis."""
    days = [d for d in lake.partitions(LOSS_DIAGNOSIS) if d[:7] == _label(month)]
    return multiplier_suspects(lake.scan(LOSS_DIAGNOSIS, days).select("date", "kind", "meter_id")).collect()


def run(ctx: StageContext, dates: list[dt.date]) -> StageResult:
    try:
        cfg = ctx.config("billing", BillingConfig)
        book = ctx.config("tariffs", TariffBook)
    except ConfigError as exc:
        raise StageError(f"billing: {exc}") from exc
    result = StageResult(stage=STAGE)
    held = _dates(ctx.lake.partitions(METER_DAILY))
    if not held or not dates:
        result.notes.append("no meter_daily days to bill")
        return result
    calendar = price_calendar(book, min(held), max(held))
    months = write_bills(ctx, dates, held, calendar, cfg, result)
    rebuilt = write_prepay(ctx, dates, held, calendar, cfg, result)
    result.dates = sorted(set(rebuilt) - set(dates))
    result.details["months"] = [_label(m) for m in months]
    return result


def write_bills(
    ctx: StageContext,
    dates: list[dt.date],
    held: list[dt.date],
    calendar: pl.DataFrame,
    cfg: BillingConfig,
    result: StageResult,
) -> list[Month]:
    """bills_monthly of every month to bill (:func:`months_to_bill`); the months written."""
    lake = ctx.lake
    billed = [(int(v[:4]), int(v[5:7])) for v in lake.partitions(BILLS_MONTHLY)]
    bill_rows = exceptions = 0
    written: list[Month] = []
    for m in months_to_bill(dates, billed):
        in_month = [d for d in held if _month(d) == m]
        if not in_month:
            result.notes.append(f"bills {_label(m)}: no meter_daily days held; not billed")
            continue
        ctx.progress(f"billing: bills {_label(m)} ({len(in_month)} days)")
        bills = bill_month(lake, m, in_month, held, calendar, cfg)
        if bills.is_empty() and m not in billed:
            result.notes.append(f"bills {_label(m)}: no customer kWh in the days held; not billed")
            continue
        lake.write_partition(BILLS_MONTHLY, _label(m), bills)
        bill_rows += bills.height
        exceptions += int((bills["status"] == "held").sum())
        result.notes.extend(unpriced_note(m, bills))
        written.append(m)
    result.rows[BILLS_MONTHLY.name] = bill_rows
    if exceptions:
        result.notes.append(f"{exceptions} bill(s) held for review (bills_monthly.status = held)")
    return written


def bill_month(
    lake: Lake, m: Month, in_month: list[dt.date], held: list[dt.date], calendar: pl.DataFrame, cfg: BillingConfig
) -> pl.DataFrame:
    """The month's bills from its meter_daily days, annual tiers from :func:`year_opening`."""
    priced = price_days(
        billable_days(lake.scan(METER_DAILY, _iso(in_month))),
        calendar,
        year_opening(lake, held, m),
        cfg.bill.tou_fallback_register,
    )
    return bill_segments(priced, cfg.bill, month_suspects(lake, m)).collect()


def unpriced_note(m: Month, bills: pl.DataFrame) -> list[str]:
    """A note naming the tariffs of the month's bills without an amount, if any."""
    unpriced = bills.filter(pl.col("amount_yuan").is_null())
    if not unpriced.height:
        return []
    ids = sorted(str(t) for t in unpriced["tariff_id"].unique().to_list())
    return [
        f"bills {_label(m)}: {unpriced.height} without an amount: no tariff version in "
        f"tariffs.toml for tariff_id {', '.join(ids)} on some day"
    ]


def write_prepay(
    ctx: StageContext,
    dates: list[dt.date],
    held: list[dt.date],
    calendar: pl.DataFrame,
    cfg: BillingConfig,
    result: StageResult,
) -> list[dt.date]:
    """prepay_daily and prepay_findings of the dates and of every later day already written
    (balances are running sums); the days rebuilt."""
    lake = ctx.lake
    held_set = set(held)
    first = min(dates)
    later = [d for d in _dates(lake.partitions(PREPAY_DAILY)) if d > first and d in held_set]
    rebuild = sorted({d for d in dates if d in held_set} | set(later))
    result.rows[PREPAY_DAILY.name] = result.rows[PREPAY_FINDINGS.name] = 0
    if not rebuild:
        return rebuild
    ctx.progress(f"billing: prepay balances {rebuild[0]}..{rebuild[-1]} ({len(rebuild)} days)")
    window, checkpoint = prepay_window(lake, held, rebuild)
    if checkpoint is not None:
        result.details["prepay_checkpoint"] = checkpoint.isoformat()
    balances, findings = prepay_days(lake, held, window, checkpoint, rebuild, calendar, cfg)
    lake.write_partitions(PREPAY_DAILY, split_by_date(balances, rebuild))
    lake.write_partitions(PREPAY_FINDINGS, split_by_date(findings, rebuild), sort_by=["rule", "customer_id", "txn_id"])
    result.rows[PREPAY_DAILY.name], result.rows[PREPAY_FINDINGS.name] = balances.height, findings.height
    result.details["prepay_status"] = {str(k): int(v) for k, v in balances["status"].value_counts().iter_rows()}
    result.details["prepay_findings"] = {str(k): int(v) for k, v in findings["rule"].value_counts().iter_rows()}
    if later:
        result.notes.append(
            f"prepay balances carried forward: {len([d for d in later if d not in dates])} later day(s) rebuilt"
        )
    return rebuild


def prepay_days(
    lake: Lake,
    held: list[dt.date],
    window: list[dt.date],
    checkpoint: dt.date | None,
    rebuild: list[dt.date],
    calendar: pl.DataFrame,
    cfg: BillingConfig,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The prepay customers' balances and the purchase findings of the days to ``rebuild``,
    priced over ``window`` from the ``checkpoint`` day's balances (if any)."""
    md = lake.scan(METER_DAILY, _iso(window))
    prepay_customers = md.filter(pl.col("prepay") == 1).select("customer_id").unique()
    days = (
        md.filter((pl.col("role") == "customer") & pl.col("customer_id").is_not_null())
        .join(prepay_customers, on="customer_id", how="semi")
        .select(*DAY_COLUMNS, "remaining_yuan")
    )
    opening_kwh = opening_balance = None
    if checkpoint is not None:
        opening_kwh = year_opening(lake, held, _month(window[0]))
        opening_balance = lake.scan(PREPAY_DAILY, [checkpoint.isoformat()])
    priced = price_days(days, calendar, opening_kwh, cfg.bill.tou_fallback_register).filter(pl.col("prepay") == 1)
    ledger = purchase_ledger(lake.scan(PURCHASES.clean)).collect().lazy()
    wanted = pl.col("date").is_in(rebuild)
    balances = (
        prepay_balances(priced, daily_net_purchases(ledger), cfg.prepay, opening_balance).filter(wanted).collect()
    )
    findings = pl.concat(
        [
            purchase_findings(ledger).filter(wanted),
            unmatched_transactions(ledger.filter(wanted), balances.lazy().select("customer_id", "meter_id", "date")),
        ]
    ).collect()
    return balances, findings
