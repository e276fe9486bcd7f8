"""The report's receivables section: recovery against target, arrears aging, the dunning list.

A month's bills are issued and collected in the month after it, so this section reads
the receivables marts for the report's months and the month that follows them
(:func:`load`); the summaries are pure.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import TYPE_CHECKING

import polars as pl

from ..lake import Lake
from ..publish import ReportConfig
from . import charts
from . import data as d

if TYPE_CHECKING:
    from .html import Section

#: marts this section reads beyond data.MARTS, and the month after the period with them
MARTS = ("receivables_monthly", "dunning_list")
AGING_ORDER = ("current", "1-30", "31-90", "91-180", ">180")


def collection_dates(dates: list[dt.date]) -> list[dt.date]:
    """The dates and every day of the month after the last of them."""
    if not dates:
        return []
    nxt = (max(dates).replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    end = (nxt + dt.timedelta(days=32)).replace(day=1)
    return sorted({*dates, *(nxt + dt.timedelta(days=i) for i in range((end - nxt).days))})


def load(lake: Lake, inputs: d.ReportInputs) -> None:
    """Add the receivables marts of the period and the month after it to ``inputs``."""
    wanted = collection_dates(inputs.dates)
    for name in MARTS:
        frame = d.read_mart(lake, name, wanted)
        if frame is not None:
            inputs.marts[name] = frame


def recovery_scopes(recovery: pl.DataFrame) -> pl.DataFrame:
    """Area rows and the feeder rows of customers without an area, lowest rate first."""
    if "scope" not in recovery.columns or recovery["scope"].is_null().all():  # partitions written before v2
        recovery = recovery.with_columns(pl.lit("area").alias("scope"), pl.col("area_id").alias("scope_id"))
    for c in ("target_rate", "below_target"):
        if c not in recovery.columns:
            recovery = recovery.with_columns(pl.lit(None).alias(c))
    return (
        recovery.filter(pl.col("scope").is_in(["area", "feeder"]))
        .with_columns(target_rate=pl.col("target_rate").cast(pl.Float64).fill_null(1.0))
        .with_columns(
            below_target=pl.col("below_target")
            .cast(pl.Boolean)
            .fill_null(pl.col("recovery_rate") < pl.col("target_rate") - 1e-9)
        )
        .sort(["recovery_rate", "scope_id"], nulls_last=True)
    )


def aging_summary(receivables: pl.DataFrame) -> pl.DataFrame:
    """Per aging bucket of the latest ledger month: customers, arrears and late fees."""
    last = receivables.filter(pl.col("month") == pl.col("month").max())
    order = pl.Enum(AGING_ORDER)
    return (
        last.filter(pl.col("arrears_yuan") > 0)
        .group_by("month", "aging")
        .agg(
            customers=pl.len(),
            arrears_yuan=pl.col("arrears_yuan").sum(),
            overdue_yuan=pl.col("overdue_yuan").sum(),
            late_fee_yuan=pl.col("late_fee_yuan").sum(),
        )
        .sort(pl.col("aging").cast(order))
    )


def dunning_top(dunning: pl.DataFrame, top: int) -> pl.DataFrame:
    """The first ``top`` rows of the latest list."""
    return dunning.filter(pl.col("date") == pl.col("date").max()).sort("rank").head(top)


def receivables_section(inputs: d.ReportInputs, cfg: ReportConfig) -> Section:
    from .html import Section, _int, _no_data, _num, _pct, _text, table

    title = "Receivables and recovery (应收电费与回收)"
    recovery, recv, dun = (
        inputs.get("recovery_monthly"),
        inputs.get("receivables_monthly"),
        inputs.get("dunning_list"),
    )
    if recovery is None and recv is None and dun is None:
        return Section("receivables", title, False, _no_data("recovery_monthly and receivables_monthly are empty"))
    parts: list[str] = []
    parts.append("<h3>Recovery per area against target (电费回收率)</h3>")
    if recovery is not None:
        rows = recovery_scopes(recovery)
        below = rows.filter(pl.col("below_target").fill_null(False))
        target = float(rows["target_rate"].max()) if rows.height else 1.0  # type: ignore[arg-type]
        parts.append(
            f"<p>{rows.height} area (and 10 kV feeder) months; {below.height} below the target "
            f"{_pct(target)}. Post-paid bills count as collected when paid by their due date; "
            "a month whose due date the lake has not reached yet is not final.</p>"
        )
        shown = rows.filter(pl.col("recovery_rate").is_not_null()).head(cfg.top_areas)
        if shown.height:
            parts.append(
                charts.bar_chart(
                    [f"{s} {m}" for s, m in shown.select("scope_id", "month").iter_rows()],
                    shown["recovery_rate"].to_list(),
                    title="Lowest recovery rates (电费回收率)",
                    fmt=charts.percent,
                    reference=target,
                    reference_label=f"target {_pct(target)}",
                    axis_min=max(0.0, min(0.9, float(shown["recovery_rate"].min()) - 0.02)),  # type: ignore[arg-type]
                    colors=[charts.PALETTE[1]],
                )
            )
            cols = [
                ("month", "month", _text),
                ("scope", "scope", _text),
                ("scope_id", "area / feeder", _text),
                ("billed_yuan", "billed yuan 应收", _num),
                ("collected_yuan", "collected yuan 实收", _num),
                ("recovery_rate", "rate 回收率", _pct),
            ]
            if "postpaid_final" in shown.columns:
                cols.append(("postpaid_final", "final", _text))
            parts.append(table(shown, cols))
    else:
        parts.append(_no_data("recovery_monthly"))
    parts.append("<h3>Arrears aging (欠费账龄)</h3>")
    if recv is not None:
        aging = aging_summary(recv)
        if aging.height:
            parts.append(
                table(
                    aging,
                    [
                        ("month", "ledger month", _text),
                        ("aging", "aging 账龄", _text),
                        ("customers", "customers", _int),
                        ("arrears_yuan", "arrears yuan 欠费", _num),
                        ("overdue_yuan", "overdue yuan 逾期", _num),
                        ("late_fee_yuan", "late fees yuan 违约金", _num),
                    ],
                )
            )
        else:
            parts.append("<p>No post-paid customer owes anything at the month's end.</p>")
    else:
        parts.append(_no_data("receivables_monthly"))
    parts.append("<h3>Dunning list (催费清单)</h3>")
    if dun is not None:
        top = dunning_top(dun, cfg.top_arrears)
        day = top["date"].max()
        counts = dun.filter(pl.col("date") == day)["action"].value_counts().sort("action")
        summary = ", ".join(f"{escape(str(a))} {n}" for a, n in counts.iter_rows())
        parts.append(f"<p>List of {day!s}: {summary}.</p>")
        parts.append(
            table(
                top,
                [
                    ("rank", "#", _int),
                    ("customer_id", "customer", _text),
                    ("overdue_yuan", "overdue yuan 逾期", _num),
                    ("days_overdue", "days", _int),
                    ("credit_grade", "grade 信用", _text),
                    ("action", "action 措施", _text),
                    ("reason_zh", "原因", _text),
                ],
            )
        )
    else:
        parts.append("<p>No dunning list for this period: no bill is overdue, or none has fallen due yet.</p>")
    return Section("receivables", title, True, "".join(parts))
