"""meterlake sets the options of polars' allocator before polars loads (meterlake.allocator)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from meterlake import allocator

PROBE = """
import json, os, sys
{before}
import meterlake, polars
from meterlake import allocator
print(json.dumps({{"conf": polars.jemalloc_conf, "env": os.environ.get("_RJEM_MALLOC_CONF"),
                   "configured": allocator.configure()}}))
"""


def probe(before: str = "", env: dict[str, str] | None = None) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if k != allocator.VARIABLE}
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(before=before)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **(env or {})},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def test_polars_loads_with_the_options_after_its_own_defaults() -> None:
    got = probe()
    conf = str(got["conf"])
    # polars' defaults first, then ours: jemalloc takes the last value of each option
    assert conf.endswith("," + allocator.OPTIONS)
    assert conf.split(",")[-1] == "muzzy_decay_ms:0"
    assert "dirty_decay_ms:200" in conf.split(",")[-3:]
    assert got["configured"] is True


def test_a_deployment_s_own_options_come_last_and_win() -> None:
    got = probe(env={allocator.VARIABLE: "dirty_decay_ms:1000"})
    conf = str(got["conf"])
    assert conf.endswith(allocator.OPTIONS + ",dirty_decay_ms:1000")


def test_options_are_not_repeated_in_a_child_process() -> None:
    # a child inherits the variable polars wrote: importing meterlake again adds nothing
    first = str(probe()["env"])
    again = str(probe(env={allocator.VARIABLE: first})["env"])
    assert again.count(allocator.OPTIONS) == first.count(allocator.OPTIONS) == 1


def test_nothing_is_changed_when_polars_was_imported_first() -> None:
    got = probe(before="import polars")
    assert allocator.OPTIONS not in str(got["conf"])
    assert allocator.OPTIONS not in str(got["env"])
    assert got["configured"] is False
