"""Credit score reasons and their points, grades, tiers, and the dunning list."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from meterlake.transforms.credit import credit_month, dunning, list_dates, tier
from meterlake.transforms.receivables import ReceivablesConfig, TierRules, bill_schedule, payment_ledger

CFG = ReceivablesConfig()
D = dt.date


def bills(amounts: dict[str, float], prepay: int = 0) -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "customer_id": list(amounts),
            "month": ["2026-01"] * len(amounts),
            "amount_yuan": list(amounts.values()),
            "prepay": [prepay] * len(amounts),
            "period_end": [D(2026, 1, 31)] * len(amounts),
        }
    )


def status(rows: list[tuple[str, float]]) -> pl.LazyFrame:
    return pl.LazyFrame(
        {"customer_id": [r[0] for r in rows], "unpaid_at_due_yuan": [r[1] for r in rows]},
        schema={"customer_id": pl.String, "unpaid_at_due_yuan": pl.Float64},
    )


def recv(rows: list[tuple[str, int, float]]) -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "customer_id": [r[0] for r in rows],
            "overdue_days": [r[1] for r in rows],
            "overdue_yuan": [r[2] for r in rows],
        },
        schema={"customer_id": pl.String, "overdue_days": pl.Int32, "overdue_yuan": pl.Float64},
    )


NO_PREPAY = pl.LazyFrame(schema={"customer_id": pl.String, "days": pl.Int32})
NO_THEFT = pl.LazyFrame(schema={"customer_id": pl.String})


def score(
    st: list[tuple[str, float]] = (),  # type: ignore[assignment]
    rc: list[tuple[str, int, float]] = (),  # type: ignore[assignment]
    prepay: pl.LazyFrame = NO_PREPAY,
    theft: pl.LazyFrame = NO_THEFT,
) -> dict:
    out = credit_month("2026-01", bills({"C": 100.0}), status(list(st)), recv(list(rc)), prepay, theft, CFG).collect()
    return out.row(0, named=True)


def test_a_customer_without_blemish_is_a() -> None:
    r = score([("C", 0.0)] * 4, [("C", 0, 0.0)])
    assert (r["credit_score"], r["credit_grade"], r["reasons"]) == (100.0, "A", "")


@pytest.mark.parametrize(
    ("kwargs", "column", "points", "text", "expected"),
    [
        # 2 of 4 bills with 50 yuan unpaid at the due date (0.50 is within the 1-yuan tolerance): 2/4 x 25
        pytest.param(
            {"st": [("C", 50.0), ("C", 50.0), ("C", 0.5), ("C", 0.0)]},
            "late_points",
            12.5,
            "2 of 4 bills paid late (逾期缴费) -12.5",
            87.5,
            id="late-share",
        ),
        # worst overdue 45 days: past the 30-day step (10), not the 90-day one; and one
        # month end in arrears (3): 87
        pytest.param(
            {"rc": [("C", 45, 80.0)]}, "overdue_points", 10.0, "worst 45 days overdue", 87.0, id="worst-overdue"
        ),
        pytest.param(
            {"rc": [("C", 200, 80.0)]}, "overdue_points", 30.0, "worst 200 days overdue", 67.0, id="worst-over-180"
        ),
        # 2 month ends in arrears x 3 (the third has 0.80 yuan only: within tolerance)
        pytest.param(
            {"rc": [("C", 5, 80.0), ("C", 20, 10.0), ("C", 3, 0.8)]},
            "arrears_points",
            6.0,
            "2 month ends in arrears (欠费月数) -6.0",
            94.0,
            id="months-in-arrears",
        ),
        # 12 prepay days below zero x 0.5
        pytest.param(
            {"prepay": pl.LazyFrame({"customer_id": ["C"], "days": [12]})},
            "prepay_points",
            6.0,
            "12 prepay days below zero (费控透支) -6.0",
            94.0,
            id="prepay-below-zero",
        ),
        pytest.param(
            {"theft": pl.LazyFrame({"customer_id": ["C"]})},
            "theft_points",
            50.0,
            "theft confirmed by inspection (窃电查实) -50.0",
            50.0,
            id="theft",
        ),
    ],
)
def test_each_reason_has_its_points(kwargs: dict, column: str, points: float, text: str, expected: float) -> None:
    r = score(**kwargs)
    assert r[column] == points
    assert r["credit_score"] == expected
    assert r["reasons"].startswith(text)


def test_reasons_strongest_first_and_grade_d() -> None:
    # theft 50 + late 4/4 x 25 = 25 -> score 25, grade D
    r = score([("C", 100.0)] * 4, theft=pl.LazyFrame({"customer_id": ["C"]}))
    assert (r["credit_score"], r["credit_grade"]) == (25.0, "D")
    assert r["reasons"].index("theft") < r["reasons"].index("paid late")


@pytest.mark.parametrize(
    ("score_", "grade"),
    [
        pytest.param(90.0, "A", id="90-A"),
        pytest.param(89.9, "B", id="89.9-B"),
        pytest.param(75.0, "B", id="75-B"),
        pytest.param(60.0, "C", id="60-C"),
        pytest.param(59.9, "D", id="59.9-D"),
    ],
)
def test_grade_boundaries(score_: float, grade: str) -> None:
    from meterlake.transforms.credit import grade as grade_of

    assert pl.select(grade_of(pl.lit(score_), CFG.credit)).item() == grade


@pytest.mark.parametrize(
    ("billed", "expected"),
    [
        pytest.param(1_000_000.0, "platinum", id="1M-platinum"),
        pytest.param(999_999.99, "gold", id="below-1M-gold"),
        pytest.param(100_000.0, "gold", id="100k-gold"),
        pytest.param(99_999.99, "silver", id="below-100k-silver"),
        pytest.param(10_000.0, "silver", id="10k-silver"),
        pytest.param(9_999.99, "bronze", id="below-10k-bronze"),
        pytest.param(0.0, "bronze", id="0-bronze"),
    ],
)
def test_tier_boundaries(billed: float, expected: str) -> None:
    assert pl.select(tier(pl.lit(billed), TierRules())).item() == expected


# --- dunning ----------------------------------------------------------------------


def test_list_dates_are_the_day_after_the_due_date_and_month_end() -> None:
    assert list_dates(D(2026, 3, 1), D(2026, 3, 31), 20) == [D(2026, 3, 21), D(2026, 3, 31)]


def _accounts() -> tuple[pl.LazyFrame, pl.LazyFrame]:
    # three residents with a 2026-01 bill (due 02-20) and a 2026-02 bill (due 03-20):
    # X pays nothing (200 yuan + 300 yuan); Y leaves 20 of January; Z pays both
    rows = [(c, m, a) for c, a in (("X", 200.0), ("Y", 100.0), ("Z", 100.0)) for m in ("2026-01", "2026-02")]
    b = pl.LazyFrame(
        {
            "customer_id": [r[0] for r in rows],
            "month": [r[1] for r in rows],
            "amount_yuan": [r[2] for r in rows],
            "customer_class": ["resident"] * 6,
            "area_id": ["A1"] * 6,
            "prepay": [0] * 6,
            "period_end": [D(2026, 1, 31)] * 6,
        }
    )
    p = pl.LazyFrame(
        {
            "txn_id": ["T1", "T2"],
            "txn_type": ["payment", "payment"],
            "ref_txn_id": [None, None],
            "customer_id": ["Y", "Z"],
            "paid_date": [D(2026, 2, 10), D(2026, 2, 10)],
            "amount_yuan": [80.0, 200.0],
            "bill_month": [None, None],
        },
        schema_overrides={"ref_txn_id": pl.String, "bill_month": pl.String},
    )
    return bill_schedule(b, CFG.calendar), payment_ledger(p)


def test_dunning_actions_and_stop_notice_period() -> None:
    sched, led = _accounts()
    credit = pl.LazyFrame({"customer_id": ["X", "Y"], "credit_grade": ["D", "B"], "credit_score": [40.0, 80.0]})
    scope = pl.LazyFrame({"customer_id": ["X", "Y"], "feeder_id": ["F1", "F1"], "org_id": ["O", "O"]})
    # 03-21: X owes January (due 02-20: 29 days) and February (1 day): 400 yuan -> visit (>= 20 d)
    # Y owes 20 of January (29 days) -> visit; X first (lower credit score)
    lst = dunning(D(2026, 3, 21), sched, led, credit, scope, CFG).collect()
    assert lst.select("rank", "customer_id", "days_overdue", "overdue_yuan", "action").rows() == [
        (1, "X", 29, 400.0, "visit"),
        (2, "Y", 29, 120.0, "visit"),
    ]
    # 03-31: 39 days: X (400 >= 100 yuan) gets a stop notice, disconnection 04-03..04-07;
    # Y's 120 also reaches the amount
    lst = dunning(D(2026, 3, 31), sched, led, credit, scope, CFG).collect()
    x = lst.row(0, named=True)
    assert (x["customer_id"], x["action"], x["days_overdue"]) == ("X", "stop_notice", 39)
    assert (x["disconnect_not_before"], x["disconnect_not_after"]) == (D(2026, 4, 3), D(2026, 4, 7))
    assert "停电通知书" in x["reason_zh"] and "stop notice" in x["reason_en"]
    # 03-02: 10 days -> call; 30 days exactly is not yet a stop notice
    assert dunning(D(2026, 3, 2), sched, led, credit, scope, CFG).collect()["action"].to_list() == ["call", "call"]
    lst = dunning(D(2026, 3, 22), sched, led, credit, scope, CFG).collect()
    assert lst["action"].to_list() == ["visit", "visit"]


def test_no_stop_notice_below_the_amount() -> None:
    sched, led = _accounts()
    credit = pl.LazyFrame(schema={"customer_id": pl.String, "credit_grade": pl.String, "credit_score": pl.Float64})
    scope = pl.LazyFrame(schema={"customer_id": pl.String, "feeder_id": pl.String, "org_id": pl.String})
    cfg = CFG.model_copy(update={"dunning": CFG.dunning.model_copy(update={"stop_notice_min_yuan": 150.0})})
    lst = dunning(D(2026, 3, 31), sched, led, credit, scope, cfg).collect()
    # Y's January 20 is past due 39 days but the unpaid past-due sum (20 + 100) < 150
    assert dict(lst.select("customer_id", "action").rows()) == {"X": "stop_notice", "Y": "visit"}


def test_reasons_with_equal_points_keep_the_configured_order() -> None:
    # late 2 of 5 x 25 = 10.0 and worst 45 days overdue (31-90) = 10.0 tie: late first;
    # then 1 month end in arrears = 3.0; score 100 - 23 = 77, grade B
    r = score([("C", 50.0)] * 2 + [("C", 0.0)] * 3, [("C", 45, 50.0)])
    assert (r["credit_score"], r["credit_grade"]) == (77.0, "B")
    assert r["reasons"] == (
        "2 of 5 bills paid late (逾期缴费) -10.0; worst 45 days overdue (最长逾期) -10.0; "
        "1 month ends in arrears (欠费月数) -3.0"
    )


def test_customers_with_and_without_reasons_keep_one_row_each_in_customer_order() -> None:
    # A and D clean, B a theft (-50: 50 < 60, grade D), C 1 of 1 bill late (1/1 x 25 = -25: 75, grade B)
    out = credit_month(
        "2026-01",
        bills({"D": 10.0, "C": 20.0, "B": 30.0, "A": 40.0}),
        status([("C", 100.0), ("A", 0.0)]),
        recv([]),
        NO_PREPAY,
        pl.LazyFrame({"customer_id": ["B"]}),
        CFG,
    ).collect()
    assert out.select("customer_id", "credit_score", "credit_grade", "reasons").rows() == [
        ("A", 100.0, "A", ""),
        ("B", 50.0, "D", "theft confirmed by inspection (窃电查实) -50.0"),
        ("C", 75.0, "B", "1 of 1 bills paid late (逾期缴费) -25.0"),
        ("D", 100.0, "A", ""),
    ]
