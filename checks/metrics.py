"""Per-partition quality metrics, computed in polars (the row-heavy half of the gate).

Great Expectations is slow on row checks over large frames (measured on GX 1.x: 18 s for a
compound-uniqueness check on 20M rows against 2 s in polars), so every table is first
reduced here to a *metrics frame*: one row per partition, one column per metric
(row count, key duplicates, null keys, rows breaking a rule, shares, extremes). GX
then judges that small frame (see :mod:`meterlake.checks.runner`).

Nothing here opens a file: the stage reads the lake and hands in lazy frames, Parquet
schemas and footers.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

#: the column of a metrics frame naming the partition, e.g. ``date=2026-01-31``
PARTITION = "partition"
#: columns that must never appear in any table: card numbers in clear (CONTRACT.md §1)
PII_COLUMNS = frozenset({"card_no", "卡号"})
#: metrics every table gets, whatever its suite
BASE_METRICS = ("present", "unreadable", "rows", "missing_columns", "wrong_types", "pii_columns")


@dataclass(frozen=True)
class Metric:
    """One aggregate over a partition's rows; ``expr`` must reduce to one value."""

    name: str
    expr: pl.Expr
    description: str


@dataclass(frozen=True)
class FooterMetric:
    """A metric read from Parquet footer statistics instead of the rows.

    Wide tables (the 96 curve slots) would cost a full decode for a min or a null
    count that the writer already stored per row group (``statistics=True`` in
    :mod:`meterlake.lake`). ``kind`` is ``min`` (smallest value of any column),
    ``max`` or ``null_share`` (null values over rows x columns).
    """

    name: str
    columns: tuple[str, ...]
    kind: str
    description: str

    def __post_init__(self) -> None:
        if self.kind not in ("min", "max", "null_share"):
            raise ValueError(f"footer metric {self.name}: kind {self.kind!r} is not min, max or null_share")


# -- building blocks for suites ------------------------------------------------------


def count(condition: pl.Expr) -> pl.Expr:
    """Rows where ``condition`` holds (a null condition does not count)."""
    return condition.fill_null(False).cast(pl.Int64).sum()


def share(condition: pl.Expr) -> pl.Expr:
    """Share of rows where ``condition`` holds; null on an empty partition."""
    return pl.when(pl.len() > 0).then(count(condition) / pl.len()).otherwise(None)


def key_duplicates(columns: Sequence[str]) -> pl.Expr:
    """Rows beyond the first of each key value (0 when the key is unique)."""
    if len(columns) == 1:
        distinct = pl.col(columns[0]).n_unique()
    else:
        distinct = pl.struct(list(columns)).n_unique()
    return (pl.len() - distinct).cast(pl.Int64)


def nulls(columns: Iterable[str]) -> pl.Expr:
    """Rows with a null in any of ``columns``."""
    return count(pl.any_horizontal([pl.col(c).is_null() for c in columns]))


def not_in(column: str, codes: Iterable[str]) -> pl.Expr:
    """Non-null values outside the code list."""
    return count(pl.col(column).is_not_null() & ~pl.col(column).is_in(list(codes)))


def num(column: str) -> pl.Expr:
    """A column as Float64 (an integer column compares like a float)."""
    return pl.col(column).cast(pl.Float64, strict=False)


# -- schema-level metrics -----------------------------------------------------------

_KINDS: tuple[tuple[str, tuple[type[pl.DataType], ...]], ...] = (
    (
        "number",
        (
            pl.Float32,
            pl.Float64,
            pl.Int8,
            pl.Int16,
            pl.Int32,
            pl.Int64,
            pl.UInt8,
            pl.UInt16,
            pl.UInt32,
            pl.UInt64,
            pl.Decimal,
        ),
    ),
    ("string", (pl.String, pl.Categorical, pl.Enum)),
    ("date", (pl.Date,)),
    ("datetime", (pl.Datetime,)),
    ("bool", (pl.Boolean,)),
    ("list", (pl.List, pl.Array)),
)


