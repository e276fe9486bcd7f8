"""Post-paid receivables (应收电费): settlement, arrears, aging, late fees. Pure polars.

CONTRACT v2 §1 receivables: a month's bill is issued on ``issue_day`` of the next month
and due at the end of ``due_day``; a payment settles the bill it names, else the oldest
open bill first; any excess is a credit (预收) that settles later bills as they are
issued; each day after its due date a bill accrues a late fee (违约金) on its part still
unpaid at the end of that day.

No loop over rows: the state of a customer's account at the end of any day is a closed
form of cumulative sums. With bills ``1..n`` issued by day ``t`` (in month order),
``P(t)`` the net payments made by ``t`` and ``c_k(t) = clip(S_k(t), 0, A_k)`` the part of
bill ``k`` settled by payments naming it (``S_k`` their running sum, ``A_k`` the bill),
FIFO settlement of the rest gives, for every ``m``::

    unpaid(bills 1..m at t) = max(0, B_m - P(t) + Σ_{k > m, issued by t} c_k(t))

where ``B_m`` is the cumulative billed amount through bill ``m``: the money not named
to a bill pays the oldest first, so what is unpaid among the first ``m`` bills is
their total less everything paid except what named later bills took. A reversal (冲正)
is a negative payment on its own date (with the named month of the payment it
cancels), so a bill it reopens becomes unpaid, and overdue, again. A payment naming a
month with no bill in the lake is a plain credit (held, not lost).

Late fees: between consecutive *breakpoints* of a month (its first day, payment and
reversal dates, issue dates, the day after each due date) the unpaid amounts do not
change, so the month's fee is a sum over intervals of days x rate x unpaid.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
from pydantic import Field

from meterlake.schemas._base import column_names
from meterlake.schemas.receivables_monthly import AGING, RECEIVABLES_MONTHLY

from .strict import StrictModel

#: half a fen: amounts below are float noise of exact sums
EPS_YUAN = 0.005


class CalendarRules(StrictModel):
    issue_day: int = Field(1, ge=1, le=28, description="day of the next month a bill is issued")
    due_day: int = Field(20, ge=1, le=28, description="a bill is due at the end of this day of its issue month")


class LateFeeRules(StrictModel):
    resident_per_day: float = Field(0.001, ge=0)
    other_current_year_per_day: float = Field(0.002, ge=0)
    other_earlier_years_per_day: float = Field(0.003, ge=0)


class RecoveryRules(StrictModel):
    target_rate: float = Field(1.0, ge=0, le=1)


class ToleranceRules(StrictModel):
    settled_below_yuan: float = Field(1.0, ge=0)


class DunningRules(StrictModel):
    sms_after_days: int = Field(1, ge=1)
    call_after_days: int = Field(10, ge=1)
    visit_after_days: int = Field(20, ge=1)
    stop_notice_after_days: int = Field(30, ge=30, description="供电营业规则: only after more than 30 days overdue")
    stop_notice_min_yuan: float = Field(100.0, ge=0)
    notice_min_days: int = Field(3, ge=3, description="a stop notice is served at least 3 days before disconnection")
    notice_max_days: int = Field(7, ge=3, le=7)


class CreditRules(StrictModel):
    window_months: int = Field(12, ge=1)
    late_share_weight: float = 25.0
    worst_overdue_days_steps: list[int] = Field(default_factory=lambda: [30, 90, 180])
    worst_overdue_points: list[float] = Field(default_factory=lambda: [10.0, 20.0, 30.0])
    month_in_arrears_points: float = 3.0
    month_in_arrears_cap: float = 15.0
    prepay_day_below_zero_points: float = 0.5
    prepay_day_below_zero_cap: float = 15.0
    theft_points: float = 50.0
    grade_a: float = 90.0
    grade_b: float = 75.0
    grade_c: float = 60.0


class TierRules(StrictModel):
    platinum_yuan: float = 1_000_000.0
    gold_yuan: float = 100_000.0
    silver_yuan: float = 10_000.0


class ReceivablesConfig(StrictModel):
    """config/receivables.toml."""

    calendar: CalendarRules = CalendarRules()
    late_fee: LateFeeRules = LateFeeRules()
    recovery: RecoveryRules = RecoveryRules()
    tolerance: ToleranceRules = ToleranceRules()
    dunning: DunningRules = DunningRules()
    credit: CreditRules = CreditRules()
    tiers: TierRules = TierRules()


# --- months ----------------------------------------------------------------------


def month_bounds(month: str) -> tuple[dt.date, dt.date]:
    """First and last day of ``YYYY-MM``."""
    first = dt.date(int(month[:4]), int(month[5:7]), 1)
    nxt = (first + dt.timedelta(days=32)).replace(day=1)
    return first, nxt - dt.timedelta(days=1)


def shift_month(month: str, n: int) -> str:
    y, m = divmod(int(month[:4]) * 12 + int(month[5:7]) - 1 + n, 12)
    return f"{y:04d}-{m + 1:02d}"


def _next_month_day(month: pl.Expr, day: int) -> pl.Expr:
    """The date ``day`` of the month after ``YYYY-MM``."""
    first = (month + "-01").str.to_date("%Y-%m-%d")
    return first.dt.offset_by("1mo").dt.replace(day=day)


# --- inputs ----------------------------------------------------------------------


def bill_schedule(bills: pl.LazyFrame, cal: CalendarRules) -> pl.LazyFrame:
    """Post-paid bills per customer and month with issue and due dates and running totals.

    ``bills`` holds bills_monthly rows (several per month when a tariff version changed
    in it); prepay customers' bills are left out (their purchases are the payment), and so
    are bills held for review (status ``held``: not sent out yet).
    Returns customer_id, bill_month, amount_yuan, customer_class, area_id, issue_date,
    due_date, cum_billed_yuan, prev_bill_month.
    """
    held = pl.col("status") == "held" if "status" in column_names(bills) else pl.lit(False)
    per_month = (
        # a bill held for review has not gone out: it is not owed until released
        bills.filter((pl.col("prepay").fill_null(0) == 0) & ~held.fill_null(False))
        .group_by("customer_id", "month")
        .agg(
            amount_yuan=pl.col("amount_yuan").fill_null(0.0).sum().round(2),
            customer_class=pl.col("customer_class").sort_by("period_end").last(),
            area_id=pl.col("area_id").sort_by("period_end").last(),
        )
        .rename({"month": "bill_month"})
        .sort("customer_id", "bill_month")
    )
    # dates worked out once per month, not per bill
    dates = per_month.select(pl.col("bill_month").unique()).with_columns(
        issue_date=_next_month_day(pl.col("bill_month"), cal.issue_day),
        due_date=_next_month_day(pl.col("bill_month"), cal.due_day),
    )
    return per_month.join(dates, on="bill_month", how="left", maintain_order="left").with_columns(
        cum_billed_yuan=(_cum_within(_micro(pl.col("amount_yuan")), "customer_id") / MICRO).round(2),
        prev_bill_month=_shift_within(pl.col("bill_month"), 1, "customer_id"),
    )


def payment_ledger(payments: pl.LazyFrame) -> pl.LazyFrame:
    """Net effect of each clean payment row: customer_id, txn_id, day, amount_yuan (signed), bill_month.

    A reversal takes off the amount of the payment it cancels, on its own date, against
    the month that payment named. Ingest quarantines reversals of unknown or already
    reversed payments, so each reversal here finds its payment.
    """
    cols = ["txn_id", "txn_type", "ref_txn_id", "customer_id", "paid_date", "amount_yuan", "bill_month"]
    tx = payments.select(cols)
    pays = tx.filter(pl.col("txn_type") == "payment")
    refs = pays.select(
        ref_txn_id=pl.col("txn_id"),
        ref_customer=pl.col("customer_id"),
        ref_amount=pl.col("amount_yuan"),
        ref_month=pl.col("bill_month"),
    )
    reversals = (
        tx.filter(pl.col("txn_type") == "reversal")
        .join(refs, on="ref_txn_id", how="inner")
        .filter(pl.col("ref_customer") == pl.col("customer_id"))
        .select(
            "txn_id",
            "customer_id",
            "paid_date",
            (-pl.col("ref_amount")).alias("amount_yuan"),
            pl.col("ref_month").alias("bill_month"),
        )
    )
    return (
        pl.concat([pays.select("txn_id", "customer_id", "paid_date", "amount_yuan", "bill_month"), reversals])
        .rename({"paid_date": "day"})
        .sort("customer_id", "day", "txn_id")
    )


def _shift_within(expr: pl.Expr, n: int, *keys: str) -> pl.Expr:
    """``expr.shift(n).over(keys)`` for rows sorted by ``keys``: a plain shift, null across a key change.

    The same values as the window, without grouping (windows over 500k small groups are slow).
    """
    same = pl.all_horizontal(pl.col(k).shift(n).eq_missing(pl.col(k)) for k in keys)
    return pl.when(same).then(expr.shift(n))


#: money in running sums is counted in integer millionths of a yuan: integer sums are
#: exact, so a running total within a customer is the column's running total less its
#: value before the customer's first row (no window over 500k small groups), and any
#: figure rounded to 6 decimals comes out as from a float sum
MICRO = 1_000_000


def _micro(expr: pl.Expr) -> pl.Expr:
    """Yuan as integer millionths."""
    return (expr * MICRO).round().cast(pl.Int64)


def _group_start(*keys: str) -> pl.Expr:
    """True on the first row of each run of equal ``keys`` (rows sorted by them)."""
    return ~pl.all_horizontal(pl.col(k).shift(1).eq_missing(pl.col(k)) for k in keys)


def _cum_within(expr: pl.Expr, *keys: str) -> pl.Expr:
    """``expr.cum_sum().over(keys)`` of an integer column, rows sorted by ``keys``."""
    total = expr.cum_sum()
    return total - pl.when(_group_start(*keys)).then(total - expr).forward_fill()


def _total_within(expr: pl.Expr, *keys: str) -> pl.Expr:
    """``expr.sum().over(keys)`` of an integer column, rows sorted by ``keys``."""
    total = expr.cum_sum()
    last = ~pl.all_horizontal(pl.col(k).shift(-1).eq_missing(pl.col(k)) for k in keys)
    return pl.when(last).then(total).backward_fill() - pl.when(_group_start(*keys)).then(total - expr).forward_fill()


def _daily_paid(ledger: pl.LazyFrame) -> pl.LazyFrame:
    """customer_id, day, cum_paid_yuan: net payments made by the end of each day."""
    return (
        ledger.group_by("customer_id", "day")
        .agg(paid=pl.col("amount_yuan").sum())
        .sort("customer_id", "day")
        .with_columns(cum_paid_yuan=pl.col("paid").cum_sum().over("customer_id"))
        .select("customer_id", "day", "cum_paid_yuan")
        .sort("day")
    )


# --- the closed form ---------------------------------------------------------------


def unpaid_through(points: pl.LazyFrame, schedule: pl.LazyFrame, ledger: pl.LazyFrame) -> pl.LazyFrame:
    """For each point (pid, customer_id, at, upto): the unpaid part of the bills through ``upto``.

    ``at`` is a date (the state at the end of that day); ``upto`` a bill month (null =
    no bill). Adds ``net_yuan`` = B(upto) - P(at) + named settlements of later issued
    bills, and ``unpaid_yuan`` = max(0, net_yuan).
    """
    b = points.join(
        schedule.select("customer_id", upto="bill_month", b_yuan="cum_billed_yuan"),
        on=["customer_id", "upto"],
        how="left",
    ).with_columns(pl.col("b_yuan").fill_null(0.0))
    p = b.sort("at").join_asof(
        _daily_paid(ledger),
        left_on="at",
        right_on="day",
        by="customer_id",
        strategy="backward",
        check_sortedness=False,
    )
    named = ledger.filter(pl.col("bill_month").is_not_null()).join(
        schedule.select("customer_id", "bill_month", "amount_yuan", "issue_date").rename({"amount_yuan": "bill_yuan"}),
        on=["customer_id", "bill_month"],
        how="inner",
    )
    later = (
        points.select("pid", "customer_id", "at", "upto")
        .join(named, on="customer_id", how="inner")
        .filter(
            (pl.col("upto").is_null() | (pl.col("bill_month") > pl.col("upto")))
            & (pl.col("issue_date") <= pl.col("at"))
            & (pl.col("day") <= pl.col("at"))
        )
        .group_by("pid", "bill_month")
        .agg(s=pl.col("amount_yuan").sum(), bill_yuan=pl.col("bill_yuan").first())
        .group_by("pid")
        .agg(named_later_yuan=pl.min_horizontal(pl.col("s").clip(lower_bound=0.0), pl.col("bill_yuan")).sum())
    )
    return (
        p.join(later, on="pid", how="left")
        .with_columns(
            net_yuan=(
                pl.col("b_yuan") - pl.col("cum_paid_yuan").fill_null(0.0) + pl.col("named_later_yuan").fill_null(0.0)
            ).round(6)
        )
        .with_columns(unpaid_yuan=pl.col("net_yuan").clip(lower_bound=0.0))
        .drop("b_yuan", "cum_paid_yuan", "named_later_yuan", "day")
    )


def bill_status_at_due(schedule: pl.LazyFrame, ledger: pl.LazyFrame) -> pl.LazyFrame:
    """Per bill: the part still unpaid at the end of its due date (and so collected by it).

    The closed form at bill ``m``'s due date ``d``: no later bill is issued by then (the
    next is issued a month after ``m``), so unpaid(through m) = max(0, B_m - P(d)) and
    unpaid(through the bill before) = max(0, B_prev - P(d) + c_m(d)), where ``c_m(d)`` is
    what payments naming ``m`` settled of it by ``d`` (counted once ``m`` is issued). The
    bill's own unpaid part is the difference.
    """
    bills = schedule.select(
        "customer_id",
        "bill_month",
        "due_date",
        "issue_date",
        "amount_yuan",
        "cum_billed_yuan",
        b_prev=_shift_within(pl.col("cum_billed_yuan"), 1, "customer_id").fill_null(0.0),
    )
    # net payments made by the end of each day a customer paid (the day's last row)
    paid = (
        ledger.select("customer_id", "day", p=_cum_within(_micro(pl.col("amount_yuan")), "customer_id"))
        .filter(~pl.all_horizontal(pl.col(k).shift(-1).eq_missing(pl.col(k)) for k in ("customer_id", "day")))
        .sort("day")
    )
    named = (
        ledger.filter(pl.col("bill_month").is_not_null())
        .select("customer_id", "bill_month", "day", "amount_yuan")
        .join(bills.select("customer_id", "bill_month", "due_date"), on=["customer_id", "bill_month"], how="inner")
        .filter(pl.col("day") <= pl.col("due_date"))
        .group_by("customer_id", "bill_month")
        .agg(s=pl.col("amount_yuan").sum())
    )
    p = (pl.col("p").fill_null(0) / MICRO).alias("p")
    c = pl.when(pl.col("s").is_not_null() & (pl.col("issue_date") <= pl.col("due_date"))).then(
        pl.min_horizontal(pl.col("s").clip(lower_bound=0.0), pl.col("amount_yuan"))
    )
    return (
        bills.sort("due_date")
        .join_asof(
            paid, left_on="due_date", right_on="day", by="customer_id", strategy="backward", check_sortedness=False
        )
        .join(named, on=["customer_id", "bill_month"], how="left")
        .with_columns(
            through=(pl.col("cum_billed_yuan") - p + 0.0).round(6).clip(lower_bound=0.0),
            before=(pl.col("b_prev") - p + c.fill_null(0.0)).round(6).clip(lower_bound=0.0),
        )
        .with_columns(unpaid_at_due_yuan=(pl.col("through") - pl.col("before")).round(2).clip(0.0))
        .with_columns(collected_by_due_yuan=(pl.col("amount_yuan") - pl.col("unpaid_at_due_yuan")).round(2))
        .select("customer_id", "bill_month", "due_date", "amount_yuan", "unpaid_at_due_yuan", "collected_by_due_yuan")
    )


def _aging(days: pl.Expr) -> pl.Expr:
    return (
        pl.when(days <= 0)
        .then(pl.lit(AGING[0]))
        .when(days <= 30)
        .then(pl.lit(AGING[1]))
        .when(days <= 90)
        .then(pl.lit(AGING[2]))
        .when(days <= 180)
        .then(pl.lit(AGING[3]))
        .otherwise(pl.lit(AGING[4]))
    )


def oldest_unpaid(
    schedule: pl.LazyFrame, ledger: pl.LazyFrame, at: dt.date, tolerance: float, due_before: dt.date | None = None
) -> pl.LazyFrame:
    """Per customer with a past-due unpaid part above ``tolerance`` at the end of ``at``.

    customer_id, oldest_bill_month, oldest_due_date, overdue_yuan (unpaid of the bills
    due before ``due_before``, default ``at``). The oldest bill with an unpaid part is
    the first bill ``m`` whose unpaid-through-m exceeds the tolerance. ``schedule`` as
    :func:`bill_schedule` gives it (sorted by customer and bill month).
    """
    issued = schedule.filter(pl.col("issue_date") <= at)
    paid = ledger.filter(pl.col("day") <= at).group_by("customer_id").agg(p=pl.col("amount_yuan").sum())
    # c_k at the end of ``at``: what payments naming each issued bill settled of it
    named = (
        ledger.filter((pl.col("day") <= at) & pl.col("bill_month").is_not_null())
        .group_by("customer_id", "bill_month")
        .agg(s=pl.col("amount_yuan").sum())
    )
    c = _micro(pl.col("s").fill_null(0.0).clip(0.0, pl.col("amount_yuan")))
    rows = (
        issued.select("customer_id", "bill_month", "due_date", "amount_yuan", "cum_billed_yuan")
        # joins that keep the schedule's order: the running sums below need it
        .join(named, on=["customer_id", "bill_month"], how="left", maintain_order="left")
        .join(paid, on="customer_id", how="left", maintain_order="left")
        # named settlements of the bills after m: all of the customer's minus those through m
        .with_columns(later=(_total_within(c, "customer_id") - _cum_within(c, "customer_id")) / MICRO)
        .filter(pl.col("due_date") < (due_before or at))
        .with_columns(
            unpaid_yuan=(pl.col("cum_billed_yuan") - pl.col("p").fill_null(0.0) + pl.col("later"))
            .round(6)
            .clip(lower_bound=0.0)
        )
    )
    return (
        rows.group_by("customer_id")
        .agg(
            # rows reach the group_by in no set order (streaming): say which bill is meant
            # (a due date grows with its bill month, so the oldest bill has the earliest one)
            overdue_yuan=pl.col("unpaid_yuan").get(pl.col("bill_month").arg_max()),
            oldest_bill_month=pl.col("bill_month").filter(pl.col("unpaid_yuan") > tolerance).min(),
            oldest_due_date=pl.col("due_date").filter(pl.col("unpaid_yuan") > tolerance).min(),
        )
        .filter(pl.col("oldest_bill_month").is_not_null())
    )


def late_fees(
    schedule: pl.LazyFrame, ledger: pl.LazyFrame, month: str, rules: LateFeeRules, until: dt.date | None = None
) -> pl.LazyFrame:
    """customer_id, late_fee_yuan accrued in ``month`` (by day, at the end of each day; up to ``until``).

    One sorted stream of the month's events per customer, running sums only. At the end
    of day ``b`` (see the module docstring), with ``m`` the last bill overdue at ``b``::

        unpaid of the overdue bills   = max(0, B_overdue(b) - P(b) + N_open(b))
        unpaid of earlier years' ones = max(0, B_earlier - P(b) + N_year(b))

    where ``N_open`` is what payments naming issued, not yet overdue bills settled
    (each capped at its bill: ``c_k = clip(S_k, 0, A_k)``) and ``N_year`` what payments
    naming this year's issued bills settled. A named payment made before its bill is
    issued counts from the issue date; a bill's named part leaves ``N_open`` when it
    falls overdue. The state is constant between events, so the month's fee is a sum
    over the intervals between them.
    """
    first, last = month_bounds(month)
    last = min(last, until) if until is not None else last
    jan1 = dt.date(first.year, 1, 1)
    # the customers with a bill due before the month's last day; schedule order kept
    # (a customer's first bill is due first). cache(): each feeds several branches
    first_due = pl.when(_group_start("customer_id")).then(pl.col("due_date")).forward_fill()
    sched = schedule.filter(first_due < last).cache()
    led = ledger.join(sched.filter(_group_start("customer_id")).select("customer_id"), on="customer_id", how="semi")
    overdue_from = pl.col("due_date").dt.offset_by("1d")
    # named settlements: the change of c_k each named payment makes, effective once the bill is issued
    # (money in integer millionths, see MICRO)
    dc = (
        led.filter(pl.col("bill_month").is_not_null())
        .join(
            sched.select("customer_id", "bill_month", "issue_date", "due_date", bill=_micro(pl.col("amount_yuan"))),
            on=["customer_id", "bill_month"],
            how="inner",
        )
        .sort("customer_id", "bill_month", "day", "txn_id")
        .with_columns(c=_cum_within(_micro(pl.col("amount_yuan")), "customer_id", "bill_month").clip(0, pl.col("bill")))
        .with_columns(
            dc=pl.col("c") - _shift_within(pl.col("c"), 1, "customer_id", "bill_month").fill_null(0),
            day=pl.max_horizontal("day", "issue_date"),
        )
        .cache()
    )
    open_part = dc.filter(pl.col("day") <= pl.col("due_date"))
    changes = pl.concat(
        [
            led.select("customer_id", "day", p=_micro(pl.col("amount_yuan"))),
            sched.select("customer_id", day=overdue_from, b=_micro(pl.col("amount_yuan"))),
            open_part.select("customer_id", "day", n_open=pl.col("dc")),
            open_part.group_by("customer_id", "bill_month")
            .agg(pl.col("dc").sum(), pl.col("due_date").first())
            .select("customer_id", day=overdue_from, n_open=-pl.col("dc")),
            dc.filter(pl.col("due_date") >= jan1).select("customer_id", "day", n_year=pl.col("dc")),
            sched.filter(_group_start("customer_id")).select("customer_id", day=pl.lit(first)),
        ],
        how="diagonal_relaxed",
    ).with_columns(pl.col("p", "b", "n_open", "n_year").fill_null(0))
    # before the month: one opening row on its first day
    changes = changes.with_columns(day=pl.max_horizontal("day", pl.lit(first))).filter(pl.col("day") <= last)
    earlier = (
        sched.filter(pl.col("due_date") < jan1).group_by("customer_id").agg(b_prev=_micro(pl.col("amount_yuan")).sum())
    )
    # a customer's events in day order; the state after a day's last event holds until the
    # next day with events (rows of one day but its last get 0 days)
    state = (
        changes.sort("customer_id", "day")
        .with_columns(pl.col(c).pipe(_cum_within, "customer_id") for c in ("p", "b", "n_open", "n_year"))
        .with_columns(
            days=(
                _shift_within(pl.col("day"), -1, "customer_id").fill_null(last + dt.timedelta(days=1)) - pl.col("day")
            ).dt.total_days(),
        )
        .join(earlier, on="customer_id", how="left")
        .select(
            "customer_id",
            "days",
            x_all=((pl.col("b") - pl.col("p") + pl.col("n_open")) / MICRO).round(6).clip(lower_bound=0.0),
            x_prev=((pl.col("b_prev").fill_null(0) - pl.col("p") + pl.col("n_year")) / MICRO)
            .round(6)
            .clip(lower_bound=0.0),
        )
    )
    last_bill = ~pl.col("customer_id").shift(-1).eq_missing(pl.col("customer_id"))
    cls = sched.filter(last_bill).select("customer_id", "customer_class")
    resident = pl.col("customer_class") == "resident"
    rate_cur = pl.when(resident).then(rules.resident_per_day).otherwise(rules.other_current_year_per_day)
    rate_prev = pl.when(resident).then(rules.resident_per_day).otherwise(rules.other_earlier_years_per_day)
    return (
        state.join(cls, on="customer_id", how="left")
        .with_columns(
            fee=pl.col("days")
            * (rate_cur * (pl.col("x_all") - pl.col("x_prev")).clip(0.0) + rate_prev * pl.col("x_prev"))
        )
        .group_by("customer_id")
        .agg(late_fee_yuan=pl.col("fee").sum().round(2))
    )


# --- the mart --------------------------------------------------------------------


def receivables_month(
    schedule: pl.LazyFrame,
    ledger: pl.LazyFrame,
    month: str,
    rules: ReceivablesConfig,
    scope: pl.LazyFrame | None = None,
    previous: pl.LazyFrame | None = None,
    as_of: dt.date | None = None,
) -> pl.LazyFrame:
    """receivables_monthly rows of ledger month ``month`` (bills issued in it, payments dated in it).

    ``as_of``: the last day the lake holds; a month still open is taken to that day
    (month to date: overdue days and late fees stop there).

    ``scope``: customer_id, feeder_id, org_id (from the archive) to carry along.
    ``previous``: this month's partition as last written, for ``restated_yuan`` (the
    change of the bill issued in the month since it was first recorded).
    """
    first, last = month_bounds(month)
    if as_of is not None and first <= as_of < last:
        last = as_of
    # per customer: what was billed (issued by the end of the month) and paid (to date)
    in_month = pl.col("issue_date") >= first
    bills = (
        schedule.filter(pl.col("issue_date") <= last)
        .group_by("customer_id")
        .agg(
            # sums in integer millionths (see MICRO): the same whatever order the rows come in
            b=_micro(pl.col("amount_yuan")).sum(),
            billed_yuan=_micro(pl.col("amount_yuan")).filter(in_month).sum() / MICRO,
            bill_month=pl.col("bill_month").filter(in_month).max(),
            # the latest bill's class and area (one bill a month: no ties)
            customer_class=pl.col("customer_class").get(pl.col("bill_month").arg_max()),
            area_id=pl.col("area_id").get(pl.col("bill_month").arg_max()),
        )
    )
    to_date = ledger.filter(pl.col("day") <= last)
    pays = to_date.group_by("customer_id").agg(
        p=_micro(pl.col("amount_yuan")).sum(),
        paid_yuan=_micro(pl.col("amount_yuan")).filter(pl.col("day") >= first).sum() / MICRO,
    )
    held = (
        to_date.filter(pl.col("bill_month").is_not_null())
        .join(schedule.select("customer_id", "bill_month"), on=["customer_id", "bill_month"], how="anti")
        .group_by("customer_id")
        .agg(held_credit_yuan=pl.col("amount_yuan").sum())
    )
    oldest = oldest_unpaid(schedule, ledger, last, EPS_YUAN)
    fees = late_fees(schedule, ledger, month, rules.late_fee, until=last)
    out = (
        bills.join(pays, on="customer_id", how="full", coalesce=True)
        .with_columns(arrears_yuan=((pl.col("b").fill_null(0) - pl.col("p").fill_null(0)) / MICRO).round(2))
        .join(oldest, on="customer_id", how="left")
        .join(fees, on="customer_id", how="left")
        .join(held, on="customer_id", how="left")
        .with_columns(
            month=pl.lit(month),
            billed_yuan=pl.col("billed_yuan").fill_null(0.0).round(2),
            paid_yuan=pl.col("paid_yuan").fill_null(0.0).round(2),
            overdue_yuan=pl.col("overdue_yuan").fill_null(0.0).round(2),
            late_fee_yuan=pl.col("late_fee_yuan").fill_null(0.0),
            held_credit_yuan=pl.col("held_credit_yuan").fill_null(0.0).round(2),
            overdue_days=pl.when(pl.col("oldest_due_date").is_not_null())
            .then((pl.lit(last) - pl.col("oldest_due_date")).dt.total_days())
            .otherwise(0)
            .cast(pl.Int32),
        )
        .with_columns(aging=_aging(pl.col("overdue_days")))
    )
    if scope is not None:
        out = out.join(scope, on="customer_id", how="left")
    else:
        out = out.with_columns(feeder_id=pl.lit(None, pl.String), org_id=pl.lit(None, pl.String))
    if previous is not None:
        first_seen = previous.select(
            "customer_id", first_billed=(pl.col("billed_yuan") - pl.col("restated_yuan").fill_null(0.0))
        )
        out = out.join(first_seen, on="customer_id", how="left").with_columns(
            restated_yuan=(pl.col("billed_yuan") - pl.col("first_billed").fill_null(pl.col("billed_yuan"))).round(2)
        )
    else:
        out = out.with_columns(restated_yuan=pl.lit(0.0))
    return RECEIVABLES_MONTHLY.conform(out.sort("customer_id"))
