"""Customer credit (用户信用评价), tiers (客户分级) and the dunning list (催费清单). Pure polars.

Credit: 100 minus the points of each reason over the trailing window; each reason is a
column and a line of ``reasons`` (English; 中文), like the anomaly score. Dunning: the
overdue accounts on a list date with the action of the first matching configured rule.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from meterlake.schemas.customer_credit_monthly import CUSTOMER_CREDIT_MONTHLY
from meterlake.schemas.dunning_list import DUNNING_LIST

from .receivables import MICRO, CreditRules, ReceivablesConfig, TierRules, _micro, oldest_unpaid


def tier(billed: pl.Expr, rules: TierRules) -> pl.Expr:
    """platinum / gold / silver / bronze by billed yuan (a threshold itself is in the higher tier)."""
    return (
        pl.when(billed >= rules.platinum_yuan)
        .then(pl.lit("platinum"))
        .when(billed >= rules.gold_yuan)
        .then(pl.lit("gold"))
        .when(billed >= rules.silver_yuan)
        .then(pl.lit("silver"))
        .otherwise(pl.lit("bronze"))
    )


def grade(score: pl.Expr, rules: CreditRules) -> pl.Expr:
    return (
        pl.when(score >= rules.grade_a)
        .then(pl.lit("A"))
        .when(score >= rules.grade_b)
        .then(pl.lit("B"))
        .when(score >= rules.grade_c)
        .then(pl.lit("C"))
        .otherwise(pl.lit("D"))
    )


def _overdue_points(days: pl.Expr, rules: CreditRules) -> pl.Expr:
    out = pl.lit(0.0)
    for step, points in zip(rules.worst_overdue_days_steps, rules.worst_overdue_points, strict=True):
        out = pl.when(days > step).then(pl.lit(points)).otherwise(out)
    return out


def credit_month(
    month: str,
    bills: pl.LazyFrame,
    bill_status: pl.LazyFrame,
    receivables: pl.LazyFrame,
    prepay_below_zero: pl.LazyFrame,
    thefts: pl.LazyFrame,
    rules: ReceivablesConfig,
) -> pl.LazyFrame:
    """customer_credit_monthly rows of ``month``; every input already limited to the window.

    ``bills``: bills_monthly rows of the window's months (customer_id, month, amount_yuan,
    prepay, period_end); ``bill_status``: :func:`bill_status_at_due` rows of the post-paid
    bills due in the window; ``receivables``: receivables_monthly rows of the window
    (customer_id, month, overdue_days, overdue_yuan); ``prepay_below_zero``: customer_id,
    days; ``thefts``: customer_id of confirmed thefts in the window.
    """
    cr, tol = rules.credit, rules.tolerance.settled_below_yuan
    base = bills.group_by("customer_id").agg(
        billed_12m_yuan=pl.col("amount_yuan").fill_null(0.0).sum().round(2),
        prepay=pl.col("prepay").sort_by("period_end").last().cast(pl.Int8),
    )
    due = bill_status.group_by("customer_id").agg(
        bills_due=pl.len().cast(pl.Int32),
        bills_on_time=(pl.col("unpaid_at_due_yuan") <= tol).sum().cast(pl.Int32),
    )
    arrears = receivables.group_by("customer_id").agg(
        worst_overdue_days=pl.col("overdue_days").max().cast(pl.Int32),
        months_in_arrears=((pl.col("overdue_days") > 0) & (pl.col("overdue_yuan") > tol)).sum().cast(pl.Int32),
    )
    theft = thefts.select("customer_id").unique().with_columns(theft_confirmed=pl.lit(True))
    c = (
        base.join(due, on="customer_id", how="left")
        .join(arrears, on="customer_id", how="left")
        .join(prepay_below_zero.rename({"days": "prepay_days_below_zero"}), on="customer_id", how="left")
        .join(theft, on="customer_id", how="left")
        .with_columns(
            pl.col("bills_due", "bills_on_time", "worst_overdue_days", "months_in_arrears").fill_null(0),
            prepay_days_below_zero=pl.col("prepay_days_below_zero").fill_null(0).cast(pl.Int32),
            theft_confirmed=pl.col("theft_confirmed").fill_null(False),
        )
        .with_columns(
            on_time_share=pl.when(pl.col("bills_due") > 0).then(pl.col("bills_on_time") / pl.col("bills_due"))
        )
        .with_columns(
            late_points=((1.0 - pl.col("on_time_share").fill_null(1.0)) * cr.late_share_weight).round(1),
            overdue_points=_overdue_points(pl.col("worst_overdue_days"), cr),
            arrears_points=(pl.col("months_in_arrears") * cr.month_in_arrears_points).clip(
                upper_bound=cr.month_in_arrears_cap
            ),
            prepay_points=(pl.col("prepay_days_below_zero") * cr.prepay_day_below_zero_points).clip(
                upper_bound=cr.prepay_day_below_zero_cap
            ),
            theft_points=pl.when(pl.col("theft_confirmed")).then(cr.theft_points).otherwise(0.0),
        )
    )
    points = ["late_points", "overdue_points", "arrears_points", "prepay_points", "theft_points"]
    texts = {
        "late_points": pl.format(
            "{} of {} bills paid late (逾期缴费) -{}",
            pl.col("bills_due") - pl.col("bills_on_time"),
            "bills_due",
            "late_points",
        ),
        "overdue_points": pl.format("worst {} days overdue (最长逾期) -{}", "worst_overdue_days", "overdue_points"),
        "arrears_points": pl.format("{} month ends in arrears (欠费月数) -{}", "months_in_arrears", "arrears_points"),
        "prepay_points": pl.format(
            "{} prepay days below zero (费控透支) -{}", "prepay_days_below_zero", "prepay_points"
        ),
        "theft_points": pl.format("theft confirmed by inspection (窃电查实) -{}", "theft_points"),
    }
    # reasons in words, strongest first (ties in the order above): reason i goes to place
    # rank_i, the number of reasons that outrank it; places without a reason are skipped
    rank = {
        p: pl.sum_horizontal(
            ((pl.col(q) > pl.col(p)) | ((pl.col(q) == pl.col(p)) & pl.lit(j < i))).cast(pl.Int8)
            for j, q in enumerate(points)
            if j != i
        )
        for i, p in enumerate(points)
    }
    places = [
        pl.coalesce([pl.when((pl.col(p) > 0) & (rank[p] == place)).then(texts[p]) for p in points])
        for place in range(len(points))
    ]
    # the words only where some reason counts (a few hundred of a county's 500k customers):
    # elsewhere every place is empty and the reasons are "", without formatting five texts a row
    some = pl.any_horizontal((pl.col(p) > 0).fill_null(False) for p in points)
    c = pl.concat(
        [
            c.filter(some).with_columns(reasons=pl.concat_str(places, separator="; ", ignore_nulls=True)),
            c.filter(~some).with_columns(reasons=pl.lit("", pl.String)),
        ]
    )
    c = c.with_columns(
        credit_score=(100.0 - pl.sum_horizontal(points)).clip(0.0, 100.0).round(1),
    ).with_columns(
        credit_grade=grade(pl.col("credit_score"), cr),
        customer_tier=tier(pl.col("billed_12m_yuan"), rules.tiers),
        month=pl.lit(month),
    )
    return CUSTOMER_CREDIT_MONTHLY.conform(c.sort("customer_id"))


def list_dates(month_first: dt.date, month_last: dt.date, due_day: int) -> list[dt.date]:
    """The dunning list dates of a month: the day after its due date, and its last day."""
    after_due = month_first.replace(day=due_day) + dt.timedelta(days=1)
    return sorted({after_due, month_last})


def dunning(
    day: dt.date,
    schedule: pl.LazyFrame,
    ledger: pl.LazyFrame,
    credit: pl.LazyFrame,
    scope: pl.LazyFrame,
    rules: ReceivablesConfig,
) -> pl.LazyFrame:
    """dunning_list rows of list date ``day`` (accounts at the end of the day before)."""
    dr, tol = rules.dunning, rules.tolerance.settled_below_yuan
    at = day - dt.timedelta(days=1)
    days = (pl.lit(day) - pl.col("oldest_due_date")).dt.total_days().cast(pl.Int32)
    overdue = (
        oldest_unpaid(schedule, ledger, at, tol, due_before=day)
        .with_columns(days_overdue=days)
        .filter(pl.col("days_overdue") >= dr.sms_after_days)
    )
    # arrears (sums in integer millionths: exact in any order)
    arrears = (
        schedule.filter(pl.col("issue_date") <= at)
        .group_by("customer_id")
        .agg(
            b=_micro(pl.col("amount_yuan")).sum(),
            # the latest bill's (one bill a month: no ties)
            customer_class=pl.col("customer_class").get(pl.col("bill_month").arg_max()),
            area_id=pl.col("area_id").get(pl.col("bill_month").arg_max()),
        )
        .join(
            ledger.filter(pl.col("day") <= at).group_by("customer_id").agg(p=_micro(pl.col("amount_yuan")).sum()),
            on="customer_id",
            how="left",
        )
        .select(
            "customer_id",
            "customer_class",
            "area_id",
            arrears_yuan=((pl.col("b") - pl.col("p").fill_null(0)) / MICRO).round(2),
        )
    )
    d = pl.col("days_overdue")
    stop = (d > dr.stop_notice_after_days) & (pl.col("overdue_yuan") >= dr.stop_notice_min_yuan)
    action = (
        pl.when(stop)
        .then(pl.lit("stop_notice"))
        .when(d >= dr.visit_after_days)
        .then(pl.lit("visit"))
        .when(d >= dr.call_after_days)
        .then(pl.lit("call"))
        .otherwise(pl.lit("sms"))
    )
    severity = pl.col("action").replace_strict(
        {"stop_notice": 3, "visit": 2, "call": 1, "sms": 0}, return_dtype=pl.Int8
    )
    grade_txt = pl.col("credit_grade").fill_null("-")
    out = (
        overdue.join(arrears, on="customer_id", how="left")
        .join(credit.select("customer_id", "credit_grade", "credit_score"), on="customer_id", how="left")
        .join(scope, on="customer_id", how="left")
        .with_columns(overdue_yuan=pl.col("overdue_yuan").round(2), action=action, date=pl.lit(day))
        .with_columns(
            disconnect_not_before=pl.when(pl.col("action") == "stop_notice").then(
                pl.lit(day + dt.timedelta(days=dr.notice_min_days))
            ),
            disconnect_not_after=pl.when(pl.col("action") == "stop_notice").then(
                pl.lit(day + dt.timedelta(days=dr.notice_max_days))
            ),
        )
        .with_columns(
            reason_zh=pl.format(
                "{}账期起欠费{}元，逾期{}天，信用等级{}", "oldest_bill_month", "overdue_yuan", "days_overdue", grade_txt
            )
            + pl.when(pl.col("action") == "stop_notice")
            .then(
                pl.format(
                    "；逾期超过{}天且欠费不低于{}元，送达停电通知书，{}至{}之间方可停电",
                    pl.lit(dr.stop_notice_after_days),
                    pl.lit(dr.stop_notice_min_yuan),
                    "disconnect_not_before",
                    "disconnect_not_after",
                )
            )
            .otherwise(pl.lit("")),
            reason_en=pl.format(
                "{} yuan unpaid since bill {}, {} days overdue, credit grade {}",
                "overdue_yuan",
                "oldest_bill_month",
                "days_overdue",
                grade_txt,
            )
            + pl.when(pl.col("action") == "stop_notice")
            .then(
                pl.format(
                    "; over {} days and at least {} yuan: stop notice served, disconnection not before {} "
                    "and not after {}",
                    pl.lit(dr.stop_notice_after_days),
                    pl.lit(dr.stop_notice_min_yuan),
                    "disconnect_not_before",
                    "disconnect_not_after",
                )
            )
            .otherwise(pl.lit("")),
            _severity=severity,
        )
        .sort(
            ["_severity", "credit_score", "overdue_yuan", "customer_id"],
            descending=[True, False, True, False],
            nulls_last=True,
        )
        .with_row_index("rank", offset=1)
        .with_columns(pl.col("rank").cast(pl.Int32))
    )
    return DUNNING_LIST.conform(out)
