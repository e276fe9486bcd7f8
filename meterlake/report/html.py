"""The HTML run report: one self-contained file an analyst opens from the disk.

``LAKE/reports/report-<run id>.html`` (or ``report-<first date>_<last date>.html``)
with inline CSS and inline SVG charts: no script, no web font, nothing fetched from
the network. The only links are relative: the Great Expectations Data Docs and the
data dictionary, when they exist beside it.

Sections, in the order an analyst's morning goes:

1. collection (采集成功率) per day against the target, and the areas below it;
2. line loss (线损): area loss-rate distribution, status counts, daily loss rate, the
   worst areas with the findings of ``loss_diagnosis``, and the feeders;
3. anomalies (反窃电): the highest-scoring meters with their reasons;
4. billing (电费), prepay balances and arrears (欠费), recovery (电费回收率);
5. data quality: meter-day quality, quarantined rows, findings by rule, Data Docs.

A section whose marts are not in the lake, or hold nothing for the period, says
"no data for this period" instead of failing.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

import polars as pl

from ..lake import Lake
from ..publish import ReportConfig, load_config
from . import charts
from . import data as d
from . import receivables as rv
from .outages import outages_section

NO_DATA = "no data for this period (本期无数据)"

Fmt = Callable[[object], str]


@dataclass
class Section:
    key: str
    title: str
    has_data: bool
    body: str


# -- formatting ----------------------------------------------------------------------
def _num(v: object) -> str:
    return "" if v is None else f"{v:,.2f}"


def _int(v: object) -> str:
    return "" if v is None else f"{v:,.0f}"


def _pct(v: object) -> str:
    return "" if v is None else f"{float(v) * 100:.2f}%"  # type: ignore[arg-type]


def _text(v: object) -> str:
    return "" if v is None else str(v)


def table(frame: pl.DataFrame, columns: Sequence[tuple[str, str, Fmt]], css: str = "") -> str:
    """A small HTML table of ``frame`` (a summary: tens of rows)."""
    cols = [(c, h, f) for c, h, f in columns if c in frame.columns]
    head = "".join(f"<th>{escape(h)}</th>" for _, h, f in cols)
    numeric = {c for c, _, f in cols if f in (_num, _int, _pct)}
    rows = []
    for rec in frame.select([c for c, _, _ in cols]).iter_rows(named=True):
        cells = "".join(f'<td class="{"n" if c in numeric else ""}">{escape(f(rec[c]))}</td>' for c, _, f in cols)
        rows.append(f"<tr>{cells}</tr>")
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _no_data(what: str = "") -> str:
    extra = f" <span class=why>({escape(what)})</span>" if what else ""
    return f'<p class="nodata">{NO_DATA}{extra}</p>'


def _card(label: str, value: str, sub: str = "") -> str:
    return (
        f'<div class="card"><div class="label">{escape(label)}</div><div class="value">{escape(value)}</div>'
        f'<div class="sub">{escape(sub)}</div></div>'
    )


# -- sections ------------------------------------------------------------------------
def collection_section(inputs: d.ReportInputs, cfg: ReportConfig) -> Section:
    title = "Collection success rate (采集成功率)"
    frame = inputs.get("collection_daily")
    if frame is None:
        return Section("collection", title, False, _no_data("collection_daily has no rows for these dates"))
    by_day = d.collection_by_day(frame)
    worst = d.collection_worst_areas(frame, cfg.collection_target, cfg.top_areas)
    total = by_day.select(pl.col("meters_read").sum() / pl.col("meters_total").sum()).item()
    parts = [
        f"<p>Meters whose daily frozen register arrived over meters in service, all areas: "
        f"<b>{_pct(total)}</b> over the period; target {_pct(cfg.collection_target)}.</p>",
        charts.line_chart(
            [x.isoformat()[5:] for x in by_day["date"]],
            {"success rate": by_day["success_rate"].to_list()},
            title="Daily collection success rate, all areas",
            fmt=charts.percent,
            reference=cfg.collection_target,
            reference_label=f"target {_pct(cfg.collection_target)}",
            y_max=1.0,
        ),
    ]
    if worst.height:
        parts.append(f"<h3>Areas below target ({worst.height} shown)</h3>")
        parts.append(
            table(
                worst,
                [
                    ("area_id", "area 台区", _text),
                    ("meters_read", "meter-days read", _int),
                    ("meters_total", "meter-days in service", _int),
                    ("success_rate", "success rate", _pct),
                    ("days_below_target", "days below target", _int),
                    ("days", "days", _int),
                ],
            )
        )
    else:
        parts.append("<p>Every area met the target over the period.</p>")
    return Section("collection", title, True, "".join(parts))


def loss_section(inputs: d.ReportInputs, cfg: ReportConfig) -> Section:
    title = "Line loss (线损)"
    daily = inputs.get("area_loss_daily")
    monthly = inputs.get("area_loss_monthly")
    if daily is None and monthly is None:
        return Section("loss", title, False, _no_data("area_loss_daily/monthly have no rows for these dates"))
    parts = []
    # which figures rank the areas: the official monthly ones when computable, else the period's days
    monthly_ok = (
        monthly.filter((pl.col("status") != "uncomputable") & pl.col("loss_rate").is_not_null())
        if monthly is not None
        else None
    )
    if monthly_ok is not None and monthly_ok.height:
        ranked, basis = monthly_ok, f"monthly figures ({', '.join(inputs.months)})"
    elif daily is not None:
        ranked = d.area_period_status(daily)
        basis = "the period's computable days (no computable monthly figure)"
    else:
        ranked, basis = pl.DataFrame(schema={"area_id": pl.String, "loss_rate": pl.Float64, "status": pl.String}), ""
    hist = d.loss_histogram(ranked["loss_rate"], cfg.loss_rate_bins)
    if daily is not None:
        totals = daily.filter(pl.col("status") != "uncomputable").select(
            pl.col("supply_kwh").sum(), pl.col("sales_kwh").sum(), pl.col("loss_kwh").sum()
        )
        supply, sales, loss = totals.row(0)
        rate = loss / supply if supply else None
        parts.append(
            f"<p>Computable area-days of the period: supply {_num(supply)} kWh, sales {_num(sales)} kWh, "
            f"loss {_num(loss)} kWh, loss rate <b>{_pct(rate)}</b> (Σ loss / Σ supply).</p>"
        )
    if monthly is not None:
        line = d.monthly_status_line(monthly)
        described = ", ".join(
            f"{n} {s}" + (f" ({r})" if r else "") for s, n, r in line.select("status", "count", "reasons").iter_rows()
        )
        parts.append(f"<p>Monthly area status ({escape(', '.join(inputs.months))}): {escape(described)}.</p>")
    parts.append('<div class="grid">')
    if hist["count"].sum():
        parts.append(
            charts.column_chart(
                hist["label"].to_list(),
                {"areas": hist["count"].cast(pl.Float64).to_list()},
                title=f"Area loss-rate distribution, {basis.split(' (')[0]}",
                width=560,
            )
        )
    else:
        parts.append("<p>No area has a computable loss rate for the period.</p>")
    counts_src = daily if daily is not None else ranked
    counts = d.status_counts(counts_src)
    parts.append(
        charts.bar_chart(
            counts["status"].to_list(),
            counts["count"].cast(pl.Float64).to_list(),
            title="Area-days by status" if daily is not None else "Areas by status",
            fmt=charts.integer,
            colors=[charts.STATUS_COLORS.get(s, charts.PALETTE[7]) for s in counts["status"].to_list()],
            width=560,
        )
    )
    parts.append("</div>")
    if daily is not None:
        by_day = d.loss_by_day(daily)
        if by_day.height:
            parts.append(
                charts.line_chart(
                    [x.isoformat()[5:] for x in by_day["date"]],
                    {"loss rate": by_day["loss_rate"].to_list()},
                    title="Daily loss rate over computable areas (Σ loss / Σ supply)",
                    fmt=charts.percent,
                )
            )
    worst = d.worst_areas(ranked, inputs.get("loss_diagnosis"), cfg.top_areas)
    parts.append(f"<h3>Worst areas, by {escape(basis)}</h3>")
    if worst.height:
        parts.append(
            table(
                worst,
                [
                    ("area_id", "area 台区", _text),
                    ("month", "month", _text),
                    ("feeder_id", "feeder", _text),
                    ("supply_kwh", "supply kWh", _num),
                    ("sales_kwh", "sales kWh", _num),
                    ("loss_kwh", "loss kWh", _num),
                    ("loss_rate", "loss rate 线损率", _pct),
                    ("status", "status", _text),
                    ("days_high", "days high", _int),
                    ("days_negative", "days negative", _int),
                    ("diagnosis", "diagnosis 诊断 (strongest findings)", _text),
                ],
                css="worst",
            )
        )
    else:
        parts.append("<p>No area is high-loss or negative-loss.</p>")
    feeders = inputs.get("feeder_loss_monthly")
    if feeders is None and inputs.get("feeder_loss_daily") is not None:
        feeders = d.area_period_loss(inputs.get("feeder_loss_daily").rename({"feeder_id": "area_id"})).rename(  # type: ignore[union-attr]
            {"area_id": "feeder_id"}
        )
    if feeders is not None:
        parts.append("<h3>10 kV feeders (线路线损)</h3>")
        parts.append(
            table(
                feeders.sort("feeder_id"),
                [
                    ("feeder_id", "feeder 线路", _text),
                    ("month", "month", _text),
                    ("supply_kwh", "supply kWh", _num),
                    ("sales_kwh", "sales kWh", _num),
                    ("loss_kwh", "loss kWh", _num),
                    ("loss_rate", "loss rate", _pct),
                    ("status", "status", _text),
                ],
            )
        )
    return Section("loss", title, True, "".join(parts))


def anomalies_section(inputs: d.ReportInputs, cfg: ReportConfig) -> Section:
    title = "Anomalies and theft screening (反窃电)"
    frame = inputs.get("anomalies")
    if frame is None:
        return Section("anomalies", title, False, _no_data("anomalies has no rows for these dates"))
    top = d.top_anomalies(frame, cfg.top_anomalies)
    reasons = d.anomaly_reason_counts(frame)
    parts = [
        f"<p>{frame['meter_id'].n_unique():,} meters flagged on {frame.height:,} meter-days. "
        f"Each meter's highest-scoring day, highest first (inspect from the top).</p>"
    ]
    if reasons.height:
        parts.append(
            charts.bar_chart(
                reasons["reason"].to_list(),
                reasons["count"].cast(pl.Float64).to_list(),
                title="Meter-days flagged, by reason",
                fmt=charts.integer,
                colors=[charts.PALETTE[3]],
            )
        )
    parts.append(
        table(
            top.with_row_index("position", offset=1),
            [
                ("position", "#", _int),
                ("meter_id", "meter 电能表", _text),
                ("customer_id", "customer 用户", _text),
                ("area_id", "area 台区", _text),
                ("date", "date", _text),
                ("score", "score", _num),
                ("reasons", "reasons 原因", _text),
            ],
        )
    )
    return Section("anomalies", title, True, "".join(parts))


def billing_section(inputs: d.ReportInputs, cfg: ReportConfig) -> Section:
    title = "Billing, arrears and recovery (电费、欠费与回收)"
    bills, prepay, recovery = inputs.get("bills_monthly"), inputs.get("prepay_daily"), inputs.get("recovery_monthly")
    if bills is None and prepay is None and recovery is None:
        return Section("billing", title, False, _no_data("bills_monthly, prepay_daily and recovery_monthly are empty"))
    parts = []
    if bills is not None:
        by_month = d.bills_by_month(bills)
        by_tariff = d.bills_by_tariff(bills)
        parts.append("<h3>Bills (月度电费)</h3>")
        parts.append(
            table(
                by_month,
                [
                    ("month", "month", _text),
                    ("bills", "bills", _int),
                    ("customers", "customers", _int),
                    ("kwh_total", "kWh", _num),
                    ("amount_yuan", "amount yuan", _num),
                    ("exceptions", "held for review", _int),
                ],
            )
        )
        parts.append(
            charts.bar_chart(
                [str(t) for t in by_tariff["tariff_id"].to_list()],
                by_tariff["amount_yuan"].to_list(),
                title="Amount billed by tariff (yuan)",
                fmt=charts.number,
                colors=[charts.PALETTE[0]],
            )
        )
    else:
        parts.append("<h3>Bills (月度电费)</h3>" + _no_data("bills_monthly"))
    parts.append("<h3>Prepay balances and arrears (费控余额与欠费)</h3>")
    if prepay is not None:
        last = d.prepay_last_day(prepay)
        counts = d.status_counts(last.filter(pl.col("status").is_not_null()))
        day = last["date"].max()
        parts.append(
            charts.bar_chart(
                counts["status"].to_list(),
                counts["count"].cast(pl.Float64).to_list(),
                title=f"Prepay meters by balance status on {day!s}",
                fmt=charts.integer,
                colors=[charts.STATUS_COLORS.get(s, charts.PALETTE[7]) for s in counts["status"].to_list()],
            )
        )
        low = d.lowest_balances(prepay, cfg.top_arrears)
        if low.height:
            parts.append(
                table(
                    low,
                    [
                        ("customer_id", "customer 用户", _text),
                        ("meter_id", "meter", _text),
                        ("area_id", "area", _text),
                        ("balance_yuan", "balance yuan 计算余额", _num),
                        ("meter_balance_yuan", "meter balance yuan 表计余额", _num),
                        ("status", "status", _text),
                    ],
                )
            )
        else:
            parts.append("<p>No prepay customer is in arrears, low or mismatched.</p>")
    else:
        parts.append(_no_data("prepay_daily"))
    parts.append("<h3>Recovery (电费回收率)</h3>")
    if recovery is not None:
        by_month = d.recovery_by_month(recovery)
        parts.append(
            "<p>Collected (实收): post-paid bills paid by their due date and prepay months net of their "
            "month-end arrears; per area against its target in the receivables section.</p>"
        )
        parts.append(
            table(
                by_month,
                [
                    ("month", "month", _text),
                    ("billed_yuan", "billed yuan 应收", _num),
                    ("prepay_billed_yuan", "prepay billed yuan 费控应收", _num),
                    ("collected_yuan", "collected yuan 实收", _num),
                    ("arrears_yuan", "arrears yuan 欠费", _num),
                    ("arrears_customers", "customers in arrears", _int),
                ],
            )
        )
        if "recovery_rate" in recovery.columns:
            # below what shows as 100.00%
            below = (
                rv.recovery_scopes(recovery)
                .filter(pl.col("recovery_rate") < 0.99995)
                .sort(["recovery_rate", "area_id"])
                .head(cfg.top_areas)
            )
            rated = rv.recovery_scopes(recovery).filter(pl.col("recovery_rate").is_not_null()).height
            if below.height:
                parts.append(
                    charts.bar_chart(
                        [f"{a or '(10 kV direct)'} {m}" for a, m in below.select("scope_id", "month").iter_rows()],
                        below["recovery_rate"].to_list(),
                        title="Areas below 100% recovery (电费回收率)",
                        fmt=charts.percent,
                        reference=1.0,
                        reference_label="100%",
                        axis_min=min(0.9, float(below["recovery_rate"].min()) - 0.02),  # type: ignore[arg-type]
                        colors=[charts.PALETTE[1]],
                    )
                )
            elif rated:
                parts.append(f"<p>All {rated} area-months with a recovery rate recovered 100%.</p>")
    else:
        parts.append(_no_data("recovery_monthly"))
    return Section("billing", title, True, "".join(parts))


def quality_section(inputs: d.ReportInputs, cfg: ReportConfig) -> Section:
    title = "Data quality (数据质量)"
    md, quarantine = inputs.get("meter_daily"), inputs.get("quarantine")
    findings = d.findings_counts(inputs.findings)
    docs = (
        f'<p>Great Expectations validation results: <a href="{escape(inputs.data_docs)}">Data Docs</a>.</p>'
        if inputs.data_docs
        else "<p>No Data Docs were built for this lake yet (the check stage writes them under reports/).</p>"
    )
    if md is None and quarantine is None and not findings.height:
        return Section("quality", title, False, _no_data("meter_daily, quarantine and findings are empty") + docs)
    parts = []
    if md is not None:
        q = d.quality_by_day(md)
        share = md.select((pl.col("quality") == "actual").mean()).item()
        parts.append(f"<p>Meter-days with an actual value: <b>{_pct(share)}</b> of {md.height:,}.</p>")
        parts.append(
            charts.column_chart(
                [x.isoformat()[5:] for x in q["date"]],
                {k: q[k].cast(pl.Float64).to_list() for k in ("actual", "estimated", "missing")},
                title="Meter-days by quality (meter_daily)",
                colors=charts.STATUS_COLORS,
                width=1100,
            )
        )
    if quarantine is not None:
        qc = d.quarantine_counts(quarantine, cfg.top_quarantine_reasons)
        parts.append(
            charts.bar_chart(
                [f"{a} · {b}" for a, b in qc.select("dataset", "reason").iter_rows()],
                qc["rows"].cast(pl.Float64).to_list(),
                title=f"Quarantined rows by dataset and reason ({quarantine.height:,} in the lake)",
                fmt=charts.integer,
                colors=[charts.PALETTE[3]],
            )
        )
    else:
        parts.append("<p>Nothing quarantined.</p>")
    if findings.height:
        parts.append("<h3>Findings by rule</h3>")
        parts.append(
            table(
                findings,
                [
                    ("mart", "table", _text),
                    ("rule", "rule", _text),
                    ("severity", "severity", _text),
                    ("findings", "findings", _int),
                ],
            )
        )
    parts.append(docs)
    return Section("quality", title, True, "".join(parts))


SECTIONS = (
    collection_section,
    loss_section,
    outages_section,
    anomalies_section,
    billing_section,
    rv.receivables_section,
    quality_section,
)


def sections() -> tuple[Callable[[d.ReportInputs, ReportConfig], Section], ...]:
    """The page's sections in order: SECTIONS with the monthly ones (report/monthly.py)
    after line loss, billing and data quality."""
    from . import monthly  # it builds on this module's helpers

    return (
        collection_section,
        loss_section,
        monthly.monthly_loss_section,
        outages_section,
        anomalies_section,
        billing_section,
        monthly.held_bills_section,
        rv.receivables_section,
        quality_section,
        monthly.gate_warnings_section,
    )


# -- the page ------------------------------------------------------------------------
CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC","Microsoft YaHei",sans-serif;
 margin:0;color:#1f2933;background:#f5f7fa}
header{background:#102a43;color:#fff;padding:1.2rem 2rem}
header h1{margin:0 0 .3rem;font-size:1.5rem}header .meta{color:#bcccdc;font-size:.9rem}
nav{padding:.5rem 2rem;background:#fff;border-bottom:1px solid #d9e2ec;position:sticky;top:0}
nav a{margin-right:1rem;color:#0072B2;text-decoration:none;font-size:.9rem}
main{max-width:1240px;margin:0 auto;padding:1rem 2rem 3rem}
section{background:#fff;border:1px solid #d9e2ec;border-radius:6px;padding:1rem 1.4rem;margin:1rem 0}
h2{margin:.2rem 0 .8rem;font-size:1.25rem}h3{font-size:1rem;margin:1.2rem 0 .4rem}
.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}
.card{background:#fff;border:1px solid #d9e2ec;border-radius:6px;padding:.7rem 1rem;min-width:170px;flex:1}
.card .label{font-size:.8rem;color:#52606d}.card .value{font-size:1.4rem;font-weight:600}
.card .sub{font-size:.75rem;color:#829ab1}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:1rem}
table{border-collapse:collapse;width:100%;font-size:.85rem;margin:.4rem 0 1rem}
th,td{border-bottom:1px solid #e4e7eb;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f4f8;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.nodata{color:#829ab1;font-style:italic;padding:.6rem 0}.why{font-size:.8rem}
footer{color:#829ab1;font-size:.8rem;text-align:center;padding:1rem}
svg{display:block;margin:.4rem 0}
"""


