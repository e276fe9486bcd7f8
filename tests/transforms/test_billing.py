"""Billing: tier and TOU split, amounts and rounding, bills_monthly rows.

Expected values are computed by hand from CONTRACT §2 (worked out in the comments),
not copied from the code's output.
"""

from __future__ import annotations

import copy
import datetime as dt
import random
import tomllib
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from meterlake.schemas.bills_monthly import BILLS_MONTHLY
from meterlake.transforms.billing import (
    DAY_COLUMNS,
    BillingConfig,
    BillRules,
    bill_segments,
    kwh_before_in_turn,
    multiplier_suspects,
    price_days,
    round_half_up,
    stable_sum,
)
from meterlake.transforms.tariffs import TariffBook, price_calendar

REPO = Path(__file__).resolve().parents[2]
RAW = tomllib.loads((REPO / "config" / "tariffs.toml").read_text(encoding="utf-8"))
BOOK = TariffBook.model_validate(RAW)
JAN1 = dt.date(2026, 1, 1)
SETTINGS = settings(derandomize=True, max_examples=60, deadline=None)


def calendar(book: TariffBook = BOOK, first: dt.date = JAN1, last: dt.date = dt.date(2026, 12, 31)) -> pl.DataFrame:
    return price_calendar(book, first, last)


def days(rows: list[dict]) -> pl.LazyFrame:
    """meter_daily-like rows; unspecified fields get plain defaults."""
    base = {
        "meter_id": "M1",
        "customer_id": "C1",
        "area_id": "A1",
        "customer_class": "resident",
        "tariff_id": "RES_TIER",
        "prepay": 0,
        "quality": "actual",
        "kwh_sharp": None,
        "kwh_peak": None,
        "kwh_flat": None,
        "kwh_valley": None,
    }
    full = []
    for r in rows:
        row = {**base, **r}
        if row["kwh_sharp"] is None and row.get("kwh") is not None and "kwh_flat" not in r:
            row["kwh_flat"] = row["kwh"]  # all in the flat register unless given
        full.append(row)
    schema = {
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
    }
    return pl.DataFrame(full, schema=schema).select(DAY_COLUMNS).lazy()


def opening(kwh: float, customer: str = "C1", year: int = 2026) -> pl.LazyFrame:
    return pl.LazyFrame({"customer_id": [customer], "year": [year], "kwh_before": [kwh]})


def bills(
    lf: pl.LazyFrame, open_kwh: float | None = None, book: TariffBook = BOOK, rules: BillRules | None = None
) -> pl.DataFrame:
    priced = price_days(lf, calendar(book), opening(open_kwh) if open_kwh is not None else None)
    return bill_segments(priced, rules or BillRules()).collect().sort("customer_id", "period_start")


def jan(d: int) -> dt.date:
    return dt.date(2026, 1, d)


FEB2 = dt.date(2026, 2, 2)


# rounding ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(1.005, 1.01, id="1.005-float-below-half"),
        pytest.param(2.675, 2.68, id="2.675"),
        pytest.param(0.125, 0.13, id="0.125-exact-tie-half-even-would-go-down"),
        pytest.param(0.625, 0.63, id="0.625"),
        pytest.param(59.0 + 0.75 * 0.30, 59.23, id="59.225-from-a-sum"),
        pytest.param(12.5 * 0.538, 6.73, id="6.725-from-a-product"),
        pytest.param(1234567.895, 1234567.90, id="large"),
        pytest.param(0.004999, 0.0, id="below-half"),
        pytest.param(-1.005, -1.01, id="negative-away-from-zero"),
        pytest.param(0.0, 0.0, id="zero"),
        pytest.param(58.8, 58.8, id="58.80-not-58.800000000000004"),
        pytest.param(59.23, 59.23, id="59.23-not-59.230000000000004"),
    ],
)
def test_round_half_up(value: float, expected: float) -> None:
    got = pl.DataFrame({"x": [value]}).select(round_half_up(pl.col("x"))).item()
    assert got == expected


