"""Daily frozen register readings (日冻结示值)."""

from .landing import Field, Landing, clean_table

FIELDS = (
    Field("meter_id", "电能表资产编号", "string", "meter asset number", not_null=True),
    Field("freeze_date", "冻结日期", "date", "reading frozen at 00:00 of this date", not_null=True),
    Field("total_kwh", "正向有功总", "float", "forward active total register, meter side", unit="kWh", minimum=0.0),
    Field(
        "sharp_kwh",
        "正向有功尖",
        "float",
        "forward active sharp (尖) TOU register, meter side",
        unit="kWh",
        minimum=0.0,
        required=False,
    ),
    Field(
        "peak_kwh",
        "正向有功峰",
        "float",
        "forward active peak (峰) TOU register, meter side",
        unit="kWh",
        minimum=0.0,
        required=False,
    ),
    Field(
        "flat_kwh",
        "正向有功平",
        "float",
        "forward active flat (平) TOU register, meter side",
        unit="kWh",
        minimum=0.0,
        required=False,
    ),
    Field(
        "valley_kwh",
        "正向有功谷",
        "float",
        "forward active valley (谷) TOU register, meter side",
        unit="kWh",
        minimum=0.0,
        required=False,
    ),
    Field(
        "reverse_kwh",
        "反向有功总",
        "float",
        "reverse active total register, meter side (e.g. PV export)",
        unit="kWh",
        minimum=0.0,
        required=False,
    ),
    Field(
        "remaining_yuan",
        "剩余金额",
        "float",
        "prepay meters only: balance held by the meter; negative = overdraft",
        unit="yuan",
        required=False,
    ),
    Field(
        "purchase_count",
        "购电次数",
        "int",
        "prepay meters only: purchases the meter has accepted",
        minimum=0,
        required=False,
    ),
)

LANDING = Landing(
    dataset="registers",
    zh="日冻结示值",
    fields=FIELDS,
    key=("meter_id", "freeze_date"),
    date_field="freeze_date",
    clean=clean_table(
        "registers",
        "日冻结示值",
        "daily frozen register readings, meter side",
        FIELDS,
        ("meter_id", "freeze_date"),
        "freeze_date",
    ),
)
