"""Outage notices (停电计划): planned and temporary outages announced to customers (v2, optional).

``LANDING/outage_plans/`` holds one row per notice. A later delivery of the same
``plan_id`` revises it (the earlier row goes to quarantine as ``superseded``). Rows are
quarantined when the planned end is not after the planned start (``end_before_start``),
when the notice was published after the planned start (``notice_after_start``), or when
the feeder or area is not in the archive valid on the planned start date
(``unknown_feeder``, ``unknown_area``). The partition is the planned start's local date;
a revision that moves a plan to another date supersedes its rows in the old date's
partition too (quarantined there as ``superseded``), so a plan is only where its latest
delivery says.
"""

from __future__ import annotations

import polars as pl

from .landing import Field, Landing, clean_table

KINDS = ("planned", "temporary")

FIELDS = (
    Field("plan_id", "停电计划编号", "string", "outage plan number; a later delivery revises the plan", not_null=True),
    Field("kind", "停电类型", "code", "planned (计划停电) or temporary (临时停电)", codes=KINDS, not_null=True),
    Field("feeder_id", "线路编号", "string", "10 kV feeder the outage is on", not_null=True),
    Field("area_id", "台区编号", "string", "transformer area; empty = the whole feeder", required=False),
    Field("planned_start", "计划停电开始时间", "timestamp", "planned start, local time", not_null=True),
    Field("planned_end", "计划停电结束时间", "timestamp", "planned end, local time", not_null=True),
    Field("notice_time", "通知发布时间", "timestamp", "when customers were told, local time", not_null=True),
)


def row_rules(typed: dict[str, pl.Expr]) -> list[tuple[pl.Expr, str, pl.Expr]]:
    """Checks across fields of one row: (condition, reason code, detail)."""
    start, end, notice = typed["planned_start"], typed["planned_end"], typed["notice_time"]
    return [
        (
            end <= start,
            "end_before_start",
            pl.format("planned_end {} is not after planned_start {}", pl.col("planned_end"), pl.col("planned_start")),
        ),
        (
            notice > start,
            "notice_after_start",
            pl.format("notice_time {} is after planned_start {}", pl.col("notice_time"), pl.col("planned_start")),
        ),
    ]


def split_known(rows: pl.DataFrame, archive: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Plans whose feeder (and area, when given) the valid archive knows, and the others
    with ``_reason``/``_detail`` (unknown_feeder, unknown_area)."""
    feeders = archive.select("feeder_id").drop_nulls().unique()
    areas = archive.select("area_id").drop_nulls().unique().with_columns(pl.lit(True).alias("_area_known"))
    tagged = (
        rows.with_columns(pl.col("feeder_id").is_in(feeders["feeder_id"].implode()).alias("_feeder_known"))
        .join(areas, on="area_id", how="left")
        .with_columns(
            pl.when(~pl.col("_feeder_known"))
            .then(pl.lit("unknown_feeder"))
            .when(pl.col("area_id").is_not_null() & pl.col("_area_known").is_null())
            .then(pl.lit("unknown_area"))
            .alias("_reason")
        )
        .with_columns(
            pl.when(pl.col("_reason") == "unknown_feeder")
            .then(pl.format("feeder_id '{}' is not in the archive valid on that date", "feeder_id"))
            .otherwise(pl.format("area_id '{}' is not in the archive valid on that date", "area_id"))
            .alias("_detail")
        )
        .drop("_feeder_known", "_area_known")
    )
    known = tagged.filter(pl.col("_reason").is_null()).drop("_reason", "_detail")
    return known, tagged.filter(pl.col("_reason").is_not_null())


LANDING = Landing(
    dataset="outage_plans",
    zh="停电计划",
    fields=FIELDS,
    key=("plan_id",),
    date_field="planned_date",
    clean=clean_table(
        "outage_plans",
        "停电计划",
        "planned and temporary outage notices, one row per plan (latest revision)",
        FIELDS,
        ("plan_id",),
        "planned_date",
    ),
    row_rules=row_rules,
    split_known=split_known,
    split_known_columns=("feeder_id", "area_id"),
)
