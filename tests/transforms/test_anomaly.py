"""Anomaly indicators and the explainable score, on small hand-made meter_daily frames.

Each indicator has a case that fires and one that does not; expected strengths are
worked out by hand from the ramps of the short test configuration below.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from meterlake.schemas._base import MissingColumnsError
from meterlake.schemas.anomalies import ANOMALIES, INDICATORS, POINTS_COLUMNS
from meterlake.schemas.loss_diagnosis import LOSS_DIAGNOSIS
from meterlake.schemas.meter_daily import METER_DAILY
from meterlake.transforms import anomaly as A

D0 = dt.date(2026, 3, 1)
#: short windows so that hand-made series stay readable
CFG = A.AnomalyConfig(
    window=A.WindowRules(history_days=10, min_before_days=3, min_after_days=2),
    peers=A.PeerRules(min_peers=3, min_peer_kwh=0.1),
    events=A.EventRules(lookback_days=10, before_days=3, min_after_days=2, alone=0.3),
    reverse=A.ReverseRules(moved_kwh=0.05, quiet_days=5, min_days=2),
)
LAST = D0 + dt.timedelta(days=9)  # detection date: day 10 of the series


def day(i: int) -> dt.date:
    return D0 + dt.timedelta(days=i)


def meter_days(
    meter_id: str,
    kwh: Sequence[float | None],
    *,
    area: str = "A1",
    cls: str = "resident",
    quality: str | list[str] = "actual",
    reverse: list[float] | None = None,
    tou: list[tuple[float, float, float, float]] | None = None,
    role: str = "customer",
) -> pl.DataFrame:
    """One meter's days from D0: kWh per day, TOU registers as shares of it."""
    n = len(kwh)
    q = [quality] * n if isinstance(quality, str) else quality
    shares = tou or [(0.0, 0.6, 0.0, 0.4)] * n
    cols = {
        "date": [day(i) for i in range(n)],
        "meter_id": [meter_id] * n,
        "customer_id": ["C" + meter_id] * n,
        "area_id": [area] * n,
        "feeder_id": ["F1"] * n,
        "role": [role] * n,
        "customer_class": [cls] * n,
        "kwh": kwh,
        "kwh_sharp": [None if k is None else k * s[0] for k, s in zip(kwh, shares, strict=True)],
        "kwh_peak": [None if k is None else k * s[1] for k, s in zip(kwh, shares, strict=True)],
        "kwh_flat": [None if k is None else k * s[2] for k, s in zip(kwh, shares, strict=True)],
        "kwh_valley": [None if k is None else k * s[3] for k, s in zip(kwh, shares, strict=True)],
        "reverse_kwh": reverse or [0.0] * n,
        "quality": q,
    }
    full = {c: cols.get(c, [None] * n) for c in METER_DAILY.names}
    return pl.DataFrame(full, schema=METER_DAILY.schema)


def peers(n: int = 3, days: int = 10, area: str = "A1") -> list[pl.DataFrame]:
    """Honest neighbours around 10 kWh/day (not constant: that would be a stuck meter)."""
    pattern = [10.0, 10.5, 9.5]
    return [meter_days(f"P{i}", [pattern[d % 3] for d in range(days)], area=area) for i in range(n)]


#: an honest meter's ten days (not constant: that would be a stuck meter)
HONEST = [10.0, 10.5, 9.5, 10.0, 10.5, 9.5, 10.0, 10.5, 9.5, 10.0]

NO_EVENTS = pl.DataFrame(schema=A.EVENT_COLUMNS)
NO_DIAGNOSIS = pl.DataFrame(schema=LOSS_DIAGNOSIS.schema)


def run_indicators(
    frames: list[pl.DataFrame],
    events: pl.DataFrame = NO_EVENTS,
    diagnosis: pl.DataFrame = NO_DIAGNOSIS,
    at: dt.date = LAST,
    cfg: A.AnomalyConfig = CFG,
) -> pl.DataFrame:
    md = pl.concat(frames)
    days = A.prepare_days(md, cfg)
    history = A.reverse_history(md, cfg)
    return A.indicators(days, events, diagnosis, history, at, cfg)


def strength(ind: pl.DataFrame, meter_id: str, key: str) -> float:
    return ind.filter(pl.col("meter_id") == meter_id)[f"s_{key}"].item()


# -- ramps and the change point -----------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "expected"),
    [pytest.param(0.1, 0.0, id="below"), pytest.param(0.4, 0.5, id="middle"), pytest.param(0.9, 1.0, id="above")],
)
def test_ramp(x: float, expected: float) -> None:
    ramp = A.Ramp(lo=0.2, hi=0.6)
    assert pl.select(ramp.expr(pl.lit(x))).item() == pytest.approx(expected)


def test_ramp_rejects_reversed_bounds() -> None:
    with pytest.raises(ValueError, match="expected hi > lo"):
        A.Ramp(lo=0.6, hi=0.2)


def test_change_point_finds_the_fall() -> None:
    # 10,10,10,10 then 2,2,2,2,2,2: the best split is after day 4; both segments are
    # constant, so the standard error is floored at 1% of 10 = 0.1: t = 8 / 0.1 = 80
    md = meter_days("M1", [10.0] * 4 + [2.0] * 6)
    days = A.prepare_days(md, CFG)
    cp = A.change_point(days.lazy(), "v", CFG).collect()
    expected = pl.DataFrame(
        {
            "meter_id": ["M1"],
            "cp_date": [day(4)],
            "before": [10.0],
            "after": [2.0],
            "t": [80.0],
            "days_before": [4],
            "days_after": [6],
            "fall": [0.8],
        }
    )
    assert_frame_equal(cp, expected, check_dtypes=False)


# -- consumption indicators -----------------------------------------------------------------


def test_drop_own_fires_on_a_sustained_fall() -> None:
    # fall 0.8 >= 0.6 and t 80 >= 8: full strength
    ind = run_indicators([meter_days("M1", [10.0] * 4 + [2.0] * 6)])
    assert strength(ind, "M1", "drop_own") == 1.0
    assert ind["d_drop_own"].item() == day(4)


def test_drop_own_quiet_on_noise() -> None:
    ind = run_indicators([meter_days("M1", [10.0, 11.0, 9.0, 10.0, 11.0, 9.0, 10.0, 11.0, 9.0, 10.0])])
    assert strength(ind, "M1", "drop_own") == 0.0


def test_drop_own_partial_strength() -> None:
    # 10 -> 6: fall 0.4, ramp (0.4 - 0.2) / 0.4 = 0.5; t = 4 / 0.1 = 40 -> 1
    ind = run_indicators([meter_days("M1", [10.0] * 4 + [6.0] * 6)])
    assert strength(ind, "M1", "drop_own") == pytest.approx(0.5)


