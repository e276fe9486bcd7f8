"""Reading lake partitions as published tables see them.

A partition is a Hive directory ``<key>=<value>`` holding one or more Parquet files:
most stages write a single ``part-0.parquet``, ingest writes the quarantine mart as
one file per landing file or rebuilt date (``dataset=curves/file-<id>.parquet``).
Everything here reads *all* Parquet files of a partition, as DuckDB's
``read_parquet('.../**/*.parquet')`` does, so the two reporting databases agree.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from ..lake import Lake
from ..schemas import Table


def partition_dirs(lake: Lake, table: Table) -> dict[str, Path]:
    """Partition value -> its directory, for partitions holding at least one Parquet file."""
    base = lake.table_dir(table)
    key = table.partition_by
    if key is None or not base.is_dir():
        return {}
    prefix = f"{key}="
    return {
        p.name[len(prefix) :]: p
        for p in sorted(base.iterdir())
        if p.is_dir() and p.name.startswith(prefix) and any(p.glob("*.parquet"))
    }


def typed_value(table: Table, value: str) -> object:
    """The partition value of a directory name, typed like its column (a date for date=...)."""
    assert table.partition_by is not None
    dtype = table.schema[table.partition_by] if table.partition_by in table.schema else pl.String()
    if dtype.base_type() is pl.Date:
        return dt.date.fromisoformat(value)  # polars 2 no longer casts str -> date
    return pl.Series([value], dtype=pl.String).cast(dtype).item()


def read_partition(lake: Lake, table: Table, value: str | None) -> pl.DataFrame:
    """One partition (``value`` None: an unpartitioned table) as the contract's columns.

    Every Parquet file of the partition is read; columns the contract added after a
    file was written read as null; the partition column comes from the directory
    name. An absent partition has no rows.
    """
    if value is None:
        files = sorted(lake.table_dir(table).glob("*.parquet"))
    else:
        files = sorted((lake.table_dir(table) / f"{table.partition_by}={value}").glob("*.parquet"))
    if not files:
        return pl.DataFrame(schema=table.schema)
    frame = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
    if table.partition_by is not None:
        frame = frame.with_columns(pl.lit(typed_value(table, value)).alias(table.partition_by))  # type: ignore[arg-type]
    missing = [c for c in table.names if c not in frame.columns]
    frame = frame.with_columns(pl.lit(None).alias(c) for c in missing)
    return frame.select(pl.col(c.name).cast(c.dtype) for c in table.columns)
