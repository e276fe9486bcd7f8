"""Every VEE rule: one case where it fires and one where it stays quiet, on a hand-made day.

The base day is clean: one resident meter, a curve of 96 slots around 0.1 kWh adding up
to 9.883 kWh that matches its register difference, four weeks of history of 9.883 kWh a
day, no events. Each case changes one thing.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from meterlake.schemas.curves import SLOTS
from meterlake.schemas.vee_findings import RULES, VEE_FINDINGS
from meterlake.transforms import meter_daily as md
from meterlake.transforms.vee import DEFAULT_SEVERITY, VeeConfig, validate_day

DAY = dt.date(2026, 1, 14)  # a Wednesday
NEXT = DAY + dt.timedelta(days=1)
SNAP = dt.date(2025, 12, 1)
CFG = VeeConfig()
#: 0.100, 0.101, ... 0.106, 0.100, ...: no two neighbours equal (no flat line)
BASE = [round(0.1 + 0.001 * (i % 7), 3) for i in range(96)]
TOTAL = 9.883  # 96 x 0.1 + 0.001 x (13 x 21 + 10)
assert abs(sum(BASE) - TOTAL) < 1e-9


@dataclass
class Scenario:
    meters: dict[str, dict] = field(default_factory=lambda: {"m1": {}})
    curves: dict[str, list[float | None]] = field(default_factory=lambda: {"m1": list(BASE)})
    delivered: dt.datetime = dt.datetime(2026, 1, 15, 2, 0)
    #: meter -> (reading frozen on DAY, reading frozen on NEXT); a None reading is absent
    readings: dict[str, tuple[dict | None, dict | None]] = field(
        default_factory=lambda: {"m1": ({"total_kwh": 1000.0}, {"total_kwh": 1000.0 + TOTAL})}
    )
    reading_delivered: dt.datetime = dt.datetime(2026, 1, 14, 1, 0)
    history_kwh: float = TOTAL
    history_reverse: float = 0.0
    history_days: int = 28
    events: list[tuple[str, dt.datetime, str]] = field(default_factory=list)
    before_multiplier: dict[str, float] = field(default_factory=dict)
    archive: bool = True


def _archive(s: Scenario) -> pl.LazyFrame:
    base = {
        "snapshot_date": SNAP,
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
    rows = [base | {"meter_id": m} | kw for m, kw in s.meters.items()] if s.archive else []
    return pl.DataFrame(
        rows,
        schema={
            k: pl.Float64
            if k in ("multiplier", "register_max")
            else (pl.Date if k == "snapshot_date" else (pl.Int64 if k == "prepay" else pl.String))
            for k in [*base, "meter_id"]
        },
    ).lazy()


REG_COLS = ["total_kwh", "sharp_kwh", "peak_kwh", "flat_kwh", "valley_kwh", "reverse_kwh", "remaining_yuan"]


def _readings(s: Scenario) -> pl.DataFrame:
    rows = []
    for m, pair in s.readings.items():
        for d, r in zip((DAY, NEXT), pair, strict=False):
            if r is not None:
                rows.append(
                    {
                        "meter_id": m,
                        "freeze_date": d,
                        **{c: r.get(c) for c in REG_COLS},
                        "delivered_at": s.reading_delivered,
                    }
                )
    schema: dict[str, Any] = {
        "meter_id": pl.String,
        "freeze_date": pl.Date,
        **dict.fromkeys(REG_COLS, pl.Float64),
        "delivered_at": pl.Datetime("us"),
    }
    return pl.DataFrame(rows, schema=schema)


def _curves(s: Scenario) -> pl.LazyFrame:
    rows = [
        {"meter_id": m, "data_date": DAY, **dict(zip(SLOTS, v, strict=False)), "delivered_at": s.delivered}
        for m, v in s.curves.items()
    ]
    schema: dict[str, Any] = {
        "meter_id": pl.String,
        "data_date": pl.Date,
        **dict.fromkeys(SLOTS, pl.Float64),
        "delivered_at": pl.Datetime("us"),
    }
    return pl.DataFrame(rows, schema=schema).lazy()


def run(s: Scenario, cfg: VeeConfig = CFG):
    arch = _archive(s)
    svc = md.in_service(arch, [DAY])
    regs = _readings(s)
    days = md.register_days(svc, regs.lazy(), max_gap_days=cfg.registers.max_gap_days).collect()
    history = pl.DataFrame(
        [
            {
                "meter_id": m,
                "date": DAY - dt.timedelta(days=k),
                "kwh": s.history_kwh,
                "reverse_kwh": s.history_reverse,
                "quality": "actual",
            }
            for m in s.meters
            for k in range(1, s.history_days + 1)
        ],
        schema={
            "meter_id": pl.String,
            "date": pl.Date,
            "kwh": pl.Float64,
            "reverse_kwh": pl.Float64,
            "quality": pl.String,
        },
    )
    events = pl.DataFrame(
        [{"meter_id": m, "event_time": t, "event_code": c} for m, t, c in s.events],
        schema={"meter_id": pl.String, "event_time": pl.Datetime("us"), "event_code": pl.String},
    )
    before = pl.DataFrame(
        [
            {"meter_id": m, "multiplier": s.before_multiplier.get(m, s.meters[m].get("multiplier", 1.0))}
            for m in s.meters
        ],
        schema={"meter_id": pl.String, "multiplier": pl.Float64},
    )
    like = pl.LazyFrame(schema=_curves(s).collect_schema())
    return validate_day(
        DAY,
        days=days,
        curves=_curves(s),
        readings=regs.lazy(),
        like_curves=like,
        events=events.lazy(),
        history=history.lazy(),
        before=before.lazy(),
        cfg=cfg,
    )


def rules_of(result) -> list[str]:
    return sorted(result.findings["rule"].to_list())


def only(result, rule: str) -> dict:
    rows = result.findings.filter(pl.col("rule") == rule)
    assert rows.height == 1, result.findings
    return rows.row(0, named=True)


def test_clean_day_has_no_findings_and_no_edits() -> None:
    out = run(Scenario())
    assert out.findings.height == 0, out.findings
    assert out.edits.height == 0
    assert out.curve_days.select("curve_slots_read", "curve_kwh_meter").rows() == [(96, pytest.approx(TOTAL))]


# --- each rule: (change that makes it fire, change that keeps it quiet) -------------------

Mod = Callable[[Scenario], None]


def _set_curve(values: Sequence[float | None], meter: str = "m1") -> Mod:
    def mod(s: Scenario) -> None:
        s.curves[meter] = list(values)
        total = sum(v for v in values if v is not None and v >= 0)
        s.readings[meter] = ({"total_kwh": 1000.0}, {"total_kwh": round(1000.0 + total, 6)})

    return mod


def _runs(value: float, start: int, length: int, base: float = 0.1) -> list[float]:
    v = [base + 0.001 * (i % 7) for i in range(96)]  # varied base: no accidental flat line
    for i in range(start, start + length):
        v[i] = value
    return v


def _with(**kw) -> Mod:
    def mod(s: Scenario) -> None:
        for k, v in kw.items():
            setattr(s, k, v)

    return mod


def _meter(**kw) -> Mod:
    def mod(s: Scenario) -> None:
        s.meters["m1"] = s.meters["m1"] | kw

    return mod


def _reading(today: dict | None, nxt: dict | None) -> Mod:
    def mod(s: Scenario) -> None:
        s.readings["m1"] = (today, nxt)

    return mod


def _drop_curve(meter: str) -> Mod:
    def mod(s: Scenario) -> None:
        s.curves.pop(meter)

    return mod


def _two(*mods: Mod) -> Mod:
    def mod(s: Scenario) -> None:
        for m in mods:
            m(s)

    return mod


def _area_of(n_read: int) -> Mod:
    """An area of m1, a master and 3 more customers, of which n_read (m1 first) have a reading."""

    def mod(s: Scenario) -> None:
        for i, m in enumerate(["mst", "c2", "c3", "c4"]):
            s.meters[m] = {"role": "area_master", "customer_class": None, "customer_id": None} if m == "mst" else {}
            s.curves[m] = list(BASE)
            s.readings[m] = (
                ({"total_kwh": 1000.0}, {"total_kwh": 1000.0 + TOTAL})
                if i < n_read - 1
                else (None, {"total_kwh": 1000.0 + TOTAL})
            )

    return mod


TOU_OK = {"total_kwh": 1000.0, "sharp_kwh": 100.0, "peak_kwh": 300.0, "flat_kwh": 400.0, "valley_kwh": 200.0}
TOU_BAD = TOU_OK | {"valley_kwh": 210.0}

CASES: dict[str, tuple[Mod, Mod]] = {
    "vee.structure.future_interval": (
        # delivered at 12:00 of the day: slots 49..96 had not ended
        _with(delivered=dt.datetime(2026, 1, 14, 12, 0)),
        _with(delivered=dt.datetime(2026, 1, 15, 0, 0)),
    ),
    "vee.structure.future_register": (
        _with(reading_delivered=dt.datetime(2026, 1, 13, 23, 0)),
        _with(reading_delivered=dt.datetime(2026, 1, 14, 0, 0)),
    ),
    "vee.completeness.register_missing": (
        _reading(None, {"total_kwh": 1009.883}),
        _reading({"total_kwh": 1000.0}, None),  # the next day's reading missing is the next day's finding
    ),
    "vee.completeness.curve_missing": (
        _two(_area_of(5), _drop_curve("m1")),  # m1's curve absent, the others' there
        _set_curve([0.1] * 95 + [None]),
    ),
    "vee.completeness.curves_absent": (
        lambda s: s.curves.clear(),
        lambda s: None,  # the base day: its one meter's curve arrived
    ),
    "vee.completeness.curve_incomplete": (
        _set_curve([0.1] * 95 + [None]),
        _set_curve([0.1] * 96),
    ),
    "vee.completeness.collection_below_target": (
        _area_of(4),  # 4 of 5 meters read: 80 %
        _area_of(5),
    ),
    "vee.clock.fault": (
        _with(events=[("m1", dt.datetime(2026, 1, 14, 3, 0), "CLOCK_FAULT")]),
        _with(events=[("m1", dt.datetime(2026, 1, 14, 3, 0), "POWER_OFF")]),
    ),
    "vee.interval.negative": (
        _set_curve([0.1] * 40 + [-0.1] + [0.1] * 55),
        _set_curve([0.1] * 40 + [0.0] + [0.1] * 55),
    ),
    "vee.register.reverse_no_generation": (
        _reading({"total_kwh": 1000.0, "reverse_kwh": 50.0}, {"total_kwh": 1009.883, "reverse_kwh": 52.0}),
        _two(
            _reading({"total_kwh": 1000.0, "reverse_kwh": 50.0}, {"total_kwh": 1009.883, "reverse_kwh": 52.0}),
            _with(history_reverse=3.0),  # a PV customer: exports every day
        ),
    ),
    "vee.register.down": (
        _reading({"total_kwh": 1000.0}, {"total_kwh": 900.0}),
        _reading({"total_kwh": 999_995.0}, {"total_kwh": 4.883}),  # a rollover, not down
    ),
    "vee.register.rollover": (
        _reading({"total_kwh": 999_995.0}, {"total_kwh": 4.883}),
        _reading({"total_kwh": 1000.0}, {"total_kwh": 1009.883}),
    ),
    "vee.register.runaway": (
        # a direct resident meter: 3 x 220 V x 60 A = 39.6 kW x 24 h = 950.4 kWh
        _reading({"total_kwh": 1000.0}, {"total_kwh": 1960.0}),
        _reading({"total_kwh": 1000.0}, {"total_kwh": 1940.0}),
    ),
    "vee.register.stopped": (
        _reading({"total_kwh": 1000.0}, {"total_kwh": 1000.0}),  # curve says 9.883 kWh
        _two(_set_curve([0.0] * 96), _reading({"total_kwh": 1000.0}, {"total_kwh": 1000.0})),
    ),
    "vee.archive.multiplier_changed": (
        _two(_meter(multiplier=80.0), _with(before_multiplier={"m1": 40.0})),
        _meter(multiplier=80.0),
    ),
    "vee.archive.multiplier_nonstandard": (
        _meter(multiplier=33.0),
        _meter(multiplier=6000.0),  # 300/5 A x 10 kV/100 V
    ),
    "vee.interval.zero_run": (
        _set_curve(_runs(0.0, 10, 48)),
        _set_curve(_runs(0.0, 10, 47)),
    ),
    "vee.interval.flat_line": (
        _set_curve(_runs(0.25, 30, 16)),
        _set_curve(_runs(0.25, 30, 15)),
    ),
    "vee.interval.spike": (
        # highest 0.8 vs third-highest 0.11 (0.8, 0.11, 0.11, 0.1 ...): 0.8 > 5 x 0.11, >= 0.5 kWh
        _set_curve([0.1] * 50 + [0.8] + [0.1] * 43 + [0.11, 0.11]),
        # two high neighbours: the third-highest is 0.8 too
        _set_curve([0.1] * 50 + [0.8, 0.8, 0.8] + [0.1] * 43),
    ),
    "vee.usage.high": (
        # history mean 9.883; 3 x 9.883 = 29.649 < 30
        _reading({"total_kwh": 1000.0}, {"total_kwh": 1030.0}),
        _reading({"total_kwh": 1000.0}, {"total_kwh": 1028.0}),
    ),
    "vee.usage.low": (
        # 0.2 x 9.883 = 1.977: 1.5 is below, 2.0 is not
        _reading({"total_kwh": 1000.0}, {"total_kwh": 1001.5}),
        _reading({"total_kwh": 1000.0}, {"total_kwh": 1002.0}),
    ),
    "vee.sum.curve_register": (
        # register 12 vs curve 9.883; tolerance max(0.05, 1 % of the register)
        _reading({"total_kwh": 1000.0}, {"total_kwh": 1012.0}),
        _reading({"total_kwh": 1000.0}, {"total_kwh": 1009.9}),
    ),
    "vee.sum.tou_total": (
        _reading(TOU_BAD, {"total_kwh": 1009.883}),
        # one register rolled over and the others not yet: equal modulo register_max
        _reading(TOU_OK | {"total_kwh": 1000.0, "peak_kwh": 1_000_300.0}, {"total_kwh": 1009.883}),
    ),
    "vee.interval.capacity": (
        # 12 kWh in 15 min = 48 kW > 39.6 kW x 1.2 = 47.52 kW (a direct resident meter)
        _set_curve([0.1] * 60 + [12.0, 12.0, 12.0] + [0.1] * 33),
        _set_curve([0.1] * 60 + [11.8, 11.8, 11.8] + [0.1] * 33),
    ),
    "vee.estimate.unestimated": (
        _set_curve([0.1] * 40 + [None] * 9 + [0.1] * 47),  # 9 slots: no interpolation, no like day
        _set_curve([0.1] * 40 + [None] * 8 + [0.1] * 48),
    ),
    "vee.estimate.scale": (
        # 94 x 0.1 = 9.4 actual, 2 slots estimated at 0.1; register 9.6 + 2 = 11.6 -> scale 11
        _two(_set_curve([0.1] * 40 + [None] * 2 + [0.1] * 54), _reading({"total_kwh": 1000.0}, {"total_kwh": 1011.6})),
        _two(_set_curve([0.1] * 40 + [None] * 2 + [0.1] * 54), _reading({"total_kwh": 1000.0}, {"total_kwh": 1009.8})),
    ),
    "vee.estimate.capacity": (
        # as above but register +30: the 2 estimates become 15.1 kWh each = 60.4 kW > 47.52 kW
        _two(_set_curve([0.1] * 40 + [None] * 2 + [0.1] * 54), _reading({"total_kwh": 1000.0}, {"total_kwh": 1039.6})),
        _two(_set_curve([0.1] * 40 + [None] * 2 + [0.1] * 54), _reading({"total_kwh": 1000.0}, {"total_kwh": 1009.6})),
    ),
    "vee.structure.no_archive": (
        _with(archive=False),
        _with(archive=True),
    ),
}


def test_every_rule_has_a_case() -> None:
    assert set(CASES) == set(RULES)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_fires(rule: str) -> None:
    s = Scenario()
    CASES[rule][0](s)
    out = run(s)
    assert rule in rules_of(out), out.findings
    row = out.findings.filter(pl.col("rule") == rule).row(0, named=True)
    assert row["severity"] == DEFAULT_SEVERITY[rule]
    assert isinstance(json.loads(row["evidence"]), dict)
    assert row["date"] == DAY


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_stays_quiet(rule: str) -> None:
    s = Scenario()
    CASES[rule][1](s)
    out = run(s)
    assert rule not in rules_of(out), out.findings


# --- evidence and values, worked by hand -----------------------------------------------------


def test_spike_evidence_names_the_slot_and_the_numbers() -> None:
    s = Scenario()
    CASES["vee.interval.spike"][0](s)
    row = only(run(s), "vee.interval.spike")
    assert row["slot"] == 51
    assert row["value"] == pytest.approx(0.8)
    assert row["limit"] == pytest.approx(5 * 0.11)
    assert json.loads(row["evidence"])["third_highest_kwh_meter"] == pytest.approx(0.11)


def test_register_down_evidence_and_meter_clear() -> None:
    s = Scenario()
    CASES["vee.register.down"][0](s)
    s.events = [("m1", dt.datetime(2026, 1, 14, 9, 0), "METER_CLEAR")]
    row = only(run(s), "vee.register.down")
    ev = json.loads(row["evidence"])
    assert ev["total_kwh_from"] == 1000.0 and ev["total_kwh_to"] == 900.0
    assert ev["meter_clear_events"] == 1
    assert row["value"] == pytest.approx(-100.0)


def test_negative_slot_becomes_an_estimate_scaled_to_the_register() -> None:
    s = Scenario()
    CASES["vee.interval.negative"][0](s)
    out = run(s)
    # 95 actual x 0.1 = 9.5; register 9.5 (the negative does not count) -> estimate 0.1,
    # scaled by 0 / 0.1 = 0 to fit: the validated day is 9.5
    edit = out.edits.row(0, named=True)
    assert (edit["slot"], edit["raw_kwh_meter"], edit["reason"]) == (41, -0.1, "negative")
    assert edit["kwh_meter"] == pytest.approx(0.0)
    assert out.curve_days["curve_kwh_meter"].to_list() == [pytest.approx(9.5)]


def test_negative_finding_names_the_first_negative_slot_and_the_lowest_value() -> None:
    s = Scenario()
    _set_curve([0.1] * 40 + [-0.1] + [0.1] * 20 + [-0.3] + [0.1] * 34)(s)
    row = only(run(s), "vee.interval.negative")
    assert (row["slot"], row["value"]) == (41, pytest.approx(-0.3))
    assert json.loads(row["evidence"]) == {"negative_slots": 2, "min_kwh_meter": pytest.approx(-0.3)}


def test_future_interval_counts_the_slots() -> None:
    s = Scenario()
    CASES["vee.structure.future_interval"][0](s)
    row = only(run(s), "vee.structure.future_interval")
    assert (row["slot"], row["value"]) == (49, 48.0)


def test_collection_below_target_is_an_area_finding() -> None:
    s = Scenario()
    CASES["vee.completeness.collection_below_target"][0](s)
    out = run(s)
    row = only(out, "vee.completeness.collection_below_target")
    assert row["meter_id"] is None and row["area_id"] == "A1"
    assert row["value"] == pytest.approx(0.8)
    assert out.collection.select("meters_total", "meters_read").rows() == [(5, 4)]


def test_capacity_follows_the_meter_connection() -> None:
    from meterlake.transforms.vee import capacity_kw

    meters = pl.DataFrame(
        {
            "role": ["customer", "customer", "area_master", "feeder_head", "customer"],
            "customer_class": ["resident", "commercial", None, None, "industrial"],
            "area_id": ["A1", "A1", "A1", None, None],
            "multiplier": [1.0, 1.0, 80.0, 6000.0, 3000.0],
        }
    )
    # 3 x 220 V x 60 A; 3 x 220 V x 100 A; 3 x 220 V x 6 A x 80; 3 x 57.7 V x 6 A x 6000 (/2 for 3000)
    got = meters.select(capacity_kw(CFG).alias("kw"))["kw"].to_list()
    assert got == pytest.approx([39.6, 66.0, 316.8, 6240.0, 3120.0])


def test_a_curve_that_never_arrived_gets_no_edit_rows_without_estimates() -> None:
    s = Scenario()
    CASES["vee.completeness.curve_missing"][0](s)
    out = run(s)
    # curve_missing says it all: no 96 empty edit rows, no second finding
    assert out.edits.height == 0
    assert rules_of(out) == ["vee.completeness.curve_missing"]


def test_a_day_without_any_curve_is_one_finding_not_one_per_meter() -> None:
    s = Scenario()
    _area_of(5)(s)
    s.curves.clear()
    out = run(s)
    assert rules_of(out) == ["vee.completeness.curves_absent"]
    assert only(out, "vee.completeness.curves_absent")["value"] == 5.0
    assert out.edits.height == 0


def test_severity_is_configurable() -> None:
    cfg = VeeConfig(severity={"vee.sum.curve_register": "blocking"})
    s = Scenario()
    CASES["vee.sum.curve_register"][0](s)
    assert only(run(s, cfg), "vee.sum.curve_register")["severity"] == "blocking"
    with pytest.raises(ValueError, match="unknown rule"):
        VeeConfig(severity={"vee.no.such": "error"})


def test_findings_conform_to_the_table() -> None:
    s = Scenario()
    for rule in ("vee.interval.spike", "vee.register.runaway", "vee.clock.fault"):
        CASES[rule][0](s)
    out = run(s)
    assert_frame_equal(VEE_FINDINGS.conform(out.findings).collect(), out.findings)


def test_shipped_config_loads() -> None:
    from meterlake import config

    cfg = config.load("vee", VeeConfig)
    assert cfg.estimation.max_interpolation_slots == 8
    assert 6000.0 in cfg.multiplier.allowed()


# --- idempotence -----------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(
        st.one_of(st.none(), st.floats(min_value=-0.5, max_value=3).map(lambda x: round(x, 3))),
        min_size=96,
        max_size=96,
    ),
    delta=st.one_of(st.none(), st.floats(min_value=0, max_value=100).map(lambda x: round(x, 2))),
)
def test_vee_is_idempotent(values, delta) -> None:
    """The same inputs give the same findings, edits and curve figures, whatever they are."""
    s = Scenario()
    s.curves["m1"] = values
    s.readings["m1"] = ({"total_kwh": 1000.0}, None if delta is None else {"total_kwh": 1000.0 + delta})
    a, b = run(copy.deepcopy(s)), run(copy.deepcopy(s))
    sort = lambda f, k: f.sort(k, nulls_last=True)  # noqa: E731
    assert_frame_equal(sort(a.findings, ["rule", "meter_id"]), sort(b.findings, ["rule", "meter_id"]))
    assert_frame_equal(sort(a.edits, ["meter_id", "slot"]), sort(b.edits, ["meter_id", "slot"]))
    assert_frame_equal(a.curve_days, b.curve_days)


def test_interval_details_runs_stay_within_their_row() -> None:
    """Runs found in long form: a run at the end of one row and the start of the next is
    two short runs, not one long one; runs that end on slot 96 count; fewer than three
    valid slots have no third-highest."""
    from meterlake.transforms.vee import interval_details

    cfg = CFG.model_copy(
        update={"interval": CFG.interval.model_copy(update={"zero_run_slots": 4, "flat_line_slots": 5})}
    )
    # row a: BASE with zeros on slots 93..96 (a zero run of 4 ending the day) and 0.5 on
    # slots 10..14 (5 equal slots: a flat line from slot 10); its maximum is on slot 10
    a = list(BASE)
    a[92:96] = [0.0] * 4
    a[9:14] = [0.5] * 5
    # row b: zeros on slots 1..3 only (3 < 4: no zero run, even after row a's 4 zeros),
    # -0.2 on slot 50, the rest empty but slots 60 and 70 (0.3 and 0.3: one pair apart)
    b: list[float | None] = [None] * 96
    b[0:3] = [0.0] * 3
    b[49] = -0.2
    b[59], b[69] = 0.3, 0.3
    frame = pl.DataFrame(
        {"meter_id": ["a", "b"], "date": [DAY, DAY], **{s: [a[i], b[i]] for i, s in enumerate(SLOTS)}},
        schema_overrides=dict.fromkeys(SLOTS, pl.Float64),
    )
    out = interval_details(frame.lazy(), cfg, rows=frame.height).collect()  # the long form
    assert_frame_equal(out, interval_details(frame.lazy(), cfg).collect())  # the wide form
    assert out["meter_id"].to_list() == ["a", "b"]
    assert out["zero_run_slot"].to_list() == [93, None]
    assert out["flat_line_slot"].to_list() == [10, None]
    assert out["flat_line_kwh_meter"].to_list() == [0.5, None]
    assert out["first_negative_slot"].to_list() == [None, 50]
    assert out["max_slot"].to_list() == [10, 60]
    # a: 0.5 five times; b: valid slots 0, 0, 0, 0.3, 0.3 -> third-highest 0.0
    assert out["third_kwh_meter"].to_list() == [0.5, 0.0]
    assert out["first_future_slot"].to_list() == [None, None]  # no delivery time: every slot had ended


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.lists(st.sampled_from([None, 0.0, 0.0, 0.1, 0.25, -0.3, 1.5]), min_size=96, max_size=96).map(
            # stretches of one value: runs of zeros and flat lines
            lambda r: [r[(i // 7) * 7] if i % 3 else r[i] for i in range(96)]
        ),
        min_size=1,
        max_size=6,
    ),
    zero_run=st.integers(1, 97),
    flat=st.integers(1, 97),
    done=st.one_of(st.none(), st.integers(-200, 1700)),
)
def test_interval_details_long_and_wide_forms_agree(
    rows: list[list[float | None]], zero_run: int, flat: int, done: int | None
) -> None:
    from meterlake.transforms.vee import interval_details

    cfg = CFG.model_copy(
        update={"interval": CFG.interval.model_copy(update={"zero_run_slots": zero_run, "flat_line_slots": flat})}
    )
    frame = pl.DataFrame(
        {
            "meter_id": [f"m{i}" for i in range(len(rows))],
            "date": [DAY] * len(rows),
            **{s: [r[i] for r in rows] for i, s in enumerate(SLOTS)},
        },
        schema_overrides=dict.fromkeys(SLOTS, pl.Float64),
    )
    if done is not None:  # delivered `done` minutes after the day began
        frame = frame.with_columns(delivered_at=pl.lit(dt.datetime(2026, 1, 14)) + pl.duration(minutes=done))
    long = interval_details(frame.lazy(), cfg, rows=frame.height).collect()
    wide = interval_details(frame.lazy(), cfg).collect()
    assert_frame_equal(long, wide)


@given(
    rows=st.lists(
        st.lists(st.sampled_from([None, 0.0, 0.0, 0.1, 0.25, -0.3, 1.5]), min_size=96, max_size=96).map(
            # stretches of one value: runs of zeros and flat lines
            lambda r: [r[(i // 7) * 7] if i % 3 else r[i] for i in range(96)]
        ),
        min_size=1,
        max_size=6,
    ),
    zero_run=st.integers(1, 97),
    flat=st.integers(1, 97),
    done=st.one_of(st.none(), st.integers(-200, 1700)),
)
def test_the_peaks_of_rows_without_runs_are_their_details(
    rows: list[list[float | None]], zero_run: int, flat: int, done: int | None
) -> None:
    """Rows whose screen rules out runs, negative and future slots: the peaks alone are the
    whole details (the run columns empty in both); any row: the peaks' two columns agree."""
    from meterlake.transforms.vee import interval_details, interval_peaks, interval_screen, needs_runs

    cfg = CFG.model_copy(
        update={"interval": CFG.interval.model_copy(update={"zero_run_slots": zero_run, "flat_line_slots": flat})}
    )
    frame = pl.DataFrame(
        {
            "meter_id": [f"m{i}" for i in range(len(rows))],
            "date": [DAY] * len(rows),
            **{s: [r[i] for r in rows] for i, s in enumerate(SLOTS)},
        },
        schema_overrides=dict.fromkeys(SLOTS, pl.Float64),
    )
    if done is not None:
        frame = frame.with_columns(delivered_at=pl.lit(dt.datetime(2026, 1, 14)) + pl.duration(minutes=done))
    details = interval_details(frame.lazy(), cfg).collect()
    peaks = interval_peaks(frame.lazy()).collect()
    assert_frame_equal(peaks.select("max_slot", "third_kwh_meter"), details.select("max_slot", "third_kwh_meter"))
    runs = interval_screen(frame.lazy(), cfg).select(needs_runs(cfg)).collect().to_series()
    assert_frame_equal(peaks.filter(~runs), details.filter(~runs), check_dtypes=False)


