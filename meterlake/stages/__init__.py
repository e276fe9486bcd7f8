"""Pipeline stages. Each stage module exposes ``run(ctx, dates) -> StageResult``.

The CLI (``meterlake run``) and the Airflow DAGs call the same functions through
:mod:`meterlake.pipeline`; a stage reads and writes the lake, never XCom.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from .. import config
from ..lake import Lake
from ..settings import Settings

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger("meterlake")


class StageError(RuntimeError):
    """A stage could not complete; the message is one line that says why."""


class BlockingValidationError(StageError):
    """A blocking expectation failed: nothing downstream may be published."""


@dataclass(frozen=True)
class ObserverAhead:
    """The observer's work a run did before its anomalies stage (the pipeline's docs helper
    does it beside the loss stage on small days)."""

    #: days whose summaries it wrote: the stage reads them back
    summarised: frozenset[dt.date] = frozenset()
    #: the observer indicator of each date it judged, as the stage computes it: an Arrow IPC
    #: file, None where the date's window holds too few days; the stage reads it instead
    judged: Mapping[dt.date, Path | None] = field(default_factory=dict)


@dataclass
class StageContext:
    settings: Settings
    run_id: str
    #: called with short human-readable progress lines ("curves 3/7 files")
    progress: Callable[[str], None] = field(default=lambda msg: log.info(msg))
    #: days whose observer summaries this run already wrote (the pipeline's docs helper
    #: writes them beside the loss stage on small days): the anomalies stage reads them back
    observed_ahead: frozenset[dt.date] = frozenset()
    #: waits for, then returns, the observer's work this run is doing ahead (:class:`ObserverAhead`):
    #: the anomalies stage calls it where it first needs the observer, so it starts (and the
    #: stages beside it run) while the work ends; None: none is done ahead
    observer_ahead: Callable[[], ObserverAhead] | None = None
    #: waits for the gate's tables the run's docs helper judges ahead, beside the stages after
    #: loss (``check.check_ahead``), and returns where it left them (None: it did not): the
    #: check stage reuses those whose files are unchanged; None: none are judged ahead
    checked_ahead: Callable[[], Path | None] | None = None
    #: waits until the run's docs helper has opened the GX context in the lake (it does so
    #: beside the stages before the gate): the check stage calls it before it renders a
    #: failing gate's page in that context itself; None: no helper opens it
    gx_ready: Callable[[], None] | None = None

    @property
    def lake(self) -> Lake:
        return Lake(self.settings.lake)

    @property
    def landing(self) -> Path:
        return Path(self.settings.landing)

    def config(self, name: str, model: type[M]) -> M:
        return config.load(name, model, self.settings.config_dir)


@dataclass
class StageResult:
    stage: str
    #: rows written per table
    rows: dict[str, int] = field(default_factory=dict)
    #: dates whose partitions were (re)built; later stages rebuild these too
    dates: list[dt.date] = field(default_factory=list)
    #: one-line notes for the run record and the terminal
    notes: list[str] = field(default_factory=list)
    #: JSON-serialisable details (accounting, findings counts, report paths)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    #: CPU time of the process (user + system, every thread) while the stage ran
    cpu_seconds: float = 0.0
