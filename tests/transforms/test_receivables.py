"""Receivables: FIFO settlement, named bills, credits, reversals, late fees, restatements.

Every expected figure is worked out by hand in the comments (CONTRACT v2 §1 receivables:
issue on the 1st of the next month, due at the end of the 20th; 违约金 1‰/day for
residents, 2‰ current-year and 3‰ earlier-year bills for other classes).
"""

from __future__ import annotations

import datetime as dt
import random

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from meterlake.transforms.receivables import (
    EPS_YUAN,
    ReceivablesConfig,
    _cum_within,
    _shift_within,
    _total_within,
    bill_schedule,
    bill_status_at_due,
    oldest_unpaid,
    payment_ledger,
    receivables_month,
    unpaid_through,
)

CFG = ReceivablesConfig()
D = dt.date


def bills(rows: list[tuple[str, str, float]], cls: str = "resident") -> pl.LazyFrame:
    """(customer_id, month, amount_yuan) bills_monthly rows of a post-paid customer."""
    return pl.LazyFrame(
        {
            "customer_id": [r[0] for r in rows],
            "month": [r[1] for r in rows],
            "amount_yuan": [r[2] for r in rows],
            "customer_class": [cls] * len(rows),
            "area_id": ["A1"] * len(rows),
            "prepay": [0] * len(rows),
            "period_end": [D(int(r[1][:4]), int(r[1][5:7]), 28) for r in rows],
        },
        schema_overrides={"prepay": pl.Int8},
    )


def pays(rows: list[tuple]) -> pl.LazyFrame:
    """(txn_id, txn_type, ref_txn_id, customer_id, paid_date, amount_yuan, bill_month) payments rows."""
    names = ["txn_id", "txn_type", "ref_txn_id", "customer_id", "paid_date", "amount_yuan", "bill_month"]
    return pl.LazyFrame(
        [dict(zip(names, r, strict=True)) for r in rows],
        schema={
            "txn_id": pl.String,
            "txn_type": pl.String,
            "ref_txn_id": pl.String,
            "customer_id": pl.String,
            "paid_date": pl.Date,
            "amount_yuan": pl.Float64,
            "bill_month": pl.String,
        },
    )


def month(b: pl.LazyFrame, p: pl.LazyFrame, m: str, previous: pl.LazyFrame | None = None) -> dict:
    out = receivables_month(bill_schedule(b, CFG.calendar), payment_ledger(p), m, CFG, previous=previous).collect()
    assert out.height == 1
    return out.row(0, named=True)


THREE = [("C1", "2026-01", 100.0), ("C1", "2026-02", 200.0), ("C1", "2026-03", 300.0)]
THREE_PAID = [
    ("T1", "payment", None, "C1", D(2026, 3, 5), 150.0, None),
    ("T2", "payment", None, "C1", D(2026, 4, 25), 400.0, None),
]


def test_fifo_across_three_bills() -> None:
    # 150 on 03-05 pays the Jan bill (100) and 50 of Feb; 400 on 04-25 pays Feb's other
    # 150 and 250 of Mar: 50 of the Mar bill (due 04-20) is open at 04-30.
    r = month(bills(THREE), pays(THREE_PAID), "2026-04")
    assert (r["billed_yuan"], r["paid_yuan"], r["arrears_yuan"], r["overdue_yuan"]) == (300.0, 400.0, 50.0, 50.0)
    assert (r["overdue_days"], r["aging"]) == (10, "1-30")
    # April fees, 1‰: 04-01..20 Feb's 150 x 20 d = 3.00; 04-21..24 (150 + 300) x 4 d = 1.80;
    # 04-25..30 Mar's 50 x 6 d = 0.30 -> 5.10
    assert r["late_fee_yuan"] == pytest.approx(5.10, abs=1e-9)


def test_fifo_march_fees_stop_the_day_a_bill_is_paid() -> None:
    # Jan bill overdue from 02-21; paid at the end of 03-05: fees 03-01..04 = 100 x 4 x 1‰ = 0.40;
    # Feb's unpaid 150 overdue 03-21..31: 150 x 11 x 1‰ = 1.65 -> 2.05
    r = month(bills(THREE), pays(THREE_PAID), "2026-03")
    assert r["late_fee_yuan"] == pytest.approx(2.05, abs=1e-9)
    assert (r["arrears_yuan"], r["overdue_days"], r["aging"]) == (150.0, 11, "1-30")


