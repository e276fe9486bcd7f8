"""Interval estimation: interpolation, like days, scaling to the register, the edits table."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from meterlake.schemas.curves import SLOTS
from meterlake.schemas.interval_edits import INTERVAL_EDITS
from meterlake.transforms import estimation as est

DAY = dt.date(2026, 1, 14)  # a Wednesday


def curve(values: Sequence[float | None], meter: str = "m1", date: dt.date = DAY) -> dict:
    assert len(values) == 96
    return {"meter_id": meter, "date": date, **dict(zip(SLOTS, values, strict=False))}


def frame(rows: list[dict]) -> pl.LazyFrame:
    schema = {"meter_id": pl.String, "date": pl.Date, **dict.fromkeys(SLOTS, pl.Float64)}
    return pl.DataFrame(rows, schema=schema).lazy()


NO_LIKE = frame([])
NO_DELTA = pl.LazyFrame(schema={"meter_id": pl.String, "date": pl.Date, "delta_kwh_meter": pl.Float64})


def delta(value: float, meter: str = "m1") -> pl.LazyFrame:
    return pl.LazyFrame({"meter_id": [meter], "date": [DAY], "delta_kwh_meter": [value]})


def run(rows, deltas=NO_DELTA, like=NO_LIKE, max_slots=8) -> pl.DataFrame:
    return est.estimate(frame(rows), deltas, like, max_interpolation_slots=max_slots).collect().sort("meter_id", "slot")


def test_linear_interpolation_between_actual_neighbours() -> None:
    v: list[float | None] = [1.0] * 96
    v[9], v[10], v[11] = 1.0, None, None  # slots 11, 12 missing between 1.0 (slot 10) and 4.0 (slot 13)
    v[12] = 4.0
    out = run([curve(v)])
    expected = pl.DataFrame(
        {
            "slot": pl.Series([11, 12], dtype=pl.Int16),
            "raw_kwh_meter": [None, None],
            "kwh_meter": [2.0, 3.0],
            "quality": ["estimated", "estimated"],
            "method": ["linear_interpolation"] * 2,
            "reason": ["missing", "missing"],
        },
        schema_overrides={"raw_kwh_meter": pl.Float64},
    )
    assert_frame_equal(out.select(expected.columns), expected)


def test_negative_slot_is_replaced_and_raw_kept() -> None:
    v = [0.5] * 96
    v[40] = -0.2
    out = run([curve(v)])
    assert out.select("slot", "raw_kwh_meter", "kwh_meter", "reason").rows() == [(41, -0.2, 0.5, "negative")]


@pytest.mark.parametrize(
    ("gap", "method"),
    [
        pytest.param(8, "linear_interpolation", id="2h-interpolated"),
        pytest.param(9, "none", id="longer-than-2h-needs-like-day"),
    ],
)
def test_interpolation_limit(gap: int, method: str) -> None:
    v: list[float | None] = [1.0] * 96
    for i in range(20, 20 + gap):
        v[i] = None
    out = run([curve(v)])
    assert out.height == gap
    assert set(out["method"]) == {method}


def test_gap_at_midnight_is_not_interpolated() -> None:
    v = [None, None] + [1.0] * 94
    out = run([curve(v)])
    assert out["method"].to_list() == ["none", "none"]
    assert out["quality"].to_list() == ["missing", "missing"]


def test_like_day_mean_uses_only_actual_values() -> None:
    v: list[float | None] = [1.0] * 96
    for i in range(30, 50):
        v[i] = None  # 20 slots: too long to interpolate
    like_dates = est.like_dates(DAY, like_days=3, window_days=35)
    assert like_dates == [dt.date(2026, 1, 13), dt.date(2026, 1, 12), dt.date(2026, 1, 9)]
    likes = []
    for d, val in zip(like_dates, (2.0, 4.0, None), strict=False):  # the third like day missed those slots
        lv: list[float | None] = [9.0] * 96
        for i in range(30, 50):
            lv[i] = val
        likes.append(curve(lv, date=d))
    out = run([curve(v)], like=frame(likes))
    # mean of 2.0 and 4.0 (the empty third day does not count): 3.0
    assert set(out["method"]) == {"like_day"}
    assert out["kwh_meter"].to_list() == pytest.approx([3.0] * 20)


def test_scaling_to_the_register_difference() -> None:
    # 94 actual slots of 0.1 = 9.4; register 10.0; two interpolated slots 0.1 + 0.1 = 0.2
    # -> residual 0.6, scale 3.0, each estimate 0.3
    v: list[float | None] = [0.1] * 96
    v[50], v[51] = None, None
    out = run([curve(v)], deltas=delta(10.0))
    assert out["unscaled_kwh_meter"].to_list() == pytest.approx([0.1, 0.1])
    assert out["scale"].to_list() == pytest.approx([3.0, 3.0])
    assert out["kwh_meter"].to_list() == pytest.approx([0.3, 0.3])
    assert out["scalable"].all()


def test_unscalable_when_actual_slots_exceed_the_register() -> None:
    v: list[float | None] = [0.2] * 96
    v[10] = None
    out = run([curve(v)], deltas=delta(10.0))  # 95 x 0.2 = 19 > 10
    assert out["scale"].to_list() == [None]
    assert out["kwh_meter"].to_list() == pytest.approx([0.2])  # unscaled estimate kept
    assert out["scalable"].to_list() == [False]


def test_whole_day_missing_from_like_days_then_scaled() -> None:
    likes = [curve([1.0] * 96, date=d) for d in est.like_dates(DAY, like_days=3, window_days=35)]
    out = run([curve([None] * 96)], deltas=delta(48.0), like=frame(likes))
    # like day gives 96 x 1.0 = 96; register says 48 -> scale 0.5
    assert out.height == 96
    assert out["kwh_meter"].to_list() == pytest.approx([0.5] * 96)


def test_day_types_and_holidays() -> None:
    assert est.day_type(dt.date(2026, 1, 14)) == "workday"
    assert est.day_type(dt.date(2026, 1, 17)) == "saturday"
    assert est.day_type(dt.date(2026, 1, 18)) == "sunday"
    assert est.day_type(dt.date(2026, 1, 1), holidays=[dt.date(2026, 1, 1)]) == "sunday"
    assert est.day_type(dt.date(2026, 1, 4), workdays=[dt.date(2026, 1, 4)]) == "workday"
    # a holiday is not a like day of a workday
    assert dt.date(2026, 1, 13) not in est.like_dates(DAY, like_days=3, window_days=35, holidays=[dt.date(2026, 1, 13)])


def test_edits_conform_to_the_table_and_apply_over_raw() -> None:
    v: list[float | None] = [1.0] * 96
    v[5] = None
    edits = run([curve(v)])
    INTERVAL_EDITS.conform(edits).collect()  # raises on a missing column
    validated = est.apply_edits(frame([curve(v)]), edits.lazy()).collect()
    assert validated["p6"].to_list() == [1.0]
    assert validated["edited_slots"].to_list() == [1]


# --- property ----------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    # strictly positive: estimates of zero cannot be scaled up (that day is reported instead)
    values=st.lists(st.floats(min_value=0.001, max_value=2).map(lambda x: round(x, 3)), min_size=96, max_size=96),
    holes=st.lists(st.integers(min_value=0, max_value=95), min_size=1, max_size=30),
    extra=st.floats(min_value=0, max_value=5),
)
def test_estimation_preserves_the_register_total(values, holes, extra) -> None:
    """With a register difference above the actual slots and every hole estimable (here
    from like days where interpolation cannot), the validated day sums to the register."""
    v = list(values)
    for h in holes:
        v[h] = None
    actual = sum(x for x in v if x is not None)
    register = actual + extra
    likes = [curve([0.1] * 96, date=d) for d in est.like_dates(DAY, like_days=3, window_days=35)]
    edits = est.estimate(frame([curve(v)]), delta(register), frame(likes), max_interpolation_slots=8)
    validated = est.apply_edits(frame([curve(v)]), edits).collect()
    total = validated.select(pl.sum_horizontal(SLOTS)).item()
    assert total == pytest.approx(register, abs=1e-6)


def test_a_like_day_estimate_no_longer_fills_an_outage() -> None:
    # slots 41..52 (10:00-13:00) empty: the meter was off supply from 10:00 to 13:00, and
    # the day's register is missing. Like days would put 1.0 kWh in each slot.
    v = [0.5] * 40 + [None] * 12 + [0.5] * 44
    likes = [curve([1.0] * 96, date=d) for d in est.like_dates(DAY, like_days=3, window_days=35)]
    outage = pl.LazyFrame(
        {"meter_id": ["m1"] * 12, "date": [DAY] * 12, "slot": list(range(41, 53))},
        schema={"meter_id": pl.String, "date": pl.Date, "slot": pl.Int16},
    )
    with_outage = est.estimate(
        frame([curve(v)]), delta(42.0), frame(likes), max_interpolation_slots=8, outage_slots=outage
    )
    out = with_outage.collect().sort("slot")
    assert out["slot"].to_list() == list(range(41, 53))
    assert set(out["method"]) == {"outage_zero"}
    assert out["kwh_meter"].to_list() == [0.0] * 12
    # without the outage the same gap is filled from the like days: 12 x 1.0 kWh invented
    filled = run([curve(v)], like=frame(likes))
    assert set(filled["method"]) == {"like_day"} and filled["kwh_meter"].sum() == pytest.approx(12.0)


def test_an_outage_slot_counts_as_zero_for_its_neighbours_interpolation() -> None:
    # slot 11 empty (a collection gap) next to slot 12, empty inside an outage: the gap is
    # interpolated between slot 10 (1.0) and the outage's zero
    v = [1.0] * 10 + [None, None] + [1.0] * 84
    outage = pl.LazyFrame(
        {"meter_id": ["m1"], "date": [DAY], "slot": [12]},
        schema={"meter_id": pl.String, "date": pl.Date, "slot": pl.Int16},
    )
    out = est.estimate(frame([curve(v)]), NO_DELTA, NO_LIKE, max_interpolation_slots=8, outage_slots=outage).collect()
    assert out.sort("slot").select("slot", "method", "kwh_meter").rows() == [
        (11, "linear_interpolation", 0.5),
        (12, "outage_zero", 0.0),
    ]


@pytest.mark.parametrize("with_likes", [False, True])
def test_rows_without_any_value_get_estimates_only_from_outages_or_like_days(with_likes: bool) -> None:
    # three meters without a curve (96 empty slots): m1 off supply over slots 1..4 (hours
    # 00:00-01:00), m2 and m3 with nothing; m4 with one empty slot between 1.0 and 3.0
    outage = pl.LazyFrame(
        {"meter_id": ["m1"] * 4, "date": [DAY] * 4, "slot": [1, 2, 3, 4]},
        schema={"meter_id": pl.String, "date": pl.Date, "slot": pl.Int16},
    )
    v: list[float | None] = [1.0] * 96
    v[20], v[21] = None, 3.0
    rows = [curve([None] * 96, meter=m) for m in ("m1", "m2", "m3")] + [curve(v, meter="m4")]
    likes = [curve([0.5] * 96, meter="m2", date=d) for d in est.like_dates(DAY, like_days=3, window_days=35)]
    out = est.estimate(
        frame(rows), NO_DELTA, frame(likes if with_likes else []), max_interpolation_slots=8, outage_slots=outage
    ).collect()
    by_meter = dict(out.group_by("meter_id").agg(pl.len()).rows())
    # m1: its 4 outage slots are zero; the rest stays unestimated (no neighbour holds a value)
    m1 = out.filter(pl.col("meter_id") == "m1").sort("slot")
    assert m1.filter(pl.col("method") == "outage_zero")["slot"].to_list() == [1, 2, 3, 4]
    assert m1.filter(pl.col("method") == "none").height == 92
    # m2: like days when there are some (96 slots of 0.5), else nothing; m3 never
    assert by_meter.get("m2", 0) == (96 if with_likes else 0)
    assert "m3" not in by_meter
    # m4: slot 21 between 1.0 and 3.0
    assert out.filter(pl.col("meter_id") == "m4").select("slot", "kwh_meter").rows() == [(21, 2.0)]
