"""Run an asset-chained DAG and every DAG its asset events trigger, in one process.

``airflow dags test DAG DATE`` (``dag.test()``) runs one DAG run in-process on the
metadata database and records its asset events, and for each consumer DAG that is not
paused it queues an AssetDagRunQueue row, but it runs no scheduler: the consumers never
start. This script does what the scheduler would, and no more:

1. sync the DAG folder into the metadata DB and unpause its asset-scheduled DAGs
   (consumers are only queued while unpaused; the meterlake ones are created unpaused,
   but a DB may hold them paused). Cron-scheduled DAGs are left as they are;
2. ``dag.test()`` of the first DAG;
3. while consumers are queued: let the scheduler's own code decide which are ready
   (``DagModel.dags_needing_dagruns``) and create their asset-triggered runs with the
   events they consume (``SchedulerJobRunner._create_dag_runs_asset_triggered``), then
   run each run's tasks in-process the way ``dag.test()`` does;
4. print one JSON summary: the DAG runs and their states, the asset events and their
   ``extra``.

Exit status 0 when every run succeeded, 1 otherwise. It uses the Airflow 3.3 scheduler
and ``dag.test()`` internals (pinned in pyproject.toml); in production the scheduler does
all this. Usage (after ``source scripts/airflow_env.sh``)::

    # the first DAG and everything its asset events trigger
    python scripts/airflow_chain.py meterlake_ingest 2026-01-09 \\
        --conf '{"start": "2026-01-01", "end": "2026-01-07"}'

    # or: `airflow dags test` itself, then the runs it queued
    airflow dags test meterlake_ingest 2026-01-09 \\
        --conf '{"start": "2026-01-01", "end": "2026-01-07"}'
    python scripts/airflow_chain.py
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("airflow_chain")

#: a chain longer than this is a cycle, not a pipeline
MAX_ROUNDS = 20


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "dag_id",
        nargs="?",
        help="the first DAG, e.g. meterlake_ingest; omit it to only run what earlier `airflow dags test` runs queued",
    )
    parser.add_argument("logical_date", nargs="?", help="its logical date, e.g. 2026-01-09")
    parser.add_argument("--conf", default=None, help="JSON run conf (params) of the first run")
    parser.add_argument(
        "--no-retries",
        action="store_true",
        help="fail a task at its first error instead of waiting out retry_delay",
    )
    parser.add_argument("--summary", default=None, help="also write the JSON summary here")
    args = parser.parse_args(argv)
    if args.dag_id and not args.logical_date:
        parser.error("a DAG id needs a logical date")

    from airflow.sdk import timezone

    conf = json.loads(args.conf) if args.conf else None
    logical_date = timezone.parse(args.logical_date) if args.logical_date else None
    summary = run_chain(args.dag_id, logical_date, conf, args.no_retries)
    text = json.dumps(summary, indent=2, ensure_ascii=False, default=str)
    print(text)
    if args.summary:
        with open(args.summary, "w", encoding="utf-8") as fh:
            fh.write(text)
    return 0 if all(r["state"] == "success" for r in summary["runs"]) else 1


def run_chain(dag_id: str | None, logical_date: Any, conf: dict | None, no_retries: bool) -> dict[str, Any]:
    """``dag.test()`` of ``dag_id`` (if given), then every asset-triggered run it causes."""
    from pathlib import Path

    from airflow import settings
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.utils.session import create_session

    t0 = time.perf_counter()
    folder = Path(settings.DAGS_FOLDER)
    bag = BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="dags-folder")
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    if dag_id is not None and dag_id not in bag.dags:
        raise SystemExit(f"DAG {dag_id!r} not found; DAGs are {sorted(bag.dags)}")
    if no_retries:
        for dag in bag.dags.values():
            for task in dag.tasks:
                task.retries = 0
    consumers = [d for d, dag in bag.dags.items() if hasattr(dag.timetable, "asset_condition")]
    _sync_and_unpause(consumers)

    runs: list[tuple[str, str]] = []
    if dag_id is not None:
        first = bag.dags[dag_id].test(logical_date=logical_date, run_conf=conf)
        runs.append((first.dag_id, first.run_id))
    with create_session() as session:
        for _ in range(MAX_ROUNDS):
            created = _create_asset_triggered_runs(session)
            if not created:
                break
            for dr in created:
                if dr.dag_id not in bag.dags:
                    raise SystemExit(f"{dr.dag_id} was triggered but is not in {folder}")
                _run_dagrun(bag.dags[dr.dag_id], dr, session)
                runs.append((dr.dag_id, dr.run_id))
        else:
            raise SystemExit(f"still triggering DAG runs after {MAX_ROUNDS} rounds: a cycle?")
        return _summary(session, runs, round(time.perf_counter() - t0, 1))


def _sync_and_unpause(dag_ids: list[str]) -> None:
    """Write every DAG of the configured bundles to the DB; unpause ``dag_ids``."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        sync_bag_to_db(bag, bundle.name, bundle.version)
    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id.in_(dag_ids)).values(is_paused=False))


