"""frequent_outage_customers: customers interrupted too often (频繁停电用户).

For each month, the customers with more than ``frequent.max_interruptions`` non-momentary
interruptions (area ones included) in the ``frequent.months`` months ending with it
(config/outages.toml). Frequent outages are the top cause of supply complaints.
"""

import polars as pl

from ._base import Column, Table

FREQUENT_OUTAGE_CUSTOMERS = Table(
    name="frequent_outage_customers",
    zh="频繁停电用户",
    description="customers interrupted more often than the configured count in the trailing months",
    columns=(
        Column("month", pl.String(), "YYYY-MM the window ends with (partition key)", "月份"),
        Column("customer_id", pl.String(), "customer number", "用户编号", nullable=False),
        Column("meter_id", pl.String(), "its meter (the latest)", "电能表资产编号"),
        Column("area_id", pl.String(), "its transformer area", "台区编号"),
        Column("feeder_id", pl.String(), "its feeder", "线路编号"),
        Column("org_id", pl.String(), "its supply unit", "供电单位编码"),
        Column("window_start", pl.Date(), "first day of the window", "统计起始日期"),
        Column("interruptions", pl.Int64(), "non-momentary interruptions in the window", "停电次数"),
        Column("fault_interruptions", pl.Int64(), "of those, faults", "故障停电次数"),
        Column("interruption_hours", pl.Float64(), "their total duration", "停电时长", unit="h"),
        Column("last_interruption", pl.Datetime("us"), "start of the latest one", "最近停电时间"),
        Column("threshold", pl.Int64(), "the configured count it exceeds", "频繁停电阈值"),
    ),
    key=("month", "customer_id"),
    partition_by="month",
)
