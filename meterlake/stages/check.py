"""The check stage: the Great Expectations gate before anything is published.

For every table the lake holds (clean tables and marts, found on disk: a table not
written yet is skipped with a note), the partitions of the run's dates and of the
months they touch (all partitions of quarantine) are reduced to a metrics frame in
polars and judged by the table's rules (:mod:`meterlake.checks.suites`,
:mod:`meterlake.checks.judge`), two tables at a time (:data:`TABLE_THREADS`); small
area-grain tables also get row-level rules.
The verdict is the polars one: the stage does not import Great Expectations when
the gate passes. A table judged ahead (:func:`check_ahead`, by the pipeline's docs
helper on small days) is reused where its files are unchanged. Then:

* the findings go to ``LAKE/_meta/check_results/run_id=<run>/part-0.parquet``;
* a passing gate leaves the judged findings (with the bounds GX checks) in
  ``LAKE/_meta/data_docs_pending/<run>.parquet``: the docs stage
  (:mod:`meterlake.stages.docs`) has Great Expectations re-check them on one combined
  frame (one suite, one checkpoint) and renders the run's Data Docs page, off the
  path from the gate to publishing;
* a failed *blocking* expectation raises :class:`BlockingValidationError` with one
  line naming the rule and expectation, the table and the partition, and the Data
  Docs page of the failure is rendered here at once (its index is
  ``StageResult.details["data_docs"]``, linked from the run record and named in the
  message); nothing downstream (publish) runs. Failed *warnings* become notes.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import pickle
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ..checks.inputs import PartitionData, build_input, infer_grain, wanted_partitions
from ..checks.judge import empty_findings
from ..checks.results import CHECK_RESULTS
from ..checks.runner import (
    PENDING,
    CheckError,
    CheckReport,
    blocking_message,
    judge_all,
    render,
    verdict,
    warning_notes,
)
from ..checks.suites import EXPECTED_TABLES, TableSuite, build_suites, generic_suite, suite_for
from ..checks.thresholds import CheckThresholds
from ..lake import file_identity
from . import BlockingValidationError, StageContext, StageError, StageResult

#: lake layers holding tables to check
LAYERS = ("clean", "marts")
#: failures listed in StageResult.details (all of them are in check_results)
DETAIL_FAILURES = 50
#: tables judged at once, each on a thread of its own: a table's metrics query runs in
#: polars without Python's lock, one core each (a county day's ~30 queries take ~1.3 s of
#: CPU, and one table's rules judged in Python ~0.5 s), so two tables keep both cores busy
#: where one thread kept one. Each table's part is its own whatever the thread, and the
#: parts keep the gate's order
TABLE_THREADS = 2


def _files(partition_dir: Path) -> list[Path]:
    """The Parquet files of a partition: ``part-0.parquet`` for tables written by
    :meth:`Lake.write_partition`, one file per origin for quarantine."""
    try:
        with os.scandir(partition_dir) as entries:  # a glob costs ~1 ms a folder, a thousand folders a run
            names = [e.name for e in entries if e.name.endswith(".parquet") and not e.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [partition_dir / n for n in sorted(names)]


def discover(root: Path) -> list[tuple[str, str, str, list[str]]]:
    """Tables on disk: (layer, table, partition key, partition values), sorted.

    A table directory holds ``<key>=<value>/`` folders of Parquet files; hidden and
    underscore folders are not tables.
    """
    found = []
    for layer in LAYERS:
        base = Path(root) / layer
        if not base.is_dir():
            continue
        for tdir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
            keys: dict[str, list[str]] = {}
            for pdir in tdir.iterdir():
                if "=" in pdir.name and _files(pdir):
                    k, v = pdir.name.split("=", 1)
                    keys.setdefault(k, []).append(v)
            if not keys:
                continue
            key = max(keys, key=lambda k: len(keys[k]))
            found.append((layer, tdir.name, key, sorted(keys[key])))
    return found


def _open(partition_dir: Path, value: str, footers: bool) -> PartitionData:
    """A partition's rows (lazily), the columns all its files share, and their footers."""
    files = _files(partition_dir)
    if not files:
        return PartitionData(value=value)
    try:
        # one scan a file: its schema (what ``pl.read_parquet_schema`` reads) is resolved once,
        # and the metrics' query reuses it (a small run opens about 1,500 partitions)
        scans = [pl.scan_parquet(f) for f in files]
        schemas = [dict(scan.collect_schema()) for scan in scans]
        md: tuple[Any, ...] = tuple(pq.read_metadata(f) for f in files) if footers else ()
    except (OSError, ValueError, pl.exceptions.PolarsError, pa.ArrowException) as exc:  # corrupt or truncated
        return PartitionData(value=value, error=f"{partition_dir}: {type(exc).__name__}: {exc}".splitlines()[0])
    # a column one file lacks is missing from the partition
    shared = {c: t for c, t in schemas[0].items() if all(c in s for s in schemas[1:])}
    frame = scans[0] if len(scans) == 1 else pl.concat(scans, how="diagonal_relaxed")
    return PartitionData(value=value, frame=frame, schema=shared, footers=md)


