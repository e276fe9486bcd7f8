"""meterlake_ingest: landing files -> clean tables, daily at 06:00 Asia/Shanghai.

The run whose logical date falls on local day L ingests data date L - 1 (the
registers frozen at 00:00 of L are in by 06:00); the params ``start``/``end`` ask for
a range instead. The ``meterlake.clean`` asset event carries the dates to rebuild
(the requested ones and those whose files arrived late), the lake path and the rows
written per table; it triggers ``meterlake_marts``.
"""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable, dag, get_current_context, task
from meterlake_common import (
    CLEAN,
    DAILY_CRON,
    DAILY_PARAMS,
    DEFAULT_ARGS,
    START_DATE,
    TAGS,
    TZ,
    plan_daily,
    stage_task,
)


@task
def plan() -> dict:
    """The data dates and paths of this run (logical date - 1 day, or params)."""
    return plan_daily(get_current_context())


@dag(
    dag_id="meterlake_ingest",
    schedule=CronTriggerTimetable(DAILY_CRON, timezone=TZ),
    start_date=START_DATE,
    catchup=False,
    # a new deployment starts its schedule only when an operator unpauses it
    is_paused_upon_creation=True,
    max_active_runs=1,
    params=DAILY_PARAMS,
    default_args=DEFAULT_ARGS,
    tags=TAGS,
    doc_md=__doc__,
)
def meterlake_ingest() -> None:
    # landing -> clean tables and quarantine; the event carries dates rebuilt for late files
    stage_task("ingest", CLEAN)(plan())


meterlake_ingest()
