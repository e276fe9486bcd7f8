"""The report's outages section (停电与供电可靠性): reliability per feeder and area, the
plan compliance list and the frequent-outage customers. Pure: frames in, HTML out."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from . import data as d

if TYPE_CHECKING:
    from ..publish import ReportConfig
    from .html import Section

#: marts the section reads (added to the report's inputs)
MARTS = ("outage_events", "reliability_monthly", "outage_plan_checks", "frequent_outage_customers")


def reliability_table(frame: pl.DataFrame, scope: str, top: int) -> pl.DataFrame:
    """The scope's rows, least reliable first (lowest RS-1)."""
    return frame.filter(pl.col("scope") == scope).sort(["rs1", "scope_id"], nulls_last=True).head(top)


def outages_section(inputs: d.ReportInputs, cfg: ReportConfig) -> Section:
    from .html import Section, _card, _int, _no_data, _num, _pct, _text, table

    title = "Outages and supply reliability (停电与供电可靠性)"
    events = inputs.get("outage_events")
    rel = inputs.get("reliability_monthly")
    if events is None and rel is None:
        return Section("outages", title, False, _no_data("no outage events or reliability rows for these dates"))
    parts: list[str] = []
    if events is not None:
        real = events.filter(~pl.col("momentary"))
        by_cause = {c: real.filter(pl.col("cause") == c).height for c in ("fault", "planned", "temporary")}
        parts.append(
            '<div class="cards">'
            + _card("area outages 台区停电", f"{real.filter(pl.col('level') == 'area').height:,}")
            + _card("customer outages 单户停电", f"{real.filter(pl.col('level') == 'customer').height:,}")
            + _card(
                "faults 故障",
                f"{by_cause['fault']:,}",
                f"planned {by_cause['planned']}, temporary {by_cause['temporary']}",
            )
            + _card("momentary 瞬时", f"{events.height - real.height:,}", "≤ 3 min, in no index")
            + "</div>"
        )
    if rel is not None:
        cols = [
            ("month", "month", _text),
            ("scope_id", "id", _text),
            ("customers_served", "customers 用户数", _int),
            ("customer_interruptions", "interruptions 停电户次", _int),
            ("customer_hours", "customer-hours 停电时户数", _num),
            ("saifi", "SAIFI", _num),
            ("saidi_hours", "SAIDI h", _num),
            ("rs1", "RS-1 供电可靠率", _pct),
            ("rs1_unplanned", "RS-1 faults only", _pct),
        ]
        for scope, label in (
            ("org", "Supply units (供电单位)"),
            ("feeder", "Feeders (线路)"),
            ("area", "Areas (台区), least reliable first"),
        ):
            rows = reliability_table(rel, scope, cfg.top_anomalies)
            if rows.height:
                parts.append(f"<h3>{label}</h3>" + table(rows, cols))
    plans = inputs.get("outage_plan_checks")
    parts.append("<h3>Outage plans (停电计划执行), deviations first</h3>")
    if plans is None:
        parts.append(_no_data("no outage plans for these months"))
    else:
        ordered = plans.with_columns((pl.col("deviations") == "").alias("_ok")).sort("_ok", "planned_start")
        parts.append(
            table(
                ordered,
                [
                    ("plan_id", "plan 计划", _text),
                    ("kind", "kind", _text),
                    ("area_id", "area 台区", _text),
                    ("planned_start", "planned start", _text),
                    ("status", "status", _text),
                    ("notice_lead_hours", "notice h 提前通知", _num),
                    ("planned_min", "planned min", _num),
                    ("actual_min", "actual min", _num),
                    ("customers_in_scope", "in scope", _int),
                    ("customers_affected", "affected", _int),
                    ("deviations", "deviations 偏差", _text),
                ],
            )
        )
    frequent = inputs.get("frequent_outage_customers")
    parts.append("<h3>Frequent-outage customers (频繁停电用户)</h3>")
    if frequent is None:
        parts.append(_no_data("no customer above the configured count"))
    else:
        parts.append(
            table(
                frequent.head(cfg.top_anomalies),
                [
                    ("month", "month", _text),
                    ("customer_id", "customer 用户", _text),
                    ("area_id", "area 台区", _text),
                    ("interruptions", "interruptions", _int),
                    ("fault_interruptions", "faults", _int),
                    ("interruption_hours", "hours", _num),
                    ("threshold", "over", _int),
                ],
            )
        )
    return Section("outages", title, True, "".join(parts))