def test_a_named_payment_settles_its_bill_not_the_oldest() -> None:
    # 200 naming 2026-02 leaves the Jan bill (due 02-20) open: 39 days overdue at 03-31
    b = bills([("C1", "2026-01", 100.0), ("C1", "2026-02", 200.0)])
    r = month(b, pays([("T1", "payment", None, "C1", D(2026, 3, 10), 200.0, "2026-02")]), "2026-03")
    assert (r["arrears_yuan"], r["overdue_yuan"], r["overdue_days"], r["aging"]) == (100.0, 100.0, 39, "31-90")
    assert r["late_fee_yuan"] == pytest.approx(3.10, abs=1e-9)  # 100 x 31 d x 1‰
    # the same payment without a month pays the Jan bill first (at the end of 03-10):
    # Jan 100 x 9 d (03-01..09) x 1‰ = 0.90, then Feb's open 100 x 11 d (03-21..31) = 1.10
    r = month(b, pays([("T1", "payment", None, "C1", D(2026, 3, 10), 200.0, None)]), "2026-03")
    assert (r["overdue_days"], r["late_fee_yuan"]) == (11, pytest.approx(2.00, abs=1e-9))


def test_an_overpayment_is_credited_to_the_next_bill() -> None:
    b = bills([("C1", "2026-01", 100.0), ("C1", "2026-02", 120.0)])
    p = pays(
        [
            ("T1", "payment", None, "C1", D(2026, 2, 10), 150.0, None),  # 50 too much: a credit
            ("T2", "payment", None, "C1", D(2026, 3, 15), 60.0, None),
        ]
    )
    feb = month(b, p, "2026-02")
    assert (feb["arrears_yuan"], feb["overdue_days"]) == (-50.0, 0)
    mar = month(b, p, "2026-03")
    # Feb bill 120 = 50 credit + 60 paid + 10 still open after its due date (03-20)
    assert (mar["arrears_yuan"], mar["overdue_yuan"], mar["overdue_days"]) == (10.0, 10.0, 11)
    status = bill_status_at_due(bill_schedule(b, CFG.calendar), payment_ledger(p)).collect().sort("bill_month")
    assert status["collected_by_due_yuan"].to_list() == [100.0, 110.0]
    assert status["unpaid_at_due_yuan"].to_list() == [0.0, 10.0]


@pytest.mark.parametrize(
    ("cls", "fee"),
    [
        pytest.param("resident", 0.40, id="resident-1permille"),  # 100 x 4 d (02-25..28) x 1‰
        pytest.param("commercial", 0.80, id="commercial-2permille"),  # 100 x 4 d x 2‰
    ],
)
def test_a_reversal_after_the_due_date_makes_the_bill_overdue_again(cls: str, fee: float) -> None:
    b = bills([("C1", "2026-01", 100.0)], cls)
    p = pays(
        [
            ("T1", "payment", None, "C1", D(2026, 2, 15), 100.0, None),
            ("R1", "reversal", "T1", "C1", D(2026, 2, 25), 100.0, None),
        ]
    )
    r = month(b, p, "2026-02")
    assert (r["paid_yuan"], r["arrears_yuan"], r["overdue_days"], r["aging"]) == (0.0, 100.0, 8, "1-30")
    assert r["late_fee_yuan"] == pytest.approx(fee, abs=1e-9)


@pytest.mark.parametrize(
    ("cls", "dec_fee", "jan_fee"),
    [
        # Dec: 1000 x 11 d (12-21..31) x 2‰ = 22.00. Jan: the Nov bill is an earlier year's:
        # 1000 x 31 x 3‰ = 93.00; the Dec bill (due 2026-01-20) is this year's: 500 x 11 x 2‰ = 11.00
        pytest.param("commercial", 22.00, 104.00, id="commercial-2-then-3permille"),
        # residents pay 1‰ whatever the year: 11.00; 31.00 + 5.50
        pytest.param("resident", 11.00, 36.50, id="resident-1permille"),
    ],
)
def test_late_fees_across_a_year_end(cls: str, dec_fee: float, jan_fee: float) -> None:
    b = bills([("C1", "2025-11", 1000.0), ("C1", "2025-12", 500.0)], cls)
    p = pays([])
    assert month(b, p, "2025-12")["late_fee_yuan"] == pytest.approx(dec_fee, abs=1e-9)
    jan = month(b, p, "2026-01")
    assert jan["late_fee_yuan"] == pytest.approx(jan_fee, abs=1e-9)
    assert (jan["arrears_yuan"], jan["overdue_days"], jan["aging"]) == (1500.0, 42, "31-90")


