"""The `meterlake` command (CONTRACT §4)."""

from __future__ import annotations

import datetime as dt
import gc
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="meterlake: smart-meter and prepayment data from the landing zone to a Parquet lake.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        _fail(f"expected a date YYYY-MM-DD, got {value!r}")
        raise  # unreachable: _fail exits


def _local(**paths: Path | None) -> None:
    """One line and exit 1 when a path is an object-storage URL (not supported yet)."""
    from .settings import check_local_path

    for name, path in paths.items():
        try:
            check_local_path(f"--{name}", path)
        except ValueError as exc:
            _fail(str(exc))


def _expected(exc: BaseException) -> bool:
    """Errors whose one line says it all (bad input, a busy lake, a blocking check)."""
    from .stages import StageError

    return isinstance(exc, StageError) and not isinstance(exc.__cause__, OSError)


def _fail(message: str) -> None:
    """One line on stderr, exit 1 (CONTRACT §4: a non-zero exit with a one-line reason)."""
    typer.echo(f"meterlake: {message}", err=True)
    raise typer.Exit(1)


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="landing root to write")],
    meters: Annotated[int, typer.Option(min=10, help="meters of all roles")] = 2000,
    days: Annotated[int, typer.Option(min=1, help="days of data")] = 7,
    start: Annotated[str, typer.Option(help="first date, YYYY-MM-DD")] = "2026-01-01",
    seed: Annotated[int, typer.Option(help="random seed: same seed, same files")] = 42,
    orgs: Annotated[
        int, typer.Option(min=1, help="org units (a province-like zone): each a grid of --meters meters")
    ] = 1,
) -> None:
    """Write a realistic synthetic landing zone, with its ground truth under _truth/."""
    from .generate import generate as gen
    from .progress import progress_reporter

    _local(out=out)
    try:
        with progress_reporter("generate") as progress:
            summary = gen(out, meters=meters, days=days, start=_date(start), seed=seed, progress=progress, orgs=orgs)
    except (FileExistsError, ValueError) as exc:
        _fail(str(exc))
    roles = ", ".join(f"{n:,} {role}" for role, n in summary.meters_by_role.items())
    typer.echo(f"landing zone written to {out}: {roles}; {len(summary.files)} files over {days} day(s)")
    injected = ", ".join(f"{kind} {n}" for kind, n in sorted(summary.truth_counts.items()))
    typer.echo(f"ground truth in {out / '_truth'}: {injected}")


@app.command()
def run(
    landing: Annotated[
        str, typer.Option(help="landing root (CONTRACT §1): a folder or s3://bucket/prefix", envvar="METERLAKE_LANDING")
    ],
    lake: Annotated[str, typer.Option(help="lake root: a folder or s3://bucket/prefix", envvar="METERLAKE_LAKE")],
    start: Annotated[str, typer.Option(help="first date, YYYY-MM-DD")],
    end: Annotated[str, typer.Option(help="last date, YYYY-MM-DD")],
    stage: Annotated[list[str] | None, typer.Option(help="run only these stages (repeatable); default all")] = None,
    wait: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="seconds to wait while another run holds the lake; default METERLAKE_LOCK_WAIT_S, else 0",
        ),
    ] = None,
    orgs: Annotated[
        list[str] | None,
        typer.Option(
            help="shard the lake by org unit and run only these units (repeatable or comma-separated); "
            "a lake already sharded runs all its units without it"
        ),
    ] = None,
    sharded: Annotated[
        bool, typer.Option(help="shard the lake by org unit (LAKE/org_id=<unit>/) and run every unit")
    ] = False,
) -> None:
    """Run every stage for the dates (the same code the DAGs run)."""
    from . import errors, pipeline
    from .objectstore import cache_dir, is_url, split_url
    from .progress import progress_reporter
    from .settings import Settings, check_location

    for name, value in (("landing", landing), ("lake", lake)):
        try:
            check_location(f"--{name}", value)
        except ValueError as exc:
            _fail(str(exc))
    # the paths are given here: the environment's (possibly s3://) values do not reach Settings
    settings = Settings(landing=Path("."), lake=Path("."))
    if wait is not None:
        settings.lock_wait_s = wait
    first, last = _date(start), _date(end)
    run_id = pipeline.new_run_id()
    units = sorted({o.strip() for item in orgs or [] for o in item.split(",") if o.strip()})
    local_lake = cache_dir().joinpath(*split_url(lake)) if is_url(lake) else Path(lake)
    try:
        with progress_reporter("run") as progress:
            record = pipeline.run_anywhere(
                settings,
                landing,
                lake,
                first,
                last,
                orgs=units or None,
                sharded=sharded,
                stages=stage,
                progress=progress,
                run_id=run_id,
            )
    except BaseException as exc:  # a polars panic is not an Exception
        if isinstance(exc, SystemExit):
            raise
        # one line, never a traceback on the terminal: that goes to the run's debug log
        line = "interrupted" if isinstance(exc, KeyboardInterrupt) else errors.one_line(exc)
        if not _expected(exc):
            log_file = errors.debug_log_path(local_lake, run_id)
            where = (
                log_file
                if log_file.is_file() and log_file.stat().st_size
                else errors.write_traceback(None, run_id, exc)
            )
            line += f" (traceback in {where})" if where else ""
        _fail(line)
    if record.get("sharded"):
        _print_units(record)
        return
    from .summary import print_run_summary

    print_run_summary(record)


