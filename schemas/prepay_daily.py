"""prepay_daily: the daily balance of each IC-card prepayment meter (费控日余额).

CONTRACT §3. One row per prepay customer, meter and date.

Balances and day boundaries. Registers freeze at 00:00: the ``remaining_yuan``
frozen at 00:00 of day D+1 is the balance at 24:00 of day D, which is why meter_daily
carries it on D's row and why it is this table's ``meter_balance_yuan`` for D. The
computed balance is anchored on the meter's first such reading: on the anchor date D0
(the first meter_daily row of the meter with a ``remaining_yuan``) ``balance_yuan`` is
that reading (D0's purchases and consumption are already inside it); for D > D0

    balance_yuan(D) = balance_yuan(D-1) + purchases_yuan(D) - consumption_yuan(D)

at full precision. Before D0 the computed balance is unknown: ``balance_yuan`` and
``status`` are empty. (The reading frozen at 00:00 of the meter's very first register
date, the balance at the *start* of its first day, has no meter_daily row to sit on;
anchoring on the end of the first meter day gives up that one day of reconciliation.)

Status, in this order: ``mismatch`` when both balances exist and differ by more than
``mismatch_tolerance_yuan`` (1 yuan), else ``arrears`` when balance_yuan < 0, ``low``
when below ``low_balance_yuan`` (20 yuan), else ``ok``; thresholds in
config/billing.toml.
"""

import polars as pl

from ._base import Column, Table

STATUSES = ("ok", "low", "arrears", "mismatch")

PREPAY_DAILY = Table(
    name="prepay_daily",
    zh="费控用户日余额",
    description=(
        "one row per prepay customer, meter and date: net purchases, consumption cost at the "
        "tariff and tier, the computed balance carried from the meter's first reported "
        "balance, the meter's own balance and a status"
    ),
    columns=(
        Column("date", pl.Date(), "local date (partition key)", "日期"),
        Column("customer_id", pl.String(), "customer number", "用户编号", nullable=False),
        Column("meter_id", pl.String(), "meter asset number", "电能表资产编号", nullable=False),
        Column("area_id", pl.String(), "transformer area on the date", "台区编号"),
        Column("tariff_id", pl.String(), "tariff key on the date", "电价代码"),
        Column("kwh", pl.Float64(), "the day's kWh from meter_daily (0 when missing)", "日电量", unit="kWh"),
        Column("quality", pl.String(), "meter_daily quality of the day: actual, estimated, missing", "数据质量"),
        Column("txn_count", pl.Int16(), "purchases and effective reversals of the meter on the date", "交易笔数"),
        Column(
            "purchases_yuan",
            pl.Float64(),
            "purchases on the date minus purchases reversed on the date (a reversal counts on its own date)",
            "净购电金额",
            unit="yuan",
        ),
        Column(
            "consumption_yuan",
            pl.Float64(),
            "the day's kWh at the tariff and tier, full precision; empty when no tariff applies",
            "日电费",
            unit="yuan",
        ),
        Column(
            "balance_yuan",
            pl.Float64(),
            "computed balance at 24:00 of the date (see module doc); empty before the anchor date",
            "计算余额",
            unit="yuan",
        ),
        Column(
            "meter_balance_yuan",
            pl.Float64(),
            "remaining_yuan frozen by the meter at 00:00 of the next day",
            "表计余额",
            unit="yuan",
        ),
        Column("difference_yuan", pl.Float64(), "meter_balance_yuan - balance_yuan", "余额差", unit="yuan"),
        Column(
            "balance_anchor_date",
            pl.Date(),
            "date whose end-of-day meter reading anchors balance_yuan; empty before it",
            "余额起算日",
        ),
        Column(
            "status",
            pl.String(),
            "mismatch, arrears, low or ok; empty before the anchor date",
            "余额状态",
            codes=STATUSES,
        ),
    ),
    key=("customer_id", "meter_id", "date"),
    partition_by="date",
)