def test_drop_peer_fires_when_only_the_meter_falls() -> None:
    frames = [*peers(3), meter_days("M1", [10.0] * 4 + [3.0] * 6)]
    ind = run_indicators(frames)
    # the peer median (3 peers at 10 and M1) stays 10: ratio 1.0 -> 0.3, fall 0.7
    assert strength(ind, "M1", "drop_peer") == 1.0
    assert strength(ind, "P0", "drop_peer") == 0.0


def test_drop_peer_quiet_when_the_peers_fall_too() -> None:
    # a holiday: everybody in the area halves on day 5; own history sees a fall of 0.5
    frames = [meter_days(f"P{i}", [10.0] * 4 + [5.0] * 6) for i in range(3)] + [
        meter_days("M1", [10.0] * 4 + [5.0] * 6)
    ]
    ind = run_indicators(frames)
    assert strength(ind, "M1", "drop_own") == pytest.approx(0.75)  # (0.5 - 0.2) / 0.4
    assert strength(ind, "M1", "drop_peer") == 0.0


def test_zero_fires_on_a_live_meter() -> None:
    # 4 days at 5 kWh then 6 zero days: ramp (6 - 2) / (7 - 2) = 0.8
    ind = run_indicators([meter_days("M1", [5.0] * 4 + [0.0] * 6)])
    assert strength(ind, "M1", "zero") == pytest.approx(0.8)
    assert ind["d_zero"].item() == day(4)
    assert json.loads(ind["ev_zero"].item()) == {"since": "2026-03-05", "days": 6, "before": 5.0}


def test_zero_quiet_on_a_vacant_dwelling() -> None:
    ind = run_indicators([meter_days("M1", [0.0] * 10)])
    assert strength(ind, "M1", "zero") == 0.0


def test_flat_fires_on_identical_actual_days() -> None:
    # 8 identical actual days at the end: ramp (8 - 4) / (10 - 4) = 2/3
    ind = run_indicators([meter_days("M1", [3.0, 5.0] + [4.2] * 8)])
    assert strength(ind, "M1", "flat") == pytest.approx(2 / 3, abs=1e-6)
    assert ind["d_flat"].item() == day(2)
    assert json.loads(ind["ev_flat"].item()) == {"value": 4.2, "days": 8}


def test_flat_quiet_on_varying_days() -> None:
    ind = run_indicators([meter_days("M1", HONEST)])
    assert strength(ind, "M1", "flat") == 0.0


def test_flat_quiet_on_estimated_days() -> None:
    # days between missing reads share the difference evenly: flat by construction
    ind = run_indicators([meter_days("M1", [3.0, 5.0] + [4.2] * 8, quality=["actual"] * 2 + ["estimated"] * 8)])
    assert strength(ind, "M1", "flat") == 0.0


def test_reverse_fires_without_pv() -> None:
    # reverse still for 6 days (>= quiet_days 5), then 3 kWh/day reverse against 1 forward:
    # share 12 / (12 + 4) = 0.75 -> ramp 1
    ind = run_indicators([meter_days("M1", [4.0] * 6 + [1.0] * 4, reverse=[0.0] * 6 + [3.0] * 4)])
    assert strength(ind, "M1", "reverse") == 1.0
    assert json.loads(ind["ev_reverse"].item())["share"] == 0.75


def test_reverse_quiet_on_pv() -> None:
    # exports from the first day and still imports every day: PV
    ind = run_indicators([meter_days("M1", [4.0] * 10, reverse=[30.0] * 10)])
    assert strength(ind, "M1", "reverse") == 0.0


def test_reverse_fires_on_pv_with_the_forward_register_stopped() -> None:
    # reverse from the first day (PV inferred), but 8 of its 10 reverse days have no
    # forward energy at all: 0.8 on the ramp 0.5 .. 0.9 = 0.75
    ind = run_indicators([meter_days("M1", [4.0] * 2 + [0.0] * 8, reverse=[3.0] * 10)])
    assert strength(ind, "M1", "reverse") == pytest.approx(0.75)
    assert json.loads(ind["ev_reverse"].item())["pv_inferred"] is True


def test_tou_fires_when_the_split_moves() -> None:
    # (0.1, 0.4, 0.3, 0.2) -> (0.1, 0.1, 0.3, 0.5): total variation 0.3 -> ramp 1
    tou = [(0.1, 0.4, 0.3, 0.2)] * 4 + [(0.1, 0.1, 0.3, 0.5)] * 6
    ind = run_indicators([meter_days("M1", [10.0] * 10, tou=tou)])
    assert strength(ind, "M1", "tou") == 1.0
    assert ind["d_tou"].item() == day(4)


def test_tou_quiet_when_the_split_holds() -> None:
    ind = run_indicators([meter_days("M1", [10.0] * 10, tou=[(0.1, 0.4, 0.3, 0.2)] * 10)])
    assert strength(ind, "M1", "tou") == 0.0


# -- events and the line-loss diagnosis ------------------------------------------------------


def events(*rows: tuple[str, dt.datetime, str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"meter_id": [r[0] for r in rows], "event_time": [r[1] for r in rows], "event_code": [r[2] for r in rows]},
        schema=A.EVENT_COLUMNS,
    )


@pytest.mark.parametrize(
    ("code", "key"),
    [
        pytest.param("COVER_OPEN", "event_cover", id="cover"),
        pytest.param("TERMINAL_COVER_OPEN", "event_cover", id="terminal-cover"),
        pytest.param("VOLTAGE_LOSS", "event_wiring", id="voltage-loss"),
        pytest.param("CURRENT_LOSS", "event_wiring", id="current-loss"),
        pytest.param("PHASE_FAILURE", "event_wiring", id="phase-failure"),
        pytest.param("MAGNETIC_INTERFERENCE", "event_magnetic", id="magnetic"),
        pytest.param("METER_CLEAR", "event_clear", id="meter-clear"),
    ],
)
def test_event_followed_by_a_fall_fires_fully(code: str, key: str) -> None:
    # event on day 5 (index 4); 3 days before at 10, days after at 4: fall 0.6 -> 1
    ev = events(("M1", dt.datetime.combine(day(4), dt.time(10)), code))
    ind = run_indicators([meter_days("M1", [10.0] * 5 + [4.0] * 5)], events=ev)
    assert strength(ind, "M1", key) == 1.0
    assert ind[f"d_{key}"].item() == day(4)


def test_event_without_a_fall_counts_alone() -> None:
    ev = events(("M1", dt.datetime.combine(day(4), dt.time(10)), "COVER_OPEN"))
    ind = run_indicators([meter_days("M1", [10.0] * 10)], events=ev)
    assert strength(ind, "M1", "event_cover") == pytest.approx(0.3)


def test_no_event_no_strength_and_other_codes_ignored() -> None:
    ev = events(("M1", dt.datetime.combine(day(4), dt.time(10)), "POWER_OFF"))
    ind = run_indicators([meter_days("M1", [10.0] * 5 + [4.0] * 5)], events=ev)
    for key in A.EVENT_FAMILIES:
        assert strength(ind, "M1", key) == 0.0


