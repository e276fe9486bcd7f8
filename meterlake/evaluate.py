"""``meterlake evaluate``: the anomaly ranking against a generated zone's ground truth.

Reads ``LANDING/_truth/injections.csv`` (written by ``meterlake generate``: kind,
meter_id, customer_id, area_id, start_date, end_date, detail) and the ``anomalies``
mart of ``LAKE``, and reports per injected kind — and for the theft kinds together —
precision and recall at 10/50/100 and ROC AUC over all meters
(:mod:`meterlake.transforms.evaluate`).

One score per meter: by default the highest score the meter reached on any
detection date the mart holds (``at="max"``: "was it ever near the top"); ``at="last"``
takes the last detection date only (the list an inspector gets that day). Meters the
ranking never named score 0. "All meters" are those of the lake's archive, plus any
meter the truth names.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from .lake import Lake
from .schemas.anomalies import ANOMALIES
from .schemas.archive import LANDING as ARCHIVE
from .schemas.loss_diagnosis import LOSS_DIAGNOSIS
from .transforms.dates import parse_dates
from .transforms.evaluate import KS, area_positions, detection_row, evaluate_ranking

#: the injected kinds that are theft (窃电); evaluated together as "theft"
BLUNT_THEFT_KINDS: tuple[str, ...] = ("theft_bypass", "theft_stopped", "theft_reversed")
#: the six false-data-injection attacks of Jokar, Arianpoo and Leung (2016) and their mix
ATTACK_KINDS: tuple[str, ...] = tuple(f"theft_{a}" for a in ("h1", "h2", "h3", "h4", "h5", "h6", "mix"))
THEFT_KINDS: tuple[str, ...] = (*BLUNT_THEFT_KINDS, "theft_partial", *ATTACK_KINDS)
#: per detection category: the truth kinds, and how close to the top of its area a hit must be
CATEGORIES: dict[str, tuple[tuple[str, ...], int]] = {
    "theft": (THEFT_KINDS, 5),
    "theft_blunt": (BLUNT_THEFT_KINDS, 5),
    "theft_partial": (("theft_partial",), 5),
    **{k: ((k,), 5) for k in ATTACK_KINDS},
    "multiplier": (("multiplier_error",), 1),
    "mapping": (("wrong_area",), 1),
}

TRUTH_FILE = Path("_truth") / "injections.csv"


class EvaluationError(ValueError):
    """The truth or the ranking is not there to evaluate."""


@dataclass
class EvaluationReport:
    """Per group of kinds: positives, precision/recall@k and ROC AUC."""

    rows: pl.DataFrame
    at: str
    dates: list[dt.date]
    meters: int
    ks: tuple[int, ...] = KS
    notes: list[str] = field(default_factory=list)
    #: theft, multiplier and mapping detection separately (see :func:`detection`)
    detection: pl.DataFrame | None = None

    def row(self, group: str) -> dict[str, object]:
        hit = self.rows.filter(pl.col("group") == group)
        if hit.height == 0:
            raise KeyError(f"no group {group!r} in the report; groups: {', '.join(self.rows['group'])}")
        return hit.row(0, named=True)

    def render(self) -> str:
        """A fixed-width text table, theft first."""

        def num(v: object) -> str:
            return "-" if v is None else f"{v:.3f}"

        span = f"{self.dates[0]} .. {self.dates[-1]}" if self.dates else "no dates"
        head = [
            f"anomaly ranking vs ground truth: {self.meters} meters, detection dates {span} "
            f"({len(self.dates)}), score per meter = {'max over dates' if self.at == 'max' else 'last date'}",
        ]
        cols = ["group", "positives"] + [f"{m}@{k}" for k in self.ks for m in ("precision", "recall")] + ["roc_auc"]
        widths = [max(16, max((len(g) for g in self.rows["group"]), default=0))] + [9] + [12] * (2 * len(self.ks)) + [8]
        lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cols, widths, strict=True)))]
        for r in self.rows.iter_rows(named=True):
            cells = (
                [str(r["group"]), str(r["positives"])]
                + [num(r[f"{m}@{k}"]) for k in self.ks for m in ("precision", "recall")]
                + [num(r["roc_auc"])]
            )
            lines.append(
                "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
            )
        notes = [f"note: {n}" for n in self.notes]
        return "\n".join(head + lines + self._render_detection() + notes)

    def _render_detection(self) -> list[str]:
        if self.detection is None or self.detection.height == 0:
            return []

        def num(v: object) -> str:
            return "-" if v is None else f"{v:.3f}"

        out = [
            "",
            "detection by category: theft from the anomalies ranking (hit = in the top 5 of its area), "
            "multiplier and mapping from loss_diagnosis (hit = rank 1 of its area)",
            f"{'category':<16}  {'positives':>9}  {'roc_auc':>8}  {'precision@10':>12}  {'precision@50':>12}  "
            f"{'area hits':>14}  {'hits, thieves apart':>19}  {'roc_auc, thieves apart':>22}",
        ]
        for r in self.detection.iter_rows(named=True):
            hits = f"{r['area_hits']}/{r['positives']} ({num(r['area_hit_share'])})"
            apart = "-" if r.get("area_hits_apart") is None else f"{r['area_hits_apart']}/{r['positives']}"
            out.append(
                f"{r['category']:<16}  {r['positives']:>9}  {num(r['roc_auc']):>8}  {num(r['precision@10']):>12}  "
                f"{num(r['precision@50']):>12}  {hits:>14}  {apart:>19}  {num(r.get('roc_auc_apart')):>22}"
            )
        notes = [
            "hits, thieves apart: a thief's position in its area counting only the meters that carry no injected "
            "theft (the other thieves of its area set apart); roc_auc, thieves apart: the same ROC AUC against "
            "only the meters that carry no injected theft (a thief ranked below another thief is not a miss)"
        ]
        return out + notes


def read_truth(landing: Path) -> pl.DataFrame:
    """``_truth/injections.csv`` as typed rows (kind, meter_id, ..., detail)."""
    path = Path(landing) / TRUTH_FILE
    if not path.exists():
        raise EvaluationError(
            f"{path}: expected the ground truth of a generated zone (meterlake generate), found no file"
        )
    return pl.read_csv(
        path,
        schema_overrides={
            "kind": pl.String,
            "meter_id": pl.String,
            "customer_id": pl.String,
            "area_id": pl.String,
            "start_date": pl.Date,
            "end_date": pl.Date,
            "detail": pl.String,
        },
    )


def meter_scores(lake: Lake, at: Literal["max", "last"] = "max") -> tuple[pl.DataFrame, list[dt.date]]:
    """One score per meter from the anomalies mart, and the detection dates read."""
    dates = parse_dates(lake.partitions(ANOMALIES))
    if not dates:
        raise EvaluationError(
            f"{lake.table_dir(ANOMALIES)}: expected anomalies partitions (run the anomalies stage), found none"
        )
    read = dates if at == "max" else dates[-1:]
    frame = lake.scan(ANOMALIES, read).select("meter_id", "score")
    return frame.group_by("meter_id").agg(pl.col("score").max()).collect().sort("meter_id"), read


def evaluate(
    landing: Path, lake: Path, at: Literal["max", "last"] = "max", ks: tuple[int, ...] = KS
) -> EvaluationReport:
    """Compare the anomalies mart of ``lake`` with the ground truth under ``landing``."""
    truth = read_truth(Path(landing))
    lk = Lake(Path(lake))
    scores, dates = meter_scores(lk, at)
    universe = lk.scan(ARCHIVE.clean).select("meter_id").unique().collect()["meter_id"]
    rows = evaluate_ranking(scores, truth, universe, groups={"theft": THEFT_KINDS}, ks=ks)
    meters = int(pl.concat([universe, truth["meter_id"].drop_nulls()]).n_unique())
    notes = []
    theft = rows.filter(pl.col("group") == "theft")
    if theft.height:
        n = int(theft["positives"][0])
        short = [k for k in ks if n < k]
        if short:
            notes.append(
                f"{n} theft meters: precision@k for k > {n} is at most {n}/k "
                f"({', '.join(f'@{k} <= {n / k:.2f}' for k in short)})"
            )
    report = EvaluationReport(rows=rows, at=at, dates=dates, meters=meters, ks=ks, notes=notes)
    report.detection = detection(lk, truth, scores, universe)
    return report


def detection(lake: Lake, truth: pl.DataFrame, scores: pl.DataFrame, universe: pl.Series) -> pl.DataFrame:
    """Theft, multiplier and mapping detection reported separately.

    Theft: the anomalies score (max over dates), positions within the meter's archive
    area. Multiplier and mapping: the loss_diagnosis score of that kind (max over
    windows) and the best rank the meter reached in its area; a hit is rank 1.
    """
    areas = (
        lake.scan(ARCHIVE.clean)
        .select("meter_id", "area_id")
        .filter(pl.col("area_id").is_not_null())
        .unique("meter_id", keep="last")
        .collect()
    )
    theft_pos = area_positions(scores, areas)
    # each thief among the meters of its area that carry no injected theft
    thieves = truth.filter(pl.col("kind").is_in(list(THEFT_KINDS)) & pl.col("meter_id").is_not_null())["meter_id"]
    theft_apart = area_positions(scores, areas, apart=thieves.to_list())
    diag_dates = lake.partitions(LOSS_DIAGNOSIS)
    diag = (
        lake.scan(LOSS_DIAGNOSIS, diag_dates).select("meter_id", "kind", "score", "rank").collect()
        if diag_dates
        else pl.DataFrame(schema={"meter_id": pl.String, "kind": pl.String, "score": pl.Float64, "rank": pl.Int32})
    )
    rows = []
    for name, (kinds, within) in CATEGORIES.items():
        pos = truth.filter(pl.col("kind").is_in(list(kinds)) & pl.col("meter_id").is_not_null())["meter_id"]
        if pos.len() == 0:
            continue
        if name.startswith("theft"):
            rows.append(detection_row(name, scores, pos, universe, theft_pos, within, theft_apart, thieves.to_list()))
            continue
        kind = "multiplier_suspect" if name == "multiplier" else "mapping_suspect"
        best = (
            diag.filter(pl.col("kind") == kind)
            .group_by("meter_id")
            .agg(pl.col("score").max(), pl.col("rank").min().cast(pl.Int64).alias("area_position"))
        )
        rows.append(detection_row(name, best.select("meter_id", "score"), pos, universe, best, within))
    return pl.DataFrame(rows)
