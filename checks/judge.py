"""Judge every rule of the gate in polars: one finding per rule and partition.

A metrics rule holds when the partition's metric lies within the rule's bounds
(inclusive, ``None`` open); a missing value (null or NaN: an absent partition's
metric, a rate over nothing) passes, as it does in Great Expectations' column-value
expectations. A row rule holds when no row of the partition has a value outside its
bounds or set (missing values again pass); its observed value is the count of
offending rows, and up to :data:`EVIDENCE_ROWS` of them are kept as evidence.

The verdicts are vectorised per rule over the partitions (or rows); Great
Expectations then re-checks every finding against its bounds on one combined frame
(see :mod:`meterlake.checks.runner`), which is cheap where 38 per-table validations
were not.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from .descriptions import title
from .metrics import PARTITION
from .results import CHECK_RESULTS
from .suites import RowRule, Rule

#: offending rows kept as evidence per rule and partition
EVIDENCE_ROWS = 20
#: the findings' columns (the check_results contract without run_id)
FINDINGS_SCHEMA = {k: v for k, v in CHECK_RESULTS.schema.items() if k != "run_id"}
#: what the gate's GX validation reads besides the findings: the value judged (a
#: metric, or the count of offending rows), its bounds, and the rule's title
BOUNDS_SCHEMA: dict[str, pl.DataType] = {
    "value": pl.Float64(),
    "min_value": pl.Float64(),
    "max_value": pl.Float64(),
    "check": pl.String(),
}
EXPECTATION = {"between": "expect_column_values_to_be_between", "in_set": "expect_column_values_to_be_in_set"}


def _within(value: pl.Expr, low: float | None, high: float | None) -> pl.Expr:
    ok = pl.lit(True)
    if low is not None:
        ok = ok & (value >= low)
    if high is not None:
        ok = ok & (value <= high)
    return ok


def _missing(value: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    return value.is_null() | value.is_nan() if dtype.is_float() else value.is_null()


def _extra_evidence(evidence: dict[str, dict[str, Any]]) -> pl.Expr:
    """Per partition, the JSON members its evidence adds after the metric (missing
    columns, an error), with a leading comma; empty for most partitions."""
    tails = {part: ", " + json.dumps(ev, ensure_ascii=False, default=str)[1:-1] for part, ev in evidence.items() if ev}
    if not tails:
        return pl.lit("")
    return pl.col(PARTITION).replace_strict(tails, default="", return_dtype=pl.String)


def _constants(
    table: str, layer: str, suite: str, rule: Rule | RowRule, metric: str, expectation: str
) -> list[pl.Expr]:
    """The columns a rule's findings share."""
    return [
        pl.lit(table).alias("table"),
        pl.lit(layer).alias("layer"),
        pl.col(PARTITION).alias("partition"),
        pl.lit(suite).alias("suite"),
        pl.lit(rule.rule).alias("rule"),
        pl.lit(rule.severity).alias("severity"),
        pl.lit(metric).alias("metric"),
        pl.lit(rule.expected).alias("expected"),
        pl.lit(expectation).alias("expectation"),
        pl.lit(rule.description).alias("description"),
        pl.lit(title(rule.rule, rule.description)).alias("check"),
    ]


