"""Every suite runs on good and on bad data, through Great Expectations.

Each table gets a small hand-made good partition and a bad variant that breaks known
rules; the expected failures (rule, observed value) are worked out by hand in the
comments, not copied from the code. Columns a case does not care about are filled
from the table's contract (codes: the first code; required: a neutral value; the rest
empty), so the cases keep working as contracts gain columns. GX runs twice for the
whole module (all good tables, then all bad tables) to keep the file fast.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from meterlake.checks.inputs import PartitionData, build_input, infer_grain, wanted_partitions
from meterlake.checks.runner import CheckReport, SuiteInput, blocking_message, run_checks, warning_notes
from meterlake.checks.suites import (
    EXPECTED_TABLES,
    TableSuite,
    build_suites,
    contract,
    contract_suite,
    generic_suite,
    suite_for,
)
from meterlake.checks.thresholds import CheckThresholds
from meterlake.schemas._base import Table
from meterlake.schemas.curves import SLOTS
from meterlake.schemas.meter_daily import METER_DAILY

D1 = dt.date(2026, 1, 1)
TS = dt.datetime(2026, 1, 2, 3, 0, 0)


def _neutral(dtype: pl.DataType) -> object:
    if dtype == pl.String:
        return "x"
    if dtype == pl.Date:
        return D1
    if isinstance(dtype, pl.Datetime):
        return TS
    if dtype == pl.Boolean:
        return False
    return 0


def complete(table: Table | None, frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with every other contract column: required ones neutral, the rest empty."""
    if table is None:
        return frame
    n = frame.height
    cols = []
    for c in table.columns:
        if c.name == table.partition_by:
            continue
        if c.name in frame.columns:
            cols.append(frame[c.name].cast(c.dtype))
        elif not c.nullable:
            cols.append(pl.Series(c.name, [c.codes[0] if c.codes else _neutral(c.dtype)] * n, dtype=c.dtype))
        else:
            cols.append(pl.Series(c.name, [None] * n, dtype=c.dtype))
    extra = [frame[c] for c in frame.columns if c not in table.names]
    return pl.DataFrame(cols + extra)


def _lineage(n: int, dataset: str) -> dict[str, list]:
    return {
        "source_file": [f"{dataset}/{dataset}-20260101.csv"] * n,
        "source_line": list(range(2, n + 2)),
        "delivered_at": [TS] * n,
    }


# -- good partitions (frame without the partition column) ------------------------------


def good_archive() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "meter_id": ["F1", "A1", "C1"],
            "customer_id": [None, None, "U1"],
            "area_id": [None, "A1", "A1"],
            "feeder_id": ["F1", "F1", "F1"],
            "role": ["feeder_head", "area_master", "customer"],
            "customer_class": [None, None, "resident"],
            "tariff_id": [None, None, "RES_TIER"],
            "multiplier": [100.0, 40.0, 1.0],
            "register_max": [1e6, 1e6, 1e6],
            "prepay": [0, 0, 1],
            **_lineage(3, "archive"),
        }
    )


def good_curves() -> pl.DataFrame:
    return pl.DataFrame({"meter_id": ["C1", "C2"], **{s: [0.25, 0.5] for s in SLOTS}, **_lineage(2, "curves")})


def good_registers() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "meter_id": ["C1", "C2"],
            "total_kwh": [100.0, 2000.0],
            "sharp_kwh": [10.0, 200.0],
            "peak_kwh": [30.0, 600.0],
            "flat_kwh": [30.0, 600.0],
            "valley_kwh": [30.0, 600.0],
            "reverse_kwh": [0.0, 5.0],
            "remaining_yuan": [12.5, None],
            "purchase_count": [3, None],
            **_lineage(2, "registers"),
        }
    )


def good_events() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "meter_id": ["C1", "C1"],
            "event_time": [dt.datetime(2026, 1, 1, 8, 0), dt.datetime(2026, 1, 1, 9, 30)],
            "event_code": ["POWER_OFF", "POWER_ON"],
            **_lineage(2, "events"),
        }
    )


