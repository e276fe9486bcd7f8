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
from .transforms.dates import parse_dates
from .transforms.evaluate import KS, evaluate_ranking

#: the injected kinds that are theft (窃电); evaluated together as "theft"
THEFT_KINDS: tuple[str, ...] = ("theft_bypass", "theft_stopped", "theft_reversed")

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
        return "\n".join(head + lines + notes)


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
    return EvaluationReport(rows=rows, at=at, dates=dates, meters=meters, ks=ks, notes=notes)
