"""meterlake sets the options of polars' allocator before polars loads (meterlake.allocator)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

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
