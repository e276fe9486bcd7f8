"""bills_monthly: the monthly electricity bill per customer (月度电费账单).

CONTRACT §2 and §3. One row per customer, month and tariff version in force during
the month: a tariff version that starts in mid-month (调价) splits the month's bill at
its effective date into two rows, as does a customer moving to another tariff_id. In
the common case a customer has exactly one row a month. The customer's month total is
the sum of ``amount_yuan`` over its rows.

* kWh: the customer's meter_daily ``kwh`` (role customer), summed over the rows' days,
  estimated days included; a ``missing`` day counts 0 kWh and counts against the
  quality gate.
* TOU kWh (``kwh_sharp`` .. ``kwh_valley``): each day's kWh split in the proportion of
  that day's TOU register changes, so the four always sum to ``kwh_total``; a day
  without usable TOU registers goes to the register named by ``tou_fallback_register``
  in ``config/billing.toml`` (and, on a TOU tariff, flags the bill).
* Tier kWh: day by day on the calendar-year (or calendar-month) cumulative kWh of the
  customer, counted from the first day the lake holds for that year. A tariff without
  tiers puts all kWh in tier 1, so the three tiers always sum to ``kwh_total``.
* Amount: a kWh in register r and tier t costs price(period of r) + adder(t); summed at
  full precision (``amount_exact_yuan``) and rounded half up to 0.01 yuan
  (``amount_yuan``).
* Quality gate (Itron MDM billing exceptions, docs/domain.md#billing-quality-gate): a bill goes out (``ok``)
  only when its kWh are the meter's own register differences and nothing casts doubt
  on them; otherwise it is ``held`` for review with the reason codes in
  ``exception_reasons``: a day without kWh (billed as 0), a day whose estimate was
  shared across the month's boundary (the bill's total then rests on the split, not on
  readings), an estimated share above ``max_estimated_share``, a meter that the
  line-loss diagnosis suspects of a wrong multiplier in the month, no tariff, or a TOU
  day priced at the fallback register.
"""

import polars as pl

from ._base import Column, Table

STATUSES = ("ok", "held")

#: why a bill is held (comma-joined in this order in ``exception_reasons``)
EXCEPTION_REASONS = {
    "no_tariff": "the tariff_id is not in config/tariffs.toml, or no version of it is in force on some day: no amount",
    "missing_days": "some day of the bill has no kWh at all (quality missing): billed as 0 kWh",
    "substituted_days": (
        "some day's kWh is an estimate shared with days outside the month (a reading on the month's boundary is "
        "missing): the total is not a register difference"
    ),
    "estimated_share": "estimated + missing days exceed max_estimated_share of the bill's days (Itron billing exception)",
    "multiplier_suspect": "the line-loss diagnosis suspects a meter of the bill of a wrong multiplier in the month",
    "tou_registers_missing": "a TOU tariff day had no usable TOU registers: its kWh were priced at tou_fallback_register",
}

BILLS_MONTHLY = Table(
    name="bills_monthly",
    zh="月度电费账单",
    description=(
        "one row per customer, month and tariff version in force in the month: kWh by TOU "
        "register and by tier, and the amount at full precision and rounded half up to 0.01 yuan"
    ),
    columns=(
        Column("month", pl.String(), "calendar month YYYY-MM (partition key)", "账期"),
        Column("customer_id", pl.String(), "customer number", "用户编号", nullable=False),
        Column("tariff_id", pl.String(), "tariff key (电价代码) of the meter_daily rows", "电价代码"),
        Column(
            "tariff_effective_from",
            pl.Date(),
            "effective_from of the tariff version that priced these days; empty when no version applies",
            "电价执行日期",
        ),
        Column("period_start", pl.Date(), "first day of the month billed in this row", "计费起始日"),
        Column("period_end", pl.Date(), "last day of the month billed in this row", "计费截止日"),
        Column("area_id", pl.String(), "transformer area on period_end (empty: fed directly at 10 kV)", "台区编号"),
        Column(
            "customer_class", pl.String(), "resident, commercial, industrial, agricultural (on period_end)", "用电类别"
        ),
        Column("prepay", pl.Int8(), "1 when the customer was an IC-card prepayment customer on period_end", "费控标志"),
        Column("days", pl.Int16(), "customer-days billed (one per meter and day)", "计费天数", unit="d"),
        Column("days_estimated", pl.Int16(), "days whose kWh is estimated", "估算天数", unit="d"),
        Column("days_missing", pl.Int16(), "days without kWh (billed as 0)", "缺数天数", unit="d"),
        Column("estimated_share", pl.Float64(), "(days_estimated + days_missing) / days", "估算占比", unit="1"),
        Column("kwh_total", pl.Float64(), "kWh billed, primary side", "总电量", unit="kWh"),
        Column("kwh_sharp", pl.Float64(), "kWh in the sharp (尖) register", "尖电量", unit="kWh"),
        Column("kwh_peak", pl.Float64(), "kWh in the peak (峰) register", "峰电量", unit="kWh"),
        Column("kwh_flat", pl.Float64(), "kWh in the flat (平) register", "平电量", unit="kWh"),
        Column("kwh_valley", pl.Float64(), "kWh in the valley (谷) register", "谷电量", unit="kWh"),
        Column("kwh_tier1", pl.Float64(), "kWh in tier 1 (all kWh for untiered tariffs)", "第一档电量", unit="kWh"),
        Column("kwh_tier2", pl.Float64(), "kWh in tier 2", "第二档电量", unit="kWh"),
        Column("kwh_tier3", pl.Float64(), "kWh in tier 3", "第三档电量", unit="kWh"),
        Column(
            "amount_exact_yuan",
            pl.Float64(),
            "amount at full precision (Σ kWh x price); empty when no tariff applies",
            "电费(未舍入)",
            unit="yuan",
        ),
        Column(
            "amount_yuan",
            pl.Float64(),
            "amount rounded half up to 0.01 yuan; empty when no tariff applies",
            "电费",
            unit="yuan",
        ),
        Column(
            "status",
            pl.String(),
            "ok (goes out), or held (held back for review: see exception_reasons)",
            "账单状态",
            codes=STATUSES,
            nullable=False,
        ),
        Column(
            "exception_reasons",
            pl.String(),
            "why the bill is held: comma-joined reason codes (EXCEPTION_REASONS); empty when ok",
            "暂缓原因",
        ),
    ),
    key=("customer_id", "month", "tariff_id", "tariff_effective_from"),
    partition_by="month",
)
