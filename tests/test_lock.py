"""The lake lock's refusal names its holder, even one that has only just taken the lock."""

from __future__ import annotations

import fcntl
import json
import os
import threading
from pathlib import Path

import pytest

from meterlake import lock


def _take(path: Path) -> int:
    """Take the lock of ``path`` as another holder would (a descriptor of its own), with no record yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_a_writer_refused_before_the_holder_wrote_its_record_still_names_it(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    fd = _take(lock.lock_path(lake))
    record = {"pid": 4242, "host": "worker-7", "run_id": "r-early", "since": "2026-12-06T19:00:00+00:00"}
    # the holder writes its record 0.2 s after taking the lock: the refused writer sees it
    late = threading.Timer(0.2, lambda: os.pwrite(fd, json.dumps(record).encode(), 0))
    late.start()
    try:
        with pytest.raises(lock.LockBusy) as err, lock.lake_lock(lake, "second"):
            pass
        assert "is locked by pid 4242 on worker-7, run r-early, since 2026-12-06T19:00:00+00:00;" in str(err.value)
    finally:
        late.join()
        os.close(fd)


def test_a_holder_that_never_writes_its_record_is_described_as_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lock, "RECORD_WAIT_S", 0.05)
    lake = tmp_path / "lake"
    fd = _take(lock.lock_path(lake))
    try:
        with pytest.raises(lock.LockBusy) as err, lock.lake_lock(lake, "second"):
            pass
        assert "is locked by another process (no holder recorded yet)" in str(err.value)
    finally:
        os.close(fd)


def _free(lake: Path) -> bool:
    try:
        with lock.lake_lock(lake, "other"):
            return True
    except lock.LockBusy:
        return False


def test_a_handed_over_lock_outlives_its_block_until_released(tmp_path: Path) -> None:
    with lock.lake_lock(tmp_path, "r1"):
        release = lock.hand_over(tmp_path)
    assert not lock.holds(tmp_path)  # the block is over for this process...
    assert not _free(tmp_path)  # ...but the lake stays locked
    release()
    assert _free(tmp_path)
    release()  # a second call does nothing
    assert _free(tmp_path)


def test_a_lock_released_before_its_block_ends_is_let_go_with_the_block(tmp_path: Path) -> None:
    with lock.lake_lock(tmp_path, "r1"):
        release = lock.hand_over(tmp_path)
        release()
        assert lock.holds(tmp_path)  # the block still holds it
    assert _free(tmp_path)


def test_only_a_held_lock_can_be_handed_over(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        lock.hand_over(tmp_path)
