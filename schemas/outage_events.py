"""outage_events: supply interruptions found in the meters' power-off/power-on events (停电事件).

One row per interruption. ``level = area``: the area master meter's interruption, or one
where at least half of the area's customer meters went off within 5 minutes of each other;
it interrupts every customer of the area in service at its start. ``level = customer``: a
customer meter's own interruption. Each is matched to an outage plan of its feeder or area
(``cause`` = the plan's kind) or is a ``fault``. Momentary interruptions (≤ 3 min) are kept
with ``momentary`` = true and count in no reliability index. The rules and figures are in
``config/outages.toml``; docs/domain.md "Outages and reliability" explains them.
"""

import polars as pl

from ._base import Column, Table

LEVELS = ("area", "customer")
SOURCES = ("master", "customers", "meter")
CAUSES = ("planned", "temporary", "fault")
DEVIATIONS = ("late_notice", "early_start", "overrun", "outside_plan_scope")
EVIDENCE = ("event", "curve", "customers", "open")

OUTAGE_EVENTS = Table(
    name="outage_events",
    zh="停电事件",
    description="supply interruptions from meter events: area and customer level, cause, plan and deviations",
    columns=(
        Column("date", pl.Date(), "local date of the start (partition key)", "停电日期"),
        Column("outage_id", pl.String(), "A-<area>-<start> or C-<meter>-<start>", "停电事件编号", nullable=False),
        Column(
            "level", pl.String(), "area (台区停电) or customer (单户停电)", "停电层级", codes=LEVELS, nullable=False
        ),
        Column(
            "source",
            pl.String(),
            "what showed it: the area master meter, its customers together, or one customer meter",
            "判定依据",
            codes=SOURCES,
        ),
        Column("org_id", pl.String(), "supply unit", "供电单位编码"),
        Column("feeder_id", pl.String(), "10 kV feeder", "线路编号"),
        Column("area_id", pl.String(), "transformer area (empty for a customer fed at 10 kV)", "台区编号"),
        Column("meter_id", pl.String(), "the customer meter (customer level only)", "电能表资产编号"),
        Column("customer_id", pl.String(), "its customer (customer level only)", "用户编号"),
        Column(
            "start_time", pl.Datetime("us"), "start of the interruption, local time", "停电开始时间", nullable=False
        ),
        Column("end_time", pl.Datetime("us"), "end (supply back), local time; empty while open", "停电结束时间"),
        Column("duration_min", pl.Float64(), "end - start", "停电时长", unit="min"),
        Column("momentary", pl.Boolean(), "3 minutes or less: counts in no index (瞬时停电)", "瞬时停电"),
        Column("meters_off", pl.Int64(), "meters whose own events or curves show the interruption", "停电表数"),
        Column(
            "customers_affected",
            pl.Int64(),
            "customers interrupted: the area's customers in service at the start, or 1",
            "停电户数",
        ),
        Column("cause", pl.String(), "planned (计划), temporary (临时) or fault (故障)", "停电原因", codes=CAUSES),
        Column("plan_id", pl.String(), "the outage plan it executes", "停电计划编号"),
        Column(
            "deviations",
            pl.String(),
            "comma-separated: late_notice, early_start, overrun, outside_plan_scope; empty = none",
            "计划偏差",
        ),
        Column("start_source", pl.String(), "evidence of the start: event, curve, customers", "开始依据"),
        Column("end_source", pl.String(), "evidence of the end: event, curve, customers; open = none yet", "结束依据"),
    ),
    key=("outage_id",),
    partition_by="date",
)