def test_screen_in_ranges_counts_future_slots_whether_or_not_a_range_was_delivered_late() -> None:
    """Two rows a range: the first range delivered the next morning (no slot can be in
    the future), the second with a row delivered at 12:00 of its day (48 slots had ended,
    48 hold values from the future): the same screen as one pass."""
    from meterlake.transforms.vee import interval_screen, screen_in_ranges

    late, noon = dt.datetime.combine(NEXT, dt.time(6)), dt.datetime.combine(DAY, dt.time(12))
    rows = [("a", late), ("b", late), ("c", noon), ("d", late)]
    curves = pl.DataFrame(
        {
            "meter_id": [m for m, _ in rows],
            "data_date": [DAY] * len(rows),
            **{s: [BASE[i]] * len(rows) for i, s in enumerate(SLOTS)},
            "delivered_at": [w for _, w in rows],
        },
        schema_overrides={**dict.fromkeys(SLOTS, pl.Float64), "delivered_at": pl.Datetime("us")},
    )
    meters = pl.DataFrame(
        {"meter_id": ["a", "b", "c", "d"], "area_id": "A1", "role": "customer", "customer_class": "resident"}
    ).with_columns(pl.lit(1.0).alias("multiplier"))
    screen, _ = screen_in_ranges(curves.lazy(), DAY, CFG, meters, rows=2)
    one_pass = interval_screen(curves.rename({"data_date": "date"}).lazy(), CFG).collect()
    assert_frame_equal(screen, one_pass)
    assert screen["future_slots"].to_list() == [0, 0, 48, 0]


