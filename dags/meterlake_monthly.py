"""meterlake_monthly: close the previous month, 08:00 Asia/Shanghai on the 2nd.

Reruns loss, billing and receivables over every day of the month, so area_loss_monthly,
bills_monthly, receivables_monthly and recovery_monthly are rebuilt from all the month's days the lake holds (late files of the
month's last day were ingested by the 06:00 daily run of the 2nd), then the quality
gate; a passing gate emits ``meterlake.checked`` with the month and its
dates, which triggers ``meterlake_publish``, and the ``docs`` task renders the gate's
Data Docs page. The param ``month`` (YYYY-MM) closes another month.
"""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable, dag, get_current_context, task
from meterlake_common import (
    BILLING,
    CHECKED,
    DATA_DOCS,
    DEFAULT_ARGS,
    LOSS,
    MONTHLY_CRON,
    MONTHLY_PARAMS,
    RECEIVABLES,
    START_DATE,
    TAGS,
    TZ,
    plan_monthly,
    stage_task,
)


@task
def plan() -> dict:
    """Every day of the month to close (the previous one, or params.month)."""
    return plan_monthly(get_current_context())


@dag(
    dag_id="meterlake_monthly",
    schedule=CronTriggerTimetable(MONTHLY_CRON, timezone=TZ),
    start_date=START_DATE,
    catchup=False,
    # a new deployment starts its schedule only when an operator unpauses it
    is_paused_upon_creation=True,
    max_active_runs=1,
    params=MONTHLY_PARAMS,
    default_args=DEFAULT_ARGS,
    tags=TAGS,
    doc_md=__doc__,
)
def meterlake_monthly() -> None:
    month = plan()
    gate = stage_task("check", CHECKED, retries=0)
    losses = stage_task("loss", LOSS)(month)
    # billing reads the loss diagnosis (bills of a multiplier suspect are held for review)
    billed = stage_task("receivables", RECEIVABLES)(stage_task("billing", BILLING)(losses))
    passed = gate(losses, billed)
    stage_task("docs", DATA_DOCS)(passed)


meterlake_monthly()