@SETTINGS
@given(mills=st.integers(min_value=0, max_value=10**9))
def test_round_half_up_agrees_with_decimal(mills: int) -> None:
    value = mills / 1000  # amounts with a third decimal: every .xx5 is a tie
    expected = float((Decimal(mills) / 1000).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
    assert pl.DataFrame({"x": [value]}).select(round_half_up(pl.col("x"))).item() == expected


def test_round_half_up_gives_the_nearest_double_of_every_cent() -> None:
    cents = pl.Series("x", range(2_000_000), dtype=pl.Float64)
    got = pl.DataFrame({"x": cents / 100}).select(round_half_up(pl.col("x"))).to_series()
    expected = pl.Series("x", [c / 100 for c in range(2_000_000)])
    assert_frame_equal(got.to_frame(), expected.to_frame(), check_exact=True)


# tiers -------------------------------------------------------------------------


def test_contract_example_2700_before_100_in_the_day() -> None:
    # CONTRACT §2: with 2700 kWh before a day and 100 kWh in it, 60 fall in tier 1, 40 in tier 2
    priced = price_days(days([{"date": jan(5), "kwh": 100.0}]), calendar(), opening(2700.0)).collect()
    assert priced.select("kwh_tier1", "kwh_tier2", "kwh_tier3").row(0) == (60.0, 40.0, 0.0)
    # 60 x 0.538 + 40 x 0.588 = 32.28 + 23.52
    assert priced["cost_yuan"].item() == pytest.approx(55.80, abs=1e-9)


def test_residential_bill_crosses_tier_1_to_2_inside_the_month() -> None:
    # 2700 kWh before March; four days of 25 kWh: 2700-2725-2750 | 2750-2775 (10 + 15) | 2775-2800
    lf = days([{"date": dt.date(2026, 3, d), "kwh": 25.0} for d in (1, 2, 3, 4)])
    priced = price_days(lf, calendar(), opening(2700.0)).collect().sort("date")
    assert priced["kwh_tier1"].to_list() == [25.0, 25.0, 10.0, 0.0]
    assert priced["kwh_tier2"].to_list() == [0.0, 0.0, 15.0, 25.0]
    got = bill_segments(priced.lazy(), BillRules()).collect()
    expected = pl.DataFrame(
        {
            "month": ["2026-03"],
            "customer_id": ["C1"],
            "kwh_total": [100.0],
            "kwh_tier1": [60.0],
            "kwh_tier2": [40.0],
            "kwh_tier3": [0.0],
            # 60 x 0.538 + 40 x 0.588 = 55.80
            "amount_yuan": [55.80],
            "status": ["ok"],
        }
    )
    assert_frame_equal(got.select(expected.columns), expected)


def test_annual_tiers_cumulate_over_earlier_months_in_the_same_frame() -> None:
    # Jan: 2750 kWh in one day; Feb: 20 kWh -> 10 in tier 1, 10 in tier 2
    lf = days([{"date": jan(1), "kwh": 2750.0}, {"date": dt.date(2026, 2, 1), "kwh": 20.0}])
    got = bills(lf)
    assert got.select("month", "kwh_tier1", "kwh_tier2").rows() == [("2026-01", 2750.0, 0.0), ("2026-02", 10.0, 10.0)]


def test_annual_tiers_restart_on_the_first_of_january() -> None:
    lf = days([{"date": dt.date(2025, 12, 31), "kwh": 4900.0}, {"date": jan(1), "kwh": 10.0}])
    priced = price_days(lf, calendar(first=dt.date(2025, 12, 1)), None).collect().sort("date")
    # 2025: 2760 / 2040 / 100; 2026 starts again in tier 1
    assert priced.select("kwh_tier1", "kwh_tier2", "kwh_tier3").rows() == [(2760.0, 2040.0, 100.0), (10.0, 0.0, 0.0)]


def test_monthly_tiers_reset_each_month() -> None:
    # Beijing 2012 style monthly tiers: 240 / 400 kWh a month
    raw = copy.deepcopy(RAW)
    v = raw["tariffs"]["RES_TIER"]["versions"][0]
    v["tier_basis"] = "monthly"
    v["tier_thresholds_kwh"] = [240.0, 400.0]
    book = TariffBook.model_validate(raw)
    lf = days([{"date": jan(d), "kwh": 10.0} for d in range(1, 32)] + [{"date": dt.date(2026, 2, 1), "kwh": 10.0}])
    got = bills(lf, open_kwh=5000.0, book=book)  # an annual opening must not matter
    # January 310 kWh: 240 in tier 1, 70 in tier 2; February starts again in tier 1
    assert got.select("month", "kwh_tier1", "kwh_tier2", "kwh_tier3").rows() == [
        ("2026-01", 240.0, 70.0, 0.0),
        ("2026-02", 10.0, 0.0, 0.0),
    ]
    # 240 x 0.538 + 70 x 0.588 = 129.12 + 41.16 = 170.28
    assert got["amount_yuan"].to_list() == [170.28, 5.38]


def test_two_meters_of_one_customer_on_a_swap_day_share_the_tier_ladder() -> None:
    # 2750 before; old meter 5 kWh and new meter 10 kWh on the same day: 10 kWh left in tier 1
    lf = days([{"date": jan(9), "kwh": 5.0, "meter_id": "OLD"}, {"date": jan(9), "kwh": 10.0, "meter_id": "NEW"}])
    got = bills(lf, open_kwh=2750.0)
    # 10 x 0.538 + 5 x 0.588 = 5.38 + 2.94
    assert got.select("days", "kwh_tier1", "kwh_tier2", "amount_yuan").row(0) == (2, 10.0, 5.0, 8.32)


# TOU ---------------------------------------------------------------------------


def test_res_tier_tou_with_tier_adders() -> None:
    # 4790 kWh before. Day 1: 30 kWh, registers sharp 3 peak 15 flat 6 valley 6:
    #   peak share (3+15)/30 = 0.6, valley 0.4; tiers: 10 in tier 2, 20 in tier 3
    #   peak   t2 6 x (0.568+0.05) = 3.708   peak   t3 12 x (0.568+0.30) = 10.416
    #   valley t2 4 x (0.288+0.05) = 1.352   valley t3  8 x (0.288+0.30) =  4.704  -> 20.18
    # Day 2: 10 kWh, flat 4 valley 6, all tier 3: 10 x 0.588 = 5.88. Month 26.06.
    lf = days(
        [
            {
                "date": jan(1),
                "kwh": 30.0,
                "kwh_sharp": 3.0,
                "kwh_peak": 15.0,
                "kwh_flat": 6.0,
                "kwh_valley": 6.0,
                "tariff_id": "RES_TIER_TOU",
            },
            {
                "date": jan(2),
                "kwh": 10.0,
                "kwh_sharp": 0.0,
                "kwh_peak": 0.0,
                "kwh_flat": 4.0,
                "kwh_valley": 6.0,
                "tariff_id": "RES_TIER_TOU",
            },
        ]
    )
    priced = price_days(lf, calendar(), opening(4790.0)).collect().sort("date")
    assert priced["cost_yuan"].to_list() == pytest.approx([20.18, 5.88], abs=1e-9)
    got = bill_segments(priced.lazy(), BillRules()).collect()
    expected = pl.DataFrame(
        {
            "tariff_id": ["RES_TIER_TOU"],
            "kwh_total": [40.0],
            "kwh_sharp": [3.0],
            "kwh_peak": [15.0],
            "kwh_flat": [10.0],
            "kwh_valley": [12.0],
            "kwh_tier1": [0.0],
            "kwh_tier2": [10.0],
            "kwh_tier3": [30.0],
            "amount_yuan": [26.06],
        }
    )
    assert_frame_equal(got.select(expected.columns), expected, check_exact=False, abs_tol=1e-9)


def test_com_tou_prices_each_register() -> None:
    # Day 1: sharp 10 x 1.10 + peak 20 x 0.90 + flat 30 x 0.60 + valley 40 x 0.30 = 11 + 18 + 18 + 12 = 59
    # Day 2: valley 0.75 x 0.30 = 0.225. Month 59.225 -> 59.23 (half up)
    lf = days(
        [
            {
                "date": jan(1),
                "kwh": 100.0,
                "kwh_sharp": 10.0,
                "kwh_peak": 20.0,
                "kwh_flat": 30.0,
                "kwh_valley": 40.0,
                "tariff_id": "COM_TOU",
                "customer_class": "commercial",
            },
            {
                "date": jan(2),
                "kwh": 0.75,
                "kwh_sharp": 0.0,
                "kwh_peak": 0.0,
                "kwh_flat": 0.0,
                "kwh_valley": 0.75,
                "tariff_id": "COM_TOU",
                "customer_class": "commercial",
            },
        ]
    )
    got = bills(lf)
    assert got.select("kwh_sharp", "kwh_peak", "kwh_flat", "kwh_valley", "kwh_tier1").row(0) == (
        10.0,
        20.0,
        30.0,
        40.75,
        100.75,
    )
    assert got["amount_exact_yuan"].item() == pytest.approx(59.225, abs=1e-9)
    assert got["amount_yuan"].item() == 59.23
    assert got["status"].item() == "ok"


def test_missing_tou_registers_on_a_tou_tariff_go_flat_and_flag_the_bill() -> None:
    # COM_TOU day without registers: 10 kWh priced flat (0.60) = 6.00, bill held as exception
    lf = days([{"date": jan(1), "kwh": 10.0, "kwh_flat": None, "tariff_id": "COM_TOU"}])
    got = bills(lf)
    assert got.select("kwh_flat", "amount_yuan", "status", "exception_reasons").row(0) == (
        10.0,
        6.0,
        "held",
        "tou_registers_missing",
    )


def test_missing_tou_registers_do_not_matter_on_a_single_price_tariff() -> None:
    got = bills(days([{"date": jan(1), "kwh": 10.0, "kwh_flat": None, "tariff_id": "AGR_FLAT"}]))
    assert got.select("amount_yuan", "status").row(0) == (5.0, "ok")


def test_tou_split_follows_the_registers_when_they_do_not_sum_to_the_total() -> None:
    # registers sum to 50 while the day's kWh is 100: the 100 split 20/80 like the registers
    lf = days(
        [
            {
                "date": jan(1),
                "kwh": 100.0,
                "kwh_sharp": 0.0,
                "kwh_peak": 10.0,
                "kwh_flat": 0.0,
                "kwh_valley": 40.0,
                "tariff_id": "COM_TOU",
            }
        ]
    )
    got = bills(lf)
    # 20 x 0.90 + 80 x 0.30 = 18 + 24 = 42
    assert got.select("kwh_peak", "kwh_valley", "amount_yuan").row(0) == (20.0, 80.0, 42.0)


# tariff change in mid-month ---------------------------------------------------------


def test_mid_month_tariff_change_splits_the_month_at_the_effective_date() -> None:
    # RES_TIER gets a new flat price 0.56 from 16 January; 2750 kWh before, 10 kWh a day.
    # 1-15 Jan: 150 kWh, 10 in tier 1, 140 in tier 2: 10 x 0.538 + 140 x 0.588 = 5.38 + 82.32 = 87.70
    # 16-31 Jan: 160 kWh in tier 2 at 0.56 + 0.05: 160 x 0.61 = 97.60 (tiers carry across the change)
    raw = copy.deepcopy(RAW)
    new = copy.deepcopy(raw["tariffs"]["RES_TIER"]["versions"][0])
    new["effective_from"] = jan(16)
    new["periods"][0]["price_yuan_per_kwh"] = 0.56
    raw["tariffs"]["RES_TIER"]["versions"].append(new)
    book = TariffBook.model_validate(raw)
    got = bills(days([{"date": jan(d), "kwh": 10.0} for d in range(1, 32)]), open_kwh=2750.0, book=book)
    expected = pl.DataFrame(
        {
            "month": ["2026-01", "2026-01"],
            "tariff_effective_from": [dt.date(2012, 7, 1), jan(16)],
            "period_start": [jan(1), jan(16)],
            "period_end": [jan(15), jan(31)],
            "days": pl.Series([15, 16], dtype=pl.Int16),
            "kwh_total": [150.0, 160.0],
            "kwh_tier1": [10.0, 0.0],
            "kwh_tier2": [140.0, 160.0],
            "amount_yuan": [87.70, 97.60],
        }
    )
    assert_frame_equal(got.select(expected.columns), expected)


def test_customer_moving_to_another_tariff_gets_a_row_per_tariff() -> None:
    lf = days(
        [{"date": jan(1), "kwh": 10.0, "tariff_id": "RES_TIER"}, {"date": jan(2), "kwh": 10.0, "tariff_id": "AGR_FLAT"}]
    )
    got = bills(lf).sort("period_start")
    assert got.select("tariff_id", "amount_yuan").rows() == [("RES_TIER", 5.38), ("AGR_FLAT", 5.0)]


# quality gate and unknown tariffs ---------------------------------------------------


@pytest.mark.parametrize(
    ("estimated", "missing", "status", "reasons"),
    [
        pytest.param(2, 0, "ok", None, id="20pct-at-the-limit"),
        pytest.param(3, 0, "held", "estimated_share", id="30pct-estimated"),
        pytest.param(1, 2, "held", "missing_days,estimated_share", id="missing-days-count"),
        pytest.param(0, 1, "held", "missing_days", id="one-day-billed-as-0-kwh"),
    ],
)
def test_billing_quality_gate(estimated, missing, status, reasons) -> None:
    quality = ["estimated"] * estimated + ["missing"] * missing
    quality += ["actual"] * (10 - len(quality))
    lf = days(
        [{"date": jan(i + 1), "kwh": None if q == "missing" else 10.0, "quality": q} for i, q in enumerate(quality)]
    )
    got = bills(lf)
    share = (estimated + missing) / 10
    kwh = 10.0 * (10 - missing)
    assert got.select(
        "days_estimated", "days_missing", "estimated_share", "kwh_total", "status", "exception_reasons"
    ).row(0) == (
        estimated,
        missing,
        share,
        kwh,
        status,
        reasons,
    )


def test_quality_gate_threshold_is_configuration() -> None:
    lf = days([{"date": jan(1), "kwh": 10.0, "quality": "estimated"}, {"date": jan(2), "kwh": 10.0}])
    assert bills(lf, rules=BillRules(max_estimated_share=0.5))["status"].item() == "ok"
    assert bills(lf, rules=BillRules(max_estimated_share=0.4))["status"].item() == "held"


def test_unknown_tariff_has_no_amount_and_is_an_exception() -> None:
    got = bills(days([{"date": jan(1), "kwh": 10.0, "tariff_id": "NO_SUCH"}]))
    assert got.select(
        "tariff_id", "tariff_effective_from", "kwh_total", "amount_yuan", "status", "exception_reasons"
    ).row(0) == (
        "NO_SUCH",
        None,
        10.0,
        None,
        "held",
        "no_tariff",
    )


def test_a_day_outside_every_tariff_version_has_no_tariff() -> None:
    raw = copy.deepcopy(RAW)
    raw["tariffs"]["AGR_FLAT"]["versions"][0]["effective_to"] = jan(1)
    book = TariffBook.model_validate(raw)
    lf = days(
        [{"date": jan(1), "kwh": 10.0, "tariff_id": "AGR_FLAT"}, {"date": jan(2), "kwh": 10.0, "tariff_id": "AGR_FLAT"}]
    )
    priced = price_days(lf, calendar(book), None).collect().sort("date")
    assert priced.select("no_tariff", "cost_yuan").rows() == [(False, 5.0), (True, None)]


@SETTINGS
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["RES_TIER", "COM_TOU", "AGR_FLAT", "NO_SUCH", None]),
            st.integers(min_value=-40, max_value=70),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_price_lookup_equals_a_join_on_tariff_and_date(rows) -> None:
    from meterlake.transforms.billing import _with_prices

    cal = calendar(first=jan(1), last=jan(31))
    lf = pl.LazyFrame(
        {
            "i": list(range(len(rows))),
            "tariff_id": [t for t, _ in rows],
            "date": [jan(1) + dt.timedelta(days=d) for _, d in rows],
        },
        schema={"i": pl.Int64, "tariff_id": pl.String, "date": pl.Date},
    )
    got = _with_prices(lf, cal).collect().sort("i")
    expected = lf.join(cal.lazy(), on=["tariff_id", "date"], how="left").collect().sort("i")
    assert_frame_equal(got, expected.select(got.columns))