def test_event_outside_the_lookback_is_ignored() -> None:
    ev = events(("M1", dt.datetime(2026, 2, 1, 10), "COVER_OPEN"))
    ind = run_indicators([meter_days("M1", [10.0] * 10)], events=ev)
    assert strength(ind, "M1", "event_cover") == 0.0


def diagnosis(meter_id: str, kind: str, score: float, on: dt.date = LAST, other: str | None = None) -> pl.DataFrame:
    row: dict[str, list[Any]] = {c: [None] for c in LOSS_DIAGNOSIS.names}
    row.update(
        date=[on],
        window_start=[on - dt.timedelta(days=29)],
        area_id=["A1"],
        kind=[kind],
        rule=[f"loss.diagnosis.{kind}"],
        severity=["warning"],
        meter_id=[meter_id],
        customer_id=["C" + meter_id],
        role=["customer"],
        other_area_id=[other],
        score=[score],
        rank=[1],
        area_status=["high"],
        area_loss_rate=[0.14],
        days=[30],
        evidence=["{}"],
    )
    return pl.DataFrame(row, schema=LOSS_DIAGNOSIS.schema)


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        pytest.param("theft_candidate", "loss_theft", id="theft"),
        pytest.param("multiplier_suspect", "loss_multiplier", id="multiplier"),
        pytest.param("mapping_suspect", "loss_mapping", id="mapping"),
    ],
)
def test_loss_diagnosis_counts_on_its_date(kind: str, key: str) -> None:
    # score 0.55 on the ramp 0.3 .. 0.8: 0.5
    ind = run_indicators([meter_days("M1", [10.0] * 10)], diagnosis=diagnosis("M1", kind, 0.55))
    assert strength(ind, "M1", key) == pytest.approx(0.5)


def test_loss_diagnosis_of_another_date_or_weak_is_ignored() -> None:
    diag = pl.concat(
        [
            diagnosis("M1", "theft_candidate", 0.9, on=LAST - dt.timedelta(days=1)),
            diagnosis("M2", "theft_candidate", 0.2),
        ]
    )
    ind = run_indicators([meter_days("M1", [10.0] * 10), meter_days("M2", [10.0] * 10)], diagnosis=diag)
    assert strength(ind, "M1", "loss_theft") == 0.0
    assert strength(ind, "M2", "loss_theft") == 0.0


def balance_finding(meter_id: str, score: float, against: bool = False, **stats: float | None) -> pl.DataFrame:
    """A balance theft finding with the four statistics of its evidence (absent ones null)."""
    ev = {k: stats.get(k) for k in A.BALANCE_STATISTICS} | {"runs_against_the_loss": against}
    return diagnosis(meter_id, "theft_candidate", score).with_columns(
        rule=pl.lit(A.BALANCE_RULE), evidence=pl.lit(json.dumps(ev))
    )


SUMMED = CFG.model_copy(update={"loss": A.LossRules(balance_statistics="sum")})


@pytest.mark.parametrize(
    ("score", "against", "stats", "largest", "summed"),
    [
        # z = 3 (steady t) at min_t 4: 3 / 12 = 0.25; summed 3 + 1.5 (night; days negative,
        # no step) = 4.5: 4.5 / 12 = 0.375
        pytest.param(
            0.25, False, {"t_stat": 3.0, "night_t_stat": 1.5, "days_t_stat": -0.5}, 0.25, 0.375, id="steady-and-night"
        ),
        # a weak finding, a quarter of z / 12 with z = 2 (step): 0.041667; summed with the
        # steady t of 1: a quarter of 3 / 12 = 0.0625
        pytest.param(0.041667, False, {"t_stat": 1.0, "step_t_stat": 2.0}, 0.041667, 0.0625, id="weak"),
        # z = 10.8 (some days) and a step of 6: 16.8 / 12 is over 1
        pytest.param(0.9, False, {"days_t_stat": 10.8, "step_t_stat": 6.0}, 0.9, 1.0, id="capped"),
        # a curve running against the loss scores its own strength, not its positive t's
        pytest.param(0.4, True, {"t_stat": -8.0, "night_t_stat": 1.0}, 0.4, 0.4, id="against"),
        # no statistic above 0: the score as it is
        pytest.param(0.3, False, {"t_stat": -1.0}, 0.3, 0.3, id="none-positive"),
    ],
)
def test_balance_strength_sums_the_positive_statistics(
    score: float, against: bool, stats: dict[str, float], largest: float, summed: float
) -> None:
    diag = balance_finding("M1", score, against, **stats)
    frames = [meter_days("M1", [10.0] * 10)]
    assert strength(run_indicators(frames, diagnosis=diag), "M1", "balance") == pytest.approx(largest, abs=1e-6)
    assert strength(run_indicators(frames, diagnosis=diag, cfg=SUMMED), "M1", "balance") == pytest.approx(
        summed, abs=1e-6
    )


def test_master_meter_named_by_the_diagnosis_is_ranked() -> None:
    diag = diagnosis("MASTER", "multiplier_suspect", 0.8).with_columns(pl.lit(None, pl.String).alias("customer_id"))
    ind = run_indicators([meter_days("M1", HONEST)], diagnosis=diag)
    assert sorted(ind["meter_id"]) == ["M1", "MASTER"]
    out = A.score(ind, LAST, CFG)
    assert out.filter(pl.col("meter_id") == "MASTER")["loss_multiplier_points"].item() == 0.5


# -- the score ---------------------------------------------------------------------------------


def test_score_is_the_sum_of_points_with_reasons_strongest_first() -> None:
    ev = events(("M1", dt.datetime.combine(day(4), dt.time(10)), "COVER_OPEN"))
    frames = [*peers(3), meter_days("M1", [10.0] * 4 + [0.0] * 6)]
    ind = run_indicators(frames, events=ev)
    out = A.score(ind, LAST, CFG)
    m1 = out.filter(pl.col("meter_id") == "M1").row(0, named=True)
    # cover open then -100%: 1.0; drop own 1.0; drop peer 1.0; zero 6 days: 0.8
    assert m1["event_cover_points"] == 1.0
    assert m1["drop_own_points"] == 1.0
    assert m1["drop_peer_points"] == 1.0
    assert m1["zero_points"] == pytest.approx(0.8)
    assert m1["score"] == pytest.approx(3.8)
    assert m1["rank"] == 1
    assert m1["n_reasons"] == 4
    assert m1["top_rule"] == "anomaly.event.cover_open"  # ties keep the order of INDICATORS
    assert m1["first_suspicious_date"] == day(4)
    assert (
        m1["reasons"]
        .split("; ")[-1]
        .startswith("在运表零电量 anomaly.consumption.zero: 0 kWh for 6 days since 2026-03-05")
    )
    findings = json.loads(m1["findings"])
    assert [f["rule"] for f in findings] == [
        "anomaly.event.cover_open",
        "anomaly.consumption.drop_own",
        "anomaly.consumption.drop_peer",
        "anomaly.consumption.zero",
    ]
    assert sum(f["points"] for f in findings) == pytest.approx(m1["score"])
    assert findings[0]["evidence"]["code"] == "COVER_OPEN"
    # peers score nothing and are not written
    assert out["meter_id"].to_list() == ["M1"]
    assert out.columns == ANOMALIES.names


