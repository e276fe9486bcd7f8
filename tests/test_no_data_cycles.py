"""No reference cycle holds a stage's data: what a run lets go is freed at once.

Data held in a cycle (an exception kept with its traceback, whose frames hold the rows
their functions read) waits for the garbage collector's next full pass, which the run
makes rarer (:data:`meterlake.pipeline.GC_FIRST_THRESHOLD`): a county day's ingest held
~145 MB of parsed rows that way. Here a small run, every stage, goes with the collector
off; what it then finds is only garbage it left.
"""

from __future__ import annotations

import datetime as dt
import gc
import types
from pathlib import Path

import numpy as np
import polars as pl

from meterlake import pipeline
from meterlake.generate import generate
from meterlake.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
START, DAYS = dt.date(2026, 1, 30), 3


def test_a_run_leaves_no_cycle_holding_its_data(tmp_path: Path) -> None:
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    generate(landing, meters=300, days=DAYS, start=START, seed=5)
    settings = Settings(landing=landing, lake=lake, pii_key="k", config_dir=None, pg_dsn=None, progress=False)
    gc.collect()
    gc.disable()
    try:
        record = pipeline.run(settings, START, START + dt.timedelta(days=DAYS - 1), progress=lambda _m: None)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        garbage = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert record["status"] == "ok"
    data = [type(o).__name__ for o in garbage if isinstance(o, pl.DataFrame | pl.Series | pl.LazyFrame | np.ndarray)]
    ours = sorted(
        f"{Path(o.f_code.co_filename).name}:{o.f_code.co_name}"
        for o in garbage
        if isinstance(o, types.FrameType) and Path(o.f_code.co_filename).is_relative_to(ROOT)
    )
    assert not data, f"data in reference cycles: {data}"
    assert not ours, f"the project's frames in reference cycles: {ours}"


def test_the_run_collects_less_often_and_restores_the_threshold() -> None:
    before = gc.get_threshold()
    with pipeline.fewer_collections():
        assert gc.get_threshold() == (max(before[0], pipeline.GC_FIRST_THRESHOLD), *before[1:])
    assert gc.get_threshold() == before