def test_bills_conform_to_the_contract() -> None:
    got = bills(days([{"date": jan(1), "kwh": 1.0}]))
    assert got.schema == BILLS_MONTHLY.schema
    contract = [
        "customer_id",
        "month",
        "tariff_id",
        "kwh_total",
        "kwh_sharp",
        "kwh_peak",
        "kwh_flat",
        "kwh_valley",
        "kwh_tier1",
        "kwh_tier2",
        "kwh_tier3",
        "amount_yuan",
    ]
    assert set(contract) <= set(got.columns)


def test_billing_config_defaults_match_the_shipped_file() -> None:
    shipped = BillingConfig.model_validate(
        tomllib.loads((REPO / "config" / "billing.toml").read_text(encoding="utf-8"))
    )
    assert shipped == BillingConfig()


# properties --------------------------------------------------------------------------

day_kwh = st.lists(
    st.floats(min_value=0, max_value=400, allow_nan=False).map(lambda x: round(x, 2)), min_size=1, max_size=31
)
shares = st.tuples(*[st.integers(min_value=0, max_value=10)] * 4).filter(lambda t: sum(t) > 0)


def tou_days(kwh: list[float], split: tuple[int, int, int, int], tariff: str) -> pl.LazyFrame:
    total = sum(split)
    return days(
        [
            {
                "date": jan(i + 1),
                "kwh": k,
                "tariff_id": tariff,
                **{f"kwh_{r}": k * s / total for r, s in zip(("sharp", "peak", "flat", "valley"), split, strict=True)},
            }
            for i, k in enumerate(kwh)
        ]
    )