def _summary_cards(inputs: d.ReportInputs) -> str:
    cards = []
    coll = inputs.get("collection_daily")
    if coll is not None:
        rate = coll.select(pl.col("meters_read").sum() / pl.col("meters_total").sum()).item()
        cards.append(_card("collection success 采集成功率", _pct(rate), "Σ read / Σ in service"))
    daily = inputs.get("area_loss_daily")
    if daily is not None:
        ok = daily.filter(pl.col("status") != "uncomputable")
        supply, loss = ok.select(pl.col("supply_kwh").sum(), pl.col("loss_kwh").sum()).row(0)
        cards.append(_card("area loss rate 台区线损率", _pct(loss / supply) if supply else "–", "computable area-days"))
        high = daily.filter(pl.col("status") == "high")["area_id"].n_unique()
        cards.append(_card("high-loss areas 高损台区", _int(high), "with at least one high day"))
    anomalies = inputs.get("anomalies")
    if anomalies is not None:
        cards.append(_card("meters flagged 异常表计", _int(anomalies["meter_id"].n_unique()), "anomalies"))
    bills = inputs.get("bills_monthly")
    if bills is not None:
        cards.append(_card("billed 应收电费", f"{_num(bills['amount_yuan'].sum())} yuan", ", ".join(inputs.months)))
    quarantine = inputs.get("quarantine")
    cards.append(
        _card("quarantined rows 隔离", _int(quarantine.height if quarantine is not None else 0), "all datasets")
    )
    return f'<div class="cards">{"".join(cards)}</div>'


