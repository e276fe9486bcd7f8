"""One writer at a time: an advisory lock on the lake (or, later, on a shard of it).

A lock is a file ``LAKE/_meta/locks/<scope>.lock`` held with ``flock``: the kernel
releases it when its holder exits, however it exits (``kill -9`` included), so a stale
lock never blocks the next run. While held, the file names its holder — pid, host, run
id and since when — and a second writer either waits up to ``wait_s`` seconds or fails
with one line that names the holder.

``scope`` is the unit of exclusion. Today every writer takes ``"lake"``; a pipeline that
partitions the lake into shards (e.g. one per supply office) takes ``"shard-<id>"``
instead, and writers of different shards no longer exclude each other. A process holds
a scope once; taking it again inside (the CLI run around its stages) is a no-op.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LAKE_SCOPE = "lake"
#: how often a waiting writer retries
POLL_S = 0.2

#: lock files this process holds: path -> open descriptor
_held: dict[Path, int] = {}
#: held locks handed over (:func:`hand_over`): their ``with`` block ends without letting them go
_handed: dict[Path, _Handover] = {}


class _Handover:
    """A held lock whose release waits for whichever ends last: its ``with`` block, or
    the caller of :func:`hand_over` calling ``release``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.guard = threading.Lock()
        self.released = False  # release() was called
        self.block_ended = False  # the ``with`` block has ended

    def release(self) -> None:
        with self.guard:
            if self.released:
                return
            self.released = True
            if self.block_ended:
                _let_go(self.fd)

    def end_block(self) -> None:
        with self.guard:
            self.block_ended = True
            if self.released:
                _let_go(self.fd)


def _let_go(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.close(fd)  # closing the descriptor releases the flock


class LockBusy(RuntimeError):
    """Another writer holds the lock; the message is one line naming it."""


def lock_path(lake: Path, scope: str = LAKE_SCOPE) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in scope)
    return Path(lake) / "_meta" / "locks" / f"{safe}.lock"


def holder(path: Path) -> dict[str, object]:
    """Who holds (or last held) the lock at ``path``, as written by the holder."""
    try:
        return json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}


#: how long a refused writer waits for the holder's record: a holder writes it just after
#: taking the lock, and a writer refused in between would name nobody
RECORD_WAIT_S = 1.0


def _holder_soon(path: Path) -> dict[str, object]:
    """:func:`holder`, waiting up to :data:`RECORD_WAIT_S` for a holder that has just taken
    the lock to write its record (empty if none is written by then)."""
    deadline = time.monotonic() + RECORD_WAIT_S
    while not (info := holder(path)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return info


def describe(info: dict[str, object]) -> str:
    if not info:
        return "another process (no holder recorded yet)"
    return f"pid {info.get('pid')} on {info.get('host')}, run {info.get('run_id')}, since {info.get('since')}"


def holds(lake: Path, scope: str = LAKE_SCOPE) -> bool:
    """Whether this process holds the lock of ``scope`` on ``lake``."""
    return lock_path(lake, scope).resolve() in _held


@contextmanager
def lake_lock(lake: Path, run_id: str, wait_s: float = 0.0, scope: str = LAKE_SCOPE) -> Iterator[Path]:
    """Hold the lock of ``scope`` on ``lake`` for the ``with`` block.

    Waits up to ``wait_s`` seconds for another holder; then raises :class:`LockBusy`.
    """
    path = lock_path(lake, scope).resolve()
    if path in _held:
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    deadline = time.monotonic() + max(wait_s, 0.0)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    waited = f" after waiting {wait_s:g} s" if wait_s > 0 else ""
                    raise LockBusy(
                        f"the lake {lake} is locked by {describe(_holder_soon(path))}{waited}; "
                        f"retry when it finishes (or set METERLAKE_LOCK_WAIT_S to wait)"
                    ) from None
                time.sleep(POLL_S)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "run_id": run_id,
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "scope": scope,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        _held[path] = fd
        try:
            yield path
        finally:
            del _held[path]
            handed = _handed.pop(path, None)
            if handed is not None:  # its release is the hand-over's now
                fd = -1
                handed.end_block()
            else:
                os.ftruncate(fd, 0)
    finally:
        if fd >= 0:
            os.close(fd)  # closing the descriptor releases the flock


def hand_over(lake: Path, scope: str = LAKE_SCOPE) -> Callable[[], None]:
    """Keep the held lock of ``scope`` on ``lake`` past the end of its ``with`` block: it is
    let go once both the block has ended and the returned function has been called (later
    calls do nothing), or when the process exits, whichever comes first.

    For work that cannot be stopped midway, e.g. a stage still writing on a thread of its
    own when the run around it is stopped: the lake stays locked until that work ends.
    """
    path = lock_path(lake, scope).resolve()
    handed = _handed.get(path)
    if handed is None:
        handed = _handed[path] = _Handover(_held[path])  # KeyError: this process does not hold it
    return handed.release