@SETTINGS
@given(kwh=day_kwh, start=st.floats(min_value=0, max_value=6000).map(lambda x: round(x, 1)), split=shares)
def test_tier_kwh_sum_to_the_total(kwh, start, split) -> None:
    priced = price_days(tou_days(kwh, split, "RES_TIER_TOU"), calendar(), opening(start)).collect()
    tiers = priced.select(pl.sum_horizontal("kwh_tier1", "kwh_tier2", "kwh_tier3")).to_series()
    regs = priced.select(pl.sum_horizontal("kwh_sharp", "kwh_peak", "kwh_flat", "kwh_valley")).to_series()
    assert (priced.select(pl.min_horizontal("kwh_tier1", "kwh_tier2", "kwh_tier3")).to_series() >= 0).all()
    assert ((tiers - priced["kwh"]).abs() < 1e-9).all()
    assert ((regs - priced["kwh"]).abs() < 1e-9).all()
    # the tier position: tier 1 holds at most what is left below 2760
    bill = bill_segments(priced.lazy(), BillRules()).collect()
    assert bill["kwh_tier1"].item() == pytest.approx(min(sum(kwh), max(0.0, 2760 - start)), abs=1e-6)


def _reference_cost(kwh: list[float], start: float, price: float = 0.538) -> float:
    """A scalar model of CONTRACT §2 for RES_TIER, day by day."""
    total, cum = 0.0, start
    for k in kwh:
        for lo, hi, p in ((0, 2760, price), (2760, 4800, price + 0.05), (4800, float("inf"), price + 0.30)):
            total += max(0.0, min(cum + k, hi) - max(cum, lo)) * p
        cum += k
    return total


