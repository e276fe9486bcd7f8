"""Loss diagnosis: multiplier, theft and mapping findings on hand-made and seeded
synthetic meter_daily windows."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from meterlake.schemas.loss_diagnosis import LOSS_DIAGNOSIS
from meterlake.schemas.meter_daily import METER_DAILY
from meterlake.transforms.loss import area_days, prepare
from meterlake.transforms.loss_diagnosis import (
    MEMBER_COLUMNS,
    DiagnosisRules,
    MultiplierRules,
    TheftRules,
    _area_ranges,
    diagnose,
    diagnose_windows,
    member_rows,
    neighbour_multipliers,
    window_days,
)

START = dt.date(2026, 3, 1)


def rows_to_frame(cols: dict[str, list]) -> pl.DataFrame:
    n = len(cols["meter_id"])
    full = {c: cols.get(c, [None] * n) for c in METER_DAILY.names}
    return pl.DataFrame(full, schema=METER_DAILY.schema)


def constant_area(days: int, area: str, meters: list[tuple[str, str, float, float]]) -> dict[str, list]:
    """The same (meter_id, role, multiplier, kwh) every day for ``days`` days."""
    out: dict[str, list] = {
        k: []
        for k in (
            "date",
            "meter_id",
            "customer_id",
            "area_id",
            "feeder_id",
            "role",
            "multiplier",
            "kwh",
            "reverse_kwh",
            "quality",
        )
    }
    for i in range(days):
        for meter_id, role, mult, kwh in meters:
            out["date"].append(START + dt.timedelta(days=i))
            out["meter_id"].append(meter_id)
            out["customer_id"].append(None if role == "area_master" else "U" + meter_id)
            out["area_id"].append(area)
            out["feeder_id"].append("F1")
            out["role"].append(role)
            out["multiplier"].append(mult)
            out["kwh"].append(kwh)
            out["reverse_kwh"].append(0.0)
            out["quality"].append("actual")
    return out


# -- neighbouring standard ratios ----------------------------------------------------


@pytest.mark.parametrize(
    ("multiplier", "k", "want"),
    [
        # 150/5 A: the rating table ... 100 120 125 [150] 160 200 ... A, over 5 A
        pytest.param(30.0, 2, [24.0, 25.0, 32.0, 40.0], id="LV-150/5"),
        pytest.param(1.0, 1, [2.0], id="direct-connected-has-only-a-step-up"),
        # 10 kV: PT 10000/100 x CT 50/5 = 1000 -> CT 40/5 and 60/5 with the PT (and 4000/5
        # below 1000 read as a 5000/5 low-voltage CT, the top of the table)
        pytest.param(1000.0, 1, [800.0, 1200.0], id="10kV-50/5-with-PT"),
        # 100 is 500/5 without a PT or 5/5 with the 10 kV PT
        pytest.param(100.0, 1, [80.0, 120.0, 200.0], id="ambiguous-100"),
        # 35 is no standard ratio: its neighbours in the series, 32 (160/5) and 40
        pytest.param(35.0, 1, [32.0, 40.0], id="non-standard"),
    ],
)
def test_neighbour_multipliers(multiplier, k, want):
    got = neighbour_multipliers([multiplier], MultiplierRules(neighbours=k))
    assert got["candidate"].to_list() == want
    assert set(got["multiplier"].to_list()) == {multiplier}


# -- multiplier suspects, by hand -----------------------------------------------------


def test_master_multiplier_suspect_by_hand():
    # The master's CT is 200/5 (40) but the archive says 150/5 (30): it records 75 kWh a
    # day of a true 100. Customers use 48 + 48 = 96. Every day's rate is (75 - 96)/75 =
    # -0.28: negative. With 40: supply 100, rate 0.04 (normal); 50: 125, rate 0.232
    # (high); 20: 50, -0.92; 15: 37.5, -1.56. So 40, and all 12 days turn normal.
    md = rows_to_frame(
        constant_area(
            12, "A", [("M", "area_master", 30.0, 75.0), ("C1", "customer", 1.0, 48.0), ("C2", "customer", 1.0, 48.0)]
        )
    )
    end = START + dt.timedelta(days=11)
    got = diagnose(md, end, diag=DiagnosisRules(window_days=12, min_days=10))
    want = pl.DataFrame(
        {
            "date": [end],
            "window_start": [START],
            "area_id": ["A"],
            "kind": ["multiplier_suspect"],
            "rule": ["loss.diagnosis.multiplier_suspect"],
            "severity": ["warning"],
            "meter_id": ["M"],
            "customer_id": [None],
            "role": ["area_master"],
            "other_area_id": [None],
            "score": [1.0],
            "rank": [1],
            "area_status": ["negative"],
            "area_loss_rate": [-0.28],
            "days": [12],
            "evidence": [
                '{"archive_multiplier":30.0,"candidate_multiplier":40.0,"meter_kwh":900.0,'
                '"loss_rate_before":-0.28,"loss_rate_after":0.04,'
                '"normal_days_share_before":0.0,"normal_days_share_after":1.0}'
            ],
        },
        schema=LOSS_DIAGNOSIS.schema,
    )
    assert_frame_equal(got, want)


def test_large_customer_multiplier_suspect_by_hand():
    # Customer K's CT is 200/5 but filed as 150/5: it bills 60 kWh of a true 80. With
    # the others' 4 x 28 = 112 the area sells 172 of a master 200: rate 0.14, high.
    # K at 40 sells 192: 0.04, normal; at 50: 212, -0.06; at 20: 152, 0.24. No candidate
    # for the (correct) master multiplier 40 makes the area normal: 30 gives 150 against
    # 172, 50 gives 250 (0.312).
    meters = [("M", "area_master", 40.0, 200.0), ("K", "customer", 30.0, 60.0)]
    meters += [(f"C{i}", "customer", 1.0, 28.0) for i in range(4)]
    md = rows_to_frame(constant_area(10, "B", meters))
    got = diagnose(md, START + dt.timedelta(days=9), diag=DiagnosisRules(window_days=10, min_days=10))
    assert got.select("kind", "meter_id", "customer_id", "role", "score", "rank").rows() == [
        ("multiplier_suspect", "K", "UK", "customer", 1.0, 1)
    ]
    ev = json.loads(got["evidence"][0])
    assert (ev["archive_multiplier"], ev["candidate_multiplier"]) == (30.0, 40.0)
    assert ev["loss_rate_before"] == pytest.approx(0.14) and ev["loss_rate_after"] == pytest.approx(0.04)


def test_a_normal_area_has_no_findings_and_the_frame_keeps_its_schema():
    md = rows_to_frame(constant_area(12, "A", [("M", "area_master", 40.0, 100.0), ("C1", "customer", 1.0, 96.0)]))
    got = diagnose(md, START + dt.timedelta(days=11))
    assert got.height == 0
    assert got.schema == LOSS_DIAGNOSIS.schema


# -- a seeded synthetic feeder ---------------------------------------------------------


def synthetic_feeder(
    seed: int,
    days: int = 30,
    areas: int = 6,
    per_area: int = 40,
    misfiled_kwh: float = 60.0,
    misfiled_noise: float = 0.25,
) -> tuple[pl.DataFrame, dict]:
    """One feeder, ``areas`` areas of ``per_area`` customers, with three faults injected:

    * theft in A1: customer 0 (30 kWh/day) bills 30% of its use from day 15;
    * multiplier in A2: the master's CT is 200/5 but the archive says 150/5;
    * mapping: A4's first customer (``misfiled_kwh`` a day, day-to-day spread
      ``misfiled_noise``) is filed under A3.
    Every area has 3-5% technical loss; loads follow a common weather swing.
    """
    rng = np.random.default_rng(seed)
    n = areas * per_area
    area = np.repeat(np.arange(areas), per_area)
    base = np.exp(rng.normal(np.log(8.0), 0.5, n))
    thief, misfiled = 0, 3 * per_area
    base[thief], base[misfiled] = 30.0, misfiled_kwh
    weather = 1 + 0.15 * np.sin(np.arange(days) / 4.0)
    noise = 1 + 0.10 * rng.standard_normal((days, n))
    noise[:, misfiled] = np.clip(1 + misfiled_noise * rng.standard_normal(days), 0.05, None)
    true = base[None, :] * weather[:, None] * noise
    billed = true.copy()
    billed[days // 2 :, thief] *= 0.3
    tech = rng.uniform(0.03, 0.05, areas)
    master = np.stack([true[:, area == a].sum(1) for a in range(areas)], 1) / (1 - tech)
    master *= 1 + 0.005 * rng.standard_normal((days, areas))
    master_mult = np.full(areas, 40.0)
    master_mult[1] = 30.0
    master[:, 1] *= 30.0 / 40.0
    filed = area.copy()
    filed[misfiled] = 2
    m = n + areas
    cols = {
        "date": [START + dt.timedelta(days=d) for d in range(days) for _ in range(m)],
        "kwh": np.concatenate([np.concatenate([billed[d], master[d]]) for d in range(days)]).round(2).tolist(),
    }
    ids = [f"C{i:04d}" for i in range(n)] + [f"M{a + 1}" for a in range(areas)]
    cols["meter_id"] = ids * days
    cols["customer_id"] = ([f"U{i:04d}" for i in range(n)] + [None] * areas) * days
    cols["area_id"] = ([f"A{a + 1}" for a in filed] + [f"A{a + 1}" for a in range(areas)]) * days
    cols["feeder_id"] = ["F1"] * (m * days)
    cols["role"] = (["customer"] * n + ["area_master"] * areas) * days
    cols["multiplier"] = ([1.0] * n + master_mult.tolist()) * days
    cols["reverse_kwh"] = [0.0] * (m * days)
    cols["quality"] = ["actual"] * (m * days)
    truth = {"theft": ("A1", "C0000"), "multiplier": ("A2", "M2"), "mapping": ("A3", f"C{misfiled:04d}", "A4")}
    return rows_to_frame(cols), truth


@pytest.mark.parametrize("seed", [pytest.param(s, id=f"seed{s}") for s in (1, 2, 3)])
def test_injected_faults_rank_first(seed):
    md, truth = synthetic_feeder(seed)
    end = START + dt.timedelta(days=29)
    got = diagnose(md, end)
    top = got.filter(pl.col("rank") == 1)

    def first(kind: str, area: str) -> dict:
        hit = top.filter((pl.col("kind") == kind) & (pl.col("area_id") == area))
        assert hit.height == 1, (
            f"no {kind} ranked first in {area}: {got.select('area_id', 'kind', 'meter_id', 'rank').rows()}"
        )
        return hit.row(0, named=True)

    theft = first("theft_candidate", truth["theft"][0])
    assert theft["meter_id"] == truth["theft"][1]
    mult = first("multiplier_suspect", truth["multiplier"][0])
    assert mult["meter_id"] == truth["multiplier"][1]
    assert json.loads(mult["evidence"])["candidate_multiplier"] == 40.0
    mapping = first("mapping_suspect", truth["mapping"][0])
    assert (mapping["meter_id"], mapping["other_area_id"]) == truth["mapping"][1:]
    # a mis-filed customer lowers its filed area's loss: it is not a theft candidate there
    assert got.filter((pl.col("area_id") == "A3") & (pl.col("kind") == "theft_candidate")).height == 0
    # the clean areas A5 and A6 yield nothing
    assert got.filter(pl.col("area_id").is_in(["A5", "A6"])).height == 0
    assert got["score"].is_between(0.0, 1.0).all()


def test_only_the_window_counts_and_row_order_does_not():
    md, _ = synthetic_feeder(4)
    end = START + dt.timedelta(days=29)
    got = diagnose(md, end)
    # days before the window and after its end are ignored
    noise = md.filter(pl.col("date") < START + dt.timedelta(days=5)).with_columns(
        pl.col("date") - pl.duration(days=40), pl.col("kwh") * 3
    )
    later = md.filter(pl.col("date") == end).with_columns(
        pl.col("date") + pl.duration(days=1), pl.lit(0.0).alias("kwh")
    )
    assert_frame_equal(diagnose(pl.concat([noise, md, later]).sample(fraction=1.0, shuffle=True, seed=9), end), got)


def test_windows_in_one_pass_are_each_window_alone():
    # 40 days of the seeded feeder (the theft from day 20, so later windows find more):
    # windows ending on days 29 .. 39, one short of min_days at the start (ends 10, 11),
    # and one ending before any data; each window's rows in the one pass are exactly the
    # rows diagnose gives it alone, and a window with nothing found has no rows
    md, _ = synthetic_feeder(5, days=40)
    diag = DiagnosisRules(window_days=20, min_days=15)
    ends = [START + dt.timedelta(days=k) for k in (-3, 10, 11, 29, 33, 34, 39)]
    got = diagnose_windows(md.sample(fraction=1.0, shuffle=True, seed=2), ends, diag=diag)
    assert got.height > 0
    for end in ends:
        alone = diagnose(md, end, diag=diag)
        assert_frame_equal(got.filter(pl.col("date") == end), alone)
    assert set(got["date"].to_list()) <= set(ends[3:])
    assert got.select("date", "area_id", "kind", "rank").rows() == sorted(
        got.select("date", "area_id", "kind", "rank").rows()
    )
    # a window's days: window_days of them, ending at its end, its second half from
    # start + window_days // 2 (day 10 of a 20-day window ending on day 29: day 20)
    spans = window_days([START + dt.timedelta(days=29)], diag)
    assert spans["date"].to_list() == [START + dt.timedelta(days=k) for k in range(10, 30)]
    assert set(spans["_mid"].to_list()) == {START + dt.timedelta(days=20)}


@pytest.mark.parametrize("per_range", [1, 2_500, 5_000])
def test_areas_tested_a_range_at_a_time_find_the_same_rows(per_range):
    # six areas of 41 meters over 30 days, two windows: 7,380 meter-days a window, 14,760
    # in all (each counted once per window); ranges of 1 area, of ~2 and of ~4 areas. The
    # mis-filed customer (filed in A3, fed from A4) is tested in A3's range against A4's
    # balance all the same
    md, truth = synthetic_feeder(6)
    ends = [START + dt.timedelta(days=k) for k in (28, 29)]
    whole = diagnose_windows(md, ends)
    ranged = diagnose_windows(md, ends, rows_per_range=per_range)
    assert_frame_equal(ranged, whole, check_exact=True)
    kinds = set(whole.filter(pl.col("rank") == 1).select("area_id", "kind", "meter_id").rows())
    assert (truth["mapping"][0], "mapping_suspect", truth["mapping"][1]) in kinds
    assert (truth["multiplier"][0], "multiplier_suspect", truth["multiplier"][1]) in kinds
    assert (truth["theft"][0], "theft_candidate", truth["theft"][1]) in kinds


def test_area_ranges():
    members = pl.LazyFrame({"area_id": ["B", "A", "C", "B", "C", "C", "D"]})
    # A 1 row, B 2, C 3, D 1: their first rows at 0, 1, 3, 6 in id order; a range per
    # multiple of the budget an area's first row falls in
    assert [r.to_list() for r in _area_ranges(members, 1)] == [["A"], ["B"], ["C"], ["D"]]
    assert [r.to_list() for r in _area_ranges(members, 2)] == [["A", "B"], ["C"], ["D"]]
    assert [r.to_list() for r in _area_ranges(members, 3)] == [["A", "B"], ["C"], ["D"]]
    assert [r.to_list() for r in _area_ranges(members, 4)] == [["A", "B", "C"], ["D"]]
    assert _area_ranges(members, 7) == [None] and _area_ranges(members, None) == [None]


def test_window_shorter_than_min_days_yields_nothing():
    md = rows_to_frame(constant_area(5, "A", [("M", "area_master", 30.0, 75.0), ("C1", "customer", 1.0, 96.0)]))
    assert diagnose(md, START + dt.timedelta(days=4)).height == 0


def test_empty_input():
    got = diagnose(pl.DataFrame(schema=METER_DAILY.schema), START)
    assert_frame_equal(got, pl.DataFrame(schema=LOSS_DIAGNOSIS.schema))


def test_mapping_is_found_when_both_areas_stay_in_band():
    # a 12 kWh/day customer that varies a lot moves A4's loss up and A3's down by ~3
    # points: both stay in band, but the partial regressions still give it away
    md, truth = synthetic_feeder(1, misfiled_kwh=12.0, misfiled_noise=0.5)
    got = diagnose(md, START + dt.timedelta(days=29))
    mapping = got.filter(pl.col("kind") == "mapping_suspect")
    assert mapping.select("area_id", "meter_id", "other_area_id", "rank", "area_status").rows() == [
        ("A3", truth["mapping"][1], "A4", 1, "normal")
    ]
    ev = json.loads(mapping["evidence"][0])
    assert ev["partial_corr_other_area_loss_given_sales"] > 0.6 > -0.3 > ev["partial_corr_own_area_loss_given_supply"]
    assert abs(ev["other_area_loss_kwh_per_net_kwh"] - 1.0) <= 0.5


@pytest.mark.parametrize(
    ("areas", "found"),
    [pytest.param("abnormal", False, id="abnormal-only"), pytest.param("all", True, id="all-areas")],
)
def test_theft_scope(areas, found):
    # with rise_min and min_abnormal_days out of reach A1 (normal, 6.6% over the window)
    # is neither high nor rising: only theft_areas = "all" looks at it
    md, truth = synthetic_feeder(1)
    diag = DiagnosisRules(rise_min=1.0, min_abnormal_days=99, theft=TheftRules(areas=areas))
    got = diagnose(md, START + dt.timedelta(days=29), diag=diag)
    hit = got.filter((pl.col("kind") == "theft_candidate") & (pl.col("meter_id") == truth["theft"][1]))
    assert hit.height == int(found)


def test_an_area_straying_across_the_band_edge_is_no_multiplier_case():
    # Master 100 a day; K (CT 150/5, 20 kWh) and four customers whose sales alternate
    # 81 / 79.5: rates -0.01 and +0.005, half the days normal, the window -0.0025
    # (negative). K at 20 would make every day normal (sales 94.33 / 92.83), but an
    # error in a ratio is off every day, so half the days normal before rules it out.
    cols = None
    for i in range(20):
        others = 81.0 if i % 2 == 0 else 79.5
        part = constant_area(
            1,
            "A",
            [("M", "area_master", 40.0, 100.0), ("K", "customer", 30.0, 20.0)]
            + [(f"C{j}", "customer", 1.0, others / 4) for j in range(4)],
        )
        part["date"] = [START + dt.timedelta(days=i)] * len(part["date"])
        cols = part if cols is None else {k: cols[k] + part[k] for k in cols}
    md = rows_to_frame(cols)
    end = START + dt.timedelta(days=19)
    strict = diagnose(md, end, diag=DiagnosisRules(window_days=20))
    assert strict.filter(pl.col("kind") == "multiplier_suspect").height == 0
    lax = diagnose(
        md, end, diag=DiagnosisRules(window_days=20, multiplier=MultiplierRules(max_normal_share_before=1.0))
    )
    assert lax.filter(pl.col("kind") == "multiplier_suspect").select("meter_id", "score").rows() == [("K", 0.5)]


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), misfiled_kwh=st.sampled_from([12.0, 60.0]))
def test_ranks_and_scores_are_well_formed(seed, misfiled_kwh):
    md, _ = synthetic_feeder(seed, misfiled_kwh=misfiled_kwh)
    got = diagnose(md, START + dt.timedelta(days=29))
    assert got["score"].is_between(0.0, 1.0).all()
    assert (got["rule"] == "loss.diagnosis." + got["kind"]).all()
    # ranks run 1..n within (area, kind), in falling score
    check = got.group_by("area_id", "kind").agg(
        ranks_ok=(pl.col("rank").sort() == pl.int_range(1, pl.len() + 1)).all(),
        scores_fall=(pl.col("score").sort_by("rank").diff().drop_nulls() <= 0).all(),
    )
    assert check["ranks_ok"].all() and check["scores_fall"].all()
    # one finding per meter, kind and area
    assert got.select("area_id", "kind", "meter_id").is_unique().all()


def test_member_rows_by_hand():
    # a feeder head and a customer fed directly (no area) are no members; a missing value
    # is kept (a customer absent that day) with its value flags; net kWh is left to the tests
    md = rows_to_frame(
        {
            "date": [START] * 5,
            "meter_id": ["H", "MA", "CA", "CB", "D"],
            "customer_id": [None, None, "UA", "UB", "UD"],
            "area_id": [None, "A", "A", "A", ""],
            "feeder_id": ["F1"] * 5,
            "role": ["feeder_head", "area_master", "customer", "customer", "customer"],
            "multiplier": [1.0, 40.0, 1.0, 1.0, 1.0],
            "kwh": [500.0, 100.0, 60.0, None, 9.0],
            "reverse_kwh": [0.0, 0.0, 2.5, 0.0, 0.0],
            "quality": ["actual", "actual", "actual", "missing", "actual"],
        }
    )
    got = member_rows(prepare(md)).collect()
    assert got.columns == list(MEMBER_COLUMNS)
    assert got.select("meter_id", "role", "multiplier", "_kwh", "_rev", "_present").rows() == [
        ("MA", "area_master", 40.0, 100.0, 0.0, True),
        ("CA", "customer", 1.0, 60.0, 2.5, True),
        ("CB", "customer", 1.0, None, None, False),
    ]


@pytest.mark.parametrize("per_range", [None, 1, 2_500])
def test_kept_member_rows_sorted_by_area_find_what_meter_daily_does(per_range):
    # the stage's kept days: each day's member rows sorted by area and meter, read in day
    # order, with the area balances computed once; the same rows, bit for bit, as windows
    # read from meter_daily (whole or a range of areas at a time)
    md, truth = synthetic_feeder(6)
    ends = [START + dt.timedelta(days=k) for k in (28, 29)]
    rows = prepare(md)
    kept = pl.concat(
        member_rows(rows.filter(pl.col("date") == d)).sort("area_id", "meter_id")
        for d in sorted(md["date"].unique().to_list())
    )
    balances = area_days(rows).collect()
    got = diagnose_windows(kept, ends, days=balances, rows_per_range=per_range, prepared=True)
    assert_frame_equal(got, diagnose_windows(md, ends), check_exact=True)
    assert (truth["multiplier"][0], "multiplier_suspect", truth["multiplier"][1]) in set(
        got.filter(pl.col("rank") == 1).select("area_id", "kind", "meter_id").rows()
    )
    with pytest.raises(ValueError, match="days="):
        diagnose_windows(kept, ends, prepared=True)
