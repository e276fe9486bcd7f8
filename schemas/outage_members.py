"""outage_members: the meter interruptions each outage event is made of (停电事件明细).

One row per meter interruption: for an area interruption, the master meter's and those of
the customers that went off with it; for a customer interruption, its own. Read by the
mapping check (户变关系 from outages) over a window of days.
"""

import polars as pl

from ._base import Column, Table

OUTAGE_MEMBERS = Table(
    name="outage_members",
    zh="停电事件明细",
    description="the meter interruptions of each outage event",
    columns=(
        Column("date", pl.Date(), "local date of the event's start (partition key)", "停电日期"),
        Column("outage_id", pl.String(), "the outage event (outage_events)", "停电事件编号", nullable=False),
        Column("meter_id", pl.String(), "a meter that went off", "电能表资产编号", nullable=False),
        Column("start_time", pl.Datetime("us"), "its own interruption's start", "停电开始时间"),
        Column("end_time", pl.Datetime("us"), "its own interruption's end", "停电结束时间"),
    ),
    key=("date", "outage_id", "meter_id", "start_time"),
    partition_by="date",
)
