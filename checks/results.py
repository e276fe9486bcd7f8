"""check_results: what the quality gate found, one row per table, partition and rule.

Kept under ``LAKE/_meta/check_results/run_id=<run>/`` beside the run records (it is a
log of runs, not a mart: a rerun writes a new partition). The Data Docs under
``LAKE/reports/data_docs/`` render the same results for people.
"""

import polars as pl

from meterlake.schemas._base import Column, Table

SEVERITIES = ("blocking", "warning")

CHECK_RESULTS = Table(
    name="check_results",
    zh="数据质量校验结果",
    description="one row per checked table, partition and rule: the gate's verdict with its evidence",
    columns=(
        Column("run_id", pl.String(), "the pipeline run (partition key)", "运行编号"),
        Column("table", pl.String(), "checked table", "表名", nullable=False),
        Column("layer", pl.String(), "clean or marts", "层"),
        Column("partition", pl.String(), "checked partition, e.g. date=2026-01-31", "分区", nullable=False),
        Column("suite", pl.String(), "Great Expectations suite", "校验套件"),
        Column("rule", pl.String(), "dotted rule name, e.g. meter_daily.key.unique", "规则", nullable=False),
        Column("severity", pl.String(), "blocking (stops the run) or warning", "严重程度", codes=SEVERITIES),
        Column("success", pl.Boolean(), "the partition passed the rule", "是否通过", nullable=False),
        Column("metric", pl.String(), "metrics-frame column (or table column, for row-level rules) checked", "指标"),
        Column("observed", pl.Float64(), "the metric's value, or the number of offending rows", "观测值"),
        Column("expected", pl.String(), "the bound the value must keep, in words", "期望"),
        Column("expectation", pl.String(), "Great Expectations expectation type", "期望类型"),
        Column("description", pl.String(), "what the rule asks, in words", "说明"),
        Column("evidence", pl.String(), "JSON: the failing value, offending rows (first 20) or the exception", "证据"),
    ),
    key=("run_id", "table", "partition", "rule"),
    partition_by="run_id",
    layer="_meta",
)