@dataclass
class TableCheck:
    """One table's part of the gate: its notes, its judged findings (``judge_all``; None: no
    partition of the dates) and what was checked, with what it was computed from (``files``:
    the partition key, the partitions on disk, and each wanted partition file's name, inode,
    size and modification time). A part computed ahead (:func:`check_ahead`) is reused only
    where the table's files are still those: a lake file is never written in place."""

    table: str
    files: tuple[Any, ...]
    notes: list[str] = field(default_factory=list)
    judged: pl.DataFrame | None = None
    checked: dict[str, Any] | None = None


def _stamp(folder: Path, key: str, present: list[str], values: list[str]) -> tuple[Any, ...]:
    """What a table's part of the gate is computed from (:attr:`TableCheck.files`)."""
    # a file removed meanwhile has no identity (NO_FILE): a stamp no later look matches
    files = tuple((v, f.name, *file_identity(f)) for v in values for f in _files(folder / f"{key}={v}"))
    return (key, tuple(present), files)


def collect_tables(
    root: Path,
    dates: list[dt.date],
    thresholds: CheckThresholds,
    progress: Any = None,
    ahead: dict[str, TableCheck] | None = None,
) -> tuple[list[str], list[TableCheck]]:
    """Every table on disk judged for ``dates`` (metrics, small row sets, findings), in the
    gate's order, reusing the parts computed ``ahead`` whose files are unchanged.

    Returns the notes of tables not in the lake and each table's part.
    """
    build_suites(thresholds)  # validates the severity overrides
    tables = discover(root)
    on_disk = {(layer, name) for layer, name, _, _ in tables}
    notes = [
        f"{layer}/{name}: not in the lake, skipped" for layer, name in EXPECTED_TABLES if (layer, name) not in on_disk
    ]
    order = {t: i for i, t in enumerate(EXPECTED_TABLES)}
    tables.sort(key=lambda t: (order.get((t[0], t[1]), len(order)), t[0], t[1]))
    parts: list[TableCheck] = []
    #: the tables to judge here: their place in ``parts``, and the work (given the row limit)
    todo: list[tuple[int, Callable[[int], TableCheck]]] = []
    for layer, name, key, present in tables:
        table = f"{layer}/{name}"
        more: list[str] = []
        suite: TableSuite | None = suite_for(name, layer, thresholds)
        if suite is not None and suite.partition_key != key:
            more.append(
                f"{layer}/{name}: partitioned by {key}, its contract says {suite.partition_key}; "
                "only the checks every table gets were run"
            )
            suite = None
        if suite is None:
            suite = generic_suite(name, layer, key, infer_grain(present)).with_severities(thresholds.severity)
        values = wanted_partitions(suite, present, dates)
        if not values:
            more.append(f"{layer}/{name}: no partition for these dates, nothing to check")
            parts.append(TableCheck(table, (), more))
            continue
        files = _stamp(Path(root) / layer / name, key, present, values)
        done = (ahead or {}).get(table)
        if done is not None and done.files == files:
            parts.append(done)
            continue
        if progress is not None:
            progress(f"check {layer}/{name}: {len(values)} partition(s)")
        folder = Path(root) / layer / name
        todo.append((len(parts), functools.partial(_judge_table, table, folder, key, values, suite, files, more)))
        parts.append(TableCheck(table, files))  # its place, filled below
    row_max = thresholds.gate.row_level_max_rows
    with ThreadPoolExecutor(max_workers=TABLE_THREADS, thread_name_prefix="meterlake-check") as pool:
        for i, part in zip((i for i, _ in todo), pool.map(lambda job: job[1](row_max), todo), strict=True):
            parts[i] = part
    return notes, parts


def _judge_table(
    table: str,
    folder: Path,
    key: str,
    values: list[str],
    suite: TableSuite,
    files: tuple[Any, ...],
    notes: list[str],
    row_level_max_rows: int,
) -> TableCheck:
    """One table's part of the gate: its partitions of ``values`` read, reduced to metrics
    and judged."""
    opened = [_open(folder / f"{key}={v}", v, bool(suite.footer)) for v in values]
    inp, found = build_input(suite, opened, row_level_max_rows)
    checked = {
        "partitions": inp.metrics["partition"].to_list(),
        "rows": int(inp.metrics["rows"].fill_null(0).sum()),
        "rules": len(suite.rules) + len(suite.row_rules),
        "row_level": inp.rows is not None,
    }
    return TableCheck(table, files, notes + found, judge_all([inp]), checked)


