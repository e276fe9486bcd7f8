"""The area master as observer of shape thefts, on hand-built areas whose answers are known by construction."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Sequence

import numpy as np
import polars as pl
import pytest

from meterlake.transforms import observer
from meterlake.transforms.anomaly import ObserverRules
from meterlake.transforms.dedup import strictly_increasing
from meterlake.transforms.observer import (
    PATTERN_WORDS,
    SLOT_COLUMNS,
    DayRows,
    _masked_quantile,
    day_summaries,
    frame_days,
    indicator,
    indicator_of_days,
    no_rows,
    reason_text,
)

START = dt.date(2026, 3, 1)
DAYS = 30
END = START + dt.timedelta(days=DAYS - 1)
#: the hand-made tests judge the whole month at once
RULES = ObserverRules(window_days=DAYS)
TAMPERED = (2, 4, 7, 9, 12, 15, 18, 21, 24, 27)  # 10 of 30 days (0-based)
CUSTOMERS = 12
LOSS = 0.03  # technical loss, share of the master


def _true_use(seed: int = 7) -> np.ndarray:
    """(customers, days, 96) kWh: household-like days (morning and evening peaks) with day and slot noise."""
    rng = np.random.default_rng(seed)
    h = (np.arange(96) + 0.5) / 4
    out = np.empty((CUSTOMERS, DAYS, 96))
    for c in range(CUSTOMERS):
        evening = 18.5 + c % 4 * 0.5
        shape = 0.25 + np.exp(-0.5 * ((h - evening) / 1.6) ** 2) + 0.5 * np.exp(-0.5 * ((h - 7.5) / 1.0) ** 2)
        base = 6.0 + 1.5 * c  # kWh per day
        daily = rng.lognormal(0.0, 0.1, DAYS)
        out[c] = base * shape[None, :] / shape.sum() * daily[:, None] * rng.lognormal(0.0, 0.15, (DAYS, 96))
    return out


def _attack(kind: str, x: np.ndarray, day: int, rng: np.random.Generator) -> np.ndarray:
    """What the meter records of one true day ``x`` (96) under attack ``kind``."""
    mean = x.mean()
    if kind == "mix":
        kind = ("h1", "h2", "h3", "h4", "h5", "h6")[TAMPERED.index(day) % 6]
    if kind == "h1":
        return 0.4 * x
    if kind == "h2":
        out = x.copy()
        out[64:88] = 0.0  # 16:00-22:00
        return out
    if kind == "h3":
        return rng.uniform(0.1, 0.8, 96) * x
    if kind == "h4":
        return rng.uniform(0.1, 0.8, 96) * mean
    if kind == "h5":
        return np.full(96, mean)
    if kind == "h6":
        return x[::-1].copy()
    raise ValueError(kind)


def _area(recorded: np.ndarray, true: np.ndarray) -> tuple[list[pl.DataFrame], list[pl.DataFrame]]:
    """Per day: curves and meter_daily rows of the area (master sees the true use plus its loss)."""
    master = true.sum(0) / (1.0 - LOSS)  # (days, 96)
    curves, members = [], []
    for d in range(DAYS):
        day = START + dt.timedelta(days=d)
        rows = [(f"C{c:02d}", "customer", recorded[c, d]) for c in range(CUSTOMERS)] + [("M", "area_master", master[d])]
        curves.append(
            pl.DataFrame(
                {
                    "meter_id": [r[0] for r in rows],
                    **{s: [float(r[2][i]) for r in rows] for i, s in enumerate(SLOT_COLUMNS)},
                }
            )
        )
        members.append(
            pl.DataFrame(
                {
                    "date": [day] * len(rows),
                    "meter_id": [r[0] for r in rows],
                    "area_id": ["A1"] * len(rows),
                    "role": [r[1] for r in rows],
                    "multiplier": [1.0] * len(rows),
                    "kwh": [float(r[2].sum()) for r in rows],
                }
            )
        )
    return curves, members


def _run(recorded: np.ndarray, true: np.ndarray, rules: ObserverRules = RULES) -> pl.DataFrame:
    curves, members = _area(recorded, true)
    parts = [
        day_summaries(c, m, START + dt.timedelta(days=d), rules)
        for d, (c, m) in enumerate(zip(curves, members, strict=True))
    ]
    return indicator(pl.concat([p[0] for p in parts]), pl.concat([p[1] for p in parts]), END, rules)


def _attacked(kind: str, thief: int, days: Sequence[int]) -> pl.DataFrame:
    """The indicator of the area where customer ``thief`` applies attack ``kind`` on ``days``, strongest first."""
    true = _true_use()
    recorded = true.copy()
    rng = np.random.default_rng(3)
    for d in days:
        recorded[thief, d] = _attack(kind, true[thief, d], d, rng)
    return _run(recorded, true).sort("s_observer", "meter_id", descending=[True, False])


@pytest.mark.parametrize("kind", ["h1", "h2", "h3", "h4", "h5", "h6", "mix"])
def test_each_attack_on_10_of_30_days_is_ranked_first(kind: str) -> None:
    thief = 5
    found = _attacked(kind, thief, TAMPERED)
    assert found["meter_id"][0] == f"C{thief:02d}"
    top = found.row(0, named=True)
    assert top["s_observer"] >= 0.5
    ev = json.loads(top["ev_observer"])
    # the suspect days are the tampered ones (a strong day among the others would be a false alarm)
    assert set(ev["suspect_days"]) <= {str(START + dt.timedelta(days=d)) for d in TAMPERED}
    assert ev["area_checked"] and ev["area_loss_t"] > RULES.t.hi  # the area loss rose by what was hidden
    # nobody else reaches the threshold
    assert found.height == 1


def test_an_area_without_theft_scores_nobody() -> None:
    true = _true_use()
    assert _run(true.copy(), true).height == 0


def test_a_low_day_the_master_saw_too_is_not_confirmed() -> None:
    # customer 5 was away on the 10 days: it used (and recorded) 40% — the master saw the same
    true = _true_use()
    for d in TAMPERED:
        true[5, d] *= 0.4
    honest = _run(true.copy(), true)
    thief_true = _true_use()
    stolen = thief_true.copy()
    for d in TAMPERED:
        stolen[5, d] *= 0.4  # recorded 40%, used all of it
    thief = _run(stolen, thief_true).filter(pl.col("meter_id") == "C05").row(0, named=True)

    def days(v: float) -> float:  # the day part through its ramp
        return min(max((v - RULES.days.lo) / (RULES.days.hi - RULES.days.lo), 0.0), 1.0)

    # the thief's suspect days are confirmed by the area loss: the whole day part counts
    assert thief["s_observer"] == pytest.approx(days(thief["f_observer_days"]), abs=1e-6)
    assert thief["f_observer_days"] > 0.8
    # the honest customer's are not: at most `floor` of its day part, so it stays under the thief
    s_honest = honest.filter(pl.col("meter_id") == "C05")
    assert s_honest.height == 1  # its days do look like the thief's
    assert s_honest["s_observer"][0] == pytest.approx(RULES.floor * days(s_honest["f_observer_days"][0]), abs=1e-6)
    assert s_honest["s_observer"][0] < thief["s_observer"]


#: 22 of 30 days (0-based): the customer's usual day can no longer be the median of its days
MOSTLY = tuple(d for d in range(DAYS) if d not in (0, 3, 8, 11, 14, 19, 23, 28))


@pytest.mark.parametrize("kind", ["h3", "h4", "h5"])
def test_a_customer_tampering_most_of_its_days_is_ranked_first(kind: str) -> None:
    # its usual day comes from the 8 days that look used (neither far rougher than its
    # smoothest days nor flat), not from the median of its mostly tampered days
    thief = 5
    found = _attacked(kind, thief, MOSTLY)
    assert found.height == 1  # nobody else reaches the threshold
    top = found.row(0, named=True)
    assert top["meter_id"] == f"C{thief:02d}"
    assert top["s_observer"] >= 0.75
    ev = json.loads(top["ev_observer"])
    tampered = {str(START + dt.timedelta(days=d)) for d in MOSTLY}
    assert set(ev["suspect_days"]) <= tampered
    assert len(ev["suspect_days"]) >= 18  # most of the 22 are told apart from its usual day


def test_natural_days_by_hand() -> None:
    # 1 customer, 6 days of 4 blocks; rough ramp lo 0.1, zero ramp lo 8 slots, min_usual_cv 0.1, flat hi 0.85
    rules = ObserverRules(blocks=4)
    shaped = [1.0, 2.0, 3.0, 2.0]  # CV 0.35
    flat = [2.0, 2.0, 2.0, 2.0]  # CV 0: an h5 day
    bz = np.array([[shaped, shaped, shaped, shaped, flat, shaped]])
    rough = np.array([[0.05, 0.12, 0.6, 0.7, 0.0, 0.0]])  # the last: a zero window's steps are 0
    run = np.array([[0.0, 0.0, 0.0, 0.0, 0.0, 24.0]])
    seen = np.ones((1, 6), dtype=bool)
    nat = observer._natural(bz, run, rough, seen, rules)
    # smoothest days sought among days 0-3 (day 4 flat, day 5's zero run 24 >= 0 + 8): 0.05, 0.12;
    # the second smoothest (0.12) + 0.1 = 0.22: days 0 and 1 count; the flat day never does;
    # day 5 counts by its roughness (its zero run is judged against the usual day later)
    assert nat.tolist() == [[True, True, False, False, False, True]]
    # a customer whose days are all flat keeps them all
    all_flat = observer._natural(
        np.array([[flat] * 3]), np.zeros((1, 3)), np.zeros((1, 3)), np.ones((1, 3), bool), rules
    )
    assert all_flat.tolist() == [[True, True, True]]
    # a day not seen never counts
    nat2 = observer._natural(bz, run, rough, np.array([[False, True, True, True, True, True]]), rules)
    # the smoothest seen days among 1-3: 0.12, 0.6: threshold 0.7, so day 2 (0.6) counts, day 3 (0.7) does not
    assert nat2.tolist() == [[False, True, True, False, False, True]]


def test_too_few_days_give_no_rows() -> None:
    true = _true_use()
    curves, members = _area(true, true)
    c, a = day_summaries(curves[0], members[0], START, RULES)
    out = indicator(c, a, START, RULES)
    assert out.height == 0 and out.schema == no_rows().schema


def test_day_summaries_by_hand() -> None:
    rules = ObserverRules(blocks=4)
    day = START
    c1 = np.full(96, 0.01)
    c1[0:24] = 0.0  # six hours of zeros from midnight
    c1[30] = np.nan  # one slot not collected
    c2 = np.full(96, 0.02)
    master = np.full(96, 0.1)  # multiplier 2: 0.2 kWh primary per slot
    curves = pl.DataFrame(
        {"meter_id": ["a", "b", "m"], **{s: [c1[i], c2[i], master[i]] for i, s in enumerate(SLOT_COLUMNS)}}
    )
    members = pl.DataFrame(
        {
            "date": [day] * 4,
            "meter_id": ["a", "b", "m", "x"],
            "area_id": ["A", "A", "A", None],
            "role": ["customer", "customer", "area_master", "customer"],
            "multiplier": [1.0, 1.0, 2.0, 1.0],
            # a's register: 71 collected slots of 0.01 plus 0.05 in the slot not collected
            "kwh": [0.76, 1.92, 19.2, 3.0],
        }
    )
    cust, areas = day_summaries(curves, members, day, rules)
    assert cust["meter_id"].to_list() == ["a", "b"]  # x has no area
    a = cust.row(0, named=True)
    assert a["b01"] == pytest.approx(0.0)  # 00:00-06:00 all zero
    assert a["b02"] == pytest.approx(0.23 + 0.05, abs=1e-6)  # 23 collected slots of 0.01 and the filled 0.05
    assert a["b03"] == pytest.approx(0.24, abs=1e-6)
    assert a["kwh"] == pytest.approx(0.76)
    assert a["actual"] == pytest.approx(95 / 96)
    assert a["zero_run"] == 24
    assert a["rough"] == pytest.approx(0.0)  # equal slots after the zeros; zeros floored at 1e-3
    ar = areas.row(0, named=True)
    assert ar["m01"] == pytest.approx(24 * 0.2)
    assert ar["s01"] == pytest.approx(24 * 0.02)
    assert ar["s02"] == pytest.approx(0.28 + 24 * 0.02, abs=1e-6)
    assert ar["filled_kwh"] == pytest.approx(0.05)
    assert ar["master_actual"] == pytest.approx(1.0)


def test_compiled_day_summaries_by_hand() -> None:
    """The compiled summary of a piece (``observer_kernel.summarise_rows``) on the by-hand day of
    :func:`test_day_summaries_by_hand`: the same figures, and the same frames as numpy's."""
    from meterlake import observer_kernel

    c1 = np.full(96, 0.01)
    c1[0:24] = 0.0
    c1[30] = np.nan
    x = np.stack([c1, np.full(96, 0.02), np.full(96, 0.1), np.full(96, np.nan)])
    got = observer_kernel.summarise_rows(
        x, np.array([1.0, 1.0, 2.0, 1.0]), np.array([0.76, 1.92, 19.2, np.nan]), 4, 0.0, 1e-3
    )
    assert got["blocks"][0, 0] == 0.0  # six hours of zeros
    assert got["blocks"][0, 1] == pytest.approx(0.28, abs=1e-12)  # 23 slots of 0.01, 0.05 filled
    assert got["blocks"][2].tolist() == pytest.approx([4.8] * 4)  # the master, multiplier 2
    assert got["kwh"][:3].tolist() == pytest.approx([0.76, 1.92, 19.2])
    assert got["actual"].tolist() == pytest.approx([95 / 96, 1.0, 1.0, 0.0])
    assert got["zero_run"].tolist() == [24.0, 0.0, 0.0, 0.0]
    assert got["filled"].tolist() == pytest.approx([0.05, 0.0, 0.0, 0.0])
    # equal slots: every step 0 but the one out of the zeros (log 0.01 - log 0.001), 1 of 94
    assert got["rough"][:3].tolist() == [0.0, 0.0, 0.0]
    # no slot and no register: nothing to fill, no step
    assert got["kwh"][3] == 0.0 and np.isnan(got["rough"][3])


