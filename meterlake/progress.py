"""Progress of long runs: files and rows done, elapsed time and time left.

On a terminal it is a rich progress bar; anywhere else (Airflow task logs, CI, a
pipe) it is a plain log line at most every ``log_every_s`` seconds and one when the
work is done, so logs stay readable and greppable::

    with Progress("ingest curves", total_files=len(files)) as p:
        for f in files:
            rows = ingest(f)
            p.advance(files=1, rows=rows)

    # not a terminal -> INFO meterlake: ingest curves: 3/7 files, 120,000 rows, 0:00:12 elapsed, ~0:00:16 left

Time left is extrapolated from the share done (files when a file total is known,
else rows): elapsed x (1 - share) / share. It is a guide, not a promise.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any, TypeVar

T = TypeVar("T")

log = logging.getLogger("meterlake")


def format_duration(seconds: float | None) -> str:
    """``H:MM:SS`` (``?`` when unknown).

    >>> format_duration(3725.4)
    '1:02:05'
    >>> format_duration(None)
    '?'
    """
    if seconds is None:
        return "?"
    s = round(max(seconds, 0.0))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _rich_progress(stream: IO[str]) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.progress import Progress as RichProgress

    return RichProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=Console(file=stream),
    )


class Progress:
    """Counts files and rows done; shows a bar on a TTY and log lines elsewhere.

    ``enabled=False`` (``METERLAKE_PROGRESS=false``) never draws a bar: log lines only.
    ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        description: str,
        total_files: int | None = None,
        total_rows: int | None = None,
        *,
        enabled: bool = True,
        stream: IO[str] | None = None,
        logger: logging.Logger | None = None,
        log_every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.description = description
        self.total_files = total_files
        self.total_rows = total_rows
        self.files = 0
        self.rows = 0
        self.note = ""
        self._stream = stream if stream is not None else sys.stdout
        self._logger = logger or log
        self._log_every_s = log_every_s
        self._clock = clock
        self._start = clock()
        self._last_log = -float("inf")
        isatty = getattr(self._stream, "isatty", lambda: False)
        self.interactive = bool(enabled and isatty())
        self._bar: Any = None
        self._task: Any = None
        #: a live display owned by a Reporter, to add this bar to
        self._shared: Any = None
        self._finished = False
        self._failed = False

    # -- figures -----------------------------------------------------------------
    @property
    def elapsed_s(self) -> float:
        return self._clock() - self._start

    @property
    def share_done(self) -> float | None:
        """Fraction done by files (if their total is known), else by rows; None if unknown."""
        if self.total_files:
            return min(self.files / self.total_files, 1.0)
        if self.total_rows:
            return min(self.rows / self.total_rows, 1.0)
        return None

    @property
    def eta_s(self) -> float | None:
        """Seconds left, extrapolated from the share done; None before any progress."""
        share = self.share_done
        if not share:
            return None
        return self.elapsed_s * (1.0 - share) / share

    def line(self) -> str:
        """The plain progress line (also what a log gets)."""
        parts = []
        if self.total_files is not None:
            parts.append(f"{self.files}/{self.total_files} files")
        elif self.files:
            parts.append(f"{self.files} files")
        rows = f"{self.rows:,} rows"
        if self.total_rows is not None:
            rows = f"{self.rows:,}/{self.total_rows:,} rows"
        parts.append(rows)
        parts.append(f"{format_duration(self.elapsed_s)} elapsed")
        if self._finished:
            parts.append("stopped" if self._failed else "done")
        else:
            parts.append(f"~{format_duration(self.eta_s)} left")
        text = f"{self.description}: " + ", ".join(parts)
        return f"{text} ({self.note})" if self.note else text

    # -- updating ----------------------------------------------------------------
    def advance(self, files: int = 0, rows: int = 0, note: str | None = None) -> None:
        self.files += files
        self.rows += rows
        if note is not None:
            self.note = note
        self._show()

    def _show(self, force: bool = False) -> None:
        if self.interactive:
            if self._bar is not None:
                completed = self.files if self.total_files else self.rows
                self._bar.update(self._task, completed=completed, info=self._bar_info())
            return
        now = self._clock()
        if force or now - self._last_log >= self._log_every_s:
            self._last_log = now
            self._logger.info(self.line())

    def _bar_info(self) -> str:
        files = f"{self.files}/{self.total_files} files" if self.total_files is not None else f"{self.files} files"
        return f"{files}, {self.rows:,} rows" + (f" ({self.note})" if self.note else "")

    # -- context manager ---------------------------------------------------------
    def __enter__(self) -> Progress:
        self._start = self._clock()
        if self.interactive:
            if self._shared is None:
                self._bar = _rich_progress(self._stream)
                self._bar.start()
            else:
                self._bar = self._shared
            self._task = self._bar.add_task(
                self.description, total=self.total_files or self.total_rows, info=self._bar_info()
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self._finished = True
        self._failed = exc[0] is not None
        if self._bar is not None:
            if self._shared is None:
                self._bar.stop()
            else:
                self._bar.remove_task(self._task)
            self._bar = None
        # one closing line in every mode: the run's log keeps what was done and how long it took
        self._logger.info(self.line())


def track(
    items: Iterable[T],
    description: str,
    total: int | None = None,
    rows: Callable[[T], int] | None = None,
    **kwargs: Any,
) -> Iterator[T]:
    """Iterate over ``items`` (files, partitions...) counting each as one file done.

    ``rows(item)`` is called after the consumer has handled the item, to count its rows.
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(description, total_files=total, **kwargs) as p:
        for item in items:
            yield item
            p.advance(files=1, rows=rows(item) if rows is not None else 0)


#: "(3/7" or "3/7 files": the count a progress message carries
_COUNT = re.compile(r"(\d+)\s*/\s*(\d+)")


class Reporter:
    """A ``Callable[[str], None]`` for :class:`~meterlake.stages.StageContext.progress`.

    Stages send short lines ("ingest curves/c1.csv (3/7 new files, 1.2 MB)"). On a
    terminal the latest line is shown on a live status bar with the elapsed time; a
    line that carries a count ``n/m`` also gets a bar and the time left for that
    phase. Elsewhere each line is logged, those with counts at most every
    ``log_every_s`` seconds (and always the first and the last of a phase), with the
    elapsed time and time left appended.

    :meth:`counter` opens a :class:`Progress` for work with known totals (files and
    rows) that draws on the same live display.
    """

    def __init__(
        self,
        description: str,
        *,
        enabled: bool = True,
        stream: IO[str] | None = None,
        logger: logging.Logger | None = None,
        log_every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.description = description
        self._stream = stream if stream is not None else sys.stdout
        self._logger = logger or log
        self._log_every_s = log_every_s
        self._clock = clock
        self.interactive = bool(enabled and getattr(self._stream, "isatty", lambda: False)())
        self._enabled = enabled
        self._start = clock()
        self._phase: tuple[str, int] | None = None
        self._phase_start = self._start
        self._last_message = self._start
        self._last_log = -float("inf")
        self._bar: Any = None
        self._task: Any = None
        self.messages = 0

    def __call__(self, message: str) -> None:
        self.messages += 1
        now = self._clock()
        match = _COUNT.search(message)
        eta: float | None = None
        done = total = 0
        if match:
            done, total = int(match.group(1)), int(match.group(2))
            phase = (message.split(" ", 1)[0], total)
            if phase != self._phase:
                # the work of this phase began when the previous line was sent
                self._phase, self._phase_start = phase, self._last_message
            if 0 < done <= total:
                eta = (now - self._phase_start) * (total - done) / done
        self._last_message = now
        timing = f"{format_duration(now - self._start)} elapsed"
        if match:
            timing += f", ~{format_duration(eta)} left"
        if self.interactive and self._bar is not None:
            self._bar.update(
                self._task,
                description=f"{self.description}: {message}",
                total=total or None,
                completed=done if match else 0,
            )
            return
        if match and 1 < done < total and now - self._last_log < self._log_every_s:
            return
        if match:
            self._last_log = now
        self._logger.info(f"{self.description}: {message} [{timing}]")

    def counter(self, description: str, total_files: int | None = None, total_rows: int | None = None) -> Progress:
        """A :class:`Progress` on this reporter's display (a bar line, or log lines)."""
        p = Progress(
            f"{self.description}: {description}",
            total_files,
            total_rows,
            enabled=self._enabled,
            stream=self._stream,
            logger=self._logger,
            log_every_s=self._log_every_s,
            clock=self._clock,
        )
        if self.interactive and self._bar is not None:
            p._shared = self._bar
        return p

    def __enter__(self) -> Reporter:
        self._start = self._last_message = self._clock()
        if self.interactive:
            self._bar = _rich_progress(self._stream)
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=None, info="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        state = "stopped" if exc[0] is not None else "done"
        self._logger.info(f"{self.description}: {state} in {format_duration(self._clock() - self._start)}")


@contextmanager
def progress_reporter(description: str, *, enabled: bool | None = None, **kwargs: Any) -> Iterator[Reporter]:
    """``with progress_reporter("run") as progress: pipeline.run(..., progress=progress)``.

    ``enabled`` defaults to the ``METERLAKE_PROGRESS`` setting (true unless set false).
    """
    if enabled is None:
        from .settings import Settings

        enabled = Settings().progress
    with Reporter(description, enabled=enabled, **kwargs) as reporter:
        yield reporter