@SETTINGS
@given(kwh=day_kwh, start=st.floats(min_value=0, max_value=6000).map(lambda x: round(x, 1)))
def test_amount_matches_a_day_by_day_reference(kwh, start) -> None:
    got = bills(days([{"date": jan(i + 1), "kwh": k} for i, k in enumerate(kwh)]), open_kwh=start)
    assert got["amount_exact_yuan"].item() == pytest.approx(_reference_cost(kwh, start), abs=1e-6)


@SETTINGS
@given(
    kwh=day_kwh,
    start=st.floats(min_value=0, max_value=6000).map(lambda x: round(x, 1)),
    split=shares,
    tariff=st.sampled_from(["RES_TIER", "RES_TIER_TOU", "COM_TOU", "AGR_FLAT"]),
    day=st.integers(min_value=0, max_value=30),
    extra=st.floats(min_value=0, max_value=500, allow_nan=False),
)
def test_a_bill_never_falls_when_kwh_rise(kwh, start, split, tariff, day, extra) -> None:
    more = list(kwh)
    more[day % len(more)] += extra
    a = bills(tou_days(kwh, split, tariff), open_kwh=start)
    b = bills(tou_days(more, split, tariff), open_kwh=start)
    assert b["amount_exact_yuan"].item() >= a["amount_exact_yuan"].item() - 1e-9
    assert b["amount_yuan"].item() >= a["amount_yuan"].item()