def _random_pieces(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = rng.lognormal(-3, 1.2, (n, 96))
    x[rng.random((n, 96)) < 0.08] = np.nan
    x[rng.random((n, 96)) < 0.1] = 0.0
    x[rng.random(n) < 0.05] = np.nan  # rows with no slot
    x[rng.random(n) < 0.05, 40:] = 0.0  # long zero runs
    x[rng.random(n) < 0.02, ::2] = np.nan  # no two consecutive slots: no step
    mult = rng.choice([1.0, 2.0, 30.0, 0.5], n)
    kwh = np.where(rng.random(n) < 0.1, np.nan, np.nansum(x, 1) * mult * rng.uniform(0.9, 1.3, n))
    return x, mult, kwh


def test_the_compiled_summary_of_slot_major_slots_is_that_of_row_major_ones() -> None:
    """A piece as polars gives it (slot-major) is summarised without a transposed copy: the same bits."""
    from meterlake import observer_kernel

    x, mult, kwh = _random_pieces(np.random.default_rng(5), 300)
    rows = observer_kernel.summarise_rows(np.ascontiguousarray(x), mult, kwh, 24, 0.0, 1e-3)
    slots = observer_kernel.summarise_rows(np.asfortranarray(x), mult, kwh, 24, 0.0, 1e-3)
    for name, got in rows.items():
        assert np.array_equal(got.view(np.uint8), slots[name].view(np.uint8)), name


def _pairs(first: Sequence[str | None], then: Sequence[str | None]) -> bool:
    return strictly_increasing(pl.DataFrame({"a": first, "m": then}), ["a", "m"])


def _one(values: Sequence[str | None]) -> bool:
    return strictly_increasing(pl.DataFrame({"m": values}, schema={"m": pl.String}), ["m"])


def test_the_orders_the_observer_relies_on_by_hand() -> None:
    # the members' and the window's orders are read with dedup.strictly_increasing
    areas = ["A1", "A1", "A2", "A2"]
    assert _pairs(areas, ["M3", "M5", "M1", "M2"])
    assert not _pairs(areas, ["M5", "M3", "M1", "M2"])  # M5 before M3 in A1
    assert not _pairs(["A2", "A1"], ["M1", "M2"])
    assert not _pairs(areas, ["M3", "M3", "M1", "M2"])  # a pair twice
    assert not _pairs(["A1", None], ["M1", "M2"])
    assert _pairs(["A1"], ["M1"])
    assert _one(["M1", "M2", "M9"])
    assert not _one(["M1", "M1", "M9"])  # a meter twice
    assert not _one(["M2", "M1"])
    assert not _one(["M1", None, "M3"])
    assert _one([])


@pytest.mark.parametrize("floor", [1e-3, 0.05])  # 0.05: many slots floored, ties in the medians
def test_compiled_day_summaries_are_numpys_bit_for_bit(floor: float) -> None:
    from meterlake import observer_kernel

    rules = ObserverRules(floor_kwh=floor, zero_kwh=0.001)
    rng = np.random.default_rng(11)
    x, mult, kwh = _random_pieces(rng, 3_000)
    members = pl.DataFrame(
        {
            "date": [START] * len(x),
            "meter_id": [f"M{i:05d}" for i in range(len(x))],
            "area_id": [f"A{i % 7}" for i in range(len(x))],
            "role": ["area_master" if i % 50 == 0 else "customer" for i in range(len(x))],
            "multiplier": mult,
            "kwh": kwh,
        }
    )
    curves = pl.DataFrame({"meter_id": members["meter_id"], **{s: x[:, i] for i, s in enumerate(SLOT_COLUMNS)}})
    asked: list[int] = []

    def compiled(*args: object) -> dict[str, np.ndarray] | None:
        asked.append(len(args[0]))  # type: ignore[arg-type]
        return observer_kernel.summarise_rows(*args)  # type: ignore[arg-type]

    # a piece's figures, the filled kWh included, bit for bit
    piece = members.join(curves, on="meter_id")
    names = observer.block_names(rules.blocks)
    numpy_ = observer._summarise(piece, rules, names)
    ours = observer._summarise(piece, rules, names, compiled)
    assert asked == [len(x)]
    for name in numpy_.columns:
        a, b = numpy_[name].to_numpy(), ours[name].to_numpy()
        same = np.array_equal(a.view(np.uint8), b.view(np.uint8)) if a.dtype.kind in "fi" else a.tolist() == b.tolist()
        assert a.dtype == b.dtype and same, name
    # whole days: the same frames (the areas' filled kWh is a polars sum over the day's rows,
    # whose order of addition may vary between calls: compared to rounding)
    whole = day_summaries(curves, members, START, rules)
    days = day_summaries(curves, members, START, rules, compiled)
    assert whole[0].equals(days[0])
    assert whole[1].drop("filled_kwh").equals(days[1].drop("filled_kwh"))
    assert days[1]["filled_kwh"].to_numpy() == pytest.approx(whole[1]["filled_kwh"].to_numpy(), rel=1e-12)
    # a summariser that leaves a piece to numpy (``None``): the same frames
    left = day_summaries(curves, members, START, rules, lambda *args: None)
    assert left[0].equals(whole[0]) and left[1].drop("filled_kwh").equals(whole[1].drop("filled_kwh"))


def test_compiled_order_statistics_by_hand() -> None:
    """The branch-free selection of the compiled summary's roughness: every order statistic of
    a few values with ties, the values left as they were."""
    from meterlake import observer_kernel

    values = np.array([3.0, 1.0, 2.0, 2.0, 5.0, 9.0])  # the last value is past k
    work = np.empty(6)
    got = [observer_kernel._order_stat(values, 5, want, work) for want in range(5)]
    assert got == [1.0, 2.0, 2.0, 3.0, 5.0]
    assert values.tolist() == [3.0, 1.0, 2.0, 2.0, 5.0, 9.0]
    assert observer_kernel._order_stat(np.array([2.0, 2.0, 2.0]), 3, 1, work) == 2.0
    assert observer_kernel._order_stat(np.array([7.0]), 1, 0, work) == 7.0


def test_compiled_roughness_by_hand() -> None:
    """Each row's median |step| between consecutive collected slots (the logarithms given):
    an even count takes the mean of its two middle steps, a step from or to a slot not
    collected does not count, a row with no step has none."""
    from meterlake import observer_kernel

    nan = np.nan
    logs = np.array(
        [
            [0.0, 1.0, 3.0, 6.0, 10.0],  # steps 1, 2, 3, 4: (2 + 3) / 2
            [0.0, 2.0, 2.0, 2.0, 0.0],  # steps 2, 0, 0, 2: (0 + 2) / 2
            [1.0, 1.0, 1.0, 1.0, 3.0],  # steps 0, 0, 0, 2: (0 + 0) / 2
            [0.0, 1.0, nan, 1.0, 1.0],  # steps 1 and 0 (none beside the gap): 0.5
            [0.0, 3.0, 4.0, 4.0, nan],  # steps 3, 1, 0: 1
            [nan, 2.0, nan, 5.0, nan],  # no two collected slots side by side
        ]
    )
    rough = np.empty(len(logs))
    observer_kernel._rough_pass(logs, rough)
    assert rough[:5].tolist() == [2.5, 1.0, 0.0, 0.5, 1.0]
    assert np.isnan(rough[5])
    # numpy's median over many rows, ties and gaps among them, bit for bit
    rng = np.random.default_rng(5)
    many = np.log(np.maximum(np.round(rng.gamma(0.4, 0.2, (4_000, 96)), 2), 1e-3))
    many[rng.random(many.shape) < 0.1] = nan
    rough = np.empty(len(many))
    observer_kernel._rough_pass(many, rough)
    expected = np.nanmedian(np.abs(np.diff(many, axis=1)), axis=1)
    assert np.array_equal(rough, expected, equal_nan=True)


def _keys_day(date: dt.date, rows: list[tuple[str, str, float]]) -> DayRows:
    keys = pl.DataFrame(rows, schema=["meter_id", "area_id", "actual"], orient="row")
    return DayRows(date, lambda: keys, lambda r0, r1: keys.slice(r0, r1 - r0))


def test_a_steady_roster_is_numbered_by_row_as_the_join_numbers_it() -> None:
    # newest first: two days of the newest day's roster (C2 short of slots on the second), then
    # two days of a roster that differs (C2 in another area, C4 new; C4 short of slots on the
    # first of them), then the first roster again
    steady = [("C1", "A1", 1.0), ("C2", "A1", 1.0), ("C3", "A2", 1.0)]
    moved = [("C1", "A1", 1.0), ("C2", "A2", 1.0), ("C3", "A2", 1.0), ("C4", "A2", 1.0)]
    newest = [
        _keys_day(END, steady),
        _keys_day(END - dt.timedelta(days=1), [("C1", "A1", 1.0), ("C2", "A1", 0.5), ("C3", "A2", 1.0)]),
        _keys_day(END - dt.timedelta(days=2), [*moved[:3], ("C4", "A2", 0.5)]),
        _keys_day(END - dt.timedelta(days=3), moved),
        _keys_day(END - dt.timedelta(days=4), steady),
    ]
    meters, kept, coded = observer._code_days(newest, 0.9)
    # numbered as met going back: C1 0, C2 1, C3 2 on the newest day, C4 3 when first judged
    assert meters.rows() == [("C1", "A1", 0), ("C2", "A1", 1), ("C3", "A2", 2), ("C4", "A2", 3)]
    assert [src.date for src in kept] == [src.date for src in newest]
    rows = [(r.tolist(), c.tolist()) for r, c in coded]
    assert rows[0] == ([0, 1, 2], [0, 1, 2])
    assert rows[1] == ([0, 2], [0, 2])  # C2's day short of slots is not judged
    assert rows[2] == ([0, 2], [0, 2])  # C2's row in A2 is not in its last area (A1)
    assert rows[3] == ([0, 2, 3], [0, 2, 3])  # C4 first judged here
    assert rows[4] == ([0, 1, 2], [0, 1, 2])
    # the one-query numbering of a small window gives the same
    at_once = observer._code_window(newest, [src.keys() for src in newest], 0.9)
    assert at_once[0].equals(meters)
    assert [(r.tolist(), c.tolist()) for r, c in at_once[2]] == rows


def test_a_steady_roster_numbers_its_new_meters_as_met() -> None:
    # C2 short of slots on the newest day: numbered when first judged, after C3
    newest = [
        _keys_day(END, [("C1", "A1", 1.0), ("C2", "A1", 0.0), ("C3", "A2", 1.0)]),
        _keys_day(END - dt.timedelta(days=1), [("C1", "A1", 1.0), ("C2", "A1", 1.0), ("C3", "A2", 0.0)]),
    ]
    meters, _, coded = observer._code_days(newest, 0.9)
    assert meters.rows() == [("C1", "A1", 0), ("C3", "A2", 1), ("C2", "A1", 2)]
    assert [(r.tolist(), c.tolist()) for r, c in coded] == [([0, 2], [0, 1]), ([0, 1], [0, 2])]
    at_once = observer._code_window(newest, [src.keys() for src in newest], 0.9)
    assert at_once[0].equals(meters)


def test_masked_quantile_by_hand() -> None:
    v = np.array([[1.0, 5.0, 3.0, np.nan], [4.0, 2.0, 8.0, 6.0], [1.0, 2.0, 3.0, 4.0]])
    keep = np.array([[True, True, True, True], [True, True, False, True], [False] * 4])
    med = _masked_quantile(v, keep, 0.5)
    assert med[0] == pytest.approx(3.0)  # of 1, 5, 3
    assert med[1] == pytest.approx(4.0)  # of 4, 2, 6
    assert np.isnan(med[2])
    assert _masked_quantile(v, keep, 0.25)[1] == pytest.approx(3.0)  # 2, 4, 6: a quarter of the way = 3


def test_masked_quantile_over_days_of_blocks_by_hand() -> None:
    # (customers, days, blocks): the median of each block over the kept days
    v = np.array([[[1.0, 10.0], [3.0, np.nan], [2.0, 30.0]], [[5.0, 1.0], [7.0, 2.0], [9.0, 4.0]]])
    keep = np.array([[True, True, True], [True, False, True]])
    med = _masked_quantile(v, keep, 0.5)
    assert med.shape == (2, 2)
    assert med[0].tolist() == [2.0, 20.0]  # of 1, 3, 2; of 10, 30 (the NaN day left out)
    assert med[1].tolist() == [7.0, 2.5]  # of 5, 9; of 1, 4


def _month_summaries() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Summaries of the hand-made area's month, an h1 thief (C03) and a flattening one (C07) among them."""
    true = _true_use()
    recorded = true.copy()
    rng = np.random.default_rng(3)
    for d in TAMPERED:
        recorded[3, d] = _attack("h1", true[3, d], d, rng)
        recorded[7, d] = _attack("h5", true[7, d], d, rng)
    recorded[9, 5:8] = np.nan  # a customer missing days
    curves, members = _area(recorded, true)
    parts = [
        day_summaries(c, m, START + dt.timedelta(days=d), RULES)
        for d, (c, m) in enumerate(zip(curves, members, strict=True))
    ]
    return pl.concat([p[0] for p in parts]), pl.concat([p[1] for p in parts])


def test_the_window_read_a_few_customers_at_a_time_matches_one_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    cust, areas = _month_summaries()
    whole = indicator(cust, areas, END, RULES)
    assert set(whole["meter_id"]) >= {"C03", "C07"}
    asked: dict[dt.date, list[tuple[int, int]]] = {}

    def recording(src: DayRows) -> DayRows:
        def read(r0: int, r1: int) -> pl.DataFrame:
            asked.setdefault(src.date, []).append((r0, r1))
            return src.read(r0, r1)

        return DayRows(src.date, src.keys, read)

    monkeypatch.setattr(observer, "CHUNK", 5)  # 12 customers: chunks of 5, 5 and 2
    days = [recording(d) for d in frame_days(cust)]
    assert indicator_of_days(days, areas, END, RULES).equals(whole)
    # each day read in increasing, non-overlapping row ranges, one per chunk: 0-5, 5-10, 10-12
    # (C09's days without a curve are the only ones with fewer rows)
    full = START + dt.timedelta(days=1)
    assert asked[full] == [(0, 5), (5, 10), (10, 12)]
    for spans in asked.values():
        assert all(a1 <= b0 for (_, a1), (b0, _) in itertools.pairwise(spans))


def test_day_summaries_a_few_rows_at_a_time_match_one_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    true = _true_use()
    recorded = true.copy()
    recorded[4, 3, 10:30] = np.nan  # slots not collected: filled from the register
    curves, members = _area(recorded, true)
    day = START + dt.timedelta(days=3)
    # C04's register has the day's true kWh; a member without a curve row (C06): every slot filled
    reg = members[3].with_columns(
        pl.when(pl.col("meter_id") == "C04").then(float(true[4, 3].sum())).otherwise(pl.col("kwh")).alias("kwh")
    )
    gone = curves[3].filter(pl.col("meter_id") != "C06")
    whole = day_summaries(gone, reg, day, RULES)
    monkeypatch.setattr(observer, "SUMMARY_ROWS", 2)
    pieces = day_summaries(gone.sample(fraction=1.0, shuffle=True, seed=5), reg, day, RULES)
    assert pieces[0].equals(whole[0]) and pieces[1].equals(whole[1])
    c06 = whole[0].filter(pl.col("meter_id") == "C06").row(0, named=True)
    assert c06["actual"] == 0.0
    assert c06["kwh"] == pytest.approx(float(recorded[6, 3].sum()))
    assert whole[1]["filled_kwh"][0] == pytest.approx(float(recorded[6, 3].sum() + true[4, 3, 10:30].sum()))


def test_observer_cases_are_priced_beside_the_balance_ones() -> None:
    from meterlake.transforms.observer import cases
    from meterlake.transforms.theft_cases import theft_cases

    day = dt.date(2026, 1, 30)
    ev = json.dumps({"window_start": "2026-01-17", "window_end": "2026-01-30", "suspect_days": ["2026-01-20"]})
    ind = pl.DataFrame(
        {
            "meter_id": ["M1", "M2"],
            "customer_id": ["C1", "C2"],
            "area_id": ["A1", "A1"],
            "s_observer": [0.9, 0.4],  # M2 under the case threshold
            "d_observer": [dt.date(2026, 1, 20)] * 2,
            "ev_observer": [ev, ev],
            "_observer_days": [4, 1],
            "_observer_window": [14, 14],
            "_observer_pattern": ["low", "flat"],
            "_observer_kwh": [12.0, 3.0],
            "_observer_moved": [12.5, 6.0],
            "_observer_recorded": [8.0, 5.0],
            "_observer_t": [6.5, 0.2],
            "_observer_checked": [True, True],
        }
    )
    found = cases(ind, day, 0.6)
    assert found["meter_id"].to_list() == ["M1"]
    prices = pl.DataFrame(
        {
            "tariff_id": ["RES"],
            "date": [day],
            **{f"price_{r}_yuan_per_kwh": [0.5] for r in ("sharp", "peak", "flat", "valley")},
        }
    )
    meter_days = pl.DataFrame(
        {
            "meter_id": ["M1"],
            "date": [dt.date(2026, 1, 20)],
            "tariff_id": ["RES"],
            "kwh": [8.0],
            **{f"kwh_{r}": [2.0] for r in ("sharp", "peak", "flat", "valley")},
        }
    )
    empty = pl.DataFrame(
        schema={
            "date": pl.Date,
            "window_start": pl.Date,
            "area_id": pl.String,
            "kind": pl.String,
            "rule": pl.String,
            "meter_id": pl.String,
            "customer_id": pl.String,
            "score": pl.Float64,
            "days": pl.Int32,
            "evidence": pl.String,
        }
    )
    inspections = pl.DataFrame(schema={"meter_id": pl.String, "inspection_date": pl.Date, "outcome": pl.String})
    out = theft_cases(empty, meter_days, prices, inspections, day, 0.2, 3.0, found).row(0, named=True)
    assert out["window_start"] == dt.date(2026, 1, 17)
    assert out["stolen_kwh"] == pytest.approx(12.0)
    assert out["unrecorded_share"] == pytest.approx(12.0 / 20.0)
    assert out["back_charge_yuan"] == pytest.approx(6.0)  # 12 kWh at 0.5 yuan
    assert out["penalty_yuan"] == pytest.approx(18.0)
    assert out["evidence_text"].startswith("4 of 14 days since 2026-01-20: far less energy")
    assert "14天中4天电量远低于其常态日" in out["evidence_text"]
    assert "(about 12.0 kWh unrecorded in all; 12.5 kWh taken out of the hours it was used in)" in out["evidence_text"]


def test_a_moved_day_is_not_billed_as_hidden_energy() -> None:
    """h6 (reversed) and h5 (flat) keep the day's total: no unrecorded kWh, only energy moved
    between hours; a flat day recorded at 40 % of its total hides the rest."""
    true = _true_use()
    thief = 5
    for kind, share in (("h6", 1.0), ("h5", 1.0), ("h5", 0.4)):
        recorded = true.copy()
        rng = np.random.default_rng(3)
        for d in TAMPERED:
            recorded[thief, d] = share * _attack(kind, true[thief, d], d, rng)
        found = _run(recorded, true).filter(pl.col("meter_id") == f"C{thief:02d}")
        row = found.row(0, named=True)
        text = found.select(reason_text())[0, 0]
        days = [START + dt.timedelta(days=d) for d in TAMPERED]
        suspect = json.loads(row["ev_observer"])["suspect_days"]
        assert set(suspect) <= {str(d) for d in days}
        hidden = sum(true[thief, (d - START).days].sum() - recorded[thief, (d - START).days].sum() for d in days)
        if share == 1.0:
            assert row["_observer_pattern"] in ("reverse", "flat")
            assert row["_observer_kwh"] == 0.0  # the total was kept: nothing to back-charge
            assert row["_observer_moved"] > 0.1 * true[thief].sum() / DAYS * len(suspect)
            assert text.split(": ", 1)[1].startswith(PATTERN_WORDS[row["_observer_pattern"]][0])
            assert "(about 0.0 kWh unrecorded in all; " in text
        else:
            # the hidden energy of the suspect days, within the day-to-day spread of the usual day
            per_day = hidden / len(days)
            assert row["_observer_kwh"] == pytest.approx(per_day * len(suspect), rel=0.25)


def test_an_office_sunday_is_its_usual_sunday() -> None:
    """A customer using a third on Saturdays and Sundays is compared with its weekend days:
    nothing is found; with a single day type its weekends look like a thief's low days."""
    true = _true_use()
    for d in range(DAYS):
        if (START + dt.timedelta(days=d)).weekday() >= 5:
            true[5, d] *= 0.35
    assert _run(true.copy(), true).height == 0
    one_type = RULES.model_copy(update={"day_types": [[0, 1, 2, 3, 4, 5, 6]]})
    assert _run(true.copy(), true, one_type)["meter_id"].to_list() == ["C05"]


def test_day_types_are_weekdays_once() -> None:
    with pytest.raises(ValueError, match="day_types"):
        ObserverRules(day_types=[[0, 1, 2, 3, 4], [4, 5, 6]])
    with pytest.raises(ValueError, match="day_types"):
        ObserverRules(day_types=[[0, 7]])


def test_a_meter_that_changed_area_is_judged_on_its_days_in_the_last_one() -> None:
    cust, areas = _month_summaries()
    first = START + dt.timedelta(days=9)
    moved = cust.with_columns(
        pl.when((pl.col("meter_id") == "C03") & (pl.col("date") <= first))
        .then(pl.lit("A0"))
        .otherwise(pl.col("area_id"))
        .alias("area_id")
    )
    without = cust.filter(~((pl.col("meter_id") == "C03") & (pl.col("date") <= first)))
    got = indicator(moved, areas, END, RULES)
    assert got.equals(indicator(without, areas, END, RULES))
    thief = got.filter(pl.col("meter_id") == "C03")
    # its 20 days in A1 (0-based 10-29) hold 6 of the tampered ones (12, 15, 18, 21, 24, 27),
    # each recorded at 40 %: low by 0.6, over the ramp's middle; its honest days are not
    assert thief["_observer_days"][0] == 6
    assert json.loads(thief["ev_observer"][0])["suspect_days"] == [
        (START + dt.timedelta(days=d)).isoformat() for d in (12, 15, 18, 21, 24, 27)
    ]


def test_summaries_out_of_area_order_are_refused() -> None:
    cust, areas = _month_summaries()
    days = frame_days(cust)
    last = days[-1]
    shuffled = DayRows(
        last.date,
        lambda: last.keys().reverse(),
        lambda r0, r1: last.read(0, last.keys().height).reverse().slice(r0, r1 - r0),
    )
    with pytest.raises(observer.ObserverInputError, match="area order"):
        indicator_of_days([*days[:-1], shuffled], areas, END, RULES)


def test_screen_by_hand() -> None:
    # one day type, 8 days of 4 blocks; ramps: low 0.35-0.7, zero 8-16 slots, rough 0.1-0.3; top 3 days
    rules = ObserverRules(blocks=4, day_types=[[0, 1, 2, 3, 4, 5, 6]])
    usual = [1.0, 2.0, 3.0, 2.0]
    half = [0.5, 1.0, 1.5, 1.0]
    blocks = np.array([[usual] * 8, [usual] * 8, [half] * 2 + [usual] * 6])
    run = np.zeros((3, 8))
    run[0, 7] = 16.0  # customer 0: a zero run 16 slots longer than its shortest: zero strength 1
    rough = np.full((3, 8), 0.1)
    rough[1, 2] = 0.3  # customer 1: a day 0.2 rougher than its smoothest: rough strength 0.5
    blocks[1, 5], run[1, 5], rough[1, 5] = np.nan, np.nan, np.nan  # a day without a curve counts for nothing
    seen = ~np.isnan(run)
    got = observer._screen(blocks, run, rough, seen, np.zeros(8, dtype=np.int64), rules)
    # customer 2: two days of 4 kWh, the same shape, against the upper quartile of its days'
    # energy (4, 4, 8 x 6: 8): low 1 - 4/8 = 0.5 through the ramp, (0.5 - 0.35) / 0.35 each
    low = (0.5 - 0.35) / 0.35
    assert got == pytest.approx([1 / 3, 0.5 / 3, 2 * low / 3], abs=1e-6)


def test_screen_a_type_of_few_days_takes_the_window() -> None:
    # Monday 2026-03-02 to Monday 2026-03-09: 6 working days and 2 weekend days (fewer than
    # min_type_days 3): the weekend days, at half, are read against all 8 days (upper quartile 8 kWh)
    rules = ObserverRules(blocks=4)
    dates = [dt.date(2026, 3, 2) + dt.timedelta(days=i) for i in range(8)]
    tix = observer._day_kinds(dates, rules.day_types)
    usual, half = [1.0, 2.0, 3.0, 2.0], [0.5, 1.0, 1.5, 1.0]
    blocks = np.array([[half if d.weekday() >= 5 else usual for d in dates]])
    flat = np.zeros((1, 8))
    got = observer._screen(blocks, flat, flat + 0.1, np.ones((1, 8), dtype=bool), tix, rules)
    low = (0.5 - 0.35) / 0.35
    assert got == pytest.approx([2 * low / 3], abs=1e-6)
    # with three weekend days they are their own type's mean: nothing unusual
    many = [*dates[:7], dt.date(2026, 3, 14)]
    blocks3 = np.array([[half if d.weekday() >= 5 else usual for d in many]])
    got3 = observer._screen(
        blocks3, flat, flat + 0.1, np.ones((1, 8), dtype=bool), observer._day_kinds(many, rules.day_types), rules
    )
    assert got3 == pytest.approx([0.0], abs=1e-9)


SCREENED = RULES.model_copy(update={"screen": 0.3})
EVERYONE = RULES.model_copy(update={"screen": 0.0})  # every customer judged


@pytest.mark.parametrize(
    ("kind", "days"),
    [*((k, TAMPERED) for k in ("h1", "h2", "h3", "h4", "h5", "h6", "mix")), *((k, MOSTLY) for k in ("h3", "h4", "h5"))],
)
def test_the_screen_keeps_every_attacker_and_their_strengths(kind: str, days: Sequence[int]) -> None:
    true = _true_use()
    recorded = true.copy()
    rng = np.random.default_rng(3)
    for d in days:
        recorded[5, d] = _attack(kind, true[5, d], d, rng)
    assert _run(recorded, true, SCREENED).equals(_run(recorded, true, EVERYONE))


def test_customers_the_screen_passes_over_are_not_judged(monkeypatch: pytest.MonkeyPatch) -> None:
    true = _true_use()
    recorded = true.copy()
    rng = np.random.default_rng(3)
    for d in TAMPERED:
        recorded[5, d] = _attack("h1", true[5, d], d, rng)
    judged: list[int] = []
    real = observer._judge_some

    def counting(blocks: np.ndarray, *args: object) -> dict[str, np.ndarray]:
        judged.append(len(blocks))
        return real(blocks, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(observer, "_judge_some", counting)
    _run(recorded, true, SCREENED)
    assert judged == [1]  # of the 12 customers only the thief
    judged.clear()
    _run(recorded, true, EVERYONE)
    assert judged == [CUSTOMERS]


def test_row_median_by_hand() -> None:
    nan = np.nan
    values = np.array(
        [
            [3.0, 1.0, 2.0, 5.0, 4.0],  # no NaN (a partial sort): 3
            [4.0, 1.0, nan, 2.0, 8.0],  # 1, 2, 4, 8: halfway between 2 and 4
            [nan, nan, nan, nan, nan],  # nothing: NaN
        ]
    )
    assert np.array_equal(observer._row_median(values), [3.0, 3.0, nan], equal_nan=True)
    assert np.array_equal(observer._row_median(values[:, :4]), [2.5, 2.0, nan], equal_nan=True)  # 1 2 3 5; 1 2 4


def _keyed(date: dt.date, rows: list[tuple[str, str | None, float]]) -> DayRows:
    keys = pl.DataFrame(rows, schema={"meter_id": pl.String, "area_id": pl.String, "actual": pl.Float64}, orient="row")

    def read(r0: int, r1: int) -> pl.DataFrame:
        raise AssertionError("numbering the window reads no blocks")

    return DayRows(date, lambda: keys, read)


#: four days, newest first: M2 not judged on the newest; M3 in A1 before A2; the third
#: day judges nobody; M2 in A3 before A1
_NEWEST_FIRST = [
    _keyed(END, [("M1", "A1", 1.0), ("M2", "A1", 0.2), ("M3", "A2", 1.0)]),
    _keyed(END - dt.timedelta(days=1), [("M1", "A1", 1.0), ("M2", "A1", 1.0), ("M3", "A1", 1.0)]),
    _keyed(END - dt.timedelta(days=2), [("M4", "A2", 0.1)]),
    _keyed(END - dt.timedelta(days=3), [("M2", "A3", 1.0), ("M5", "A3", 1.0)]),
]


@pytest.mark.parametrize("at_once", [True, False])
def test_the_window_numbers_meters_as_met_from_the_newest_day_by_hand(at_once: bool) -> None:
    days = _NEWEST_FIRST
    if at_once:
        meters, kept, coded = observer._code_window(days, [d.keys() for d in days], 0.5)
    else:
        meters, kept, coded = observer._code_days(days, 0.5)
    # met in order: M1 and M3 on the newest day, M2 the day before, M5 on the oldest
    assert meters.to_dict(as_series=False) == {
        "meter_id": ["M1", "M3", "M2", "M5"],
        "_last": ["A1", "A2", "A1", "A3"],
        "_m": [0, 1, 2, 3],
    }
    assert [d.date for d in kept] == [END, END - dt.timedelta(days=1), END - dt.timedelta(days=3)]
    # newest: rows 0 (M1) and 2 (M3); the day before: M1 and M2 (M3 was in A1 then);
    # the oldest: M5 only (M2 was in A3 then)
    assert [(r.tolist(), c.tolist()) for r, c in coded] == [([0, 2], [0, 1]), ([0, 1], [0, 2]), ([1], [3])]


def test_a_day_holding_a_meter_twice_is_numbered_a_day_at_a_time() -> None:
    days = [*_NEWEST_FIRST[:1], _keyed(END - dt.timedelta(days=1), [("M1", "A1", 1.0), ("M1", "A1", 1.0)])]
    one = observer._code_window(days, [d.keys() for d in days], 0.5)
    other = observer._code_days(days, 0.5)
    assert one[0].equals(other[0]) and one[1] == other[1]
    assert [(r.tolist(), c.tolist()) for r, c in one[2]] == [(r.tolist(), c.tolist()) for r, c in other[2]]


def test_a_window_numbered_at_once_scores_as_one_numbered_a_day_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    cust, areas = _month_summaries()
    # C03 in another area on its first 10 days: those rows are left out either way
    moved = cust.with_columns(
        pl.when((pl.col("meter_id") == "C03") & (pl.col("date") <= START + dt.timedelta(days=9)))
        .then(pl.lit("A0"))
        .otherwise(pl.col("area_id"))
        .alias("area_id")
    ).sort("date", "area_id", "meter_id")
    at_once = indicator_of_days(frame_days(moved), areas, END, RULES)
    assert set(at_once["meter_id"]) >= {"C03", "C07"}
    monkeypatch.setattr(observer, "WINDOW_ROWS_AT_ONCE", 0)
    assert indicator_of_days(frame_days(moved), areas, END, RULES).equals(at_once)


# -- the compiled day part (meterlake/observer_kernel.py): which customers are judged ------


def _by_hand_window() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """3 customers, 14 days from Monday 2026-03-02, 24 blocks: hourly use of 1 kWh for 12 hours and
    3 kWh for 12 (48 kWh, CV 0.5). Customer 0 records half on 3 working days, customer 1 a
    tenth, customer 2 has 6 days with a curve only."""
    day = np.array([1.0] * 12 + [3.0] * 12, dtype=np.float32)
    blocks = np.tile(day, (3, 14, 1))
    blocks[0, [2, 3, 4]] *= 0.5  # Wednesday to Friday
    blocks[1, [2, 3, 4]] *= 0.1
    run = np.zeros((3, 14))
    rough = np.full((3, 14), 0.05)
    blocks[2, 6:], run[2, 6:], rough[2, 6:] = np.nan, np.nan, np.nan
    dates = [dt.date(2026, 3, 2) + dt.timedelta(days=i) for i in range(14)]
    return blocks, run, rough, observer._day_kinds(dates, ObserverRules().day_types)


def test_compiled_day_part_by_hand() -> None:
    from meterlake import observer_kernel

    rules = ObserverRules()
    blocks, run, rough, tix = _by_hand_window()
    got = observer_kernel.day_parts(blocks, run, rough, tix, rules)
    # customer 0: its usual working day is the median of its 7 full days with most energy (48
    # kWh), and again over its calm days (all 10: the half days reach 0.43 < 0.5 suspect): the
    # full day. A half day: low 1 - 24/48 = 0.5 through the ramp 0.35-0.7; its shape, spread,
    # zero run and roughness are the usual ones (0); the day part is the mean of the 3 strongest
    low = (0.5 - 0.35) / 0.35
    assert got[0] == pytest.approx(low, abs=1e-12)
    # customer 1: a tenth: low 0.9, past the ramp's top: 1 on each of the 3 days
    assert got[1] == pytest.approx(1.0, abs=1e-12)
    # customer 2: 6 days, fewer than min_days (7): never judged
    assert got[2] == -1.0
    # only the customer reaching the day ramp's low end (0.6) less the margin is worth judging
    assert observer_kernel.worth_judging(blocks, run, rough, tix, rules).tolist() == [False, True, False]


def test_compiled_block_medians_by_hand() -> None:
    from meterlake import observer_kernel

    blocks = np.array([[1.0, 5.0], [3.0, 5.0], [2.0, 1.0], [9.0, 7.0]], dtype=np.float32)  # (days, blocks)
    out, buf, rank = np.zeros(2), np.zeros(4), np.zeros(2, dtype=np.int32)
    # days 0, 1, 2: of 1, 3, 2 -> 2; of 5, 5, 1 (a tie) -> 5
    observer_kernel._block_medians(blocks, np.array([0, 1, 2, 3]), 3, buf, out, rank, False)
    assert out.tolist() == [2.0, 5.0]
    # all 4 days: of 1, 3, 2, 9 -> (2 + 3) / 2; of 5, 5, 1, 7 -> (5 + 5) / 2
    observer_kernel._block_medians(blocks, np.array([0, 1, 2, 3]), 4, buf, out, rank, False)
    assert out.tolist() == [2.5, 5.0]
    # no day: 0; a day without a value (NaN) is left out, as the judging's medians leave it
    observer_kernel._block_medians(blocks, np.array([0, 1, 2, 3]), 0, buf, out, rank, False)
    assert out.tolist() == [0.0, 0.0]
    gaps = blocks.copy()
    gaps[1, 0] = np.nan
    observer_kernel._block_medians(gaps, np.array([0, 1, 2, 3]), 3, buf, out, rank, True)
    assert out.tolist() == [1.5, 5.0]  # of 1, 2; of 5, 5, 1


def _judged_day_parts(blocks: np.ndarray, run: np.ndarray, rough: np.ndarray, tix: np.ndarray) -> np.ndarray:
    """The judging's own day part of every customer (``_judge_some`` reports it for those that can score)."""
    rules = RULES.model_copy(update={"days": RULES.days.model_copy(update={"lo": -1.0})})  # everyone kept
    area_of = np.zeros(len(blocks), dtype=np.int64)
    excess, valid = np.zeros((1, blocks.shape[1], blocks.shape[2])), np.zeros((1, blocks.shape[1]), dtype=bool)
    got = observer._judge_some(blocks, run, rough, tix, excess, valid, area_of, rules)
    out = np.full(len(blocks), np.nan)
    out[got["at"]] = got["days_part"]
    return out


@pytest.mark.parametrize("kind", ["h1", "h2", "h3", "h4", "h5", "h6", "mix"])
def test_compiled_day_part_is_the_judged_one(kind: str) -> None:
    from meterlake import observer_kernel

    true = _true_use()
    rng = np.random.default_rng(3)
    recorded = true.copy()
    for d in TAMPERED:
        recorded[5, d] = _attack(kind, true[5, d], d, rng)
    for d in MOSTLY:  # a mix is drawn over the 10 tampered days only
        recorded[8, d] = _attack("h3" if kind == "mix" else kind, true[8, d], d, rng)
    curves, members = _area(recorded, true)
    cust = pl.concat(
        [
            day_summaries(c, m, START + dt.timedelta(days=d), RULES)[0]
            for d, (c, m) in enumerate(zip(curves, members, strict=True))
        ]
    ).sort("meter_id", "date")
    names = observer.block_names(RULES.blocks)
    blocks = cust.select(names).to_numpy().reshape(CUSTOMERS, DAYS, -1)
    run = cust["zero_run"].to_numpy().astype(np.float64).reshape(CUSTOMERS, DAYS)
    rough = cust["rough"].to_numpy().astype(np.float64).reshape(CUSTOMERS, DAYS)
    tix = observer._day_kinds([START + dt.timedelta(days=d) for d in range(DAYS)], RULES.day_types)
    blocks[2, 4, 3] = np.nan  # a seen day with a block without a value: left out of its medians
    judged = _judged_day_parts(blocks, run, rough, tix)
    compiled = observer_kernel.day_parts(blocks, run, rough, tix, RULES)
    assert compiled == pytest.approx(judged, abs=1e-9)
    assert compiled[5] > RULES.days.lo and compiled[8] > RULES.days.lo  # the thieves are judged


@pytest.mark.parametrize(
    ("kind", "days"),
    [*((k, TAMPERED) for k in ("h1", "h2", "h3", "h4", "h5", "h6", "mix")), *((k, MOSTLY) for k in ("h3", "h4", "h5"))],
)
def test_the_compiled_prefilter_changes_no_output(
    kind: str, days: Sequence[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from meterlake import observer_kernel

    true = _true_use()
    recorded = true.copy()
    rng = np.random.default_rng(3)
    for d in days:
        recorded[5, d] = _attack(kind, true[5, d], d, rng)
    curves, members = _area(recorded, true)
    parts = [
        day_summaries(c, m, START + dt.timedelta(days=d), RULES)
        for d, (c, m) in enumerate(zip(curves, members, strict=True))
    ]
    cust, areas = pl.concat([p[0] for p in parts]), pl.concat([p[1] for p in parts])
    judged: list[int] = []
    real = observer._judge_some

    def counting(blocks: np.ndarray, *args: object) -> dict[str, np.ndarray]:
        judged.append(len(blocks))
        return real(blocks, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(observer, "_judge_some", counting)
    everyone = indicator(cust, areas, END, RULES)
    filtered = indicator(cust, areas, END, RULES, prefilter=observer_kernel.worth_judging)
    assert filtered.equals(everyone)
    assert everyone["meter_id"][0] == "C05"
    assert judged[0] == CUSTOMERS and judged[1] < CUSTOMERS  # honest customers are spared the judging


def test_a_day_marked_as_the_roster_before_is_numbered_without_its_keys() -> None:
    # the newest day read in full; the next two carry the newest day's mark: only their actual
    # is read (C2 short of slots on the second); the last carries another mark: its keys read
    steady = [("C1", "A1", 1.0), ("C2", "A1", 1.0), ("C3", "A2", 1.0)]
    frames = [
        pl.DataFrame(rows, schema=["meter_id", "area_id", "actual"], orient="row")
        for rows in (steady, steady, [("C1", "A1", 1.0), ("C2", "A1", 0.5), ("C3", "A2", 1.0)], steady)
    ]
    read: list[int] = []

    def day(i: int, mark: str) -> DayRows:
        def keys() -> pl.DataFrame:
            read.append(i)
            return frames[i]

        return DayRows(
            END - dt.timedelta(days=i),
            keys,
            lambda r0, r1: frames[i].slice(r0, r1 - r0),
            roster=lambda: mark,
            actual=lambda: frames[i]["actual"],
        )

    newest = [day(0, "a"), day(1, "a"), day(2, "a"), day(3, "b")]
    meters, kept, coded = observer._code_days(newest, 0.9)
    assert read == [0, 3]
    assert meters.rows() == [("C1", "A1", 0), ("C2", "A1", 1), ("C3", "A2", 2)]
    assert [src.date for src in kept] == [src.date for src in newest]
    assert [(r.tolist(), c.tolist()) for r, c in coded] == [
        ([0, 1, 2], [0, 1, 2]),
        ([0, 1, 2], [0, 1, 2]),
        ([0, 2], [0, 2]),
        ([0, 1, 2], [0, 1, 2]),
    ]


def test_the_days_rows_are_put_in_area_role_meter_order_by_hand() -> None:
    # members in meter order; the rows in curve order, one without a curve last
    meters = pl.Series("meter_id", ["M1", "M2", "M3", "M4", "M5"])
    every = pl.DataFrame(
        {
            "area_id": ["A2", "A1", "A2", "A1", "A1"],
            "role": ["customer", "customer", "area_master", "area_master", "customer"],
            "meter_id": ["M4", "M5", "M1", "M3", "M2"],
        }
    )
    member = np.array([3, 4, 0, 2, 1])
    # A1: its master M3 (row 3), then customers M2 (row 4), M5 (row 1); A2: master M1 (row 2), M4 (row 0)
    assert observer._area_order(every, meters, member).to_list() == [3, 4, 1, 2, 0]
    # members not in meter order: the rows sorted by their strings, the same order
    shuffled = pl.Series("meter_id", ["M2", "M1", "M3", "M4", "M5"])
    assert observer._area_order(every, shuffled, np.array([3, 4, 1, 2, 0])).to_list() == [3, 4, 1, 2, 0]


def test_customers_judged_a_pool_at_a_time_score_as_judged_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    cust, areas = _month_summaries()
    whole = indicator(cust, areas, END, RULES)
    sizes: list[int] = []
    real = observer._judge_some

    def counting(blocks: np.ndarray, *args: object) -> dict[str, np.ndarray]:
        sizes.append(len(blocks))
        return real(blocks, *args)  # type: ignore[arg-type]

    def last_two(blocks: np.ndarray, *args: object) -> np.ndarray:
        return np.arange(len(blocks)) >= len(blocks) - 2

    monkeypatch.setattr(observer, "_judge_some", counting)
    monkeypatch.setattr(observer, "CHUNK", 4)  # 12 customers (C00 .. C11): chunks of 4
    pooled = indicator(cust, areas, END, RULES, prefilter=last_two)
    # two customers of each chunk let through (C02, C03; C06, C07; C10, C11), judged together
    # once 4 are held: 2 + 2, then the last 2
    assert sizes == [4, 2]
    assert set(pooled["meter_id"]) >= {"C03", "C07"}
    assert pooled.height and pooled.equals(whole.filter(pl.col("meter_id").is_in(pooled["meter_id"].implode())))


# -- the window's chunks: placed day by day, looked at beside the reading -----------------------


def _arrays_day(d: int, blocks: list[list[float]], runs: list[int], roughs: list[float], layout: str) -> DayRows:
    """A day whose rows are given as arrays only: blocks (rows, 2) row-major, or as the
    transposed view of the columns stacked (as the stage gives a kept day's)."""
    b = np.array(blocks, dtype=np.float32)
    if layout == "columns":
        b = np.ascontiguousarray(b.T).T
    run, rough = np.array(runs, dtype=np.int16), np.array(roughs, dtype=np.float32)

    def never(*_: object) -> pl.DataFrame:
        raise AssertionError("the arrays are read")

    return DayRows(START + dt.timedelta(days=d), never, never, lambda r0, r1: (b[r0:r1], run[r0:r1], rough[r0:r1]))


@pytest.mark.parametrize("layout", ["rows", "columns"])
def test_a_chunk_is_placed_day_by_day_with_nan_where_a_customer_has_no_row(layout: str) -> None:
    kept = [
        # rows 1, 2 to customers 1, 2 (consecutive): customers 0 and 3 have no row this day
        _arrays_day(0, [[1, 2], [3, 4], [5, 6], [7, 8]], [0, 1, 2, 3], [0.5, 1.5, 2.5, 3.5], layout),
        # rows 0, 2 to customers 0, 3 (a gather)
        _arrays_day(1, [[10, 20], [30, 40], [50, 60]], [4, 5, 6], [4.5, 5.5, 6.5], layout),
        # its only row is customer 5's, outside the chunk
        _arrays_day(2, [[90, 91]], [9], [9.5], layout),
    ]
    place = [
        (np.array([1, 2], dtype=np.int32), np.array([1, 2], dtype=np.int32)),
        (np.array([0, 2], dtype=np.int32), np.array([0, 3], dtype=np.int32)),
        (np.array([0], dtype=np.int32), np.array([5], dtype=np.int32)),
    ]
    blocks, run, rough = observer._place(kept, place, 0, 4, 3, 2, ["b01", "b02"])
    nan = np.nan
    assert blocks.shape == (4, 3, 2) and blocks.dtype == np.float32
    assert np.array_equal(
        blocks,
        [
            [[nan, nan], [10.0, 20.0], [nan, nan]],
            [[3.0, 4.0], [nan, nan], [nan, nan]],
            [[5.0, 6.0], [nan, nan], [nan, nan]],
            [[nan, nan], [50.0, 60.0], [nan, nan]],
        ],
        equal_nan=True,
    )
    assert np.array_equal(run, [[nan, 4, nan], [1, nan, nan], [2, nan, nan], [nan, 6, nan]], equal_nan=True)
    assert np.array_equal(rough, [[nan, 4.5, nan], [1.5, nan, nan], [2.5, nan, nan], [nan, 6.5, nan]], equal_nan=True)
    # customers 2 and 3 alone: day 0's row 2 and day 1's row 2
    blocks, run, _ = observer._place(kept, place, 2, 4, 3, 2, ["b01", "b02"])
    assert np.array_equal(blocks[:, :2], [[[5.0, 6.0], [nan, nan]], [[nan, nan], [50.0, 60.0]]], equal_nan=True)
    assert np.array_equal(run, [[2, nan, nan], [nan, 6, nan]], equal_nan=True)


def test_a_chunk_placed_over_an_earlier_chunks_arrays_is_placed_as_afresh() -> None:
    """A spare (an earlier chunk's arrays) is written over where the chunk has its shape and
    type: every place of it, a customer's days without a row NaN again, not the earlier values."""
    kept = [
        _arrays_day(0, [[1, 2], [3, 4], [5, 6], [7, 8]], [0, 1, 2, 3], [0.5, 1.5, 2.5, 3.5], "columns"),
        _arrays_day(1, [[10, 20], [30, 40], [50, 60]], [4, 5, 6], [4.5, 5.5, 6.5], "columns"),
    ]
    # chunk 0..2: day 0 rows 0, 1 and day 1 row 0; chunk 2..4: day 0 row 2 to customer 2 only
    place = [
        (np.array([0, 1, 2], dtype=np.int32), np.array([0, 1, 2], dtype=np.int32)),
        (np.array([0], dtype=np.int32), np.array([0], dtype=np.int32)),
    ]
    spare: dict[str, np.ndarray] = {}
    blocks, run, _ = observer._place(kept, place, 0, 2, 2, 2, ["b01", "b02"], spare)
    nan = np.nan
    assert np.array_equal(blocks, [[[1.0, 2.0], [10.0, 20.0]], [[3.0, 4.0], [nan, nan]]], equal_nan=True)
    first = spare["blocks"]
    blocks, run, rough = observer._place(kept, place, 2, 4, 2, 2, ["b01", "b02"], spare)
    assert spare["blocks"] is first  # the same shape and type: its arrays written over
    assert np.array_equal(blocks, [[[5.0, 6.0], [nan, nan]], [[nan, nan], [nan, nan]]], equal_nan=True)
    assert np.array_equal(run, [[2.0, nan], [nan, nan]], equal_nan=True)
    assert np.array_equal(rough, [[2.5, nan], [nan, nan]], equal_nan=True)
    # a chunk of another size: arrays of its own, kept for the next
    blocks, _, _ = observer._place(kept, place, 1, 4, 2, 2, ["b01", "b02"], spare)
    assert spare["blocks"] is not first and blocks.shape == (3, 2, 2)
    assert np.array_equal(blocks[:, 0], [[3.0, 4.0], [5.0, 6.0], [nan, nan]], equal_nan=True)


def test_the_look_runs_beside_the_reading_and_changes_no_output(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    cust, areas = _month_summaries()
    whole = indicator(cust, areas, END, RULES)
    threads: list[str] = []

    def everyone(blocks: np.ndarray, *args: object) -> np.ndarray:
        threads.append(threading.current_thread().name)
        return np.ones(len(blocks), dtype=bool)

    monkeypatch.setattr(observer, "CHUNK", 5)  # 12 customers: chunks of 5, 5 and 2
    assert indicator(cust, areas, END, RULES, prefilter=everyone).equals(whole)
    assert len(threads) == 3 and all(t.startswith("observer-look") for t in threads)
    threads.clear()
    monkeypatch.setattr(observer, "CHUNK", 12)  # one chunk: looked at where it is read
    assert indicator(cust, areas, END, RULES, prefilter=everyone).equals(whole)
    assert threads == [threading.current_thread().name]


def test_day_summaries_pieces_summarised_on_a_second_thread_match_one_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    true = _true_use()
    curves, members = _area(true, true)
    day = START + dt.timedelta(days=3)
    whole = day_summaries(curves[3], members[3], day, RULES)
    threads: list[str] = []

    def numpy_on_the_thread(x: np.ndarray, *_: object) -> None:
        threads.append(threading.current_thread().name)
        return None  # the piece summarised by numpy

    monkeypatch.setattr(observer, "SUMMARY_ROWS", 2)
    pieces = day_summaries(curves[3], members[3], day, RULES, numpy_on_the_thread)
    assert pieces[0].equals(whole[0]) and pieces[1].equals(whole[1])
    assert len(threads) == -(-curves[3].height // 2) and all(t.startswith("observer-summary") for t in threads)


def test_the_compiled_day_part_of_a_chunk_held_by_day_is_that_of_its_rows() -> None:
    """``_place`` gives the blocks as the transposed view of (days, blocks, customers): the
    compiled day part reads it as it is, with the same figures as from a C array."""
    from meterlake import observer_kernel

    true = _true_use()
    recorded = true.copy()
    rng = np.random.default_rng(3)
    for d in TAMPERED:
        recorded[5, d] = _attack("h3", true[5, d], d, rng)
    curves, members = _area(recorded, true)
    cust = pl.concat(
        [
            day_summaries(c, m, START + dt.timedelta(days=d), RULES)[0]
            for d, (c, m) in enumerate(zip(curves, members, strict=True))
        ]
    ).sort("meter_id", "date")
    blocks = cust.select(observer.block_names(RULES.blocks)).to_numpy().reshape(CUSTOMERS, DAYS, -1)
    blocks[2, 4] = np.nan  # a day without a row
    run = cust["zero_run"].to_numpy().astype(np.float64).reshape(CUSTOMERS, DAYS)
    rough = cust["rough"].to_numpy().astype(np.float64).reshape(CUSTOMERS, DAYS)
    run[2, 4] = rough[2, 4] = np.nan
    tix = observer._day_kinds([START + dt.timedelta(days=d) for d in range(DAYS)], RULES.day_types)
    view = np.ascontiguousarray(blocks.transpose(1, 2, 0)).transpose(2, 0, 1)  # held (days, blocks, customers)
    assert not view.flags.c_contiguous and np.array_equal(view, blocks, equal_nan=True)
    got = observer_kernel.day_parts(view, run, rough, tix, RULES)
    assert np.array_equal(got, observer_kernel.day_parts(blocks, run, rough, tix, RULES))
    assert got[5] > RULES.days.lo > got[0]  # the thief passes the look, an honest customer does not
