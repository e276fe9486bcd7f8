"""A run of several stages takes anomalies on a thread beside billing and receivables (on days
of at most ``SIDE_MAX_METERS`` meters)."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from pathlib import Path

import polars as pl
import pytest

from meterlake import lock, pipeline
from meterlake.lake import Lake
from meterlake.schemas.meter_daily import METER_DAILY
from meterlake.settings import Settings
from meterlake.stages import StageContext, StageError, StageResult

D1, D2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
#: the stages these tests run: anomalies beside billing and receivables, the gate after them
STAGES = ["loss", "anomalies", "billing", "receivables", "check"]
#: how long a stage waits for the other side before the test fails (no deadlock on failure)
WAIT_S = 10.0


def _settings(root: Path) -> Settings:
    return Settings(lake=root / "lake", landing=root / "landing", pii_key="k", progress=False)


def _record(root: Path) -> dict:
    (path,) = (root / "lake" / "_meta" / "runs").glob("*.json")
    return json.loads(path.read_text(encoding="utf-8"))


class Stages:
    """Stand-in stages that log when they start and end, on which thread, with which dates."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log: list[tuple[str, str]] = []
        self.threads: dict[str, str] = {}
        self.dates: dict[str, list[list[dt.date]]] = {}
        self._lock = threading.Lock()
        self.started = {s: threading.Event() for s in STAGES}
        self.ended = {s: threading.Event() for s in STAGES}
        for stage in STAGES:
            monkeypatch.setitem(pipeline.RUNNERS, stage, self._runner(stage))
        self.body: dict[str, object] = {}

    def _runner(self, stage: str) -> pipeline.StageRun:
        def run(ctx: StageContext, dates: list[dt.date]) -> StageResult:
            with self._lock:
                self.log.append(("start", stage))
                self.threads[stage] = threading.current_thread().name
                self.dates.setdefault(stage, []).append(list(dates))
            self.started[stage].set()
            try:
                body = self.body.get(stage)
                result = body(ctx, dates) if callable(body) else StageResult(stage=stage)
            finally:
                with self._lock:
                    self.log.append(("end", stage))
                self.ended[stage].set()
            return result

        return run


@pytest.fixture
def stages(monkeypatch: pytest.MonkeyPatch) -> Stages:
    return Stages(monkeypatch)