def test_model_probability_joins_as_a_reason() -> None:
    ind = run_indicators([meter_days("M1", HONEST), meter_days("M2", HONEST)])
    # M2's 0.05 is below supervised.min_p (0.1): no points, not written
    p = pl.DataFrame({"meter_id": ["M1", "M2"], "p": [0.83, 0.05]})
    out = A.score(ind, LAST, CFG, model_p=p)
    assert out["meter_id"].to_list() == ["M1"]
    row = out.row(0, named=True)
    assert row["model_points"] == pytest.approx(2.0 * 0.83)
    assert row["model_p"] == 0.83
    assert "inspection model p=0.83" in row["reasons"]


def test_reasons_follow_the_points_and_a_meter_without_points_has_none() -> None:
    # M1 falls from 5 kWh to zero on day 5: drop own 1.0 (a 100% fall), drop peer 1.0 (its
    # ratio to the area's median falls 100%: M2 keeps its level), zero 6 days 0.8, and a model
    # p of 0.9 x weight 2 = 1.8: the model's reason comes first though it comes last in
    # INDICATORS; the two drops tie and keep the order of INDICATORS; zero comes last.
    # M2 (honest) scores 0 and is written only with min_score below 0 (the config refuses
    # it; model_copy does not validate): no reason at all.
    cfg = CFG.model_copy(update={"output": CFG.output.model_copy(update={"min_score": -1.0})})
    ind = run_indicators([meter_days("M1", [5.0] * 4 + [0.0] * 6), meter_days("M2", HONEST)], cfg=cfg)
    p = pl.DataFrame({"meter_id": ["M1"], "p": [0.9]})
    out = A.score(ind, LAST, cfg, model_p=p)
    m1 = out.filter(pl.col("meter_id") == "M1").row(0, named=True)
    rules = [INDICATORS[k][0] for k in ("model", "drop_own", "drop_peer", "zero")]
    assert m1["n_reasons"] == 4
    assert m1["top_rule"] == rules[0]
    assert [r.split(" ")[1].rstrip(":") for r in m1["reasons"].split("; ")] == rules
    findings = json.loads(m1["findings"])
    assert [f["rule"] for f in findings] == rules
    assert [f["points"] for f in findings] == [pytest.approx(x) for x in (1.8, 1.0, 1.0, 0.8)]
    assert m1["first_suspicious_date"] == day(4)  # the fall and the zero run (the model points at LAST)
    m2 = out.filter(pl.col("meter_id") == "M2").row(0, named=True)
    assert (m2["score"], m2["reasons"], m2["n_reasons"], m2["findings"]) == (0.0, "", 0, "[]")
    assert m2["top_rule"] is None and m2["first_suspicious_date"] is None


def test_weights_come_from_config() -> None:
    cfg = CFG.model_copy(update={"weights": A.Weights(zero=3.0)})
    ind = run_indicators([meter_days("M1", [5.0] * 4 + [0.0] * 6)], cfg=cfg)
    out = A.score(ind, LAST, cfg)
    assert out["zero_points"].item() == pytest.approx(3.0 * 0.8)


def test_missing_columns_are_named() -> None:
    md = meter_days("M1", [1.0] * 10).drop("kwh_peak", "quality")
    with pytest.raises(MissingColumnsError, match="missing column\\(s\\) kwh_peak, quality"):
        A.prepare_days(md, CFG)


def test_negative_kwh_is_refused() -> None:
    with pytest.raises(A.AnomalyInputError, match="expected kwh >= 0"):
        A.prepare_days(meter_days("M1", [1.0] * 9 + [-1.0]), CFG)


def test_shipped_config_loads() -> None:
    from meterlake import config

    cfg = config.load("anomaly", A.AnomalyConfig)
    assert cfg.weights.model_dump().keys() == INDICATORS.keys()
    assert cfg.lookback_days >= cfg.window.history_days


# -- properties --------------------------------------------------------------------------------

kwh_series = st.lists(
    st.floats(min_value=0.0, max_value=50.0, allow_nan=False).map(lambda x: round(x, 2)), min_size=10, max_size=10
)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series=st.lists(kwh_series, min_size=2, max_size=5), seed=st.integers(0, 1000))
def test_score_decomposes_and_ignores_row_order(series: list[list[float]], seed: int) -> None:
    frames = [meter_days(f"M{i}", s, area="A1") for i, s in enumerate(series)]
    md = pl.concat(frames)
    ev = events(("M0", dt.datetime.combine(day(5), dt.time(3)), "MAGNETIC_INTERFERENCE"))

    def rank(frame: pl.DataFrame) -> pl.DataFrame:
        days = A.prepare_days(frame, CFG)
        return A.detect(days, ev, NO_DIAGNOSIS, A.reverse_history(frame, CFG), LAST, CFG)

    out = rank(md)
    shuffled = rank(md.sample(fraction=1.0, shuffle=True, seed=seed))
    assert_frame_equal(out, shuffled)
    total = out.select(pl.sum_horizontal(*POINTS_COLUMNS).round(6).alias("total"))["total"]
    assert (out["score"] - total).abs().max() in (None, 0.0)
    assert out["n_reasons"].to_list() == [sum(1 for c in POINTS_COLUMNS if r[c] > 0) for r in out.iter_rows(named=True)]
    assert out.filter(pl.col("score") <= 0).height == 0


def test_a_customer_off_supply_is_no_zero_or_drop_suspect_those_days() -> None:
    # 4 days at 5 kWh then 6 days at 0: a zero run (0.8) and a drop. The 6 days were an
    # outage (a feeder rebuilt): the days are left out, nothing fires.
    md = meter_days("M1", [5.0] * 4 + [0.0] * 6)
    days = A.prepare_days(md, CFG)
    off = pl.DataFrame({"meter_id": ["M1"] * 6, "date": [day(i) for i in range(4, 10)], "outage_min": [1440.0] * 6})
    kept = A.without_outage_days(days, off, min_outage_min=60)
    assert kept["date"].to_list() == [day(i) for i in range(4)]
    ind = A.indicators(kept, NO_EVENTS, NO_DIAGNOSIS, A.reverse_history(md, CFG), LAST, CFG)
    assert ind.filter(pl.col("meter_id") == "M1").height == 0 or strength(ind, "M1", "zero") == 0.0
    # a 30-minute blip does not hide a day
    short = off.with_columns(pl.lit(30.0).alias("outage_min"))
    assert A.without_outage_days(days, short, min_outage_min=60).height == 10


