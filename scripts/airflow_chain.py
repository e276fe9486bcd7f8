"""Run an asset-chained DAG and the DAGs its asset events feed, with ``dag.test()``.

What the scheduler does in production, done here with Airflow's supported testing
interface only: ``dag.test(logical_date=..., run_conf=...)`` (what ``airflow dags test``
calls) runs one DAG run in-process on the metadata database. ``dag.test()`` starts no
scheduler, so the consumers of the assets a run emits do not start by themselves; this
script starts them the documented way, as a test run whose conf carries the upstream
events' values (param ``upstream``, see dags/meterlake_common.py)::

    dag.test(logical_date=None, run_conf={"upstream": [event.extra, ...]})

which a person can do just as well from the shell::

    airflow dags test meterlake_marts --conf '{"upstream": [{"dates": ["2026-01-08"], ...}]}'

1. ``dag.test()`` of the first DAG;
2. read the asset events that run emitted (the metadata database's ``asset_event``
   rows of that run; the REST API's ``GET /api/v2/assets/events`` serves the same);
3. for every DAG scheduled on those assets (its condition met by them): ``dag.test()``
   with the events' extras as ``upstream``; repeat with what that run emits;
4. print one JSON summary: the DAG runs and their task states, the asset events and
   their ``extra``.

Exit status 0 when every run succeeded, 1 otherwise. Usage (after
``source scripts/airflow_env.sh``)::

    python scripts/airflow_chain.py meterlake_ingest 2026-01-09 \\
        --conf '{"start": "2026-01-01", "end": "2026-01-07"}'
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
MAX_RUNS = 50


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("dag_id", help="the first DAG, e.g. meterlake_ingest")
    parser.add_argument("logical_date", help="its logical date, e.g. 2026-01-09")
    parser.add_argument("--conf", default=None, help="JSON run conf (params) of the first run")
    parser.add_argument(
        "--no-retries",
        action="store_true",
        help="fail a task at its first error instead of waiting out retry_delay",
    )
    parser.add_argument("--summary", default=None, help="also write the JSON summary here")
    args = parser.parse_args(argv)

    from airflow.sdk import timezone

    conf = json.loads(args.conf) if args.conf else None
    summary = run_chain(args.dag_id, timezone.parse(args.logical_date), conf, args.no_retries)
    text = json.dumps(summary, indent=2, ensure_ascii=False, default=str)
    print(text)
    if args.summary:
        with open(args.summary, "w", encoding="utf-8") as fh:
            fh.write(text)
    return 0 if all(r["state"] == "success" for r in summary["runs"]) else 1


def load_dags() -> dict[str, Any]:
    """The DAGs of the configured DAG folder; import errors stop here."""
    from pathlib import Path

    from airflow import settings
    from airflow.dag_processing.dagbag import BundleDagBag

    folder = Path(settings.DAGS_FOLDER)
    # the DAG folder's bundle, as the DAG processor and dag.test() load it (the folder on
    # sys.path, so the DAG files import dags/meterlake_common.py)
    bag = BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="dags-folder")
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    return dict(bag.dags)


def schedule_assets(dag: Any) -> set[str] | None:
    """Names of the assets ``dag`` is scheduled on; None for a DAG not scheduled on assets."""
    condition = getattr(dag.timetable, "asset_condition", None)
    if condition is None:
        return None
    names: set[str] = set()
    todo = [condition]
    while todo:
        node = todo.pop()
        if getattr(node, "name", None) and not hasattr(node, "objects"):
            names.add(node.name)
        todo.extend(getattr(node, "objects", ()))
    return names


def is_met(condition: Any, emitted: set[str]) -> bool:
    """Whether an asset condition (an Asset, or all/any of several) holds for ``emitted``."""
    objects = getattr(condition, "objects", None)
    if objects is None:
        return condition.name in emitted
    results = [is_met(o, emitted) for o in objects]
    return all(results) if type(condition).__name__ == "AssetAll" else any(results)


def run_chain(dag_id: str, logical_date: Any, conf: dict[str, Any] | None, no_retries: bool) -> dict[str, Any]:
    """``dag.test()`` of ``dag_id``, then of every DAG its asset events feed, in order."""
    t0 = time.perf_counter()
    dags = load_dags()
    if dag_id not in dags:
        raise SystemExit(f"DAG {dag_id!r} not found; DAGs are {sorted(dags)}")
    if no_retries:
        for dag in dags.values():
            for task in dag.tasks:
                task.retries = 0
    runs: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    todo: list[tuple[str, Any, dict[str, Any] | None]] = [(dag_id, logical_date, conf)]
    while todo:
        if len(runs) >= MAX_RUNS:
            raise SystemExit(f"still triggering DAG runs after {MAX_RUNS} runs: a cycle?")
        current, when, run_conf = todo.pop(0)
        dr = dags[current].test(logical_date=when, run_conf=run_conf)
        emitted = emitted_events(dr.dag_id, dr.run_id)
        runs.append(
            {
                "dag_id": dr.dag_id,
                "run_id": dr.run_id,
                "state": str(dr.state),
                "conf": run_conf or {},
                "tasks": {ti.task_id: str(ti.state) for ti in dr.get_task_instances()},
            }
        )
        events.extend(emitted)
        names = {e["asset"] for e in emitted}
        for consumer_id, consumer in sorted(dags.items()):
            assets = schedule_assets(consumer)
            if not assets or not is_met(consumer.timetable.asset_condition, names):
                continue
            upstream = [e["extra"] for e in emitted if e["asset"] in assets]
            log.info("%s runs on %d event(s) of %s", consumer_id, len(upstream), current)
            todo.append((consumer_id, None, {"upstream": upstream}))
    return {"seconds": round(time.perf_counter() - t0, 1), "runs": runs, "asset_events": events}


def emitted_events(dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """The asset events a DAG run emitted, oldest first (read-only)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetEvent, AssetModel.name)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == run_id)
            .order_by(AssetEvent.id)
        ).all()
        return [
            {
                "id": ev.id,
                "asset": name,
                "source_dag_id": ev.source_dag_id,
                "source_task_id": ev.source_task_id,
                "source_run_id": ev.source_run_id,
                "extra": dict(ev.extra or {}),
            }
            for ev, name in rows
        ]


if __name__ == "__main__":
    sys.exit(main())
