"""Supervised theft model: inspections joined to indicators, time-based split, fit, predict."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from meterlake.transforms import supervised as S
from meterlake.transforms.anomaly import SupervisedRules, feature_columns

D0 = dt.date(2026, 2, 1)
RULES = SupervisedRules(min_positives=5, min_negatives=5, validation_share=0.3, max_iter=50)


def features(day_index: int, n: int = 40, seed: int = 0) -> pl.DataFrame:
    """Indicators of meters M00..M(n-1) on a date: the first quarter look like theft."""
    rng = np.random.default_rng(seed + day_index)
    cols = feature_columns()
    thief = np.arange(n) < n // 4
    data = {c: rng.uniform(0.0, 0.3, n) for c in cols}
    data["s_drop_own"] = np.where(thief, rng.uniform(0.6, 1.0, n), rng.uniform(0.0, 0.3, n))
    data["s_zero"] = np.where(thief, rng.uniform(0.5, 1.0, n), 0.0)
    return pl.DataFrame({"meter_id": [f"M{i:02d}" for i in range(n)], **data})


def inspections(days: int = 10, per_day: int = 4) -> pl.DataFrame:
    """Each day inspects one thief and three honest meters, all different."""
    rows = []
    for d in range(days):
        rows.append((f"M{d:02d}", D0 + dt.timedelta(days=d), "theft"))
        for j in range(per_day - 1):
            outcome = "fault" if j == 0 else "normal"
            rows.append((f"M{10 + 3 * d + j:02d}", D0 + dt.timedelta(days=d), outcome))
    return pl.DataFrame(
        rows, schema={"meter_id": pl.String, "inspection_date": pl.Date, "outcome": pl.String}, orient="row"
    )


def test_prepare_inspections_keeps_the_last_row_of_a_key() -> None:
    raw = pl.DataFrame(
        {
            "meter_id": ["M1", "M1", "M2"],
            "inspection_date": [D0, D0, D0],
            "outcome": ["normal", "theft", "fault"],
        }
    )
    out = S.prepare_inspections(raw)
    expected = pl.DataFrame({"meter_id": ["M1", "M2"], "inspection_date": [D0, D0], "outcome": ["theft", "fault"]})
    assert_frame_equal(out, expected)


def test_time_split_cuts_on_a_date() -> None:
    # 10 rows on 10 dates, 30% validate: row index floor(10 * 0.7) = 7 -> cut at day 8
    rows = pl.DataFrame({"inspection_date": [D0 + dt.timedelta(days=i) for i in range(10)], "label": [0, 1] * 5})
    train, valid, cut = S.time_split(rows, 0.3)
    assert cut == D0 + dt.timedelta(days=7)
    assert train.height == 7
    assert valid.height == 3
    assert train["inspection_date"].max() < valid["inspection_date"].min()


def test_labelled_rows_use_features_of_the_inspection_date_and_only_earlier_inspections() -> None:
    insp = inspections(days=3)
    feats = {D0 + dt.timedelta(days=d): features(d) for d in range(3)}
    rows = S.labelled_rows(insp, feats, RULES, before=D0 + dt.timedelta(days=2))
    assert rows.height == 8  # days 0 and 1, four inspections each
    assert rows["label"].sum() == 2  # one theft a day; fault is not theft
    m00 = rows.filter(pl.col("meter_id") == "M00")
    assert m00["s_drop_own"].item() == feats[D0]["s_drop_own"][0]


def test_too_few_labels_means_no_model() -> None:
    insp = inspections(days=3)  # 3 positives < 5
    feats = {D0 + dt.timedelta(days=d): features(d) for d in range(3)}
    assert S.fit(S.labelled_rows(insp, feats, RULES), RULES) is None


def test_fit_validates_on_later_inspections_and_is_deterministic() -> None:
    insp = inspections(days=10)
    feats = {D0 + dt.timedelta(days=d): features(d) for d in range(10)}
    rows = S.labelled_rows(insp, feats, RULES)
    model = S.fit(rows, RULES)
    assert model is not None
    assert model.n_rows == 40 and model.n_positive == 10
    assert model.cut_date == D0 + dt.timedelta(days=7)
    assert (model.n_train, model.n_valid) == (28, 12)
    assert model.valid_auc == pytest.approx(1.0)  # the classes are separable by construction
    today = features(20, seed=99)
    p1 = S.predict(model, today)
    again = S.fit(rows, RULES)
    assert again is not None
    p2 = S.predict(again, today)
    assert_frame_equal(p1, p2)
    thieves = p1.filter(pl.col("meter_id") < "M10")["p"]
    honest = p1.filter(pl.col("meter_id") >= "M10")["p"]
    assert thieves.min() > honest.max()
    assert "validation AUC 1.000" in model.describe()
