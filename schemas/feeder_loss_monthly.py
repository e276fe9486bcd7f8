"""feeder_loss_monthly: 10 kV feeder line loss per month (10kV线路月线损).

Sums of the feeder's daily kWh over the month's days the lake holds, estimated days
included; a meter-day still without a value is substituted with its meter's mean of
the month (CONTRACT §3 v2, as area_loss_monthly, with the head meter as the master and
the area masters and directly fed customers in the customer role). The monthly status
follows the monthly rate; ``uncomputable`` when the head has more than
``max_master_substituted_days`` substituted days or none with a value, or coverage of
the downstream meter-days is below ``min_coverage``.
"""

import polars as pl

from ._base import Column, Table
from .area_loss_daily import BAND_COLUMNS

STATUSES = ("normal", "high", "negative", "uncomputable")

#: why a month is uncomputable (不可算); several are joined with "," in this order
REASONS = {
    "archive_no_head": "on some day the archive has no feeder_head meter for the feeder",
    "archive_no_downstream": "on some day the archive has no area master or direct customer on the feeder",
    "head_missing": "the head meter has more than max_master_substituted_days days without a value, or none with one",
    "downstream_missing": "coverage (area master and direct customer meter-days with a value) is below min_coverage",
    "zero_supply": "the month's supply is zero: the rate is undefined",
}

FEEDER_LOSS_MONTHLY = Table(
    name="feeder_loss_monthly",
    zh="10kV线路月线损",
    description=(
        "one row per 10 kV feeder and month: Σ head kWh, Σ area master and direct customer kWh, "
        "loss and the monthly rate over the days the lake holds; status from the monthly rate"
    ),
    columns=(
        Column("month", pl.String(), "YYYY-MM (partition key)", "月份"),
        Column("feeder_id", pl.String(), "10 kV feeder", "线路编号", nullable=False),
        Column("days", pl.Int32(), "days of the month the lake holds for the feeder", "天数"),
        Column(
            "supply_kwh",
            pl.Float64(),
            "Σ daily head kWh, days without a value substituted; empty when the head has no value in the month",
            "供电量",
            unit="kWh",
        ),
        Column("area_masters_kwh", pl.Float64(), "Σ daily area master kWh on the feeder", "台区总表电量", unit="kWh"),
        Column(
            "direct_customers_kwh", pl.Float64(), "Σ daily kWh of directly fed customers", "专变用户电量", unit="kWh"
        ),
        Column(
            "sales_kwh",
            pl.Float64(),
            "area_masters_kwh + direct_customers_kwh, substituted days included",
            "售电量",
            unit="kWh",
        ),
        Column(
            "substituted_kwh",
            pl.Float64(),
            "kWh of the meter-days without a value, each at its meter's mean of the month (head and downstream)",
            "替代电量",
            unit="kWh",
        ),
        Column(
            "coverage",
            pl.Float64(),
            "area master and direct customer meter-days with a value / those in service",
            "数据覆盖率",
            unit="1",
        ),
        Column("head_substituted_days", pl.Int32(), "head meter-days without a value (substituted)", "关口表替代天数"),
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
        Column("days_uncomputable", pl.Int32(), "days whose daily status is uncomputable", "日不可算天数"),
        Column("meter_days_estimated", pl.Int32(), "head and downstream meter-days that are estimated", "估算表天数"),
        Column("meter_days_missing", pl.Int32(), "head and downstream meter-days without a value", "缺数表天数"),
        *BAND_COLUMNS,
    ),
    key=("feeder_id", "month"),
    partition_by="month",
)
