"""Billing (电费计算): price each customer-day at its tariff and tier, then bill the month.

Pure polars: frames in, frames out; nothing here opens a file.

The unit of work is the *priced day*: one meter_daily row of a customer meter, with
its kWh split across the TOU registers and across the tiers, and its cost. Bills
(:func:`bill_segments`) are sums of priced days; prepay balances
(:mod:`meterlake.transforms.prepay`) take each priced day's cost as the day's
consumption. Both therefore agree to the last digit before rounding.

Tiers (阶梯, CONTRACT §2): the day's kWh are placed on the customer's cumulative
consumption of the calendar year (or month) before the day. With 2700 kWh before a
day and 100 kWh in it, 60 kWh fall in tier 1 and 40 kWh in tier 2. Within a day the
customer's meters (two on the day of a meter swap) take their turn in a fixed order
(a stable hash of meter_id, see :func:`_turn_key`).

TOU (峰谷): each day's kWh split in the proportion of the day's TOU register changes;
every tier portion splits in that same proportion, so the cost of a day is

    Σ_r kwh_r x price_r  +  Σ_t kwh_tier_t x adder_t

(price_r: the tier-1 price of the period that register r belongs to; adder_t: the
tier adder). For RES_TIER_TOU this is "sharp+peak are peak, flat+valley are valley,
each tier portion split between peak and valley in the day's proportion"; for COM_TOU
it prices each register on its own.
"""

from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import Field

from meterlake.schemas.bills_monthly import BILLS_MONTHLY

from . import dates
from .prepay import PrepayRules
from .strict import StrictModel
from .tariffs import PRICE_CALENDAR_SCHEMA, REGISTERS

#: the meter_daily columns billing reads
DAY_COLUMNS: tuple[str, ...] = (
    "date",
    "meter_id",
    "customer_id",
    "area_id",
    "customer_class",
    "tariff_id",
    "prepay",
    "quality",
    "kwh",
    "kwh_sharp",
    "kwh_peak",
    "kwh_flat",
    "kwh_valley",
)


class BillRules(StrictModel):
    """The [bill] section of config/billing.toml."""

    max_estimated_share: float = Field(
        0.2,
        ge=0,
        le=1,
        description="billing quality gate: a bill whose (estimated + missing days) / days exceeds "
        "this is held for review (Itron MDM billing exceptions)",
    )
    tou_fallback_register: Literal["sharp", "peak", "flat", "valley"] = Field(
        "flat",
        description="register that takes a day's kWh when its TOU registers are missing or sum to 0",
    )


class BillingConfig(StrictModel):
    """config/billing.toml: billing and prepayment thresholds."""

    bill: BillRules = Field(default_factory=BillRules, description="bill rules")
    prepay: PrepayRules = Field(default_factory=PrepayRules, description="prepay_daily status thresholds")


def round_half_up(expr: pl.Expr, decimals: int = 2) -> pl.Expr:
    """Round half up (away from zero), as decimal arithmetic would, on float amounts.

    A float sum such as 1.005 is stored as 1.00499999999999989...; rounding that
    directly gives 1.00. Rounding the scaled value to 6 places first removes the
    representation error (amounts from kWh with a few decimals and prices with 3 have
    no digits that far down) and leaves a true tie exactly at .5, which is then
    rounded away from zero: 1.005 -> 1.01, 2.675 -> 2.68, 6.725 -> 6.73.
    """
    scale = 10.0**decimals
    cents = (expr * scale).round(6).round(0, mode="half_away_from_zero")
    # polars divides by a literal as a multiplication by its reciprocal (5880 x 0.01 =
    # 58.800000000000004); the final round gives the double nearest the decimal value
    return (cents / scale).round(decimals)


#: the exact type :func:`stable_sum` adds in: 26 digits before the point, 12 after
STABLE_DECIMAL = pl.Decimal(38, 12)


def stable_sum(column: str | pl.Expr) -> pl.Expr:
    """A float sum that does not depend on the order the engine adds in.

    The streaming engine sums groups in parallel chunks, so a float sum's last bits can
    differ from run to run, and rounding the sum afterwards does not cure that alone (a
    sum lying near a rounding boundary comes out either side of it). So the terms are
    added as decimals of 12 places, which is exact in any order, and the sum is then
    rounded to 1e-9 (far below the 0.01 kWh / 0.01 yuan the contract asks for): reruns
    write identical files. (Not integers divided by a power of ten: polars divides a
    column by a constant through its reciprocal, 240.00000000000003 for 240; and not 9
    places per term: three thirds of a gap's 17.27 kWh, 5.756666667 each, sum to
    17.270000001.)
    """
    expr = pl.col(column) if isinstance(column, str) else column
    return expr.cast(STABLE_DECIMAL).sum().cast(pl.Float64).round(9)