def good_purchases() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "txn_id": ["T1", "T2"],
            "txn_type": ["purchase", "reversal"],
            "ref_txn_id": [None, "T1"],
            "customer_id": ["U1", "U1"],
            "meter_id": ["C1", "C1"],
            "purchase_time": [dt.datetime(2026, 1, 1, 10, 0), dt.datetime(2026, 1, 1, 10, 5)],
            "amount_yuan": [100.0, 100.0],
            "purchase_seq": [4, 4],
            "channel": ["wechat", "counter"],
            "card_last4": ["1234", "1234"],
            "card_token": ["tok", "tok"],
            **_lineage(2, "purchases"),
        }
    )


def good_meter_daily() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "meter_id": ["A1", "C1", "C2", "C3"],
            "customer_id": [None, "U1", "U2", "U3"],
            "area_id": ["A1"] * 4,
            "role": ["area_master", "customer", "customer", "customer"],
            "multiplier": [40.0, 1.0, 1.0, 1.0],
            "kwh": [400.0, 10.0, 20.0, 30.0],
            # 40 + 120 + 120 + 120 = 400 for the master meter; 1 + 3 + 3 + 3 = 10 ... for the others
            "kwh_sharp": [40.0, 1.0, 2.0, 3.0],
            "kwh_peak": [120.0, 3.0, 6.0, 9.0],
            "kwh_flat": [120.0, 3.0, 6.0, 9.0],
            "kwh_valley": [120.0, 3.0, 6.0, 9.0],
            "reverse_kwh": [0.0] * 4,
            "quality": ["actual"] * 4,
        }
    )


def good_collection() -> pl.DataFrame:
    # overall 149 / 150 = 0.9933 >= 0.98; each row >= its 0.98 target
    return pl.DataFrame(
        {
            "area_id": ["A1", "A2"],
            "feeder_id": ["F1", "F1"],
            "scope": ["area", "area"],
            "meters_total": [100, 50],
            "meters_read": [99, 50],
            "success_rate": [0.99, 1.0],
            "curves_complete": [97, 50],
            "target_rate": [0.98, 0.98],
        }
    )


def good_loss(entity: str) -> Callable[[], pl.DataFrame]:
    def build() -> pl.DataFrame:
        # 1 of 5 uncomputable = 0.20, exactly the default maximum share
        supply = [1000.0, 500.0, 100.0, 200.0, 300.0]
        parts = (
            {"master_kwh": [990.0, 500.0, 100.0, 200.0, 300.0], "pv_export_kwh": [10.0, 0.0, 0.0, 0.0, 0.0]}
            if entity == "area_id"
            else {
                "area_masters_kwh": [900.0, 500.0, None, 190.0, 280.0],
                "direct_customers_kwh": [30.0, 20.0, None, 0.0, 0.0],
            }
        )
        return pl.DataFrame(
            {
                entity: ["X1", "X2", "X3", "X4", "X5"],
                "supply_kwh": supply,
                "sales_kwh": [930.0, 520.0, None, 190.0, 280.0],
                "loss_kwh": [70.0, -20.0, None, 10.0, 20.0],
                "loss_rate": [0.07, -0.04, None, 0.05, 20.0 / 300.0],
                "status": ["normal", "negative", "uncomputable", "normal", "normal"],
                **parts,
            }
        )

    return build


def good_anomalies() -> pl.DataFrame:
    table = contract("anomalies", "marts")
    assert table is not None
    first_points = next(c.name for c in table.columns if c.name.endswith("_points"))
    return pl.DataFrame(
        {
            "meter_id": ["C1", "C2"],
            "customer_id": ["U1", "U2"],
            "area_id": ["A1", "A1"],
            "score": [0.9, 0.5],
            "rank": [1, 2],
            "reasons": ["cover_open", "zero_run"],
            first_points: [0.9, 0.5],  # score = Σ points, the other indicators gave none
        }
    )


def good_worklist() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "rank": [1, 2, 3],
            "area_id": ["A1", "A2", "A3"],
            "issue": ["high", "uncomputable", "negative"],
            "kwh_at_stake": [120.0, 40.0, 40.0],
            "consecutive_months": [1, 3, 1],
            "action_zh": ["现场稽查窃电", "补抄总表", "核对倍率"],
            "action_en": ["inspect for theft on site", "read the master meter", "check the multiplier"],
        }
    )


