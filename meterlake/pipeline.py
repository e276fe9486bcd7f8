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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from . import errors, lock
from .config import ConfigError
from .lake import Lake
from .lock import LockBusy
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
    receivables,
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
    "billing": billing.run,  # bills, prepay balances
    "receivables": receivables.run,  # post-paid receivables, recovery, credit, dunning
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

    The stage holds the lake lock (see :mod:`meterlake.lock`): a second writer waits up
    to ``settings.lock_wait_s`` or fails with one line naming the holder. With
    ``record`` (an Airflow task runs one stage at a time) the stage's result is also
    written as ``LAKE/_meta/runs/<run_id>/<stage>.json``; :func:`run` writes one record
    for the whole run instead.
    """
    if stage not in STAGES:
        raise StageError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    ctx = StageContext(settings=settings, run_id=run_id)
    if progress is not None:
        ctx.progress = progress
    dates = sorted(set(dates))
    with writer(settings, run_id):
        t0, cpu0 = time.perf_counter(), time.process_time()
        try:
            result = RUNNERS[stage](ctx, dates)
        except ConfigError as exc:
            raise StageError(f"{stage}: {exc}") from exc
        result.seconds = round(time.perf_counter() - t0, 3)
        result.cpu_seconds = round(time.process_time() - cpu0, 3)
        if stage == STAGES[-1]:
            # the chain is complete for these dates: what ingest left pending is done
            ctx.lake.clear_pending_dates(dates)
        if record:
            out = Path(settings.lake) / "_meta" / "runs" / _safe(run_id) / f"{stage}.json"
            ctx.lake.write_text(out, json.dumps(_jsonable(dataclasses.asdict(result)), indent=2, ensure_ascii=False))
    return result


@contextmanager
def writer(settings: Settings, run_id: str) -> Iterator[None]:
    """Hold the lake lock; on first taking it, clear what killed runs left in staging."""
    lake = Path(settings.lake)
    fresh = not lock.holds(lake)
    try:
        with lock.lake_lock(lake, run_id, wait_s=settings.lock_wait_s):
            if fresh:
                Lake(lake).clean_staging()
            yield
    except LockBusy as exc:
        raise LakeBusy(str(exc)) from exc


class LakeBusy(StageError):
    """Another writer holds the lake lock (a later retry can succeed)."""


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
    """Run the stages for ``start..end`` under the lake lock; return (and write) the run record.

    Dates whose data arrived late (found by ingest) are rebuilt too. Whatever stops the
    run, its record says ``failed`` with the one-line error, and the traceback goes to
    the run's debug log (``LAKE/_meta/logs/<run id>.log``).
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
    lake = Path(settings.lake)
    handler, level = _debug_log(lake, run_id)
    try:
        with writer(settings, run_id):
            try:
                for stage in STAGES:
                    if stage not in wanted:
                        continue
                    result = run_stage(settings, stage, dates, run_id, progress)
                    record["stages"][stage] = _jsonable(dataclasses.asdict(result))
                    if result.dates:
                        dates = sorted(set(dates) | set(result.dates))
                record["status"] = "ok"
            except BaseException as exc:
                record["status"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                record["error"] = errors.one_line(exc)
                failed = getattr(exc, "result", None)
                if failed is not None:  # e.g. the check stage's findings and Data Docs link
                    record["stages"][failed.stage] = _jsonable(dataclasses.asdict(failed))
                log.debug("run %s failed", run_id, exc_info=True)
                raise
            finally:
                record["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
                record["dates"] = [d.isoformat() for d in dates]
                try:
                    write_run_record(lake, record)
                except OSError as exc:  # e.g. the disk is full: the error that stopped the run matters more
                    record["record_error"] = errors.one_line(exc)
                    log.debug("could not write the run record", exc_info=True)
    finally:
        _close_debug_log(handler, level)
    return record


def _debug_log(lake: Path, run_id: str) -> tuple[logging.Handler | None, int]:
    """A DEBUG-level log file for the run (tracebacks go there, never to the terminal)."""
    level = log.level
    path = errors.debug_log_path(lake, run_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = errors.QuietFileHandler(path, encoding="utf-8", delay=True)
    except OSError:
        return None, level
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(errors.MaskingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    # on the root logger: libraries' warnings and errors (with their tracebacks) land there too
    logging.getLogger().addHandler(handler)
    log.setLevel(logging.DEBUG)
    return handler, level


def _close_debug_log(handler: logging.Handler | None, level: int) -> None:
    if handler is None:
        return
    logging.getLogger().removeHandler(handler)
    log.setLevel(level)
    with suppress(OSError):
        handler.close()


def write_run_record(lake: Path, record: dict[str, Any]) -> Path:
    out = lake / "_meta" / "runs" / f"{record['run_id']}.json"
    Lake(lake).write_text(out, json.dumps(_jsonable(record), indent=2, ensure_ascii=False))
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
