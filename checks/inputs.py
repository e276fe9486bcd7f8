"""Assemble what one table brings to the gate, from partitions the caller has opened.

The stage opens the lake (schemas, lazy scans, Parquet footers) and hands each
partition in as a :class:`PartitionData`; this module only computes, so suites can
be tested on in-memory frames.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from .metrics import PARTITION, conform_for_metrics, footer_metrics, partition_metrics, schema_metrics
from .runner import SuiteInput
from .suites import TableSuite

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")


@dataclass
class PartitionData:
    """One partition as the caller found it."""

    value: str
    #: the partition's rows (None when the partition is absent or unreadable)
    frame: pl.LazyFrame | None = None
    #: the file's schema
    schema: dict[str, pl.DataType] = field(default_factory=dict)
    #: ``pyarrow.parquet.FileMetaData`` of its file(s), for footer metrics
    footers: Sequence[Any] = ()
    #: why it could not be opened
    error: str | None = None


def infer_grain(values: Sequence[str]) -> str:
    """``date`` when partition values are YYYY-MM-DD, ``month`` for YYYY-MM, else ``all``."""
    if values and all(_DATE.match(v) for v in values):
        return "date"
    if values and all(_MONTH.match(v) for v in values):
        return "month"
    return "all"


def wanted_partitions(suite: TableSuite, present: Sequence[str], dates: Sequence[Any]) -> list[str]:
    """The partitions a run must check: its dates (or the months they touch) for dated
    tables, every partition for the others. Absent ones are kept only where the suite
    expects a partition for every date/month (so that their absence is a finding).
    """
    if suite.grain == "date":
        wanted = sorted({d.isoformat() for d in dates})
    elif suite.grain == "month":
        wanted = sorted({d.strftime("%Y-%m") for d in dates})
    else:
        return sorted(present)
    if suite.every_partition:
        return wanted
    have = set(present)
    return [v for v in wanted if v in have]


def _key_value(suite: TableSuite, value: str) -> pl.Expr:
    """The partition value typed as the table's partition column (a Date for dates)."""
    if suite.grain == "date":
        return pl.lit(dt.date.fromisoformat(value), dtype=pl.Date())
    return pl.lit(value, dtype=pl.String())


def _label(suite: TableSuite, value: str) -> str:
    return f"{suite.partition_key}={value}"


def build_input(
    suite: TableSuite, parts: Sequence[PartitionData], row_level_max_rows: int
) -> tuple[SuiteInput, list[str]]:
    """The metrics frame (one row per partition) and, when small enough, the rows for
    the row-level rules. Returns the input and notes for the run record."""
    notes: list[str] = []
    base: list[dict[str, Any]] = []
    evidence: dict[str, dict[str, Any]] = {}
    scans: list[tuple[str, pl.LazyFrame]] = []
    footers: dict[str, dict[str, float | None]] = {}
    for p in parts:
        label = _label(suite, p.value)
        row: dict[str, Any] = {
            PARTITION: label,
            "present": 1,
            "unreadable": 0,
            "rows": None,
            "missing_columns": 0,
            "wrong_types": 0,
            "pii_columns": 0,
        }
        if p.error is not None:
            row["unreadable"] = 1
            evidence[label] = {"error": p.error}
        elif p.frame is None:
            row["present"] = 0
            row["rows"] = 0
        else:
            sm = schema_metrics(p.schema, suite.columns)
            row.update({k: sm[k] for k in ("missing_columns", "wrong_types", "pii_columns")})
            ev = {k: sm[k] for k in ("missing_list", "wrong_list", "pii_list") if sm[k]}
            if ev:
                evidence[label] = ev
            lf = conform_for_metrics(p.frame, p.schema, suite.columns).with_columns(
                _key_value(suite, p.value).alias(suite.partition_key),
                pl.lit(label).alias(PARTITION),
            )
            scans.append((label, lf))
            if suite.footer:
                footers[label] = footer_metrics(p.footers, suite.footer)
        base.append(row)

    metric_names = [m.name for m in suite.metrics]
    agg = _aggregate(suite, scans, evidence)
    frame = pl.DataFrame(
        base,
        schema={
            PARTITION: pl.String,
            "present": pl.Int64,
            "unreadable": pl.Int64,
            "rows": pl.Int64,
            "missing_columns": pl.Int64,
            "wrong_types": pl.Int64,
            "pii_columns": pl.Int64,
        },
        orient="row",
    )
    if agg is not None:
        frame = (
            frame.join(agg.rename({"rows": "_rows"}), on=PARTITION, how="left")
            .with_columns(pl.coalesce("rows", "_rows").alias("rows"))
            .drop("_rows")
        )
    for name in metric_names:
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.Float64).alias(name))
    for spec in suite.footer:
        frame = frame.with_columns(
            pl.col(PARTITION)
            .replace_strict({k: v[spec.name] for k, v in footers.items()}, default=None, return_dtype=pl.Float64)
            .alias(spec.name)
        )
    # a count over no rows (an absent partition) is 0; GX sums the zero-count rules
    zero = sorted({r.metric for r in suite.rules if r.zero})
    frame = frame.with_columns(pl.col(zero).fill_null(0))
    unreadable = {k for k, v in evidence.items() if "error" in v}
    frame = frame.with_columns(
        pl.when(pl.col(PARTITION).is_in(list(unreadable))).then(1).otherwise(pl.col("unreadable")).alias("unreadable")
    )

    rows = None
    if suite.row_rules and scans:
        total = int(frame["rows"].fill_null(0).sum())
        if total > row_level_max_rows:
            notes.append(
                f"{suite.table}: row-level rules skipped, {total} rows in the checked partitions "
                f"(more than row_level_max_rows = {row_level_max_rows}); its metrics are checked"
            )
        else:
            readable = [lf for label, lf in scans if label not in unreadable]
            if readable:
                lf = pl.concat(readable, how="diagonal_relaxed")
                if suite.row_view is not None:
                    lf = suite.row_view(lf)
                cols = [PARTITION, *suite.row_index, *dict.fromkeys(r.column for r in suite.row_rules)]
                try:
                    rows = lf.select(cols).collect()
                except pl.exceptions.PolarsError as exc:
                    notes.append(f"{suite.table}: row-level rules skipped, rows unreadable: {exc}")
    return SuiteInput(suite=suite, metrics=frame.sort(PARTITION), rows=rows, evidence=evidence), notes


def _aggregate(
    suite: TableSuite, scans: list[tuple[str, pl.LazyFrame]], evidence: dict[str, dict[str, Any]]
) -> pl.DataFrame | None:
    """Metrics of all partitions in one pass; a partition whose metrics fail to
    evaluate (a corrupt file, a column of the wrong type) is retried alone and
    marked unreadable with the error as evidence."""
    if not scans:
        return None
    try:
        return partition_metrics(pl.concat([lf for _, lf in scans], how="diagonal_relaxed"), suite.metrics).collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        if len(scans) == 1:
            evidence.setdefault(scans[0][0], {})["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
            return None
    good = []
    for label, lf in scans:
        try:
            good.append(partition_metrics(lf, suite.metrics).collect())
        except (pl.exceptions.PolarsError, OSError) as exc:
            evidence.setdefault(label, {})["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return pl.concat(good, how="diagonal_relaxed") if good else None