def good_bills() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": ["U1", "U3"],
            "tariff_id": ["RES_TIER", "COM_TOU"],
            "kwh_total": [300.0, 100.0],
            "kwh_sharp": [30.0, 10.0],
            "kwh_peak": [90.0, 30.0],
            "kwh_flat": [90.0, 30.0],
            "kwh_valley": [90.0, 30.0],
            "kwh_tier1": [300.0, 100.0],
            "kwh_tier2": [0.0, 0.0],
            "kwh_tier3": [0.0, 0.0],
            # 300 x 0.538 = 161.40; 10 x 1.10 + 30 x 0.90 + 30 x 0.60 + 30 x 0.30 = 65.00
            "amount_exact_yuan": [161.4, 65.0],
            "amount_yuan": [161.40, 65.00],
        }
    )


def good_prepay() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": ["U1", "U2"],
            "meter_id": ["C1", "C2"],
            "purchases_yuan": [100.0, 0.0],
            "consumption_yuan": [5.38, 10.76],
            "balance_yuan": [134.62, 15.0],
            "meter_balance_yuan": [134.5, 15.2],
            "difference_yuan": [-0.12, 0.2],  # 134.50 - 134.62; 15.20 - 15.00
            "status": ["ok", "low"],
        }
    )


def good_quarantine() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "source_file": ["registers/r1.csv", "registers/r2.csv"],
            "line": [5, None],
            "reason": ["field_count", "missing_columns"],
            "detail": ["expected 11 fields, found 9", "missing total_kwh"],
            "raw": ["C9,2026-01-01,1", None],
        },
        schema_overrides={"line": pl.Int64},
    )


def good_vee() -> pl.DataFrame:
    return pl.DataFrame(
        {"meter_id": ["C1", "C2"], "rule": ["vee.interval.spike"] * 2, "severity": ["warning", "error"]}
    )


def good_recovery() -> pl.DataFrame:
    # 1.0000000000000002: a rate of 1 as floating point division can give it
    return pl.DataFrame(
        {
            "scope": ["area", "area"],
            "scope_id": ["A1", "A2"],
            "area_id": ["A1", "A2"],
            "recovery_rate": [1.0000000000000002, 0.9],
        }
    )


def good_receivables() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": ["U1", "U2", "U3"],
            "arrears_yuan": [-20.0, 150.0, 500.0],
            "overdue_yuan": [0.0, 50.0, 500.0],
            "overdue_days": [0, 10, 95],
            "aging": ["current", "1-30", "91-180"],
            "late_fee_yuan": [0.0, 0.5, 15.0],
        }
    )


def good_credit() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": ["U1", "U2"],
            "credit_score": [100.0, 37.5],
            "credit_grade": ["A", "D"],
            "customer_tier": ["bronze", "gold"],
            "late_points": [0.0, 12.5],
            "overdue_points": [0.0, 20.0],
            "arrears_points": [0.0, 15.0],
            "prepay_points": [0.0, 0.0],
            "theft_points": [0.0, 15.0],
        }
    )


def good_dunning() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": [dt.date(2026, 1, 31)] * 2,
            "rank": [1, 2],
            "customer_id": ["U1", "U2"],
            "days_overdue": [45, 3],
            "action": ["stop_notice", "sms"],
            "disconnect_not_before": [dt.date(2026, 2, 3), None],
        }
    )


def _full(table: str, rows: dict[str, list]) -> pl.DataFrame:
    """A frame with every column of ``table``'s contract (partition key left out)."""
    from meterlake.publish.registry import marts

    t = marts()[table]
    n = len(next(iter(rows.values())))
    cols = {c.name: rows.get(c.name, [None] * n) for c in t.columns if c.name != t.partition_by}
    return pl.DataFrame(cols, schema={c: t.schema[c] for c in cols})


def good_outage_events() -> pl.DataFrame:
    start = dt.datetime(2026, 1, 1, 10)
    return _full(
        "outage_events",
        {
            "outage_id": ["A-A1-1", "C-M1-1"],
            "level": ["area", "customer"],
            "source": ["master", "meter"],
            "start_time": [start, start],
            "end_time": [start + dt.timedelta(hours=1), start + dt.timedelta(minutes=30)],
            "duration_min": [60.0, 30.0],
            "momentary": [False, False],
            "customers_affected": [40, 1],
            "cause": ["fault", "planned"],
        },
    )