def _gate_days(rows: list[dict]) -> pl.LazyFrame:
    """January days of M1 with the readings each rests on (reading_from, reading_to)."""
    frame = days(rows).collect()
    spans = pl.DataFrame(
        {
            "reading_from": [r.get("reading_from", r["date"]) for r in rows],
            "reading_to": [r.get("reading_to", r["date"] + dt.timedelta(days=1)) for r in rows],
        }
    )
    return pl.concat([frame, spans], how="horizontal").lazy()


def test_a_day_estimated_across_the_month_boundary_holds_the_bill() -> None:
    # 30 and 31 January share the difference of the readings frozen on 30 January and
    # 2 February (the 1 February reading is missing): the month's total rests on the split
    across = _gate_days(
        [{"date": jan(d), "kwh": 10.0} for d in range(1, 30)]
        + [
            {"date": jan(d), "kwh": 10.0, "quality": "estimated", "reading_from": jan(30), "reading_to": FEB2}
            for d in (30, 31)
        ]
    )
    priced = price_days(across, calendar(BOOK))
    got = bill_segments(priced, BillRules()).collect()
    assert got.select("days_estimated", "status", "exception_reasons").row(0) == (2, "held", "substituted_days")
    # a gap inside the month (readings of 10 and 13 January) is a register difference: ok
    inside = _gate_days(
        [{"date": jan(d), "kwh": 10.0} for d in range(1, 10)]
        + [
            {"date": jan(d), "kwh": 10.0, "quality": "estimated", "reading_from": jan(10), "reading_to": jan(13)}
            for d in (10, 11, 12)
        ]
        + [{"date": jan(d), "kwh": 10.0} for d in range(13, 32)]
    )
    got = bill_segments(price_days(inside, calendar(BOOK)), BillRules()).collect()
    assert got.select("days_estimated", "status", "exception_reasons").row(0) == (3, "ok", None)


