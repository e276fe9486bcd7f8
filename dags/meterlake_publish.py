"""meterlake_publish: reporting database, data dictionary, HTML report.

Scheduled on ``meterlake.checked``, which only a passing quality gate emits
(from ``meterlake_marts`` or ``meterlake_monthly``): nothing is published from marts
that failed a blocking expectation. The publish stage finds the production PostgreSQL
reporting database itself: the worker's METERLAKE_PG_DSN, else (inside an Airflow task)
the Airflow connection ``meterlake_reporting``; without either it writes DuckDB only.
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task
from meterlake_common import (
    CHECKED,
    DAILY_PARAMS,
    DEFAULT_ARGS,
    PUBLISHED,
    START_DATE,
    TAGS,
    plan_daily,
    stage_task,
)


@task
def plan() -> dict:
    """Dates and lake: params, else the triggering gate events, else logical date - 1."""
    return plan_daily(get_current_context())


@dag(
    dag_id="meterlake_publish",
    schedule=[CHECKED],
    start_date=START_DATE,
    catchup=False,
    # runs whenever the gate emits; paused consumers would not even be queued
    is_paused_upon_creation=False,
    max_active_runs=1,
    params=DAILY_PARAMS,
    default_args=DEFAULT_ARGS,
    tags=TAGS,
    doc_md=__doc__,
)
def meterlake_publish() -> None:
    stage_task("publish", PUBLISHED)(plan())


meterlake_publish()