def test_a_restated_bill_shows_its_change_from_its_month_on() -> None:
    p = pays([("T1", "payment", None, "C1", D(2026, 3, 10), 300.0, None)])
    first = month(bills(THREE), p, "2026-04")
    assert (first["billed_yuan"], first["restated_yuan"]) == (300.0, 0.0)
    restated = [*THREE[:2], ("C1", "2026-03", 320.0)]  # a late reading adds 20 yuan to March
    prev = pl.LazyFrame([first])
    again = month(bills(restated), p, "2026-04", previous=prev)
    assert (again["billed_yuan"], again["restated_yuan"], again["arrears_yuan"]) == (320.0, 20.0, 320.0)
    # a rerun keeps the same figure (the first recorded amount is 320 - 20)
    assert month(bills(restated), p, "2026-04", previous=pl.LazyFrame([again]))["restated_yuan"] == 20.0


def test_a_payment_naming_a_month_without_a_bill_is_held_as_a_credit() -> None:
    b = bills([("C1", "2026-01", 100.0)])
    p = pays([("T1", "payment", None, "C1", D(2026, 2, 10), 100.0, "2026-05")])
    r = month(b, p, "2026-02")
    assert (r["arrears_yuan"], r["overdue_days"], r["held_credit_yuan"]) == (0.0, 0, 100.0)


# --- the fast forms against straightforward ones, on randomised small ledgers ------------


@given(
    keys=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2)), min_size=1, max_size=40),
    n=st.sampled_from([1, -1, 2]),
)
@settings(max_examples=60, deadline=None)
def test_shift_within_sorted_keys_is_the_window_shift(keys: list[tuple[int, int]], n: int) -> None:
    frame = pl.DataFrame(
        {"a": [f"C{k[0]}" for k in keys], "b": [k[1] for k in keys], "v": [float(i) for i in range(len(keys))]}
    ).sort("a", "b")
    for by in (["a"], ["a", "b"]):
        got = frame.select(v=_shift_within(pl.col("v"), n, *by))
        assert_frame_equal(got, frame.select(pl.col("v").shift(n).over(by)))


@pytest.mark.parametrize("seed", [pytest.param(s, id=f"seed{s}") for s in range(5)])
def test_oldest_unpaid_matches_the_per_bill_closed_form(seed: int) -> None:
    # reference: unpaid_through each bill due before the day, one point per bill; the
    # overdue amount is that of the latest such bill, the oldest bill the first one unpaid
    rng = random.Random(seed)
    months = ["2025-10", "2025-11", "2025-12", "2026-01"]
    rows = [(f"C{c}", m, round(rng.uniform(10, 200), 2)) for c in range(12) for m in months if rng.random() < 0.8]
    pays = [
        (f"P{i}", f"C{rng.randrange(12)}", D(2025, 11, 1) + dt.timedelta(days=rng.randrange(110)), amount, named)
        for i in range(40)
        for amount, named in [(round(rng.uniform(5, 250), 2), rng.choice([None, *months]))]
    ]
    schedule = bill_schedule(bills(rows), CFG.calendar).collect().lazy()
    ledger = payment_ledger(
        pl.LazyFrame(
            {
                "txn_id": [p[0] for p in pays],
                "txn_type": ["payment"] * len(pays),
                "ref_txn_id": [None] * len(pays),
                "customer_id": [p[1] for p in pays],
                "paid_date": [p[2] for p in pays],
                "amount_yuan": [p[3] for p in pays],
                "bill_month": [p[4] for p in pays],
            },
            schema_overrides={"ref_txn_id": pl.String, "bill_month": pl.String},
        )
    )
    at = D(2026, 2, 25)
    points = (
        schedule.filter((pl.col("issue_date") <= at) & (pl.col("due_date") < at))
        .select("customer_id", upto="bill_month", due_date="due_date", at=pl.lit(at))
        .with_row_index("pid")
    )
    ref = (
        unpaid_through(points, schedule, ledger)
        .collect()
        .sort("customer_id", "upto")
        .group_by("customer_id", maintain_order=True)
        .agg(
            overdue_yuan=pl.col("unpaid_yuan").last(),
            oldest_bill_month=pl.col("upto").filter(pl.col("unpaid_yuan") > EPS_YUAN).first(),
            oldest_due_date=pl.col("due_date").filter(pl.col("unpaid_yuan") > EPS_YUAN).first(),
        )
        .filter(pl.col("oldest_bill_month").is_not_null())
    )
    got = oldest_unpaid(schedule, ledger, at, EPS_YUAN).collect().sort("customer_id")
    assert ref.height > 0
    assert_frame_equal(got, ref, check_column_order=False)


