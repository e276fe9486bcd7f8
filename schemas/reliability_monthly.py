"""reliability_monthly: supply reliability per area, feeder and supply unit (供电可靠性, DL/T 836).

An area interruption interrupts every customer of the area in service at its start, a
customer interruption one customer; momentary ones (≤ 3 min) count in none. Customers
served are the scope's customers in service on the month's last day. SAIFI = Σ customer
interruptions / customers served (平均停电频率); SAIDI = Σ customer interruption hours /
customers served (平均停电时间); RS-1 = 1 − SAIDI / hours of the month (供电可靠率). The
``_unplanned`` columns leave out pre-arranged outages (预安排停电: planned and temporary).
"""

import polars as pl

from ._base import Column, Table

SCOPES = ("area", "feeder", "org")

RELIABILITY_MONTHLY = Table(
    name="reliability_monthly",
    zh="供电可靠性月统计",
    description="per area, feeder and org unit and month: customers served, interruptions, SAIFI, SAIDI, RS-1",
    columns=(
        Column("month", pl.String(), "YYYY-MM (partition key)", "月份"),
        Column("scope", pl.String(), "area, feeder or org", "统计范围", codes=SCOPES, nullable=False),
        Column("scope_id", pl.String(), "area_id, feeder_id or org_id", "范围编号", nullable=False),
        Column("customers_served", pl.Int64(), "customers in service on the month's last day", "用户总数"),
        Column("customer_interruptions", pl.Int64(), "Σ customers interrupted (停电户次)", "停电户次"),
        Column("customer_hours", pl.Float64(), "Σ customer interruption hours (停电时户数)", "停电时户数", unit="h"),
        Column("saifi", pl.Float64(), "customer_interruptions / customers_served", "平均停电频率"),
        Column("saidi_hours", pl.Float64(), "customer_hours / customers_served", "平均停电时间", unit="h"),
        Column("rs1", pl.Float64(), "1 - saidi_hours / period_hours", "供电可靠率", unit="1"),
        Column("customer_interruptions_unplanned", pl.Int64(), "as above, faults only", "故障停电户次"),
        Column("customer_hours_unplanned", pl.Float64(), "as above, faults only", "故障停电时户数", unit="h"),
        Column("saifi_unplanned", pl.Float64(), "SAIFI without pre-arranged outages", "不计预安排平均停电频率"),
        Column(
            "saidi_unplanned_hours",
            pl.Float64(),
            "SAIDI without pre-arranged outages",
            "不计预安排平均停电时间",
            unit="h",
        ),
        Column("rs1_unplanned", pl.Float64(), "RS-1 without pre-arranged outages", "不计预安排供电可靠率", unit="1"),
        Column("period_hours", pl.Float64(), "hours of the calendar month", "统计期小时数", unit="h"),
    ),
    key=("month", "scope", "scope_id"),
    partition_by="month",
)