def metric_findings(
    metrics: pl.DataFrame, rules: tuple[Rule, ...], table: str, layer: str, suite: str, evidence: dict[str, dict]
) -> pl.DataFrame:
    """One finding per rule and partition of ``metrics`` (one row per partition)."""
    extra = _extra_evidence(evidence)
    frames = []
    for rule in rules:  # a handful per table; each is one vectorised pass over the partitions
        dtype = metrics.schema[rule.metric]
        raw = pl.col(rule.metric)
        value = raw.cast(pl.Float64)
        numeric = dtype.is_numeric()
        finite = value.is_finite() if numeric else pl.lit(False)
        text = raw.cast(pl.String) if numeric else pl.lit(None, pl.String)
        frames.append(
            metrics.select(
                *_constants(table, layer, suite, rule, rule.metric, EXPECTATION["between"]),
                (_missing(value, pl.Float64()) | _within(value, rule.min_value, rule.max_value)).alias("success"),
                pl.when(finite).then(value).alias("observed"),
                pl.concat_str(
                    pl.lit(f'{{"metric": {json.dumps(rule.metric)}, "value": '),
                    pl.when(finite).then(text).otherwise(pl.lit("null")),
                    extra,
                    pl.lit("}"),
                ).alias("evidence"),
                value.alias("value"),
                pl.lit(rule.min_value, pl.Float64).alias("min_value"),
                pl.lit(rule.max_value, pl.Float64).alias("max_value"),
            )
        )
    return _frame(frames)


def _offending(rule: RowRule, dtype: pl.DataType) -> pl.Expr:
    value = pl.col(rule.column)
    if rule.kind == "in_set":
        inside = value.is_in(pl.Series(list(rule.value_set)).cast(dtype))
    else:
        inside = _within(value, rule.min_value, rule.max_value)
    return ~_missing(value, dtype) & ~inside


def _row_evidence(rows: pl.DataFrame, column: str, index: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    """The first offending rows of each partition, as JSON-able dicts (column first)."""
    kept = rows.group_by(PARTITION, maintain_order=True).head(EVIDENCE_ROWS)
    out: dict[str, list[dict[str, Any]]] = {}
    for row in kept.select(PARTITION, column, *index).to_dicts():  # evidence of failures only, bounded
        out.setdefault(row.pop(PARTITION), []).append(row)
    return out


def row_findings(
    metrics: pl.DataFrame,
    rows: pl.DataFrame,
    rules: tuple[RowRule, ...],
    index: tuple[str, ...],
    table: str,
    layer: str,
    suite: str,
) -> pl.DataFrame:
    """One finding per row rule and partition of ``metrics``, judged on ``rows``."""
    partitions = metrics.select(pl.col(PARTITION).unique().sort())
    frames = []
    for rule in rules:
        bad = rows.filter(_offending(rule, rows.schema[rule.column]))
        counts = bad.group_by(PARTITION).len("n")
        shown = _row_evidence(bad, rule.column, tuple(c for c in index if c != rule.column))
        lists = {p: json.dumps(v, ensure_ascii=False, default=str) for p, v in shown.items()}
        listed = (
            pl.col(PARTITION).replace_strict(lists, default="[]", return_dtype=pl.String) if lists else pl.lit("[]")
        )
        n = pl.col("n").fill_null(0)
        frames.append(
            partitions.join(counts, on=PARTITION, how="left").select(
                *_constants(table, layer, suite, rule, rule.column, EXPECTATION[rule.kind]),
                (n == 0).alias("success"),
                n.cast(pl.Float64).alias("observed"),
                pl.concat_str(
                    pl.lit(f'{{"column": {json.dumps(rule.column)}, "unexpected_count": '),
                    n.cast(pl.String),
                    pl.lit(', "rows": '),
                    listed,
                    pl.lit("}"),
                ).alias("evidence"),
                n.cast(pl.Float64).alias("value"),
                pl.lit(None, pl.Float64).alias("min_value"),
                pl.lit(0.0, pl.Float64).alias("max_value"),
            )
        )
    return _frame(frames)


def empty_findings() -> pl.DataFrame:
    """No findings, with the columns of some."""
    return pl.DataFrame(schema=FINDINGS_SCHEMA | BOUNDS_SCHEMA)


def _frame(frames: list[pl.DataFrame]) -> pl.DataFrame:
    schema = FINDINGS_SCHEMA | BOUNDS_SCHEMA
    if not frames:
        return empty_findings()
    return pl.concat(frames).select(list(schema)).cast(pl.Schema(schema))
