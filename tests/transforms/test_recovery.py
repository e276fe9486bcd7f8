"""recovery_monthly v2: post-paid by due date and prepay alike, per area, feeder and unit."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import polars as pl
from polars.testing import assert_frame_equal

from meterlake.transforms.prepay import PrepayRules
from meterlake.transforms.receivables import RecoveryRules
from meterlake.transforms.recovery import recovery

D = dt.date
JAN31 = D(2026, 1, 31)
DUE = D(2026, 2, 20)


def run(
    bills: pl.LazyFrame, prepay: pl.LazyFrame, status: pl.LazyFrame, scope: pl.LazyFrame, as_of=DUE
) -> pl.DataFrame:
    return recovery(bills, prepay, status, scope, "2026-01", DUE, as_of, PrepayRules(), RecoveryRules()).collect()


BILLS = pl.LazyFrame(
    {
        # A: P post-paid 100 (80 paid by the due date); Q prepay 60 ends at -10 (collected 50);
        #    R prepay 40 ends at +30 (collected 40), bought 70. B: S prepay 20 without balance.
        # no area: K, a 10 kV customer on feeder F2, post-paid 1000, all paid by the due date
        "customer_id": ["P", "Q", "R", "S", "K"],
        "area_id": ["A", "A", "A", "B", None],
        "period_end": [JAN31] * 5,
        "amount_yuan": [100.0, 60.0, 40.0, 20.0, 1000.0],
    }
)
PREPAY = pl.LazyFrame(
    {
        "customer_id": ["Q", "Q", "R", "R", "S"],
        "meter_id": ["MQ", "MQ", "MR", "MR", "MS"],
        "date": [D(2026, 1, 30), JAN31, D(2026, 1, 30), JAN31, JAN31],
        "purchases_yuan": [0.0, 0.0, 70.0, 0.0, 0.0],
        "balance_yuan": [5.0, -10.0, 35.0, 30.0, None],
    }
)
STATUS = pl.LazyFrame(
    {
        "customer_id": ["P", "K", "P"],
        "bill_month": ["2026-01", "2026-01", "2025-12"],
        "collected_by_due_yuan": [80.0, 1000.0, 7.0],
        "unpaid_at_due_yuan": [20.0, 0.0, 0.0],
    }
)
SCOPE = pl.LazyFrame(
    {
        "customer_id": ["P", "Q", "R", "S", "K"],
        "feeder_id": ["F1", "F1", "F1", "F1", "F2"],
        "org_id": ["ORG01", "ORG01", "ORG01", "ORG01", None],
    }
)


def test_recovery_per_area_feeder_and_unit() -> None:
    got = run(BILLS, PREPAY, STATUS, SCOPE)
    cols = ["scope", "scope_id", "billed_yuan", "collected_yuan", "recovery_rate", "arrears_yuan", "below_target"]
    expected = pl.DataFrame(
        {
            "scope": ["area", "area", "feeder", "org", "org"],
            "scope_id": ["A", "B", "F2", "ORG01", "default"],
            # A: billed 200, rate base 200 (P 100 + Q 60 + R 40); collected 80 + 50 + 40 = 170
            "billed_yuan": [200.0, 20.0, 1000.0, 220.0, 1000.0],
            "collected_yuan": [170.0, 0.0, 1000.0, 170.0, 1000.0],
            # B: S has no balance, nothing in the rate
            "recovery_rate": [0.85, None, 1.0, 0.85, 1.0],
            # A: P's 20 unpaid at the due date + Q's 10 below zero
            "arrears_yuan": [30.0, 0.0, 0.0, 30.0, 0.0],
            "below_target": [True, None, False, True, False],
        }
    )
    assert_frame_equal(got.select(cols), expected)
    a = got.row(0, named=True)
    assert (a["postpaid_billed_yuan"], a["postpaid_collected_yuan"], a["prepay_billed_yuan"]) == (100.0, 80.0, 100.0)
    assert (a["prepay_purchases_yuan"], a["arrears_customers"], a["feeder_id"], a["org_id"]) == (70.0, 2, "F1", "ORG01")
    assert got["postpaid_final"].all()


def test_recovery_before_the_due_date_is_not_final() -> None:
    assert not run(BILLS, PREPAY, STATUS, SCOPE, as_of=D(2026, 2, 10))["postpaid_final"].any()


def test_prepay_arrears_larger_than_the_bill_collect_nothing_of_it() -> None:
    bills = pl.LazyFrame({"customer_id": ["Q"], "area_id": ["A"], "period_end": [JAN31], "amount_yuan": [30.0]})
    prepay = pl.LazyFrame(
        {"customer_id": ["Q"], "meter_id": ["MQ"], "date": [JAN31], "purchases_yuan": [0.0], "balance_yuan": [-80.0]}
    )
    got = run(bills, prepay, STATUS.clear(), SCOPE).filter(pl.col("scope") == "area")
    assert got.select("arrears_yuan", "collected_yuan", "recovery_rate").row(0) == (80.0, 0.0, 0.0)


def test_a_held_post_paid_bill_is_billed_but_out_of_the_rate() -> None:
    # H's 500-yuan bill is held for review (no bill status): A's rate stays 170 / 200
    bills = pl.concat(
        [
            BILLS,
            pl.LazyFrame({"customer_id": ["H"], "area_id": ["A"], "period_end": [JAN31], "amount_yuan": [500.0]}),
        ]
    )
    scope = pl.concat([SCOPE, pl.LazyFrame({"customer_id": ["H"], "feeder_id": ["F1"], "org_id": ["ORG01"]})])
    a = run(bills, PREPAY, STATUS, scope).filter(pl.col("scope_id") == "A").row(0, named=True)
    assert (a["billed_yuan"], a["collected_yuan"], a["recovery_rate"]) == (700.0, 170.0, 0.85)


def test_sums_to_a_million_yuan_do_not_depend_on_row_order() -> None:
    # 3,000 post-paid bills of up to 10,000 yuan in one area: the billed total is the exact
    # decimal sum, whichever order the rows come in
    rng = random.Random(3)
    amounts = [rng.randrange(1, 1_000_000) / 100 for _ in range(3000)]
    exact = float(sum(Decimal(f"{a:.2f}") for a in amounts))
    ids = [f"C{i:04d}" for i in range(3000)]
    bills = pl.DataFrame(
        {"customer_id": ids, "area_id": ["A"] * 3000, "period_end": [JAN31] * 3000, "amount_yuan": amounts}
    )
    status = pl.DataFrame(
        {
            "customer_id": ids,
            "bill_month": ["2026-01"] * 3000,
            "collected_by_due_yuan": amounts,
            "unpaid_at_due_yuan": [0.0] * 3000,
        }
    )
    scope = pl.DataFrame({"customer_id": ids, "feeder_id": ["F1"] * 3000, "org_id": ["ORG01"] * 3000})
    no_prepay = PREPAY.clear()
    runs = [
        run(bills.sample(fraction=1.0, shuffle=True, seed=s).lazy(), no_prepay, status.lazy(), scope.lazy())
        for s in range(4)
    ]
    assert exact > 1e6
    for got in runs:
        assert got.filter(pl.col("scope") == "area")["billed_yuan"].item() == round(exact, 9)
        assert_frame_equal(got, runs[0])
