"""The pipeline: every stage in order, for a range of dates.

``meterlake run`` and the Airflow DAGs both call :func:`run_stage` / :func:`run`, so
the pipeline runs the same with or without Airflow.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import importlib
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from . import allocator, errors, lock, shards
from .config import ConfigError
from .lake import Lake
from .lock import LockBusy
from .settings import Settings
from .stages import ObserverAhead, StageContext, StageError, StageResult
from .transforms import dates as dates_

log = logging.getLogger("meterlake")

#: what a stage is: meterlake.stages.<name>.run(ctx, dates)
StageRun = Callable[[StageContext, list[dt.date]], StageResult]


def _stage(name: str) -> StageRun:
    """``meterlake.stages.<name>.run``, its module imported when the stage first runs: a task
    that runs one stage (Airflow runs one a task) imports that stage's libraries only."""

    def run(ctx: StageContext, dates: list[dt.date]) -> StageResult:
        module = importlib.import_module(f"{__package__}.stages.{name}")
        result: StageResult = module.run(ctx, dates)
        return result

    run.__qualname__ = run.__name__ = f"{name}.run"
    return run


#: every stage, in the order a run takes them
RUNNERS: dict[str, StageRun] = {
    "ingest": _stage("ingest"),  # landing files -> clean tables + quarantine
    "outages": _stage(
        "outages"
    ),  # interruptions from meter events, plans, reliability (before VEE: outage slots are no gaps)
    "validate": _stage("validate"),  # VEE, meter_daily, collection_daily
    "loss": _stage("loss"),  # area/feeder line loss and its diagnosis
    "anomalies": _stage("anomalies"),  # theft/anomaly ranking
    "billing": _stage("billing"),  # bills, prepay balances
    "receivables": _stage("receivables"),  # post-paid receivables, recovery, credit, dunning
    "check": _stage("check"),  # the quality gate (verdict in polars): blocking failures stop here
    "docs": _stage("docs"),  # Great Expectations re-checks a passed gate and renders its Data Docs
    "publish": _stage("publish"),  # reporting database, data dictionary, HTML report
}
STAGES: tuple[str, ...] = tuple(RUNNERS)
#: in a run of several stages with the docs stage and the gate or publish, the first of these
#: stages at whose start the docs stage's helper process starts (:class:`DocsHelper`): it
#: imports Great Expectations (~2 s of CPU with the interpreter's start) and opens the GX
#: context in the lake on the other core (a thread would hold Python's lock the stages'
#: own Python work needs), and renders the Data Docs beside publish. Started at billing
#: where the run has it, the import and the context overlap billing and receivables (each
#: ~1.5 of two cores busy on a county day) instead of the gate, which then has both cores
#: (it judges two tables at a time), and the run hardly waits for the helper after publish:
#: on a county day billing and receivables took 0.4-0.6 s longer each, the gate 0.6 s
#: less, the wait after publish 0.3 s instead of 1.3-1.7 (started at receivables: the wait
#: 0.4 s, receivables 0.6-0.9 s longer, about the same in all). Not earlier on large days:
#: the helper's ~0.22 GB after the import would add to the anomalies stage's peak (~0.8 GB
#: on a county day, whose run is held at 1 GB); billing's is ~0.57 GB, receivables' ~0.54
DOCS_HELPER_FROM = ("billing", "receivables", "check", "docs")
#: ... or, in a run of small days (at most :data:`DOCS_EARLY_MAX_METERS` meters a day, by
#: meter_daily's footers), at the first of these stages: GX's import then overlaps the
#: loss and anomalies stages (small days are Python driving small queries, mostly one core
#: busy) instead of the gate, and the run does not wait for it after publish (a small run
#: waited 1-3 s there, the helper ~2 s of CPU behind). Started at loss in a run with the
#: anomalies stage, it first writes the observer's day summaries of the run's dates
#: (``anomalies.summarise_ahead``: they read only validate's outputs) and judges the dates
#: (``anomalies.judge_ahead``: the indicator of each date, a file each), which the stage
#: then reads back: on the other core, beside loss, instead of on the run's path (the
#: stage waits for them after its look-backs' indicators; billing and receivables beside
#: it do not). Its ~0.3 GB stays beside those stages, which on small days hold little
DOCS_HELPER_SMALL_FROM = ("loss", "anomalies", "billing", "receivables")
#: ... and where it would start at loss with the observer's work, it is started already at
#: the first of these stages where the run's days look small (:func:`docs_held`), imports
#: Great Expectations there and then holds until loss (:meth:`DocsHelper.observe`): its
#: start and GX's import (~0.45 + 1.5-2 s of CPU) overlap ingest, whose writer threads
#: leave the second core partly idle, instead of the loss stage and the observer's work
DOCS_HELPER_HOLD_FROM = ("ingest", "outages", "validate")
#: the largest landing curves file (bytes) for which a run starting at ingest starts its
#: docs helper there: ~8,000 meters a day as plain CSV (a county day's is 340 MB)
DOCS_EARLY_MAX_LANDING_BYTES = 16 << 20
#: the most meters a day (rows of a meter_daily partition) for which the helper starts early
DOCS_EARLY_MAX_METERS = 100_000
#: the stage that ends the chain for a run's dates: what ingest left pending is then done
CHAIN_END = "publish"


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
    observed_ahead: Iterable[dt.date] = (),
    observer_ahead: Callable[[], ObserverAhead] | None = None,
    checked_ahead: Callable[[], Path | None] | None = None,
    gx_ready: Callable[[], None] | None = None,
) -> StageResult:
    """Run one stage for ``dates`` and return what it did.

    The stage holds the lake lock (see :mod:`meterlake.lock`): a second writer waits up
    to ``settings.lock_wait_s`` or fails with one line naming the holder. With
    ``record`` (an Airflow task runs one stage at a time) the stage's result is also
    written as ``LAKE/_meta/runs/<run_id>/<stage>.json``; :func:`run` writes one record
    for the whole run instead. ``observed_ahead``: days whose observer summaries the run
    wrote already (:attr:`StageContext.observed_ahead`); ``observer_ahead``: waits for the
    observer's work the run is doing ahead (:attr:`StageContext.observer_ahead`);
    ``checked_ahead``: waits for the gate's tables judged ahead (:attr:`StageContext.checked_ahead`);
    ``gx_ready``: waits for the GX context the run's docs helper opens (:attr:`StageContext.gx_ready`).
    """
    if stage not in STAGES:
        raise StageError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    ctx = StageContext(
        settings=settings,
        run_id=run_id,
        observed_ahead=frozenset(observed_ahead),
        observer_ahead=observer_ahead,
        checked_ahead=checked_ahead,
        gx_ready=gx_ready,
    )
    if progress is not None:
        ctx.progress = progress
    dates = sorted(set(dates))
    with writer(settings, run_id), fewer_collections():
        t0, cpu0 = time.perf_counter(), time.process_time()
        try:
            result = RUNNERS[stage](ctx, dates)
        except ConfigError as exc:
            raise StageError(f"{stage}: {exc}") from exc
        finally:
            allocator.trim()  # what the stage freed is not held under the next stage's peak
        result.seconds = round(time.perf_counter() - t0, 3)
        result.cpu_seconds = round(time.process_time() - cpu0, 3)
        if stage == CHAIN_END:
            # the chain is complete for these dates: what ingest left pending is done
            ctx.lake.clear_pending_dates(dates)
        if record:
            out = Path(settings.lake) / "_meta" / "runs" / _safe(run_id) / f"{stage}.json"
            ctx.lake.write_text(out, json.dumps(_jsonable(dataclasses.asdict(result)), indent=2, ensure_ascii=False))
    return result


