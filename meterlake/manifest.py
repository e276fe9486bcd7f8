"""The lake's record of the landing files it has seen: the manifest (one entry per file
version: its digest, status, rows read, staged and quarantined), the ledger (per source
file, the rows of each rebuild's outcomes) and the row accounting built from the two.

The ingest stage writes them; the run summary, ``meterlake status`` and the audit read
them, and so import this module, not the stage.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from .lake import Lake

MANIFEST_SCHEMA = pl.Schema(
    {
        "file_id": pl.String(),  # sha256 of the file's bytes
        "dataset": pl.String(),
        "source_file": pl.String(),
        "size_bytes": pl.Int64(),
        "mtime_ns": pl.Int64(),
        "delivered_at": pl.Datetime("us"),
        "status": pl.String(),  # ingested | duplicate_file | unreadable
        "duplicate_of": pl.String(),
        "encoding": pl.String(),
        "rows_read": pl.Int64(),
        "rows_staged": pl.Int64(),
        "rows_quarantined": pl.Int64(),
        "dates": pl.List(pl.Date()),
        "problems": pl.List(pl.String()),
        "run_id": pl.String(),
    }
)

LEDGER_SCHEMA = pl.Schema(
    {
        "source_file": pl.String(),
        "clean": pl.Int64(),
        "duplicate": pl.Int64(),
        "superseded": pl.Int64(),
        "unknown_meter": pl.Int64(),
    }
)


def read_manifest(lake: Lake) -> pl.DataFrame:
    return read_entries(lake.meta / "manifest.parquet")


def write_manifest(lake: Lake, manifest: pl.DataFrame) -> None:
    lake.write_file(lake.meta / "manifest.parquet", manifest.sort("dataset", "source_file", "file_id"))


def read_entries(path: Path) -> pl.DataFrame:
    if path.exists():
        return pl.read_parquet(path)
    return pl.DataFrame(schema=MANIFEST_SCHEMA)


def accounting(lake: Lake, manifest: pl.DataFrame) -> pl.DataFrame:
    """Per landing file: rows read = clean + quarantined + duplicate (all runs so far).

    A path delivered more than once (touched, or rewritten with new content) has one
    manifest entry per version; its rows carry the same ``source_file``, so the versions
    are added up per path. ``status`` is that of the latest version.
    """
    ledger_files = sorted((lake.meta / "ledger").glob("*/date=*.parquet"))
    if ledger_files:
        ledger = (
            pl.read_parquet(ledger_files)  # one read of them all: a file at a time costs 10x as much
            .group_by("source_file")
            .agg(pl.col("clean", "duplicate", "superseded", "unknown_meter").sum())
        )
    else:
        ledger = pl.DataFrame(schema=LEDGER_SCHEMA)
    versions = (
        manifest.sort("delivered_at", "mtime_ns")
        .group_by("dataset", "source_file")
        .agg(
            pl.col("status").last(),
            pl.col("rows_read").sum().alias("read"),
            pl.col("rows_quarantined").sum(),
            # a resent file's rows were all duplicates of its twin's
            pl.col("rows_read").filter(pl.col("status") == "duplicate_file").sum().alias("resent"),
        )
    )
    return (
        versions.join(ledger, on="source_file", how="left")
        .with_columns(pl.col("clean", "duplicate", "superseded", "unknown_meter").fill_null(0))
        .select(
            "dataset",
            "source_file",
            "status",
            "read",
            "clean",
            (pl.col("rows_quarantined") + pl.col("superseded") + pl.col("unknown_meter")).alias("quarantined"),
            (pl.col("duplicate") + pl.col("resent")).alias("duplicate"),
        )
        .with_columns(
            (pl.col("read") - pl.col("clean") - pl.col("quarantined") - pl.col("duplicate")).alias("unaccounted")
        )
        .sort("dataset", "source_file")
    )