def _print_units(record: dict[str, object]) -> None:
    """One line per unit of a sharded run; exit 1 naming the units whose shard is missing."""
    units = record.get("units") or {}
    assert isinstance(units, dict)
    for org, unit in units.items():
        where = unit.get("record") or unit.get("error") or ""
        typer.echo(f"{org}: {unit['status']}  {where}")
    typer.echo(f"run record: {record.get('record_path')}")
    missing = record.get("missing") or []
    assert isinstance(missing, list)
    if missing:
        _fail(f"{len(missing)} of {len(units)} unit shard(s) did not complete: {', '.join(map(str, missing))}")


@app.command()
def report(
    lake: Annotated[Path, typer.Option(help="lake root", envvar="METERLAKE_LAKE")],
    out: Annotated[Path | None, typer.Option(help="HTML file to write; default LAKE/reports/")] = None,
) -> None:
    """Build the self-contained HTML report of the lake."""
    from .report import build_report

    _local(lake=lake, out=out)
    path = build_report(lake, out)
    typer.echo(f"report: {path}")


@app.command()
def status(
    lake: Annotated[Path, typer.Option(help="lake root", envvar="METERLAKE_LAKE")],
) -> None:
    """What the lake holds: row accounting of every landing file, tables, report paths."""
    from .summary import lake_status, print_lake_status

    _local(lake=lake)
    if not lake.is_dir():
        _fail(f"no lake at {lake}")
    print_lake_status(lake_status(lake))


@app.command()
def evaluate(
    landing: Annotated[Path, typer.Option(help="generated landing root (with _truth/)", envvar="METERLAKE_LANDING")],
    lake: Annotated[Path, typer.Option(help="lake root", envvar="METERLAKE_LAKE")],
    at: Annotated[
        str, typer.Option(help="score per meter: 'max' over detection dates, or the 'last' date's list")
    ] = "max",
) -> None:
    """Compare the anomaly ranking with the generator's ground truth."""
    from .evaluate import EvaluationError
    from .evaluate import evaluate as run_evaluation

    _local(landing=landing, lake=lake)
    try:
        if at not in ("max", "last"):
            raise EvaluationError(f"--at must be 'max' or 'last', not {at!r}")
        report = run_evaluation(landing, lake, at=at)  # type: ignore[arg-type]
    except (EvaluationError, FileNotFoundError) as exc:
        _fail(str(exc))
    typer.echo(report.render())


def main() -> None:  # pragma: no cover
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    from .errors import OneLineFormatter

    for handler in logging.getLogger().handlers:  # tracebacks go to the run's debug log file only
        handler.setLevel(logging.INFO)
        handler.setFormatter(OneLineFormatter())
    for noisy in ("airflow", "great_expectations", "py.warnings"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        app()
    finally:
        gc.freeze()  # as pipeline.freeze_for_exit: the exit's collections then skip what is alive