def _short_notes(notes: list[str], limit: int = 240) -> str:
    """A stage's notes on one line, cut at ``limit`` characters (the run record has them all)."""
    text = "; ".join(notes)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "… (see the run record)"


def _run_block(inputs: d.ReportInputs) -> str:
    if not inputs.run:
        return ""
    stages = inputs.run.get("stages", {})
    rows = pl.DataFrame(
        {
            "stage": list(stages),
            "rows": [sum((s.get("rows") or {}).values()) for s in stages.values()],
            "seconds": [s.get("seconds") for s in stages.values()],
            "notes": [_short_notes(s.get("notes") or []) for s in stages.values()],
        },
        schema={"stage": pl.String, "rows": pl.Int64, "seconds": pl.Float64, "notes": pl.String},
    )
    return (
        f'<section id="run"><h2>Run {escape(str(inputs.run.get("run_id", "")))}</h2>'
        f"<p>Status {escape(str(inputs.run.get('status', '')))}, "
        f"{escape(str(inputs.run.get('start', '')))} to {escape(str(inputs.run.get('end', '')))}.</p>"
        + table(
            rows,
            [
                ("stage", "stage", _text),
                ("rows", "rows written", _int),
                ("seconds", "seconds", _num),
                ("notes", "notes", _text),
            ],
        )
        + "</section>"
    )


