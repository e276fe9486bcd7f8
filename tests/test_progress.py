"""Progress: log lines with rows, files, elapsed and time left off a terminal; a bar on one."""

from __future__ import annotations

import io
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterlake.progress import Progress, Reporter, format_duration, progress_reporter, track


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def logger() -> logging.Logger:
    return logging.getLogger("meterlake.test_progress")


def test_plain_lines_give_files_rows_elapsed_and_time_left(caplog: pytest.LogCaptureFixture, logger) -> None:
    clock = Clock()
    caplog.set_level(logging.INFO, logger=logger.name)
    with Progress("ingest", total_files=4, stream=io.StringIO(), logger=logger, clock=clock, log_every_s=0) as p:
        clock.t += 30
        p.advance(files=1, rows=1000)
        clock.t += 30
        p.advance(files=1, rows=500)
    lines = [r.getMessage() for r in caplog.records]
    # 1 of 4 files in 30 s -> 90 s left; 2 of 4 in 60 s -> 60 s left
    assert lines == [
        "ingest: 1/4 files, 1,000 rows, 0:00:30 elapsed, ~0:01:30 left",
        "ingest: 2/4 files, 1,500 rows, 0:01:00 elapsed, ~0:01:00 left",
        "ingest: 2/4 files, 1,500 rows, 0:01:00 elapsed, done",
    ]


def test_lines_are_throttled(caplog: pytest.LogCaptureFixture, logger) -> None:
    clock = Clock()
    caplog.set_level(logging.INFO, logger=logger.name)
    with Progress("x", total_rows=100, stream=io.StringIO(), logger=logger, clock=clock, log_every_s=10) as p:
        for _ in range(10):
            clock.t += 1
            p.advance(rows=10)
    # the first advance logs, the next nine fall within 10 s, then the closing line
    assert len(caplog.records) == 2
    assert caplog.records[-1].getMessage() == "x: 100/100 rows, 0:00:10 elapsed, done"


def test_a_failure_is_logged_as_stopped(caplog: pytest.LogCaptureFixture, logger) -> None:
    caplog.set_level(logging.INFO, logger=logger.name)
    with pytest.raises(RuntimeError), Progress("x", stream=io.StringIO(), logger=logger):
        raise RuntimeError("boom")
    assert caplog.records[-1].getMessage().endswith("stopped")


def test_on_a_terminal_a_bar_is_drawn(logger) -> None:
    stream = Tty()
    with Progress("publish", total_files=2, stream=stream, logger=logger) as p:
        assert p.interactive
        p.advance(files=2, rows=10)
    assert "publish" in stream.getvalue()


def test_disabled_never_draws(logger) -> None:
    p = Progress("x", stream=Tty(), logger=logger, enabled=False)
    assert not p.interactive


def test_reporter_logs_stage_lines_with_time_left(caplog: pytest.LogCaptureFixture, logger) -> None:
    clock = Clock()
    caplog.set_level(logging.INFO, logger=logger.name)
    with Reporter("run", stream=io.StringIO(), logger=logger, clock=clock, log_every_s=60) as progress:
        progress("ingest starts")
        for i in range(1, 5):
            clock.t += 10
            progress(f"ingest curves/c{i}.csv ({i}/4 new files, 1.0 MB)")
    lines = [r.getMessage() for r in caplog.records]
    # first and last of the phase are logged, the middle two are throttled; 10 s per file,
    # so after the first of 4 files, 30 s are left
    assert lines == [
        "run: ingest starts [0:00:00 elapsed]",
        "run: ingest curves/c1.csv (1/4 new files, 1.0 MB) [0:00:10 elapsed, ~0:00:30 left]",
        "run: ingest curves/c4.csv (4/4 new files, 1.0 MB) [0:00:40 elapsed, ~0:00:00 left]",
        "run: done in 0:00:40",
    ]


def test_reporter_on_a_terminal_and_its_counter(logger) -> None:
    stream = Tty()
    with progress_reporter("run", enabled=True, stream=stream, logger=logger) as progress:
        progress("validate (1/2)")
        with progress.counter("publish", total_files=1) as c:
            c.advance(files=1, rows=5)
    assert "run" in stream.getvalue()


def test_track_counts_files(caplog: pytest.LogCaptureFixture, logger) -> None:
    caplog.set_level(logging.INFO, logger=logger.name)
    items = list(track(["a", "bb"], "files", rows=len, stream=io.StringIO(), logger=logger))
    assert items == ["a", "bb"]
    assert caplog.records[-1].getMessage().startswith("files: 2/2 files, 3 rows")


@given(done=st.integers(1, 10_000), extra=st.integers(0, 10_000), elapsed=st.floats(0.0, 1e6))
def test_time_left_is_proportional_and_never_negative(done: int, extra: int, elapsed: float) -> None:
    clock = Clock()
    p = Progress("x", total_files=done + extra, stream=io.StringIO(), clock=clock)
    p.files = done
    clock.t += elapsed
    # the time the clock can tell: 100.0 + 1e-14 - 100.0 is not 1e-14 in floats
    told = clock.t - 100.0
    assert p.eta_s is not None and p.eta_s >= 0
    assert p.eta_s == pytest.approx(told * extra / done)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(0, "0:00:00", id="zero"),
        pytest.param(59.6, "0:01:00", id="round"),
        pytest.param(3725, "1:02:05", id="hours"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
