"""Supervised theft model from inspection outcomes (稽查结果). Pure: frames in, model out.

Utilities that inspect the meters the ranking flags learn which indicator patterns
turn out to be theft in their territory. With enough outcomes, a gradient-boosted
classifier (scikit-learn ``HistGradientBoostingClassifier``, fixed ``random_state``)
learns the probability of theft from the *same* indicators the unsupervised score
adds up (``transforms.anomaly.feature_columns``): their strengths and raw figures
at each inspection's date. Its probability then joins the score as one more
explainable reason (``anomaly.model.theft_probability``: "inspection model p=0.83").

No leakage from the future: the model that scores detection date D is trained only
on inspections dated before D (:func:`labelled_rows` with ``before=D``), with
features computed from data up to each inspection's date. Validation is time-based:
the latest ``validation_share`` of those inspections (by date) validates a model fit
on the earlier ones (:func:`time_split`); the model that scores is then refit on all
of them, and the validation figures travel with it (:class:`TheftModel`).

Without inspection outcomes, or with too few of either class, there is no model and
everything works unsupervised.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from meterlake.schemas._base import MissingColumnsError

from . import dates
from .anomaly import SupervisedRules, feature_columns
from .evaluate import roc_auc

#: the inspections columns the model reads
INSPECTION_COLUMNS: dict[str, pl.DataType] = {
    "meter_id": pl.String(),
    "inspection_date": pl.Date(),
    "outcome": pl.String(),
}


@dataclass(frozen=True)
class TheftModel:
    """A fitted classifier and what it was fit and validated on."""

    classifier: object
    features: tuple[str, ...]
    #: inspections it was refit on (all labelled rows before the detection date)
    n_rows: int
    n_positive: int
    #: the time-based split: train on inspections before `cut_date`, validate from it
    cut_date: dt.date | None
    n_train: int
    n_valid: int
    #: ROC AUC on the validation rows (None when they hold only one class)
    valid_auc: float | None
    #: latest inspection date it learned from
    last_inspection: dt.date | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        auc = "n/a" if self.valid_auc is None else f"{self.valid_auc:.3f}"
        return (
            f"model on {self.n_rows} inspections ({self.n_positive} theft) up to {self.last_inspection}; "
            f"time split at {self.cut_date}: {self.n_train} train / {self.n_valid} validate, validation AUC {auc}"
        )


def prepare_inspections(inspections: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """One row per (meter_id, inspection_date): the last row of a key wins. Sorted."""
    lf = inspections.lazy()
    present = lf.collect_schema().names()
    missing = [c for c in INSPECTION_COLUMNS if c not in present]
    if missing:
        raise MissingColumnsError("inspections", missing, present, "supervised model input")
    return (
        lf.select(pl.col(c).cast(t) for c, t in INSPECTION_COLUMNS.items())
        .filter(pl.col("meter_id").is_not_null() & pl.col("inspection_date").is_not_null())
        .with_row_index("_i")
        .group_by("meter_id", "inspection_date")
        .agg(pl.col("outcome").sort_by("_i").last())
        .collect()
        .sort("inspection_date", "meter_id")
    )


def labelled_rows(
    inspections: pl.DataFrame,
    features_at: Mapping[dt.date, pl.DataFrame],
    rules: SupervisedRules,
    before: dt.date | None = None,
) -> pl.DataFrame:
    """Inspections joined to the indicators of their meter on their date.

    ``features_at[d]`` is ``anomaly.indicators(...)`` at detection date ``d``. An
    inspection whose date has no features (outside the lake) is left out; so is one
    of a meter the indicators do not know on that date. ``label`` is 1 when the
    outcome is in ``rules.positive_outcomes``. Only inspections before ``before``.
    """
    cols = feature_columns()
    rows = inspections
    if before is not None:
        rows = rows.filter(pl.col("inspection_date") < before)
    parts = []
    for d in sorted(set(rows["inspection_date"].to_list())):
        if d not in features_at:
            continue
        feats = features_at[d].select("meter_id", *cols)
        parts.append(rows.filter(pl.col("inspection_date") == d).join(feats, on="meter_id", how="inner"))
    schema = {
        "meter_id": pl.String(),
        "inspection_date": pl.Date(),
        "outcome": pl.String(),
        **{c: pl.Float64() for c in cols},
    }
    out = pl.concat(parts, how="vertical_relaxed") if parts else pl.DataFrame(schema=schema)
    return out.with_columns(pl.col("outcome").is_in(list(rules.positive_outcomes)).cast(pl.Int8).alias("label")).sort(
        "inspection_date", "meter_id"
    )


def time_split(rows: pl.DataFrame, validation_share: float) -> tuple[pl.DataFrame, pl.DataFrame, dt.date | None]:
    """Train on inspections before a cut date, validate from it.

    The cut is the inspection date at which the latest ``validation_share`` of the
    rows begins; all rows of one date fall on the same side.
    """
    if rows.height == 0:
        return rows, rows, None
    dates = rows["inspection_date"].sort()
    cut = dates[min(rows.height - 1, int(np.floor(rows.height * (1.0 - validation_share))))]
    train = rows.filter(pl.col("inspection_date") < cut)
    valid = rows.filter(pl.col("inspection_date") >= cut)
    return train, valid, cut


def _classifier(rules: SupervisedRules) -> Any:  # sklearn has no type information
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=rules.max_iter,
        learning_rate=rules.learning_rate,
        max_leaf_nodes=rules.max_leaf_nodes,
        min_samples_leaf=rules.min_samples_leaf,
        random_state=rules.random_state,
        early_stopping=False,
    )


def _one_thread() -> contextlib.AbstractContextManager[object]:
    """OpenMP limited to one thread: the training sets are small (inspections, not meters),
    where threads only contend with the pipeline's own work (and on a loaded machine
    OpenMP spin-waiting makes a 40-row fit take seconds)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


