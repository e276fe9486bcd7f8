"""Meter and customer master data (档案) snapshots."""

import polars as pl

from .landing import Field, Landing, clean_table

ROLES = ("feeder_head", "area_master", "customer")
CLASSES = ("resident", "commercial", "industrial", "agricultural")

FIELDS = (
    Field(
        "snapshot_date",
        "档案日期",
        "date",
        "date of the full snapshot; valid until the meter's next snapshot",
        not_null=True,
    ),
    Field("meter_id", "电能表资产编号", "string", "meter asset number (leading zeros kept)", not_null=True),
    Field("customer_id", "用户编号", "string", "customer number; empty for feeder_head and area_master meters"),
    Field("area_id", "台区编号", "string", "transformer area; empty for feeder heads and 10 kV customers"),
    Field("feeder_id", "线路编号", "string", "10 kV feeder", not_null=True),
    Field("role", "计量点类型", "code", "feeder_head, area_master or customer", codes=ROLES, not_null=True),
    Field("customer_class", "用电类别", "code", "empty unless role is customer", codes=CLASSES),
    Field("tariff_id", "电价代码", "string", "key into the tariff configuration"),
    Field("multiplier", "综合倍率", "float", "CT x PT ratio", minimum=1.0, not_null=True),
    Field(
        "register_max",
        "表码满值",
        "float",
        "registers roll over to 0 on reaching this value",
        unit="kWh",
        exclusive_minimum=0.0,
        not_null=True,
    ),
    Field("prepay", "费控标志", "int", "1 for an IC-card prepayment customer", minimum=0, not_null=True),
    Field(
        "pv_capacity_kw",
        "光伏装机容量",
        "float",
        "installed PV of a customer; empty = 0 = no PV (only PV customers' reverse kWh is area supply); "
        "left empty in the clean table when the file has no such column (PV then inferred from history)",
        unit="kW",
        minimum=0.0,
        required=False,
        empty_as="0",
    ),
    Field(
        "org_id",
        "供电单位编码",
        "string",
        "the county company or supply office that owns the meter; empty or absent = the default unit",
        required=False,
    ),
)

LANDING = Landing(
    dataset="archive",
    zh="档案",
    fields=FIELDS,
    key=("meter_id", "snapshot_date"),
    date_field="snapshot_date",
    clean=clean_table(
        "archive",
        "档案",
        "meter and customer master data, one row per meter per snapshot",
        FIELDS,
        ("meter_id", "snapshot_date"),
        "snapshot_date",
    ),
)
assert LANDING.clean.column("prepay").dtype == pl.Int64