def check_ahead(ctx: StageContext, dates: list[dt.date], out: Path) -> int:
    """Judge the tables on disk for ``dates`` as the stage does and leave their parts in
    ``out`` (pickled, by table; written whole), for the stage to reuse where the tables'
    files are unchanged when it runs (``StageContext.checked_ahead``). It reads only the
    lake, so the pipeline's docs helper runs it beside the stages after loss. The parts."""
    thresholds = ctx.config("checks", CheckThresholds)
    _, parts = collect_tables(ctx.lake.root, dates, thresholds)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(pickle.dumps({p.table: p for p in parts if p.files}))
    os.replace(tmp, out)  # whole or not at all: the stage may look while it is written
    return len(parts)


def _ahead(ctx: StageContext) -> dict[str, TableCheck]:
    """The tables' parts the run computed ahead, where it left them (none: {})."""
    path = None if ctx.checked_ahead is None else ctx.checked_ahead()
    if path is None:
        return {}
    try:
        ahead = pickle.loads(path.read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError):  # unreadable: judged here
        return {}
    return ahead if isinstance(ahead, dict) else {}


def run(ctx: StageContext, dates: list[dt.date]) -> StageResult:
    thresholds = ctx.config("checks", CheckThresholds)
    notes, parts = collect_tables(ctx.lake.root, dates, thresholds, ctx.progress, _ahead(ctx))
    notes += [n for p in parts for n in p.notes]
    report, pending = _judge(ctx, parts, thresholds)
    result = _record(ctx, report, pending, {p.table: p.checked for p in parts if p.checked is not None}, notes)
    if not report.passed:
        err = BlockingValidationError(blocking_message(report))
        err.result = result  # type: ignore[attr-defined]  # the run record can keep the details
        raise err
    return result


def _judge(ctx: StageContext, parts: list[TableCheck], thresholds: CheckThresholds) -> tuple[CheckReport, Path | None]:
    """The verdict on the tables' findings. A gate that passes leaves its findings for the
    docs stage to render (that imports GX, which the verdict does not need); one that fails
    renders its Data Docs page now, for the failures to be read."""
    lake = ctx.lake
    found = [p.judged for p in parts if p.judged is not None]
    judged = pl.concat(found) if found else empty_findings()
    report: CheckReport = verdict(judged)
    if report.passed:
        return report, lake.write_file(lake.meta / PENDING / f"{ctx.run_id}.parquet", judged)
    ctx.progress("check: blocking failures; rendering their Data Docs page with Great Expectations")
    if ctx.gx_ready is not None:
        ctx.gx_ready()  # the run's docs helper opens the same GX context: it ends that first
    try:
        report = render(
            judged,
            gx_root=lake.meta / "gx",
            docs_dir=lake.reports / "data_docs",
            run_name=ctx.run_id,
            docs_validation_limit=thresholds.gate.docs_validation_limit,
        )
    except CheckError as exc:  # the gate itself failed: nothing is published
        raise StageError(f"check: {exc}") from exc
    return report, None


def _record(
    ctx: StageContext, report: CheckReport, pending: Path | None, checked: dict[str, Any], notes: list[str]
) -> StageResult:
    """The run's findings written to check_results, and the stage's result."""
    findings = report.findings.with_columns(pl.lit(ctx.run_id).alias("run_id"))
    results_path = ctx.lake.write_partition(CHECK_RESULTS, ctx.run_id, findings, sort_by=["table", "partition", "rule"])
    failures = (
        report.failures.select("severity", "rule", "table", "partition", "observed", "expected")
        .head(DETAIL_FAILURES)
        .to_dicts()
    )
    notes = [
        *notes,
        *warning_notes(report),
        *(f"Data Docs page not rendered: {p} (GX #12096)" for p in report.missing_pages),
    ]
    return StageResult(
        stage="check",
        rows={CHECK_RESULTS.name: findings.height},
        notes=notes,
        details={
            "data_docs": str(report.data_docs_index) if report.data_docs_index else None,
            "data_docs_pages": [str(p) for p in report.validation_pages],
            "data_docs_pending": str(pending) if pending else None,
            "check_results": str(results_path),
            "tables": checked,
            "findings": {
                "evaluated": findings.height,
                "blocking": report.blocking.height,
                "warnings": report.warnings.height,
            },
            "failures": failures,
        },
    )
