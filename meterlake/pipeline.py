"""The pipeline: every stage in order, for a range of dates.

``meterlake run`` and the Airflow DAGs both call :func:`run_stage` / :func:`run`, so
the pipeline runs the same with or without Airflow.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .config import ConfigError
from .settings import Settings
from .stages import (
    StageContext,
    StageError,
    StageResult,
    anomalies,
    billing,
    check,
    ingest,
    loss,
    outages,
    publish,
    validate,
)
from .transforms import dates as dates_

log = logging.getLogger("meterlake")

#: what a stage is: meterlake.stages.<name>.run(ctx, dates)
StageRun = Callable[[StageContext, list[dt.date]], StageResult]

#: every stage, in the order a run takes them
RUNNERS: dict[str, StageRun] = {
    "ingest": ingest.run,  # landing files -> clean tables + quarantine
    "outages": outages.run,  # interruptions from meter events, plans, reliability (before VEE: outage slots are no gaps)
    "validate": validate.run,  # VEE, meter_daily, collection_daily
    "loss": loss.run,  # area/feeder line loss and its diagnosis
    "anomalies": anomalies.run,  # theft/anomaly ranking
    "billing": billing.run,  # bills, prepay balances, recovery
    "check": check.run,  # Great Expectations gate: blocking failures stop here
    "publish": publish.run,  # reporting database, data dictionary, HTML report
}
STAGES: tuple[str, ...] = tuple(RUNNERS)


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    try:
        return dates_.days(start, end)
    except ValueError as exc:
        raise StageError(str(exc)) from None


def new_run_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def run_stage(
    settings: Settings,
    stage: str,
    dates: Iterable[dt.date],
    run_id: str,
    progress: Callable[[str], None] | None = None,
    record: bool = False,
) -> StageResult:
    """Run one stage for ``dates`` and return what it did.

    With ``record`` (an Airflow task runs one stage at a time) the stage's result is
    also written as ``LAKE/_meta/runs/<run_id>/<stage>.json``; :func:`run` writes one
    record for the whole run instead.
    """
    if stage not in STAGES:
        raise StageError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    ctx = StageContext(settings=settings, run_id=run_id)
    if progress is not None:
        ctx.progress = progress
    t0 = time.perf_counter()
    try:
        result = RUNNERS[stage](ctx, sorted(set(dates)))
    except ConfigError as exc:
        raise StageError(f"{stage}: {exc}") from exc
    result.seconds = round(time.perf_counter() - t0, 3)
    if record:
        out = Path(settings.lake) / "_meta" / "runs" / _safe(run_id) / f"{stage}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(
            json.dumps(_jsonable(dataclasses.asdict(result)), indent=2, ensure_ascii=False), encoding="utf-8"
        )
        tmp.replace(out)
    return result


def _safe(run_id: str) -> str:
    """A run id usable as a folder name (Airflow's hold ':' and '+')."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)


def run(
    settings: Settings,
    start: dt.date,
    end: dt.date,
    stages: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Run the stages for ``start..end``; return (and write) the run record.

    Dates whose data arrived late (found by ingest) are rebuilt too.
    """
    run_id = run_id or new_run_id()
    wanted = list(stages or STAGES)
    dates = date_range(start, end)
    record: dict[str, Any] = {
        "run_id": run_id,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "landing": str(settings.landing),
        "lake": str(settings.lake),
        "start": start.isoformat(),
        "end": end.isoformat(),
        "stages": {},
        "status": "running",
    }
    try:
        for stage in STAGES:
            if stage not in wanted:
                continue
            result = run_stage(settings, stage, dates, run_id, progress)
            record["stages"][stage] = _jsonable(dataclasses.asdict(result))
            if result.dates:
                dates = sorted(set(dates) | set(result.dates))
        record["status"] = "ok"
    except StageError as exc:
        record["status"] = "failed"
        record["error"] = str(exc)
        failed = getattr(exc, "result", None)
        if failed is not None:  # e.g. the check stage's findings and Data Docs link
            record["stages"][failed.stage] = _jsonable(dataclasses.asdict(failed))
        raise
    finally:
        record["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        record["dates"] = [d.isoformat() for d in dates]
        write_run_record(Path(settings.lake), record)
    return record


def write_run_record(lake: Path, record: dict[str, Any]) -> Path:
    out = lake / "_meta" / "runs" / f"{record['run_id']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_jsonable(record), indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(out)
    record["record_path"] = str(out)
    return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, dt.date | dt.datetime):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    return obj
