"""area_loss_daily: transformer-area line loss per day (台区日线损).

CONTRACT §3 v2: supply = area master kWh + Σ reverse kWh of the customers with PV
(``pv_capacity_kw > 0`` in the archive: export into the area); reverse kWh of a customer
without PV is no supply (reversed wiring or unregistered PV) and is shown apart; sales = Σ customer forward kWh; loss = supply - sales; loss_rate = loss / supply.
Membership is the archive row valid on the day (already resolved in meter_daily).

A figure is given only when every value it is made of is present (actual or
estimated): ``supply_kwh`` is empty when a master meter's day is missing, ``sales_kwh``
when a customer's day is missing, ``loss_rate`` when either is empty or supply is not
positive. ``status`` says whether the day counts: ``uncomputable`` (不可算) days keep
their figures where they exist (e.g. an estimated master) so analysts can see them, but
they are not a loss figure to report.
"""

import polars as pl

from ._base import Column, Table

STATUSES = ("normal", "high", "negative", "uncomputable")

#: the band a row was judged by (config/loss.toml: the area's own, its class's, or the defaults)
BAND_COLUMNS = (
    Column(
        "band_low",
        pl.Float64(),
        "the band's lower edge: below it the rate is negative (负损)",
        "合理区间下限",
        unit="1",
    ),
    Column(
        "band_high", pl.Float64(), "the band's upper edge: above it the rate is high (高损)", "合理区间上限", unit="1"
    ),
    Column(
        "economic_low", pl.Float64(), "lower edge of the economic band, when one is set", "经济线损率下限", unit="1"
    ),
    Column(
        "economic_high", pl.Float64(), "upper edge of the economic band, when one is set", "经济线损率上限", unit="1"
    ),
    Column(
        "in_economic_band",
        pl.Boolean(),
        "the rate lies within the economic band; empty without one or when uncomputable",
        "是否经济运行",
    ),
)

#: why a day is uncomputable (不可算); several are joined with "," in this order
REASONS = {
    "archive_no_master": "the archive has no area_master meter for the area on this day (archive problem)",
    "archive_no_customers": "the archive has no customer meter in the area on this day (archive problem)",
    "master_missing": "a master meter's day has no value (quality missing)",
    "master_estimated": "a master meter's day is estimated, not actual",
    "customer_missing": "a customer meter's day has no value (quality missing): sales are unknown",
    "collection_incomplete": "fewer customer meters than min_actual_share have an actual day",
    "zero_supply": "supply is zero (outage all day?): the rate is undefined",
}

AREA_LOSS_DAILY = Table(
    name="area_loss_daily",
    zh="台区日线损",
    description=(
        "one row per transformer area and local date: supply, sales, loss and loss rate "
        "(CONTRACT §3), the status (合格/高损/负损/不可算) with the reason when uncomputable, "
        "and the collection counts the status rests on"
    ),
    columns=(
        Column("date", pl.Date(), "local date (partition key)", "日期"),
        Column("area_id", pl.String(), "transformer area", "台区编号", nullable=False),
        Column(
            "feeder_id",
            pl.String(),
            "10 kV feeder of the area's master meter (else of its customers) on the day",
            "线路编号",
        ),
        Column(
            "area_class",
            pl.String(),
            "threshold class of the area (config/loss.toml [[area_class]]; 'default' otherwise)",
            "台区分类",
            nullable=False,
        ),
        Column(
            "master_meter_id",
            pl.String(),
            "the area master meter (the smallest id when the archive names several)",
            "台区总表资产编号",
        ),
        Column(
            "master_kwh",
            pl.Float64(),
            "forward kWh of the area master meter(s); empty when one is missing",
            "总表电量",
            unit="kWh",
        ),
        Column(
            "pv_export_kwh",
            pl.Float64(),
            "Σ reverse kWh of the area's customers with PV whose day has a value (PV export into the area)",
            "光伏上网电量",
            unit="kWh",
        ),
        Column(
            "reverse_no_pv_kwh",
            pl.Float64(),
            "Σ reverse kWh of the area's customers without PV: not supply (reversed wiring or unregistered PV)",
            "无光伏反向电量",
            unit="kWh",
        ),
        Column("pv_customers", pl.Int32(), "customers of the area with PV on the day", "光伏用户数"),
        Column(
            "pv_basis",
            pl.String(),
            "archive (every customer's PV from pv_capacity_kw) or inferred (some customer's PV inferred from "
            "its reverse register's history: the archive has no pv_capacity_kw)",
            "光伏认定依据",
            codes=("archive", "inferred"),
        ),
        Column("supply_kwh", pl.Float64(), "master_kwh + pv_export_kwh", "供电量", unit="kWh"),
        Column(
            "sales_kwh",
            pl.Float64(),
            "Σ forward kWh of the area's customers; empty when one is missing",
            "售电量",
            unit="kWh",
        ),
        Column("loss_kwh", pl.Float64(), "supply_kwh - sales_kwh", "损失电量", unit="kWh"),
        Column(
            "loss_rate",
            pl.Float64(),
            "loss_kwh / supply_kwh as a fraction (0.05 = 5%); empty when supply or sales is empty or supply <= 0",
            "线损率",
            unit="1",
        ),
        Column(
            "status", pl.String(), "normal, high, negative or uncomputable", "线损状态", codes=STATUSES, nullable=False
        ),
        Column("reason", pl.String(), "uncomputable only: reason codes (see REASONS) joined with ','", "不可算原因"),
        Column(
            "master_quality",
            pl.String(),
            "actual, estimated or missing (the worst of the master meters); empty without a master",
            "总表数据质量",
        ),
        Column("customer_meters", pl.Int32(), "customer meters of the area on the day", "用户表数"),
        Column("customers_actual", pl.Int32(), "customer meters with an actual day", "实抄用户数"),
        Column("customers_estimated", pl.Int32(), "customer meters with an estimated day", "估算用户数"),
        Column("customers_missing", pl.Int32(), "customer meters whose day has no value", "缺数用户数"),
        Column("actual_share", pl.Float64(), "customers_actual / customer_meters", "实抄率", unit="1"),
        *BAND_COLUMNS,
    ),
    key=("area_id", "date"),
    partition_by="date",
)