@pytest.fixture
def finishing(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set when the run, having failed, turns to wait for the stage beside it: a side stage
    that ends only after this shows whether the run really waited."""
    called = threading.Event()
    original = pipeline.SideStage.finish

    def finish(self: pipeline.SideStage) -> StageResult | None:
        called.set()
        return original(self)

    monkeypatch.setattr(pipeline.SideStage, "finish", finish)
    return called


@pytest.mark.parametrize(
    ("wanted", "beside"),
    [
        pytest.param(list(pipeline.STAGES), {"anomalies"}, id="all"),
        pytest.param(["anomalies", "billing"], {"anomalies"}, id="with-billing"),
        pytest.param(["anomalies", "receivables", "check"], {"anomalies"}, id="with-receivables"),
        pytest.param(["loss", "anomalies", "check"], set(), id="no-partner"),
        pytest.param(["billing", "receivables"], set(), id="no-anomalies"),
    ],
)
def test_which_runs_take_a_stage_beside(wanted: list[str], beside: set[str]) -> None:
    assert pipeline.side_stages(wanted) == beside


def test_anomalies_runs_beside_billing_and_receivables_and_the_gate_waits_for_both(
    stages: Stages, tmp_path: Path
) -> None:
    # each side waits for the other to have started: a run taking them in turn would fail here
    def anomalies(ctx: StageContext, dates: list[dt.date]) -> StageResult:
        assert stages.started["receivables"].wait(WAIT_S), "receivables did not start beside anomalies"
        return StageResult(stage="anomalies", rows={"anomalies": 3})

    def billing(ctx: StageContext, dates: list[dt.date]) -> StageResult:
        assert stages.started["anomalies"].wait(WAIT_S), "anomalies did not start beside billing"
        return StageResult(stage="billing")

    stages.body |= {"anomalies": anomalies, "billing": billing}
    record = pipeline.run(_settings(tmp_path), D1, D2, stages=STAGES, run_id="r1")
    assert record["status"] == "ok"
    assert stages.threads["anomalies"] != stages.threads["billing"] == stages.threads["check"]
    # the gate starts after both sides ended
    started_check = stages.log.index(("start", "check"))
    assert stages.log.index(("end", "anomalies")) < started_check
    assert stages.log.index(("end", "receivables")) < started_check
    # the record keeps the stages in pipeline order, with what ran beside what
    kept = _record(tmp_path)["stages"]
    assert list(kept) == STAGES
    assert kept["anomalies"]["rows"] == {"anomalies": 3}
    assert kept["anomalies"]["details"]["beside"] == ["billing", "receivables"]
    assert kept["billing"]["details"]["beside"] == "anomalies"
    assert "beside" not in kept["check"]["details"]


def test_a_failing_side_stage_fails_the_run_in_its_own_line_and_no_later_stage_starts(
    stages: Stages, tmp_path: Path
) -> None:
    def anomalies(ctx: StageContext, dates: list[dt.date]) -> StageResult:
        raise StageError("anomalies: the observer's state of 2026-03-01 is corrupt")

    def billing(ctx: StageContext, dates: list[dt.date]) -> StageResult:
        # billing ends after anomalies failed: receivables must not start
        assert stages.ended["anomalies"].wait(WAIT_S)
        # ... and after the side stage's thread has recorded the failure (the stand-in's
        # end is signalled a moment before it)
        for thread in threading.enumerate():
            if thread.name == "meterlake-anomalies":
                thread.join(WAIT_S)
        return StageResult(stage="billing")

    stages.body |= {"anomalies": anomalies, "billing": billing}
    with pytest.raises(StageError, match=r"^anomalies: the observer's state of 2026-03-01 is corrupt$"):
        pipeline.run(_settings(tmp_path), D1, D2, stages=STAGES, run_id="r1")
    started = [s for what, s in stages.log if what == "start"]
    assert "receivables" not in started and "check" not in started
    kept = _record(tmp_path)
    assert kept["status"] == "failed"
    assert kept["error"] == "anomalies: the observer's state of 2026-03-01 is corrupt"
    assert list(kept["stages"]) == ["loss", "billing"]  # the failed stage has no result
    assert not lock.holds(tmp_path / "lake")


def test_a_failing_stage_waits_for_the_side_stage_before_the_lock_is_let_go(
    stages: Stages, finishing: threading.Event, tmp_path: Path
) -> None:
    release = threading.Event()
    lock_free_while_anomalies_ran: list[bool] = []

    def anomalies(ctx: StageContext, dates: list[dt.date]) -> StageResult:
        assert release.wait(WAIT_S)
        assert finishing.wait(WAIT_S)
        time.sleep(0.2)  # a side stage still writing while the run waits
        # the run has failed by now and waits here: the lake is still locked for another process
        lock_free_while_anomalies_ran.append(not lock.holds(ctx.settings.lake))
        return StageResult(stage="anomalies", rows={"anomalies": 1})

    def billing(ctx: StageContext, dates: list[dt.date]) -> StageResult:
        release.set()
        raise StageError("billing: no tariff version in tariffs.toml for tariff_id T9 on 2026-03-01")

    stages.body |= {"anomalies": anomalies, "billing": billing}
    with pytest.raises(StageError, match=r"^billing: no tariff version"):
        pipeline.run(_settings(tmp_path), D1, D2, stages=STAGES, run_id="r1")
    assert lock_free_while_anomalies_ran == [False]
    assert stages.ended["anomalies"].is_set()  # waited for, not abandoned
    kept = _record(tmp_path)
    assert kept["error"].startswith("billing: no tariff version")
    # the side stage completed: its result is kept, in pipeline order
    assert list(kept["stages"]) == ["loss", "anomalies"]
    assert kept["stages"]["anomalies"]["rows"] == {"anomalies": 1}


def test_both_sides_failing_report_the_runs_own_error(
    stages: Stages, finishing: threading.Event, tmp_path: Path
) -> None:
    def anomalies(ctx: StageContext, dates: list[dt.date]) -> StageResult:
        assert finishing.wait(WAIT_S)  # billing has failed and the run waits for this side
        time.sleep(0.2)
        raise StageError("anomalies: boom")

    def billing(ctx: StageContext, dates: list[dt.date]) -> StageResult:
        raise StageError("billing: bang")

    stages.body |= {"anomalies": anomalies, "billing": billing}
    with pytest.raises(StageError, match=r"^billing: bang$"):
        pipeline.run(_settings(tmp_path), D1, D2, stages=STAGES, run_id="r1")
    assert stages.ended["anomalies"].is_set()
    assert _record(tmp_path)["error"] == "billing: bang"


def test_an_interrupted_run_waits_for_the_side_stage(
    stages: Stages, finishing: threading.Event, tmp_path: Path
) -> None:
    def anomalies(ctx: StageContext, dates: list[dt.date]) -> StageResult:
        assert finishing.wait(WAIT_S)  # billing was interrupted and the run waits for this side
        time.sleep(0.2)
        return StageResult(stage="anomalies")

    def billing(ctx: StageContext, dates: list[dt.date]) -> StageResult:
        raise KeyboardInterrupt

    stages.body |= {"anomalies": anomalies, "billing": billing}
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(_settings(tmp_path), D1, D2, stages=STAGES, run_id="r1")
    assert stages.ended["anomalies"].is_set()
    assert _record(tmp_path)["status"] == "interrupted"


def test_a_run_stopped_twice_leaves_the_lake_locked_until_the_side_stage_ends(
    stages: Stages, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    release = threading.Event()

    def anomalies(ctx: StageContext, dates: list[dt.date]) -> StageResult:
        assert release.wait(WAIT_S)  # still writing after the run has returned
        return StageResult(stage="anomalies")

    def billing(ctx: StageContext, dates: list[dt.date]) -> StageResult:
        raise KeyboardInterrupt  # the first Ctrl-C

    def wait(self: pipeline.SideStage) -> None:
        raise KeyboardInterrupt  # the second, while the run waits for the side stage

    stages.body |= {"anomalies": anomalies, "billing": billing}
    monkeypatch.setattr(pipeline.SideStage, "wait", wait)
    lake = tmp_path / "lake"
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(_settings(tmp_path), D1, D2, stages=STAGES, run_id="r1")
    assert not stages.ended["anomalies"].is_set()
    assert _record(tmp_path)["status"] == "interrupted"
    # another writer is refused while the side stage may still write
    with pytest.raises(lock.LockBusy), lock.lake_lock(lake, "r2"):
        pass
    release.set()
    assert stages.ended["anomalies"].wait(WAIT_S)
    deadline = time.monotonic() + WAIT_S
    while True:  # the side stage lets the lock go as it ends
        try:
            with lock.lake_lock(lake, "r2"):
                break
        except lock.LockBusy:
            assert time.monotonic() < deadline, "the lock was never let go"
            time.sleep(0.01)


def test_dates_a_side_stage_adds_are_rebuilt_by_the_stages_beside_it(stages: Stages, tmp_path: Path) -> None:
    late = dt.date(2026, 2, 27)

    def anomalies(ctx: StageContext, dates: list[dt.date]) -> StageResult:
        assert stages.ended["receivables"].wait(WAIT_S)
        return StageResult(stage="anomalies", dates=[late])

    stages.body |= {"anomalies": anomalies}
    record = pipeline.run(_settings(tmp_path), D1, D2, stages=STAGES, run_id="r1")
    assert record["status"] == "ok"
    assert stages.dates["billing"] == [[D1, D2], [late, D1, D2]]
    assert stages.dates["receivables"] == [[D1, D2], [late, D1, D2]]
    assert stages.dates["check"] == [[late, D1, D2]]
    assert record["dates"] == [late.isoformat(), D1.isoformat(), D2.isoformat()]


def test_dates_billing_adds_reach_receivables_and_the_gate_not_anomalies(stages: Stages, tmp_path: Path) -> None:
    later = dt.date(2026, 3, 5)
    stages.body["billing"] = lambda ctx, dates: StageResult(stage="billing", dates=[later])
    pipeline.run(_settings(tmp_path), D1, D2, stages=STAGES, run_id="r1")
    # as in a run taking them in turn: anomalies comes before billing
    assert stages.dates["anomalies"] == [[D1, D2]]
    assert stages.dates["receivables"] == [[D1, D2, later]]
    assert stages.dates["check"] == [[D1, D2, later]]


def test_progress_lines_of_both_sides_reach_the_reporter_one_at_a_time(stages: Stages, tmp_path: Path) -> None:
    inside = threading.Lock()
    overlapped: list[str] = []
    lines: list[str] = []

    def progress(message: str) -> None:
        if not inside.acquire(blocking=False):
            overlapped.append(message)
            return
        try:
            lines.append(message)
            time.sleep(0.001)  # a reporter that takes its time (a terminal, a log handler): overlaps show
        finally:
            inside.release()

    def talk(stage: str) -> pipeline.StageRun:
        def run(ctx: StageContext, dates: list[dt.date]) -> StageResult:
            for i in range(200):
                ctx.progress(f"{stage} {i}")
            return StageResult(stage=stage)

        return run

    stages.body |= {"anomalies": talk("anomalies"), "billing": talk("billing")}
    pipeline.run(_settings(tmp_path), D1, D2, stages=STAGES, run_id="r1", progress=progress)
    assert overlapped == []
    assert len([ln for ln in lines if ln.startswith(("anomalies ", "billing "))]) == 400


def test_without_partners_anomalies_runs_in_turn(stages: Stages, tmp_path: Path) -> None:
    pipeline.run(_settings(tmp_path), D1, D2, stages=["loss", "anomalies", "check"], run_id="r1")
    assert stages.threads["anomalies"] == stages.threads["loss"] == threading.current_thread().name
    assert [s for what, s in stages.log if what == "start"] == ["loss", "anomalies", "check"]


def _meter_days(root: Path, day: dt.date, meters: int) -> None:
    """A meter_daily partition of ``meters`` rows (the gate reads only its footer's row count)."""
    lake = Lake(root / "lake")
    lake.write_file(lake.partition_path(METER_DAILY, day.isoformat()), pl.DataFrame({"meter_id": range(meters)}))


@pytest.mark.parametrize(
    ("meters", "beside"),
    [
        pytest.param(0, True, id="no-meter_daily"),
        pytest.param(3, True, id="at-the-limit"),
        pytest.param(4, False, id="over-the-limit"),
    ],
)
def test_days_with_more_meters_than_the_limit_take_the_side_stage_in_turn(
    stages: Stages, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, meters: int, beside: bool
) -> None:
    monkeypatch.setattr(pipeline, "SIDE_MAX_METERS", 3)
    _meter_days(tmp_path, D1, 2)
    if meters:
        _meter_days(tmp_path, D2, meters)  # the largest day decides
    pipeline.run(_settings(tmp_path), D1, D2, stages=STAGES, run_id="r1")
    assert (stages.threads["anomalies"] != stages.threads["billing"]) is beside
    started = [s for what, s in stages.log if what == "start"]
    if not beside:
        assert started == STAGES
        assert "beside" not in _record(tmp_path)["stages"]["anomalies"]["details"]
