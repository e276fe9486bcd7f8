"""The monthly loss work list (线损治理工单): which areas to work on first, and how. Pure.

:func:`worklist` turns ``area_loss_monthly`` (the month and the months before it) and
the month's ``loss_diagnosis`` rows into ``loss_worklist_monthly`` rows (see
``schemas/loss_worklist_monthly.py`` for kWh at stake, suspect order and actions).
The diagnosis is read by its contract columns only (area_id, date, kind, meter_id,
score, rank, evidence; other_area_id when present), so findings any rule adds to it
reach the list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl
from polars.expr.whenthen import ChainedThen, Then

from meterlake.schemas.loss_diagnosis import KINDS
from meterlake.schemas.loss_worklist_monthly import ACTIONS, LOSS_WORKLIST_MONTHLY

#: the diagnosis columns the list reads
DIAGNOSIS_COLUMNS = ("area_id", "date", "kind", "meter_id", "score", "rank", "evidence", "other_area_id")
#: the area_loss_monthly columns the list reads
MONTHLY_COLUMNS = (
    "month",
    "area_id",
    "feeder_id",
    "area_class",
    "status",
    "reason",
    "supply_kwh",
    "sales_kwh",
    "loss_kwh",
    "loss_rate",
    "band_low",
    "band_high",
)
#: default suspect order per issue: a kind listed first comes first, then by rank
DEFAULT_ORDER: dict[str, tuple[str, ...]] = {
    "high": ("multiplier_suspect", "mapping_suspect", "theft_candidate"),
    "negative": ("multiplier_suspect", "mapping_suspect", "theft_candidate"),
    "uncomputable": ("multiplier_suspect", "mapping_suspect", "theft_candidate"),
}


def _month_index(col: str = "month") -> pl.Expr:
    return pl.col(col).str.slice(0, 4).cast(pl.Int32) * 12 + pl.col(col).str.slice(5, 2).cast(pl.Int32)


def consecutive_months(monthly: pl.DataFrame | pl.LazyFrame, month: str) -> pl.LazyFrame:
    """``area_id, consecutive_months``: how many months in a row up to ``month`` each
    area had its status of ``month`` (a month the lake lacks breaks the run)."""
    lf = monthly.lazy().select("area_id", "month", "status").with_columns(_idx=_month_index())
    current = lf.filter(pl.col("month") == month).select("area_id", pl.col("status").alias("_now"))
    end = int(month[:4]) * 12 + int(month[5:7])
    return (
        lf.filter(pl.col("month") <= month)
        .join(current, on="area_id", how="inner")
        .filter(pl.col("status") == pl.col("_now"))
        .sort("area_id", "_idx", descending=[False, True])
        .with_columns(_pos=pl.int_range(pl.len()).over("area_id"))
        .with_columns(_in_run=(pl.col("_idx") == pl.lit(end) - pl.col("_pos")).cast(pl.Int32))
        .group_by("area_id")
        .agg(consecutive_months=pl.col("_in_run").cum_prod().sum().cast(pl.Int32))
    )


def _kwh_at_stake() -> pl.Expr:
    supply, loss = pl.col("supply_kwh"), pl.col("loss_kwh")
    return (
        pl.when(pl.col("issue") == "high")
        .then(loss - pl.col("band_high") * supply)
        .when(pl.col("issue") == "negative")
        .then(pl.col("band_low") * supply - loss)
        .otherwise(pl.col("band_high") * pl.coalesce(supply, pl.col("sales_kwh")))
        .fill_null(0.0)
        .round(6)
    )


def _action(lang: int) -> pl.Expr:
    def text(key: str) -> pl.Expr:
        return pl.lit(ACTIONS[key][lang])

    first_reason = pl.col("reason").str.split(",").list.first()
    expr: Then | ChainedThen = pl.when(pl.col("issue") == "uncomputable").then(
        first_reason.replace_strict({k: v[lang] for k, v in ACTIONS.items()}, default=None, return_dtype=pl.String)
    )
    for kind in KINDS:
        expr = expr.when(pl.col("suspect_kind") == kind).then(text(kind))
    return expr.when(pl.col("issue") == "high").then(text("high")).otherwise(text("negative"))


def worklist(
    monthly: pl.DataFrame | pl.LazyFrame,
    diagnosis: pl.DataFrame | pl.LazyFrame,
    month: str,
    *,
    suspects: int = 3,
    order: Mapping[str, Sequence[str]] = DEFAULT_ORDER,
) -> pl.DataFrame:
    """loss_worklist_monthly rows of ``month``.

    ``monthly``: area_loss_monthly rows of ``month`` and of the months before it (as
    many as the run of consecutive months should see). ``diagnosis``: loss_diagnosis
    rows (any dates; those of ``month`` are used, the latest window per area).
    """
    cur = (
        monthly.lazy()
        .select(MONTHLY_COLUMNS)
        .filter((pl.col("month") == month) & pl.col("status").is_in(["high", "negative", "uncomputable"]))
        .rename({"status": "issue"})
    )
    diag = diagnosis.lazy()
    names = diag.collect_schema().names()
    diag = diag.select(
        (pl.col(c) if c in names else pl.lit(None, pl.String)).alias(c) for c in DIAGNOSIS_COLUMNS
    ).filter(pl.col("date").cast(pl.String).str.slice(0, 7) == month)
    diag = diag.filter(pl.col("date") == pl.col("date").max().over("area_id"))
    # the balance's weak findings rank the anomalies' tail; they name no area's suspect
    diag = diag.filter(pl.col("evidence").str.json_path_match("$.weak").fill_null("false") != "true")
    kinds_order = {issue: {k: i for i, k in enumerate(kinds)} for issue, kinds in order.items()}
    ranked = (
        diag.join(cur.select("area_id", "issue"), on="area_id", how="inner")
        .with_columns(
            _order=pl.concat_str("issue", pl.lit("|"), "kind").replace_strict(
                {f"{issue}|{k}": i for issue, ks in kinds_order.items() for k, i in ks.items()},
                default=len(KINDS),
                return_dtype=pl.Int32,
            )
        )
        .sort("area_id", "rank", "_order", pl.col("score"), "meter_id", descending=[False, False, False, True, False])
        .with_columns(_pos=pl.int_range(pl.len()).over("area_id"))
        .filter(pl.col("_pos") < suspects)
    )
    item = pl.struct(
        "meter_id", "kind", pl.col("score").round(6), pl.col("rank").cast(pl.Int32), "other_area_id", "evidence"
    ).struct.json_encode()
    top = ranked.group_by("area_id").agg(
        diagnosis_date=pl.col("date").first().cast(pl.Date),
        suspect_kind=pl.col("kind").first(),
        suspect_meter_id=pl.col("meter_id").first(),
        suspect_score=pl.col("score").first().cast(pl.Float64),
        suspect_evidence=pl.col("evidence").first(),
        suspects=pl.format("[{}]", item.str.join(",")),
    )
    out = (
        cur.join(top, on="area_id", how="left")
        .join(consecutive_months(monthly, month), on="area_id", how="left")
        .with_columns(kwh_at_stake=_kwh_at_stake())
        .with_columns(action_zh=_action(0), action_en=_action(1))
        .sort(["kwh_at_stake", "area_id"], descending=[True, False])
        .with_columns(rank=(pl.int_range(pl.len()) + 1).cast(pl.Int32))
    )
    return LOSS_WORKLIST_MONTHLY.conform(out).collect()
