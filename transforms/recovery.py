"""recovery_monthly v2: 电费回收率 over every customer, per area, feeder and supply unit. Pure polars.

See :mod:`meterlake.schemas.recovery_monthly` for the definitions. Post-paid bills are
collected by their due date (:func:`meterlake.transforms.receivables.bill_status_at_due`),
prepay months by :func:`meterlake.transforms.prepay.prepay_collection`.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from meterlake.schemas.recovery_monthly import RECOVERY_MONTHLY

from .prepay import PrepayRules, prepay_collection
from .receivables import RecoveryRules

#: org_id of customers whose archive names no supply unit (CONTRACT v2: one default unit)
DEFAULT_ORG = "default"


def _sum(expr: pl.Expr) -> pl.Expr:
    """A sum of yuan to 1e-9, exact in decimals: the same whatever order the engine adds in.

    (A float sum rounded to 1e-9 is not: at a million yuan the last bit is worth 1e-10.)
    """
    return expr.cast(pl.Decimal(38, 12)).sum().cast(pl.Float64).round(9)


def recovery(
    bills: pl.LazyFrame,
    prepay_month: pl.LazyFrame,
    postpaid_status: pl.LazyFrame,
    scope: pl.LazyFrame,
    month: str,
    due_date: dt.date,
    as_of: dt.date | None,
    prepay_rules: PrepayRules,
    rules: RecoveryRules,
) -> pl.LazyFrame:
    """recovery_monthly rows of consumption month ``month``.

    ``bills``: the month's bills_monthly rows (all customers); ``prepay_month``: its
    prepay_daily days; ``postpaid_status``: :func:`bill_status_at_due` rows (customer_id,
    bill_month, collected_by_due_yuan, unpaid_at_due_yuan); ``scope``: customer_id,
    feeder_id, org_id from the archive; ``as_of``: the last day the lake holds payments
    for (``postpaid_final`` when it reaches the due date).
    """
    c = prepay_collection(bills, prepay_month, prepay_rules)
    post = postpaid_status.filter(pl.col("bill_month") == month).select(
        "customer_id", post_collected="collected_by_due_yuan", post_unpaid="unpaid_at_due_yuan"
    )
    c = (
        c.join(post, on="customer_id", how="left")
        .join(scope, on="customer_id", how="left")
        .with_columns(
            org_id=pl.col("org_id").fill_null(DEFAULT_ORG),
            is_post=~pl.col("is_prepay"),
        )
        .with_columns(
            # a post-paid customer whose bill is held for review has no status: it collects nothing yet
            post_collected=pl.when(pl.col("is_post")).then(pl.col("post_collected").fill_null(0.0)),
            post_unpaid=pl.when(pl.col("is_post")).then(pl.col("post_unpaid")),
        )
        .with_columns(
            # a post-paid bill held for review has no status: not sent out, not in the rate
            in_rate=pl.col("in_rate") | (pl.col("is_post") & pl.col("post_unpaid").is_not_null()),
            collected=pl.coalesce("collected", "post_collected"),
            in_arrears=pl.col("in_arrears") | (pl.col("post_unpaid").fill_null(0.0) > 0.0),
            arrears=pl.col("arrears") + pl.col("post_unpaid").fill_null(0.0),
        )
    )
    aggs = [
        pl.len().cast(pl.Int32).alias("customers_billed"),
        pl.col("billed").pipe(_sum).alias("billed_yuan"),
        pl.col("is_post").sum().cast(pl.Int32).alias("postpaid_customers"),
        pl.col("billed").filter(pl.col("is_post")).pipe(_sum).alias("postpaid_billed_yuan"),
        pl.col("post_collected").fill_null(0.0).pipe(_sum).alias("postpaid_collected_yuan"),
        pl.col("is_prepay").sum().cast(pl.Int32).alias("prepay_customers"),
        pl.col("billed").filter(pl.col("is_prepay")).pipe(_sum).alias("prepay_billed_yuan"),
        pl.col("purchases").fill_null(0.0).pipe(_sum).alias("prepay_purchases_yuan"),
        pl.col("in_arrears").sum().cast(pl.Int32).alias("arrears_customers"),
        pl.col("arrears").pipe(_sum).alias("arrears_yuan"),
        (pl.col("is_prepay") & ~pl.col("has_balance")).sum().cast(pl.Int32).alias("prepay_no_balance_customers"),
        pl.col("collected").fill_null(0.0).pipe(_sum).alias("collected_yuan"),
        pl.col("billed").filter(pl.col("in_rate")).pipe(_sum).alias("rate_base"),
    ]
    with_area = pl.col("area_id").is_not_null()
    areas = (
        c.filter(with_area)
        .group_by("area_id")
        .agg(
            *aggs,
            feeder_id=pl.col("feeder_id").drop_nulls().mode().sort().first(),
            org_id=pl.col("org_id").mode().sort().first(),
        )
        .with_columns(scope=pl.lit("area"), scope_id=pl.col("area_id"))
    )
    feeders = (
        c.filter(~with_area)
        .group_by("feeder_id")
        .agg(*aggs, org_id=pl.col("org_id").mode().sort().first())
        .with_columns(scope=pl.lit("feeder"), scope_id=pl.col("feeder_id"), area_id=pl.lit(None, pl.String))
    )
    orgs = (
        c.group_by("org_id")
        .agg(*aggs)
        .with_columns(
            scope=pl.lit("org"),
            scope_id=pl.col("org_id"),
            area_id=pl.lit(None, pl.String),
            feeder_id=pl.lit(None, pl.String),
        )
    )
    cols = ["scope", "scope_id", "area_id", "feeder_id", "org_id", *[a.meta.output_name() for a in aggs]]
    out = pl.concat([areas.select(cols), feeders.select(cols), orgs.select(cols)]).with_columns(
        month=pl.lit(month),
        due_date=pl.lit(due_date),
        postpaid_final=pl.lit(as_of is not None and as_of >= due_date),
        # collected <= billed customer by customer; the clip only removes float noise
        recovery_rate=pl.when(pl.col("rate_base") > 0).then(
            (pl.col("collected_yuan") / pl.col("rate_base")).clip(0.0, 1.0)
        ),
        target_rate=pl.lit(rules.target_rate),
    )
    out = out.with_columns(below_target=pl.col("recovery_rate") < pl.col("target_rate") - 1e-9)
    return RECOVERY_MONTHLY.conform(out.sort("scope", "scope_id"))
