"""A run killed at any point, then re-run, leaves the lake a clean run leaves; two runs never collide.

The kill is real: ``METERLAKE_FAULT_KILL_AT_WRITE=N`` makes the run SIGKILL itself at its
N-th atomic lake write (after the new file is staged, before it is renamed into place),
see :mod:`meterlake.faults`. Time-based ``kill -9`` from outside covers the stages that
write outside the lake's atomic writer (Great Expectations, DuckDB, the report).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from meterlake import audit, faults

START, END = "2026-01-01", "2026-01-03"
#: stages of the short (CI) variant: everything that writes clean/ and marts/
DATA_STAGES = ("ingest", "validate", "loss", "anomalies", "billing")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERLAKE_")}
    env |= {"METERLAKE_PII_KEY": "test-key", "METERLAKE_PROGRESS": "false"}
    return env | extra


def _cmd(landing: Path, lake: Path, stages: tuple[str, ...] | None, *more: str) -> list[str]:
    cmd = [sys.executable, "-m", "meterlake", "run", "--landing", str(landing), "--lake", str(lake)]
    cmd += ["--start", START, "--end", END, *more]
    for s in stages or ():
        cmd += ["--stage", s]
    return cmd


def run_lake(
    landing: Path, lake: Path, stages: tuple[str, ...] | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _cmd(landing, lake, stages), env=_env(**env), capture_output=True, text=True, timeout=600, check=False
    )


def state(lake: Path) -> tuple[dict[str, str], list[dict[str, object]]]:
    """What a run must reproduce: every byte under clean/ and marts/, and the accounting."""
    return audit.fingerprint(lake), audit.accounting_rows(lake)


def assert_same_lake(lake: Path, reference: tuple[dict[str, str], list[dict[str, object]]]) -> None:
    files, acc = state(lake)
    ref_files, ref_acc = reference
    differ = sorted(f for f in files.keys() | ref_files.keys() if files.get(f) != ref_files.get(f))
    assert not differ, f"{len(differ)} file(s) differ from a clean run's: {differ[:8]}"
    assert acc == ref_acc
    assert all(row["unaccounted"] == 0 for row in acc)
    assert not any((lake / ".staging").iterdir()), "staging files left behind"
    assert not (lake / "_meta" / "ingest_plan.parquet").exists()


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from meterlake.generate import generate

    out = tmp_path_factory.mktemp("crash") / "landing"
    generate(out, meters=120, days=3, start=__import__("datetime").date(2026, 1, 1), seed=11)
    return out


_REFERENCES: dict[tuple[Path, tuple[str, ...] | None], tuple[tuple[dict[str, str], list], int]] = {}


def _reference(landing: Path, stages: tuple[str, ...] | None) -> tuple[tuple[dict[str, str], list], int]:
    """A clean run's lake state, and how many atomic writes that run made (once per module)."""
    if (landing, stages) not in _REFERENCES:
        lake = landing.parent / f"reference-{'-'.join(stages or ('all',))}"
        count = landing.parent / f"writes-{lake.name}.txt"
        res = run_lake(landing, lake, stages, **{faults.COUNT_FILE: str(count)})
        assert res.returncode == 0, res.stderr
        _REFERENCES[landing, stages] = state(lake), len(count.read_text().splitlines())
    return _REFERENCES[landing, stages]


def _kill_then_heal(landing: Path, lake: Path, stages: tuple[str, ...] | None, kills: list[int]) -> None:
    """Kill successive runs at the given write numbers, then run to the end."""
    for k in kills:
        res = run_lake(landing, lake, stages, **{faults.KILL_AT: str(k)})
        assert res.returncode == -signal.SIGKILL, f"kill at write {k}: exit {res.returncode}\n{res.stderr[-2000:]}"
    res = run_lake(landing, lake, stages)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(
    "fraction",
    [pytest.param(0.3, id="during-ingest", marks=pytest.mark.slow), pytest.param(0.75, id="during-marts")],
)
def test_a_killed_first_run_heals_on_rerun(landing: Path, tmp_path: Path, fraction: float) -> None:
    reference, writes = _reference(landing, DATA_STAGES)
    lake = tmp_path / "lake"
    _kill_then_heal(landing, lake, DATA_STAGES, [max(1, int(writes * fraction))])
    assert_same_lake(lake, reference)