def test_screen_in_ranges_is_one_pass_and_keeps_the_flagged_rows() -> None:
    """Screened two rows at a time, with a row of another date in the middle of the file:
    the same screen as one pass over the date's rows, and only the rows with a negative
    slot, an empty slot or a zero run of 48 kept (in their order)."""
    from meterlake.transforms.vee import interval_screen, screen_in_ranges

    neg = list(BASE)
    neg[49] = -0.2
    gap: list[float | None] = list(BASE)
    gap[9] = None
    zero = [0.0] * 48 + BASE[48:]
    rows: list[tuple[str, dt.date, Sequence[float | None]]] = [
        ("clean", DAY, BASE),
        ("neg", DAY, neg),
        ("later", NEXT, neg),  # another date: not screened, not kept
        ("gap", DAY, gap),
        ("zero", DAY, zero),
        ("clean2", DAY, BASE),
    ]
    curves = pl.DataFrame(
        {
            "meter_id": [m for m, _, _ in rows],
            "data_date": [d for _, d, _ in rows],
            **{s: [v[i] for _, _, v in rows] for i, s in enumerate(SLOTS)},
        },
        schema_overrides=dict.fromkeys(SLOTS, pl.Float64),
    )
    meters = pl.DataFrame(
        {
            "meter_id": ["clean", "neg", "later", "gap", "zero", "clean2"],
            "area_id": "A1",
            "role": "customer",
            "customer_class": "resident",
            "multiplier": 1.0,
        }
    )
    screen, kept = screen_in_ranges(curves.lazy(), DAY, CFG, meters, rows=2)
    one_pass = interval_screen(curves.filter(pl.col("data_date") == DAY).rename({"data_date": "date"}).lazy(), CFG)
    assert_frame_equal(screen, one_pass.collect())
    assert screen["meter_id"].to_list() == ["clean", "neg", "gap", "zero", "clean2"]
    assert screen["slots_read"].to_list() == [96, 96, 95, 96, 96]
    assert screen["negative_slots"].to_list() == [0, 1, 0, 0, 0]
    assert screen["zero_slots"].to_list() == [0, 0, 0, 48, 0]
    assert kept["meter_id"].to_list() == ["neg", "gap", "zero"]
    assert kept.columns == ["meter_id", "date", *SLOTS]
    assert kept.row(0, named=True)["p50"] == -0.2 and kept.row(1, named=True)["p10"] is None


