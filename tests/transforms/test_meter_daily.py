"""meter_daily from registers (CONTRACT §1): differences, rollover, shared gaps, archive validity.

Expected values are worked out by hand in the comments, not copied from the code.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from meterlake.transforms import meter_daily as md

D1 = dt.date(2026, 1, 1)
SNAP = dt.date(2025, 12, 1)


def day(n: int) -> dt.date:
    return D1 + dt.timedelta(days=n - 1)


def archive(rows: list[dict], snapshot: dt.date = SNAP) -> pl.LazyFrame:
    base = {
        "snapshot_date": snapshot,
        "customer_id": "C1",
        "area_id": "A1",
        "feeder_id": "F1",
        "role": "customer",
        "customer_class": "resident",
        "tariff_id": "RES_TIER",
        "multiplier": 1.0,
        "register_max": 1_000_000.0,
        "prepay": 0,
    }
    return pl.DataFrame([base | r for r in rows]).lazy()


def readings(rows: list[tuple]) -> pl.LazyFrame:
    """(meter_id, day number, total[, sharp, peak, flat, valley, reverse, remaining])."""
    cols = ["total_kwh", "sharp_kwh", "peak_kwh", "flat_kwh", "valley_kwh", "reverse_kwh", "remaining_yuan"]
    out = []
    for r in rows:
        rec = {"meter_id": r[0], "freeze_date": day(r[1])}
        for c, v in zip(cols, list(r[2:]) + [None] * (len(cols) - len(r[2:])), strict=False):
            rec[c] = v
        out.append(rec)
    return pl.DataFrame(
        out, schema={"meter_id": pl.String, "freeze_date": pl.Date, **dict.fromkeys(cols, pl.Float64)}
    ).lazy()


NO_CURVES = pl.LazyFrame(
    schema={"meter_id": pl.String, "date": pl.Date, "curve_slots_read": pl.Int16, "curve_kwh_meter": pl.Float64}
)


def build(
    arch: pl.LazyFrame, regs: pl.LazyFrame, days: list[int], curves: pl.LazyFrame = NO_CURVES, gap: int = 31
) -> pl.DataFrame:
    svc = md.in_service(arch, [day(d) for d in days])
    rd = md.register_days(svc, regs, max_gap_days=gap)
    return md.meter_daily(rd, curves).collect().sort("meter_id", "date")


def pick(frame: pl.DataFrame, *cols: str) -> pl.DataFrame:
    return frame.select("meter_id", "date", *cols)


def test_actual_day_is_register_difference_times_multiplier() -> None:
    # (1234.56 - 1200.00) x 40 = 1382.4 kWh
    out = build(
        archive([{"meter_id": "m1", "multiplier": 40.0}]), readings([("m1", 1, 1200.00), ("m1", 2, 1234.56)]), [1]
    )
    assert out["quality"].to_list() == ["actual"]
    assert out["method"].to_list() == ["register"]
    assert out["kwh"][0] == pytest.approx(1382.4, abs=1e-9)
    assert out["register_read"].to_list() == [True]


def test_tou_reverse_and_remaining_yuan() -> None:
    regs = readings(
        [
            ("m1", 1, 100.0, 10.0, 30.0, 40.0, 20.0, 5.0, 80.0),
            ("m1", 2, 110.0, 11.0, 33.0, 44.0, 22.0, 5.5, 74.5),
        ]
    )
    out = build(archive([{"meter_id": "m1", "multiplier": 2.0}]), regs, [1])
    # deltas x 2: total 20, sharp 2, peak 6, flat 8, valley 4, reverse 1; balance frozen at D+1 00:00
    expected = pl.DataFrame(
        {
            "meter_id": ["m1"],
            "date": [day(1)],
            "kwh": [20.0],
            "kwh_sharp": [2.0],
            "kwh_peak": [6.0],
            "kwh_flat": [8.0],
            "kwh_valley": [4.0],
            "reverse_kwh": [1.0],
            "remaining_yuan": [74.5],
        }
    )
    assert_frame_equal(
        pick(out, "kwh", "kwh_sharp", "kwh_peak", "kwh_flat", "kwh_valley", "reverse_kwh", "remaining_yuan"),
        expected,
        abs_tol=1e-9,
    )


@pytest.mark.parametrize(
    ("before", "after", "quality", "method", "kwh"),
    [
        # 999 990 -> 15 on a 1 000 000 register: -999 975 + 1 000 000 = 25 (< half range)
        pytest.param(999_990.0, 15.0, "actual", "register_rollover", 25.0, id="rollover"),
        # 500 -> 400: -100 + 1 000 000 = 999 900, more than half the range: a fault
        pytest.param(500.0, 400.0, "missing", "none", None, id="register-down"),
        # exactly half: 600 000 -> 100 000 gives 500 000, not *less* than half: down
        pytest.param(600_000.0, 100_000.0, "missing", "none", None, id="half-range-is-down"),
        pytest.param(500.0, 500.0, "actual", "register", 0.0, id="no-consumption"),
        # a reading above the range (1 000 100 on a 1 000 000 register) -> 15: -1 000 085 +
        # 1 000 000 = -85, still negative, so no rollover: the register went down, no value
        pytest.param(1_000_100.0, 15.0, "missing", "none", None, id="above-range-is-down"),
    ],
)
def test_negative_difference_rollover_or_down(
    before: float, after: float, quality: str, method: str, kwh: float | None
) -> None:
    out = build(archive([{"meter_id": "m1"}]), readings([("m1", 1, before), ("m1", 2, after)]), [1])
    assert out["quality"].to_list() == [quality]
    assert out["method"].to_list() == [method]
    assert out["kwh"][0] == (pytest.approx(kwh) if kwh is not None else None)


def test_missing_reading_shares_the_difference_evenly_on_both_days() -> None:
    # reading of day 2 missing: 100 -> 130 over days 1 and 2, 15 each, estimated
    out = build(archive([{"meter_id": "m1"}]), readings([("m1", 1, 100.0), ("m1", 3, 130.0)]), [1, 2])
    expected = pl.DataFrame(
        {
            "meter_id": ["m1", "m1"],
            "date": [day(1), day(2)],
            "kwh": [15.0, 15.0],
            "quality": ["estimated", "estimated"],
            "method": ["share_even", "share_even"],
            "register_read": [True, False],
        }
    )
    assert_frame_equal(pick(out, "kwh", "quality", "method", "register_read"), expected)


def test_shared_gap_by_curve_when_every_day_is_complete() -> None:
    curves = pl.LazyFrame(
        {
            "meter_id": ["m1", "m1", "m1"],
            "date": [day(1), day(2), day(3)],
            "curve_slots_read": pl.Series([96, 96, 96], dtype=pl.Int16),
            "curve_kwh_meter": [10.0, 30.0, 20.0],
        }
    )
    # readings 1 and 4 exist: 1000 -> 1120 = 120 over days 1..3 with curves 10:30:20 -> 20, 60, 40
    out = build(archive([{"meter_id": "m1"}]), readings([("m1", 1, 1000.0), ("m1", 4, 1120.0)]), [1, 2, 3], curves)
    assert out["kwh"].to_list() == pytest.approx([20.0, 60.0, 40.0])
    assert out["method"].to_list() == ["share_by_curve"] * 3
    # the day's own curve figures: 96 slots, Σ x multiplier
    assert out["curve_kwh"].to_list() == pytest.approx([10.0, 30.0, 20.0])


def test_shared_gap_even_when_one_curve_is_incomplete() -> None:
    curves = pl.LazyFrame(
        {
            "meter_id": ["m1", "m1"],
            "date": [day(1), day(2)],
            "curve_slots_read": pl.Series([96, 95], dtype=pl.Int16),
            "curve_kwh_meter": [10.0, None],
        }
    )
    out = build(archive([{"meter_id": "m1"}]), readings([("m1", 1, 0.0), ("m1", 3, 50.0)]), [1, 2], curves)
    assert out["kwh"].to_list() == pytest.approx([25.0, 25.0])
    assert out["method"].to_list() == ["share_even"] * 2


def test_gap_longer_than_the_limit_is_missing() -> None:
    out = build(archive([{"meter_id": "m1"}]), readings([("m1", 1, 0.0), ("m1", 6, 50.0)]), [1, 2, 3], gap=4)
    assert out["quality"].to_list() == ["missing"] * 3
    assert out["kwh"].to_list() == [None] * 3


def test_no_next_reading_yet_is_missing() -> None:
    out = build(archive([{"meter_id": "m1"}]), readings([("m1", 1, 0.0)]), [1])
    assert out["quality"].to_list() == ["missing"]


def test_multiplier_of_each_day_applies_inside_a_gap() -> None:
    # snapshot 1: multiplier 10; snapshot on day 2: multiplier 20. Reading of day 2 missing:
    # 100 -> 104 meter side over 2 days = 2 + 2; day 1 x 10 = 20, day 2 x 20 = 40
    arch = pl.concat(
        [
            archive([{"meter_id": "m1", "multiplier": 10.0}]),
            archive([{"meter_id": "m1", "multiplier": 20.0}], snapshot=day(2)),
        ]
    )
    out = build(arch, readings([("m1", 1, 100.0), ("m1", 3, 104.0)]), [1, 2])
    assert out["kwh"].to_list() == pytest.approx([20.0, 40.0])
    assert out["multiplier"].to_list() == [10.0, 20.0]


def test_a_meter_absent_from_a_later_snapshot_leaves_service() -> None:
    arch = pl.concat(
        [archive([{"meter_id": "m1"}, {"meter_id": "m2"}]), archive([{"meter_id": "m1"}], snapshot=day(2))]
    )
    svc = md.in_service(arch, [day(1), day(2)]).collect().sort("date", "meter_id")
    assert svc.select("date", "meter_id").rows() == [(day(1), "m1"), (day(1), "m2"), (day(2), "m1")]
    # before the first snapshot nothing is in service
    assert md.in_service(arch, [dt.date(2025, 11, 30)]).collect().height == 0


def test_collection_daily_counts_area_and_feeder_direct_rows() -> None:
    arch = archive(
        [
            {"meter_id": "mst", "role": "area_master", "customer_id": None, "customer_class": None},
            {"meter_id": "c1"},
            {"meter_id": "c2"},
            {"meter_id": "c3"},
            {"meter_id": "head", "role": "feeder_head", "area_id": None, "customer_id": None, "customer_class": None},
            {"meter_id": "big", "area_id": None, "customer_class": "industrial"},
        ]
    )
    regs = readings([(m, 1, 0.0) for m in ("mst", "c1", "c2", "head")])
    svc = md.in_service(arch, [day(1)])
    rd = md.register_days(svc, regs, max_gap_days=31)
    slots = pl.LazyFrame(
        {
            "meter_id": ["mst", "c1", "c2"],
            "date": [day(1)] * 3,
            "curve_slots_read": pl.Series([96, 96, 90], dtype=pl.Int16),
        }
    )
    out = md.collection_daily(rd, slots, target_rate=0.98).collect().sort("scope")
    # area A1: 4 meters, 3 read (0.75), 2 complete curves, 282 slots of 384
    # feeder F1 direct: head + big, 1 read (0.5), no curves
    expected = pl.DataFrame(
        {
            "scope": ["area", "feeder_direct"],
            "area_id": ["A1", None],
            "feeder_id": ["F1", "F1"],
            "meters_total": pl.Series([4, 2], dtype=pl.Int32),
            "meters_read": pl.Series([3, 1], dtype=pl.Int32),
            "success_rate": [0.75, 0.5],
            "curves_complete": pl.Series([2, 0], dtype=pl.Int32),
            "curve_slot_rate": [282 / 384, 0.0],
            "below_target": [True, True],
        }
    )
    assert_frame_equal(out.select(expected.columns), expected)
    # c3 (unread) was off supply at 00:00, when registers freeze; big (unread) was not
    off = pl.LazyFrame({"meter_id": ["c3", "c1", "big"], "date": [day(1)] * 3, "off_at_midnight": [True, True, False]})
    with_outages = md.collection_daily(rd, slots, target_rate=0.98, outages=off).collect().sort("scope")
    assert with_outages["meters_unread_no_power"].to_list() == [1, 0]  # c1 was read: not counted


# --- properties ------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(
        st.floats(min_value=0, max_value=500, allow_nan=False).map(lambda x: round(x, 2)), min_size=3, max_size=20
    ),
    present=st.lists(st.booleans(), min_size=20, max_size=20),
    mult=st.sampled_from([1.0, 30.0, 80.0]),
    start=st.floats(min_value=0, max_value=999_000).map(lambda x: round(x, 2)),
)
def test_shared_days_add_up_to_the_register_difference(steps, present, mult, start) -> None:
    """Whatever readings are missing, the days between the first and last reading add up
    to (last - first) x multiplier (with rollover at 1 000 000): CONTRACT §1."""
    n = len(steps)
    totals, value = [], start
    for s in [0.0, *steps]:
        value = (value + s) % 1_000_000
        totals.append(round(value, 2))
    keep = [True] + [present[i] for i in range(n - 1)] + [True]  # first and last always arrive
    regs = readings([("m1", i + 1, totals[i]) for i in range(n + 1) if keep[i]])
    out = build(archive([{"meter_id": "m1", "multiplier": mult}]), regs, list(range(1, n + 1)))
    assert out["quality"].is_in(["actual", "estimated"]).all()
    assert out["kwh"].sum() == pytest.approx(sum(steps) * mult, abs=0.01)


def test_register_days_among_readings_of_many_other_dates() -> None:
    """Readings of dates around the one served (as the validate stage reads them): m1 has
    its readings of day 5 and day 6 (actual, 210 - 200 = 10), m2 lacks day 5's and shares
    day 2 -> day 7 (150 -> 200: 50 over 5 days, 10 a day); m3 has only readings of other
    dates (day 1 and day 9, a gap of 8 days: shared, 80 / 8 = 10 a day)."""
    regs = readings(
        [
            ("m1", 1, 150.0),
            ("m1", 4, 190.0),
            ("m1", 5, 200.0),
            ("m1", 6, 210.0),
            ("m1", 8, 230.0),
            ("m2", 2, 150.0),
            ("m2", 7, 200.0),
            ("m3", 1, 100.0),
            ("m3", 9, 180.0),
        ]
    )
    out = build(archive([{"meter_id": "m1"}, {"meter_id": "m2"}, {"meter_id": "m3"}]), regs, [5])
    expected = pl.DataFrame(
        {
            "meter_id": ["m1", "m2", "m3"],
            "date": [day(5)] * 3,
            "kwh": [10.0, 10.0, 10.0],
            "quality": ["actual", "estimated", "estimated"],
            "register_read": [True, False, False],
        }
    )
    assert_frame_equal(pick(out, "kwh", "quality", "register_read"), expected)
    svc = md.in_service(archive([{"meter_id": "m2"}]), [day(5)])
    pair = md.register_days(svc, regs, max_gap_days=31).collect()
    assert pair.select("reading_from", "reading_to", "gap_days").row(0) == (day(2), day(7), 5)


def test_exact_sum_of_a_group_does_not_depend_on_the_other_groups() -> None:
    # 4.0 + 0.5649 = 4564900000e-9 kWh: the same float alone or beside another group
    # (polars divides two rows or more by a constant through its reciprocal, one row not)
    one = pl.DataFrame({"g": [0, 0], "v": [4.0, 0.5649]})
    two = pl.DataFrame({"g": [0, 0, 1, 1], "v": [4.0, 0.5649, 1.0, 2.0]})
    alone = one.group_by("g").agg(md.exact_sum(pl.col("v")))["v"][0]
    beside = two.group_by("g").agg(md.exact_sum(pl.col("v"))).filter(pl.col("g") == 0)["v"][0]
    over = two.with_columns(md.exact_sum(pl.col("v")).over("g").alias("s"))["s"][0]
    assert alone == beside == over == 4564900000 * 1e-9


def test_lacking_days_and_pairs_from_the_rows_joined_once() -> None:
    """Day 5: m1 has readings of days 5 and 6 (paired at once); m2 has a row of day 5
    without a total and one of day 6 (read both days: not lacking, so it sees those two
    rows alone, not day 4's, and has no pair at all); m3 has day 5's reading only
    (lacking: no row of day 6; its window finds day 8's, shared 5 -> 8); m4 none of
    either (lacking, nothing found). The rows joined once give what the two joins of each
    give."""
    regs = readings(
        [
            ("m1", 5, 200.0),
            ("m1", 6, 210.0),
            ("m2", 4, 140.0),
            ("m2", 5, None),
            ("m2", 6, 160.0),
            ("m3", 5, 100.0),
            ("m3", 8, 130.0),
        ]
    ).collect()
    svc = md.in_service(archive([{"meter_id": m} for m in ("m1", "m2", "m3", "m4")]), [day(5)]).collect()
    core = regs.filter(pl.col("freeze_date").is_in([day(5), day(6)]))
    joined = md.next_day_rows(svc, core)
    lacking = md.lacking_days(svc, core, joined)
    assert sorted(lacking["meter_id"].to_list()) == ["m3", "m4"]
    assert_frame_equal(lacking, md.lacking_days(svc, core), check_row_order=False)
    around = regs.filter(~pl.col("freeze_date").is_in([day(5), day(6)]))
    once = md.window_pairs(svc, core, around, max_gap_days=31, lacking=lacking, joined=joined)
    twice = md.window_pairs(svc, core, around, max_gap_days=31)
    assert_frame_equal(once.collect().sort("meter_id"), twice.collect().sort("meter_id"))
    days = md.finish_days(once, max_gap_days=31).collect().sort("meter_id")
    assert days.select("meter_id", "day_status", "reading_from", "reading_to").rows() == [
        ("m1", "actual", day(5), day(6)),
        ("m2", "no_previous_reading", None, None),
        ("m3", "shared", day(5), day(8)),
        ("m4", "no_previous_reading", None, None),
    ]
