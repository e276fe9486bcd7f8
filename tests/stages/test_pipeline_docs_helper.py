"""A run of several stages renders its Data Docs in a helper process beside the gate and publish."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from stage_kit import count_calls
from test_check import D1, D2, build_lake, meter_daily

from meterlake import pipeline
from meterlake.lake import Lake
from meterlake.schemas.meter_daily import METER_DAILY
from meterlake.settings import Settings
from meterlake.stages import BlockingValidationError, StageContext, StageError, StageResult


@pytest.mark.parametrize(
    ("stages", "beside"),
    [
        (list(pipeline.STAGES), True),
        (["check", "docs", "publish"], True),
        (["docs", "publish"], True),  # waiting findings of an earlier gate, beside publish
        (["check", "docs"], True),  # beside the gate: GX's import while the gate runs
        (["billing", "docs"], False),  # nothing beside it: the docs stage runs in the run's process
        (["docs"], False),
        (["ingest", "check", "publish"], False),  # no docs stage, no Great Expectations
    ],
)
def test_which_runs_use_the_helper(stages: list[str], beside: bool) -> None:
    assert pipeline.docs_beside(stages) is beside


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("template") / "lake"
    build_lake(root)
    return root


@pytest.fixture
def lake(template: Path, tmp_path: Path) -> Lake:
    root = tmp_path / "lake"
    shutil.copytree(template, root)
    return Lake(root)


@pytest.fixture
def helpers(monkeypatch: pytest.MonkeyPatch) -> list[pipeline.DocsHelper]:
    """Every docs helper the runs start."""
    started: list[pipeline.DocsHelper] = []

    class Seen(pipeline.DocsHelper):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(pipeline, "DocsHelper", Seen)
    return started


def _publish(monkeypatch: pytest.MonkeyPatch, fail: bool = False) -> list[str]:
    """A publish stage that records what the Data Docs folder held when it ran (and may fail)."""
    seen: list[str] = []

    def run(ctx: StageContext, dates: list[dt.date]) -> StageResult:
        seen.append("publish")
        if fail:
            raise StageError("publish to PostgreSQL failed: connection refused")
        return StageResult(stage="publish")

    monkeypatch.setitem(pipeline.RUNNERS, "publish", run)
    return seen


def _settings(lake: Lake) -> Settings:
    return Settings(lake=lake.root, landing=lake.root.parent / "landing", pii_key="k", progress=False)


def _record(lake: Lake) -> dict:
    (path,) = (lake.meta / "runs").glob("*.json")
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_helper_renders_the_pages_and_the_record_keeps_the_stage_order(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, helpers: list
) -> None:
    published = _publish(monkeypatch)
    lines: list[str] = []
    record = pipeline.run(
        _settings(lake), D1, D2, stages=["check", "docs", "publish"], run_id="r1", progress=lines.append
    )
    assert record["status"] == "ok" and published == ["publish"]
    (helper,) = helpers
    assert helper.proc.returncode == 0  # ended before the run did
    stages = _record(lake)["stages"]
    assert list(stages) == ["check", "docs", "publish"]
    docs = stages["docs"]
    assert docs["details"]["runs"] == ["r1"]
    assert Path(docs["details"]["data_docs"]) == lake.reports / "data_docs" / "index.html"
    assert [Path(p).is_file() for p in docs["details"]["data_docs_pages"]] == [True]
    assert docs["details"]["waited_s"] >= 0
    assert 30 < docs["details"]["helper_peak_rss_mb"] < 2048  # its own program's peak, in MiB
    # the helper's CPU counts its own interpreter and imports: more than the stage's wall time
    assert docs["cpu_seconds"] > 0.2
    assert not any((lake.meta / "data_docs_pending").iterdir())  # done: nothing left waiting
    assert any(line.startswith("docs: ") for line in lines)


def test_a_failing_helper_fails_the_run_in_one_line_after_publish(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, helpers: list
) -> None:
    published = _publish(monkeypatch)
    # an earlier gate's findings that cannot be read: the docs stage (oldest first) fails on them
    waiting = lake.meta / "data_docs_pending"
    waiting.mkdir(parents=True)
    (waiting / "r0.parquet").write_bytes(b"not parquet")
    with pytest.raises(StageError) as caught:
        pipeline.run(_settings(lake), D1, D2, stages=["check", "docs", "publish"], run_id="r2")
    assert not isinstance(caught.value, BlockingValidationError)
    message = str(caught.value)
    assert message.startswith("docs: ") and "\n" not in message
    # publish does not wait for the Data Docs (as in Airflow); the run still fails
    assert published == ["publish"]
    record = _record(lake)
    assert record["status"] == "failed"
    assert record["error"] == message
    assert "docs" not in record["stages"] and list(record["stages"]) == ["check", "publish"]
    (helper,) = helpers
    assert helper.proc.returncode == 0  # the stage failed, the process reported it
    # the traceback went to the run's debug log
    log = (lake.meta / "logs" / "r2.log").read_text(encoding="utf-8")
    assert "the docs helper failed" in log and "Traceback" in log


def test_a_blocked_gate_ends_the_helper_unused(lake: Lake, monkeypatch: pytest.MonkeyPatch, helpers: list) -> None:
    published = _publish(monkeypatch)
    lake.write_partition(METER_DAILY, D1, meter_daily(D1, duplicate=True))
    with pytest.raises(BlockingValidationError):
        pipeline.run(_settings(lake), D1, D2, stages=["check", "docs", "publish"], run_id="r3")
    assert published == []
    (helper,) = helpers
    assert helper.proc.returncode is not None  # not left running after the run
    record = _record(lake)
    assert record["status"] == "failed" and list(record["stages"]) == ["check"]
    # the gate rendered its own failure page; nothing waits for the docs stage
    assert (lake.reports / "data_docs" / "index.html").is_file()
    assert not (lake.meta / "data_docs_pending").exists() or not any((lake.meta / "data_docs_pending").iterdir())


def test_publish_failing_beside_the_helper_keeps_the_rendered_pages(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, helpers: list
) -> None:
    _publish(monkeypatch, fail=True)
    with pytest.raises(StageError, match="publish to PostgreSQL failed"):
        pipeline.run(_settings(lake), D1, D2, stages=["check", "docs", "publish"], run_id="r4")
    record = _record(lake)
    assert record["status"] == "failed"
    assert record["error"] == "publish to PostgreSQL failed: connection refused"
    # the helper was told to render before publish started: the run waited for it
    assert record["stages"]["docs"]["details"]["runs"] == ["r4"]
    assert (lake.reports / "data_docs" / "index.html").is_file()
    (helper,) = helpers
    assert helper.proc.returncode == 0


def _stub(monkeypatch: pytest.MonkeyPatch, stage: str, helpers: list, seen: dict[str, int]) -> None:
    """``stage`` replaced by one that records how many docs helpers were started before it ran."""

    def run(ctx: StageContext, dates: list[dt.date]) -> StageResult:
        seen[stage] = len(helpers)
        return StageResult(stage=stage)

    monkeypatch.setitem(pipeline.RUNNERS, stage, run)


@pytest.mark.parametrize(
    ("stages", "max_meters", "started_by"),
    [
        # days of 3 meters: small, started at loss
        (["loss", "anomalies"], 3, {"loss": 1, "anomalies": 1}),
        # ... or before validate where the run has it, held until loss
        (["validate", "loss", "anomalies"], 3, {"validate": 1, "loss": 1, "anomalies": 1}),
        # days of 3 meters above 2: at the gate
        (["loss", "anomalies"], 2, {"loss": 0, "anomalies": 0}),
        (["validate", "loss", "anomalies"], 2, {"validate": 0, "loss": 0, "anomalies": 0}),
    ],
)
def test_the_helper_starts_before_loss_on_small_days_else_at_the_gate(
    lake: Lake,
    monkeypatch: pytest.MonkeyPatch,
    helpers: list,
    stages: list[str],
    max_meters: int,
    started_by: dict[str, int],
) -> None:
    # the lake's meter_daily: 3 meters a day (an area master and two customers); no curves
    monkeypatch.setattr(pipeline, "DOCS_EARLY_MAX_METERS", max_meters)
    seen: dict[str, int] = {}
    for stage in stages:
        _stub(monkeypatch, stage, helpers, seen)
    _publish(monkeypatch)
    record = pipeline.run(_settings(lake), D1, D2, stages=[*stages, "check", "docs", "publish"], run_id="r6")
    assert record["status"] == "ok"
    assert seen == started_by
    (helper,) = helpers  # one helper either way, and it rendered the pages
    assert helper.proc.returncode == 0
    assert record["stages"]["docs"]["details"]["runs"] == ["r6"]


def test_the_helper_holds_no_lock_the_run_holds_it_until_the_helper_ends(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meterlake import lock

    held: list[bool] = []
    original = pipeline.DocsHelper.result

    def result(self: pipeline.DocsHelper) -> StageResult:
        out = original(self)
        held.append(lock.holds(lake.root))
        return out

    monkeypatch.setattr(pipeline.DocsHelper, "result", result)
    _publish(monkeypatch)
    pipeline.run(_settings(lake), D1, D2, stages=["check", "docs", "publish"], run_id="r5")
    assert held == [True]
    assert not lock.holds(lake.root)


DEFER = """
import json, sys, types
from meterlake.checks.runner import import_gx
import_gx()
before = {m: type(sys.modules[m]).__name__ for m in ("scipy.stats", "altair")}
from scipy import stats
value = float(stats.entropy([0.5, 0.5], [0.5, 0.5]))
import scipy.stats
after = type(sys.modules["scipy.stats"]) is types.ModuleType and hasattr(scipy.stats, "norm")
print(json.dumps({"before": before, "value": value, "after": after}))
"""


def test_great_expectations_is_imported_without_scipy_stats_and_altair_which_load_when_read() -> None:
    done = subprocess.run([sys.executable, "-c", DEFER], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["before"] == {"scipy.stats": "_Deferred", "altair": "_Deferred"}
    assert got["value"] == 0.0  # KL divergence of a distribution from itself
    assert got["after"] is True


#: a process that reports, as it exits, whether the collector's objects were frozen
FROZEN_AT_EXIT = """
import atexit, gc, sys
atexit.register(lambda: print("frozen", gc.get_freeze_count(), file=sys.__stdout__))
which, sys.argv = sys.argv[2], sys.argv[:1] + sys.argv[3:]
if which == "helper":
    from meterlake.pipeline import _docs_helper_main
    _docs_helper_main()