def _create_asset_triggered_runs(session: Any) -> list[Any]:
    """The scheduler's own decision and run creation for asset-scheduled DAGs."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType
    from sqlalchemy import select

    query, triggered = DagModel.dags_needing_dagruns(session)
    ready = [m for m in query.all() if m.dag_id in triggered]
    if not ready:
        return []
    before = set(session.scalars(select(DagRun.id)))
    runner = SchedulerJobRunner(job=Job(), executors=[])
    runner._create_dag_runs_asset_triggered(dag_models=ready, session=session)
    session.commit()
    created = [
        dr
        for dr in session.scalars(
            select(DagRun).where(DagRun.run_type == DagRunType.ASSET_TRIGGERED).order_by(DagRun.id)
        )
        if dr.id not in before
    ]
    for dr in created:
        log.info(
            "asset-triggered run %s of %s consumes %d event(s)",
            dr.run_id,
            dr.dag_id,
            len(dr.consumed_asset_events),
        )
    return created


def _run_dagrun(dag: Any, dr: Any, session: Any) -> Any:
    """Run an existing DAG run's tasks in-process, as ``dag.test()`` does for its own run."""
    from airflow.models.dagbag import DBDagBag
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.state import DagRunState, State, TaskInstanceState

    dr.dag = DBDagBag().get_dag_for_run(dr, session=session)
    dr.state = DagRunState.RUNNING
    session.commit()
    idle = 0
    while dr.state == DagRunState.RUNNING:
        session.expire_all()
        schedulable, _ = dr.update_state(session=session)
        for ti in schedulable:
            if ti.state != TaskInstanceState.UP_FOR_RESCHEDULE:
                ti.try_number += 1
            ti.state = TaskInstanceState.SCHEDULED
        session.commit()
        scheduled = [ti for ti in dr.get_task_instances(session=session) if ti.state == TaskInstanceState.SCHEDULED]
        if not scheduled:
            idle += 1
            if idle > 3600:
                raise SystemExit(f"{dr.dag_id} {dr.run_id}: no runnable task for an hour")
            time.sleep(1)
            continue
        idle = 0
        for ti in scheduled:
            try:
                _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
            except Exception:
                log.exception("task failed: %s", ti)
    session.expire_all()
    assert dr.state in State.finished_dr_states
    return dr


def _summary(session: Any, runs_done: list[tuple[str, str]], seconds: float) -> dict[str, Any]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import false, select, tuple_

    keys = tuple_(DagRun.dag_id, DagRun.run_id).in_(runs_done) if runs_done else false()
    runs = [
        {
            "dag_id": dr.dag_id,
            "run_id": dr.run_id,
            "run_type": str(dr.run_type),
            "state": str(dr.state),
            "consumed_events": sorted(e.id for e in dr.consumed_asset_events),
            "tasks": {
                ti.task_id: str(ti.state)
                for ti in session.scalars(
                    select(TaskInstance).where(TaskInstance.dag_id == dr.dag_id, TaskInstance.run_id == dr.run_id)
                )
            },
        }
        for dr in session.scalars(select(DagRun).where(keys).order_by(DagRun.id))
    ]
    events = [
        {
            "id": ev.id,
            "asset": name,
            "source_dag_id": ev.source_dag_id,
            "source_task_id": ev.source_task_id,
            "source_run_id": ev.source_run_id,
            "extra": ev.extra,
        }
        for ev, name in session.execute(
            select(AssetEvent, AssetModel.name)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(tuple_(AssetEvent.source_dag_id, AssetEvent.source_run_id).in_(runs_done) if runs_done else false())
            .order_by(AssetEvent.id)
        )
    ]
    return {"seconds": seconds, "runs": runs, "asset_events": events}


if __name__ == "__main__":
    sys.exit(main())
