"""Theft cases: stolen kWh priced at the customer's tariff, the 3x penalty, the inspection outcome."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from meterlake.schemas.loss_diagnosis import BALANCE_RULES
from meterlake.transforms.theft_cases import theft_cases, theft_cases_at

DAY = dt.date(2026, 1, 30)
START = dt.date(2026, 1, 1)


def _diag(
    meter: str, score: float, stolen: float, recorded: float, rule: str = BALANCE_RULES["theft_candidate"]
) -> dict[str, object]:
    ev = {
        "unrecorded_kwh_per_day": round(stolen / 30, 3),
        "unrecorded_share": stolen / (stolen + recorded),
        "unrecorded_kwh": stolen,
        "coefficient": 0.6667,
        "area_technical_coefficient": 0.0,
        "t_stat": 42.0,
        "recorded_kwh": recorded,
        "slot_rows": 2880,
        "daily_rows": 0,
    }
    return {
        "date": DAY,
        "window_start": START,
        "area_id": "A1",
        "kind": "theft_candidate",
        "rule": rule,
        "meter_id": meter,
        "customer_id": "C" + meter,
        "score": score,
        "days": 30,
        "evidence": json.dumps(ev),
    }


def _prices() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "tariff_id": ["COM", "RES"],
            "date": [DAY, DAY],
            "price_sharp_yuan_per_kwh": [1.10, 0.50],
            "price_peak_yuan_per_kwh": [0.90, 0.50],
            "price_flat_yuan_per_kwh": [0.60, 0.50],
            "price_valley_yuan_per_kwh": [0.30, 0.50],
        }
    )


def _meter_days() -> pl.DataFrame:
    # M1 (commercial TOU): 10 sharp, 40 peak, 30 flat, 20 valley kWh over two days
    return pl.DataFrame(
        {
            "meter_id": ["M1", "M1", "M2"],
            "date": [dt.date(2026, 1, 10), dt.date(2026, 1, 11), dt.date(2026, 1, 10)],
            "tariff_id": ["COM", "COM", "RES"],
            "kwh": [50.0, 50.0, 10.0],
            "kwh_sharp": [5.0, 5.0, 0.0],
            "kwh_peak": [20.0, 20.0, 10.0],
            "kwh_flat": [15.0, 15.0, 0.0],
            "kwh_valley": [10.0, 10.0, 0.0],
        }
    )


def test_back_charge_at_the_recorded_tou_mix_and_penalty_three_times() -> None:
    diag = pl.DataFrame(
        [
            _diag("M1", 0.8, 200.0, 300.0),
            _diag("M2", 0.1, 5.0, 95.0),
            _diag("M3", 0.9, 50.0, 50.0, "loss.diagnosis.theft_candidate"),
        ]
    )
    inspections = pl.DataFrame(
        {"meter_id": ["M1", "M1"], "inspection_date": [dt.date(2025, 12, 1), DAY], "outcome": ["normal", "theft"]}
    )
    out = theft_cases(diag, _meter_days(), _prices(), inspections, DAY, 0.2, 3.0)
    # M2 scores below 0.2; M3 is the daily diagnosis's, not the balance's
    assert out["meter_id"].to_list() == ["M1"]
    row = out.row(0, named=True)
    # (10 x 1.10 + 40 x 0.90 + 30 x 0.60 + 20 x 0.30) / 100 = 0.71 yuan/kWh
    assert row["price_yuan_per_kwh"] == pytest.approx(0.71)
    assert row["stolen_kwh"] == 200.0
    assert row["back_charge_yuan"] == pytest.approx(142.00)
    assert row["penalty_yuan"] == pytest.approx(426.00)
    assert row["unrecorded_share"] == pytest.approx(0.4)
    # the inspection before the window does not count; the one in it confirms the case
    assert (row["inspection_date"], row["inspection_outcome"]) == (DAY, "theft")
    assert "kWh/day unrecorded (40% of the use" in row["evidence_text"]


def test_the_penalty_multiple_is_configurable_and_no_inspection_leaves_it_open() -> None:
    diag = pl.DataFrame([_diag("M2", 0.5, 100.0, 100.0)])
    empty = pl.DataFrame(schema={"meter_id": pl.String, "inspection_date": pl.Date, "outcome": pl.String})
    row = theft_cases(diag, _meter_days(), _prices(), empty, DAY, 0.2, 2.0).row(0, named=True)
    assert row["back_charge_yuan"] == pytest.approx(50.00)
    assert row["penalty_yuan"] == pytest.approx(100.00)
    assert row["inspection_outcome"] is None


def test_several_dates_priced_together_each_over_its_own_window() -> None:
    d1, d2 = dt.date(2026, 1, 10), dt.date(2026, 1, 11)
    # M1 on Jan 10: 5 sharp, 20 peak, 15 flat, 10 valley kWh; on Jan 11: 50 flat kWh
    days = pl.DataFrame(
        {
            "meter_id": ["M1", "M1", "M2"],
            "date": [d1, d2, d1],
            "tariff_id": ["COM", "COM", "RES"],
            "kwh": [50.0, 50.0, 10.0],
            "kwh_sharp": [5.0, 0.0, 0.0],
            "kwh_peak": [20.0, 0.0, 10.0],
            "kwh_flat": [15.0, 50.0, 0.0],
            "kwh_valley": [10.0, 0.0, 0.0],
        }
    )
    prices = pl.concat([_prices().with_columns(date=pl.lit(d)) for d in (d1, d2)])
    diag = pl.DataFrame(
        [
            {**_diag("M1", 0.8, 200.0, 300.0), "date": d1, "window_start": d1},
            {**_diag("M1", 0.8, 100.0, 300.0), "date": d2, "window_start": d1},
        ]
    )
    # the observer names M2 and M1 on Jan 11: M1 is the balance's case there already
    cols = ["date", "window_start", "area_id", "meter_id", "customer_id", "days", "score", "evidence"]
    observed = pl.DataFrame(
        [
            {**{c: _diag("M2", 0.95, 10.0, 10.0)[c] for c in cols}, "date": d2, "window_start": d1},
            {**{c: _diag("M1", 0.95, 1.0, 1.0)[c] for c in cols}, "date": d2, "window_start": d1},
        ]
    ).with_columns(recorded_kwh=pl.Series([10.0, 1.0]), stolen_kwh=pl.Series([10.0, 1.0]), evidence_text=pl.lit("seen"))
    empty = pl.DataFrame(schema={"meter_id": pl.String, "inspection_date": pl.Date, "outcome": pl.String})
    out = theft_cases_at(diag, days, prices, empty, [d2, d1], 0.2, 3.0, {d1: None, d2: observed})
    assert list(out) == [d1, d2]
    first, second = (
        out[d1].rows_by_key("meter_id", named=True, unique=True),
        out[d2].rows_by_key("meter_id", named=True, unique=True),
    )
    # Jan 10 alone: (5 x 1.10 + 20 x 0.90 + 15 x 0.60 + 10 x 0.30) / 50 = 0.71 yuan/kWh
    assert list(first) == ["M1"]
    assert first["M1"]["price_yuan_per_kwh"] == pytest.approx(0.71)
    assert first["M1"]["back_charge_yuan"] == pytest.approx(142.0)
    # Jan 10-11: (5 x 1.10 + 20 x 0.90 + 65 x 0.60 + 10 x 0.30) / 100 = 0.655; the balance's 100 kWh, not the observer's 1
    assert list(second) == ["M1", "M2"]
    assert second["M1"]["price_yuan_per_kwh"] == pytest.approx(0.655)
    assert second["M1"]["stolen_kwh"] == 100.0
    assert second["M1"]["back_charge_yuan"] == pytest.approx(65.5)
    assert second["M1"]["penalty_yuan"] == pytest.approx(196.5)
    # the observer's case of M2: its Jan 10 at the residential 0.50
    assert second["M2"]["back_charge_yuan"] == pytest.approx(5.0)
    assert (second["M1"]["rank"], second["M2"]["rank"]) == (1, 2)
    # the same rows as one date at a time
    for d, obs in ((d1, None), (d2, observed)):
        assert out[d].equals(theft_cases(diag, days, prices, empty, d, 0.2, 3.0, obs))


def test_a_date_without_cases_gets_an_empty_frame_of_the_schema() -> None:
    diag = pl.DataFrame([_diag("M2", 0.5, 100.0, 100.0)])
    empty = pl.DataFrame(schema={"meter_id": pl.String, "inspection_date": pl.Date, "outcome": pl.String})
    other = dt.date(2026, 1, 29)
    out = theft_cases_at(diag, _meter_days(), _prices(), empty, [other, DAY], 0.2, 3.0)
    assert out[other].height == 0
    assert out[other].schema == out[DAY].schema
    assert out[DAY]["meter_id"].to_list() == ["M2"]