def good_reliability() -> pl.DataFrame:
    return _full(
        "reliability_monthly",
        {
            "scope": ["area", "feeder"],
            "scope_id": ["A1", "F1"],
            "customers_served": [4, 6],
            "customer_interruptions": [9, 9],
            "customer_interruptions_unplanned": [5, 5],
            "rs1": [1 - 3.125 / 744, 1 - 12.5 / 6 / 744],
            "rs1_unplanned": [1 - 1.125 / 744, 1 - 4.5 / 6 / 744],
        },
    )


def good_plan_checks() -> pl.DataFrame:
    return _full("outage_plan_checks", {"plan_id": ["P1"], "status": ["executed"], "kind": ["planned"]})


def good_frequent() -> pl.DataFrame:
    return _full("frequent_outage_customers", {"customer_id": ["C1"], "interruptions": [5]})


def good_edits() -> pl.DataFrame:
    return pl.DataFrame({"meter_id": ["C1", "C1"], "slot": [5, 6], "kwh_meter": [0.2, 0.3]})


def good_mystery() -> pl.DataFrame:
    return pl.DataFrame({"area_id": ["A1"], "cause": ["theft"]})


#: (layer, table) -> (partition value, good frame builder)
GOOD: dict[tuple[str, str], tuple[str, Callable[[], pl.DataFrame]]] = {
    ("clean", "archive"): ("2026-01-01", good_archive),
    ("clean", "curves"): ("2026-01-01", good_curves),
    ("clean", "registers"): ("2026-01-01", good_registers),
    ("clean", "events"): ("2026-01-01", good_events),
    ("clean", "purchases"): ("2026-01-01", good_purchases),
    ("marts", "meter_daily"): ("2026-01-01", good_meter_daily),
    ("marts", "collection_daily"): ("2026-01-01", good_collection),
    ("marts", "vee_findings"): ("2026-01-01", good_vee),
    ("marts", "area_loss_daily"): ("2026-01-01", good_loss("area_id")),
    ("marts", "area_loss_monthly"): ("2026-01", good_loss("area_id")),
    ("marts", "feeder_loss_daily"): ("2026-01-01", good_loss("feeder_id")),
    ("marts", "feeder_loss_monthly"): ("2026-01", good_loss("feeder_id")),
    ("marts", "anomalies"): ("2026-01-01", good_anomalies),
    ("marts", "loss_worklist_monthly"): ("2026-01", good_worklist),
    ("marts", "bills_monthly"): ("2026-01", good_bills),
    ("marts", "prepay_daily"): ("2026-01-01", good_prepay),
    ("marts", "recovery_monthly"): ("2026-01", good_recovery),
    ("marts", "receivables_monthly"): ("2026-01", good_receivables),
    ("marts", "customer_credit_monthly"): ("2026-01", good_credit),
    ("marts", "dunning_list"): ("2026-01-31", good_dunning),
    ("marts", "outage_events"): ("2026-01-01", good_outage_events),
    ("marts", "reliability_monthly"): ("2026-01", good_reliability),
    ("marts", "outage_plan_checks"): ("2026-01", good_plan_checks),
    ("marts", "frequent_outage_customers"): ("2026-01", good_frequent),
    ("marts", "interval_edits"): ("2026-01-01", good_edits),
    ("marts", "quarantine"): ("registers", good_quarantine),
    ("marts", "mystery_mart"): ("2026-01-01", good_mystery),  # no contract: generic checks
}


def _set(frame: pl.DataFrame, row: int, **values: object) -> pl.DataFrame:
    """The frame with some cells of one row replaced."""
    idx = pl.int_range(pl.len())
    return frame.with_columns(
        pl.when(idx == row).then(pl.lit(v)).otherwise(pl.col(c)).cast(frame.schema[c]).alias(c)
        for c, v in values.items()
    )