def _slot_frame(rows: list[list[float | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "meter_id": [f"m{i}" for i in range(len(rows))],
            "date": [DAY] * len(rows),
            **{s: [r[i] for r in rows] for i, s in enumerate(SLOTS)},
        },
        schema_overrides=dict.fromkeys(SLOTS, pl.Float64),
    )


def test_screen_frame_figures_by_hand() -> None:
    """Row 0: -1, 0, 0, 2, 2, 0.5 and 90 empty slots: 6 read, 5 valid (>= 0), 1 negative,
    Σ valid 0 + 0 + 2 + 2 + 0.5 = 4.5, highest 2, 2 zeros, 1 equal non-zero pair (2, 2;
    the two zeros do not count). Row 1: every slot empty: nothing read, no highest. Row 2: 96 slots of 0.25: all read and valid, Σ 24, 95 pairs."""
    from meterlake.transforms.vee import interval_screen, screen_frame

    frame = _slot_frame([[-1.0, 0.0, 0.0, 2.0, 2.0, 0.5] + [None] * 90, [None] * 96, [0.25] * 96])
    out = screen_frame(frame, CFG, ended=True)
    assert out["slots_read"].to_list() == [6, 0, 96]
    assert out["slots_valid"].to_list() == [5, 0, 96]
    assert out["negative_slots"].to_list() == [1, 0, 0]
    assert out["actual_kwh_meter"].to_list()[0] == 4.5 and out["actual_kwh_meter"].to_list()[2] == 24.0
    assert out["max_kwh_meter"].to_list() == [2.0, None, 0.25]
    assert out["zero_slots"].to_list() == [2, 0, 0]
    assert out["equal_pairs"].to_list() == [1, 0, 95]
    assert out["future_slots"].to_list() == [0, 0, 0]
    assert_frame_equal(out, interval_screen(frame.lazy(), CFG, ended=True).collect())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.lists(
            st.sampled_from([None, 0.0, 0.0, 0.1, 0.25, -0.3, 1.5, 1e-17, 7.123456789, float("inf")]),
            min_size=96,
            max_size=96,
        ).map(lambda r: [r[(i // 7) * 7] if i % 3 else r[i] for i in range(96)]),
        min_size=1,
        max_size=6,
    ),
    odd=st.sampled_from([None, float("nan"), -0.0]),
    done=st.one_of(st.none(), st.integers(-200, 1700)),
    ended=st.booleans(),
)
def test_screen_frame_is_the_screen(
    rows: list[list[float | None]], odd: float | None, done: int | None, ended: bool
) -> None:
    """The numpy screen gives interval_screen's frame, bit for bit, whatever the slots (a
    NaN or a -0.0 among them, or a delivery before the day ended, screened by polars)."""
    from meterlake.transforms.vee import interval_screen, screen_frame

    if odd is not None:
        rows = [[odd, *rows[0][1:]], *rows[1:]]
    frame = _slot_frame(rows)
    if done is not None:
        frame = frame.with_columns(delivered_at=pl.lit(dt.datetime(2026, 1, 14)) + pl.duration(minutes=done))
    assert_frame_equal(screen_frame(frame, CFG, ended=ended), interval_screen(frame.lazy(), CFG, ended=ended).collect())


def test_third_highest_by_hand() -> None:
    """The third-highest slot at least 0: 5, 1, 3, 2 -> 2 (5, 3, 2); 4, 4, 4, 1 -> 4 (equal
    values count each); -9, 7, 6 -> empty (two valid slots only); 0, inf, 1 -> 0."""
    from meterlake.transforms.vee import third_highest

    rows = [[5.0, 1.0, 3.0, 2.0], [4.0, 4.0, 4.0, 1.0], [-9.0, 7.0, 6.0], [0.0, float("inf"), 1.0]]
    frame = _slot_frame([r + [None] * (96 - len(r)) for r in rows])
    third = third_highest(frame)
    assert third is not None
    assert third.to_list() == [2.0, 4.0, None, 0.0]


def test_third_highest_leaves_nan_and_negative_zero_to_polars() -> None:
    """A NaN slot (polars orders it above every number) or a -0.0 (which zero comes third
    is the sort's choice): numpy does not say, and interval_peaks_frame sorts in polars."""
    from meterlake.transforms.vee import interval_peaks, interval_peaks_frame, third_highest

    for odd in (float("nan"), -0.0):
        frame = _slot_frame([[odd, 0.0, 2.0, 1.0] + [None] * 92])
        assert third_highest(frame) is None
        assert_frame_equal(interval_peaks_frame(frame), interval_peaks(frame.lazy()).collect())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.lists(st.sampled_from([None, 0.0, 0.1, 0.25, -0.3, 1.5, 3.0, 1e-17]), min_size=96, max_size=96),
        min_size=0,
        max_size=6,
    )
)
def test_interval_peaks_frame_is_interval_peaks(rows: list[list[float | None]]) -> None:
    from meterlake.transforms.vee import interval_peaks, interval_peaks_frame

    frame = _slot_frame(rows) if rows else _slot_frame([[0.0] * 96]).clear()
    for by in (["meter_id"], ["meter_id", "date"]):
        assert_frame_equal(interval_peaks_frame(frame, by=by), interval_peaks(frame.lazy(), by=by).collect())
