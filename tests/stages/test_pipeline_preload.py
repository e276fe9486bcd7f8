"""A run of several stages imports Great Expectations ahead of the docs stage, in a thread."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path

import pytest

from meterlake import pipeline
from meterlake.settings import Settings
from meterlake.stages import StageContext, StageResult

D = dt.date(2026, 3, 2)

PROBE = """
import json, sys
from meterlake import pipeline
thread = pipeline.preload_gx(["check", "docs"])
stages = sorted(m for m in sys.modules if m.startswith("meterlake.stages."))
thread.join(timeout=300)
print(json.dumps({"stages": stages, "alive": thread.is_alive(), "gx": "great_expectations" in sys.modules}))
"""


def test_preload_imports_the_stages_then_gx_in_a_thread() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    # the stages' own modules are imported before the thread starts, GX by the thread
    assert got["stages"] == ["meterlake.stages.check", "meterlake.stages.docs"]
    assert got["alive"] is False
    assert got["gx"] is True


def _fake_stages(monkeypatch: pytest.MonkeyPatch, seen: list[str]) -> None:
    def fake(name: str) -> pipeline.StageRun:
        def run(ctx: StageContext, dates: list[dt.date]) -> StageResult:
            seen.append(name)
            return StageResult(stage=name)

        return run

    for name in pipeline.STAGES:
        monkeypatch.setitem(pipeline.RUNNERS, name, fake(name))


@pytest.mark.parametrize(
    ("stages", "preloaded_before"),
    [
        (list(pipeline.STAGES), "check"),  # the whole chain: from the gate on
        (["billing", "docs", "publish"], None),  # no gate in the run: docs imports GX itself
        (["ingest", "billing", "receivables", "check", "publish"], None),  # no docs stage: no GX
    ],
)
def test_the_run_starts_the_import_before_the_gate_only_when_docs_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stages: list[str], preloaded_before: str | None
) -> None:
    seen: list[str] = []
    _fake_stages(monkeypatch, seen)
    started: list[tuple[list[str], list[str]]] = []

    def preload(later: Iterable[str]) -> threading.Thread:
        started.append((list(later), list(seen)))
        thread = threading.Thread(target=lambda: None)
        thread.start()
        return thread

    monkeypatch.setattr(pipeline, "preload_gx", preload)
    settings = Settings(landing=tmp_path / "landing", lake=tmp_path / "lake", pii_key="k", progress=False)
    record = pipeline.run(settings, D, D, stages=stages, progress=lambda _m: None)
    assert record["status"] == "ok"
    assert seen == stages
    if preloaded_before is None:
        assert started == []
    else:
        at = stages.index(preloaded_before)
        # started once, just before the gate, with the stages left to run
        assert started == [(stages[at:], stages[:at])]
