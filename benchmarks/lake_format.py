"""Hive Parquet (one file per partition, os.replace) against Delta Lake on the local filesystem.

What a unit's daily run does to a table: add a day's partition, replace a day's partition
(a late file rebuilds it), read one day back. The table is a county unit's curves: 60,000
meters x 96 slots a day. Delta Lake (``deltalake``) commits a replace as an overwrite by
predicate in its transaction log; the Hive layout writes a staged file, fsyncs it and
renames it over the old one.

    pip install 'deltalake==1.6.6'        # not a meterlake dependency
    python benchmarks/lake_format.py [--meters 60000] [--days 5] [--repeat 3]

Prints one JSON line per measurement (median of ``--repeat`` fresh tables, seconds).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from meterlake.lake import COMPRESSION, ROW_GROUP_SIZE, Lake


def day_frame(meters: int, day: dt.date, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    slots = {f"p{i}": np.round(rng.gamma(2.0, 0.05, meters), 4) for i in range(1, 97)}
    ids = pl.Series("meter_id", np.arange(meters) + 10**9).cast(pl.String).str.zfill(13)
    return pl.DataFrame({"meter_id": ids, **slots}).with_columns(pl.lit(day).alias("data_date"))


def hive(base: Path, frames: list[pl.DataFrame], late: pl.DataFrame) -> dict[str, float]:
    lake = Lake(base)

    def write(frame: pl.DataFrame) -> None:
        day = frame["data_date"][0]
        lake.write_file(base / "curves" / f"data_date={day}" / "part-0.parquet", frame.drop("data_date"))

    def add() -> None:
        for f in frames:
            write(f)

    return _measure(
        add,
        lambda: write(late),
        lambda: (
            pl.scan_parquet(base / "curves" / "**" / "*.parquet", hive_partitioning=True)
            .filter(pl.col("data_date") == late["data_date"][0])
            .collect()
        ),
        base,
    )


def delta(base: Path, frames: list[pl.DataFrame], late: pl.DataFrame) -> dict[str, float]:
    # not a meterlake dependency: imported by name so that the type check does not need it
    deltalake = importlib.import_module("deltalake")
    write_deltalake, WriterProperties = deltalake.write_deltalake, deltalake.WriterProperties

    uri = str(base / "curves")
    # the same compression and row groups as the Hive files
    props = WriterProperties(compression=COMPRESSION.upper(), max_row_group_size=ROW_GROUP_SIZE)

    def write(frame: pl.DataFrame, replace: bool) -> None:
        day = frame["data_date"][0]
        table = frame.to_arrow()
        if replace:
            write_deltalake(
                uri,
                table,
                mode="overwrite",
                predicate=f"data_date = '{day}'",
                partition_by=["data_date"],
                writer_properties=props,
            )
        else:
            write_deltalake(uri, table, mode="append", partition_by=["data_date"], writer_properties=props)

    def add() -> None:
        for f in frames:
            write(f, replace=False)

    return _measure(
        add,
        lambda: write(late, replace=True),
        lambda: pl.scan_delta(uri).filter(pl.col("data_date") == late["data_date"][0]).collect(),
        base,
    )


def _measure(
    add: Callable[[], object], replace: Callable[[], object], read: Callable[[], pl.DataFrame], base: Path
) -> dict[str, float]:
    t0 = time.perf_counter()
    add()
    t1 = time.perf_counter()
    replace()
    t2 = time.perf_counter()
    rows = read().height
    t3 = time.perf_counter()
    size = sum(p.stat().st_size for p in base.rglob("*") if p.is_file())
    files = sum(1 for p in base.rglob("*") if p.is_file())
    return {
        "add_day_s": (t1 - t0) / 1,
        "replace_day_s": t2 - t1,
        "read_day_s": t3 - t2,
        "rows_read": rows,
        "bytes": size,
        "files": files,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meters", type=int, default=60_000)
    ap.add_argument("--days", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    start = dt.date(2026, 1, 1)
    frames = [day_frame(args.meters, start + dt.timedelta(days=i), i) for i in range(args.days)]
    late = day_frame(args.meters, start + dt.timedelta(days=args.days // 2), 99)
    for name, fn in (("hive_parquet", hive), ("delta_lake", delta)):
        runs = []
        for _ in range(args.repeat):
            base = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
            try:
                runs.append(fn(base, frames, late))
            finally:
                shutil.rmtree(base, ignore_errors=True)
        out = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        out["add_day_s"] /= args.days
        print(json.dumps({"format": name, "meters": args.meters, "days": args.days, **out}))


if __name__ == "__main__":
    main()
