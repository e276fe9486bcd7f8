"""Errors for people: one line on the terminal, the traceback in a debug log file.

Whatever stops a run, the operator sees one line that says what happened and where
(CONTRACT §4), the run record keeps the same line, and the full traceback goes to
``LAKE/_meta/logs/<run id>.log`` for whoever debugs it. Both have every digit run long
enough to be a card number masked: an exception message may quote landing data.
"""

from __future__ import annotations

import errno
import logging
import tempfile
import traceback
from pathlib import Path

from .transforms.ingest import mask_digit_runs

#: longest error line shown
MAX_LINE = 300


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC/EDQUOT, raised by Python or reported inside a polars/pyarrow error message."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def one_line(exc: BaseException) -> str:
    """The error as one short line, personal data masked."""
    if is_disk_full(exc):
        where = getattr(exc, "filename", None)
        at = f" writing {where}" if where else ""
        text = (
            f"disk full{at}: no space left on the lake's filesystem; free space and re-run "
            "(files already written stay whole, the re-run completes the lake)"
        )
    else:
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        name = type(exc).__name__
        # a stage's own errors already say what happened; anything else is named by its type
        own = any(c.__name__ in ("StageError", "LockBusy") for c in type(exc).__mro__)
        text = first if own else f"{name}: {first}"
    text = mask_digit_runs(" ".join(text.split()))
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 1] + "…"


class MaskingFormatter(logging.Formatter):
    """A formatter that masks card-length digit runs in the whole formatted record."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_digit_runs(super().format(record))


class OneLineFormatter(logging.Formatter):
    """For the terminal: the first line of each message, masked, never a traceback.

    Libraries log tracebacks inside their messages (Great Expectations does on a full
    disk); the whole record still reaches the run's debug log file.
    """

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        first = next((ln.strip() for ln in message.splitlines() if ln.strip()), "")
        more = " (details in the run's debug log)" if first != message.strip() or record.exc_info else ""
        line = f"{self.formatTime(record)} {record.levelname} {first}{more}"
        return mask_digit_runs(line if len(line) <= 2 * MAX_LINE else line[: 2 * MAX_LINE - 1] + "…")


class QuietFileHandler(logging.FileHandler):
    """A log file that never prints its own failures (a full disk) to the terminal."""

    def handleError(self, record: logging.LogRecord) -> None:
        return


def debug_log_path(lake: Path, run_id: str) -> Path:
    return Path(lake) / "_meta" / "logs" / f"{run_id}.log"


def write_traceback(lake: Path | None, run_id: str, exc: BaseException) -> Path | None:
    """Append ``exc``'s traceback (masked) to the run's debug log; where it went, or None."""
    text = mask_digit_runs("".join(traceback.format_exception(exc)))
    candidates = [debug_log_path(lake, run_id)] if lake is not None else []
    candidates.append(Path(tempfile.gettempdir()) / f"meterlake-{run_id}.log")
    for path in candidates:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(text)
            return path
        except OSError:
            continue
    return None