@pytest.mark.parametrize(
    ("pv_kw", "strength_"),
    [
        # the archive says no PV: reverse 30/day against 4 forward from the first day,
        # share 300 / (300 + 40) = 0.882 -> ramp 1 (inference alone would call it PV)
        pytest.param(0.0, 1.0, id="archive-says-no-pv-reversed-wiring-flagged"),
        # the archive says 5 kW of PV: exporting and importing every day is PV
        pytest.param(5.0, 0.0, id="archive-says-pv-quiet"),
    ],
)
def test_reverse_follows_the_archive_pv_flag_where_it_is_given(pv_kw: float, strength_: float) -> None:
    md = meter_days("M1", [4.0] * 10, reverse=[30.0] * 10).with_columns(pl.lit(pv_kw).alias("pv_capacity_kw"))
    days = A.prepare_days(md, CFG)
    history = A.reverse_history(md, CFG)
    ind = A.indicators(days, NO_EVENTS, NO_DIAGNOSIS, history, LAST, CFG)
    assert strength(ind, "M1", "reverse") == strength_
    assert history["no_pv"].item() is (pv_kw == 0.0)


# -- several detection dates at once ---------------------------------------------------------


def test_dates_computed_together_each_see_their_own_lookback() -> None:
    # M1: six days at 10 kWh, then zero from day 7 (index 6); a cover-open event on day 9
    # (index 8). At day 8 (index 7) the zero run is 2 days and the event is in the future;
    # at day 10 (index 9) the run is 4 days and the event 2 days back.
    md = pl.concat([meter_days("M1", [10.0] * 6 + [0.0] * 4), *peers()])
    days, history = A.prepare_days(md, CFG), A.reverse_history(md, CFG)
    ev = events(("M1", dt.datetime.combine(day(8), dt.time(10)), "COVER_OPEN"))
    both = A.indicators_at(days, ev, NO_DIAGNOSIS, history, [day(9), day(7)], CFG)
    assert list(both) == [day(7), day(9)]
    m1 = {d: f.filter(pl.col("meter_id") == "M1").row(0, named=True) for d, f in both.items()}
    assert (m1[day(7)]["f_zero_days"], m1[day(9)]["f_zero_days"]) == (2.0, 4.0)
    assert (m1[day(7)]["d_zero"], m1[day(9)]["d_zero"]) == (day(6), day(6))
    assert (m1[day(7)]["f_events"], m1[day(9)]["f_events"]) == (0.0, 1.0)
    assert m1[day(9)]["d_event_cover"] == day(8)
    assert "_detection_date" not in both[day(7)].columns


def test_dates_computed_together_equal_each_date_alone() -> None:
    md = pl.concat(
        [
            meter_days("M1", [10.0] * 5 + [4.0] * 5),
            meter_days("M2", [10.0] * 4 + [0.0] * 6),
            meter_days("M3", [4.0] * 10, reverse=[0.0] * 6 + [30.0] * 4),
            *peers(),
        ]
    )
    days, history = A.prepare_days(md, CFG), A.reverse_history(md, CFG)
    ev = events(("M1", dt.datetime.combine(day(4), dt.time(10)), "VOLTAGE_LOSS"))
    diag = pl.concat([diagnosis("M2", "theft_candidate", 0.8, on=day(8)), diagnosis("X9", "mapping_suspect", 0.5)])
    dates = [day(i) for i in range(3, 10)]
    together = A.indicators_at(days, ev, diag, history, dates, CFG)
    for d in dates:
        assert_frame_equal(together[d], A.indicators(days, ev, diag, history, d, CFG))
    # the master meter X9 named by the diagnosis only on LAST
    assert together[LAST].filter(pl.col("meter_id") == "X9").height == 1
    assert together[day(8)].filter(pl.col("meter_id") == "X9").height == 0


def test_indicators_come_out_in_meter_order_with_the_diagnosis_only_meters_among_them() -> None:
    # meters given out of order, and two meters only the diagnosis names (no meter days):
    # one date alone and two dates together list each date's meters in meter_id order
    md = pl.concat([meter_days("M3", [10.0] * 10), meter_days("M1", [10.0] * 10), *peers(2)])
    days, history = A.prepare_days(md, CFG), A.reverse_history(md, CFG)
    diag = pl.concat([diagnosis("M2", "mapping_suspect", 0.5), diagnosis("A0", "theft_candidate", 0.9)])
    order = ["A0", "M1", "M2", "M3", "P0", "P1"]
    alone = A.indicators_at(days, NO_EVENTS, diag, history, [LAST], CFG)
    assert alone[LAST]["meter_id"].to_list() == order
    together = A.indicators_at(days, NO_EVENTS, diag, history, [day(8), LAST], CFG)
    assert together[LAST]["meter_id"].to_list() == order
    assert together[day(8)]["meter_id"].to_list() == ["M1", "M3", "P0", "P1"]  # the diagnosis is of LAST


def test_days_out_of_meter_order_give_the_same_indicators() -> None:
    # the look-backs number the meters along meter_id when it is sorted, else by rank:
    # the rows of prepare_days shuffled give every figure unchanged
    md = pl.concat([meter_days("M2", [10.0] * 4 + [0.0] * 6), meter_days("M1", [10.0] * 5 + [4.0] * 5), *peers()])
    days, history = A.prepare_days(md, CFG), A.reverse_history(md, CFG)
    shuffled = days.sample(fraction=1.0, shuffle=True, seed=3)
    assert not shuffled["meter_id"].is_sorted()
    dates = [day(7), LAST]
    ordered = A.indicators_at(days, NO_EVENTS, NO_DIAGNOSIS, history, dates, CFG)
    mixed = A.indicators_at(shuffled, NO_EVENTS, NO_DIAGNOSIS, history, dates, CFG)
    for d in dates:
        assert_frame_equal(mixed[d], ordered[d])
    # M2: zero for the last 6 days at LAST (4 at day 7): zero ramp 2..7 days in the default config
    m2 = mixed[LAST].filter(pl.col("meter_id") == "M2")
    assert m2["f_zero_days"].item() == 6.0


