"""What the meterlake DAGs share: schedules, assets, params, the date convention and
the one call into the pipeline.

Wiring only. At module level this file imports ``airflow.sdk`` and the standard
library and nothing else, so the DAG processor parses the DAG files in milliseconds;
``meterlake`` (and with it polars, pyarrow, Great Expectations) is imported inside the
functions the tasks call, on the worker.

Date convention
---------------
Data for local day D is complete on the morning of D+1: D's consumption needs the
registers frozen at 00:00 of D+1, which the acquisition system collects in the early
hours. So the daily DAG fires at 06:00 Asia/Shanghai, and **the run whose logical date
falls on local day L processes data date L - 1 day**. A scheduled run and a backfill
follow that rule; a run given the params ``start``/``end`` processes exactly that range
(inclusive) instead. Dates whose files arrived late (reported by the ingest stage) are
added to the range and rebuilt all along the chain.

What goes between tasks
-----------------------
XCom and asset-event ``extra`` carry a *plan*: the data dates as ISO strings, the
absolute landing and lake paths, the meterlake run id, and after a stage the row
counts per table it wrote. Never a frame (a 300 MB XCom stalled an Airflow 3.1 task
for 18 minutes). Downstream DAGs read dates and paths from the asset events that
triggered them, never another DAG's XCom.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Generator, Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from airflow.sdk import Asset, Metadata, Param, task
from airflow.sdk.exceptions import AirflowFailException
from meterlake_alerts import notify_failure

log = logging.getLogger("meterlake.dags")

#: local time of the data and of the schedules (CONTRACT: UTC+8, no DST)
TZ = "Asia/Shanghai"
LOCAL = ZoneInfo(TZ)

#: 06:00 local, every day: D's registers (frozen 00:00 of D+1) are in by then
DAILY_CRON = "0 6 * * *"
#: 08:00 local on the 2nd: closes the previous month a day after its last day's run,
#: so the 06:00 run of the 2nd has already ingested late files for the month's last day
MONTHLY_CRON = "0 8 2 * *"
#: first date the schedules know; with catchup off it only bounds backfills
START_DATE = dt.datetime(2024, 1, 1, tzinfo=LOCAL)

TAGS = ["meterlake"]


def task_timeout(env: Mapping[str, str] = os.environ) -> dt.timedelta:
    """How long one task may run before Airflow stops it: METERLAKE_TASK_TIMEOUT_MINUTES
    of the scheduler and DAG processor (default 240: a county day takes minutes, a
    month's close well under an hour; a task past four hours is stuck, not busy).

    >>> task_timeout({"METERLAKE_TASK_TIMEOUT_MINUTES": "90"})
    datetime.timedelta(seconds=5400)
    """
    raw = env.get("METERLAKE_TASK_TIMEOUT_MINUTES", "240")
    try:
        minutes = float(raw)
    except ValueError:
        minutes = -1.0
    if minutes <= 0:
        raise ValueError(f"METERLAKE_TASK_TIMEOUT_MINUTES: expected a positive number of minutes, found {raw!r}")
    return dt.timedelta(minutes=minutes)


#: a stage failing on a transient cause (a full disk, a lost mount) is retried;
#: a StageError (bad input, blocking expectation) fails at once, see run_stage().
#: Every failed try alerts the operator (dags/meterlake_alerts.py, docs/airflow.md).
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "meterlake",
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=10),
    "execution_timeout": task_timeout(),
    "on_failure_callback": notify_failure,
}


def _asset(name: str, path: str, description: str) -> Asset:
    return Asset(
        name=f"meterlake.{name}",
        uri=f"meterlake://lake/{path}",
        group="meterlake",
        extra={"description": description},
    )


# Assets: one per stage output. Their events carry the plan (dates, lake, run id) and
# the rows written per table; consumers schedule on them.
CLEAN = _asset("clean", "clean", "clean landing tables and quarantine (ingest stage)")
OUTAGES = _asset("outages", "marts/outage_events", "outage events, reliability and plan checks (outages stage)")
METER_DAILY = _asset("meter_daily", "marts/meter_daily", "meter_daily and collection_daily (validate stage: VEE)")
LOSS = _asset("loss", "marts/loss", "area and feeder line loss, daily and monthly (loss stage)")
ANOMALIES = _asset("anomalies", "marts/anomalies", "theft/anomaly ranking (anomalies stage)")
BILLING = _asset("billing", "marts/billing", "bills_monthly and prepay_daily (billing stage)")
RECEIVABLES = _asset(
    "receivables",
    "marts/receivables",
    "receivables, recovery, credit and dunning list (receivables stage)",
)
#: emitted only when the gate passed: publishing schedules on it
CHECKED = _asset("checked", "checked", "marts that passed the blocking expectations (check stage)")
#: the passed gate's Data Docs page (Great Expectations): nothing waits on it
DATA_DOCS = _asset("data_docs", "reports/data_docs", "Great Expectations Data Docs of the passed gate (docs stage)")
PUBLISHED = _asset("published", "published", "reporting database, data dictionary and HTML report (publish stage)")

STAGE_ASSETS: dict[str, Asset] = {
    "ingest": CLEAN,
    "outages": OUTAGES,
    "validate": METER_DAILY,
    "loss": LOSS,
    "anomalies": ANOMALIES,
    "billing": BILLING,
    "receivables": RECEIVABLES,
    "check": CHECKED,
    "docs": DATA_DOCS,
    "publish": PUBLISHED,
}


def _date_param(what: str) -> Param:
    return Param(None, type=["null", "string"], format="date", description=what)


def _path_param(what: str) -> Param:
    return Param(None, type=["null", "string"], description=what)


PATH_PARAMS: dict[str, Param] = {
    "landing": _path_param("landing root (one folder per dataset); empty = METERLAKE_LANDING of the worker"),
    "lake": _path_param("lake root; empty = METERLAKE_LAKE of the worker (a filesystem every worker mounts)"),
}
DAILY_PARAMS: dict[str, Param] = {
    "start": _date_param(
        "first data date YYYY-MM-DD; empty = the day before the run's logical date "
        "(Asia/Shanghai), or the dates of the triggering asset events"
    ),
    "end": _date_param("last data date YYYY-MM-DD, inclusive; empty = start"),
    "upstream": Param(
        None,
        type=["null", "array"],
        items={"type": "object"},
        description="the extras of upstream asset events to plan from, for a run not triggered by the "
        "events themselves: `airflow dags test meterlake_marts --conf '{\"upstream\": [EXTRA]}'`",
    ),
    **PATH_PARAMS,
}
MONTHLY_PARAMS: dict[str, Param] = {
    "month": Param(
        None,
        type=["null", "string"],
        pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
        description="month to close, YYYY-MM; empty = the month before the run's logical date (Asia/Shanghai)",
    ),
    **PATH_PARAMS,
}


# --- the plan ------------------------------------------------------------------
def data_date(logical_date: dt.datetime) -> dt.date:
    """The data date a scheduled run processes: the local day before its logical date.

    >>> data_date(dt.datetime(2026, 1, 8, 22, 0, tzinfo=dt.UTC))  # 06:00 on the 9th local
    datetime.date(2026, 1, 8)
    >>> data_date(dt.datetime(2026, 1, 9, 0, 0, tzinfo=dt.UTC))  # `dags test X 2026-01-09`
    datetime.date(2026, 1, 8)
    """
    if logical_date.tzinfo is None:
        raise AirflowFailException(f"expected a timezone-aware logical date, found {logical_date!r}")
    return logical_date.astimezone(LOCAL).date() - dt.timedelta(days=1)


def previous_month(logical_date: dt.datetime) -> str:
    """The month a scheduled monthly run closes: the one before its local logical date.

    >>> previous_month(dt.datetime(2026, 2, 2, 0, 0, tzinfo=dt.UTC))
    '2026-01'
    >>> previous_month(dt.datetime(2026, 1, 1, 23, 0, tzinfo=dt.UTC))  # 07:00 on 2 Jan local
    '2025-12'
    """
    first = logical_date.astimezone(LOCAL).date().replace(day=1)
    return (first - dt.timedelta(days=1)).strftime("%Y-%m")


def month_dates(month: str) -> list[dt.date]:
    """Every day of ``YYYY-MM``.

    >>> [d.day for d in month_dates("2024-02")][-1]
    29
    """
    try:
        first = dt.date.fromisoformat(f"{month}-01")
    except ValueError:
        raise AirflowFailException(f"param month: expected YYYY-MM, found {month!r}") from None
    nxt = (first + dt.timedelta(days=31)).replace(day=1)
    return [first + dt.timedelta(days=i) for i in range((nxt - first).days)]


def _parse_date(name: str, value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise AirflowFailException(f"param {name}: expected a date YYYY-MM-DD, found {value!r}") from None


def param_dates(params: Mapping[str, Any]) -> list[dt.date] | None:
    """The inclusive range the params ``start``/``end`` ask for; None when neither is set.

    >>> [d.isoformat() for d in param_dates({"start": "2026-01-30", "end": "2026-02-01"})]
    ['2026-01-30', '2026-01-31', '2026-02-01']
    >>> param_dates({"start": None, "end": None}) is None
    True
    """
    start, end = params.get("start"), params.get("end")
    if not start and not end:
        return None
    first = _parse_date("start", str(start or end))
    last = _parse_date("end", str(end or start))
    if last < first:
        raise AirflowFailException(f"params: expected end >= start, found start={first} end={last}")
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def safe_run_id(airflow_run_id: str) -> str:
    """An Airflow run id made safe for file names (meterlake may name files after it).

    >>> safe_run_id("scheduled__2026-01-08T22:00:00+00:00")
    'scheduled__2026-01-08T220000-0000'
    """
    return re.sub(r"[^0-9A-Za-z_.-]", "", airflow_run_id.replace("+", "-"))


def _paths(params: Mapping[str, Any], inherited: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Absolute landing and lake: params, else what the upstream event says, else env."""
    from pathlib import Path

    inherited = inherited or {}
    out: dict[str, str] = {}
    for key in ("landing", "lake"):
        value = params.get(key) or inherited.get(key)
        if not value:
            value = _settings_default(key)
        # an object-store prefix (s3://bucket/prefix) stays as given
        out[key] = str(value) if "://" in str(value) else str(Path(value).expanduser().resolve())
    return out


def _settings_default(key: str) -> str:
    from meterlake.settings import Settings

    env = os.environ.get(f"METERLAKE_{key.upper()}", "")
    if "://" in env:  # an object-store prefix: Settings takes local paths only
        return env
    return str(getattr(Settings(), key))


def make_plan(
    dates: Iterable[dt.date | str],
    params: Mapping[str, Any],
    run_id: str,
    inherited: Mapping[str, Any] | None = None,
    **more: Any,
) -> dict[str, Any]:
    """The XCom-sized description of a unit of work."""
    iso = sorted({d if isinstance(d, str) else d.isoformat() for d in dates})
    return {"dates": iso, **_paths(params, inherited), "run_id": run_id, **more}


def run_time(context: Mapping[str, Any]) -> dt.datetime:
    """The run's logical date; a run without one (a manual trigger in Airflow 3) uses
    the time it was triggered for."""
    return context.get("logical_date") or context["dag_run"].run_after


def plan_daily(context: Mapping[str, Any]) -> dict[str, Any]:
    """Plan of a daily run: which data dates, which landing and lake.

    Dates, first found: the params ``start``/``end``; the union of the dates in the
    asset events that triggered the run (several upstream runs may coalesce into one),
    or, for a run not triggered by events, in the param ``upstream`` (the events'
    extras, e.g. from ``dag.test(run_conf=...)``); the local day before the run's
    logical date. Paths: the params, else what the
    triggering events name (all must agree), else the worker's METERLAKE_* settings.
    The chain keeps the upstream meterlake run id when all events share one.
    """
    params = context["params"]
    own_run_id = safe_run_id(context["run_id"])
    extras = [
        dict(event.extra or {})
        for events in (context.get("triggering_asset_events") or {}).values()
        for event in events
    ]
    if not extras:  # a run given the upstream events' values in its conf (dag.test, a manual run)
        extras = [dict(e) for e in params.get("upstream") or []]
    extras = [e for e in extras if e.get("dates")]
    for key in ("lake", "landing"):
        seen = sorted({e[key] for e in extras if e.get(key)})
        if len(seen) > 1 and not params.get(key):
            raise AirflowFailException(
                f"triggering asset events: expected one {key} path, found {seen} (set the param {key} to choose)"
            )
    run_ids = {e.get("run_id") for e in extras}
    run_id = str(run_ids.pop()) if len(run_ids) == 1 and None not in run_ids else own_run_id
    inherited = extras[0] if extras else None

    dates = param_dates(params)
    source = "params"
    if dates is None and extras:
        dates = [dt.date.fromisoformat(d) for e in extras for d in e["dates"]]
        source = f"{len(extras)} asset event(s)"
    if dates is None:
        dates = [data_date(run_time(context))]
        source = "logical date - 1 day"
    plan = make_plan(dates, params, run_id, inherited=inherited)
    log.info("plan from %s: %s", source, plan)
    return plan


def plan_monthly(context: Mapping[str, Any]) -> dict[str, Any]:
    """Plan of the monthly close: every day of params.month, else of the previous month."""
    params = context["params"]
    month = params.get("month") or previous_month(run_time(context))
    plan = make_plan(month_dates(month), params, safe_run_id(context["run_id"]), month=month)
    log.info("plan: %s", plan)
    return plan


def merge(*plans: Mapping[str, Any]) -> dict[str, Any]:
    """One plan from parallel branches: dates united, paths and run id agreed."""
    first = plans[0]
    for other in plans[1:]:
        for key in ("lake", "landing", "run_id"):
            if other[key] != first[key]:
                raise AirflowFailException(f"branches disagree on {key}: expected {first[key]!r}, found {other[key]!r}")
    keep = {k: first[k] for k in ("lake", "landing", "run_id", "month") if k in first}
    return {"dates": sorted({d for p in plans for d in p["dates"]}), **keep}


# --- the call into the pipeline --------------------------------------------------
#: Airflow pool of every task that writes the lake. Create it with ONE slot
#: (`airflow pools set meterlake_lake 1 "one writer of the lake at a time"`): then no
#: two meterlake runs (meterlake_marts and meterlake_monthly, a backfill and the daily
#: run) write the same partitions at once. The lake lock (meterlake.lock) backs it up
#: against writers outside Airflow, such as a `meterlake run` on the same lake.
LAKE_POOL = "meterlake_lake"


def stage_task(stage: str, outlet: Asset, **task_kwargs: Any) -> Any:
    """The task that runs ``stage`` and emits ``outlet`` with the dates and row counts.

    It takes one plan, or several from parallel branches (merged: dates united).
    """

    @task(task_id=stage, outlets=[outlet], **{"pool": LAKE_POOL, **task_kwargs})
    def run(*plans: dict[str, Any]) -> Generator[Metadata, None, dict[str, Any]]:
        done = run_stage(stage, merge(*plans))
        yield Metadata(outlet, extra=event_extra(done))
        return done

    return run


def run_stage(stage: str, plan: Mapping[str, Any]) -> dict[str, Any]:
    """Run one pipeline stage for the plan; return the plan for the next task.

    The same :func:`meterlake.pipeline.run_stage` that ``meterlake run`` calls. A
    :class:`~meterlake.stages.StageError` (bad input, a blocking expectation: rerunning
    cannot help) fails the task without retries, with the stage's one-line message.
    """
    from meterlake import pipeline
    from meterlake.pipeline import LakeBusy
    from meterlake.settings import Settings
    from meterlake.stages import StageError

    settings = Settings(landing=plan["landing"], lake=plan["lake"])
    dates = [dt.date.fromisoformat(d) for d in plan["dates"]]
    try:
        result = pipeline.run_stage(settings, stage, dates, plan["run_id"], progress=log.info, record=True)
    except LakeBusy:
        raise  # another writer holds the lake: a retry later can succeed
    except StageError as exc:
        raise AirflowFailException(f"{stage} stage failed: {exc}") from exc
    for note in result.notes:
        log.info("%s: %s", stage, note)
    extra_dates = sorted({d.isoformat() for d in result.dates} - set(plan["dates"]))
    if extra_dates:
        log.info("%s: also rebuilding %s (late files)", stage, ", ".join(extra_dates))
    return {
        **{k: v for k, v in plan.items() if k not in ("stage", "rows", "seconds")},
        "dates": sorted(set(plan["dates"]) | set(extra_dates)),
        "stage": stage,
        "rows": {str(k): int(v) for k, v in result.rows.items()},
        "seconds": result.seconds,
    }


def event_extra(done: Mapping[str, Any]) -> dict[str, Any]:
    """Asset-event extra: what a consumer needs (dates, paths, run id) and the row counts."""
    return {k: done[k] for k in ("dates", "lake", "landing", "run_id", "stage", "rows", "month") if k in done}


# --- the fan-out over org units (dags/meterlake_province.py) ---------------------------
def _unit_settings() -> Any:
    """The worker's settings with the paths left out: a plan names them (s3:// URLs included)."""
    from pathlib import Path

    from meterlake.settings import Settings

    return Settings(landing=Path("."), lake=Path("."))


def province_split(plan: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Split the new landing files by org unit; one unit of work per unit of the run."""
    from meterlake import pipeline

    units = pipeline.split_units(_unit_settings(), plan["landing"], plan["lake"], plan["run_id"])
    wanted = plan.get("orgs") or units
    log.info("units of the lake: %s; this run: %s", units, wanted)
    return [{**plan, "org": org} for org in sorted(wanted)]


def province_unit(work: Mapping[str, Any], stages: list[str] | None = None) -> dict[str, Any]:
    """Every stage (or ``stages``) of one unit's shard; a StageError fails it without retries."""
    from meterlake import pipeline
    from meterlake.pipeline import LakeBusy
    from meterlake.stages import StageError

    dates = [dt.date.fromisoformat(d) for d in work["dates"]]
    try:
        record = pipeline.run_unit(
            _unit_settings(), work["landing"], work["lake"], work["org"], dates, work["run_id"], stages=stages
        )
    except LakeBusy:
        raise  # another writer holds the unit: a retry later can succeed
    except StageError as exc:
        raise AirflowFailException(f"unit {work['org']}: {exc}") from exc
    return {"org": work["org"], "status": record["status"], "dates": record.get("dates", work["dates"])}


def province_record(plan: Mapping[str, Any], units: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Write the run record naming every unit's status; fail (alerting) when a unit is missing."""
    from meterlake import pipeline

    orgs = [u["org"] for u in units]
    record = pipeline.record_units(
        _unit_settings(), plan["lake"], plan["run_id"], orgs, start=plan["dates"][0], end=plan["dates"][-1]
    )
    if record["missing"]:
        raise AirflowFailException(
            f"{len(record['missing'])} of {len(orgs)} unit(s) did not complete: {', '.join(record['missing'])} "
            f"(the others are published; run record {record.get('record_path')})"
        )
    return {"status": record["status"], "units": orgs}