@functools.cache
def dtype_kind(dtype: pl.DataType) -> str:
    """A coarse kind of a dtype: number, string, date, datetime, bool, list or other.

    Cached: the gate asks it for every contract column of every partition (tens of
    thousands of times a run), and a dtype's class tests cost ~50 us each time.
    """
    for kind, classes in _KINDS:
        if isinstance(dtype, classes) or dtype in classes:
            return kind
    if dtype == pl.Null:
        return "null"
    return "other"


def schema_metrics(found: Mapping[str, pl.DataType], contract: Mapping[str, pl.DataType]) -> dict[str, Any]:
    """Compare a file's schema with the contract columns it must carry.

    ``missing_columns`` counts contract columns the file lacks, ``wrong_types``
    contract columns of another kind (a number stored as text), ``pii_columns``
    columns that would publish a card number. The ``*_list`` entries are evidence.

    >>> schema_metrics({"kwh": pl.String(), "card_no": pl.String()},
    ...                {"kwh": pl.Float64(), "meter_id": pl.String()})["missing_list"]
    ['meter_id']
    """
    missing = [c for c in contract if c not in found]
    wrong = [
        f"{c}: expected {dtype_kind(t)}, found {found[c]}"
        for c, t in contract.items()
        if c in found and dtype_kind(found[c]) not in (dtype_kind(t), "null")
    ]
    pii = sorted(c for c in found if c in PII_COLUMNS)
    return {
        "missing_columns": len(missing),
        "wrong_types": len(wrong),
        "pii_columns": len(pii),
        "missing_list": missing,
        "wrong_list": wrong,
        "pii_list": pii,
    }


def conform_for_metrics(
    frame: pl.LazyFrame, found: Mapping[str, pl.DataType], contract: Mapping[str, pl.DataType]
) -> pl.LazyFrame:
    """Add the contract columns a file lacks as typed nulls, so metrics still evaluate.

    The lack itself is reported by :func:`schema_metrics`.
    """
    absent = [pl.lit(None, dtype=t).alias(c) for c, t in contract.items() if c not in found]
    return frame.with_columns(absent) if absent else frame


# -- the metrics frame ----------------------------------------------------------------


def partition_metrics(frame: pl.LazyFrame, metrics: Sequence[Metric]) -> pl.LazyFrame:
    """One row per ``partition`` value: ``rows`` and every metric of the suite."""
    return frame.group_by(PARTITION).agg(
        pl.len().cast(pl.Int64).alias("rows"), *(m.expr.alias(m.name) for m in metrics)
    )


def footer_metrics(footers: Sequence[Any], specs: Sequence[FooterMetric]) -> dict[str, float | None]:
    """Evaluate footer metrics over the Parquet footers (``pyarrow.parquet.FileMetaData``)
    of one partition. A column without statistics makes its metric null (unknown),
    never zero.
    """
    out: dict[str, float | None] = {}
    for spec in specs:
        wanted = set(spec.columns)
        values: list[float] = []
        null_count = 0
        rows = 0
        known = True
        for md in footers:
            rows += md.num_rows
            for g in range(md.num_row_groups):
                rg = md.row_group(g)
                for j in range(rg.num_columns):
                    col = rg.column(j)
                    if col.path_in_schema not in wanted:
                        continue
                    st = col.statistics
                    if st is None:
                        known = False
                        continue
                    if spec.kind == "null_share":
                        if st.null_count is None:
                            known = False
                        else:
                            null_count += st.null_count
                    elif st.has_min_max:
                        values.append(float(st.min if spec.kind == "min" else st.max))
                    elif st.null_count != rg.num_rows:
                        known = False  # values present but no min/max stored
        seen = {md.schema.column(i).path for md in footers for i in range(len(md.schema))}
        absent = wanted - seen
        if not known:
            out[spec.name] = None
        elif spec.kind == "null_share":
            cells = rows * len(wanted)
            # an absent column is wholly missing
            out[spec.name] = (null_count + rows * len(absent)) / cells if cells else None
        elif values:
            out[spec.name] = min(values) if spec.kind == "min" else max(values)
        else:
            out[spec.name] = None
    return out