def test_a_meters_names_are_those_of_its_last_day_in_the_lookback_past_days_before_it() -> None:
    # 20 days; the look-back is 13 days (CFG), so at day 20 (index 19) it starts at index 7:
    # the rows before it come first in prepare_days' order for every meter. M1 moves to
    # area A2 and customer C9 from index 15 on; P0..P2 stay in A1: the names of each meter
    # are its row at its last day in the look-back (index 19), not of a row before it
    at = day(19)
    moved = meter_days("M1", [10.0] * 20).with_columns(
        pl.when(pl.col("date") >= day(15)).then(pl.lit("A2")).otherwise(pl.col("area_id")).alias("area_id"),
        pl.when(pl.col("date") >= day(15)).then(pl.lit("C9")).otherwise(pl.col("customer_id")).alias("customer_id"),
    )
    md = pl.concat([moved, *peers(days=20)])
    days, history = A.prepare_days(md, CFG), A.reverse_history(md, CFG)
    ind = A.indicators_at(days, NO_EVENTS, NO_DIAGNOSIS, history, [at, day(12)], CFG)
    names = {r["meter_id"]: (r["customer_id"], r["area_id"]) for r in ind[at].iter_rows(named=True)}
    assert names == {"M1": ("C9", "A2"), "P0": ("CP0", "A1"), "P1": ("CP1", "A1"), "P2": ("CP2", "A1")}
    # at day 13 (index 12) M1's last day is before the move
    m1 = ind[day(12)].filter(pl.col("meter_id") == "M1")
    assert (m1["customer_id"].item(), m1["area_id"].item()) == ("CM1", "A1")


def test_an_event_of_a_meter_only_the_diagnosis_names_counts_alone() -> None:
    # X9 has no meter days (a master meter the diagnosis names) but a cover-open event on
    # day 9: no kWh to judge a fall by, so the event's strength is `alone` (0.3)
    md = pl.concat([meter_days("M1", HONEST), *peers()])
    days, history = A.prepare_days(md, CFG), A.reverse_history(md, CFG)
    ev = events(("X9", dt.datetime.combine(day(8), dt.time(10)), "COVER_OPEN"))
    ind = A.indicators_at(days, ev, diagnosis("X9", "mapping_suspect", 0.5), history, [LAST], CFG)[LAST]
    x9 = ind.filter(pl.col("meter_id") == "X9").row(0, named=True)
    assert x9["s_event_cover"] == pytest.approx(0.3)
    assert (x9["d_event_cover"], x9["f_events"]) == (day(8), 1.0)
    assert strength(ind, "M1", "event_cover") == 0.0


def test_date_batches_bound_the_lookback_rows() -> None:
    # 4 meters a day over 10 days; a look-back of 13 days (history 10, events 10 + 3 before)
    # holds 4, 8, 12 ... rows at days 1, 2, 3 ...
    md = pl.concat(peers(4))
    days = A.prepare_days(md, CFG)
    assert CFG.lookback_days == 13
    dates = [day(i) for i in range(5)]  # look-backs of 4, 8, 12, 16, 20 rows
    assert A.date_batches(days, dates, CFG, max_rows=24) == [[day(0), day(1), day(2)], [day(3)], [day(4)]]
    assert A.date_batches(days, dates, CFG, max_rows=10) == [[day(0)], [day(1)], [day(2)], [day(3)], [day(4)]]
    assert A.date_batches(days, dates[::-1], CFG, max_rows=1000) == [dates]


def test_dates_scored_together_rank_within_their_date() -> None:
    # M1 falls from 10 to zero from day 5 (index 4), M2 from day 7 (index 6): both drops
    # fire fully on both dates (1 point each for drop_own and drop_peer); the zero run
    # (ramp 2..7 days) gives M1 4 days = 0.4 and M2 2 days = 0.0 at day 8 (index 7),
    # 6 days = 0.8 and 4 days = 0.4 at day 10. Each date is ranked from 1.
    frames = [*peers(3), meter_days("M1", [10.0] * 4 + [0.0] * 6), meter_days("M2", [10.0] * 6 + [0.0] * 4)]
    md = pl.concat(frames)
    days, history = A.prepare_days(md, CFG), A.reverse_history(md, CFG)
    dates = [day(7), LAST]
    inds = A.indicators_at(days, NO_EVENTS, NO_DIAGNOSIS, history, dates, CFG)
    # a model probability on the last date only: M2's 0.5 adds 2 x 0.5 = 1 point there
    p = {LAST: pl.DataFrame({"meter_id": ["M2"], "p": [0.5]}), day(7): None}
    out = A.score_at(inds, CFG, p)
    cols = ("meter_id", "rank", "score", "date")
    assert out[day(7)].select(cols).rows() == [("M1", 1, 2.4, day(7)), ("M2", 2, 2.0, day(7))]
    assert out[LAST].select(cols).rows() == [("M1", 2, 2.8, LAST), ("M2", 1, 3.4, LAST)]
    for d in dates:
        assert_frame_equal(out[d], A.score(inds[d], d, CFG, p[d]))


def test_change_point_needs_both_segments() -> None:
    # min_before_days 3 + min_after_days 2: four values hold no split; five hold one, after
    # day 3 (10,10,10 | 2,2): both segments constant, t = 8 / (1% of 10 + 1e-9) ~ 80
    short = A.prepare_days(meter_days("M1", [10.0] * 3 + [2.0]), CFG)
    assert A.change_point(short.lazy(), "v", CFG).collect().height == 0
    five = A.prepare_days(meter_days("M1", [10.0] * 3 + [2.0] * 2), CFG)
    cp = A.change_point(five.lazy(), "v", CFG).collect()
    assert cp.select("cp_date", "days_before", "days_after").rows() == [(day(3), 3, 2)]
    assert cp["t"].item() == pytest.approx(80.0, abs=1e-5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["M1", "M2", "M3"]), st.booleans()), max_size=40))
def test_leading_run_counted_over_the_frame_equals_the_window_per_group(rows: list[tuple[int, str, bool]]) -> None:
    frame = pl.DataFrame(
        {A.KEYS[0]: [day(r[0]) for r in rows], "meter_id": [r[1] for r in rows], "flag": [r[2] for r in rows]},
        schema={A.KEYS[0]: pl.Date, "meter_id": pl.String, "flag": pl.Boolean},
    ).sort(A.KEYS, maintain_order=True)
    got = frame.select(A._leading(pl.col("flag")).alias("x"))["x"]
    want = frame.select(((~pl.col("flag")).cast(pl.Int32).cum_sum().over(A.KEYS) == 0).alias("x"))["x"]
    assert got.to_list() == want.to_list()


def test_leading_run_by_hand() -> None:
    # M1: T T F T -> leading run T T F F; M2: F T -> F F; M3: T -> T
    frame = pl.DataFrame(
        {
            A.KEYS[0]: [LAST] * 7,
            "meter_id": ["M1", "M1", "M1", "M1", "M2", "M2", "M3"],
            "flag": [True, True, False, True, False, True, True],
        }
    )
    got = frame.select(A._leading(pl.col("flag")))["flag"].to_list()
    assert got == [True, True, False, False, False, False, True]


