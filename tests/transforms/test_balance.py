"""The interval energy balance on hand-built areas whose true answers are known by construction."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from meterlake.transforms.balance import (
    MAPPING_SCHEMA,
    SLOT_COLUMNS,
    BalanceRules,
    _bases,
    _first_largest,
    _group_sums,
    _lists,
    _mapping_sums,
    _nearest_standard,
    _selected_cross,
    balance,
    balance_window,
    capped_square_moments,
    cleaned_loss,
    day_state,
    day_states,
    findings,
    merge_diagnosis,
    share_steps,
)

START = dt.date(2026, 3, 1)
DAYS = 14
#: the tests read the findings the rules list; the weak evidence beside them has its own tests
RULES = BalanceRules(weak_weight=0.0, window_days=DAYS, min_days=5)
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
    # nothing else: c2 and c3 are neither thieves nor multiplier or mapping suspects
    assert found.height == 1


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
    # a whole curve missing on day 5: c3 holds a fifth of the area's energy, too much
    # to guess its curve from its register, so the area's day 5 is left out
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
    assert c1["days"] == DAYS - 1
    # c2 (half the area's energy) misses 20 slots on day 3: those slots are left out
    assert c1["slot_rows"] == DAYS * 96 - 96 - 20
    # of c2's 20 slots not collected on day 3 (02:30-07:30), 14 are night slots (before
    # 06:00): 32 - 14 = 18 of its night slots were collected that day, all 32 of the others'
    _, day3 = day_state(curves, members, START + dt.timedelta(days=2), RULES)
    assert dict(day3.select("meter_id", "night_slots").iter_rows()) == {"c1": 32, "c2": 18, "c3": 32}


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
    # twelve households: the area's τ is the median of enough coefficients to be read
    x = [_load(rng, v) for v in (8.0, 12.0, 5.0, 7.0, 3.0, 9.0, 6.0, 4.0, 10.0, 5.5, 7.5, 6.5)]
    total = sum(x)
    meters = {"M": ("A", "area_master", 1.0, total / 0.95)} | {
        f"c{i}": ("A", "customer", 1.0, v) for i, v in enumerate(x)
    }
    coef, found = balance(*_frames(meters), END, RULES)
    assert found.height == 0
    assert coef["area_tau"][0] == pytest.approx(1 / 0.95 - 1, rel=0.01)


def test_a_window_with_fewer_days_than_min_days_reads_nothing() -> None:
    rng = np.random.default_rng(1)
    x = [_load(rng, b) for b in (8.0, 12.0, 5.0)]
    meters = {"M": ("A", "area_master", 1.0, sum(x))} | {f"c{i}": ("A", "customer", 1.0, v) for i, v in enumerate(x)}
    curves, members = _frames(meters)
    early = START + dt.timedelta(days=3)  # 4 days held, min_days 5
    coef, found = balance(curves, members, early, BalanceRules(weak_weight=0.0, window_days=DAYS, min_days=5))
    assert coef.height == 0 and found.height == 0


def _area(rng: np.random.Generator, n: int, thief: np.ndarray) -> tuple[dict[str, Any], list[np.ndarray]]:
    """An area of ``n`` households, 3% technical loss on the true load; c0 records ``thief`` x its use."""
    x = [_load(rng, b) for b in rng.uniform(5.0, 15.0, n)]
    meters = {"M": ("A", "area_master", 1.0, sum(x) * 1.03)}
    meters |= {f"c{i}": ("A", "customer", 1.0, thief * v if i == 0 else v) for i, v in enumerate(x)}
    return meters, x


def test_a_bypass_at_night_only_is_found_with_its_night_kwh() -> None:
    night = (np.arange(96) < 24) | (np.arange(96) >= 88)  # 22:00-06:00
    meters, x = _area(np.random.default_rng(8), 20, np.where(night, 0.3, 1.0)[None, :])
    coef, found = balance(*_frames(meters), END, RULES)
    c0 = _row(coef, "c0")
    # recorded 30% at night: the loss carries (1 + τ)(1/0.3 - 1) of its night slots
    assert c0["night_coefficient"] == pytest.approx(1.03 * (1 / 0.3 - 1), rel=0.02)
    theft = found.filter(pl.col("kind") == "theft_candidate")
    assert theft["meter_id"].to_list() == ["c0"]
    stolen = 0.7 * (x[0] * night).sum()
    assert json.loads(theft["evidence"][0])["night_only_kwh"] == pytest.approx(stolen, rel=0.02)


def test_a_bypass_on_some_days_stands_out_day_by_day() -> None:
    on = np.zeros(DAYS, dtype=bool)
    on[[1, 3, 4, 8, 10, 11, 13]] = True  # 7 of 14 days
    meters, x = _area(np.random.default_rng(9), 20, np.where(on, 0.5, 1.0)[:, None])
    coef, found = balance(*_frames(meters), END, RULES)
    c0 = _row(coef, "c0")
    assert c0["days_t_stat"] >= RULES.min_t
    assert c0["days_t_stat"] == coef["days_t_stat"].max()
    theft = found.filter(pl.col("kind") == "theft_candidate")
    assert theft["meter_id"].to_list() == ["c0"]
    # half the use unrecorded on half the days: the window's estimate is the days' sum
    stolen = 0.5 * x[0][on].sum()
    assert json.loads(theft["evidence"][0])["unrecorded_kwh"] == pytest.approx(stolen, rel=0.1)


def test_a_steady_share_is_read_by_the_steady_t_not_the_some_days_statistic() -> None:
    # c0 records 60% on every day: each day's coefficient is its window's, so no day
    # stands out from its other days (the some-days statistic stays under report_t, where
    # read against the area's median every day would count), while the steady t does
    meters, x = _area(np.random.default_rng(9), 20, np.full((1, 96), 0.6))
    coef, found = balance(*_frames(meters), END, RULES)
    c0 = _row(coef, "c0")
    assert c0["t_stat"] >= RULES.min_t
    assert c0["days_t_stat"] < RULES.report_t
    assert c0["coefficient"] - c0["area_median"] == pytest.approx(1.03 * (1 / 0.6 - 1), rel=0.05)
    theft = found.filter(pl.col("kind") == "theft_candidate")
    assert theft["meter_id"].to_list() == ["c0"]
    # its unrecorded kWh are the steady share's: 40% of its use
    ev = json.loads(theft["evidence"][0])
    assert ev["unrecorded_kwh"] == pytest.approx(ev["steady_share_kwh"])
    assert ev["unrecorded_kwh"] == pytest.approx(0.4 * x[0].sum(), rel=0.05)


def test_capped_square_moments_of_a_standard_normal() -> None:
    # uncapped: E[Z+^2] = 1/2, E[Z+^4] = 3/2, variance 3/2 - 1/4
    assert capped_square_moments(math.inf) == (0.5, 1.25)
    # cap 3: phi(3) = 0.0044318, P(Z > 3) = 0.0013499;
    # E = 1/2 - (3 phi + P) + 9 P = 0.497504; E4 = 3/2 - (36 phi + 3 P) + 81 P = 1.445747
    mean, var = capped_square_moments(3.0)
    assert mean == pytest.approx(0.497504, abs=2e-6)
    assert var == pytest.approx(1.445747 - 0.497504**2, abs=5e-6)
    # a tiny cap c: Z+ is above it half the time, so the mean is c^2 / 2, the variance c^4 / 4
    mean, var = capped_square_moments(0.01)
    assert mean == pytest.approx(0.5e-4, rel=0.01)
    assert var == pytest.approx(0.25e-8, rel=0.02)


def test_the_some_days_statistic_reads_each_day_up_to_the_cap() -> None:
    with pytest.raises(ValueError, match="days_t_cap"):
        BalanceRules(weak_weight=0.0, days_t_cap=0.0)
    on = np.zeros(DAYS, dtype=bool)
    on[[1, 3, 4, 8, 10, 11, 13]] = True
    meters, _ = _area(np.random.default_rng(9), 20, np.where(on, 0.5, 1.0)[:, None])
    frames = _frames(meters)
    capped = _row(balance(*frames, END, RULES)[0], "c0")["days_t_stat"]
    wide = _row(balance(*frames, END, RULES.model_copy(update={"days_t_cap": math.inf}))[0], "c0")["days_t_stat"]
    # its on-days stand far out: capped at 3 they count less, but still stand out
    assert RULES.min_t <= capped < wide


def test_a_days_statistics_come_from_that_day_alone() -> None:
    meters, _ = _area(np.random.default_rng(10), 8, np.ones((1, 96)))
    curves, members = _frames(meters)
    day = START + dt.timedelta(days=5)
    whole = day_state(curves, members, day, RULES)
    alone = day_state(curves.filter(pl.col("data_date") == day), members.filter(pl.col("date") == day), day, RULES)
    assert_frame_equal(whole[0], alone[0])
    assert_frame_equal(whole[1], alone[1])
    assert whole[1].height == 8 and whole[0]["slots"].to_list() == [96]


def _copper_area(rng: np.random.Generator, thief: float) -> tuple[dict[str, Any], list[np.ndarray]]:
    """40 households; the master sees their true use plus 0.2 kWh of no-load loss per slot
    and a load loss of 3% of the load at the mean load, growing with its square."""
    x = [_load(rng, b) for b in rng.uniform(5.0, 15.0, 40)]
    total = np.sum(x, axis=0)
    mean = float(total.mean())
    master = total + 0.2 + 0.03 * total**2 / mean
    meters = {"M": ("A", "area_master", 1.0, master)}
    meters |= {f"c{i}": ("A", "customer", 1.0, thief * v if i == 0 else v) for i, v in enumerate(x)}
    return meters, x


def test_the_load_loss_term_takes_a_loss_growing_with_the_square_of_the_load() -> None:
    meters, _ = _copper_area(np.random.default_rng(11), 1.0)
    curves, members = _frames(meters)
    day = START + dt.timedelta(days=2)
    # honest: the loss is 0.2 + c x load^2, which the day's terms span, so nothing of it
    # is left (the bumps take the constant, up to their smoothness, the load-loss term
    # the rest)
    areas, _ = day_state(curves, members, day, RULES)
    assert areas["bases"][0] == 12 + 3 + 1
    assert areas["yy"][0] < 1e-6 * areas["ll"][0]
    # without it the square of the load leaves a residual the customers' curves would share
    areas, _ = day_state(
        curves, members, day, BalanceRules(weak_weight=0.0, window_days=DAYS, min_days=5, copper_term=False)
    )
    assert areas["bases"][0] == 12 + 3
    assert areas["yy"][0] > 1e-3 * areas["ll"][0]


def test_a_partial_thief_is_recovered_beside_a_load_loss() -> None:
    meters, x = _copper_area(np.random.default_rng(12), 0.6)
    coef, found = balance(*_frames(meters), END, RULES)
    c0 = _row(coef, "c0")
    # recorded 60%: 1.667 times the recorded energy was used; the stolen 40%
    assert c0["true_use_ratio"] == pytest.approx(1 / 0.6, rel=0.03)
    assert c0["steady_unrecorded_kwh"] == pytest.approx(0.4 * x[0].sum(), rel=0.05)
    assert found.filter(pl.col("kind") == "theft_candidate")["meter_id"].to_list() == ["c0"]


def _county(rng: np.random.Generator) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, np.ndarray]]:
    """Four areas: 40 households with a load loss (shapes and load-loss term), 8, 3 with
    gaps (a small customer's slots filled from its register, a member without a curve)
    and one without a master; returns the curves, meter_daily and each meter's primary kWh."""
    meters: dict[str, Any] = {}
    for area, n in (("A", 40), ("B", 8), ("C", 3), ("D", 5)):
        x = [_load(rng, b) for b in rng.uniform(5.0, 15.0, n)]
        total = np.sum(x, axis=0)
        if area != "D":
            meters[f"{area}M"] = (area, "area_master", 1.0, total * 1.03 + 0.02 * total**2 / total.mean())
        meters |= {f"{area}c{i}": (area, "customer", 1.0, v) for i, v in enumerate(x)}
    tiny = _load(rng, 0.2)
    tiny[:, 40:50] = np.nan
    meters["Cc9"] = ("C", "customer", 10.0, tiny)  # under 5% of the master's energy: filled
    curves, members = _frames(meters)
    curves = curves.filter(~((pl.col("meter_id") == "Bc3") & (pl.col("data_date") == START)))
    return curves, members, {m: v[3] for m, v in meters.items()}


def test_a_days_statistics_are_the_same_gathered_and_fitted_a_few_areas_at_a_time() -> None:
    curves, members, _ = _county(np.random.default_rng(13))
    whole = day_state(curves, members, START, RULES, chunk_rows=10**6)
    # D has no master; B's day is left out: Bc3, an eighth of its energy, sent no curve
    assert whole[0]["area_id"].to_list() == ["A", "C"]
    assert whole[1]["meter_id"].to_list() == [*sorted(f"Ac{i}" for i in range(40)), "Cc0", "Cc1", "Cc2", "Cc9"]
    for rows in (1, 5, 45, 50):  # an area per range, ranges cut inside areas, two areas at once
        part = day_state(curves, members, START, RULES, chunk_rows=rows)
        assert_frame_equal(whole[0], part[0], check_exact=True)
        assert_frame_equal(whole[1], part[1], check_exact=True)


@pytest.mark.parametrize("chunk_rows", [pytest.param(10**6, id="all-at-once"), pytest.param(7, id="small-ranges")])
def test_several_days_at_once_are_each_the_day_alone(chunk_rows: int) -> None:
    curves, members, _ = _county(np.random.default_rng(15))
    one_area = START + dt.timedelta(days=1)  # B's and C's masters sent no curve: A is fitted alone
    curves = curves.filter(~(pl.col("meter_id").is_in(["BM", "CM"]) & (pl.col("data_date") == one_area)))
    days = [START + dt.timedelta(days=3), START, one_area, END + dt.timedelta(days=1)]  # the last: no rows
    got = day_states(curves, members, days, RULES, chunk_rows=chunk_rows)
    assert [a["area_id"].to_list() for a, _ in got] == [["A", "B", "C"], ["A", "C"], ["A"], []]
    for day, (areas, customers) in zip(days, got, strict=True):
        alone = day_state(curves, members, day, RULES, chunk_rows=chunk_rows)
        assert_frame_equal(areas, alone[0], check_exact=True)
        assert_frame_equal(customers, alone[1], check_exact=True)


def test_a_customers_night_kwh_is_the_sum_of_its_night_slots_on_the_primary_side() -> None:
    curves, members, primary = _county(np.random.default_rng(14))
    day = START + dt.timedelta(days=1)
    _, customers = day_state(curves, members, day, RULES, chunk_rows=7)
    night = (np.arange(96) < 24) | (np.arange(96) >= 88)  # 22:00-06:00
    for meter in ("Ac0", "Ac39", "Bc7", "Cc2", "Cc9"):
        got = customers.filter(pl.col("meter_id") == meter)["night_kwh"].item()
        assert got == pytest.approx(float(np.nansum(primary[meter][1][night])), rel=1e-9)
    # every customer of the areas with a master, in area and meter order
    assert customers["meter_id"].to_list() == sorted(m for m in primary if m[0] != "D" and "M" not in m)


def test_an_estimated_multiplier_snaps_to_the_nearest_standard_one_in_log() -> None:
    ratings = (1.0, 2.0, 40.0, 50.0, 4.0)
    frame = pl.DataFrame({"r": [38.0, 46.0, 0.9, 3.0, 2.0, 1000.0, 0.01]})
    snapped, dist = _nearest_standard(pl.col("r"), ratings)
    out = frame.with_columns(snapped=snapped, dist=dist)
    # 46 is nearer 50 than 40 in log (ln 50/46 = 0.083, ln 46/40 = 0.140); 3 nearer 4
    # (0.288) than 2 (0.405); beyond the table's ends, its first or last
    assert out["snapped"].to_list() == [40.0, 50.0, 1.0, 4.0, 2.0, 50.0, 1.0]
    expected = [math.log(40 / 38), math.log(50 / 46), math.log(1 / 0.9), math.log(4 / 3), 0.0]
    assert out["dist"].to_list()[:5] == pytest.approx(expected, rel=1e-12)
    assert out["dist"][5] == pytest.approx(math.log(1000 / 50)) and out["dist"][6] == pytest.approx(math.log(100))
    # halfway in log between 1 and 4: the smaller; one rating: that one
    tie = pl.DataFrame({"r": [2.0]}).with_columns(_nearest_standard(pl.col("r"), (4.0, 1.0))[0].alias("s"))
    assert tie["s"].to_list() == [1.0]
    one = pl.DataFrame({"r": [2.0, 9.0]}).with_columns(_nearest_standard(pl.col("r"), (5.0,))[0].alias("s"))
    assert one["s"].to_list() == [5.0, 5.0]


def test_the_shapes_lists_are_cut_at_their_offsets() -> None:
    flat = np.arange(7, dtype=np.float64)  # not float32 nor contiguous-typed: converted
    series = _lists(flat, np.array([0, 3, 3, 7]))
    assert series.dtype == pl.List(pl.Float32)
    assert series.to_list() == [[0.0, 1.0, 2.0], [], [3.0, 4.0, 5.0, 6.0]]
    assert _lists(np.zeros(0, np.float32), np.zeros(1, np.int64)).len() == 0


def test_each_area_day_selects_the_curves_that_stand_out_and_keeps_their_cross_products() -> None:
    # one area, three customers over 4 slots; the terms are the constant slot vector
    basis = np.full((1, 96, 1), 1 / np.sqrt(96))
    rec = np.zeros((3, 96))
    rec[0, :2] = [1.0, 0.0]
    rec[1, :2] = [0.0, 2.0]
    rec[2, [0, 1, 90]] = [1.0, 1.0, 2.0]  # slot 90 is a night slot
    proj = rec @ basis[0]
    # coefficients ry/rr: 0.1, 0.1, 2.0; the median 0.1, so |ry - 0.1 rr| / sqrt(rr):
    # 0, 0 and 1.9 x sqrt(rr_2): the third stands out, then the first two tie at 0
    st = np.zeros((3, 7))
    st[:, 0] = [1.0, 4.0, 1.0]
    st[:, 1] = [0.1, 0.4, 2.0]
    place, cross, night = _selected_cross(rec, proj, basis, np.array([0, 3]), st, 1)
    assert place.tolist() == [-1, -1, 0]
    # the third curve less its mean (4/96 per slot): [1, 1, 2 at 90] - 4/96 everywhere
    cleared = rec[2] - 4 / 96
    assert cross[:, 0] == pytest.approx([1 - 4 / 96, 2 * (1 - 4 / 96), 1 + 1 + 4 - 4 * 4 / 96])
    assert cross[:, 0] == pytest.approx(rec @ cleared)
    # night slots only (22:00-06:00: slots 0-23 and 88-95): every slot of these curves
    assert night[:, 0] == pytest.approx(cross[:, 0])
    # two selected: the third, then the first (tie broken by row order: stable)
    place, cross, _ = _selected_cross(rec, proj, basis, np.array([0, 3]), st, 2)
    assert place.tolist() == [1, -1, 0]
    # an area of fewer customers than k: the places past them are 0
    place, cross, _ = _selected_cross(rec[:1], proj[:1], basis, np.array([0, 1]), st[:1], 3)
    assert place.tolist() == [0] and cross[0, 1:].tolist() == [0.0, 0.0]


def test_the_night_cross_products_leave_the_day_slots_out() -> None:
    # one area, no terms; A records 1 in every slot, B 2 in slots 0-47 (00:00-12:00), C 3
    # in slots 88-95 (22:00-24:00). Night slots: 0-23 and 88-95, 32 of them
    basis, rec = np.zeros((1, 96, 1)), np.zeros((3, 96))
    rec[0], rec[1, :48], rec[2, 88:] = 1.0, 2.0, 3.0
    # coefficients ry/rr 10, 2, 1: median 2, so A stands out (|10 - 2| = 8)
    st = np.zeros((3, 7))
    st[:, 0], st[:, 1] = 1.0, [10.0, 2.0, 1.0]
    place, cross, night = _selected_cross(rec, np.zeros((3, 1)), basis, np.array([0, 3]), st, 1)
    assert place.tolist() == [0, -1, -1]
    assert cross[:, 0].tolist() == [96.0, 2.0 * 48, 3.0 * 8]
    # with A: A's 32 night slots, B's 24 night slots at 2 (its slots 24-47 are day), C's 8
    assert night[:, 0].tolist() == [32.0, 2.0 * 24, 3.0 * 8]


def test_the_cleaned_loss_is_the_loss_less_the_selected_customers_parts() -> None:
    """ry, ny, yy and ly of each customer against y − Σ_s δ_s r_s + δ_i r_i, from explicit vectors."""
    rng = np.random.default_rng(20)
    r = rng.normal(size=(3, 10))
    y = rng.normal(size=10)
    load = r.sum(0)
    night = np.arange(10) < 4
    n = r * night
    day = START
    # c1 and c3 are selected (places 0 and 1); their coefficients 0.6 and -0.9 against a
    # median of 0.1: δ = 0.5 and -1.0
    sel = [0, 2]
    delta = {0: 0.5, 2: -1.0}
    customers = pl.DataFrame(
        {
            "area_id": ["A"] * 3,
            "meter_id": ["c1", "c2", "c3"],
            "date": [day] * 3,
            "rr": [r[i] @ r[i] for i in range(3)],
            "ry": [r[i] @ y for i in range(3)],
            "rl": [r[i] @ load for i in range(3)],
            "nn": [n[i] @ n[i] for i in range(3)],
            "nr": [n[i] @ r[i] for i in range(3)],
            "ny": [n[i] @ y for i in range(3)],
            "nl": [n[i] @ load for i in range(3)],
            "selected": pl.Series([0, None, 1], dtype=pl.Int8),
            "cross": [[float(r[i] @ r[s]) for s in sel] for i in range(3)],
            "night_cross": [[float(n[i] @ r[s]) for s in sel] for i in range(3)],
        }
    )
    areas = pl.DataFrame({"area_id": ["A"], "date": [day], "yy": [y @ y], "ly": [load @ y]})
    raw = pl.DataFrame(
        {
            "area_id": ["A"] * 3,
            "meter_id": ["c1", "c2", "c3"],
            "coefficient": [0.6, 0.1, -0.9],
            "area_median": [0.1] * 3,
            "load_coefficient": [0.0] * 3,
            "std_error": [0.01] * 3,
            "recorded_kwh": [1.0] * 3,
            "night_t_stat": [0.0] * 3,
            "days_t_stat": [0.0] * 3,
        }
    )
    rules = BalanceRules(weak_weight=0.0, clean_customers=2, clean_min_t=0.0, tau_min_customers=1)
    got = cleaned_loss(areas, customers, raw, rules).collect().sort("meter_id")
    for i in range(3):
        own = delta.get(i, 0.0)
        yi = y - sum(delta[s] * r[s] for s in sel) + own * r[i]
        row = got.row(i, named=True)
        assert row["ry"] == pytest.approx(r[i] @ yi)
        assert row["ny"] == pytest.approx(n[i] @ yi)
        assert row["yy"] == pytest.approx(yi @ yi)
        assert row["ly"] == pytest.approx(load @ yi)
        assert row["rr"] == pytest.approx(r[i] @ r[i])  # the curve's own sums stay
    # a selected customer whose t stays under clean_min_t keeps its part in the others' loss
    strict = cleaned_loss(
        areas, customers, raw, BalanceRules(weak_weight=0.0, clean_customers=2, clean_min_t=1e9, tau_min_customers=1)
    )
    assert strict.collect().sort("meter_id")["ry"].to_list() == pytest.approx([r[i] @ y for i in range(3)])


def _crowded_area(rng: np.random.Generator) -> dict[str, Any]:
    """40 households, one recording 60% (c0), and a CT customer booked at half its
    multiplier (ct): its misfit, half its use, is most of the loss's noise."""
    x = [_load(rng, b) for b in rng.uniform(5.0, 15.0, 40)]
    big = _load(rng, 80.0)
    meters = {"M": ("A", "area_master", 1.0, np.sum(x, axis=0) + big)}
    meters |= {f"c{i}": ("A", "customer", 1.0, 0.6 * v if i == 0 else v) for i, v in enumerate(x)}
    meters["ct"] = ("A", "customer", 20.0, big / 2)
    return meters


def test_taking_the_standing_out_customers_part_out_of_the_loss_sharpens_a_thief() -> None:
    meters = _crowded_area(np.random.default_rng(21))
    frames = _frames(meters)
    plain, _ = balance(*frames, END, RULES.model_copy(update={"clean_customers": 0}))
    clean, found = balance(*frames, END, RULES)
    before, after = _row(plain, "c0"), _row(clean, "c0")
    # the thief's coefficient stays 1/0.6 - 1 = 2/3 ...
    assert after["coefficient"] - after["area_median"] == pytest.approx(2 / 3, rel=0.05)
    # ... and, with the CT customer's misfit out of its loss, it is read much more sharply
    # (on the raw loss the misfit is noise that biases it too: 0.63 here)
    assert after["std_error"] < 0.1 * before["std_error"]
    # the CT customer itself keeps its own part: half its use unrecorded, 1/0.5 - 1
    ct = _row(clean, "ct")
    assert ct["coefficient"] - ct["area_median"] == pytest.approx(1.0, rel=0.02)
    # no honest household is listed (the CT customer's misfit no longer leaks into theirs)
    assert "c0" in set(found["meter_id"]) <= {"c0", "ct"}
    # states kept before the cross products (no selected column): fitted on the raw loss
    days = [START + dt.timedelta(days=d) for d in range(DAYS)]
    states = [day_state(*frames, d, RULES) for d in days]
    areas = pl.concat([s[0] for s in states])
    customers = pl.concat([s[1] for s in states])
    old = balance_window(areas, customers.drop("selected", "cross", "night_cross"), END, RULES)
    assert_frame_equal(old, plain)
    # a window over days kept before and after (the stage reads them diagonally): the
    # newer days are cleaned, the older ones not: the thief is read between the two
    half = pl.col("date") < START + dt.timedelta(days=DAYS // 2)
    mixed = pl.concat(
        [customers.filter(half).drop("selected", "cross", "night_cross"), customers.filter(~half)],
        how="diagonal_relaxed",
    )
    both = balance_window(areas, mixed, END, RULES)
    assert both["coefficient"].is_finite().all()
    assert after["std_error"] < _row(both, "c0")["std_error"] < before["std_error"]


def _coef_rows(area: str, night_t: list[float], night_coefficient: list[float]) -> list[dict[str, Any]]:
    """coefficients() rows of an area whose customers differ only in their night statistic."""
    return [
        {
            "area_id": area,
            "feeder_id": "F1",
            "meter_id": f"{area}{i}",
            "customer_id": f"C{area}{i}",
            "multiplier": 1.0,
            "coefficient": 0.03,
            "std_error": 0.05,
            "load_coefficient": 0.0,
            "area_tau": 0.03,
            "area_median": 0.03,
            "recorded_kwh": 100.0,
            "days": 14,
            "slot_rows": 1000,
            "night_coefficient": nc,
            "night_t_stat": t,
            "night_kwh": 30.0,
            "days_t_stat": 0.0,
            "days_kwh": 0.0,
            "true_use_ratio": 1.0,
            "t_stat": 0.0,
            "steady_unrecorded_kwh": 0.0,
        }
        for i, (t, nc) in enumerate(zip(night_t, night_coefficient, strict=True))
    ]


def test_the_night_statistic_is_read_against_its_areas_own_spread() -> None:
    # area A: night robust t -0.5 -0.25 0 0.25 1.6: median 0, absolute deviations
    # 0.5 0.25 0 0.25 1.6, their median 0.25, scaled MAD 1.4826 x 0.25 = 0.371 -> the
    # floor 0.5: A4 reads 1.6 / 0.5 = 3.2 >= report_t 2 (1.6 alone would not be listed).
    # area B: -1.349 -0.6745 0 0.6745 2.5: scaled MAD 1.4826 x 0.6745 = 1.0: B4 reads 2.5.
    coef = pl.DataFrame(
        _coef_rows("A", [-0.5, -0.25, 0.0, 0.25, 1.6], [0.0, 0.0, 0.0, 0.0, 1.0])
        + _coef_rows("B", [-1.349, -0.6745, 0.0, 0.6745, 2.5], [0.0, 0.0, 0.0, 0.0, 1.0])
    )
    found = findings(coef, pl.DataFrame(schema=MAPPING_SCHEMA), START, END, BalanceRules(weak_weight=0.0))
    theft = found.filter(pl.col("kind") == "theft_candidate").sort("meter_id")
    assert theft["meter_id"].to_list() == ["A4", "B4"]
    ev = [json.loads(e) for e in theft["evidence"]]
    assert [e["night_t_stat"] for e in ev] == [3.2, 2.5]
    # score = z / (3 x min_t) = 3.2 / 12 and 2.5 / 12 (B's spread is 1.4826 x 0.6745 = 1.00001)
    assert theft["score"].to_list() == pytest.approx([3.2 / 12, 2.5 / 12], abs=1e-5)
    # night kWh stolen: coefficient 1 / (1 + τ 0) x 30 kWh at night
    assert [e["night_only_kwh"] for e in ev] == [30.0, 30.0]
    # with the old floor of 1 area A's customer stays under report_t and is not listed
    wide = findings(
        coef, pl.DataFrame(schema=MAPPING_SCHEMA), START, END, BalanceRules(weak_weight=0.0, night_spread_floor=1.0)
    )
    assert wide.filter(pl.col("kind") == "theft_candidate")["meter_id"].to_list() == ["B4"]


def test_a_wrong_multiplier_is_read_with_the_night_statistic_floored_at_1() -> None:
    # area A of the test above, its fifth customer a CT meter booked at 20 whose
    # coefficient says 40 (true-use ratio 1 + (1.03 - 0.03) / 1 = 2, t 20): its night t
    # 1.6 reads 3.2 as theft evidence, but the multiplier reading keeps the floor of 1
    # (1.6 < report_t: no night share), so it is still a multiplier suspect
    rows = _coef_rows("A", [-0.5, -0.25, 0.0, 0.25, 1.6], [0.0, 0.0, 0.0, 0.0, 1.0])
    rows[4] |= {"multiplier": 20.0, "coefficient": 1.03, "true_use_ratio": 2.0, "t_stat": 20.0}
    found = findings(pl.DataFrame(rows), pl.DataFrame(schema=MAPPING_SCHEMA), START, END, BalanceRules(weak_weight=0.0))
    mult = found.filter(pl.col("kind") == "multiplier_suspect")
    assert mult["meter_id"].to_list() == ["A4"]
    assert json.loads(mult["evidence"][0])["candidate_multiplier"] == 40.0


def test_a_night_bypass_is_listed_by_its_share_of_the_night() -> None:
    # area B of the test above (spread 1): B4's night t 2.5 >= report_t, night coefficient
    # 0.3 on 30 kWh recorded at night: 0.3 / (1 + τ 0) x 30 = 9 kWh unrecorded, 9 / (9 + 100)
    # = 8.3 % of its whole use (< theft_min_share 10 %) but 9 / (9 + 30) = 23 % of the night's
    rows = _coef_rows("B", [-1.349, -0.6745, 0.0, 0.6745, 2.5], [0.0, 0.0, 0.0, 0.0, 0.3])
    found = findings(pl.DataFrame(rows), pl.DataFrame(schema=MAPPING_SCHEMA), START, END, BalanceRules(weak_weight=0.0))
    theft = found.filter(pl.col("kind") == "theft_candidate")
    assert theft["meter_id"].to_list() == ["B4"]
    ev = json.loads(theft["evidence"][0])
    assert ev["night_only_kwh"] == pytest.approx(9.0)
    assert ev["unrecorded_share"] == pytest.approx(9 / 109, abs=1e-6)
    # a night share under 10 % is not listed: with a load coefficient of 2 the same night
    # coefficient is 0.3 / 3 x 30 = 3 kWh, 3 / (3 + 30) = 9.1 % of the night's use
    rows[4]["load_coefficient"] = 2.0
    low = findings(pl.DataFrame(rows), pl.DataFrame(schema=MAPPING_SCHEMA), START, END, BalanceRules(weak_weight=0.0))
    assert low.filter(pl.col("kind") == "theft_candidate").height == 0


def _step_days(night_a: list[float]) -> pl.DataFrame:
    """Window customer rows of an area of three customers using 10 kWh a day each; A's night kWh as given, B's and C's 2."""
    return pl.DataFrame(
        [
            {"area_id": "A", "meter_id": m, "date": START + dt.timedelta(days=d), "kwh": 10.0, "night_kwh": n}
            for m, nights in (("A", night_a), ("B", [2.0] * len(night_a)), ("C", [2.0] * len(night_a)))
            for d, n in enumerate(nights)
        ]
    )


def test_the_step_statistic_finds_a_night_share_halved() -> None:
    # A records 30 % of its 10 kWh at night on days 1-3 and 15 % on days 4-6 (a night bypass
    # taking half of the night from day 4). Its area share stays 1/3 (every customer 10 kWh):
    # no step there. Night share: the split 3 | 3 has means 0.30 and 0.15 and no spread
    # within either side, so the spread is the floor 0.02: t = 0.15 / (0.02 x sqrt(1/3 + 1/3))
    # = 9.186; the split 2 | 4 (0.3, 0.3 | 0.3, 0.15, 0.15, 0.15): means 0.3 and 0.1875,
    # pooled spread sqrt(0.016875 / 4) = 0.06495, t = 0.1125 / (0.06495 x sqrt(3/4)) = 2.0;
    # 4 | 2 the same. Drop 1 - 0.15 / 0.30 = 0.5; after the split A recorded 3 x 1.5 = 4.5
    # kWh at night, so 4.5 x 0.5 / (1 - 0.5) = 4.5 kWh were not recorded.
    steps = share_steps(_step_days([3.0, 3.0, 3.0, 1.5, 1.5, 1.5]), BalanceRules(weak_weight=0.0)).sort("meter_id")
    a = steps.row(0, named=True)
    assert a["step_t_stat"] == pytest.approx(0.15 / (0.02 * math.sqrt(2 / 3)), rel=1e-6)
    assert a["step_drop"] == pytest.approx(0.5)
    assert a["step_kwh"] == pytest.approx(4.5)
    assert a["step_night"] is True
    # B and C record the same every day: nothing stands out
    assert steps["step_t_stat"][1:].abs().max() == pytest.approx(0.0, abs=1e-9)
    # a step in A's use shows in its share of the area: 10 kWh a day, then 5 (night share
    # 0.2 throughout); area shares 1/3 then 5/25 = 0.2, the spread floored at 0.02 x their
    # mean (0.2667): t = (1/3 - 0.2) / (0.005333 x sqrt(2/3)) = 30.6, drop 0.4, after
    # the split 15 kWh recorded: 15 x 0.4 / 0.6 = 10 kWh
    use = _step_days([2.0] * 6).with_columns(
        kwh=pl.when((pl.col("meter_id") == "A") & (pl.col("date") >= START + dt.timedelta(days=3)))
        .then(5.0)
        .otherwise(10.0),
        night_kwh=pl.when((pl.col("meter_id") == "A") & (pl.col("date") >= START + dt.timedelta(days=3)))
        .then(1.0)
        .otherwise(2.0),
    )
    a = share_steps(use, BalanceRules(weak_weight=0.0)).sort("meter_id").row(0, named=True)
    mean = (3 / 3 + 3 * 0.2) / 6
    assert a["step_t_stat"] == pytest.approx((1 / 3 - 0.2) / (0.02 * mean * math.sqrt(2 / 3)), rel=1e-6)
    assert a["step_drop"] == pytest.approx(0.4)
    assert a["step_kwh"] == pytest.approx(10.0)
    assert a["step_night"] is False
    # with 4 days needed either side, 6 days have no split
    none = share_steps(_step_days([3.0, 3.0, 3.0, 1.5, 1.5, 1.5]), BalanceRules(weak_weight=0.0, step_min_days=4))
    assert none["step_t_stat"].is_null().all()


def test_the_step_statistic_skips_nights_not_collected() -> None:
    # A, honest, whose curve was not collected on days 6-8 (its concentrator offline): its
    # register still has the day's 10 kWh and its night slots none, so its night share
    # reads 0.3 on days 1-5 and 0 on days 6-8. Read as it is, the split 5 | 3 has means 0.3
    # and 0 and no spread (the floor 0.02): t = 0.3 / (0.02 x sqrt(1/5 + 1/3)) = 20.54.
    # Reading only the 5 nights collected (night_slots 32 of 32), every share is 0.3: no
    # difference, t = 0.
    nights = [3.0] * 5 + [0.0] * 3
    days = _step_days(nights).with_columns(
        night_slots=pl.when((pl.col("meter_id") == "A") & pl.col("night_kwh").eq(0.0)).then(0).otherwise(32)
    )
    rules = BalanceRules(weak_weight=0.0)
    unmasked = share_steps(days.drop("night_slots"), rules).sort("meter_id").row(0, named=True)
    assert unmasked["step_t_stat"] == pytest.approx(0.3 / (0.02 * math.sqrt(1 / 5 + 1 / 3)), rel=1e-6)
    masked = share_steps(days, rules).sort("meter_id").row(0, named=True)
    assert masked["step_t_stat"] == pytest.approx(0.0, abs=1e-9)
    # a real step among the nights collected: 30 % on days 1-3, 15 % on days 6-8, days 4
    # and 5 not collected. The split 3 | 3 of the 6 nights read: means 0.30 and 0.15, no
    # spread within either side (the floor 0.02): t = 0.15 / (0.02 x sqrt(1/3 + 1/3)) =
    # 9.186, drop 0.5; after the split A recorded 3 x 1.5 = 4.5 kWh at night on the nights
    # read (days 4 and 5 recorded none there), so 4.5 x 0.5 / 0.5 = 4.5 kWh unrecorded
    days = _step_days([3.0, 3.0, 3.0, 0.0, 0.0, 1.5, 1.5, 1.5]).with_columns(
        night_slots=pl.when((pl.col("meter_id") == "A") & pl.col("night_kwh").eq(0.0)).then(0).otherwise(32)
    )
    a = share_steps(days, rules).sort("meter_id").row(0, named=True)
    assert a["step_t_stat"] == pytest.approx(0.15 / (0.02 * math.sqrt(2 / 3)), rel=1e-6)
    assert a["step_drop"] == pytest.approx(0.5)
    assert a["step_kwh"] == pytest.approx(4.5)
    assert a["step_night"] is True


def test_a_step_down_in_what_a_customer_records_lists_it() -> None:
    # area B of the night tests (spread 1), no night evidence; B4's robust step t 3 and a
    # drop of 0.4 with 20 kWh unrecorded after its split: listed, z = 3, score 3 / 12;
    # unrecorded 20 of 20 + 100 kWh
    rows = _coef_rows("B", [-1.349, -0.6745, 0.0, 0.6745, 0.0], [0.0] * 5)
    for i, r in enumerate(rows):
        r |= {"step_t_stat": 3.0 if i == 4 else 0.0, "step_drop": 0.4 if i == 4 else 0.0}
        r |= {"step_kwh": 20.0 if i == 4 else 0.0, "step_night": False}
    found = findings(pl.DataFrame(rows), pl.DataFrame(schema=MAPPING_SCHEMA), START, END, BalanceRules(weak_weight=0.0))
    theft = found.filter(pl.col("kind") == "theft_candidate")
    assert theft["meter_id"].to_list() == ["B4"]
    assert theft["score"][0] == pytest.approx(3.0 / 12, abs=1e-6)
    ev = json.loads(theft["evidence"][0])
    assert ev["step_kwh"] == 20.0
    assert ev["unrecorded_share"] == pytest.approx(20 / 120, abs=1e-6)
    # a drop under theft_min_share (10 %) is not listed
    rows[4]["step_drop"] = 0.05
    low = findings(pl.DataFrame(rows), pl.DataFrame(schema=MAPPING_SCHEMA), START, END, BalanceRules(weak_weight=0.0))
    assert low.filter(pl.col("kind") == "theft_candidate").height == 0


def test_the_step_statistics_unrecorded_kwh_count_the_days_from_since() -> None:
    # the night share halved from day 4 (as above): the split and its t are the same, but
    # only days 5 and 6 count (since = day 5): 2 x 1.5 kWh recorded at night, 3 x 0.5 / 0.5
    since = START + dt.timedelta(days=4)
    a = (
        share_steps(_step_days([3.0, 3.0, 3.0, 1.5, 1.5, 1.5]), BalanceRules(weak_weight=0.0), since=since)
        .sort("meter_id")
        .row(0)
    )
    assert a[2] == pytest.approx(0.15 / (0.02 * math.sqrt(2 / 3)), rel=1e-6)
    assert (a[3], a[4]) == (pytest.approx(0.5), pytest.approx(3.0))


def test_the_step_statistic_reads_the_days_before_the_window() -> None:
    # c0 records 60 % of its use from day 4 of 14; the window is the last 7 days (8-14),
    # whose days all record 60 %: within them no step, over step_days = 14 the step at day 4
    rng = np.random.default_rng(5)
    x = [_load(rng, b) for b in rng.uniform(5.0, 15.0, 20)]
    cut = (np.arange(DAYS) >= 3)[:, None]
    meters = {"M": ("A", "area_master", 1.0, sum(x) * 1.03)}
    meters |= {f"c{i}": ("A", "customer", 1.0, np.where(cut, 0.6, 1.0) * v if i == 0 else v) for i, v in enumerate(x)}
    frames = _frames(meters)
    week = BalanceRules(weak_weight=0.0, window_days=7, min_days=5, step_days=7)
    inside = _row(balance(*frames, END, week)[0], "c0")
    assert inside["step_drop"] < 0.1
    coef = balance(*frames, END, week.model_copy(update={"step_days": 14}))[0]
    c0 = _row(coef, "c0")
    # its daily share of the area's recorded load, split before day 4: drop 1 - mean(after) / mean(before)
    daily = np.array([(np.where(cut, 0.6, 1.0) * v if i == 0 else v).sum(axis=1) for i, v in enumerate(x)])
    share = daily[0] / daily.sum(axis=0)
    assert c0["step_drop"] == pytest.approx(1 - share[3:].mean() / share[:3].mean(), rel=1e-6)
    # its unrecorded kWh count the window's days only: recorded x drop / (1 - drop)
    assert c0["step_kwh"] == pytest.approx(c0["recorded_kwh"] * c0["step_drop"] / (1 - c0["step_drop"]), rel=1e-6)


def test_weak_evidence_the_listing_rules_leave_out_is_kept_at_a_share_of_its_score() -> None:
    # area B of the night tests (spread 1); B4's robust step t 3 with a drop of 0.05, under
    # theft_min_share (10 %): not listed. Its z = max(steady 0, night 0 / 1, days 0, step 3) = 3
    # reaches weak_t 1.5: kept at weak_weight 0.25 of z / (3 x min_t 4) = 0.25 x 3 / 12 = 0.0625.
    # B3's night t 0.6745 (z 0.6745 < 1.5) and the others' 0 are not kept.
    rows = _coef_rows("B", [-1.349, -0.6745, 0.0, 0.6745, 0.0], [0.0] * 5)
    for i, r in enumerate(rows):
        r |= {"step_t_stat": 3.0 if i == 4 else 0.0, "step_drop": 0.05 if i == 4 else 0.0}
        r |= {"step_kwh": 5.0 if i == 4 else 0.0, "step_night": False}
    maps = pl.DataFrame(schema=MAPPING_SCHEMA)
    # none kept at weak_weight 0
    none = findings(pl.DataFrame(rows), maps, START, END, BalanceRules(weak_weight=0.0))
    assert none.filter(pl.col("kind") == "theft_candidate").height == 0
    rules = BalanceRules()  # weak_t 1.5, weak_weight 0.25
    assert (rules.weak_t, rules.weak_weight) == (1.5, 0.25)
    theft = findings(pl.DataFrame(rows), maps, START, END, rules).filter(pl.col("kind") == "theft_candidate")
    assert theft["meter_id"].to_list() == ["B4"]
    assert theft["score"][0] == pytest.approx(0.0625, abs=1e-6)
    assert theft["_weak"].to_list() == [True]
    assert json.loads(theft["evidence"][0])["weak"] is True
    # a z under weak_t is not kept; a listed candidate keeps its whole score and is not weak
    assert (
        findings(pl.DataFrame(rows), maps, START, END, BalanceRules(weak_t=3.5, weak_weight=0.25))
        .filter(pl.col("kind") == "theft_candidate")
        .height
        == 0
    )
    rows[4]["step_drop"] = 0.4
    listed = findings(pl.DataFrame(rows), maps, START, END, rules).filter(pl.col("kind") == "theft_candidate")
    assert listed["score"].to_list() == pytest.approx([3.0 / 12], abs=1e-6)
    assert listed["_weak"].to_list() == [False]


def _diagnosis_row(meter: str, score: float) -> dict[str, Any]:
    return {
        "date": END, "window_start": START, "area_id": "A", "area_status": "high", "area_loss_rate": 0.1,
        "kind": "theft_candidate", "rule": "loss.diagnosis.theft_candidate", "severity": "warning",
        "meter_id": meter, "customer_id": meter, "role": "customer", "other_area_id": None, "score": score,
        "rank": 0, "days": 14, "evidence": "{}", "unrecorded_kwh": None, "recorded_kwh": None,
    }  # fmt: skip


def test_weak_findings_rank_after_the_daily_ones_are_not_capped_and_give_way_to_them() -> None:
    # the daily diagnosis lists d1 (0.9) and w2 (0.5); the balance lists b1 (0.4) and keeps w1
    # (0.05), w2 (0.06) and w3 (0.01) weak. The balance's listed first, then the daily, then the
    # weak: b1, d1, w2 (its daily row: the weak one gives way), w1, w3. Cap 2 keeps b1 and d1
    # and drops w2; the weak w1 and w3 pass it, numbered 3 and 4
    diag = pl.DataFrame([_diagnosis_row("d1", 0.9), _diagnosis_row("w2", 0.5)])
    found = pl.DataFrame(
        [
            {**{k: v for k, v in _diagnosis_row(m, s).items() if k not in ("date", "window_start", "area_status",
             "area_loss_rate", "severity", "rank")}, "rule": "loss.diagnosis.theft_candidate.balance", "_weak": w}
            for m, s, w in (("b1", 0.4, False), ("w1", 0.05, True), ("w2", 0.06, True), ("w3", 0.01, True))
        ]
    )  # fmt: skip
    out = merge_diagnosis(diag, found, START, END, theft_max_per_area=2)
    assert out.select("meter_id", "rank").rows() == [("b1", 1), ("d1", 2), ("w1", 3), ("w3", 4)]
    assert out.columns == diag.columns


def test_the_balances_candidates_past_the_cap_are_kept_as_weak_findings() -> None:
    # cap 1: the balance lists b1 (0.4) and b0 (0.3) and keeps w1 (0.05) weak. b1 keeps rank 1;
    # b0, past the cap, is kept weak at 0.25 x 0.3 = 0.075, so it ranks before w1 (0.05)
    listed = {"rule": "loss.diagnosis.theft_candidate.balance", "evidence": '{"weak":false}'}
    drop = ("date", "window_start", "area_status", "area_loss_rate", "severity", "rank")
    found = pl.DataFrame(
        [
            {**{k: v for k, v in _diagnosis_row(m, s).items() if k not in drop}, **listed, "_weak": w}
            for m, s, w in (("b1", 0.4, False), ("b0", 0.3, False), ("w1", 0.05, True))
        ]
    )
    diag = pl.DataFrame(schema=pl.DataFrame([_diagnosis_row("d1", 0.9)]).schema)
    out = merge_diagnosis(diag, found, START, END, theft_max_per_area=1, weak_weight=0.25)
    assert out.select("meter_id", "rank", "score").rows() == [("b1", 1, 0.4), ("b0", 2, 0.075), ("w1", 3, 0.05)]
    assert out["evidence"].to_list() == ['{"weak":false}', '{"weak":true}', '{"weak":false}']
    # without a weak weight the cut drops b0 as before
    plain = merge_diagnosis(diag, found, START, END, theft_max_per_area=1)
    assert plain["meter_id"].to_list() == ["b1", "w1"]


def _zone(rng: np.random.Generator) -> dict[str, Any]:
    """Seven areas of 3 to 40 households (every area with a master and a load loss): in
    each a customer recording 60 %, in every other one a CT customer booked at half its
    multiplier, and in the last a customer whose night share halves from day 8."""
    meters: dict[str, Any] = {}
    for k, n in enumerate((40, 12, 30, 8, 3, 25, 16)):
        area = "ABCDEFG"[k]
        x = [_load(rng, b) for b in rng.uniform(5.0, 15.0, n)]
        total = np.sum(x, axis=0)
        if k % 2 == 0:
            big = _load(rng, 60.0)
            total = total + big
            meters[f"{area}ct"] = (area, "customer", 20.0, big / 2)
        meters[f"{area}M"] = (area, "area_master", 1.0, total * 1.03 + 0.02 * total**2 / total.mean())
        rec = [0.6 * v if i == 0 else v for i, v in enumerate(x)]
        if area == "G":
            night = (np.arange(96) < 24) | (np.arange(96) >= 88)
            rec[1] = np.where((np.arange(DAYS) >= 7)[:, None] & night[None, :], 0.5, 1.0) * x[1]
        meters |= {f"{area}c{i:02d}": (area, "customer", 1.0, v) for i, v in enumerate(rec)}
    return meters


def test_a_window_fitted_a_range_of_areas_at_a_time_is_the_whole_window_to_the_last_bit() -> None:
    """Ranges of one area, of three, and all seven at once: the same frame exactly.

    Every sum of the fit is its group's own (each customer's days in date order, an
    area-day's selected customers in their order), never a function of the rows beside
    them, so an area's coefficients and statistics do not depend on which areas are
    fitted with it. The window's rows are handed in another order than the whole's too.
    """
    curves, members = _frames(_zone(np.random.default_rng(31)))
    states = [day_state(curves, members, START + dt.timedelta(days=d), RULES) for d in range(DAYS)]
    areas = pl.concat([s[0] for s in states])
    customers = pl.concat([s[1] for s in states])
    ids = sorted(set(areas["area_id"]))
    assert len(ids) == 7
    whole = balance_window(areas, customers, END, RULES)
    assert whole["area_id"].n_unique() == 7 and whole.height == customers["meter_id"].n_unique()
    # the thieves and the CT customers stand out, so the cleaning passes take their parts out
    assert (whole.filter(pl.col("meter_id").str.ends_with("ct"))["t_stat"] >= RULES.clean_min_t).all()
    for size in (1, 3):
        parts = []
        for i in range(0, len(ids), size):
            inside = pl.col("area_id").is_in(ids[i : i + size])
            rows = customers.filter(inside).reverse()  # in no particular order
            parts.append(balance_window(areas.filter(inside), rows, END, RULES))
        assert_frame_equal(pl.concat(parts).sort("area_id", "meter_id"), whole, check_exact=True)


def test_a_groups_sum_adds_its_own_rows_in_their_order_whatever_lies_beside_them() -> None:
    # rows of groups 0 and 1 interleaved: group 0 adds 1e16, 1, -1e16 in that order, and
    # 1e16 + 1 rounds to 1e16 (the spacing of doubles there is 2), so its sum is 0, not 1;
    # group 1's 0.1 + 0.2 + 0.3 is 0.6000000000000001 in that order (0.6 from 0.3 + 0.2 + 0.1 would be
    # another order), and group 2, with no rows, sums to 0
    gid = np.array([0, 1, 0, 1, 0, 1])
    x = np.array([1e16, 0.1, 1.0, 0.2, -1e16, 0.3])
    got = _group_sums(gid, 3, x)
    assert got.tolist() == [0.0, (0.1 + 0.2) + 0.3, 0.0]
    assert got[1] == 0.6000000000000001
    # group 1 alone (the other rows gone, or others beside it) sums the same
    assert _group_sums(np.array([0, 0, 0]), 1, np.array([0.1, 0.2, 0.3]))[0] == got[1]


def _mapping_reference(cands: pl.DataFrame, cv: pl.DataFrame, st: pl.DataFrame, rules: BalanceRules) -> pl.DataFrame:
    """The mapping test's sums written out plainly: a running sum per (candidate, other area),
    one area-day and one candidate at a time."""
    z = _bases(rules.day_bases)
    own = dict(cands.select("meter_id", "area_id").iter_rows())
    cv = cv.sort("feeder_id", "date", "meter_id")
    sums: dict[tuple[str, str], np.ndarray] = {}
    totals: dict[str, np.ndarray] = {}
    for row in st.iter_rows(named=True):
        tot = totals.setdefault(row["area_id"], np.zeros(4))
        tot += row["_w"] * np.array([row["yy"], row["ll"], row["ly"], row["slots"] - row["bases"]])
        ok = np.asarray(row["weight"]) > 0
        sw = np.sqrt(np.asarray(row["weight"])[ok])
        extra = np.asarray(row["shapes"], dtype=np.float64).reshape(-1, 96)[:, ok]
        q, _ = np.linalg.qr(np.column_stack([z[ok] * sw[:, None], extra.T]))
        for c in cv.filter((pl.col("feeder_id") == row["feeder_id"]) & (pl.col("date") == row["date"])).iter_rows(
            named=True
        ):
            if own[c["meter_id"]] == row["area_id"]:
                continue
            x = np.array([c[p] for p in SLOT_COLUMNS], dtype=np.float64)[ok] * c["multiplier"]
            if np.isnan(x).any():
                continue
            xt = x * sw - ((x * sw) @ q) @ q.T
            got = np.array([xt @ xt, xt @ np.asarray(row["resid"])[ok], xt @ np.asarray(row["load"])[ok]])
            s = sums.setdefault((c["meter_id"], row["area_id"]), np.zeros(3))
            s += got * row["_w"]
    out = []
    for (m, aid), (xx, xy, xl) in sums.items():
        yy, ll, ly, dof = totals[aid]
        det = xx * ll - xl * xl
        if xx <= 0 or det <= 1e-12 * xx * ll:
            continue
        gamma, tau = (ll * xy - xl * ly) / det, (xx * ly - xl * xy) / det
        sigma2 = max(yy - gamma * xy - tau * ly, 1e-30) / max(dof - 2, 1.0)
        out.append((m, aid, gamma / (1 + tau), gamma / math.sqrt(sigma2 * ll / det)))
    return pl.DataFrame(out, schema=MAPPING_SCHEMA, orient="row")


def test_the_mapping_sums_are_each_pairs_running_sums_over_its_area_days() -> None:
    """Two feeders, four areas, three days: candidates on several days and areas, a day with an
    uncollected slot, slots without weight, areas with and without common shapes."""
    rng = np.random.default_rng(11)
    days = [START + dt.timedelta(days=d) for d in range(3)]
    areas = {"A": "F1", "B": "F1", "C": "F1", "D": "F2"}
    st = []
    for day in days:
        for area, feeder in areas.items():
            weight = rng.uniform(0.5, 2.0, 96)
            weight[rng.choice(96, 5, replace=False)] = 0.0
            shapes = [] if area == "B" else list(rng.normal(size=3 * 96))
            st.append(
                {
                    "area_id": area,
                    "feeder_id": feeder,
                    "date": day,
                    "slots": 91,
                    "bases": 12 + len(shapes) // 96,
                    "yy": float(rng.uniform(50, 60)),
                    "ll": float(rng.uniform(900, 1000)),
                    "ly": float(rng.uniform(-5, 5)),
                    "weight": list(weight),
                    "resid": list(rng.normal(size=96)),
                    "load": list(rng.uniform(5, 15, 96)),
                    "shapes": shapes,
                    "_w": float(rng.uniform(0.5, 1.5)),
                }
            )
    frame = pl.DataFrame(st).with_columns(
        pl.col("slots", "bases").cast(pl.Int32),
        *(pl.col(k).cast(pl.Array(pl.Float32, 96)) for k in ("weight", "resid", "load")),
        pl.col("shapes").cast(pl.List(pl.Float32)),
    )
    cands = pl.DataFrame(
        {
            "meter_id": ["j", "k", "m"],
            "area_id": ["A", "B", "D"],
            "feeder_id": ["F1", "F1", "F2"],
            "multiplier": [1.0, 40.0, 1.0],
        }
    )
    curves = []
    for meter, feeder, mult in cands.select("meter_id", "feeder_id", "multiplier").iter_rows():
        for n, day in enumerate(days):
            values = list(rng.uniform(0.0, 0.5, 96))
            if meter == "k" and n == 1:
                values[40] = None  # an uncollected slot: the candidate's day is left out
            curves.append(
                {
                    "meter_id": meter,
                    "date": day,
                    "feeder_id": feeder,
                    "multiplier": mult,
                    **dict(zip(SLOT_COLUMNS, values, strict=True)),
                }
            )
    cv = pl.DataFrame(curves).sample(fraction=1.0, shuffle=True, seed=3)
    got = _mapping_sums(cands, cv, frame, RULES)
    want = _mapping_reference(cands, cv, frame, RULES)
    # j in B and C, k in A and C (its middle day not read), m alone on its feeder: no pair;
    # in the order first met (the first day's areas A, B, C)
    assert got.select("meter_id", "other_area_id").rows() == [("k", "A"), ("j", "B"), ("j", "C"), ("k", "C")]
    # the reference clears one curve at a time (a matrix-vector product), the code a day's
    # candidates at once (matrix-matrix): the same sums to the last few bits
    assert_frame_equal(got, want, rel_tol=1e-12, abs_tol=0.0)


def test_each_groups_first_largest_value_is_picked_nan_below_minus_infinity() -> None:
    inf, nan = math.inf, math.nan
    groups = [
        [0.5, 2.0, 1.0, 2.0],  # two equal largest: the first (row 1)
        [-inf, nan, -inf],  # no number but -inf: the first -inf (row 4), not the NaN before it
        [nan, nan],  # NaNs alone: the group's first row (row 7)
        [nan, -1.0],  # a NaN below every number (row 10)
        [3.0],  # one row (row 11)
    ]
    t = np.array([v for g in groups for v in g])
    starts = np.cumsum([0] + [len(g) for g in groups[:-1]])
    gid = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    assert _first_largest(t, gid, starts).tolist() == [1, 4, 7, 10, 11]
    # what a stable sort by group, then t descending, puts first in each group
    assert np.lexsort((-t, gid))[starts].tolist() == [1, 4, 7, 10, 11]