def test_a_meter_suspected_of_a_wrong_multiplier_holds_the_bill() -> None:
    lf = days([{"date": jan(1), "kwh": 10.0}, {"date": jan(2), "kwh": 10.0, "customer_id": "C2", "meter_id": "M2"}])
    diagnosis = pl.DataFrame(
        {
            "date": [jan(31), dt.date(2026, 2, 28)],
            "kind": ["multiplier_suspect", "multiplier_suspect"],
            "meter_id": ["M1", "M2"],  # M2 is suspected in February only
        }
    )
    priced = price_days(lf, calendar(BOOK))
    got = bill_segments(priced, BillRules(), multiplier_suspects(diagnosis)).collect().sort("customer_id")
    assert got.select("customer_id", "status", "exception_reasons").rows() == [
        ("C1", "held", "multiplier_suspect"),
        ("C2", "ok", None),
    ]


def test_stable_sum_gives_the_same_bits_in_any_order() -> None:
    # 31 terms with full float fractions (a month of priced days); a float sum of them
    # rounded to 1e-9 came out 293101.140056873 in one order and ...874 in another
    rng = random.Random(343)
    terms = [rng.uniform(0, 20000) for _ in range(31)]
    # by hand: the terms added exactly, the sum to 1e-9
    exact = sum((Decimal(repr(t)) for t in terms), Decimal(0)).quantize(Decimal("1e-9"), rounding=ROUND_HALF_UP)
    orders = [terms, terms[::-1], sorted(terms), sorted(terms, reverse=True)]
    sums = {
        pl.DataFrame({"g": [1] * 31, "x": order}).group_by("g").agg(s=stable_sum("x"))["s"].item() for order in orders
    }
    assert sums == {float(exact)}
    # a gap's 17.27 kWh spread over three days as meter_daily holds it, 5.756666666666509 each:
    # 17.27 again, not 17.270000001 (each share taken to 1e-9 first) nor 17.269999999999527
    shares = pl.DataFrame({"x": [5.756666666666509] * 3})
    assert shares.select(stable_sum("x")).item() == 17.27
    # nulls are left out, as a float sum leaves them out
    frame = pl.DataFrame({"x": [1.25, None, 2.5]})
    assert frame.select(stable_sum("x")).item() == 3.75
    assert frame.select(stable_sum(pl.col("x").fill_null(0.0))).item() == 3.75


