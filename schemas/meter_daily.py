"""meter_daily: daily primary-side energy per meter (the base of loss, anomalies and bills)."""

import polars as pl

from ._base import Column, Table

QUALITY = ("actual", "estimated", "missing")

METER_DAILY = Table(
    name="meter_daily",
    zh="电能表日电量",
    description=(
        "one row per meter in service and local date: consumption of day D = "
        "(register frozen at D+1 00:00 - register frozen at D 00:00) x the multiplier of the "
        "archive row valid on D; rollover at register_max; days between missing readings share "
        "the difference (by curve where complete, else evenly) and are estimated"
    ),
    columns=(
        Column("date", pl.Date(), "local date of consumption (partition key)", "日期"),
        Column("meter_id", pl.String(), "meter asset number", "电能表资产编号", nullable=False),
        Column("customer_id", pl.String(), "customer number (empty for master and feeder-head meters)", "用户编号"),
        Column("area_id", pl.String(), "transformer area from the archive row valid on the date", "台区编号"),
        Column("feeder_id", pl.String(), "10 kV feeder from the archive row valid on the date", "线路编号"),
        Column(
            "role",
            pl.String(),
            "feeder_head, area_master or customer",
            "计量点类型",
            codes=("feeder_head", "area_master", "customer"),
        ),
        Column("customer_class", pl.String(), "resident, commercial, industrial, agricultural", "用电类别"),
        Column("tariff_id", pl.String(), "tariff key", "电价代码"),
        Column("prepay", pl.Int8(), "1 for an IC-card prepayment customer", "费控标志"),
        Column("multiplier", pl.Float64(), "CT x PT ratio applied", "综合倍率"),
        Column(
            "pv_capacity_kw",
            pl.Float64(),
            "installed PV from the archive row valid on the date (0 = none); empty when the archive "
            "had no such column (line loss then infers PV from the reverse register's history)",
            "光伏装机容量",
            unit="kW",
        ),
        Column("kwh", pl.Float64(), "forward active energy of the day, primary side", "日正向有功电量", unit="kWh"),
        Column("kwh_sharp", pl.Float64(), "sharp (尖) TOU register change, primary side", "尖电量", unit="kWh"),
        Column("kwh_peak", pl.Float64(), "peak (峰) TOU register change, primary side", "峰电量", unit="kWh"),
        Column("kwh_flat", pl.Float64(), "flat (平) TOU register change, primary side", "平电量", unit="kWh"),
        Column("kwh_valley", pl.Float64(), "valley (谷) TOU register change, primary side", "谷电量", unit="kWh"),
        Column(
            "reverse_kwh",
            pl.Float64(),
            "reverse active energy of the day (export), primary side",
            "日反向有功电量",
            unit="kWh",
        ),
        Column("quality", pl.String(), "actual, estimated or missing", "数据质量", codes=QUALITY, nullable=False),
        Column(
            "method",
            pl.String(),
            "how the value came to be: register, register_rollover, share_by_curve, share_even, none",
            "计算方法",
        ),
        Column(
            "curve_kwh",
            pl.Float64(),
            "sum of the day's 96 validated slots x multiplier; empty unless all 96 slots are present",
            "曲线电量",
            unit="kWh",
        ),
        Column("curve_slots_read", pl.Int16(), "number of the day's 96 slots that arrived", "曲线点数"),
        Column("register_read", pl.Boolean(), "the register frozen at 00:00 of this date arrived", "当日示值到达"),
        Column(
            "reading_from",
            pl.Date(),
            "freeze date of the reading the day's value starts from (the date itself unless a reading is missing)",
            "起始示值日期",
        ),
        Column(
            "reading_to",
            pl.Date(),
            "freeze date of the reading the day's value ends at (the next day unless a reading is missing)",
            "截止示值日期",
        ),
        Column(
            "remaining_yuan",
            pl.Float64(),
            "prepay meters: remaining_yuan frozen at 00:00 of the next day",
            "次日零点剩余金额",
            unit="yuan",
        ),
    ),
    key=("meter_id", "date"),
    partition_by="date",
)
