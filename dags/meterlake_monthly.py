"""meterlake_monthly: close the previous month, 08:00 Asia/Shanghai on the 2nd.

Reruns loss and billing over every day of the month, so area_loss_monthly and
bills_monthly are rebuilt from all the month's days the lake holds (late files of the
month's last day were ingested by the 06:00 daily run of the 2nd), then the Great
Expectations gate; a passing gate emits ``meterlake.checked`` with the month and its
dates, which triggers ``meterlake_publish``. The param ``month`` (YYYY-MM) closes
another month.
"""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable, Metadata, dag, get_current_context, task
from meterlake_common import (
    BILLING,
    CHECKED,
    DEFAULT_ARGS,
    LOSS,
    MONTHLY_CRON,
    MONTHLY_PARAMS,
    START_DATE,
    TAGS,
    TZ,
    event_extra,
    merge,
    plan_monthly,
    run_stage,
)


@task
def plan() -> dict:
    """Every day of the month to close (the previous one, or params.month)."""
    return plan_monthly(get_current_context())


@task(outlets=[LOSS])
def loss(plan: dict):
    done = run_stage("loss", plan)
    yield Metadata(LOSS, extra=event_extra(done))
    return done


@task(outlets=[BILLING])
def billing(plan: dict):
    done = run_stage("billing", plan)
    yield Metadata(BILLING, extra=event_extra(done))
    return done


@task(outlets=[CHECKED], retries=0)
def check(*branches: dict):
    """The gate: a blocking expectation fails here and CHECKED is not emitted."""
    done = run_stage("check", merge(*branches))
    yield Metadata(CHECKED, extra=event_extra(done))
    return done


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
def meterlake_monthly():
    month = plan()
    check(loss(month), billing(month))


meterlake_monthly()
