"""The county benchmark's host probe: a fixed workload timed in a fresh process."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _county_day():
    spec = importlib.util.spec_from_file_location("county_day", ROOT / "benchmarks" / "county_day.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_host_probe_times_its_workload_in_milliseconds() -> None:
    ms = _county_day().host_probe()
    # a sort of 2M floats, a 1M-step loop and 64 MB of fresh pages: tens of ms at least,
    # and far under a minute on any machine that runs the benchmark
    assert isinstance(ms, int) and 10 <= ms < 60_000