#: table -> how its good frame is broken
BAD: dict[str, Callable[[pl.DataFrame], pl.DataFrame]] = {
    "archive": lambda f: _set(f, 2, multiplier=0.5),
    "curves": lambda f: pl.concat([_set(f, 0, p17=-0.1), f.head(1)]),
    "registers": lambda f: _set(f, 0, total_kwh=-5.0),
    "events": lambda f: _set(f, 1, event_code="EXPLODE"),
    "purchases": lambda f: _set(f, 0, card_last4="6222021234"),
    "meter_daily": lambda f: pl.concat(
        [_set(f, 1, kwh=-1.0, kwh_sharp=0.0, kwh_peak=0.0, kwh_flat=0.0, kwh_valley=-1.0), f.head(1)]
    ),
    "collection_daily": lambda f: _set(
        _set(f, 1, meters_read=60, success_rate=1.2), 0, meters_read=90, success_rate=0.9
    ),
    "vee_findings": lambda f: _set(f, 0, severity="blocking"),
    "area_loss_daily": lambda f: _set(
        _set(f, 1, status="bogus"),
        4,
        master_kwh=100.0,
        supply_kwh=100.0,
        sales_kwh=-50.0,
        loss_kwh=150.0,
        loss_rate=1.5,
    ),
    "area_loss_monthly": lambda f: _set(f, 0, loss_rate=0.7),
    "feeder_loss_daily": lambda f: pl.concat([f, f.tail(1)]),
    "feeder_loss_monthly": lambda f: _set(f, 3, area_masters_kwh=100.0),
    "anomalies": lambda f: _set(f, 1, score=float("nan"), rank=1),
    "loss_worklist_monthly": lambda f: _set(_set(f, 2, kwh_at_stake=-5.0, consecutive_months=0), 1, kwh_at_stake=150.0),
    "bills_monthly": lambda f: _set(_set(f, 0, amount_yuan=161.404), 1, kwh_tier1=90.0),
    "prepay_daily": lambda f: _set(f, 0, status="broke").drop("balance_yuan"),
    "recovery_monthly": lambda f: _set(f, 1, recovery_rate=1.5),
    "receivables_monthly": lambda f: _set(_set(f, 1, aging="31-90"), 2, overdue_yuan=600.0),
    "customer_credit_monthly": lambda f: _set(f, 1, credit_score=50.0),
    "dunning_list": lambda f: _set(f, 0, days_overdue=30, disconnect_not_before=dt.date(2026, 2, 1)),
    "outage_events": lambda f: _set(f, 0, duration_min=-5.0, customers_affected=0),
    "reliability_monthly": lambda f: _set(f, 1, rs1=1.2, customer_interruptions_unplanned=10),
    "outage_plan_checks": lambda f: _set(f, 0, status="maybe"),
    "frequent_outage_customers": lambda f: pl.concat([f, f]),
    "interval_edits": lambda f: _set(f, 1, slot=5),
    "quarantine": lambda f: _set(f, 0, reason="gremlins", line=0),
    "mystery_mart": lambda f: f.with_columns(card_no=pl.lit("6222021234567890")),
}

