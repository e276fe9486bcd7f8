"""outage_plan_checks: how each outage plan was executed (停电计划执行情况).

One row per plan (its latest revision): executed or not, notice lead time against the
notice rules of 供电营业规则 (7 days planned, 24 hours temporary), started early or overran
by more than the tolerance, actual against planned minutes, and customers affected against
the customers in the plan's scope. Rebuilt whole from every plan and every outage event.
"""

import polars as pl

from ._base import Column, Table

STATUSES = ("executed", "not_executed", "pending")

OUTAGE_PLAN_CHECKS = Table(
    name="outage_plan_checks",
    zh="停电计划执行核查",
    description="per outage plan: executed, notice lead time, early start, overrun, scope",
    columns=(
        Column("month", pl.String(), "YYYY-MM of the planned start (partition key)", "月份"),
        Column("plan_id", pl.String(), "outage plan number", "停电计划编号", nullable=False),
        Column("kind", pl.String(), "planned or temporary", "停电类型"),
        Column("org_id", pl.String(), "supply unit of the feeder", "供电单位编码"),
        Column("feeder_id", pl.String(), "10 kV feeder", "线路编号"),
        Column("area_id", pl.String(), "transformer area; empty = the whole feeder", "台区编号"),
        Column("planned_start", pl.Datetime("us"), "planned start", "计划停电开始时间"),
        Column("planned_end", pl.Datetime("us"), "planned end", "计划停电结束时间"),
        Column("notice_time", pl.Datetime("us"), "when customers were told", "通知发布时间"),
        Column(
            "status",
            pl.String(),
            "executed; not_executed (no outage by the planned end); pending (the lake ends before it)",
            "执行状态",
            codes=STATUSES,
        ),
        Column("notice_lead_hours", pl.Float64(), "planned start - notice time", "提前通知时长", unit="h"),
        Column("notice_required_hours", pl.Float64(), "the rule for the plan's kind", "应提前通知时长", unit="h"),
        Column("notice_ok", pl.Boolean(), "notice_lead_hours >= notice_required_hours", "通知及时"),
        Column("actual_start", pl.Datetime("us"), "first start of its outages", "实际停电开始时间"),
        Column("actual_end", pl.Datetime("us"), "last end of its outages", "实际停电结束时间"),
        Column("planned_min", pl.Float64(), "planned end - planned start", "计划停电时长", unit="min"),
        Column("actual_min", pl.Float64(), "actual end - actual start", "实际停电时长", unit="min"),
        Column("started_early", pl.Boolean(), "started more than the tolerance before the plan", "提前停电"),
        Column("overran", pl.Boolean(), "ended more than the tolerance after the plan", "超时停电"),
        Column("customers_in_scope", pl.Int64(), "customers of the feeder/area at the planned start", "计划停电户数"),
        Column("customers_affected", pl.Int64(), "customers its outages interrupted", "实际停电户数"),
        Column("outages", pl.Int64(), "outage events matched to it", "停电事件数"),
        Column(
            "wider_than_plan", pl.Boolean(), "outages outside its scope, or more customers than planned", "超范围停电"
        ),
        Column(
            "deviations",
            pl.String(),
            "comma-separated: not_executed, late_notice, early_start, overrun, wider_than_plan",
            "计划偏差",
        ),
    ),
    key=("plan_id",),
    partition_by="month",
)