@pytest.mark.slow
def test_kill_at_twenty_points_of_a_first_run_then_rerun(landing: Path, tmp_path: Path) -> None:
    reference, writes = _reference(landing, None)
    points = sorted({round(x) for x in np.linspace(1, writes, 20)})
    assert len(points) == 20
    for k in points:
        lake = tmp_path / f"lake-{k}"
        _kill_then_heal(landing, lake, None, [k])
        assert_same_lake(lake, reference)


@pytest.mark.slow
def test_kill_a_first_run_and_its_rerun_then_run_again(landing: Path, tmp_path: Path) -> None:
    reference, writes = _reference(landing, None)
    rng = np.random.default_rng(17)
    for trial in range(5):
        # a re-run skips work the killed run committed: its own kill point comes early enough
        # to be reached (it rebuilds at least the requested days of every dataset and mart)
        first, second = int(rng.integers(1, writes + 1)), int(rng.integers(1, writes // 3))
        lake = tmp_path / f"lake-{trial}"
        _kill_then_heal(landing, lake, None, [first, second])
        assert_same_lake(lake, reference)


@pytest.mark.slow
def test_kill_minus_nine_at_random_moments(landing: Path, tmp_path: Path) -> None:
    """SIGKILL from outside, at moments spread over a whole run (checks and publishing included)."""
    reference, _ = _reference(landing, None)
    t0 = time.perf_counter()
    assert run_lake(landing, tmp_path / "timed", None).returncode == 0
    seconds = time.perf_counter() - t0
    rng = np.random.default_rng(5)
    for trial, at in enumerate(sorted(rng.uniform(0.5, seconds * 0.95, size=4))):
        lake = tmp_path / f"lake-{trial}"
        proc = subprocess.Popen(
            _cmd(landing, lake, None), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(at)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        res = run_lake(landing, lake, None)
        assert res.returncode == 0, res.stderr
        assert_same_lake(lake, reference)


@pytest.mark.parametrize(
    "wait", [pytest.param(None, id="second-fails-fast"), pytest.param("600", id="second-waits", marks=pytest.mark.slow)]
)
def test_two_concurrent_runs_never_collide(landing: Path, tmp_path: Path, wait: str | None) -> None:
    reference, _ = _reference(landing, DATA_STAGES)
    lake = tmp_path / "lake"
    more = ("--wait", wait) if wait else ()
    procs = [
        subprocess.Popen(
            _cmd(landing, lake, DATA_STAGES, *more),
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    for _, err in outs:
        assert "Traceback" not in err and "panicked" not in err
    if wait:
        assert codes == [0, 0]
    else:
        assert codes == [0, 1]
        err = next(e for p, (_, e) in zip(procs, outs, strict=True) if p.returncode == 1)
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"meterlake: the lake {lake} is locked by pid "), err
        assert " run " in last and " since " in last and " on " in last
    assert_same_lake(lake, reference)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """A mount point for a tmpfs of a chosen size (root and mount(8) needed; skipped otherwise)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mounted: list[Path] = []

    def mount(size_bytes: int) -> Path:
        opts = f"size={max(size_bytes // 1024, 64)}k"
        if mounted:
            opts = "remount," + opts
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mnt)], capture_output=True, check=False)
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
        mounted.append(mnt)
        return mnt

    yield mount
    if mounted:
        subprocess.run(["umount", str(mnt)], check=False)


@pytest.mark.parametrize(
    "fraction", [pytest.param(0.2, id="early"), pytest.param(0.6, id="midway", marks=pytest.mark.slow)]
)
def test_a_disk_full_first_run_fails_with_one_line_and_heals(landing: Path, small_tmpfs, fraction: float) -> None:
    reference, _ = _reference(landing, DATA_STAGES)
    ref_lake = landing.parent / f"reference-{'-'.join(DATA_STAGES)}"
    needed = _dir_bytes(ref_lake)
    mnt = small_tmpfs(int(needed * fraction))
    lake = mnt / "lake"
    res = run_lake(landing, lake, DATA_STAGES)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("meterlake: disk full"), res.stderr[-2000:]
    # whatever was written before the disk filled is whole
    for f in lake.rglob("*.parquet"):
        pl.read_parquet(f)
    small_tmpfs(needed * 4)  # the operator frees space
    res = run_lake(landing, lake, DATA_STAGES)
    assert res.returncode == 0, res.stderr
    assert_same_lake(lake, reference)
