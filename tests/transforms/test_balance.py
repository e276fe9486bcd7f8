"""The interval energy balance on hand-built areas whose true answers are known by construction."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl
import pytest

from meterlake.transforms.balance import SLOT_COLUMNS, BalanceRules, balance

START = dt.date(2026, 3, 1)
DAYS = 14
STANDARD = tuple(sorted({ct / 5 * pt for ct in (50, 100, 150, 200, 300, 400) for pt in (1,)}))
RULES = BalanceRules(window_days=DAYS, min_days=5, standard_multipliers=STANDARD)
END = START + dt.timedelta(days=DAYS - 1)


def _load(rng: np.random.Generator, base: float) -> np.ndarray:
    """(days, 96) kWh of one customer: a daily shape times spiky slot noise."""
    h = (np.arange(96) + 0.5) / 4
    shape = 0.3 + np.exp(-0.5 * ((h - 20) / 1.7) ** 2) + 0.4 * np.exp(-0.5 * ((h - 7.5) / 0.8) ** 2)
    return base * shape[None, :] / shape.sum() * rng.lognormal(0, 0.4, (DAYS, 96))


def _frames(
    meters: Mapping[str, tuple[str, str, float, Any]], reverse: dict[str, np.ndarray] | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """curves (meter side) and meter_daily rows from {meter: (area, role, multiplier, primary kWh (days, 96))}."""
    curves, members = [], []
    for meter, (area, role, mult, primary) in meters.items():
        for d in range(DAYS):
            day = START + dt.timedelta(days=d)
            row = primary[d] / mult
            curves.append(
                {
                    "meter_id": meter,
                    "data_date": day,
                    **{p: (None if np.isnan(v) else float(v)) for p, v in zip(SLOT_COLUMNS, row, strict=True)},
                }
            )
            members.append(
                {
                    "date": day,
                    "meter_id": meter,
                    "customer_id": None if role == "area_master" else "C" + meter,
                    "area_id": area,
                    "feeder_id": "F1",
                    "role": role,
                    "multiplier": mult,
                    "kwh": float(np.nansum(primary[d])),
                    "reverse_kwh": float(reverse[meter][d]) if reverse and meter in reverse else 0.0,
                }
            )
    return pl.DataFrame(curves), pl.DataFrame(members)


def _row(coef: pl.DataFrame, meter: str) -> dict[str, Any]:
    return coef.filter(pl.col("meter_id") == meter).row(0, named=True)


def test_a_customer_recording_60_percent_leaves_its_coefficient_and_stolen_kwh() -> None:
    rng = np.random.default_rng(1)
    x = [_load(rng, b) for b in (8.0, 12.0, 5.0)]
    master = sum(x)
    meters = {
        "M": ("A", "area_master", 1.0, master),
        "c1": ("A", "customer", 1.0, 0.6 * x[0]),
        "c2": ("A", "customer", 1.0, x[1]),
        "c3": ("A", "customer", 1.0, x[2]),
    }
    coef, found = balance(*_frames(meters), END, RULES)
    c1 = _row(coef, "c1")
    # recorded 60%: loss = 0.4 x = (1/0.6 - 1) x recorded, the coefficient 2/3
    assert c1["coefficient"] == pytest.approx(2 / 3, rel=0.02)
    stolen = 0.4 * x[0].sum()
    assert c1["steady_unrecorded_kwh"] == pytest.approx(stolen, rel=0.02)
    theft = found.filter(pl.col("kind") == "theft_candidate")
    assert theft["meter_id"].to_list() == ["c1"]
    ev = json.loads(theft["evidence"][0])
    assert ev["unrecorded_share"] == pytest.approx(0.4, rel=0.02)
    assert ev["unrecorded_kwh_per_day"] == pytest.approx(stolen / DAYS, rel=0.02)
    assert abs(_row(coef, "c2")["coefficient"]) < 0.01


def test_a_multiplier_of_40_booked_as_20_is_found_with_its_true_value() -> None:
    rng = np.random.default_rng(2)
    x = [_load(rng, b) for b in (300.0, 10.0, 6.0, 9.0)]
    meters = {
        "M": ("A", "area_master", 1.0, sum(x)),
        # the meter sees primary / 40; the archive multiplies by 20: half is recorded
        "ct": ("A", "customer", 20.0, x[0] / 2),
        "c2": ("A", "customer", 1.0, x[1]),
        "c3": ("A", "customer", 1.0, x[2]),
        "c4": ("A", "customer", 1.0, x[3]),
    }
    coef, found = balance(*_frames(meters), END, RULES)
    assert _row(coef, "ct")["true_use_ratio"] == pytest.approx(2.0, rel=0.02)
    mult = found.filter(pl.col("kind") == "multiplier_suspect")
    assert mult["meter_id"].to_list() == ["ct"]
    ev = json.loads(mult["evidence"][0])
    assert ev["candidate_multiplier"] == 40.0
    assert ev["estimated_multiplier"] == pytest.approx(40.0, rel=0.02)


def test_a_multiplier_booked_too_large_gives_a_negative_coefficient() -> None:
    rng = np.random.default_rng(3)
    x = [_load(rng, b) for b in (300.0, 10.0, 6.0, 9.0)]
    meters = {
        "M": ("A", "area_master", 1.0, sum(x)),
        "ct": ("A", "customer", 60.0, 2 * x[0]),  # true 30, booked 60: recorded twice the use
        "c2": ("A", "customer", 1.0, x[1]),
        "c3": ("A", "customer", 1.0, x[2]),
        "c4": ("A", "customer", 1.0, x[3]),
    }
    coef, found = balance(*_frames(meters), END, RULES)
    assert _row(coef, "ct")["coefficient"] == pytest.approx(-0.5, abs=0.01)
    mult = found.filter(pl.col("kind") == "multiplier_suspect")
    assert json.loads(mult["evidence"][0])["candidate_multiplier"] == 30.0
    assert found.filter(pl.col("kind") == "theft_candidate").height == 0


def test_a_customer_in_the_wrong_one_of_two_areas_is_matched_to_the_other() -> None:
    rng = np.random.default_rng(4)
    a = [_load(rng, b) for b in (8.0, 11.0, 7.0)]
    b = [_load(rng, v) for v in (9.0, 6.0, 10.0)]
    j = _load(rng, 9.0)
    meters = {
        "MA": ("A", "area_master", 1.0, sum(a)),
        "MB": ("B", "area_master", 1.0, sum(b) + j),  # B feeds j ...
        **{f"a{i}": ("A", "customer", 1.0, v) for i, v in enumerate(a)},
        **{f"b{i}": ("B", "customer", 1.0, v) for i, v in enumerate(b)},
        "j": ("A", "customer", 1.0, j),  # ... but the archive books it in A
    }
    coef, found = balance(*_frames(meters), END, RULES)
    assert _row(coef, "j")["coefficient"] == pytest.approx(-1.0, abs=0.01)
    mapping = found.filter(pl.col("kind") == "mapping_suspect")
    assert mapping.select("meter_id", "area_id", "other_area_id").rows() == [("j", "A", "B")]
    assert json.loads(mapping["evidence"][0])["coefficient_in_other_area"] == pytest.approx(1.0, abs=0.02)
    assert found.filter(pl.col("kind") != "mapping_suspect").height == 0


def test_missing_slots_and_a_missing_curve_day_still_recover_the_coefficient() -> None:
    rng = np.random.default_rng(5)
    x = [_load(rng, v) for v in (8.0, 12.0, 5.0)]
    rec = 0.6 * x[0]
    gappy = x[1].copy()
    gappy[2, 10:30] = np.nan  # 20 slots not collected on day 3
    meters = {
        "M": ("A", "area_master", 1.0, sum(x)),
        "c1": ("A", "customer", 1.0, rec),
        "c2": ("A", "customer", 1.0, gappy),
        "c3": ("A", "customer", 1.0, x[2]),
    }
    curves, members = _frames(meters)
    # a whole curve missing on day 5: that day falls back to the daily registers
    day5 = START + dt.timedelta(days=4)
    curves = curves.filter(~((pl.col("meter_id") == "c3") & (pl.col("data_date") == day5)))
    members = members.with_columns(
        pl.when((pl.col("meter_id") == "c2") & (pl.col("date") == START + dt.timedelta(days=2)))
        .then(float(np.nansum(x[1][2])))
        .otherwise(pl.col("kwh"))
        .alias("kwh")
    )
    coef, _ = balance(curves, members, END, RULES)
    c1 = _row(coef, "c1")
    assert c1["coefficient"] == pytest.approx(2 / 3, rel=0.02)
    assert c1["day_rows"] == 1
    assert c1["slot_rows"] == DAYS * 96 - 96 - 20


def test_an_area_with_pv_export_still_finds_the_partial_thief() -> None:
    rng = np.random.default_rng(6)
    x = [_load(rng, v) for v in (8.0, 12.0, 5.0, 9.0)]
    h = (np.arange(96) + 0.5) / 4
    gen = 40.0 * np.clip(np.cos((h - 12.3) / 6 * np.pi / 2), 0, None) ** 1.6 / 96
    gen = gen[None, :] * rng.uniform(0.5, 1.0, (DAYS, 1))
    fwd = np.maximum(x[3] - gen, 0.0)
    export = np.maximum(gen - x[3], 0.0)
    meters = {
        "M": ("A", "area_master", 1.0, x[0] + x[1] + x[2] + fwd - export),
        "c1": ("A", "customer", 1.0, 0.6 * x[0]),
        "c2": ("A", "customer", 1.0, x[1]),
        "c3": ("A", "customer", 1.0, x[2]),
        "pv": ("A", "customer", 1.0, fwd),
    }
    coef, found = balance(*_frames(meters, {"pv": export.sum(1)}), END, RULES)
    assert _row(coef, "c1")["coefficient"] == pytest.approx(2 / 3, rel=0.02)
    assert found.filter(pl.col("kind") == "theft_candidate")["meter_id"].to_list() == ["c1"]


def test_an_honest_area_with_proportional_technical_loss_has_no_finding() -> None:
    rng = np.random.default_rng(7)
    x = [_load(rng, v) for v in (8.0, 12.0, 5.0, 7.0, 3.0)]
    total = sum(x)
    meters = {"M": ("A", "area_master", 1.0, total / 0.95)} | {
        f"c{i}": ("A", "customer", 1.0, v) for i, v in enumerate(x)
    }
    coef, found = balance(*_frames(meters), END, RULES)
    assert found.height == 0
    assert coef["area_tau"][0] == pytest.approx(1 / 0.95 - 1, rel=0.05)


# -- false-data injection (Jokar, Arianpoo and Leung 2016): each attack on 10 of 30 days ----

FDI_DAYS = 30
FDI_RULES = BalanceRules(window_days=FDI_DAYS, min_days=5)
FDI_END = START + dt.timedelta(days=FDI_DAYS - 1)


def _fdi_area(attack: str | None, seed: int = 11) -> dict[str, tuple[str, str, float, Any]]:
    """An area of 12 households over 30 days; customer c0 applies ``attack`` on days 5, 7, ..., 23."""
    global DAYS
    rng = np.random.default_rng(seed)
    saved, DAYS = DAYS, FDI_DAYS
    try:
        x = [_load(rng, b) for b in rng.uniform(5.0, 15.0, 12)]
    finally:
        DAYS = saved
    rec = x[0].copy()
    days = list(range(4, 24, 2))  # 10 tampered days
    for d in days if attack else []:
        true = x[0][d]
        gamma = rng.uniform(0.1, 0.8, 96)
        if attack == "h1":
            rec[d] = rng.uniform(0.1, 0.8) * true
        elif attack == "h2":
            rec[d] = np.where((np.arange(96) >= 68) & (np.arange(96) < 88), 0.0, true)  # 17:00-22:00
        elif attack == "h3":
            rec[d] = gamma * true
        elif attack == "h4":
            rec[d] = gamma * true.mean()
        elif attack == "h5":
            rec[d] = np.full(96, true.mean())
        elif attack == "h6":
            rec[d] = true[::-1]
    meters = {"M": ("A", "area_master", 1.0, sum(x) * 1.03)}
    meters |= {f"c{i}": ("A", "customer", 1.0, rec if i == 0 else v) for i, v in enumerate(x)}
    return meters


def _fdi_frames(meters: dict[str, tuple[str, str, float, np.ndarray]]) -> tuple[pl.DataFrame, pl.DataFrame]:
    global DAYS
    saved, DAYS = DAYS, FDI_DAYS
    try:
        return _frames(meters)
    finally:
        DAYS = saved


@pytest.mark.parametrize("attack", [pytest.param(h, id=h) for h in ("h1", "h2", "h3", "h4", "h5", "h6")])
def test_each_attack_on_10_of_30_days_ranks_its_customer_first(attack: str) -> None:
    _, found = balance(*_fdi_frames(_fdi_area(attack)), FDI_END, FDI_RULES)
    theft = found.filter(pl.col("kind") == "theft_candidate").sort("score", descending=True)
    assert theft.height >= 1
    assert theft["meter_id"][0] == "c0"


def test_an_honest_area_has_nobody_above_the_threshold() -> None:
    _, found = balance(*_fdi_frames(_fdi_area(None)), FDI_END, FDI_RULES)
    assert found.filter(pl.col("kind") == "theft_candidate").height == 0


def test_a_window_with_fewer_days_than_min_days_reads_nothing() -> None:
    rng = np.random.default_rng(1)
    x = [_load(rng, b) for b in (8.0, 12.0, 5.0)]
    meters = {"M": ("A", "area_master", 1.0, sum(x))} | {f"c{i}": ("A", "customer", 1.0, v) for i, v in enumerate(x)}
    curves, members = _frames(meters)
    early = START + dt.timedelta(days=3)  # 4 days held, min_days 5
    coef, found = balance(curves, members, early, BalanceRules(window_days=DAYS, min_days=5))
    assert coef.height == 0 and found.height == 0