#: (table, rule, observed) expected to fail on the bad data, worked out by hand
EXPECTED_BAD: list[tuple[str, str, float]] = [
    ("archive", "archive.multiplier.at_least_1", 1),  # C1 at 0.5
    ("curves", "curves.key.unique", 1),  # C1 twice
    ("curves", "curves.slots.non_negative", -0.1),  # p17 of C1; warning
    ("registers", "registers.register.non_negative", 1),  # total -5
    ("registers", "registers.tou.sum", 1),  # 10 + 30 + 30 + 30 = 100 against -5; warning
    ("events", "events.event_code.codes", 1),
    ("purchases", "purchases.card.masked", 1),  # 10 characters kept
    ("meter_daily", "meter_daily.key.unique", 1),  # A1 twice
    ("meter_daily", "meter_daily.kwh.non_negative", 1),  # C1 at -1 (its TOU kWh add up to -1 too)
    ("collection_daily", "collection_daily.meters_read.within_total", 1),  # A2: 60 of 50
    ("collection_daily", "collection_daily.success_rate.definition", 1),  # A2: 1.2 > 1
    ("collection_daily", "collection_daily.success_rate.area_target", 1),  # A1: 0.98 - 0.9 > 0; warning, row level
    ("vee_findings", "vee_findings.findings.no_blocking", 1),  # a blocking VEE finding stops the run
    ("area_loss_daily", "area_loss_daily.status.codes", 1),  # X2 bogus
    ("area_loss_daily", "area_loss_daily.loss_rate.plausible", 1),  # X5: 100 - (-50) = 150 of 100; warning, row level
    ("area_loss_monthly", "area_loss_monthly.loss_rate.definition", 1),  # 0.7 x 1000 = 700 against 70
    ("feeder_loss_daily", "feeder_loss_daily.key.unique", 1),  # X5 twice
    ("feeder_loss_monthly", "feeder_loss_monthly.sales_kwh.identity", 1),  # X4: 100 + 0 against 190
    ("anomalies", "anomalies.score.finite", 1),  # NaN
    ("anomalies", "anomalies.rank.unique", 1),  # rank 1 twice
    ("anomalies", "anomalies.score.sum_of_points", 1),  # NaN is not 0.5
    ("loss_worklist_monthly", "loss_worklist_monthly.kwh_at_stake.non_negative", 1),  # A3 at -5
    ("loss_worklist_monthly", "loss_worklist_monthly.rank.by_kwh_at_stake", 1),  # A2 (rank 2): 150 above 120
    ("loss_worklist_monthly", "loss_worklist_monthly.consecutive_months.at_least_1", 1),  # A3 at 0
    ("bills_monthly", "bills_monthly.amount_yuan.rounded", 1),  # 161.404
    ("bills_monthly", "bills_monthly.tiers.sum", 1),  # 90 against 100
    ("prepay_daily", "prepay_daily.schema.columns", 1),  # balance_yuan dropped
    ("prepay_daily", "prepay_daily.status.codes", 1),
    ("recovery_monthly", "recovery_monthly.recovery_rate.range", 1),
    ("receivables_monthly", "receivables_monthly.aging.bucket", 1),  # 10 days is 1-30
    ("receivables_monthly", "receivables_monthly.overdue_yuan.within_arrears", 1),  # 600 of 500
    ("customer_credit_monthly", "customer_credit_monthly.credit_score.sum_of_points", 1),  # 100 - 62.5 is 37.5
    ("dunning_list", "dunning_list.stop_notice.overdue", 1),  # 30 days is not more than 30
    ("dunning_list", "dunning_list.stop_notice.notice_period", 1),  # 1 day's notice
    ("outage_events", "outage_events.duration.non_negative", 1),  # -5 min
    ("outage_events", "outage_events.area.customers", 1),  # an area outage of 0 customers
    ("reliability_monthly", "reliability_monthly.rs1.range", 1),  # 1.2
    ("reliability_monthly", "reliability_monthly.unplanned.subset", 1),  # 10 faults of 9
    ("outage_plan_checks", "outage_plan_checks.status.codes", 1),  # maybe
    ("frequent_outage_customers", "frequent_outage_customers.key.unique", 1),  # C1 twice
    ("interval_edits", "interval_edits.key.unique", 1),  # slot 5 twice
    ("quarantine", "quarantine.reason.codes", 1),
    ("quarantine", "quarantine.line.positive", 1),
    ("mystery_mart", "mystery_mart.pii.card_no", 1),
]

WARNINGS = {
    "curves.slots.non_negative",
    "registers.tou.sum",
    "collection_daily.success_rate.area_target",
    "area_loss_daily.loss_rate.plausible",
}


def _suite(layer: str, table: str) -> TableSuite:
    return suite_for(table, layer) or generic_suite(table, layer, "date", "date")


def _label(table: str) -> str:
    (layer, _), (value, _) = next((k, v) for k, v in GOOD.items() if k[1] == table)
    return f"{_suite(layer, table).partition_key}={value}"


