"""area_loss_monthly: transformer-area line loss per month (台区月线损).

CONTRACT §3 v2: monthly figures are sums of kWh over the month's days the lake holds
(month-to-date for the current month), estimated days included, never averages of
rates. Each day counts the customers that belonged to the area on that day, so a
customer who moves area mid-month counts in each area for its own days. A meter-day
still without a value is substituted with the meter's mean over its days of the month
that have one (``substituted_kwh``); ``coverage`` is the share of customer meter-days
with a value. The month is ``uncomputable`` only when the master meter has more than
``max_master_substituted_days`` substituted days or none with a value, coverage is
below ``min_coverage``, the archive lacks the meters, or supply is zero. Once a late
reading arrives the month is rebuilt with it and the substitution is gone.
"""

import polars as pl

from ._base import Column, Table
from .area_loss_daily import BAND_COLUMNS

STATUSES = ("normal", "high", "negative", "uncomputable")

#: why a month is uncomputable (不可算); several are joined with "," in this order
REASONS = {
    "archive_no_master": "on some day the archive has no area_master meter for the area",
    "archive_no_customers": "on some day the archive has no customer meter in the area",
    "master_missing": "the master meter has more than max_master_substituted_days days without a value, or none with one",
    "customer_missing": "coverage (customer meter-days with a value / in service) is below min_coverage",
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
        Column(
            "master_kwh",
            pl.Float64(),
            "Σ daily master kWh, days without a value substituted; empty when the master has no value in the month",
            "总表电量",
            unit="kWh",
        ),
        Column(
            "pv_export_kwh",
            pl.Float64(),
            "Σ daily reverse kWh of the customers with PV (export into the area), substituted days included",
            "光伏上网电量",
            unit="kWh",
        ),
        Column(
            "reverse_no_pv_kwh",
            pl.Float64(),
            "Σ daily reverse kWh of customers without PV: not supply (reversed wiring or unregistered PV)",
            "无光伏反向电量",
            unit="kWh",
        ),
        Column("pv_customers", pl.Int32(), "customers of the area with PV (the most on any day)", "光伏用户数"),
        Column(
            "pv_basis",
            pl.String(),
            "archive, or inferred when on some day some customer's PV was inferred from history (no pv_capacity_kw)",
            "光伏认定依据",
            codes=("archive", "inferred"),
        ),
        Column("supply_kwh", pl.Float64(), "master_kwh + pv_export_kwh", "供电量", unit="kWh"),
        Column("sales_kwh", pl.Float64(), "Σ daily customer kWh, substituted days included", "售电量", unit="kWh"),
        Column(
            "substituted_kwh",
            pl.Float64(),
            "kWh of the meter-days without a value, each at its meter's mean of the month (master, customer "
            "and PV export together); 0 when every day has a value",
            "替代电量",
            unit="kWh",
        ),
        Column(
            "coverage",
            pl.Float64(),
            "customer meter-days with a value (actual or estimated) / customer meter-days in service",
            "数据覆盖率",
            unit="1",
        ),
        Column(
            "master_substituted_days", pl.Int32(), "master meter-days without a value (substituted)", "总表替代天数"
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
        *BAND_COLUMNS,
    ),
    key=("area_id", "month"),
    partition_by="month",
)
