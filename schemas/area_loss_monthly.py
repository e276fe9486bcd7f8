"""area_loss_monthly: transformer-area line loss per month (台区月线损).

CONTRACT §3: monthly figures are sums of kWh over the month's days the lake holds
(month-to-date for the current month), estimated days included, never averages of
rates. Each day counts the customers that belonged to the area on that day, so a
customer who moves area mid-month counts in each area for its own days. A figure is
empty when some day lacks a value it is made of; the status then is ``uncomputable``.
"""

import polars as pl

from ._base import Column, Table

STATUSES = ("normal", "high", "negative", "uncomputable")

#: why a month is uncomputable (不可算); several are joined with "," in this order
REASONS = {
    "archive_no_master": "on some day the archive has no area_master meter for the area",
    "archive_no_customers": "on some day the archive has no customer meter in the area",
    "master_missing": "some day lacks a master meter value (quality missing)",
    "customer_missing": "some day lacks a customer meter value (quality missing)",
    "zero_supply": "the month's supply is zero: the rate is undefined",
}

AREA_LOSS_MONTHLY = Table(
    name="area_loss_monthly",
    zh="台区月线损",
    description=(
        "one row per transformer area and month: Σ supply, Σ sales, loss and the monthly rate "
        "over the days the lake holds, estimated days included; status from the monthly rate"
    ),
    columns=(
        Column("month", pl.String(), "YYYY-MM (partition key)", "月份"),
        Column("area_id", pl.String(), "transformer area", "台区编号", nullable=False),
        Column("feeder_id", pl.String(), "feeder of the area on its last day in the month", "线路编号"),
        Column("area_class", pl.String(), "threshold class of the area", "台区分类", nullable=False),
        Column("days", pl.Int32(), "days of the month the lake holds for the area", "天数"),
        Column("master_kwh", pl.Float64(), "Σ daily master kWh", "总表电量", unit="kWh"),
        Column("pv_export_kwh", pl.Float64(), "Σ daily customer reverse kWh (PV export)", "光伏上网电量", unit="kWh"),
        Column(
            "supply_kwh",
            pl.Float64(),
            "Σ daily supply kWh; empty when a day lacks a master value",
            "供电量",
            unit="kWh",
        ),
        Column(
            "sales_kwh",
            pl.Float64(),
            "Σ daily sales kWh; empty when a day lacks a customer value",
            "售电量",
            unit="kWh",
        ),
        Column("loss_kwh", pl.Float64(), "supply_kwh - sales_kwh", "损失电量", unit="kWh"),
        Column("loss_rate", pl.Float64(), "loss_kwh / supply_kwh as a fraction", "线损率", unit="1"),
        Column(
            "status",
            pl.String(),
            "normal, high, negative or uncomputable, from the monthly rate",
            "线损状态",
            codes=STATUSES,
            nullable=False,
        ),
        Column("reason", pl.String(), "uncomputable only: reason codes (see REASONS) joined with ','", "不可算原因"),
        Column(
            "days_uncomputable",
            pl.Int32(),
            "days whose daily status is uncomputable (the month can still be exact)",
            "日不可算天数",
        ),
        Column("meter_days_estimated", pl.Int32(), "master and customer meter-days that are estimated", "估算表天数"),
        Column("meter_days_missing", pl.Int32(), "master and customer meter-days without a value", "缺数表天数"),
    ),
    key=("area_id", "month"),
    partition_by="month",
)
