"""The docs stage: Great Expectations re-checks a passed gate and renders its Data Docs.

The check stage decides pass or fail in polars and, when the gate passes, leaves the
judged findings (each value with its rule's bounds) in
``LAKE/_meta/data_docs_pending/<run>.parquet``. This stage takes every such file,
oldest first, has Great Expectations validate it (one suite, one checkpoint: each
finding's value within its rule's bounds) and renders the run's page into the Data
Docs under ``LAKE/reports/data_docs/`` (offline: the pages load nothing from the
network). A file is removed once its page is built, so a failed render is retried by
the next docs run.

It is a stage of its own so that importing GX (~1.5 s of CPU in a fresh process) is
not on the path from the gate to publishing: in Airflow it is a task after the gate
that publishing does not wait for; in a run of several stages it runs in a helper
process beside the gate and publish (:class:`meterlake.pipeline.DocsHelper`). The run record links the index
(``StageResult.details["data_docs"]``). If GX disagrees with the gate's verdict the
stage fails with one line naming a finding (the rules and GX's expectations are
held equal by the tests, so that is a bug to report, not a data problem).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from ..checks.runner import CheckError, pending, prepare, render
from ..checks.thresholds import CheckThresholds
from . import StageContext, StageError, StageResult


def gx_paths(ctx: StageContext) -> tuple[Path, Path, int]:
    """Where the stage's GX context and Data Docs live, and the index's limit of validations."""
    thresholds = ctx.config("checks", CheckThresholds)
    lake = ctx.lake
    return lake.meta / "gx", lake.reports / "data_docs", thresholds.gate.docs_validation_limit


def prepare_ahead(ctx: StageContext) -> None:
    """Open the GX context and store the gate's checkpoint before the stage runs
    (:func:`meterlake.checks.runner.prepare`): the docs helper's work while it waits."""
    gx_root, docs_dir, limit = gx_paths(ctx)
    prepare(gx_root, docs_dir, limit)


def run(ctx: StageContext, dates: list[dt.date]) -> StageResult:
    lake = ctx.lake
    waiting = pending(lake.meta)
    if not waiting:
        return StageResult(stage="docs", notes=["no passed gate waiting for its Data Docs page"])
    gx_root, docs_dir, limit = gx_paths(ctx)
    index: Path | None = None
    pages: list[str] = []
    notes: list[str] = []
    runs: list[str] = []
    for path in waiting:
        run_name = path.stem
        ctx.progress(f"docs: Great Expectations on the findings of run {run_name}")
        try:
            report = render(
                pl.read_parquet(path),
                gx_root=gx_root,
                docs_dir=docs_dir,
                run_name=run_name,
                docs_validation_limit=limit,
            )
        except CheckError as exc:
            raise StageError(f"docs: run {run_name}: {exc}") from exc
        index = report.data_docs_index
        pages.extend(str(p) for p in report.validation_pages)
        notes.extend(f"Data Docs page not rendered: {p} (GX #12096)" for p in report.missing_pages)
        runs.append(run_name)
        path.unlink()
    if len(runs) > 1:
        notes.append(f"rendered the Data Docs of {len(runs)} runs: {', '.join(runs)}")
    return StageResult(
        stage="docs",
        notes=notes,
        details={
            "data_docs": str(index) if index else None,
            "data_docs_pages": pages,
            "runs": runs,
        },
    )
