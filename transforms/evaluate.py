"""Ranking quality against ground truth: precision and recall at k, ROC AUC. Pure.

Inspectors work down a ranked list, so what matters is how many true cases sit near
the top (docs/domain.md#theft-screening):

* precision@k = true cases among the top k / k;
* recall@k = true cases among the top k / all true cases;
* ROC AUC = the probability that a random true case scores above a random other
  meter (ties count one half): the Mann-Whitney U statistic over n_pos x n_neg,
  computed from average ranks, so tied scores (e.g. the many meters at 0) are exact.

The list is ordered by score descending, ties by meter_id (the order the anomalies
mart gives them), so the figures are deterministic. A meter the ranking never named
scores 0.

>>> s = pl.Series([0.9, 0.8, 0.1, 0.0]); y = pl.Series([1, 0, 1, 0])
>>> roc_auc(s, y)
0.75
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import polars as pl

#: the cut-offs the report shows
KS: tuple[int, ...] = (10, 50, 100)


def roc_auc(scores: pl.Series, labels: pl.Series) -> float | None:
    """ROC AUC of ``scores`` for binary ``labels`` (1 = positive); None with one class only."""
    frame = pl.DataFrame({"s": scores.cast(pl.Float64), "y": labels.cast(pl.Int64)})
    n_pos = int(frame["y"].sum())
    n_neg = frame.height - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = frame.select(pl.col("s").rank("average").alias("r"), "y")
    rank_sum = float(ranks.filter(pl.col("y") == 1)["r"].sum())
    u = rank_sum - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def ranked(scores: pl.DataFrame, universe: pl.Series | None = None) -> pl.DataFrame:
    """meter_id and score over ``universe`` (absent meters score 0), best first.

    ``scores``: meter_id, score (one row per meter). Ordered by score descending, then
    meter_id; ``position`` is 1-based.
    """
    s = scores.select(pl.col("meter_id").cast(pl.String), pl.col("score").cast(pl.Float64))
    if universe is not None:
        u = pl.DataFrame({"meter_id": universe.cast(pl.String)}).unique()
        s = u.join(s, on="meter_id", how="full", coalesce=True)
    s = s.with_columns(pl.col("score").fill_null(0.0))
    s = s.sort(["score", "meter_id"], descending=[True, False])
    return s.with_columns(pl.int_range(1, pl.len() + 1).alias("position"))


def at_k(ranked_list: pl.DataFrame, positives: Iterable[str], ks: Sequence[int] = KS) -> dict[str, float | int | None]:
    """Precision and recall at each k, and ROC AUC, of one set of positives."""
    pos = pl.Series("meter_id", sorted(set(positives)), dtype=pl.String)
    labelled = ranked_list.with_columns(pl.col("meter_id").is_in(pos.implode()).cast(pl.Int64).alias("y"))
    n_pos = int(labelled["y"].sum())
    out: dict[str, float | int | None] = {"meters": labelled.height, "positives": n_pos}
    for k in ks:
        hits = int(labelled.filter(pl.col("position") <= k)["y"].sum())
        out[f"precision@{k}"] = hits / k
        out[f"recall@{k}"] = hits / n_pos if n_pos else None
    out["roc_auc"] = roc_auc(labelled["score"], labelled["y"])
    return out


def evaluate_ranking(
    scores: pl.DataFrame,
    truth: pl.DataFrame,
    universe: pl.Series | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
    ks: Sequence[int] = KS,
) -> pl.DataFrame:
    """One row per group of truth kinds and per kind: positives, precision/recall@k, AUC.

    ``truth``: kind, meter_id (rows without a meter are ignored). ``groups`` names
    sets of kinds evaluated together (e.g. ``{"theft": THEFT_KINDS}``); they come
    first, then every kind in ``truth`` alphabetically. For a kind, the negatives are
    all other meters of the universe (meters of other kinds included).
    """
    t = truth.select(pl.col("kind").cast(pl.String), pl.col("meter_id").cast(pl.String)).filter(
        pl.col("meter_id").is_not_null() & (pl.col("meter_id") != "")
    )
    u = universe
    if u is not None:
        u = pl.concat([u.cast(pl.String), t["meter_id"]]).unique()
    lst = ranked(scores, u)
    rows = []
    for name, kinds in (groups or {}).items():
        meters = t.filter(pl.col("kind").is_in(list(kinds)))["meter_id"].to_list()
        rows.append({"group": name, "kinds": ", ".join(kinds), **at_k(lst, meters, ks)})
    for kind in sorted(set(t["kind"].to_list())):
        meters = t.filter(pl.col("kind") == kind)["meter_id"].to_list()
        rows.append({"group": kind, "kinds": kind, **at_k(lst, meters, ks)})
    schema = {
        "group": pl.String(),
        "kinds": pl.String(),
        "meters": pl.Int64(),
        "positives": pl.Int64(),
        **{f"{m}@{k}": pl.Float64() for k in ks for m in ("precision", "recall")},
        "roc_auc": pl.Float64(),
    }
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


def area_positions(scores: pl.DataFrame, areas: pl.DataFrame, apart: Iterable[str] = ()) -> pl.DataFrame:
    """Each meter's position within its area, best first (meter_id, area_id, score, area_position).

    ``scores``: meter_id, score; ``areas``: meter_id, area_id (the meters ranked: every
    meter of the area, absent ones scoring 0). Ties break by meter_id; a meter scoring 0
    has no position (an inspector is never sent to it). ``apart``: meters that hold no
    place, so every position counts only the other meters above it: with the injected
    thefts set apart, each thief's position among the area's meters that steal nothing
    (a thief is not a miss because other thieves of its area rank first; meters with a
    wrong multiplier or area still count).
    """
    s = areas.select(pl.col("meter_id").cast(pl.String), pl.col("area_id").cast(pl.String)).join(
        scores.select(pl.col("meter_id").cast(pl.String), pl.col("score").cast(pl.Float64)), on="meter_id", how="left"
    )
    s = s.with_columns(pl.col("score").fill_null(0.0)).sort(
        ["area_id", "score", "meter_id"], descending=[False, True, False]
    )
    counted = ~pl.col("meter_id").is_in(pl.Series(sorted(set(apart)), dtype=pl.String).implode())
    # the counted meters before this one, and this one
    pos = (counted.cast(pl.Int64).cum_sum().over("area_id") - counted.cast(pl.Int64) + 1).cast(pl.Int64)
    return s.with_columns(area_position=pl.when(pl.col("score") > 0).then(pos))


def detection_row(
    name: str,
    scores: pl.DataFrame,
    positives: Iterable[str],
    universe: pl.Series,
    positions: pl.DataFrame,
    within: int,
    positions_apart: pl.DataFrame | None = None,
    others: Iterable[str] | None = None,
) -> dict[str, object]:
    """ROC AUC, precision at 10 and 50, and the share of positives at a position <= ``within`` of their area.

    ``positions``: meter_id, area_position (from :func:`area_positions` or a mart's rank);
    ``positions_apart``: the same with the other thieves set apart (``area_hits_apart``:
    the positives within ``within`` of the area's meters that steal nothing). ``others``:
    meters left out of the negatives of a second ROC AUC (``roc_auc_apart``: the positives
    against the meters that carry no injected theft, so a partial thief ranked below a
    blunt one is not counted as a miss; the positives themselves are never left out).
    """
    pos = sorted(set(positives))
    lst = ranked(scores, universe)
    base = at_k(lst, pos, ks=(10, 50))
    auc_apart = None
    if others is not None:
        drop = pl.Series(sorted(set(others) - set(pos)), dtype=pl.String)
        kept = lst.filter(~pl.col("meter_id").is_in(drop.implode()))
        auc_apart = at_k(kept, pos, ks=())["roc_auc"]

    def hits_in(p: pl.DataFrame) -> int:
        return int(p.filter(pl.col("meter_id").is_in(pos) & (pl.col("area_position") <= within))["meter_id"].n_unique())

    hits = hits_in(positions)
    apart = None if positions_apart is None else hits_in(positions_apart)
    return {
        "category": name,
        "positives": len(pos),
        "roc_auc": base["roc_auc"],
        "roc_auc_apart": auc_apart,
        "precision@10": base["precision@10"],
        "precision@50": base["precision@50"],
        "in_area_top": within,
        "area_hits": hits,
        "area_hit_share": hits / len(pos) if pos else None,
        "area_hits_apart": apart,
    }