@given(
    keys=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2)), min_size=1, max_size=40),
    values=st.lists(st.integers(-(10**12), 10**12), min_size=40, max_size=40),
)
@settings(max_examples=60, deadline=None)
def test_running_sums_within_sorted_keys_are_the_window_sums(keys: list[tuple[int, int]], values: list[int]) -> None:
    frame = pl.DataFrame(
        {"a": [f"C{k[0]}" for k in keys], "b": [k[1] for k in keys], "v": values[: len(keys)]},
        schema={"a": pl.String, "b": pl.Int64, "v": pl.Int64},
    ).sort("a", "b")
    for by in (["a"], ["a", "b"]):
        got = frame.select(cum=_cum_within(pl.col("v"), *by), total=_total_within(pl.col("v"), *by))
        want = frame.select(cum=pl.col("v").cum_sum().over(by), total=pl.col("v").sum().over(by))
        assert_frame_equal(got, want)


@pytest.mark.parametrize("seed", [pytest.param(s, id=f"seed{s}") for s in range(5)])
def test_status_at_due_matches_the_closed_form_at_each_due_date(seed: int) -> None:
    # reference: unpaid_through at each bill's due date, through the bill and through the
    # bill before; the bill's own unpaid part is the difference (reversals included)
    rng = random.Random(seed)
    months = ["2025-10", "2025-11", "2025-12", "2026-01"]
    rows = [(f"C{c}", m, round(rng.uniform(10, 200), 2)) for c in range(12) for m in months if rng.random() < 0.8]
    pay_rows = [
        (
            f"P{i}",
            "payment",
            None,
            f"C{rng.randrange(12)}",
            D(2025, 11, 1) + dt.timedelta(days=rng.randrange(110)),
            round(rng.uniform(5, 250), 2),
            rng.choice([None, *months]),
        )
        for i in range(50)
    ]
    reversals = [
        (f"R{p[0]}", "reversal", p[0], p[3], p[4] + dt.timedelta(days=rng.randrange(40)), p[5], None)
        for p in pay_rows[:8]
    ]
    schedule = bill_schedule(bills(rows), CFG.calendar).collect().lazy()
    ledger = payment_ledger(pays(pay_rows + reversals)).collect().lazy()
    points = pl.concat(
        [
            schedule.select("customer_id", "bill_month", at="due_date", upto="bill_month", side=pl.lit(0)),
            schedule.select("customer_id", "bill_month", at="due_date", upto="prev_bill_month", side=pl.lit(1)),
        ]
    ).with_row_index("pid")
    u = unpaid_through(points, schedule, ledger).collect()
    ref = (
        u.filter(pl.col("side") == 0)
        .join(
            u.filter(pl.col("side") == 1).select("customer_id", "bill_month", before="unpaid_yuan"),
            on=["customer_id", "bill_month"],
        )
        .select(
            "customer_id",
            "bill_month",
            unpaid_at_due_yuan=(pl.col("unpaid_yuan") - pl.col("before")).round(2).clip(0.0),
        )
        .sort("customer_id", "bill_month")
    )
    got = (
        bill_status_at_due(schedule, ledger)
        .collect()
        .select("customer_id", "bill_month", "unpaid_at_due_yuan")
        .sort("customer_id", "bill_month")
    )
    assert ref.height == len(rows)
    assert ref["unpaid_at_due_yuan"].sum() > 0
    assert_frame_equal(got, ref)