def _inputs(tmp: Path, bad: bool) -> list[SuiteInput]:
    out = []
    for (layer, table), (value, build) in GOOD.items():
        suite = _suite(layer, table)
        frame = complete(contract(table, layer), build())
        if bad:
            frame = BAD[table](frame)
        path = tmp / table / f"{suite.partition_key}={value}" / "part-0.parquet"
        path.parent.mkdir(parents=True)
        frame.write_parquet(path, statistics=True)
        part = PartitionData(
            value=value,
            frame=pl.scan_parquet(path),
            schema=dict(pl.read_parquet_schema(path)),
            footers=(pq.read_metadata(path),),
        )
        inp, notes = build_input(suite, [part], row_level_max_rows=1000)
        assert notes == []
        out.append(inp)
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One GX context and Data Docs site for the module (suites are stored once)."""
    return tmp_path_factory.mktemp("site")


@pytest.fixture(scope="module")
def good_report(site: Path) -> CheckReport:
    return run_checks(_inputs(site / "good", bad=False), site / "gx", site / "docs", run_name="good")


@pytest.fixture(scope="module")
def bad_report(site: Path, good_report: CheckReport) -> CheckReport:
    return run_checks(_inputs(site / "bad", bad=True), site / "gx", site / "docs", run_name="bad")


def test_every_expected_table_has_a_contract_and_a_case() -> None:
    for layer, table in EXPECTED_TABLES:
        assert contract(table, layer) is not None, f"{layer}/{table} has no contract in schemas/"
    assert set(EXPECTED_TABLES) <= set(GOOD)
    assert {t for _, t in GOOD} == set(BAD) == {t for t, _, _ in EXPECTED_BAD}


@pytest.mark.parametrize(("layer", "table"), [pytest.param(*k, id=k[1]) for k in GOOD])
def test_good_data_passes_every_rule(good_report: CheckReport, layer: str, table: str) -> None:
    rows = good_report.findings.filter(pl.col("table") == table)
    suite = _suite(layer, table)
    assert rows.height == len(suite.rules) + len(suite.row_rules) > 0
    assert rows.filter(~pl.col("success")).select("rule", "observed", "evidence").to_dicts() == []


@pytest.mark.parametrize(("table", "rule", "observed"), [pytest.param(*e, id=e[1]) for e in EXPECTED_BAD])
def test_bad_data_fails_the_rule(bad_report: CheckReport, table: str, rule: str, observed: float) -> None:
    row = bad_report.findings.filter(pl.col("rule") == rule).to_dicts()
    assert len(row) == 1
    assert row[0]["success"] is False
    assert row[0]["table"] == table
    assert row[0]["partition"] == _label(table)
    assert row[0]["observed"] == pytest.approx(observed)
    assert row[0]["severity"] == ("warning" if rule in WARNINGS else "blocking")
    json.loads(row[0]["evidence"])


@pytest.mark.parametrize("table", [pytest.param(t, id=t) for _, t in GOOD])
def test_bad_data_fails_nothing_else(bad_report: CheckReport, table: str) -> None:
    failed = set(bad_report.failures.filter(pl.col("table") == table)["rule"])
    assert failed == {r for t, r, _ in EXPECTED_BAD if t == table}


def test_evidence_names_rows_and_columns(bad_report: CheckReport) -> None:
    def evidence(rule: str) -> dict:
        return json.loads(bad_report.findings.filter(pl.col("rule") == rule)["evidence"].item())

    rows = evidence("collection_daily.success_rate.area_target")["rows"]
    assert [(r["area_id"], r["success_rate_shortfall"]) for r in rows] == [("A1", pytest.approx(0.08))]
    assert evidence("area_loss_daily.loss_rate.plausible")["rows"] == [{"area_id": "X5", "loss_rate": 1.5}]
    assert evidence("prepay_daily.schema.columns")["missing_list"] == ["balance_yuan"]
    assert evidence("mystery_mart.pii.card_no")["pii_list"] == ["card_no"]


def test_blocking_message_names_expectation_table_and_partition(bad_report: CheckReport) -> None:
    msg = blocking_message(bad_report)
    assert "\n" not in msg
    first = bad_report.blocking.row(0, named=True)
    assert first["table"] == "archive"  # tables are reported in the order they are checked
    assert msg.startswith(
        "blocking expectation failed: archive.multiplier.at_least_1 (expect_column_values_to_be_between "
        "on multiplier_below_1: expected at most 0, found 1) in table clean/archive, partition snapshot_date=2026-01-01"
    )
    assert f"{bad_report.blocking.height - 1} more blocking" in msg


def test_one_finding_per_rule_named_in_english_and_chinese_on_the_page(bad_report: CheckReport) -> None:
    rows = bad_report.findings.filter(pl.col("table") == "meter_daily")
    assert rows["rule"].is_unique().all()
    assert rows.height == len(_suite("marts", "meter_daily").rules)
    assert set(rows.filter(~pl.col("success"))["rule"]) >= {"meter_daily.key.unique", "meter_daily.kwh.non_negative"}
    # the run's Data Docs page lists each failing rule with its title in English and Chinese
    (page,) = bad_report.validation_pages
    text = page.read_text(encoding="utf-8")
    assert "meter_daily.key.unique: (meter_id, date) is unique / 主键 meter_id, date 唯一，没有重复行" in text
    assert "date=2026-01-01" in text


def test_warnings_become_notes_not_blocking(bad_report: CheckReport) -> None:
    notes = warning_notes(bad_report)
    assert len(notes) == len(WARNINGS)
    assert all(n.startswith("warning: ") for n in notes)
    assert not set(bad_report.blocking["rule"]) & WARNINGS


def test_data_docs_pages_exist(good_report: CheckReport) -> None:
    assert good_report.data_docs_index is not None and good_report.data_docs_index.is_file()
    assert good_report.missing_pages == []
    # one validation page per run: the gate's suite over every finding of the run
    (page,) = good_report.validation_pages
    assert page.is_file() and page.stat().st_size > 1000
    assert "meterlake.gate" in good_report.data_docs_index.read_text(encoding="utf-8")


def test_severity_override_and_off() -> None:
    suites = build_suites(
        CheckThresholds(severity={"archive.multiplier.at_least_1": "warning", "archive.prepay.flag": "off"})
    )
    rules = {r.rule: r.severity for r in suites["archive"].rules}
    assert rules["archive.multiplier.at_least_1"] == "warning"
    assert "archive.prepay.flag" not in rules


def test_unknown_rule_in_overrides_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"archive\.multiplier\.atleast1"):
        build_suites(CheckThresholds(severity={"archive.multiplier.atleast1": "warning"}))


def test_thresholds_move_the_bounds() -> None:
    th = CheckThresholds.model_validate({"meter_daily": {"max_missing_share": 0.5}})
    rule = next(r for r in build_suites(th)["meter_daily"].rules if r.rule == "meter_daily.quality.missing_share")
    assert rule.max_value == 0.5


def test_a_rule_on_a_column_the_contract_lost_is_left_out() -> None:
    slim = Table(
        name="meter_daily",
        description="without TOU columns",
        partition_by="date",
        key=METER_DAILY.key,
        columns=tuple(
            c for c in METER_DAILY.columns if c.name not in ("kwh_sharp", "kwh_peak", "kwh_flat", "kwh_valley")
        ),
    )
    rules = {r.rule for r in contract_suite(slim).rules}
    assert "meter_daily.tou.sum" not in rules
    assert {"meter_daily.kwh.non_negative", "meter_daily.key.unique"} <= rules


def test_shipped_toml_is_the_documented_default() -> None:
    from meterlake.config import load

    assert load("checks", CheckThresholds) == CheckThresholds()


@pytest.mark.parametrize(
    ("values", "grain"),
    [
        pytest.param(["2026-01-01", "2026-01-02"], "date", id="date"),
        pytest.param(["2026-01"], "month", id="month"),
        pytest.param(["registers", "curves"], "all", id="all"),
        pytest.param([], "all", id="empty"),
    ],
)
def test_infer_grain(values: list[str], grain: str) -> None:
    assert infer_grain(values) == grain


def test_wanted_partitions_follow_the_run_dates() -> None:
    suites = build_suites()
    dates = [dt.date(2026, 1, 31), dt.date(2026, 2, 1)]
    # meter_daily expects every date, present or not
    assert wanted_partitions(suites["meter_daily"], ["2026-01-31"], dates) == ["2026-01-31", "2026-02-01"]
    # anomalies are sparse: only the dates present
    assert wanted_partitions(suites["anomalies"], ["2026-01-31", "2026-01-05"], dates) == ["2026-01-31"]
    # monthly marts: the months the dates touch
    assert wanted_partitions(suites["bills_monthly"], ["2026-01"], dates) == ["2026-01", "2026-02"]
    # quarantine: every partition
    assert wanted_partitions(suites["quarantine"], ["registers", "curves"], dates) == ["curves", "registers"]