#: the cyclic garbage collector's first threshold while stages run and in the docs helper
#: (Python's default: 700 allocations). The stages' Python objects are few and short-lived
#: and their data is polars' and numpy's, which the collector never frees: at 700 it walked
#: the young objects thousands of times a county day (0.1-0.2 s of CPU) and Great Expectations'
#: ~0.4M objects some 600 times during its import in the docs helper (1.39-1.48 -> 1.22-1.30
#: s at 10,000). It rests on no reference cycle holding a stage's data, which would then
#: wait longer for a collection: ``tests/test_no_data_cycles.py`` holds a whole run to that
GC_FIRST_THRESHOLD = 10_000


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the garbage collector less often inside the block (:data:`GC_FIRST_THRESHOLD`),
    as before after it."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], GC_FIRST_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def freeze_for_exit() -> None:
    """Call as a process ends: whatever is still alive goes to the collector's permanent
    generation (``gc.freeze``), which the collections Python runs while it tears down its
    modules at exit do not walk. Measured on this 2-core machine: a process that imported
    Great Expectations (the docs helper) ended in 0.60-0.67 s after its last line, 0.04 s
    frozen; the docs helper's end falls beside publish, where both cores are busy. A run's
    own process (300 meters x 59 days): 0.26 -> 0.11 s. Nothing is lost: a process's memory
    goes back with it, and ``atexit`` handlers and buffered files run as before."""
    gc.freeze()


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
        with writer(settings, run_id), fewer_collections():
            helper: DocsHelper | None = None
            side: SideStage | None = None
            tried = False
            try:
                if side_stages(wanted):
                    progress = _serialised(progress)  # two stages may report at once
                for stage in STAGES:
                    if stage not in wanted:
                        continue
                    if side is not None and stage not in side.beside:
                        # the stages after the side stage's partners read what it wrote
                        dates = _join_side(side, settings, dates, run_id, progress, record)
                        side = None
                    if not tried and stage in DOCS_HELPER_HOLD_FROM and docs_held(settings, wanted, dates, stage):
                        tried = True
                        try:
                            helper = DocsHelper(settings, run_id, hold=True)
                        except OSError:
                            log.debug("could not start the docs helper", exc_info=True)
                    if helper is not None and helper.holding and stage == "loss":
                        # the observer's work where meter_daily's days are small, else none
                        helper.observe(dates if docs_helper_now(settings, stage, dates) else None)
                    if not tried and docs_beside(wanted) and docs_helper_now(settings, stage, dates):
                        tried = True
                        # started before anomalies on small days: it writes the observer's
                        # day summaries of the run's dates and judges the dates first, beside
                        # the loss stage
                        observe = dates if stage == "loss" and "anomalies" in wanted else None
                        try:
                            helper = DocsHelper(settings, run_id, observe=observe, prepare=observe is None)
                        except OSError:  # no process to start: the docs stage runs here, in turn
                            log.debug("could not start the docs helper", exc_info=True)
                    if stage == "docs" and helper is not None:
                        # rendered beside the stages after it; the run waits for it at its end
                        helper.go(dates, progress)
                        record["stages"]["docs"] = None  # its place in the record, filled below
                        continue
                    # the observer's work the helper does beside loss: the anomalies stage waits
                    # for it where it first needs it (the stages beside it do not)
                    ahead = helper.observed if stage == "anomalies" and helper is not None else None
                    if ahead is not None and helper is not None:
                        # the tables written up to loss judged for the gate, by the helper
                        # once its observer's work is done, beside anomalies and its partners
                        helper.check(dates)
                    checked = helper.checked if stage == "check" and helper is not None else None
                    # a failing gate renders its page here, in the GX context the helper opens
                    # ahead: the stage waits for it first (a passing gate does not)
                    gx_ready = helper.prepared if stage == "check" and helper is not None else None
                    if stage in side_stages(wanted) and side_fits(settings, dates):
                        side = SideStage(settings, stage, dates, run_id, progress, SIDE_STAGES[stage], ahead)
                        record["stages"][stage] = None  # its place in the record, filled when joined
                        continue
                    result = run_stage(
                        settings,
                        stage,
                        dates,
                        run_id,
                        progress,
                        observer_ahead=ahead,
                        checked_ahead=checked,
                        gx_ready=gx_ready,
                    )
                    if side is not None:
                        side.ran.append(stage)
                        result.details["beside"] = side.stage  # its CPU time counts the side stage's too
                    record["stages"][stage] = _jsonable(dataclasses.asdict(result))
                    if result.dates:
                        dates = sorted(set(dates) | set(result.dates))
                    if side is not None and side.failed():
                        break  # the side stage failed: no further stage starts; its error is raised below
                if side is not None:
                    dates = _join_side(side, settings, dates, run_id, progress, record)
                    side = None
                if helper is not None:
                    docs, helper = helper.result(), None
                    record["stages"]["docs"] = _jsonable(dataclasses.asdict(docs))
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
                if side is not None:  # the run failed beside it: the side stage ends before the lock is let go
                    done = side.finish()
                    if done is not None:
                        record["stages"][side.stage] = _jsonable(dataclasses.asdict(done))
                if helper is not None:  # the run failed: the helper ends before the lock is let go
                    with suppress(Exception):
                        done = helper.finish(interrupted=record["status"] == "interrupted")
                        if done is not None:
                            record["stages"]["docs"] = _jsonable(dataclasses.asdict(done))
                for stage in [k for k, v in record["stages"].items() if v is None]:
                    del record["stages"][stage]  # a place kept for a stage that did not finish
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


