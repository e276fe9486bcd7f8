"""meterlake_province and meterlake_province_monthly: one task per org unit (a sharded lake).

A province runs dozens of county units (archive ``org_id``). These DAGs fan out over the
units of the run with dynamic task mapping (never over meters):

```
plan -> split -> unit[ORG01] ──┐
              -> unit[ORG02] ──┼─▶ record   (trigger rule all_done)
              -> unit[...]   ──┘
```

* ``split`` parses the new landing files once and hands each unit its rows
  (``meterlake.pipeline.split_units``); it returns the units the lake holds (or those of
  the param ``orgs``).
* ``unit`` runs every stage for one unit's shard, gate and publishing included
  (``meterlake.pipeline.run_unit``): a daily shard is (unit, date), a monthly one (unit,
  month). Each mapped task is retried on its own (``retries`` of the default args), takes
  a slot of the pool ``meterlake_shards`` (its size bounds how many shards run at once:
  workers x shards per worker) and holds its unit's lock, so no two tasks write one unit.
* ``record`` runs whatever happened to the units: a failed unit does not stop the others
  from publishing; the run record ``LAKE/_meta/runs/<run id>.json`` names each unit's status
  and the ``missing`` ones, and the task fails (alerting the operator) when any is missing.

``meterlake_province`` runs daily at 06:00 Asia/Shanghai on the day before (params
``start``/``end`` for a range); ``meterlake_province_monthly`` closes the previous month
at 08:00 on the 2nd (param ``month``). Paths: params ``landing``/``lake``, else
METERLAKE_LANDING/METERLAKE_LAKE of the workers; ``s3://bucket/prefix`` for object storage.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import CronTriggerTimetable, Param, dag, get_current_context, task
from meterlake_common import (
    DAILY_CRON,
    DAILY_PARAMS,
    DEFAULT_ARGS,
    MONTHLY_CRON,
    MONTHLY_PARAMS,
    START_DATE,
    TAGS,
    TZ,
    plan_daily,
    plan_monthly,
    province_record,
    province_split,
    province_unit,
)

#: Airflow pool of the unit tasks: `airflow pools set meterlake_shards N "units at once"`,
#: N = workers x shards per worker (a county-size unit takes about 2 GB)
SHARD_POOL = "meterlake_shards"
ORGS_PARAM = Param(
    None,
    type=["null", "array"],
    items={"type": "string"},
    description='run only these org units (e.g. ["ORG01", "ORG02"]); empty = every unit the lake holds',
)
#: the stages of a monthly close, per unit
MONTHLY_STAGES = ["loss", "billing", "receivables", "check", "docs", "publish"]


def province(dag_id: str, cron: str, params: dict[str, Param], monthly: bool) -> None:
    @task
    def plan() -> dict[str, Any]:
        context = get_current_context()
        work = plan_monthly(context) if monthly else plan_daily(context)
        return {**work, "orgs": context["params"].get("orgs") or []}

    @task
    def split(work: Any) -> list[dict[str, Any]]:
        return province_split(work)

    @task(pool=SHARD_POOL, map_index_template="{{ org_unit }}")
    def unit(work: Any) -> dict[str, Any]:
        get_current_context()["org_unit"] = work["org"]  # type: ignore[typeddict-unknown-key]
        return province_unit(work, MONTHLY_STAGES if monthly else None)

    @task(trigger_rule="all_done", retries=0)
    def record(work: Any, units: Any) -> dict[str, Any]:
        return province_record(work, units)

    @dag(
        dag_id=dag_id,
        schedule=CronTriggerTimetable(cron, timezone=TZ),
        start_date=START_DATE,
        catchup=False,
        is_paused_upon_creation=True,
        max_active_runs=1,
        params={**params, "orgs": ORGS_PARAM},
        default_args=DEFAULT_ARGS,
        tags=[*TAGS, "province"],
        doc_md=__doc__,
    )
    def build() -> None:
        work = plan()
        units = split(work)
        done = unit.expand(work=units)
        r = record(work, units)
        done >> r

    build()


province("meterlake_province", DAILY_CRON, DAILY_PARAMS, monthly=False)
province("meterlake_province_monthly", MONTHLY_CRON, MONTHLY_PARAMS, monthly=True)
