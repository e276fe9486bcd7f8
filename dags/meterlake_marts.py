"""meterlake_marts: clean tables -> marts, on each ``meterlake.clean`` asset event.

outages (interruptions from meter events: validate reads them) -> validate (VEE:
meter_daily, collection_daily) -> loss -> anomalies, and billing -> receivables beside
anomalies (billing reads the loss diagnosis: a multiplier suspect's bill is held), then the
quality gate (check: the verdict in polars, no Great Expectations import). Only a
passing gate emits the ``meterlake.checked`` asset that triggers ``meterlake_publish``:
a blocking expectation fails ``check`` with a message naming the expectation, the
table and the partition and linking its Data Docs page, and nothing is published.
After a passing gate the ``docs`` task has Great Expectations re-check the findings
and renders their Data Docs page; publishing does not wait for it.

anomalies runs after loss because theft screening correlates customers' kWh with
their area's daily loss (area_loss_daily). The dates are the union of the triggering
events' dates (several ingest runs may coalesce into one run here); a manual trigger
takes params ``start``/``end``.
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task
from meterlake_common import (
    ANOMALIES,
    BILLING,
    CHECKED,
    CLEAN,
    DAILY_PARAMS,
    DATA_DOCS,
    DEFAULT_ARGS,
    LOSS,
    METER_DAILY,
    OUTAGES,
    RECEIVABLES,
    START_DATE,
    TAGS,
    plan_daily,
    stage_task,
)


@task
def plan() -> dict:
    """Dates and lake: params, else the triggering ingest events, else logical date - 1."""
    return plan_daily(get_current_context())


@dag(
    dag_id="meterlake_marts",
    schedule=[CLEAN],
    start_date=START_DATE,
    catchup=False,
    # runs whenever ingest emits; paused consumers would not even be queued
    is_paused_upon_creation=False,
    max_active_runs=1,
    params=DAILY_PARAMS,
    default_args=DEFAULT_ARGS,
    tags=TAGS,
    doc_md=__doc__,
)
def meterlake_marts() -> None:
    daily = stage_task("validate", METER_DAILY)(stage_task("outages", OUTAGES)(plan()))
    losses = stage_task("loss", LOSS)(daily)
    # the gate: a blocking expectation fails here and CHECKED is not emitted
    gate = stage_task("check", CHECKED, retries=0)
    # billing reads the loss diagnosis (bills of a multiplier suspect are held for review)
    billed = stage_task("receivables", RECEIVABLES)(stage_task("billing", BILLING)(losses))
    passed = gate(stage_task("anomalies", ANOMALIES)(losses), billed)
    # Data Docs after the gate, off publishing's path (GX's import costs seconds)
    stage_task("docs", DATA_DOCS)(passed)


meterlake_marts()