#: stages a run of several stages takes on a thread of its own, beside the stages named
#: (in their order, on the run's thread); the run waits for it before any other stage.
#: Their inputs, by what each reads: anomalies reads the clean tables, meter_daily,
#: outage_meter_days and loss_diagnosis, and writes anomalies, indicators, theft_cases
#: and its observer state; billing reads meter_daily, loss_diagnosis and the clean
#: purchases, receivables bills_monthly, prepay_daily, meter_daily and the clean archive,
#: payments and inspections. Neither side reads what the other writes, and anomalies
#: adds no dates to the run; the gate (check) checks every mart, so it waits for both.
#: Polars runs its queries without Python's lock: the two sides share the two cores,
#: and the process's memory (one interpreter, one set of imports)
SIDE_STAGES: dict[str, tuple[str, ...]] = {"anomalies": ("billing", "receivables")}
#: the most meters a day (rows of a meter_daily partition) for which a run takes a side
#: stage beside its partners. Beside each other their working sets add up: on a county
#: day (500k meters) anomalies alone peaks at 0.76 GB, billing at 0.37, receivables at
#: 0.45, anomalies beside billing and receivables at 0.97-1.02 GB (each in a process of
#: its own), where the run's whole peak is held at 1 GB. Memory grows with the meters
#: of a day, so a county day (or a larger shard) takes them in turn, and a run of
#: smaller days (a small county's backfill, where the stages' fixed costs are most of
#: the time) beside each other
SIDE_MAX_METERS = 100_000


def side_stages(wanted: Iterable[str]) -> set[str]:
    """The stages of a run of ``wanted`` that run beside others (:data:`SIDE_STAGES`):
    those whose partners the run runs too."""
    wanted = set(wanted)
    return {s for s, partners in SIDE_STAGES.items() if s in wanted and wanted & set(partners)}


def docs_helper_now(settings: Settings, stage: str, dates: Iterable[dt.date]) -> bool:
    """Whether the docs helper of a run that uses one starts at ``stage``: at the gate (or
    the docs stage), or earlier where the run's days are small (:data:`DOCS_HELPER_SMALL_FROM`)."""
    if stage in DOCS_HELPER_FROM:
        return True
    return stage in DOCS_HELPER_SMALL_FROM and side_fits(settings, dates, DOCS_EARLY_MAX_METERS)


def docs_held(settings: Settings, wanted: Iterable[str], dates: Iterable[dt.date], stage: str) -> bool:
    """Whether a run of ``wanted`` starts its docs helper at ``stage``, before loss, holding it
    until then (:data:`DOCS_HELPER_HOLD_FROM`): it renders the Data Docs beside the run, runs
    the loss and anomalies stages, and its days look small: at ingest, no landing curves file
    larger than :data:`DOCS_EARLY_MAX_LANDING_BYTES` (nothing is parsed yet); after it, at
    most :data:`DOCS_EARLY_MAX_METERS` rows a day in the clean curves and meter_daily (by
    their Parquet footers: meter_daily may not be written yet)."""
    import pyarrow.parquet as pq

    from .landing import scan_dataset
    from .schemas.curves import LANDING as CURVES
    from .schemas.meter_daily import METER_DAILY

    wanted = set(wanted)
    if not (docs_beside(wanted) and {"loss", "anomalies"} <= wanted):
        return False
    if stage == "ingest":
        found, _ = scan_dataset(Path(settings.landing), CURVES.dataset)
        return all(c.size <= DOCS_EARLY_MAX_LANDING_BYTES for c in found)
    lake = Lake(settings.lake)
    for day in dates:
        for table in (CURVES.clean, METER_DAILY):
            try:
                rows = pq.read_metadata(lake.partition_path(table, day.isoformat())).num_rows
            except (OSError, ValueError):  # no partition (or an unreadable one: its stage meets it)
                continue
            if rows > DOCS_EARLY_MAX_METERS:
                return False
    return True


def side_fits(settings: Settings, dates: Iterable[dt.date], max_meters: int | None = None) -> bool:
    """Whether the run's days are small enough for a side stage (:data:`SIDE_MAX_METERS`,
    or ``max_meters``): the largest meter_daily partition of ``dates``, by its Parquet
    footer's row count."""
    import pyarrow.parquet as pq

    from .schemas.meter_daily import METER_DAILY

    lake = Lake(settings.lake)
    most = 0
    for day in dates:
        path = lake.partition_path(METER_DAILY, day.isoformat())
        try:
            most = max(most, pq.read_metadata(path).num_rows)
        except (OSError, ValueError):  # no partition (or an unreadable one: its stage meets it)
            continue
    return most <= (SIDE_MAX_METERS if max_meters is None else max_meters)


class SideStage:
    """One stage of a run on a thread of its own (:data:`SIDE_STAGES`), under the run's
    lake lock (the run holds it until the stage is joined or finished).

    A stage cannot be stopped midway, and needs not be: each of its writes replaces a
    file whole. A run that fails beside it waits for it (:meth:`finish`) before letting
    the lock go; when it fails, the run starts no further stage and raises its error.
    """

    def __init__(
        self,
        settings: Settings,
        stage: str,
        dates: list[dt.date],
        run_id: str,
        progress: Callable[[str], None] | None,
        beside: tuple[str, ...],
        observer_ahead: Callable[[], ObserverAhead] | None = None,
    ) -> None:
        self.stage, self.beside = stage, beside
        self.observer_ahead = observer_ahead
        self.lake = Path(settings.lake)
        #: the stages the run ran beside it
        self.ran: list[str] = []
        self.dates = list(dates)
        self._result: StageResult | None = None
        self._error: BaseException | None = None
        self._raised = False
        self._done = threading.Event()
        #: guards the stage's end against the lock's hand-over (:meth:`finish`)
        self._guard = threading.Lock()
        self._release: Callable[[], None] | None = None
        # a daemon: a run stopped twice (Ctrl-C while it waits) exits without it, and the
        # lake lock goes with the process
        self._thread = threading.Thread(
            target=self._run, args=(settings, run_id, progress), name=f"meterlake-{stage}", daemon=True
        )
        self._thread.start()

    def _run(self, settings: Settings, run_id: str, progress: Callable[[str], None] | None) -> None:
        try:
            result = run_stage(settings, self.stage, self.dates, run_id, progress, observer_ahead=self.observer_ahead)
            result.details["beside"] = list(self.beside)  # its CPU time counts theirs too
            self._result = result
        except BaseException as exc:
            self._error = exc
        finally:
            with self._guard:
                self._done.set()
                release = self._release
            if release is not None:  # the run was stopped twice and left the lock to this stage
                release()

    def failed(self) -> bool:
        """Whether the stage has ended with an error."""
        return self._done.is_set() and self._error is not None

    def wait(self) -> None:
        # in short waits: Ctrl-C reaches the run's thread while it waits
        while not self._done.wait(0.1):
            pass

    def result(self) -> StageResult:
        """Wait for the stage; its result, or its error raised."""
        self.wait()
        if self._error is not None:
            self._raised = True
            raise self._error
        assert self._result is not None
        return self._result

    def finish(self) -> StageResult | None:
        """After the run failed beside it: wait for the stage (its writes are whole), log its
        error to the run's debug log; its result, if it completed."""
        try:
            self.wait()
        except KeyboardInterrupt:  # stopped again while waiting: the run exits without it
            with self._guard:
                if not self._done.is_set():
                    # the stage may be writing: the lake stays locked until it ends (or
                    # the process exits), not only until the run lets the lock go
                    self._release = lock.hand_over(self.lake)
            log.warning(
                "stopped again: the %s stage beside the run ends on its own; the lake stays "
                "locked until it has (or this process exits)",
                self.stage,
            )
            return None
        if self._error is not None:
            if not self._raised:  # the run's error is another's: this one goes to the debug log
                log.debug("the %s stage beside the failed run failed too", self.stage, exc_info=self._error)
            return None
        return self._result


