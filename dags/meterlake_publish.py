"""meterlake_publish: reporting database, data dictionary, HTML report.

Scheduled on ``meterlake.checked``, which only a passing Great Expectations gate emits
(from ``meterlake_marts`` or ``meterlake_monthly``): nothing is published from marts
that failed a blocking expectation. The production PostgreSQL reporting database comes
from the Airflow connection ``meterlake_reporting`` (or the worker's METERLAKE_PG_DSN);
without either, publish writes the DuckDB file only.
"""

from __future__ import annotations

from airflow.sdk import Metadata, dag, get_current_context, task
from meterlake_common import (
    CHECKED,
    DAILY_PARAMS,
    DEFAULT_ARGS,
    PUBLISHED,
    START_DATE,
    TAGS,
    event_extra,
    plan_daily,
    reporting_overrides,
    run_stage,
)


@task
def plan() -> dict:
    """Dates and lake: params, else the triggering gate events, else logical date - 1."""
    return plan_daily(get_current_context())


@task(outlets=[PUBLISHED])
def publish(plan: dict):
    done = run_stage("publish", plan, **reporting_overrides())
    yield Metadata(PUBLISHED, extra=event_extra(done))
    return done


@dag(
    dag_id="meterlake_publish",
    schedule=[CHECKED],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    params=DAILY_PARAMS,
    default_args=DEFAULT_ARGS,
    tags=TAGS,
    doc_md=__doc__,
)
def meterlake_publish():
    publish(plan())


meterlake_publish()
