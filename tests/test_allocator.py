"""meterlake sets the options of polars' allocator before polars loads (meterlake.allocator)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from meterlake import allocator

PROBE = """
import json, os, sys
{before}
import meterlake, polars
from meterlake import allocator
print(json.dumps({{"conf": polars.jemalloc_conf, "env": os.environ.get("_RJEM_MALLOC_CONF"),
                   "configured": allocator.configure(), "ours": allocator.options()}}))
"""


def probe(before: str = "", env: dict[str, str] | None = None) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if k != allocator.VARIABLE}
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(before=before)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **(env or {})},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def test_the_options() -> None:
    assert allocator.options(2) == "background_thread:true,dirty_decay_ms:200,muzzy_decay_ms:0,narenas:2"
    assert allocator.options(16).endswith(",narenas:16")


def test_polars_loads_with_the_options_after_its_own_defaults() -> None:
    got = probe()
    # polars' defaults first, then ours: jemalloc takes the last value of each option
    assert str(got["conf"]).endswith("," + got["ours"])
    assert str(got["conf"]).split(",")[-3:-1] == ["dirty_decay_ms:200", "muzzy_decay_ms:0"]
    assert got["configured"] is True


def test_a_deployment_s_own_options_come_last_and_win() -> None:
    got = probe(env={allocator.VARIABLE: "dirty_decay_ms:1000"})
    assert str(got["conf"]).endswith(got["ours"] + ",dirty_decay_ms:1000")


def test_options_are_not_repeated_in_a_child_process() -> None:
    # a child inherits the variable polars wrote: importing meterlake again adds nothing
    first = probe()
    again = probe(env={allocator.VARIABLE: str(first["env"])})
    assert str(again["env"]).count(again["ours"]) == str(first["env"]).count(first["ours"]) == 1


def test_nothing_is_changed_when_polars_was_imported_first() -> None:
    got = probe(before="import polars")
    assert got["ours"] not in str(got["conf"])
    assert got["ours"] not in str(got["env"])
    assert got["configured"] is False


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc_trim")
def test_trim_gives_the_c_heap_s_free_pages_back() -> None:
    # a child process: 2,000 zeroed blocks of 64 KiB (under glibc's mmap threshold: from the
    # heap) allocated and freed but the last, which pins the heap's top, so the freed
    # 125 MiB below it stay resident until trimmed
    code = (
        "import ctypes, os\n"
        "from meterlake import allocator\n"
        "def rss():\n"
        "    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') >> 20\n"
        "blocks = [ctypes.create_string_buffer(64 << 10) for _ in range(2000)]\n"
        "last = blocks[-1]; del blocks\n"
        "before = rss(); ok = allocator.trim(); after = rss()\n"
        "print(ok, before - after)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "True" and int(out[1]) >= 100, out


def test_every_stage_ends_with_a_trim_failed_or_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from meterlake import allocator, pipeline
    from meterlake.settings import Settings
    from meterlake.stages import StageError

    trims: list[bool] = []

    def trim() -> bool:
        trims.append(True)
        return True

    monkeypatch.setattr(allocator, "trim", trim)
    settings = Settings(landing=tmp_path / "landing", lake=tmp_path / "lake")
    (tmp_path / "landing").mkdir()

    def boom(ctx: object, dates: object) -> object:
        raise StageError("boom")

    monkeypatch.setitem(pipeline.RUNNERS, "billing", boom)
    with pytest.raises(StageError):
        pipeline.run_stage(settings, "billing", [], "t1")
    assert trims == [True]