def render(inputs: d.ReportInputs, cfg: ReportConfig) -> tuple[str, list[Section]]:
    """The report page for ``inputs`` and its sections (pure: reads nothing)."""
    built = [build(inputs, cfg) for build in sections()]
    period = f"{inputs.dates[0]} to {inputs.dates[-1]}" if inputs.dates else "no dates in the lake"
    links = [f'<a href="#{s.key}">{escape(s.title.split(" (")[0])}</a>' for s in built]
    if inputs.dictionary:
        links.append(f'<a href="{escape(inputs.dictionary)}">Data dictionary</a>')
    if inputs.data_docs:
        links.append(f'<a href="{escape(inputs.data_docs)}">Data Docs</a>')
    body = "".join(
        f'<section id="{s.key}" data-has-data="{str(s.has_data).lower()}"><h2>{escape(s.title)}</h2>{s.body}</section>'
        for s in built
    )
    run = f"run {escape(inputs.run_id)} · " if inputs.run_id else ""
    page = (
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>meterlake report {escape(period)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>meterlake report · 运行报告</h1><div class=meta>{run}{escape(period)} · "
        f"lake {escape(str(inputs.lake))}</div></header>"
        f"<nav>{''.join(links)}</nav><main>{_summary_cards(inputs)}{_run_block(inputs)}{body}</main>"
        "<footer>Generated by meterlake from the Parquet lake; figures are exact sums of the marts, "
        "rates are ratios of sums.</footer></body></html>\n"
    )
    return page, built


def report_name(dates: list[dt.date], run_id: str | None) -> str:
    if run_id:
        return f"report-{run_id}.html"
    if not dates:
        return "report-empty.html"
    if dates[0] == dates[-1]:
        return f"report-{dates[0]}.html"
    return f"report-{dates[0]}_{dates[-1]}.html"


def build_report(
    lake: Path | Lake,
    out: Path | None = None,
    *,
    dates: list[dt.date] | None = None,
    run_id: str | None = None,
    config: ReportConfig | None = None,
    config_dir: Path | None = None,
) -> Path:
    """Write the report of ``dates`` (default: the latest month the lake holds); return its path.

    ``out`` defaults to ``LAKE/reports/report-<run id>.html`` (or ``report-<dates>.html``).
    Relative links (Data Docs, dictionary) are written relative to ``LAKE/reports``; a
    report written elsewhere gets them rewritten relative to its own folder.
    """
    lake = lake if isinstance(lake, Lake) else Lake(Path(lake))
    if config is None and config_dir is None:
        from ..settings import Settings

        config_dir = Settings().config_dir  # METERLAKE_CONFIG_DIR, as the pipeline reads it
    cfg = config or load_config(config_dir).report
    inputs = d.load(lake, dates, run_id)
    rv.load(lake, inputs)
    path = Path(out) if out is not None else lake.reports / report_name(inputs.dates, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent.resolve() != lake.reports.resolve():
        rel = Path(os.path.relpath(lake.reports.resolve(), path.parent.resolve()))
        inputs.data_docs = (rel / inputs.data_docs).as_posix() if inputs.data_docs else None
        inputs.dictionary = (rel / inputs.dictionary).as_posix() if inputs.dictionary else None
    page, _ = render(inputs, cfg)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