def test_kwh_before_in_turn_runs_within_customer_and_year_in_turn_order() -> None:
    # rows out of order on purpose; turn order is by turn_key within (customer, year)
    frame = pl.DataFrame(
        {
            "customer_id": ["B", "A", "A", "A", "B", "A", None, None],
            "year": [2026, 2026, 2026, 2025, 2026, 2026, 2026, 2026],
            "turn_key": [7, 3, 1, 9, 2, 2, 5, 4],
            "kwh": [4.0, 30.0, 10.0, 99.0, 6.0, 20.0, 1.5, 2.5],
        }
    )
    got = kwh_before_in_turn(frame).to_list()
    # A 2026 in turn order: 10 (key 1), 20 (key 2), 30 (key 3) -> 0, 10, 30 before each
    # A 2025: one day -> 0; B 2026: 6 (key 2), 4 (key 7) -> 0, 6; no customer: 2.5, 1.5 -> 0, 2.5
    assert got == [6.0, 30.0, 0.0, 0.0, 0.0, 10.0, 2.5, 0.0]


def test_kwh_before_in_turn_adds_in_turn_order_like_the_window() -> None:
    # the window's figure to the bit: the running sum through the day (one float addition a
    # day, in turn order) less the day's own kWh, e.g. ((0.1 + 0.2) + 0.3 + 5.0) - 5.0 is
    # 0.5999999999999996 in floats, not 0.6
    frame = pl.DataFrame(
        {"customer_id": ["A"] * 4, "year": [2026] * 4, "turn_key": [4, 1, 3, 2], "kwh": [5.0, 0.1, 0.3, 0.2]}
    )
    got = kwh_before_in_turn(frame).to_list()
    assert got == [(((0.1 + 0.2) + 0.3) + 5.0) - 5.0, 0.1 - 0.1, ((0.1 + 0.2) + 0.3) - 0.3, (0.1 + 0.2) - 0.2]
    assert got[0] == 0.5999999999999996
    window = frame.select(pl.col("kwh").cum_sum().over("customer_id", "year", order_by="turn_key") - pl.col("kwh"))
    assert got == window.to_series().to_list()
    assert kwh_before_in_turn(frame.clear()).to_list() == []


def test_kwh_before_in_turn_on_rows_already_in_turn_order() -> None:
    # a day's rows in customer order (as one meter_daily file gives them): the running sums
    # are added a position at a time; the same bits as the window, added one day at a time
    frame = pl.DataFrame(
        {
            "customer_id": ["A", "A", "A", "B", "C", "C"],
            "year": [2026, 2026, 2026, 2026, 2025, 2026],
            "turn_key": [1, 2, 3, 1, 9, 1],
            "kwh": [0.1, 0.2, 0.3, 4.0, 7.0, 8.0],
        }
    )
    got = kwh_before_in_turn(frame).to_list()
    # A: 0.1 - 0.1, (0.1 + 0.2) - 0.2, ((0.1 + 0.2) + 0.3) - 0.3; B and C's two years: one day each
    assert got == [0.1 - 0.1, (0.1 + 0.2) - 0.2, ((0.1 + 0.2) + 0.3) - 0.3, 0.0, 0.0, 0.0]
    assert got[2] == 0.6000000000000001 - 0.3
    window = frame.select(pl.col("kwh").cum_sum().over("customer_id", "year", order_by="turn_key") - pl.col("kwh"))
    assert got == window.to_series().to_list()