def _join_side(
    side: SideStage,
    settings: Settings,
    dates: list[dt.date],
    run_id: str,
    progress: Callable[[str], None] | None,
    record: dict[str, Any],
) -> list[dt.date]:
    """Wait for the side stage and record it; the run's dates from then on.

    Dates it added (none today: see :data:`SIDE_STAGES`) are rebuilt by the stages that
    ran beside it too, as a run in turn would have had them do.
    """
    result = side.result()
    record["stages"][side.stage] = _jsonable(dataclasses.asdict(result))
    extra = set(result.dates) - set(dates)
    if not extra:
        return dates
    dates = sorted(set(dates) | extra)
    for stage in side.ran:
        again = run_stage(settings, stage, dates, run_id, progress)
        record["stages"][stage] = _jsonable(dataclasses.asdict(again))
        if again.dates:
            dates = sorted(set(dates) | set(again.dates))
    return dates


def _serialised(progress: Callable[[str], None] | None) -> Callable[[str], None] | None:
    """``progress`` called by one thread at a time (a side stage reports beside the run)."""
    if progress is None:
        return None
    lock_ = threading.Lock()
    report = progress

    def serialised(message: str) -> None:
        with lock_:
            report(message)

    return serialised


def docs_beside(wanted: Iterable[str]) -> bool:
    """Whether a run of ``wanted`` stages renders the Data Docs in a helper process: when it
    runs the docs stage and the gate or publish, which the helper then runs beside."""
    wanted = set(wanted)
    return "docs" in wanted and bool(wanted & {"check", "publish"})


#: the helper process's program (:func:`_docs_helper_main`)
DOCS_HELPER = "from meterlake.pipeline import _docs_helper_main; _docs_helper_main()"
#: the helper's argument when started ahead (:meth:`DocsHelper.observe`), followed by the
#: run's settings (its GX context is opened while it holds): its first line on standard
#: input is then the observer's job (an empty line: none)
HOLD_ARG = "--hold"
#: how long a run waits for its docs helper at the end (its render takes about a second)
DOCS_HELPER_WAIT_S = 600.0


