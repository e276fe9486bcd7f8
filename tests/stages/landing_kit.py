"""Helpers the ingest stage tests share: put a landing file, run the ingest stage, read what it wrote.

Not a test module (pytest collects ``test_*.py`` only); the tests of this folder import it
by name (pytest puts their folder on ``sys.path``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from meterlake import pipeline
from meterlake.lake import Lake
from meterlake.schemas import LANDINGS
from meterlake.settings import Settings

D1 = dt.date(2026, 1, 1)


def put(landing: Path, rel: str, text: str, when: str) -> Path:
    """Write ``text`` (UTF-8) to ``landing/rel``, delivered (its mtime) at ``when`` (UTC)."""
    path = landing / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    ts = dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC).timestamp()
    os.utime(path, (ts, ts))
    return path


def ingest(landing: Path, lake: Path, run_id: str, dates: Sequence[dt.date] = (D1,)) -> pipeline.StageResult:
    return pipeline.run_stage(
        Settings(landing=landing, lake=lake), "ingest", list(dates), run_id, progress=lambda _m: None
    )


def registers(lake: Path, day: dt.date = D1) -> pl.DataFrame:
    return Lake(lake).scan(LANDINGS["registers"].clean, [day]).collect()


def quarantine(lake: Path) -> pl.DataFrame:
    files = sorted((lake / "marts" / "quarantine").rglob("*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files]) if files else pl.DataFrame()


def tree_digest(lake: Path) -> dict[str, str]:
    """SHA-256 of every Parquet file of the clean tables and the marts, by path in the lake."""
    return {
        p.relative_to(lake).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for layer in ("clean", "marts")
        for p in sorted((lake / layer).rglob("*.parquet"))
    }
