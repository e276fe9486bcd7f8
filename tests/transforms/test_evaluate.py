"""Ranking metrics: precision/recall at k and ROC AUC, checked against hand counts."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from meterlake.transforms.evaluate import at_k, evaluate_ranking, ranked, roc_auc


@pytest.mark.parametrize(
    ("scores", "labels", "expected"),
    [
        pytest.param([0.9, 0.8, 0.1, 0.0], [1, 1, 0, 0], 1.0, id="perfect"),
        pytest.param([0.9, 0.8, 0.1, 0.0], [0, 0, 1, 1], 0.0, id="inverted"),
        # pairs (pos, neg): (0.9, 0.8) win, (0.9, 0.0) win, (0.1, 0.8) lose, (0.1, 0.0) win: 3/4
        pytest.param([0.9, 0.8, 0.1, 0.0], [1, 0, 1, 0], 0.75, id="mixed"),
        # everybody tied: every pair counts one half
        pytest.param([0.0, 0.0, 0.0, 0.0], [1, 0, 0, 0], 0.5, id="all-tied"),
        # pos 0.5 vs negs 0.5 (tie, 1/2) and 0.0 (win): (0.5 + 1) / 2
        pytest.param([0.5, 0.5, 0.0], [1, 0, 0], 0.75, id="one-tie"),
    ],
)
def test_roc_auc(scores: list[float], labels: list[int], expected: float) -> None:
    assert roc_auc(pl.Series(scores), pl.Series(labels)) == pytest.approx(expected)


def test_roc_auc_needs_both_classes() -> None:
    assert roc_auc(pl.Series([0.1, 0.2]), pl.Series([1, 1])) is None


def test_ranked_fills_absent_meters_with_zero_and_breaks_ties_by_meter() -> None:
    scores = pl.DataFrame({"meter_id": ["B", "A", "C"], "score": [1.0, 1.0, 3.0]})
    out = ranked(scores, pl.Series(["A", "B", "C", "D", "E"]))
    expected = pl.DataFrame(
        {"meter_id": ["C", "A", "B", "D", "E"], "score": [3.0, 1.0, 1.0, 0.0, 0.0], "position": [1, 2, 3, 4, 5]}
    )
    assert_frame_equal(out, expected, check_dtypes=False)


def test_at_k_counts_hits_by_hand() -> None:
    # 12 meters M00..M11 scored 12..1; positives M00, M03, M11 (positions 1, 4, 12)
    scores = pl.DataFrame({"meter_id": [f"M{i:02d}" for i in range(12)], "score": [float(12 - i) for i in range(12)]})
    out = at_k(ranked(scores), ["M00", "M03", "M11"], ks=(1, 10))
    assert out["positives"] == 3
    assert out["precision@1"] == 1.0
    assert out["recall@1"] == pytest.approx(1 / 3)
    assert out["precision@10"] == pytest.approx(2 / 10)
    assert out["recall@10"] == pytest.approx(2 / 3)
    # AUC: 9 negatives; M00 beats all 9, M03 the 7 below it (M04..M10), M11 none: 16 / 27
    assert out["roc_auc"] == pytest.approx(16 / 27)


def test_evaluate_ranking_groups_and_kinds() -> None:
    scores = pl.DataFrame({"meter_id": ["T1", "T2", "X", "Y"], "score": [5.0, 1.0, 3.0, 0.5]})
    truth = pl.DataFrame(
        {
            "kind": ["theft_bypass", "theft_stopped", "wrong_area", "outage"],
            "meter_id": ["T1", "T2", "Y", None],
        }
    )
    universe = pl.Series(["T1", "T2", "X", "Y", "Z"])
    out = evaluate_ranking(scores, truth, universe, groups={"theft": ("theft_bypass", "theft_stopped")}, ks=(1, 2))
    assert out["group"].to_list() == ["theft", "theft_bypass", "theft_stopped", "wrong_area"]
    theft = out.row(0, named=True)
    # order: T1 5, X 3, T2 1, Y 0.5, Z 0
    assert theft["positives"] == 2
    assert theft["precision@1"] == 1.0
    assert theft["precision@2"] == 0.5
    assert theft["recall@2"] == 0.5
    # T1 beats X, Y, Z; T2 beats Y, Z: 5 / 6
    assert theft["roc_auc"] == pytest.approx(5 / 6)
    assert theft["meters"] == 5


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 10, allow_nan=False), st.booleans()), min_size=2, max_size=40))
def test_auc_matches_pair_counting(pairs: list[tuple[float, bool]]) -> None:
    pos = [s for s, y in pairs if y]
    neg = [s for s, y in pairs if not y]
    auc = roc_auc(pl.Series([s for s, _ in pairs]), pl.Series([int(y) for _, y in pairs]))
    if not pos or not neg:
        assert auc is None
        return
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    assert auc == pytest.approx(wins / (len(pos) * len(neg)))


def test_area_positions_and_detection_row_by_hand() -> None:
    from meterlake.transforms.evaluate import area_positions, detection_row

    areas = pl.DataFrame({"meter_id": ["a1", "a2", "a3", "b1", "b2", "b3"], "area_id": ["A", "A", "A", "B", "B", "B"]})
    scores = pl.DataFrame({"meter_id": ["a1", "a2", "b2"], "score": [1.0, 3.0, 0.5]})
    pos = area_positions(scores, areas)
    got = dict(zip(pos["meter_id"], pos["area_position"], strict=True))
    # A: a2 (3.0) 1st, a1 2nd, a3 scores 0: no position; B: b2 1st
    assert got == {"a2": 1, "a1": 2, "a3": None, "b2": 1, "b1": None, "b3": None}
    row = detection_row("theft", scores, ["a1", "b2", "b3"], areas["meter_id"], pos, within=1)
    # within 1: only b2; a1 is second in A, b3 never ranked
    assert (row["positives"], row["area_hits"]) == (3, 1)
    assert row["area_hit_share"] == pytest.approx(1 / 3)
    # AUC over 6 meters: a1 (1.0) beats a3, b1 (0) and... negatives a2 (3.0), a3, b1: a1 beats 2 of 3;
    # b2 (0.5) beats a3, b1: 2; b3 (0) ties a3, b1: 1 -> 5 / 9
    assert row["roc_auc"] == pytest.approx(5 / 9)


def test_area_positions_with_other_faults_set_apart_by_hand() -> None:
    from meterlake.transforms.evaluate import area_positions, detection_row

    # area A: t1 (5.0), t2 (4.0), h1 (3.0), t3 (2.0), h2 (1.0), h3 (0); t1..t3 carry a fault
    ids = ["t1", "t2", "h1", "t3", "h2", "h3"]
    areas = pl.DataFrame({"meter_id": ids, "area_id": ["A"] * 6})
    scores = pl.DataFrame({"meter_id": ids[:5], "score": [5.0, 4.0, 3.0, 2.0, 1.0]})
    strict = area_positions(scores, areas)
    apart = area_positions(scores, areas, apart=["t1", "t2", "t3"])
    got = dict(zip(apart["meter_id"], apart["area_position"], strict=True))
    # t1 and t2 have no meter without a fault above them: 1st; h1 is the first such meter;
    # t3 has h1 above it: 2nd; h2 follows h1: 2nd; h3 scores 0: no position
    assert got == {"t1": 1, "t2": 1, "h1": 1, "t3": 2, "h2": 2, "h3": None}
    row = detection_row("theft", scores, ["t3"], areas["meter_id"], strict, 2, apart)
    # strictly t3 is 4th (t1, t2, h1 above it): no hit within 2; with the faults apart, 2nd: a hit
    assert (row["area_hits"], row["area_hits_apart"]) == (0, 1)
    assert row["roc_auc_apart"] is None  # no meters set apart from the AUC's negatives: not computed


def test_roc_auc_with_other_thieves_set_apart_by_hand() -> None:
    from meterlake.transforms.evaluate import area_positions, detection_row

    # t1 (5.0), t2 (4.0), h1 (3.0), t3 (2.0), h2 (1.0), h3 (0); t1..t3 carry a theft, t3 is the kind evaluated
    ids = ["t1", "t2", "h1", "t3", "h2", "h3"]
    areas = pl.DataFrame({"meter_id": ids, "area_id": ["A"] * 6})
    scores = pl.DataFrame({"meter_id": ids[:5], "score": [5.0, 4.0, 3.0, 2.0, 1.0]})
    pos = area_positions(scores, areas)
    row = detection_row("theft_partial", scores, ["t3"], areas["meter_id"], pos, 5, None, ["t1", "t2", "t3"])
    # against all 5 others t3 beats h2 and h3: 2 / 5; against the 3 without theft (h1, h2, h3): 2 / 3
    assert row["roc_auc"] == pytest.approx(2 / 5)
    assert row["roc_auc_apart"] == pytest.approx(2 / 3)
    # a positive named among those set apart still counts as a positive
    both = detection_row("theft", scores, ["t2", "t3"], areas["meter_id"], pos, 5, None, ["t1", "t2", "t3"])
    # t2 beats h1, h2, h3 (3), t3 beats h2, h3 (2): 5 / 6
    assert both["roc_auc_apart"] == pytest.approx(5 / 6)