else:
    from meterlake.cli import main
    main()
"""


@pytest.mark.parametrize("program", [["helper"], ["cli", "--help"]])
def test_the_helper_and_the_command_end_frozen_so_the_exit_walks_no_objects(program: list[str]) -> None:
    # the exit's collections walk every object of a process that imported Great Expectations
    # (0.6 s); frozen, they skip them (pipeline.freeze_for_exit)
    done = subprocess.run(
        [sys.executable, "-c", FROZEN_AT_EXIT, "-", *program], input="", capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    frozen = int(next(ln for ln in done.stdout.splitlines() if ln.startswith("frozen ")).split()[1])
    assert frozen > 1000


def test_the_helper_imports_great_expectations_frozen_with_the_collector_on_again() -> None:
    # imported with the collector off, its objects frozen: no collection walks them later
    program = (
        "import gc, sys; from meterlake.pipeline import _import_gx; _import_gx(); "
        "print(gc.isenabled(), gc.get_freeze_count(), 'great_expectations' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    enabled, frozen, imported = done.stdout.split()
    assert enabled == "True" and imported == "True"
    assert int(frozen) > 100_000


def test_without_a_helper_process_the_docs_stage_runs_in_the_run(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_process(*args: object, **kwargs: object) -> None:
        raise OSError("no such file: python")

    monkeypatch.setattr(pipeline.subprocess, "Popen", no_process)
    published = _publish(monkeypatch)
    record = pipeline.run(_settings(lake), D1, D2, stages=["check", "docs", "publish"], run_id="r6")
    assert record["status"] == "ok" and published == ["publish"]
    docs = _record(lake)["stages"]["docs"]
    assert docs["details"]["runs"] == ["r6"] and "waited_s" not in docs["details"]
    assert (lake.reports / "data_docs" / "index.html").is_file()


def _landing(root: Path, sizes: list[int]) -> Path:
    """A landing zone whose curves folder holds files of ``sizes`` bytes."""
    folder = root / "landing" / "curves"
    folder.mkdir(parents=True)
    for i, size in enumerate(sizes):
        (folder / f"curves_2026030{i + 1}.csv").write_bytes(b"x" * size)
    return root / "landing"


@pytest.mark.parametrize(
    ("sizes", "wanted", "held"),
    [
        pytest.param([10, 40], list(pipeline.STAGES), True, id="small-files"),
        pytest.param([10, 41], list(pipeline.STAGES), False, id="one-file-too-large"),
        pytest.param([], list(pipeline.STAGES), True, id="no-curves"),
        pytest.param([10], ["ingest", "loss", "anomalies", "check", "publish"], False, id="no-docs-stage"),
        pytest.param([10], ["ingest", "loss", "check", "docs", "publish"], False, id="no-anomalies"),
    ],
)
def test_a_run_from_ingest_holds_its_helper_by_its_landing_curves_sizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sizes: list[int], wanted: list[str], held: bool
) -> None:
    monkeypatch.setattr(pipeline, "DOCS_EARLY_MAX_LANDING_BYTES", 40)
    settings = Settings(lake=tmp_path / "lake", landing=_landing(tmp_path, sizes), pii_key="k", progress=False)
    assert pipeline.docs_held(settings, wanted, [D1], "ingest") is held


def test_a_held_helper_told_no_observer_work_answers_none_done_ahead(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    _publish(monkeypatch)
    helper = pipeline.DocsHelper(_settings(lake), "r7", hold=True)
    try:
        assert helper.holding
        helper.observe(None)  # no observer work: Great Expectations, then the docs job
        assert not helper.holding
        assert helper.observed() == pipeline.ObserverAhead()  # nothing was done ahead
    finally:
        helper.finish()
    assert helper.proc.returncode is not None


@pytest.mark.parametrize(
    ("first", "judged_here"),
    [
        # started before validate, GX imported there: it judges every table ahead
        pytest.param(["validate"], [], id="held"),
        # started at loss, it imports GX after the observer's work: not asked, the gate judges
        pytest.param([], ["area_loss_daily", "meter_daily", "quarantine", "registers"], id="from-loss"),
    ],
)
def test_a_helper_started_before_loss_judges_the_gates_tables_beside_the_stages_after_it(
    lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helpers: list, first: list[str], judged_here: list[str]
) -> None:
    from meterlake.checks.results import CHECK_RESULTS
    from meterlake.stages import check

    other = Lake(tmp_path / "other")
    shutil.copytree(lake.root, other.root)
    alone = check.run(StageContext(settings=_settings(other), run_id="r8"), [D1, D2])
    seen: dict[str, int] = {}
    for stage in (*first, "loss", "anomalies"):
        _stub(monkeypatch, stage, helpers, seen)
    _publish(monkeypatch)
    built = count_calls(monkeypatch, check, "build_input", lambda suite, *_a, **_k: suite.table)
    stages = [*first, "loss", "anomalies", "check", "docs", "publish"]
    record = pipeline.run(_settings(lake), D1, D2, stages=stages, run_id="r8")
    assert record["status"] == "ok" and set(seen.values()) == {1}
    assert sorted(built) == judged_here
    gate = record["stages"]["check"]
    assert gate["notes"] == alone.notes and gate["details"]["tables"] == alone.details["tables"]
    assert_frame_equal(
        pl.read_parquet(lake.partition_path(CHECK_RESULTS, "r8")),
        pl.read_parquet(other.partition_path(CHECK_RESULTS, "r8")),
    )
    assert not any(lake.staging.glob("observer-ahead-*"))  # its working files removed


def test_a_held_helper_stores_the_gates_checkpoint_before_it_is_let_go(lake: Lake) -> None:
    gx = lake.meta / "gx"
    assert not gx.exists()
    helper = pipeline.DocsHelper(_settings(lake), "r9", hold=True)
    try:
        helper.prepared()  # its context is opened while it holds, before any job is sent
        assert helper.holding
        stored = sorted(p.name for p in gx.rglob("*.json") if "validations" not in p.parts)
        assert stored == ["gate.json", "meterlake.gate.json", "meterlake.gate.json"]  # suite, checkpoint, definition
        helper.prepared()  # waited for once: a second call reads nothing
    finally:
        helper.finish()
    assert helper.proc.returncode is not None


#: a run that starts its held docs helper and is killed at once (SIGKILL: no clean-up)
KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from meterlake import pipeline
from meterlake.settings import Settings
lake = Path(sys.argv[1])
settings = Settings(lake=lake, landing=lake.parent / "landing", pii_key="k", progress=False)
helper = pipeline.DocsHelper(settings, "r-killed", hold=True)
print(helper.proc.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _ended(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            return any(line.split() == ["State:", "Z", "(zombie)"] for line in status)
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_the_helper_of_a_killed_run_writes_nothing_more_in_the_lake(lake: Lake) -> None:
    # its lake is the re-run's: a helper that went on to open the GX context there raced
    # the re-run's own helper, and the re-run's render found the gate's suite changed
    done = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(lake.root)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == -9, done.stderr[-3000:]
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 240
    while not _ended(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _ended(pid), "the helper of the killed run is still running"
    assert not (lake.meta / "gx").exists()


def test_a_render_takes_the_context_prepared_ahead_and_writes_what_it_would_have(
    lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meterlake.checks import runner
    from meterlake.stages import check, docs

    other = Lake(tmp_path / "other")
    shutil.copytree(lake.root, other.root)
    opened = count_calls(monkeypatch, runner, "open_context", lambda gx_root, *_a, **_k: gx_root)
    for root, ahead in ((lake, True), (other, False)):
        ctx = StageContext(settings=_settings(root), run_id="20261207T073309Z-9802ad")
        check.run(ctx, [D1, D2])  # passes: its findings wait for the docs stage
        if ahead:
            docs.prepare_ahead(ctx)
            assert opened == [lake.meta / "gx"]
        docs.run(ctx, [D1, D2])
    assert opened == [lake.meta / "gx", other.meta / "gx"]  # the prepared context was taken: opened once each
    assert not runner._PREPARED

    def stored(root: Lake) -> dict[str, str]:
        # the stored objects, less the ids GX draws at random
        return {
            p.relative_to(root.meta).as_posix(): re.sub(r'"id": "[0-9a-f-]{36}"', "", p.read_text(encoding="utf-8"))
            for p in (root.meta / "gx").rglob("*.json")
            if "validations" not in p.parts
        }

    assert stored(lake) == stored(other) and len(stored(lake)) == 3
    pages = sorted(p.relative_to(lake.reports).as_posix() for p in (lake.reports / "data_docs").rglob("*.html"))
    assert pages == sorted(
        p.relative_to(other.reports).as_posix() for p in (other.reports / "data_docs").rglob("*.html")
    )


@pytest.mark.parametrize(
    ("stages", "started_by"),
    [
        # days of 3 meters above 2 (large): at billing, the first of the stages it starts at
        (["anomalies", "billing", "receivables"], {"anomalies": 0, "billing": 1, "receivables": 1}),
        (["anomalies", "receivables"], {"anomalies": 0, "receivables": 1}),
        (["loss", "anomalies"], {"loss": 0, "anomalies": 0}),  # at the gate
    ],
)
def test_on_large_days_the_helper_starts_at_billing_and_opens_the_gx_context_before_the_gate(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, helpers: list, stages: list[str], started_by: dict[str, int]
) -> None:
    monkeypatch.setattr(pipeline, "DOCS_EARLY_MAX_METERS", 2)
    seen: dict[str, int] = {}
    for stage in stages:
        _stub(monkeypatch, stage, helpers, seen)
    opened: list[bool] = []

    def gate(ctx: StageContext, dates: list[dt.date]) -> StageResult:
        # the context the helper opens ahead: the gate's suite, checkpoint and definition
        assert ctx.gx_ready is not None
        ctx.gx_ready()
        opened.append((lake.meta / "gx").is_dir())
        return check_stage.run(ctx, dates)

    from meterlake.stages import check as check_stage

    monkeypatch.setitem(pipeline.RUNNERS, "check", gate)
    _publish(monkeypatch)
    record = pipeline.run(_settings(lake), D1, D2, stages=[*stages, "check", "docs", "publish"], run_id="r10")
    assert record["status"] == "ok"
    assert seen == started_by and opened == [True]
    (helper,) = helpers
    assert helper.proc.returncode == 0 and not helper.holding
    assert record["stages"]["docs"]["details"]["runs"] == ["r10"]
    assert [Path(p).is_file() for p in record["stages"]["docs"]["details"]["data_docs_pages"]] == [True]


def test_a_helper_told_to_prepare_opens_the_gx_context_then_renders_the_docs_job(lake: Lake) -> None:
    from meterlake.stages import check

    gx = lake.meta / "gx"
    helper = pipeline.DocsHelper(_settings(lake), "r11", prepare=True)
    try:
        assert not helper.holding  # nothing to let go: no observer work
        helper.prepared()  # its context opened before any job is sent
        stored = sorted(p.name for p in gx.rglob("*.json") if "validations" not in p.parts)
        assert stored == ["gate.json", "meterlake.gate.json", "meterlake.gate.json"]  # suite, checkpoint, definition
        check.run(StageContext(settings=_settings(lake), run_id="r11"), [D1, D2])  # passes: its findings wait
        helper.go([D1, D2])
        docs = helper.result()
    finally:
        helper.finish()
    assert docs.details["runs"] == ["r11"] and (lake.reports / "data_docs" / "index.html").is_file()
    assert not any(lake.staging.glob("observer-ahead-*"))  # no observer's working files made


def test_a_run_failing_before_the_gate_lets_its_helper_open_the_gx_context_whole_then_ends_it(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, helpers: list
) -> None:
    monkeypatch.setattr(pipeline, "DOCS_EARLY_MAX_METERS", 2)

    def billing(ctx: StageContext, dates: list[dt.date]) -> StageResult:
        raise StageError("billing: no tariff for 2026-01")

    monkeypatch.setitem(pipeline.RUNNERS, "billing", billing)
    with pytest.raises(StageError, match="no tariff"):
        pipeline.run(_settings(lake), D1, D2, stages=["billing", "check", "docs", "publish"], run_id="r12")
    (helper,) = helpers
    assert helper.proc.returncode is not None  # ended with the run
    stored = sorted(p.name for p in (lake.meta / "gx").rglob("*.json") if "validations" not in p.parts)
    assert stored == ["gate.json", "meterlake.gate.json", "meterlake.gate.json"]
