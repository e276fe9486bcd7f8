"""outage_meter_days: minutes each meter was without supply on each date (停电影响表日).

Read by the validate stage (curve slots wholly inside an interruption are zero supply, not
missing data to estimate; a register not frozen at 00:00 because the meter had no power)
and by the anomaly stage (a day with an outage is not a zero-consumption or sudden-drop
suspect). A meter is off during its own interruptions and its area's (also when its own
events were lost). Momentary interruptions are left out.
"""

import polars as pl

from ._base import Column, Table

OUTAGE_METER_DAYS = Table(
    name="outage_meter_days",
    zh="停电影响表日",
    description="per meter and date with an interruption: minutes without supply and the curve slots inside",
    columns=(
        Column("date", pl.Date(), "local date (partition key)", "日期"),
        Column("meter_id", pl.String(), "meter asset number", "电能表资产编号", nullable=False),
        Column("outage_min", pl.Float64(), "minutes of the date without supply", "停电时长", unit="min"),
        Column("first_slot", pl.Int32(), "first curve slot wholly inside an interruption (1-96)", "首个停电点"),
        Column("last_slot", pl.Int32(), "last curve slot of that run", "末个停电点"),
        Column("off_at_midnight", pl.Boolean(), "without supply at 00:00, when registers freeze", "零点停电"),
    ),
    key=("date", "meter_id"),
    partition_by="date",
)