class DocsHelper:
    """The docs stage of a run in a process of its own, beside the gate and publish (and,
    given ``observe``, first the observer's day summaries of those dates and their
    judgements, beside loss: :meth:`observed` waits for them).

    Started at billing or the gate, the process imports Great Expectations at once (and,
    given ``prepare``, opens the GX context in the lake); :meth:`go`
    hands it the run's dates after the gate passed, and it runs the docs stage while
    the run goes on to publish; :meth:`result` waits for its :class:`StageResult`. It
    works under the run's lake lock (the run holds it until the helper is done: see
    :func:`run`) and takes none itself. A gate that fails, or a run stopped before
    :meth:`go`, ends it unused (:meth:`finish`). Its errors come back as the docs
    stage's one line (:class:`StageError`), its traceback and warnings go to the run's
    debug log.
    """

    def __init__(
        self,
        settings: Settings,
        run_id: str,
        observe: list[dt.date] | None = None,
        hold: bool = False,
        prepare: bool = False,
    ) -> None:
        self.settings, self.run_id = settings, run_id
        # ``prepare`` (without ``observe`` or ``hold``): started as a held helper and let go at
        # once with no observer work, it opens the GX context right after GX's import, before
        # the docs job comes, instead of in the render at the run's end (:meth:`prepared`)
        prepare = prepare and observe is None and not hold
        #: started ahead, it waits for :meth:`observe` before anything else
        self.holding = self._held = hold
        self._err = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115  # closed when the helper ends
        self._sent = False
        #: whether the helper was given the observer's summaries to write ahead (:meth:`observed`)
        self._observing = observe is not None
        #: started ahead, it opens the GX context in the lake first and says when done (:meth:`prepared`)
        self._preparing = hold or prepare
        self._ahead = ObserverAhead()
        #: where the helper writes the judged dates' indicators (under the lake's staging
        #: folder: cleared by the next run where this one is killed), removed when it ends
        self._judged: tempfile.TemporaryDirectory[str] | None = None
        #: where the helper leaves the gate's tables judged ahead, once asked (:meth:`check`)
        self._checking: Path | None = None
        # the observer's job, first: before Great Expectations' import (see _docs_helper_main);
        # started ahead, the settings its GX context is opened with while it holds
        ahead = [HOLD_ARG, json.dumps(self._job([]))] if hold or prepare else []
        if observe is not None or hold:
            staging = Lake(settings.lake).staging
            staging.mkdir(parents=True, exist_ok=True)
            self._judged = tempfile.TemporaryDirectory(prefix="observer-ahead-", dir=staging)
        if observe is not None and not hold:
            ahead = [self._observe_job(observe)]
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", DOCS_HELPER, *ahead],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._err,
                text=True,
                encoding="utf-8",
                env=os.environ | {HELPER_PARENT_ENV: str(os.getpid())},
            )
        except BaseException:
            self._err.close()
            self._remove_judged()
            raise
        if prepare and self.proc.stdin is not None:
            with suppress(OSError):  # a helper that died: result() says so
                self.proc.stdin.write("\n")  # no observer work: GX's context, then the docs job
                self.proc.stdin.flush()

    def _observe_job(self, dates: list[dt.date]) -> str:
        assert self._judged is not None
        return json.dumps(self._job(dates) | {"judged_dir": self._judged.name})

    def observe(self, dates: list[dt.date] | None) -> None:
        """Let a helper started ahead (``hold``, Great Expectations imported meanwhile) go on
        with the observer's work of ``dates`` (None: none, and no gate's tables either:
        :meth:`check`)."""
        if not self.holding:
            return
        self.holding = False
        self._observing = dates is not None
        # without the observer's work (the days are not small after all) nor the gate's
        self._held = self._held and dates is not None
        stdin = self.proc.stdin
        if stdin is None or stdin.closed:
            self._observing = False
            return
        try:
            stdin.write(("" if dates is None else self._observe_job(dates)) + "\n")
            stdin.flush()
        except OSError:  # a helper that died: observed() and result() say so
            self._observing = False

    def check(self, dates: list[dt.date]) -> Path | None:
        """Have the helper judge the gate's tables of ``dates`` ahead, after its observer's
        work (``check.check_ahead``); where it leaves them (None: not asked, for a helper
        not started ahead: it imports GX after the observer's work, and the gate would wait
        for both). Asked once, before :meth:`go`."""
        stdin = self.proc.stdin
        if not self._held or self.holding or self._checking is not None or stdin is None or stdin.closed:
            return None
        assert self._judged is not None  # made for a helper started ahead
        path = Path(self._judged.name) / "check-ahead.pickle"
        try:
            stdin.write(json.dumps(self._job(dates) | {"check_ahead": str(path)}) + "\n")
            stdin.flush()
        except OSError:  # a helper that died: result() says so
            return None
        self._checking = path
        return path

    def checked(self) -> Path | None:
        """Wait for the gate's tables the helper was asked to judge ahead (:meth:`check`);
        where it left them (None: not asked, failed or ended: the stage judges them). It
        works on them as soon as its observer's work is done, so by the gate it is done or
        nearly: the stage waits rather than judging the same tables beside it."""
        path, self._checking = self._checking, None
        if path is None or self.proc.stdout is None:
            return None
        self.observed()  # its answer comes first
        for line in iter(self.proc.stdout.readline, ""):
            if line.startswith(CHECKED_PREFIX):
                return path if json.loads(line[len(CHECKED_PREFIX) :]).get("ok") else None
        return None

    def go(self, dates: list[dt.date], progress: Callable[[str], None] | None = None) -> None:
        """Have the helper run the docs stage for ``dates`` now."""
        if progress is not None:
            progress("docs: Great Expectations re-checks the gate and renders its Data Docs beside the run")
        self._send(json.dumps(self._job(dates)))

    def _job(self, dates: list[dt.date]) -> dict[str, Any]:
        # the settings without their secrets: neither the docs stage nor the observer needs them
        return {
            "settings": self.settings.model_dump(mode="json", exclude={"pii_key", "pg_dsn"}),
            "run_id": self.run_id,
            "dates": [d.isoformat() for d in dates],
        }

    def observed(self) -> ObserverAhead:
        """Wait for the observer's work the helper was given to do ahead: the days whose
        summaries it wrote, the dates it judged (none where it was not given them, failed or
        ended: the stage does them)."""
        self.prepared()  # its line comes first
        if not self._observing or self.proc.stdout is None:
            return self._ahead
        self._observing = False
        for line in iter(self.proc.stdout.readline, ""):
            if line.startswith(OBSERVED_PREFIX):
                answer = json.loads(line[len(OBSERVED_PREFIX) :])
                if "error" in answer:
                    log.debug("the docs helper's observer summaries failed:\n%s", answer.get("traceback", ""))
                    break
                if "judge_error" in answer:
                    log.debug("the docs helper's observer judgements failed:\n%s", answer["judge_error"])
                judged = answer.get("judged", {})
                self._ahead = ObserverAhead(
                    summarised=frozenset(dt.date.fromisoformat(d) for d in answer["days"]),
                    judged={
                        dt.date.fromisoformat(d): None if name is None else Path(name) for d, name in judged.items()
                    },
                )
                break
        return self._ahead

    def prepared(self) -> None:
        """Wait until a helper started ahead has opened the GX context in the lake (or failed,
        or ended): before the run's own process may open it (a failing gate renders its page
        there), and before its later answers."""
        if not self._preparing or self.proc.stdout is None:
            return
        self._preparing = False
        for line in iter(self.proc.stdout.readline, ""):
            if line.startswith(PREPARED_PREFIX):
                return

    def _remove_judged(self) -> None:
        if self._judged is not None:
            with suppress(OSError):
                self._judged.cleanup()
            self._judged = None

    def _send(self, line: str) -> None:
        stdin = self.proc.stdin
        if stdin is None or stdin.closed:
            return
        with suppress(BrokenPipeError, OSError):  # a helper that died: result() says so
            if line:
                stdin.write(line + "\n")
                self._sent = True
            stdin.close()
        self.proc.stdin = None  # communicate() then only reads

    def result(self) -> StageResult:
        """Wait for the helper; its docs stage's result, or :class:`StageError`."""
        t0 = time.perf_counter()
        self._send("")
        try:
            out, _ = self.proc.communicate(timeout=DOCS_HELPER_WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            self._log_stderr()
            self._remove_judged()
            raise StageError(f"docs: the Data Docs helper did not finish in {DOCS_HELPER_WAIT_S:.0f} s") from None
        self._log_stderr()
        self._remove_judged()
        lines = [ln for ln in (out or "").splitlines() if ln.startswith(HELPER_PREFIX)]
        answer: dict[str, Any] = json.loads(lines[-1][len(HELPER_PREFIX) :]) if lines else {}
        if "error" in answer:
            log.debug("the docs helper failed:\n%s", answer.get("traceback", ""))
            raise StageError(answer["error"])
        if "result" not in answer:
            raise StageError(f"docs: the Data Docs helper ended without a result (exit code {self.proc.returncode})")
        res = answer["result"]
        res["dates"] = [dt.date.fromisoformat(d) for d in res.get("dates", [])]
        result = StageResult(**res)
        result.details["waited_s"] = round(time.perf_counter() - t0, 3)
        return result

    def finish(self, interrupted: bool = False) -> StageResult | None:
        """End the helper after a failed or stopped run: unused, it quits; told to render, it
        finishes (a page half written is worse than one late), unless the run was interrupted."""
        if not self._sent or interrupted:
            if not interrupted:
                self.prepared()  # the GX context's files it is writing are written whole first
            self.proc.terminate()
            with suppress(Exception):
                self.proc.communicate(timeout=30)
            self._log_stderr()
            self._remove_judged()
            return None
        try:
            return self.result()
        except StageError as exc:
            log.debug("the docs helper of a failed run: %s", exc)
            return None

    def _log_stderr(self) -> None:
        if self._err.closed:
            return
        with suppress(OSError):
            self._err.seek(0)
            text = self._err.read().strip()
            if text:
                log.debug("the docs helper's messages:\n%s", text)
        self._err.close()


def _peak_rss_mb() -> int:
    """This process's peak resident memory since it started its program (``VmHWM``): not
    ``ru_maxrss``, which keeps the run's own peak from before the helper's ``exec``."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024)
    except (OSError, ValueError, IndexError):
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


#: how the helper's answer line starts on its standard output
HELPER_PREFIX = "METERLAKE-DOCS "
#: ... and its line of the observer's summaries written ahead (:meth:`DocsHelper.observed`)
OBSERVED_PREFIX = "METERLAKE-OBSERVED "
#: ... and its line of the GX context opened ahead (:meth:`DocsHelper.prepared`)
PREPARED_PREFIX = "METERLAKE-PREPARED "
#: ... and its line of the gate's tables judged ahead (:meth:`DocsHelper.checked`)
CHECKED_PREFIX = "METERLAKE-CHECKED "


def _observe_ahead(args: list[str], out: Any) -> None:
    """The docs helper's first job where it was given one (``args``: its JSON): the observer's
    day summaries of the run's dates (``anomalies.summarise_ahead``), then their judgements
    (``anomalies.judge_ahead``, into the job's ``judged_dir``), answered on ``out``."""
    if not args:
        return
    answer: dict[str, Any]
    try:
        job = json.loads(args[0])
        ctx = StageContext(settings=Settings(**job["settings"]), run_id=job["run_id"])
        ctx.progress = lambda msg: log.info(msg)
        from .stages import anomalies

        dates = [dt.date.fromisoformat(d) for d in job["dates"]]
        days = anomalies.summarise_ahead(ctx, dates)
        answer = {"days": [d.isoformat() for d in days]}
        if job.get("judged_dir"):
            try:
                judged = anomalies.judge_ahead(ctx, dates, days, Path(job["judged_dir"]))
                answer["judged"] = {d.isoformat(): None if p is None else str(p) for d, p in judged.items()}
            except Exception:  # the stage judges the dates itself (and meets the error there)
                answer["judge_error"] = traceback.format_exc()
    except Exception as exc:  # the stage summarises the days itself
        answer = {"error": errors.one_line(exc), "traceback": traceback.format_exc()}
    out.write(OBSERVED_PREFIX + json.dumps(answer) + "\n")
    out.flush()


def _check_ahead(job: dict[str, Any], out: Any) -> None:
    """The docs helper's job of the gate's tables judged ahead (``check.check_ahead``),
    answered on ``out``; a failure only leaves the stage to judge them itself."""
    ok = False
    try:
        ctx = StageContext(settings=Settings(**job["settings"]), run_id=job["run_id"])
        from .stages import check

        check.check_ahead(ctx, [dt.date.fromisoformat(d) for d in job["dates"]], Path(job["check_ahead"]))
        ok = True
    except Exception:
        log.warning("the docs helper's check of the tables ahead failed", exc_info=True)
    out.write(CHECKED_PREFIX + json.dumps({"ok": ok}) + "\n")
    out.flush()


def _import_gx() -> None:
    """Import Great Expectations in the docs helper without the collector: its ~0.25M
    objects are made to live as long as the process, so they are frozen (``gc.freeze``)
    instead of walked by collections during the import and after it. Measured on this
    2-core machine: 1.72-1.78 s of CPU at a first threshold of 10,000, 1.57-1.61 s so,
    the resident memory 212 -> 213 MB (the few cycles the import leaves are kept)."""
    gc.disable()
    try:
        from .checks.runner import import_gx

        import_gx()
    except Exception:  # the stage imports it again and meets the error itself
        log.warning("importing Great Expectations in the docs helper failed", exc_info=True)
    finally:
        gc.freeze()
        gc.enable()


def _prepare_docs(args: list[str], out: Any) -> None:
    """A held helper's work before it is let go (``args``: the settings' job): the GX context
    opened and the gate's checkpoint stored (``docs.prepare_ahead``), which the docs stage's
    render then takes instead of doing them beside publish, at the run's end; answered on
    ``out`` (:meth:`DocsHelper.prepared`). A failure only leaves them to the render (which
    meets the error itself)."""
    ok = False
    try:
        if args:
            job = json.loads(args[0])
            ctx = StageContext(settings=Settings(**job["settings"]), run_id=job["run_id"])
            from .stages import docs

            docs.prepare_ahead(ctx)
            ok = True
    except Exception:
        log.warning("the docs helper could not open the GX context ahead", exc_info=True)
    out.write(PREPARED_PREFIX + json.dumps({"ok": ok}) + "\n")
    out.flush()


def _docs_helper_main() -> None:
    """The docs helper process (:class:`DocsHelper`): import Great Expectations, read one job
    line from standard input (none: quit), run the docs stage, print its result (or error).
    The run waits for its end (:meth:`DocsHelper.result`), so it ends frozen (:func:`freeze_for_exit`)."""
    try:
        _docs_helper_work()
    finally:
        freeze_for_exit()


#: the variable that names the run's process to its docs helper (:func:`_orphaned`): a run
#: killed before the helper looked has handed it to another parent already
HELPER_PARENT_ENV = "METERLAKE_DOCS_HELPER_PARENT"


def _helper_parent() -> int:
    try:
        return int(os.environ[HELPER_PARENT_ENV])
    except (KeyError, ValueError):
        return os.getppid()


def _orphaned(parent: int) -> bool:
    """Whether the run that started this helper (process ``parent``) has ended: killed, it
    handed the helper to another parent. The lake is then the next run's, which clears and
    redoes what the killed one left: the helper starts no more work in it (a helper of a
    run killed during GX's import went on to write the GX context while the re-run's helper
    wrote it too, and the re-run's render found the gate's suite changed under it)."""
    return os.getppid() != parent


def _next_job(parent: int) -> dict[str, Any] | None:
    """The docs helper's next job from standard input; None where the run let it go (no
    line) or has ended (:func:`_orphaned`)."""
    line = sys.stdin.readline()
    return None if not line.strip() or _orphaned(parent) else json.loads(line)


def _docs_helper_work() -> None:
    parent = _helper_parent()
    out = sys.stdout
    sys.stdout = sys.stderr  # whatever a library prints stays off the answer
    gc.set_threshold(GC_FIRST_THRESHOLD, *gc.get_threshold()[1:])  # as fewer_collections, for its whole life
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    args = sys.argv[1:]
    held = args[:1] == [HOLD_ARG]
    if held:  # started ahead: Great Expectations first, beside the run's first stages
        _import_gx()
        if _orphaned(parent):
            return
        _prepare_docs(args[1:], out)
        line = sys.stdin.readline()
        args = [line] if line.strip() else []
    if _orphaned(parent):
        return
    _observe_ahead(args, out)
    if not held:
        _import_gx()
    job = _next_job(parent)
    if job is not None and "check_ahead" in job:  # the gate's tables first, while the stages after loss run
        _check_ahead(job, out)
        job = _next_job(parent)
    if job is None:
        return
    t0 = time.perf_counter()
    answer: dict[str, Any]
    try:
        settings = Settings(**job["settings"])
        ctx = StageContext(settings=settings, run_id=job["run_id"])
        ctx.progress = lambda msg: log.info(msg)
        result = RUNNERS["docs"](ctx, [dt.date.fromisoformat(d) for d in job["dates"]])
        result.seconds = round(time.perf_counter() - t0, 3)
        # the helper's whole CPU time: its interpreter, Great Expectations' import and the stage
        result.cpu_seconds = round(time.process_time(), 3)
        result.details["helper_peak_rss_mb"] = _peak_rss_mb()
        answer = {"result": _jsonable(dataclasses.asdict(result))}
    except BaseException as exc:
        err = exc if isinstance(exc, StageError) else StageError(f"docs: {errors.one_line(exc)}")
        answer = {"error": errors.one_line(err), "traceback": traceback.format_exc()}
    out.write(HELPER_PREFIX + json.dumps(answer, ensure_ascii=False) + "\n")
    out.flush()


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


# --- a sharded lake: one sub-lake per org unit (meterlake/shards.py) -------------------


def is_sharded(lake: Path) -> bool:
    """Whether ``lake`` is a province lake split by org unit (a split has run on it)."""
    return (Path(lake) / "_meta" / "split").is_dir()


def shard_settings(settings: Settings, org: str) -> Settings:
    """The settings of unit ``org``'s runs: its sub-lake, its own reporting database."""
    sub = shards.shard_root(Path(settings.lake), org)
    # one DuckDB file per unit (DuckDB has one writer per file), next to the lake: LAKE/../<lake>.<unit>.duckdb
    root = Path(settings.lake).resolve()
    db = settings.reporting_db or root.parent / f"{root.name}.duckdb"
    db = db.with_name(f"{db.stem}.{org}{db.suffix or '.duckdb'}")
    return settings.model_copy(update={"lake": sub, "reporting_db": db})


def split(settings: Settings, run_id: str, progress: Callable[[str], None] | None = None) -> StageResult:
    """Split the new landing files by org unit (one splitter at a time: the lock scope ``split``)."""
    ctx = StageContext(settings=settings, run_id=run_id)
    if progress is not None:
        ctx.progress = progress
    root = Path(settings.lake)
    t0 = time.perf_counter()
    try:
        with lock.lake_lock(root, run_id, wait_s=settings.lock_wait_s, scope=SPLIT_SCOPE):
            from .stages import ingest

            result = ingest.split_landing(ctx)
    except LockBusy as exc:
        raise LakeBusy(str(exc)) from exc
    except ConfigError as exc:
        raise StageError(f"split: {exc}") from exc
    result.seconds = round(time.perf_counter() - t0, 3)
    return result


#: the lock scope of the split (landing files -> units); each unit's sub-lake has its own lock
SPLIT_SCOPE = "split"


def run_shard(
    settings: Settings,
    org: str,
    start: dt.date,
    end: dt.date,
    stages: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Run the stages for one unit's shard: :func:`run` on its sub-lake (its lock, its record)."""
    return run(shard_settings(settings, org), start, end, stages=stages, progress=progress, run_id=run_id)


def run_sharded(
    settings: Settings,
    start: dt.date,
    end: dt.date,
    orgs: Iterable[str] | None = None,
    stages: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
    run_id: str | None = None,
    bucket: Any = None,
) -> dict[str, Any]:
    """Split the new landing files by unit, then run every unit's shard (or those of ``orgs``).

    A failed shard does not stop the others: the run record (``LAKE/_meta/runs/<run id>.json``)
    names each unit's status and the units whose shard is missing; the status is ``ok``
    only when every wanted shard completed. Raises :class:`StageError` only when the split
    itself fails (then no shard ran).
    """
    run_id = run_id or new_run_id()
    root = Path(settings.lake)
    date_range(start, end)  # a bad range fails before anything is written
    record: dict[str, Any] = {
        "run_id": run_id,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "landing": str(settings.landing),
        "lake": str(settings.lake),
        "start": start.isoformat(),
        "end": end.isoformat(),
        "sharded": True,
        "units": {},
        "status": "running",
    }
    if bucket is not None:
        record["lake"] = bucket.url
    try:
        with on_bucket(bucket, SPLIT_LOCK, run_id, settings.lock_wait_s, keep=_split_files, pull=_split_state):
            result = split(settings, run_id, progress)
        record["split"] = _jsonable(dataclasses.asdict(result))
        held = shards.shards(root)
        wanted = sorted(set(orgs)) if orgs else held
        for org in wanted:
            if org not in held:
                record["units"][org] = {"status": "missing", "error": "no landing rows of this unit so far"}
                continue
            try:
                unit = shards.shard_root(Path("."), org).as_posix().removeprefix("./")
                with on_bucket(bucket, f"{unit}/{LOCK_OBJECT}", run_id, settings.lock_wait_s, under=unit):
                    shard = run_shard(settings, org, start, end, stages, progress, run_id)
                record["units"][org] = {"status": shard["status"], "record": shard.get("record_path")}
            except Exception as exc:  # one unit failing leaves the others to finish and publish
                record["units"][org] = {"status": "failed", "error": errors.one_line(exc)}
                log.debug("shard %s of run %s failed", org, run_id, exc_info=True)
        record["missing"] = sorted(o for o, u in record["units"].items() if u["status"] != "ok")
        record["status"] = "ok" if not record["missing"] else "incomplete"
    except BaseException as exc:
        record["status"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        record["error"] = errors.one_line(exc)
        raise
    finally:
        record["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with suppress(OSError):
            write_run_record(root, record)
        if bucket is not None:
            bucket.push(keep=lambda rel: rel == f"_meta/runs/{run_id}.json")
            record["record_path"] = f"{bucket.url}/_meta/runs/{run_id}.json"
    return record


# --- a lake on object storage (meterlake/objectstore.py) ----------------------------------
#: the lock objects of a lake on a bucket: the whole lake (or a unit's sub-lake), the split
LOCK_OBJECT = "_meta/locks/lake.lock"
SPLIT_LOCK = "_meta/locks/split.lock"


def _split_state(rel: str) -> bool:
    """What the split reads: its manifest and unit map, and the units' markers."""
    return rel.startswith("_meta/split/") or rel.endswith(f"/_meta/{shards.MARKER}")


def _split_files(rel: str) -> bool:
    """What the split reads and writes: its own state, and the units' markers, staged files,
    file quarantine and inbox entries."""
    if rel.startswith("_meta/split/"):
        return True
    unit, _, rest = rel.partition("/")
    return unit.startswith(f"{shards.SHARD_KEY}=") and (
        rest == f"_meta/{shards.MARKER}"
        or rest.startswith(("_meta/staged/", "_meta/inbox/"))
        or (rest.startswith("marts/quarantine/") and "/file-" in rest)
    )


@contextmanager
def on_bucket(
    bucket: Any,
    lock_rel: str,
    run_id: str,
    wait_s: float,
    under: str = "",
    keep: Callable[[str], bool] | None = None,
    pull: Callable[[str], bool] | None = None,
) -> Iterator[None]:
    """Around a unit of work on a bucket: take its lock object, pull its prefix (the files
    ``pull`` accepts, else ``keep``), and push what it wrote of the files ``keep`` accepts
    (also when it failed: every file it wrote is whole, as on a local disk)."""
    if bucket is None:
        yield
        return
    from .objectstore import LockBusy as BucketBusy

    try:
        with bucket.lock(lock_rel, run_id, wait_s):
            bucket.pull(under, pull or keep)
            try:
                yield
            finally:
                bucket.push(under, keep)
    except BucketBusy as exc:
        raise LakeBusy(str(exc)) from exc


def open_lake(settings: Settings, landing: str, lake: str, pull_landing: bool = True) -> tuple[Settings, Any]:
    """Settings for a run whose landing zone or lake may be on a bucket (``s3://``).

    A landing zone on a bucket is brought down to this worker's cache (new and changed
    objects only); a lake on a bucket is worked on in the cache and committed back by
    :func:`on_bucket`. Returns the settings with local paths, and the lake's bucket prefix
    (None for a local lake).
    """
    from . import objectstore

    update: dict[str, Any] = {}
    if objectstore.is_url(landing):
        src = objectstore.Prefix(landing)
        if pull_landing:  # only the split reads the landing zone
            src.pull()
        update["landing"] = src.local
    else:
        update["landing"] = Path(landing)
    bucket = None
    if objectstore.is_url(lake):
        bucket = objectstore.Prefix(lake)
        update["lake"] = bucket.local
        if settings.reporting_db is None:  # the reporting database stays on the worker, beside the copy
            update["reporting_db"] = bucket.local.parent / f"{bucket.local.name}.duckdb"
    else:
        update["lake"] = Path(lake)
    return settings.model_copy(update=update), bucket


def run_anywhere(
    settings: Settings,
    landing: str,
    lake: str,
    start: dt.date,
    end: dt.date,
    orgs: Iterable[str] | None = None,
    sharded: bool = False,
    stages: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """``meterlake run``: a local or bucket lake, sharded or not.

    A lake that a split has run on always runs sharded.
    """
    run_id = run_id or new_run_id()
    local, bucket = open_lake(settings, landing, lake)
    if bucket is not None:
        sharded = sharded or bool(orgs) or bool(bucket.listing("_meta/split"))
    else:
        sharded = sharded or bool(orgs) or is_sharded(Path(lake))
    if sharded:
        return run_sharded(local, start, end, orgs=orgs, stages=stages, progress=progress, run_id=run_id, bucket=bucket)
    with on_bucket(bucket, LOCK_OBJECT, run_id, local.lock_wait_s):
        record = run(local, start, end, stages=stages, progress=progress, run_id=run_id)
    if bucket is not None:
        record["lake"] = bucket.url
    return record


# --- the fan-out under Airflow: split, one task per unit, the run record -----------------


def split_units(settings: Settings, landing: str, lake: str, run_id: str) -> list[str]:
    """Split the new landing files by unit (local or bucket lake); return every unit the lake holds."""
    local, bucket = open_lake(settings, landing, lake)
    with on_bucket(bucket, SPLIT_LOCK, run_id, local.lock_wait_s, keep=_split_files, pull=_split_state):
        split(local, run_id, log.info)
    return shards.shards(Path(local.lake))


def run_unit(
    settings: Settings,
    landing: str,
    lake: str,
    org: str,
    dates: list[dt.date],
    run_id: str,
    stages: Iterable[str] | None = None,
) -> dict[str, Any]:
    """One unit's shard for ``dates`` (first..last), on a local or bucket lake: its lock, its record."""
    local, bucket = open_lake(settings, landing, lake, pull_landing=False)
    unit = f"{shards.SHARD_KEY}={shards.check_org(org)}"
    marker = f"{unit}/_meta/{shards.MARKER}"
    held = bucket.listing(f"{unit}/_meta") if bucket is not None else {}
    if marker not in held and not shards.is_shard(shards.shard_root(Path(local.lake), org)):
        raise StageError(f"the lake {lake} holds no unit {org!r} (no landing rows of it so far)")
    with on_bucket(bucket, f"{unit}/{LOCK_OBJECT}", run_id, local.lock_wait_s, under=unit):
        return run_shard(local, org, min(dates), max(dates), stages=stages, progress=log.info, run_id=run_id)


def record_units(settings: Settings, lake: str, run_id: str, units: Iterable[str], **more: Any) -> dict[str, Any]:
    """The run record of a fanned-out run: each unit's status from its own record, the missing ones.

    Written to ``LAKE/_meta/runs/<run id>.json`` (on the bucket for a bucket lake).
    """
    local, bucket = open_lake(settings, "", lake, pull_landing=False)
    root = Path(local.lake)
    record: dict[str, Any] = {"run_id": run_id, "lake": lake, "sharded": True, **more, "units": {}}
    for org in sorted(set(units)):
        runs = f"{shards.SHARD_KEY}={org}/_meta/runs"
        rel = f"{runs}/{run_id}.json"
        if bucket is not None:
            bucket.pull(runs, keep=lambda r, rel=rel: r == rel)
        path = root / rel
        unit = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        if unit is None:
            record["units"][org] = {"status": "missing", "error": "no run record: the unit's task did not finish"}
        else:
            record["units"][org] = {"status": unit["status"], "error": unit.get("error")}
    record["missing"] = sorted(o for o, u in record["units"].items() if u["status"] != "ok")
    record["status"] = "ok" if not record["missing"] else "incomplete"
    record["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    write_run_record(root, record)
    if bucket is not None:
        bucket.push(keep=lambda rel: rel == f"_meta/runs/{run_id}.json")
    return record
