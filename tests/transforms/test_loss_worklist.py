"""The monthly loss work list on hand-made months and diagnoses; figures worked out by hand."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from meterlake.schemas.area_loss_monthly import AREA_LOSS_MONTHLY
from meterlake.schemas.loss_diagnosis import LOSS_DIAGNOSIS
from meterlake.schemas.loss_worklist_monthly import ACTIONS
from meterlake.transforms.loss_worklist import worklist


def month_row(
    month: str, area: str, status: str, supply: float | None, sales: float, reason: str | None = None
) -> dict:
    row = dict.fromkeys(AREA_LOSS_MONTHLY.names)
    loss = None if supply is None else supply - sales
    row.update(
        month=month,
        area_id=area,
        feeder_id="F1",
        area_class="default",
        status=status,
        reason=reason,
        supply_kwh=supply,
        sales_kwh=sales,
        loss_kwh=loss,
        loss_rate=None if supply is None else loss / supply,
        band_low=0.0,
        band_high=0.10,
    )
    return row


def finding(area: str, kind: str, meter: str, rank: int, score: float, day: int = 31) -> dict:
    row = dict.fromkeys(LOSS_DIAGNOSIS.names)
    row.update(
        date=dt.date(2026, 1, day), area_id=area, kind=kind, meter_id=meter, rank=rank, score=score, evidence="{}"
    )
    return row


MONTHLY = pl.DataFrame(
    [
        # H: high in November, December and January: 3 months in a row
        month_row("2025-11", "H", "high", 1000.0, 850.0),
        month_row("2025-12", "H", "high", 1000.0, 860.0),
        month_row("2026-01", "H", "high", 1000.0, 870.0),  # loss 130, at stake 130 - 0.10 x 1000 = 30
        # N: negative in January only (normal before): 1 month
        month_row("2025-12", "N", "normal", 2000.0, 1900.0),
        month_row("2026-01", "N", "negative", 2000.0, 2050.0),  # at stake 0 x 2000 - (-50) = 50
        # U: master unread; its run broken by a month the lake lacks (November)
        month_row("2025-10", "U", "uncomputable", None, 400.0, "master_missing"),
        month_row("2025-12", "U", "uncomputable", None, 400.0, "master_missing"),
        month_row("2026-01", "U", "uncomputable", None, 400.0, "master_missing"),  # at stake 0.10 x 400 = 40
        month_row("2026-01", "OK", "normal", 1000.0, 950.0),
    ],
    schema=AREA_LOSS_MONTHLY.schema,
)

DIAGNOSIS = pl.DataFrame(
    [
        finding("H", "theft_candidate", "T1", 1, 0.9),
        finding("H", "theft_candidate", "T2", 2, 0.8),
        finding("H", "mapping_suspect", "P1", 1, 0.5),
        finding("H", "theft_candidate", "T0", 1, 0.99, day=30),  # an earlier window: not used
        finding("N", "theft_candidate", "T9", 1, 0.7),
        finding("N", "multiplier_suspect", "X1", 1, 0.6),
        finding("OK", "theft_candidate", "T5", 1, 0.9),  # a normal area is no work item
    ],
    schema=LOSS_DIAGNOSIS.schema,
)


def test_work_items_ranked_by_kwh_at_stake_with_runs_suspects_and_actions():
    got = worklist(MONTHLY, DIAGNOSIS, "2026-01")
    cols = ("rank", "area_id", "issue", "kwh_at_stake", "consecutive_months", "suspect_kind", "suspect_meter_id")
    assert got.select(cols).rows() == [
        (1, "N", "negative", pytest.approx(50.0), 1, "multiplier_suspect", "X1"),
        (2, "U", "uncomputable", pytest.approx(40.0), 2, None, None),
        (3, "H", "high", pytest.approx(30.0), 3, "mapping_suspect", "P1"),
    ]
    assert got.select("action_zh", "action_en").rows() == [
        ACTIONS["multiplier_suspect"],
        ACTIONS["master_missing"],
        ACTIONS["mapping_suspect"],
    ]
    # H's suspects: rank 1 of each kind (mapping before theft), then theft's rank 2
    h = json.loads(got.filter(pl.col("area_id") == "H")["suspects"].item())
    assert [(s["kind"], s["meter_id"]) for s in h] == [
        ("mapping_suspect", "P1"),
        ("theft_candidate", "T1"),
        ("theft_candidate", "T2"),
    ]


def test_suspect_order_is_configuration():
    order = {"high": ("theft_candidate", "mapping_suspect"), "negative": ("theft_candidate",)}
    got = worklist(MONTHLY, DIAGNOSIS, "2026-01", suspects=1, order=order)
    h = got.filter(pl.col("area_id") == "H")
    assert h.select("suspect_meter_id", "action_en").row(0) == ("T1", ACTIONS["theft_candidate"][1])
    assert len(json.loads(h["suspects"].item())) == 1


def test_a_month_without_work_is_empty():
    calm = MONTHLY.filter(pl.col("area_id") == "OK")
    assert worklist(calm, DIAGNOSIS, "2026-01").height == 0


def test_the_balances_weak_findings_name_no_suspect():
    # U's only finding is a weak one of the balance: U stays a work item without a suspect;
    # N's weak finding W1 (rank 2) is not among its suspects, T9 and X1 still are
    weak = pl.DataFrame(
        [
            {**finding("U", "theft_candidate", "W0", 1, 0.06), "evidence": '{"weak":true}'},
            {**finding("N", "theft_candidate", "W1", 2, 0.05), "evidence": '{"weak":true}'},
        ],
        schema=LOSS_DIAGNOSIS.schema,
    )
    got = worklist(MONTHLY, pl.concat([DIAGNOSIS, weak]), "2026-01")
    assert got.filter(pl.col("area_id") == "U").select("suspect_meter_id", "suspects").row(0) == (None, None)
    n = json.loads(got.filter(pl.col("area_id") == "N")["suspects"].item())
    assert [s["meter_id"] for s in n] == ["X1", "T9"]