def _xy(rows: pl.DataFrame, features: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    x = rows.select(pl.col(c).cast(pl.Float64).fill_null(0.0) for c in features).to_numpy()
    y = rows["label"].to_numpy().astype(np.int64)
    return x, y


def fit(rows: pl.DataFrame, rules: SupervisedRules) -> TheftModel | None:
    """Fit the theft model on labelled rows, or None when there are too few of a class."""
    n_pos = int(rows["label"].sum()) if rows.height else 0
    n_neg = rows.height - n_pos
    if n_pos < rules.min_positives or n_neg < rules.min_negatives:
        return None
    features = tuple(feature_columns())
    train, valid, cut = time_split(rows, rules.validation_share)
    valid_auc = None
    notes: list[str] = []
    with _one_thread():
        if train.height and 0 < int(train["label"].sum()) < train.height:
            clf = _classifier(rules).fit(*_xy(train, features))
            if valid.height and 0 < int(valid["label"].sum()) < valid.height:
                xv, yv = _xy(valid, features)
                p = clf.predict_proba(xv)[:, 1]
                valid_auc = roc_auc(pl.Series(p), pl.Series(yv))
            else:
                notes.append("validation rows hold one class only: no validation AUC")
        else:
            notes.append("rows before the cut hold one class only: not validated")
        final = _classifier(rules).fit(*_xy(rows, features))
    return TheftModel(
        classifier=final,
        features=features,
        n_rows=rows.height,
        n_positive=n_pos,
        cut_date=cut,
        n_train=train.height,
        n_valid=valid.height,
        valid_auc=valid_auc,
        last_inspection=dates.span(rows, "inspection_date")[1],
        notes=tuple(notes),
    )


def predict(model: TheftModel, features: pl.DataFrame) -> pl.DataFrame:
    """meter_id and ``p``, the model's probability of theft, for every row of ``features``."""
    if features.height == 0:
        return pl.DataFrame(schema={"meter_id": pl.String(), "p": pl.Float64()})
    x = features.select(pl.col(c).cast(pl.Float64).fill_null(0.0) for c in model.features).to_numpy()
    with _one_thread():
        p = model.classifier.predict_proba(x)[:, 1]  # type: ignore[attr-defined]
    return pl.DataFrame({"meter_id": features["meter_id"], "p": np.round(p, 6)})
