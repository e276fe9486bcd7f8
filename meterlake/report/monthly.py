"""The report's monthly sections: monthly line loss an analyst acts on, held bills, and
the warnings of the quality gate.

* "Monthly line loss (月度线损)": counts of high, negative and uncomputable area-months
  (uncomputable with their reasons), the worst areas by the monthly figures (furthest
  outside their own band, so an area just inside it still shows near the top), and the
  work list ``loss_worklist_monthly`` (ranked by kWh at stake, with the suggested action).
* "Held bills (暂缓发行账单)": the bills the quality gate held, with their reasons.
* "Quality gate warnings (质量校验警告)": the non-blocking expectations that failed in the
  check stage's results (``LAKE/_meta/check_results``), which otherwise only the Data
  Docs show.

The summaries are pure (frames in, small frames out); :func:`read_check_results` is the
only reader.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ..publish import ReportConfig
from . import data as d
from . import html as h

#: where the check stage keeps its results, one partition per run
CHECK_RESULTS_DIR = ("_meta", "check_results")


# -- reading ---------------------------------------------------------------------------
def read_check_results(lake: Path, run_id: str | None) -> pl.DataFrame | None:
    """The check stage's results of ``run_id`` (else of the latest run that has them)."""
    base = Path(lake).joinpath(*CHECK_RESULTS_DIR)
    runs = sorted(p for p in base.glob("run_id=*") if any(p.glob("*.parquet"))) if base.is_dir() else []
    if not runs:
        return None
    chosen = next((p for p in runs if run_id and p.name == f"run_id={run_id}"), runs[-1])
    return pl.concat([pl.read_parquet(f) for f in sorted(chosen.glob("*.parquet"))], how="diagonal_relaxed")


# -- pure summaries ----------------------------------------------------------------------
def month_counts(monthly: pl.DataFrame) -> pl.DataFrame:
    """month, area-months, high, negative, uncomputable, and the uncomputable reasons."""
    reasons = (
        monthly.filter(pl.col("status") == "uncomputable")
        .select("month", pl.col("reason").str.split(","))
        .explode("reason")
        .drop_nulls()
        .group_by("month", "reason")
        .agg(pl.len().alias("n"))
        .sort(["month", "n", "reason"], descending=[False, True, False])
        .group_by("month", maintain_order=True)
        .agg(pl.format("{}: {}", "reason", "n").str.join(", ").alias("reasons"))
    )
    return (
        monthly.group_by("month")
        .agg(
            pl.len().alias("areas"),
            (pl.col("status") == "high").sum().alias("high"),
            (pl.col("status") == "negative").sum().alias("negative"),
            (pl.col("status") == "uncomputable").sum().alias("uncomputable"),
        )
        .join(reasons, on="month", how="left")
        .sort("month")
    )


def band_excess() -> pl.Expr:
    """How far a monthly rate lies outside the area's band (negative: inside it)."""
    rate = pl.col("loss_rate")
    return pl.max_horizontal(rate - pl.col("band_high"), pl.col("band_low") - rate)


def monthly_worst(monthly: pl.DataFrame, top: int) -> pl.DataFrame:
    """Computable area-months furthest outside (or least inside) their band, first.

    Areas without band columns (a lake written before they existed) use the contract
    defaults, 0 and 0.10.
    """
    frame = monthly
    for col, default in (("band_low", 0.0), ("band_high", 0.10)):
        if col not in frame.columns:
            frame = frame.with_columns(pl.lit(default).alias(col))
    return (
        frame.filter((pl.col("status") != "uncomputable") & pl.col("loss_rate").is_not_null())
        .with_columns(band_excess().alias("band_excess"))
        .sort(["band_excess", "month", "area_id"], descending=[True, False, False])
        .head(top)
    )