def _peer_days() -> pl.DataFrame:
    """Two days of 9 customers: area A1 has 6 residents, A2 3 (too few: the class's median),
    one customer with a blank area and one missing day; a transformer meter is not a peer."""
    rows = []
    kwh = {"m1": 1.0, "m2": 2.0, "m3": 3.0, "m4": 4.0, "m5": 5.0, "m6": 6.0, "m7": 10.0, "m8": 20.0, "m9": 7.0}
    area = dict.fromkeys(("m1", "m2", "m3", "m4", "m5", "m6"), "A1") | {"m7": "A2", "m8": "A2", "m9": ""}
    for day, scale in ((dt.date(2026, 3, 1), 1.0), (dt.date(2026, 3, 2), 2.0)):
        for m, k in kwh.items():
            missing = m == "m6" and scale == 2.0
            rows.append(
                {
                    "date": day, "meter_id": m, "customer_id": "C" + m, "area_id": area[m], "feeder_id": "F1",
                    "role": "customer", "customer_class": "resident", "kwh": None if missing else k * scale,
                    "kwh_sharp": 0.0, "kwh_peak": 0.0, "kwh_flat": 0.0, "kwh_valley": 0.0, "reverse_kwh": 0.0,
                    "quality": "missing" if missing else "actual",
                }
            )  # fmt: skip
        rows.append(dict(rows[-1], meter_id="t1", role="transformer", kwh=1000.0, area_id="A1"))
    return pl.DataFrame(rows, schema=A.DAY_COLUMNS)


def test_peer_medians_as_a_table() -> None:
    """Hand-computed: day 1 A1 (1..6, 6 values) median 3.5; A2 (10, 20: 2 < 5 peers) and the
    blank area take the residents' median of the day (1..7, 10, 20: 9 values) 5.0; day 2 A1
    (2..10 without m6: 5 values) 6.0, the others the day's median (8 values: 2,4,6,8,10,14,20,40) 9.0."""
    cfg = A.AnomalyConfig()
    peers = A.peer_medians(_peer_days(), cfg)
    got = {(r["date"].day, r["area_id"]): r["peer_kwh"] for r in peers.iter_rows(named=True)}
    assert got == {(1, "A1"): 3.5, (1, "A2"): 5.0, (1, None): 5.0, (2, "A1"): 6.0, (2, "A2"): 9.0, (2, None): 9.0}


def test_prepared_a_range_of_meters_at_a_time_equals_the_whole() -> None:
    days = _peer_days()
    cfg = A.AnomalyConfig()
    whole = A.prepare_days(days, cfg)
    peers = A.peer_medians(days, cfg)
    ranges = A.meter_ranges(days["meter_id"], 4)
    assert len(ranges) == 4 and ranges[0][0] is None and ranges[-1][1] is None
    parts = [A.prepare_days(days.filter(A.in_range(lo, hi)), cfg, peers=peers) for lo, hi in ranges]
    assert all(p.height for p in parts)
    assert pl.concat(parts).equals(whole)
    assert whole.filter(pl.col("meter_id") == "m7")["peer_kwh"].to_list() == [5.0, 9.0]


def test_indicators_a_range_of_meters_at_a_time_equal_the_whole() -> None:
    """40 days of 12 customers in two areas, one of them falling to a third on day 25: the
    indicators computed over ranges of 3 meters (peer medians from the table of all) are the
    rows of the indicators computed over all meters at once."""
    rng = np.random.default_rng(3)
    d0 = dt.date(2026, 1, 1)
    rows = []
    for i in range(40):
        for m in range(12):
            k = float(np.round(rng.uniform(4, 8) * (0.3 if (m == 4 and i >= 25) else 1.0), 2))
            rows.append(
                {
                    "date": d0 + dt.timedelta(days=i), "meter_id": f"m{m:02d}", "customer_id": f"c{m}",
                    "area_id": "A1" if m < 7 else "A2", "feeder_id": "F1", "role": "customer",
                    "customer_class": "resident", "kwh": k, "kwh_sharp": 0.0, "kwh_peak": round(k * 0.5, 2),
                    "kwh_flat": 0.0, "kwh_valley": round(k * 0.5, 2), "reverse_kwh": 0.0, "quality": "actual",
                }
            )  # fmt: skip
    raw = pl.DataFrame(rows, schema=A.DAY_COLUMNS)
    cfg = A.AnomalyConfig()
    dates = [d0 + dt.timedelta(days=i) for i in (33, 39)]
    events = pl.DataFrame(schema=A.EVENT_COLUMNS)
    diagnosis = pl.DataFrame(schema=A.DIAGNOSIS_COLUMNS)
    history = A.reverse_history(raw, cfg)
    whole = A.indicators_at(A.prepare_days(raw, cfg), events, diagnosis, history, dates, cfg)
    peers = A.peer_medians(raw, cfg)
    parts: dict[dt.date, list[pl.DataFrame]] = {d: [] for d in dates}
    for lo, hi in A.meter_ranges(raw["meter_id"], 4):
        keep = A.in_range(lo, hi)
        days = A.prepare_days(raw.filter(keep), cfg, peers=peers)
        got = A.indicators_at(days, events, diagnosis, history.filter(keep), dates, cfg)
        for d in dates:
            parts[d].append(got[d])
    for d in dates:
        assert pl.concat(parts[d]).equals(whole[d])
    assert whole[dates[-1]].filter(pl.col("meter_id") == "m04")["s_drop_own"].item() > 0


def test_streamed_reverse_history_is_the_same() -> None:
    raw = _peer_days().with_columns(
        pl.when(pl.col("meter_id") == "m2").then(1.0).otherwise(0.0).alias("reverse_kwh"),
        pl.lit(None, pl.Float64).alias("pv_capacity_kw"),
    )
    cfg = A.AnomalyConfig()
    streamed = A.reverse_history(raw.lazy(), cfg, streaming=True)
    assert streamed.equals(A.reverse_history(raw, cfg))
    assert streamed.filter(pl.col("first_reverse").is_not_null())["meter_id"].to_list() == ["m2"]


def _register_days(rows: list[tuple[int, str, float | None, float, float | None]]) -> pl.DataFrame:
    """meter_daily rows (day of January, meter, kWh, reverse kWh, stated PV capacity)."""
    return pl.DataFrame(
        {
            "date": [dt.date(2026, 1, d) for d, *_ in rows],
            "meter_id": [m for _, m, *_ in rows],
            "role": ["customer"] * len(rows),
            "kwh": [k for _, _, k, _, _ in rows],
            "reverse_kwh": [r for *_, r, _ in rows],
            "quality": ["actual" if k is not None else "missing" for _, _, k, _, _ in rows],
            "pv_capacity_kw": [pv for *_, pv in rows],
        },
        schema_overrides={"kwh": pl.Float64, "pv_capacity_kw": pl.Float64},
    )


