"""96-point interval load curves (96点负荷曲线)."""

from .landing import Field, Landing, clean_table

SLOTS = tuple(f"p{i}" for i in range(1, 97))

FIELDS = (
    Field("meter_id", "电能表资产编号", "string", "meter asset number", not_null=True),
    Field("data_date", "数据日期", "date", "local date of the curve", not_null=True),
    *tuple(
        Field(
            f"p{i}",
            f"点{i}",
            "float",
            f"forward active energy, meter side, in slot {i} "
            f"({(i - 1) // 4:02d}:{(i - 1) % 4 * 15:02d}-{i // 4:02d}:{i % 4 * 15:02d}); empty = not collected",
            unit="kWh",
        )
        for i in range(1, 97)
    ),
)

LANDING = Landing(
    dataset="curves",
    zh="96点负荷曲线",
    fields=FIELDS,
    key=("meter_id", "data_date"),
    date_field="data_date",
    clean=clean_table(
        "curves",
        "96点负荷曲线",
        "interval energy per meter and day, 96 slots, meter side (before the multiplier)",
        FIELDS,
        ("meter_id", "data_date"),
        "data_date",
    ),
)
