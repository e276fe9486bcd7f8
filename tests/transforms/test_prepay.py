"""Prepayment: purchases net of reversals, findings, daily balances, recovery.

Expected values are worked out by hand in the comments (AGR_FLAT at 0.50 yuan/kWh
keeps the arithmetic visible; RES_TIER where the tier matters).
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from meterlake.schemas.prepay_daily import PREPAY_DAILY
from meterlake.schemas.prepay_findings import PREPAY_FINDINGS, RULES
from meterlake.transforms.billing import DAY_COLUMNS, price_days
from meterlake.transforms.prepay import (
    PURCHASE_COLUMNS,
    PrepayRules,
    daily_net_purchases,
    prepay_balances,
    purchase_findings,
    purchase_ledger,
    unmatched_transactions,
)
from meterlake.transforms.tariffs import TariffBook, price_calendar

REPO = Path(__file__).resolve().parents[2]
BOOK = TariffBook.model_validate(tomllib.loads((REPO / "config" / "tariffs.toml").read_text(encoding="utf-8")))
CAL = price_calendar(BOOK, dt.date(2026, 1, 1), dt.date(2026, 12, 31))
RULES_DEFAULT = PrepayRules()
SETTINGS = settings(derandomize=True, max_examples=50, deadline=None)


def jan(d: int) -> dt.date:
    return dt.date(2026, 1, d)


def txns(rows: list[dict]) -> pl.LazyFrame:
    base = {"ref_txn_id": None, "customer_id": "C1", "meter_id": "M1", "purchase_seq": None}
    full = []
    for r in rows:
        row = {**base, **r}
        row.setdefault("purchase_time", dt.datetime.combine(row["purchase_date"], dt.time(10, 0)))
        full.append(row)
    schema: dict[str, Any] = {
        "txn_id": pl.String,
        "txn_type": pl.String,
        "ref_txn_id": pl.String,
        "customer_id": pl.String,
        "meter_id": pl.String,
        "purchase_time": pl.Datetime("us"),
        "amount_yuan": pl.Float64,
        "purchase_seq": pl.Int64,
        "purchase_date": pl.Date,
    }
    return pl.DataFrame(full, schema=schema).select(PURCHASE_COLUMNS).lazy()


def buy(txn: str, day: int, amount: float, seq: int | None = None, **kw) -> dict:
    return {
        "txn_id": txn,
        "txn_type": "purchase",
        "purchase_date": jan(day),
        "amount_yuan": amount,
        "purchase_seq": seq,
        **kw,
    }


def reverse(txn: str, ref: str | None, day: int, amount: float, seq: int | None = None, **kw) -> dict:
    return {
        "txn_id": txn,
        "txn_type": "reversal",
        "ref_txn_id": ref,
        "purchase_date": jan(day),
        "amount_yuan": amount,
        "purchase_seq": seq,
        **kw,
    }


def meter_days(rows: list[dict], tariff: str = "AGR_FLAT") -> pl.LazyFrame:
    base = {
        "meter_id": "M1",
        "customer_id": "C1",
        "area_id": "A1",
        "customer_class": "agricultural",
        "tariff_id": tariff,
        "prepay": 1,
        "quality": "actual",
        "kwh_sharp": None,
        "kwh_peak": None,
        "kwh_valley": None,
        "remaining_yuan": None,
    }
    full = [{**base, "kwh_flat": r.get("kwh"), **r} for r in rows]
    schema: dict[str, Any] = {
        "date": pl.Date,
        "meter_id": pl.String,
        "customer_id": pl.String,
        "area_id": pl.String,
        "customer_class": pl.String,
        "tariff_id": pl.String,
        "prepay": pl.Int8,
        "quality": pl.String,
        "kwh": pl.Float64,
        "kwh_sharp": pl.Float64,
        "kwh_peak": pl.Float64,
        "kwh_flat": pl.Float64,
        "kwh_valley": pl.Float64,
        "remaining_yuan": pl.Float64,
    }
    return pl.DataFrame(full, schema=schema).select(*DAY_COLUMNS, "remaining_yuan").lazy()


def balances(
    md: pl.LazyFrame, tx: pl.LazyFrame, opening: pl.LazyFrame | None = None, rules: PrepayRules = RULES_DEFAULT
) -> pl.DataFrame:
    priced = price_days(md, CAL, opening)
    net = daily_net_purchases(purchase_ledger(tx))
    return prepay_balances(priced, net, rules).collect().sort("customer_id", "meter_id", "date")


NO_TXNS = txns([])


# purchases and reversals ------------------------------------------------------------


def test_a_reversal_cancels_its_purchase_on_the_reversals_date() -> None:
    # T1 +100 on the 2nd; reversed by R1 on the 3rd, when T3 (+50) reuses its number:
    # net: 1st +30, 2nd +100, 3rd -100 + 50 = -50
    tx = txns(
        [
            buy("T0", 1, 30.0, 4),
            buy("T1", 2, 100.0, 5),
            reverse("R1", "T1", 3, 100.0, 5),
            buy("T3", 3, 50.0, 5),
        ]
    )
    got = daily_net_purchases(purchase_ledger(tx)).collect().sort("date")
    expected = pl.DataFrame(
        {
            "customer_id": ["C1"] * 3,
            "meter_id": ["M1"] * 3,
            "date": [jan(1), jan(2), jan(3)],
            "purchases_yuan": [30.0, 100.0, -50.0],
            "txn_count": pl.Series([1, 1, 2], dtype=pl.Int16),
        }
    )
    assert_frame_equal(got, expected)
    # the reused number is no repeat: T1 no longer stands
    assert purchase_findings(purchase_ledger(tx)).collect().height == 0


def test_reversal_takes_off_the_purchase_amount_and_flags_a_different_amount() -> None:
    tx = txns([buy("T1", 1, 100.0, 1), reverse("R1", "T1", 2, 90.0, 1)])
    ledger = purchase_ledger(tx)
    net = daily_net_purchases(ledger).collect().sort("date")
    assert net["purchases_yuan"].to_list() == [100.0, -100.0]
    found = purchase_findings(ledger).collect()
    assert found.select("rule", "severity", "txn_id").rows() == [("prepay.reversal.amount_differs", "warning", "R1")]
    assert json.loads(found["evidence"].item()) == {"ref_txn_id": "T1", "amount_yuan": 90.0, "ref_amount_yuan": 100.0}


def test_second_reversal_is_ignored_and_unknown_reference_is_taken_at_its_own_amount() -> None:
    tx = txns(
        [
            buy("T1", 1, 100.0, 1),
            reverse("R1", "T1", 2, 100.0, 1),
            reverse("R2", "T1", 3, 100.0, 1),
            reverse("R3", "GHOST", 4, 25.0),
        ]
    )
    ledger = purchase_ledger(tx)
    net = daily_net_purchases(ledger).collect().sort("date")
    # 1st +100, 2nd -100, 3rd 0 (duplicate), 4th -25 (unknown purchase: its own amount)
    assert net["purchases_yuan"].to_list() == [100.0, -100.0, 0.0, -25.0]
    assert net["txn_count"].to_list() == [1, 1, 0, 1]
    found = purchase_findings(ledger).collect().sort("txn_id")
    assert found.select("rule", "txn_id", "date").rows() == [
        ("prepay.reversal.duplicate", "R2", jan(3)),
        ("prepay.reversal.unknown_ref", "R3", jan(4)),
    ]


@pytest.mark.parametrize(
    ("seqs", "rule", "txn", "evidence"),
    [
        pytest.param(
            [4, 7], "prepay.purchase.seq_gap", "T2", {"purchase_seq": 7, "prev_seq": 4, "prev_txn_id": "T1"}, id="gap"
        ),
        pytest.param(
            [4, 4],
            "prepay.purchase.seq_repeat",
            "T2",
            {"purchase_seq": 4, "prev_seq": 4, "prev_txn_id": "T1"},
            id="repeat",
        ),
        pytest.param(
            [4, 3],
            "prepay.purchase.seq_backwards",
            "T2",
            {"purchase_seq": 3, "prev_seq": 4, "prev_txn_id": "T1"},
            id="backwards",
        ),
    ],
)
def test_purchase_sequence_findings(seqs, rule, txn, evidence) -> None:
    tx = txns([buy("T1", 1, 10.0, seqs[0]), buy("T2", 2, 10.0, seqs[1])])
    found = purchase_findings(purchase_ledger(tx)).collect()
    assert found.schema == PREPAY_FINDINGS.schema
    assert found.select("rule", "severity", "txn_id", "date").rows() == [(rule, RULES[rule][0], txn, jan(2))]
    assert json.loads(found["evidence"].item()) == evidence


def test_sequence_is_per_customer_and_in_time_order() -> None:
    tx = txns(
        [
            buy("B2", 3, 10.0, 2, customer_id="C2"),
            buy("A1", 1, 10.0, 1),
            buy("B1", 2, 10.0, 1, customer_id="C2"),
            buy("A2", 2, 10.0, 2),
        ]
    )
    assert purchase_findings(purchase_ledger(tx)).collect().height == 0


def test_transactions_without_a_prepay_meter_day_are_findings() -> None:
    ledger = purchase_ledger(txns([buy("T1", 1, 10.0, 1), buy("T2", 2, 10.0, 2, meter_id="OTHER")]))
    md = meter_days([{"date": jan(1), "kwh": 1.0}, {"date": jan(2), "kwh": 1.0}])
    found = unmatched_transactions(ledger, md).collect()
    assert found.select("rule", "txn_id", "meter_id").rows() == [("prepay.purchase.no_meter_day", "T2", "OTHER")]


# balances ---------------------------------------------------------------------------


def test_balance_carried_from_the_first_reading_with_mismatch_low_and_overdraft() -> None:
    # AGR_FLAT 0.50 yuan/kWh. The meter's first reading is on the 2nd's row (frozen 00:00
    # of the 3rd): 100.00, the balance at 24:00 of the 2nd.
    #  1st: no reading yet                                  -> no balance
    #  2nd: anchor 100                                        -> 100   ok
    #  3rd: +50 purchase, 10 kWh = 5.00:   100 + 50 - 5  = 145  meter 145.00 -> ok
    #  4th: 20 kWh = 10.00:                145 - 10      = 135  meter 133.50 -> mismatch (1.50 > 1)
    #  5th: 230 kWh = 115.00:              135 - 115     =  20  meter  20.00 -> ok (20 is not below 20)
    #  6th: 10 kWh = 5.00:                  20 - 5       =  15  meter  15.40 -> low (0.40 within 1)
    #  7th: 40 kWh = 20.00:                 15 - 20      =  -5  meter  -5.00 -> arrears (overdraft)
    md = meter_days(
        [
            {"date": jan(1), "kwh": 3.0},
            {"date": jan(2), "kwh": 4.0, "remaining_yuan": 100.0},
            {"date": jan(3), "kwh": 10.0, "remaining_yuan": 145.0},
            {"date": jan(4), "kwh": 20.0, "remaining_yuan": 133.5},
            {"date": jan(5), "kwh": 230.0, "remaining_yuan": 20.0},
            {"date": jan(6), "kwh": 10.0, "remaining_yuan": 15.4},
            {"date": jan(7), "kwh": 40.0, "remaining_yuan": -5.0},
        ]
    )
    tx = txns([buy("T1", 3, 50.0, 1)])
    got = balances(md, tx)
    assert got.schema == PREPAY_DAILY.schema
    expected = pl.DataFrame(
        {
            "date": [jan(d) for d in range(1, 8)],
            "purchases_yuan": [0.0, 0.0, 50.0, 0.0, 0.0, 0.0, 0.0],
            "consumption_yuan": [1.5, 2.0, 5.0, 10.0, 115.0, 5.0, 20.0],
            "balance_yuan": [None, 100.0, 145.0, 135.0, 20.0, 15.0, -5.0],
            "meter_balance_yuan": [None, 100.0, 145.0, 133.5, 20.0, 15.4, -5.0],
            "difference_yuan": [None, 0.0, 0.0, -1.5, 0.0, 0.4, 0.0],
            "balance_anchor_date": [None] + [jan(2)] * 6,
            "status": [None, "ok", "ok", "mismatch", "ok", "low", "arrears"],
        }
    )
    assert_frame_equal(got.select(expected.columns), expected, check_exact=False, abs_tol=1e-9)


def test_consumption_is_priced_at_the_tier_of_the_day() -> None:
    # RES_TIER, 2750 kWh before: 20 kWh on the 2nd = 10 x 0.538 + 10 x 0.588 = 11.26
    md = meter_days(
        [{"date": jan(1), "kwh": 0.0, "remaining_yuan": 50.0}, {"date": jan(2), "kwh": 20.0, "remaining_yuan": 38.74}],
        tariff="RES_TIER",
    )
    opening = pl.LazyFrame({"customer_id": ["C1"], "year": [2026], "kwh_before": [2750.0]})
    got = balances(md, NO_TXNS, opening)
    assert got["consumption_yuan"].to_list() == pytest.approx([0.0, 11.26], abs=1e-9)
    assert got["balance_yuan"].to_list() == pytest.approx([50.0, 38.74], abs=1e-9)
    assert got["status"].to_list() == ["ok", "ok"]


def test_reversal_and_purchase_reach_the_balance_on_their_dates() -> None:
    # anchor 80 on the 1st; 2nd: +100; 3rd: reversal -100 (no consumption)
    md = meter_days([{"date": jan(d), "kwh": 0.0, "remaining_yuan": r} for d, r in ((1, 80.0), (2, 180.0), (3, 80.0))])
    tx = txns([buy("T1", 2, 100.0, 1), reverse("R1", "T1", 3, 100.0, 1)])
    got = balances(md, tx)
    assert got.select("purchases_yuan", "balance_yuan", "status").rows() == [
        (0.0, 80.0, "ok"),
        (100.0, 180.0, "ok"),
        (-100.0, 80.0, "ok"),
    ]


def test_thresholds_are_configuration() -> None:
    md = meter_days(
        [{"date": jan(1), "kwh": 0.0, "remaining_yuan": 30.0}, {"date": jan(2), "kwh": 0.0, "remaining_yuan": 31.5}]
    )
    strict = PrepayRules(mismatch_tolerance_yuan=2.0, low_balance_yuan=50.0)
    assert balances(md, NO_TXNS)["status"].to_list() == ["ok", "mismatch"]
    assert balances(md, NO_TXNS, rules=strict)["status"].to_list() == ["low", "low"]


def test_meters_keep_their_own_balances() -> None:
    md = pl.concat(
        [
            meter_days([{"date": jan(1), "kwh": 2.0, "remaining_yuan": 10.0}, {"date": jan(2), "kwh": 2.0}]),
            meter_days(
                [
                    {"date": jan(1), "kwh": 2.0, "remaining_yuan": 60.0, "meter_id": "M2", "customer_id": "C2"},
                    {"date": jan(2), "kwh": 2.0, "meter_id": "M2", "customer_id": "C2"},
                ]
            ),
        ]
    )
    got = balances(md, txns([buy("T1", 2, 5.0, 1, customer_id="C2", meter_id="M2")]))
    # C1: 10 - 1 = 9; C2: 60 + 5 - 1 = 64
    assert got.select("customer_id", "date", "balance_yuan").rows() == [
        ("C1", jan(1), 10.0),
        ("C1", jan(2), 9.0),
        ("C2", jan(1), 60.0),
        ("C2", jan(2), 64.0),
    ]


@SETTINGS
@given(
    kwh=st.lists(st.floats(min_value=0, max_value=300, allow_nan=False), min_size=2, max_size=31),
    buys=st.lists(
        st.tuples(st.integers(min_value=1, max_value=31), st.floats(min_value=0.01, max_value=500)), max_size=8
    ),
    anchor_day=st.integers(min_value=1, max_value=31),
    anchor=st.floats(min_value=-50, max_value=500),
    start=st.floats(min_value=0, max_value=6000),
)
def test_balance_identity_holds_every_day(kwh, buys, anchor_day, anchor, start) -> None:
    n = len(kwh)
    anchor_day = (anchor_day - 1) % n + 1
    md = meter_days(
        [
            {"date": jan(i + 1), "kwh": k, "remaining_yuan": anchor if i + 1 == anchor_day else None}
            for i, k in enumerate(kwh)
        ],
        tariff="RES_TIER",
    )
    tx = txns([buy(f"T{i}", (d - 1) % n + 1, a, i + 1) for i, (d, a) in enumerate(buys)])
    opening = pl.LazyFrame({"customer_id": ["C1"], "year": [2026], "kwh_before": [start]})
    got = balances(md, tx, opening)
    bal = got["balance_yuan"].to_list()
    for i in range(n):  # a handful of days: the identity checked one by one
        if i + 1 < anchor_day:
            assert bal[i] is None
        elif i + 1 == anchor_day:
            assert bal[i] == pytest.approx(anchor, abs=1e-9)
        else:
            step = got["purchases_yuan"][i] - got["consumption_yuan"][i]
            assert bal[i] == pytest.approx(bal[i - 1] + step, abs=1e-6)


def test_opening_balance_from_a_checkpoint_carries_forward() -> None:
    # checkpoint: 42.00 at 24:00 on 31 December, anchored on 5 December. February-style
    # window without readings: 1st -2.00 (4 kWh), 2nd +20 purchase -1.00 -> 40, 59
    md = meter_days([{"date": jan(1), "kwh": 4.0}, {"date": jan(2), "kwh": 2.0}])
    opening = pl.LazyFrame(
        {
            "customer_id": ["C1"],
            "meter_id": ["M1"],
            "balance_yuan": [42.0],
            "balance_anchor_date": [dt.date(2025, 12, 5)],
        }
    )
    priced = price_days(md, CAL, None)
    net = daily_net_purchases(purchase_ledger(txns([buy("T1", 2, 20.0, 1)])))
    got = prepay_balances(priced, net, RULES_DEFAULT, opening).collect().sort("date")
    assert got.select("balance_yuan", "balance_anchor_date", "status").rows() == [
        (40.0, dt.date(2025, 12, 5), "ok"),
        (59.0, dt.date(2025, 12, 5), "ok"),
    ]


def test_a_meter_without_a_checkpoint_balance_anchors_in_the_window() -> None:
    md = meter_days(
        [
            {"date": jan(1), "kwh": 4.0},
            {"date": jan(2), "kwh": 2.0, "remaining_yuan": 30.0},
            {"date": jan(3), "kwh": 2.0},
        ]
    )
    opening = pl.LazyFrame(
        {"customer_id": ["C1"], "meter_id": ["M1"], "balance_yuan": [None], "balance_anchor_date": [None]},
        schema={
            "customer_id": pl.String,
            "meter_id": pl.String,
            "balance_yuan": pl.Float64,
            "balance_anchor_date": pl.Date,
        },
    )
    got = (
        prepay_balances(
            price_days(md, CAL, None), daily_net_purchases(purchase_ledger(NO_TXNS)), RULES_DEFAULT, opening
        )
        .collect()
        .sort("date")
    )
    assert got.select("balance_yuan", "balance_anchor_date").rows() == [(None, None), (30.0, jan(2)), (29.0, jan(2))]