def test_reverse_parts_of_two_spans_combine_into_the_whole() -> None:
    cfg = A.AnomalyConfig()  # moved_kwh 0.05, quiet_days 14
    rows = [
        # m1: first value Jan 2; reverse moves Jan 20 (0.5 kWh), 18 days after: no PV inferred
        (1, "m1", None, 0.0, None), (2, "m1", 4.0, 0.0, None), (20, "m1", 3.0, 0.5, None),
        # m2: the archive states 5 kW early and 0 kW later (the later statement holds): no PV
        (3, "m2", 2.0, 0.2, 5.0), (4, "m2", 2.0, 0.0, None), (21, "m2", 2.0, 0.3, 0.0),
        # m3: reverse 0.04 kWh is below moved_kwh; states 3 kW only in the early span
        (5, "m3", 1.0, 0.04, 3.0), (22, "m3", 1.0, 0.0, None),
    ]  # fmt: skip
    raw = _register_days(rows)
    early = raw.filter(pl.col("date") <= dt.date(2026, 1, 10))
    late = raw.filter(pl.col("date") > dt.date(2026, 1, 10))
    combined = A.combine_reverse_parts(A.reverse_parts(early, cfg), A.reverse_parts(late, cfg))
    got = A.reverse_verdict(combined, cfg)
    assert got.equals(A.reverse_history(raw, cfg))
    assert got.rows() == [
        ("m1", dt.date(2026, 1, 2), dt.date(2026, 1, 20), True),
        ("m2", dt.date(2026, 1, 3), dt.date(2026, 1, 3), True),
        ("m3", dt.date(2026, 1, 5), None, False),
    ]
    # the later span's statement wins, the earlier one's stands where the later says nothing
    parts = combined.collect().sort("meter_id")
    assert parts["pv_kw"].to_list() == [None, 0.0, 3.0]


# -- the window's order -----------------------------------------------------------------------


def test_sorted_by_compares_the_columns_in_turn() -> None:
    rows: dict[str, list[object]] = {
        "d": [day(0), day(0), day(0), day(1)],
        "m": [1, 1, 2, 1],
        "x": [day(0), day(1), day(0), day(0)],
    }
    assert A._sorted_by(pl.DataFrame(rows), ["d", "m", "x"])
    swapped = {k: [v[1], v[0], *v[2:]] for k, v in rows.items()}
    assert not A._sorted_by(pl.DataFrame(swapped), ["d", "m", "x"])
    twice = {k: [*v[:2], v[1], *v[3:]] for k, v in rows.items()}  # two rows equal
    assert not A._sorted_by(pl.DataFrame(twice), ["d", "m", "x"])
    with_null = {**rows, "m": [1, 1, None, 1]}
    assert not A._sorted_by(pl.DataFrame(with_null), ["d", "m", "x"])
    # a later meter number on an earlier date: ordered by the first column first
    assert A._sorted_by(pl.DataFrame({"d": [day(0), day(1)], "m": [9, 1], "x": [day(5), day(0)]}), ["d", "m", "x"])


def test_flat_runs_of_two_dates_from_the_ordered_window_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    # M1: 3, 5, then 4.2 from index 2: at index 7, 6 identical days (ramp 4..10: 1/3); at LAST 8 (2/3).
    # M2: 4.2 x 3, 1.0, then 4.2 from index 4: at index 7, 4 days (strength 0, its run still
    # dated); at LAST 6 days (1/3). Meters given in order: the window is read as it is
    md = pl.concat(
        [meter_days("M1", [3.0, 5.0] + [4.2] * 8), meter_days("M2", [4.2] * 3 + [1.0] + [4.2] * 6), *peers()]
    )
    days, history = A.prepare_days(md, CFG), A.reverse_history(md, CFG)
    checked: list[bool] = []
    real = A._sorted_by

    def sorted_by(frame: pl.DataFrame, columns: list[str]) -> bool:
        checked.append(real(frame, columns))
        return checked[-1]

    monkeypatch.setattr(A, "_sorted_by", sorted_by)
    both = A.indicators_at(days, NO_EVENTS, NO_DIAGNOSIS, history, [day(7), LAST], CFG)
    assert checked == [True]

    def flat(d: dt.date, m: str) -> tuple[float, dt.date | None, dict[str, float]]:
        row = both[d].filter(pl.col("meter_id") == m).row(0, named=True)
        return round(row["s_flat"], 6), row["d_flat"], json.loads(row["ev_flat"])

    assert flat(day(7), "M1") == (0.333333, day(2), {"value": 4.2, "days": 6})
    assert flat(LAST, "M1") == (0.666667, day(2), {"value": 4.2, "days": 8})
    assert flat(day(7), "M2") == (0.0, day(4), {"value": 4.2, "days": 4})
    assert flat(LAST, "M2") == (0.333333, day(4), {"value": 4.2, "days": 6})
    # the honest neighbours vary: no run, their latest value
    assert flat(LAST, "P0")[1:] == (None, {"value": 10.0, "days": 0})


def test_the_observer_joined_after_gives_what_it_gives_joined_inside() -> None:
    """A range's indicators computed without the observer, its indicator joined in after
    (the stage does, so the look-backs need not wait for it), are the frames
    indicators_at gives with the observer: a meter it judged (M1), one it did not (M3), one
    it judged that has no row here (Z9, left out) and a date it has no frame for."""
    from meterlake.transforms import observer

    md = pl.concat([meter_days("M3", [10.0] * 10), meter_days("M1", [10.0] * 10), *peers(2)])
    days, history = A.prepare_days(md, CFG), A.reverse_history(md, CFG)
    diag = diagnosis("M2", "mapping_suspect", 0.5)
    seen = pl.concat(
        [
            observer.no_rows(),
            pl.DataFrame(
                {
                    "meter_id": ["M1", "Z9"],
                    "s_observer": [0.75, 0.5],
                    "d_observer": [LAST, LAST],
                    "_observer_days": [3, 2],
                    "_observer_t": [4.5, 3.0],
                    "f_observer_days": [3.0, 2.0],
                    "f_observer_t": [4.5, 3.0],
                    "ev_observer": ["3 days", "2 days"],
                }
            ),
        ],
        how="diagonal_relaxed",
    ).cast(observer.no_rows().schema)
    dates = [day(8), LAST]
    inside = A.indicators_at(days, NO_EVENTS, diag, history, dates, CFG, {day(8): None, LAST: seen})
    after = A.with_observed(A.indicators_at(days, NO_EVENTS, diag, history, dates, CFG), {day(8): None, LAST: seen})
    for d in dates:
        assert_frame_equal(after[d], inside[d], check_exact=True)
    row = inside[LAST].filter(pl.col("meter_id") == "M1")
    assert row["s_observer"].item() == 0.75 and row["ev_observer"].item() == "3 days"
    unseen = inside[LAST].filter(pl.col("meter_id") == "M3")
    assert unseen["s_observer"].item() == 0.0 and unseen["ev_observer"].item() is None
    assert "Z9" not in inside[LAST]["meter_id"].to_list()