def held_bills(bills: pl.DataFrame, top: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(reason, bills) counts, and the held bills with the most kWh first (at most ``top``)."""
    held = bills.filter(pl.col("status") == "held")
    counts = (
        held.select(pl.col("exception_reasons").str.split(",").alias("reason"))
        .explode("reason")
        .drop_nulls()
        .group_by("reason")
        .agg(pl.len().alias("bills"))
        .sort(["bills", "reason"], descending=[True, False])
    )
    listed = held.sort(["kwh_total", "customer_id"], descending=[True, False], nulls_last=True).head(top)
    return counts, listed


def gate_warnings(results: pl.DataFrame) -> pl.DataFrame:
    """Failed warning expectations, one row per rule: table, partitions failed, the worst
    observed value (largest), the bound and what the rule asks."""
    failed = results.filter((pl.col("severity") == "warning") & ~pl.col("success"))
    return (
        failed.group_by("table", "rule")
        .agg(
            pl.len().alias("partitions"),
            pl.col("partition").sort().first().alias("first"),
            pl.col("partition").sort().last().alias("last"),
            pl.col("observed").max().alias("worst"),
            pl.col("expected").first(),
            pl.col("description").first(),
        )
        .sort(["partitions", "table", "rule"], descending=[True, False, False])
    )


# -- sections --------------------------------------------------------------------------
def monthly_loss_section(inputs: d.ReportInputs, cfg: ReportConfig) -> h.Section:
    title = "Monthly line loss and work list (月度线损与治理工单)"
    monthly = inputs.get("area_loss_monthly")
    if monthly is None:
        return h.Section("monthly", title, False, h._no_data("area_loss_monthly has no rows for these months"))
    counts = month_counts(monthly)
    parts = [
        "<p>Monthly figures are sums of the month's days; a meter-day still without a value is "
        "substituted with the meter's mean of the month. An area-month is uncomputable only below "
        "the coverage threshold or with more than 2 substituted master days.</p>",
        h.table(
            counts,
            [
                ("month", "month", h._text),
                ("areas", "area-months", h._int),
                ("high", "high 高损", h._int),
                ("negative", "negative 负损", h._int),
                ("uncomputable", "uncomputable 不可算", h._int),
                ("reasons", "why uncomputable", h._text),
            ],
        ),
    ]
    worst = monthly_worst(monthly, cfg.top_areas)
    parts.append(
        f"<h3>Worst areas by the monthly figures ({worst.height} shown, furthest outside their band first)</h3>"
    )
    if worst.height:
        diagnosis = inputs.get("loss_diagnosis")
        if diagnosis is not None:
            worst = worst.join(d.diagnosis_text(diagnosis), on="area_id", how="left")
        parts.append(
            h.table(
                worst,
                [
                    ("area_id", "area 台区", h._text),
                    ("month", "month", h._text),
                    ("supply_kwh", "supply kWh", h._num),
                    ("sales_kwh", "sales kWh", h._num),
                    ("loss_kwh", "loss kWh", h._num),
                    ("loss_rate", "loss rate 线损率", h._pct),
                    ("band_low", "band low", h._pct),
                    ("band_high", "band high", h._pct),
                    ("status", "status", h._text),
                    ("coverage", "coverage", h._pct),
                    ("substituted_kwh", "substituted kWh", h._num),
                    ("reverse_no_pv_kwh", "reverse kWh without PV", h._num),
                    ("diagnosis", "diagnosis 诊断", h._text),
                ],
                css="worst",
            )
        )
    else:
        parts.append("<p>No area has a computable monthly loss rate.</p>")
    work = inputs.get("loss_worklist_monthly")
    parts.append("<h3>Work list (线损治理工单), ranked by kWh at stake</h3>")
    if work is not None:
        parts.append(
            h.table(
                work.sort("month", "rank").with_columns(pl.format("{} · {}", "action_zh", "action_en").alias("action")),
                [
                    ("month", "month", h._text),
                    ("rank", "#", h._int),
                    ("area_id", "area 台区", h._text),
                    ("issue", "issue", h._text),
                    ("reason", "reason", h._text),
                    ("loss_rate", "loss rate", h._pct),
                    ("kwh_at_stake", "kWh at stake", h._num),
                    ("consecutive_months", "months in a row", h._int),
                    ("suspect_kind", "top suspect", h._text),
                    ("suspect_meter_id", "meter", h._text),
                    ("suspect_score", "score", h._num),
                    ("action", "action 建议措施", h._text),
                ],
            )
        )
    else:
        parts.append("<p>No area-month needs work: none is high, negative or uncomputable.</p>")
    return h.Section("monthly", title, True, "".join(parts))


def held_bills_section(inputs: d.ReportInputs, cfg: ReportConfig) -> h.Section:
    title = "Held bills (暂缓发行账单)"
    bills = inputs.get("bills_monthly")
    if bills is None or "exception_reasons" not in bills.columns:
        return h.Section("held", title, False, h._no_data("bills_monthly has no rows for these months"))
    counts, listed = held_bills(bills, cfg.top_areas * 3)
    if not listed.height:
        return h.Section("held", title, True, f"<p>All {bills.height:,} bills passed the quality gate.</p>")
    parts = [
        f"<p>{int((bills['status'] == 'held').sum()):,} of {bills.height:,} bills are held for review "
        "instead of going out; a bill can have several reasons.</p>",
        h.table(counts, [("reason", "reason 原因", h._text), ("bills", "bills", h._int)]),
        f"<h3>Held bills, most kWh first ({listed.height} shown)</h3>",
        h.table(
            listed,
            [
                ("customer_id", "customer 用户", h._text),
                ("month", "month", h._text),
                ("area_id", "area", h._text),
                ("tariff_id", "tariff", h._text),
                ("days", "days", h._int),
                ("days_estimated", "estimated", h._int),
                ("days_missing", "missing", h._int),
                ("kwh_total", "kWh", h._num),
                ("amount_yuan", "amount yuan", h._num),
                ("exception_reasons", "reasons", h._text),
            ],
        ),
    ]
    return h.Section("held", title, True, "".join(parts))


def gate_warnings_section(inputs: d.ReportInputs, cfg: ReportConfig) -> h.Section:
    title = "Quality gate warnings (质量校验警告)"
    results = inputs.check_results
    if results is None or not results.height:
        return h.Section("warnings", title, False, h._no_data("the check stage has not run on this lake"))
    warnings = gate_warnings(results)
    if not warnings.height:
        return h.Section("warnings", title, True, "<p>Every non-blocking expectation passed.</p>")
    body = (
        "<p>Non-blocking expectations that failed in the latest check run (they did not stop "
        "the run; the Data Docs hold the details).</p>"
        + h.table(
            warnings,
            [
                ("table", "table", h._text),
                ("rule", "rule", h._text),
                ("partitions", "partitions failed", h._int),
                ("first", "first", h._text),
                ("last", "last", h._text),
                ("worst", "worst observed", h._num),
                ("expected", "expected", h._text),
                ("description", "what it asks", h._text),
            ],
        )
    )
    return h.Section("warnings", title, True, body)