#: meter_daily columns the quality gate reads when present (which readings a day rests on)
GATE_COLUMNS: tuple[str, ...] = ("reading_from", "reading_to")


def billable_days(meter_daily: pl.LazyFrame) -> pl.LazyFrame:
    """The customer meters' days from meter_daily, with the columns billing reads."""
    have = meter_daily.collect_schema().names()
    cols = [*DAY_COLUMNS, *(c for c in GATE_COLUMNS if c in have)]
    return meter_daily.filter((pl.col("role") == "customer") & pl.col("customer_id").is_not_null()).select(cols)


def multiplier_suspects(diagnosis: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """``meter_id, month`` of every meter the line-loss diagnosis lists as a multiplier
    suspect in a window ending in that month (loss_diagnosis contract columns)."""
    return (
        diagnosis.lazy()
        .filter(pl.col("kind") == "multiplier_suspect")
        .select("meter_id", pl.col("date").dt.strftime("%Y-%m").alias("month"))
        .unique()
    )


def year_to_date_kwh(days: pl.LazyFrame) -> pl.LazyFrame:
    """Per customer and calendar year, Σ kWh of ``days`` (the opening of a later period)."""
    return days.group_by("customer_id", pl.col("date").dt.year().alias("year")).agg(
        kwh_before=stable_sum(pl.col("kwh").fill_null(0.0))
    )


def _portion(before: pl.Expr, k: pl.Expr, lower: pl.Expr, upper: pl.Expr) -> pl.Expr:
    """kWh of the interval [before, before + k] that lies in the tier [lower, upper).

    A day entirely inside one tier gets its kWh exactly (no subtraction of
    cumulative sums), so the tiers of such a day sum to the day's kWh bit for bit.
    """
    after = before + k
    return (
        pl.when((before >= upper) | (after <= lower))
        .then(0.0)
        .when((before >= lower) & (after <= upper))
        .then(k)
        .otherwise(pl.min_horizontal(after, upper) - pl.max_horizontal(before, lower))
    )


def _turn_key() -> pl.Expr:
    """One Int64 that orders a customer's meter-days: date, then a fixed hash of meter_id.

    Ordering a window by one integer is several times faster than by (date, meter_id)
    at county scale. The hash (seed 0, stable for a polars version) only orders the
    meters of one customer on one day, i.e. on the day of a meter swap.
    """
    return pl.col("date").cast(pl.Int64) * (1 << 32) + (pl.col("meter_id").hash(seed=0) // (1 << 32)).cast(pl.Int64)


def kwh_before_in_turn(frame: pl.DataFrame) -> pl.Series:
    """Per row, the kWh of the rows before it in its group, in turn order: what
    ``kwh.cum_sum().over("customer_id", "year", order_by="turn_key") - kwh`` gives, to the bit.

    ``frame``: customer_id, year, turn_key, kwh (no nulls in kwh). When the rows already
    come in (customer_id, year, turn_key) order without ties (one day of meter_daily: its
    file is in meter order, and customers follow their meters), each row's running sum
    is its predecessor's plus its own kWh, added in the order the window adds them (one
    float addition a row), a position of the groups at a time: a pass per position (the
    most meter-days a customer has), not per row. The window hashes every row's string
    key into ~500k groups: 0.39 s against 0.02 s on a county day. Rows in any other order
    (a month read day by day) take the window itself: sorting them by their string key
    first costs more than the window.
    """
    n = frame.height
    before = pl.col("kwh").cum_sum().over("customer_id", "year", order_by="turn_key") - pl.col("kwh")
    if n == 0:
        return frame.select(before.alias("cum_year_kwh")).to_series()
    same_group = (pl.col("customer_id") == pl.col("customer_id").shift(1)) & (pl.col("year") == pl.col("year").shift(1))
    later = (pl.col("customer_id") > pl.col("customer_id").shift(1)) | (
        (pl.col("customer_id") == pl.col("customer_id").shift(1))
        & (
            (pl.col("year") > pl.col("year").shift(1))
            | ((pl.col("year") == pl.col("year").shift(1)) & (pl.col("turn_key") > pl.col("turn_key").shift(1)))
        )
    )
    at = pl.int_range(pl.len(), dtype=pl.Int64)
    first = ~same_group.fill_null(False)
    checked = frame.select(
        in_order=(later.fill_null(False) | (at == 0)).all()
        & pl.col("customer_id").is_not_null().all()
        & pl.col("year").is_not_null().all()
        & pl.col("turn_key").is_not_null().all(),
        pos=at - pl.when(first).then(at).forward_fill(),
    )
    if not checked["in_order"][0]:
        return frame.select(before.alias("cum_year_kwh")).to_series()
    # the rows by their position in their group (0 on a group's first row)
    by_pos = checked.select(rows=pl.arg_sort_by("pos", maintain_order=True).cast(pl.Int64), pos=pl.col("pos").sort())
    rows, pos = by_pos["rows"], by_pos["pos"]
    kwh = frame["kwh"].cast(pl.Float64)
    total = kwh.clone()
    bounds = pos.search_sorted(pl.Series(range(int(pos[-1]) + 2), dtype=pl.Int64), side="left").to_list()
    for p in range(1, len(bounds) - 1):  # positions, not rows
        these = rows.slice(bounds[p], bounds[p + 1] - bounds[p])
        total.scatter(these, total.gather(these - 1) + kwh.gather(these))
    return (total - kwh).alias("cum_year_kwh")


def _with_prices(lf: pl.LazyFrame, calendar: pl.DataFrame) -> pl.LazyFrame:
    """Attach the price calendar's columns to each row by (tariff_id, date).

    Equivalent to a left join on (tariff_id, date); done as a gather from a dense
    tariff x day grid because the grid is tiny and a hash join of every meter-day on a
    string key costs more than the rest of the pricing (county scale, 15M rows).
    """
    value_cols = [c for c in PRICE_CALENDAR_SCHEMA.names() if c not in ("tariff_id", "date")]
    if calendar.is_empty():
        return lf.with_columns(pl.lit(None, PRICE_CALENDAR_SCHEMA[c]).alias(c) for c in value_cols)
    tariffs = sorted(calendar["tariff_id"].unique().to_list())
    first, last = dates.span(calendar, "date")
    n_days = (last - first).days + 1
    grid = (
        pl.DataFrame({"tariff_id": tariffs})
        .join(pl.DataFrame({"date": pl.date_range(first, last, eager=True)}), how="cross")
        .join(calendar, on=["tariff_id", "date"], how="left")
        .sort("tariff_id", "date")
    )
    offset = (pl.col("date") - pl.lit(first)).dt.total_days()
    slot = pl.when((offset >= 0) & (offset < n_days)).then(
        pl.col("tariff_id").replace_strict({t: i for i, t in enumerate(tariffs)}, default=None, return_dtype=pl.Int64)
        * n_days
        + offset
    )
    return (
        lf.with_columns(_slot=slot)
        .with_columns(pl.lit(grid[c]).gather(pl.col("_slot")).alias(c) for c in value_cols)
        .drop("_slot")
    )


def price_days(
    days: pl.LazyFrame,
    calendar: pl.DataFrame,
    opening: pl.LazyFrame | None = None,
    fallback_register: str = "flat",
) -> pl.LazyFrame:
    """Price customer-days: TOU and tier split and cost of each meter-day.

    ``days``: meter_daily rows of customer meters (:data:`DAY_COLUMNS`; extra columns
    pass through), holding every day the lake has from the start of each year they
    touch, or from a later day whose year-to-date kWh ``opening`` gives; monthly tiers
    need every day of each month they touch.

    ``calendar``: :func:`meterlake.transforms.tariffs.price_calendar` covering the dates.

    ``opening``: per customer and year, ``kwh_before``: the year's kWh before the first
    day in ``days`` (:func:`year_to_date_kwh` of the earlier days); None = none.

    Adds ``kwh`` (nulls as 0), the four register kWh allocated from ``kwh`` (they sum to
    it), ``kwh_tier1..3`` (they sum to it), ``cum_before_kwh`` (where the day starts on
    the tier ladder), ``tariff_effective_from``, ``cost_yuan`` (full precision; null
    when no tariff version applies), ``missing`` (no kWh), ``no_tariff``,
    ``tou_missing`` and ``turn_key`` (the order of a customer's meter-days).
    """
    if fallback_register not in REGISTERS:
        raise ValueError(f"tou_fallback_register: expected one of {', '.join(REGISTERS)}, found {fallback_register!r}")
    k = pl.col("kwh")
    regs = [pl.col(f"kwh_{r}") for r in REGISTERS]
    reg_sum = pl.sum_horizontal(regs)  # nulls count as 0
    regs_ok = pl.any_horizontal(r.is_not_null() for r in regs) & (reg_sum > 0)
    monthly = bool((calendar["tier_basis"] == "monthly").any())

    lf = days.with_columns(
        missing=k.is_null() | (pl.col("quality") == "missing"),
        kwh=k.fill_null(0.0),
        year=pl.col("date").dt.year(),
    )
    lf = lf.with_columns(turn_key=_turn_key()).with_columns(
        # the customer's kWh of the year before this meter-day
        cum_year_kwh=pl.struct("customer_id", "year", "turn_key", "kwh").map_batches(
            lambda s: kwh_before_in_turn(s.struct.unnest()), return_dtype=pl.Float64
        ),
        tou_ok=regs_ok,
        **{f"share_{r}": pl.col(f"kwh_{r}").fill_null(0.0) / reg_sum for r in REGISTERS},
    )
    if monthly:  # only when some tariff has monthly tiers: a second window
        lf = lf.with_columns(
            cum_month_kwh=pl.col("cum_year_kwh")
            - pl.col("cum_year_kwh").min().over("customer_id", pl.col("date").dt.truncate("1mo"))
        )
    else:
        lf = lf.with_columns(cum_month_kwh=pl.lit(None, pl.Float64))
    if opening is not None:
        lf = lf.join(
            opening.select("customer_id", pl.col("year").cast(pl.Int32), "kwh_before"),
            on=["customer_id", "year"],
            how="left",
        )
    else:
        lf = lf.with_columns(kwh_before=pl.lit(0.0))
    lf = _with_prices(lf, calendar)

    before = pl.col("cum_before_kwh")
    t1u, t2u = pl.col("tier1_upper_kwh"), pl.col("tier2_upper_kwh")
    lf = lf.with_columns(
        cum_before_kwh=pl.when(pl.col("tier_basis") == "monthly")
        .then(pl.col("cum_month_kwh"))
        .otherwise(pl.col("kwh_before").fill_null(0.0) + pl.col("cum_year_kwh")),
        no_tariff=pl.col("tier_basis").is_null(),
    ).with_columns(
        # untiered and unpriced days: all kWh in tier 1 (thresholds are +inf)
        kwh_tier1=_portion(before, k, pl.lit(0.0), t1u.fill_null(float("inf"))),
        kwh_tier2=_portion(before, k, t1u, t2u).fill_null(0.0),
        kwh_tier3=_portion(before, k, t2u, pl.lit(float("inf"))).fill_null(0.0),
        tou_missing=pl.col("is_tou").fill_null(False) & ~pl.col("tou_ok") & (k > 0),
        **{
            f"kwh_{r}": pl.when(pl.col("tou_ok"))
            .then(k * pl.col(f"share_{r}"))
            .otherwise(k if r == fallback_register else pl.lit(0.0))
            for r in REGISTERS
        },
    )
    cost = pl.sum_horizontal(
        [pl.col(f"kwh_{r}") * pl.col(f"price_{r}_yuan_per_kwh") for r in REGISTERS]
        + [pl.col(f"kwh_tier{t}") * pl.col(f"adder_tier{t}_yuan_per_kwh") for t in (1, 2, 3)]
    )
    lf = lf.with_columns(cost_yuan=pl.when(pl.col("no_tariff")).then(None).otherwise(cost))
    helpers = (
        ["year", "cum_year_kwh", "cum_month_kwh", "kwh_before", "tou_ok"]
        + [f"share_{r}" for r in REGISTERS]
        + [c for c in PRICE_CALENDAR_SCHEMA.names() if c not in ("tariff_id", "date", "tariff_effective_from")]
    )
    return lf.drop(helpers)


def bill_segments(
    priced: pl.LazyFrame, rules: BillRules, suspects: pl.DataFrame | pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """bills_monthly rows from priced days: one per customer, month and tariff version.

    The month's amount is summed at full precision and rounded half up to 0.01 yuan.
    A tariff version that starts in mid-month gives the days before and after it a
    row each (the month is split at the effective date). ``suspects``:
    :func:`multiplier_suspects` (``meter_id, month``); their bills are held.

    The quality gate (schemas/bills_monthly.py EXCEPTION_REASONS) holds a bill with a
    day without kWh, a day estimated across the month's boundary (``reading_from``
    before the month or ``reading_to`` after its closing reading, when priced carries
    them), an estimated share above ``max_estimated_share``, or a suspect meter.
    """
    reasons = {
        "no_tariff": pl.col("any_no_tariff"),
        "missing_days": pl.col("days_missing") > 0,
        "substituted_days": pl.col("any_substituted"),
        "estimated_share": pl.col("estimated_share") > rules.max_estimated_share,
        "multiplier_suspect": pl.col("any_suspect"),
        "tou_registers_missing": pl.col("any_tou_missing"),
    }
    names = priced.collect_schema().names()
    month_start = pl.col("date").dt.truncate("1mo")
    if set(GATE_COLUMNS) <= set(names):
        # the closing reading of a month is frozen at 00:00 of the next month's first day
        across = (pl.col("reading_from") < month_start) | (pl.col("reading_to") > month_start.dt.offset_by("1mo"))
        substituted = (pl.col("quality") == "estimated") & across.fill_null(False)
    else:
        substituted = pl.lit(False)
    priced = priced.with_columns(_substituted=substituted)
    if suspects is not None:
        flagged = suspects.lazy().select("meter_id", "month").unique().with_columns(_suspect=pl.lit(True))
        priced = (
            priced.with_columns(_month=pl.col("date").dt.strftime("%Y-%m"))
            .join(flagged, left_on=["meter_id", "_month"], right_on=["meter_id", "month"], how="left")
            .with_columns(pl.col("_suspect").fill_null(False))
        )
    else:
        priced = priced.with_columns(_suspect=pl.lit(False))
    bills = (
        priced.with_columns(month_start=month_start)
        .group_by("customer_id", "month_start", "tariff_id", "tariff_effective_from")
        .agg(
            period_start=pl.col("date").min(),
            period_end=pl.col("date").max(),
            # on the bill's last day (max_by is the fast path in a county-size group_by)
            area_id=pl.col("area_id").max_by("turn_key"),
            customer_class=pl.col("customer_class").max_by("turn_key"),
            prepay=pl.col("prepay").max_by("turn_key"),
            days=pl.len(),
            days_estimated=(pl.col("quality") == "estimated").sum(),
            days_missing=pl.col("missing").sum(),
            kwh_total=stable_sum("kwh"),
            **{f"kwh_{r}": stable_sum(f"kwh_{r}") for r in REGISTERS},
            **{f"kwh_tier{t}": stable_sum(f"kwh_tier{t}") for t in (1, 2, 3)},
            amount_exact_yuan=stable_sum("cost_yuan"),
            any_no_tariff=pl.col("no_tariff").any(),
            any_tou_missing=pl.col("tou_missing").any(),
            any_substituted=pl.col("_substituted").any(),
            any_suspect=pl.col("_suspect").any(),
        )
        .with_columns(
            month=pl.col("month_start").dt.strftime("%Y-%m"),
            estimated_share=(pl.col("days_estimated") + pl.col("days_missing")) / pl.col("days"),
            amount_exact_yuan=pl.when(pl.col("any_no_tariff")).then(None).otherwise(pl.col("amount_exact_yuan")),
        )
        .with_columns(
            amount_yuan=round_half_up(pl.col("amount_exact_yuan")),
            exception_reasons=pl.concat_str(
                [pl.when(cond).then(pl.lit(code)) for code, cond in reasons.items()],
                separator=",",
                ignore_nulls=True,
            ),
        )
        .with_columns(
            exception_reasons=pl.when(pl.col("exception_reasons") == "")
            .then(None)
            .otherwise(pl.col("exception_reasons")),
        )
        .with_columns(
            status=pl.when(pl.col("exception_reasons").is_null()).then(pl.lit("ok")).otherwise(pl.lit("held")),
        )
    )
    return BILLS_MONTHLY.conform(bills)
