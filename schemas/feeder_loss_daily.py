"""feeder_loss_daily: 10 kV feeder line loss per day (10kV线路日线损).

CONTRACT §3: supply = feeder head kWh (关口表); sales = Σ area master kWh + Σ kWh of
customers fed directly from the feeder (专变用户: role customer with an empty
area_id); loss = supply - sales; loss_rate = loss / supply. The status rule is the
area rule with the head meter as the master and the area masters and direct
customers in the customer role. Figures are empty when a value they are made of is
missing, as in area_loss_daily.
"""

import polars as pl

from ._base import Column, Table

STATUSES = ("normal", "high", "negative", "uncomputable")

#: why a day is uncomputable (不可算); several are joined with "," in this order
REASONS = {
    "archive_no_head": "the archive has no feeder_head meter for the feeder on this day (archive problem)",
    "archive_no_downstream": "the archive has no area master or direct customer on the feeder (archive problem)",
    "head_missing": "a feeder head meter's day has no value (quality missing)",
    "head_estimated": "a feeder head meter's day is estimated, not actual",
    "downstream_missing": "an area master or direct customer's day has no value: sales are unknown",
    "collection_incomplete": "fewer downstream meters than min_actual_share have an actual day",
    "zero_supply": "supply is zero: the rate is undefined",
}

FEEDER_LOSS_DAILY = Table(
    name="feeder_loss_daily",
    zh="10kV线路日线损",
    description=(
        "one row per 10 kV feeder and local date: head-meter supply, sales to area masters "
        "and directly fed customers, loss, rate and status (CONTRACT §3)"
    ),
    columns=(
        Column("date", pl.Date(), "local date (partition key)", "日期"),
        Column("feeder_id", pl.String(), "10 kV feeder", "线路编号", nullable=False),
        Column(
            "head_meter_id",
            pl.String(),
            "the feeder head meter (the smallest id when there are several)",
            "关口表资产编号",
        ),
        Column(
            "supply_kwh",
            pl.Float64(),
            "forward kWh of the feeder head meter(s); empty when one is missing",
            "供电量",
            unit="kWh",
        ),
        Column(
            "area_masters_kwh",
            pl.Float64(),
            "Σ forward kWh of the area master meters on the feeder",
            "台区总表电量",
            unit="kWh",
        ),
        Column(
            "direct_customers_kwh",
            pl.Float64(),
            "Σ forward kWh of customers fed directly at 10 kV (no area)",
            "专变用户电量",
            unit="kWh",
        ),
        Column(
            "sales_kwh",
            pl.Float64(),
            "area_masters_kwh + direct_customers_kwh; empty when one value is missing",
            "售电量",
            unit="kWh",
        ),
        Column("loss_kwh", pl.Float64(), "supply_kwh - sales_kwh", "损失电量", unit="kWh"),
        Column(
            "loss_rate",
            pl.Float64(),
            "loss_kwh / supply_kwh as a fraction; empty when supply or sales is empty or supply <= 0",
            "线损率",
            unit="1",
        ),
        Column(
            "status", pl.String(), "normal, high, negative or uncomputable", "线损状态", codes=STATUSES, nullable=False
        ),
        Column("reason", pl.String(), "uncomputable only: reason codes (see REASONS) joined with ','", "不可算原因"),
        Column(
            "head_quality",
            pl.String(),
            "actual, estimated or missing (the worst head meter); empty without one",
            "关口表数据质量",
        ),
        Column("area_masters", pl.Int32(), "area master meters on the feeder", "台区总表数"),
        Column("direct_customers", pl.Int32(), "customer meters fed directly from the feeder", "专变用户数"),
        Column("downstream_actual", pl.Int32(), "area masters and direct customers with an actual day", "实抄表数"),
        Column(
            "downstream_estimated", pl.Int32(), "area masters and direct customers with an estimated day", "估算表数"
        ),
        Column(
            "downstream_missing", pl.Int32(), "area masters and direct customers whose day has no value", "缺数表数"
        ),
        Column(
            "actual_share", pl.Float64(), "downstream_actual / (area_masters + direct_customers)", "实抄率", unit="1"
        ),
    ),
    key=("feeder_id", "date"),
    partition_by="date",
)
