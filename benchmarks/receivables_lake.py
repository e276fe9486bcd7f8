"""Synthetic lakes for the receivables stage, shared by ``bench_receivables.py`` (a county
month) and ``receivables_golden.py`` (a small lake of edge cases).

The callers draw their random numbers (in their own order, so a seed gives the same lake
as before) and build their payments; these functions shape and write the tables the
stage reads: the archive, bills_monthly, the clean payments with their reversals, and
the meter_daily day that marks how far the lake holds data.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from meterlake.lake import Lake
from meterlake.schemas.archive import LANDING as ARCHIVE
from meterlake.schemas.bills_monthly import BILLS_MONTHLY
from meterlake.schemas.meter_daily import METER_DAILY
from meterlake.schemas.payments import LANDING as PAYMENTS

D = dt.date


def fill(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """``frame`` with every column of ``schema`` it lacks, as nulls."""
    return frame.with_columns(pl.lit(None, schema[c]).alias(c) for c in schema.names() if c not in frame.columns)


def write_archive(
    lake: Lake,
    snapshot: dt.date,
    digits: tuple[int, int, int, int],
    per_area: int,
    per_feeder: int,
    direct: np.ndarray,
    customer_class: np.ndarray,
    prepay: np.ndarray | None = None,
    org_id: np.ndarray | None = None,
) -> pl.DataFrame:
    """One meter per customer, ``per_area`` customers an area and ``per_feeder`` a feeder;
    ``direct`` customers (10 kV) in no area. ``digits``: of the customer, meter, area and
    feeder numbers in their ids (``C``, ``M``, ``A``, ``F``).
    Written as the clean archive's ``snapshot`` partition; returned."""
    n = len(direct)
    c, m, a, f = digits
    archive = pl.DataFrame(
        {
            "snapshot_date": [snapshot] * n,
            "meter_id": [f"M{i:0{m}d}" for i in range(n)],
            "customer_id": pl.Series([f"C{i:0{c}d}" for i in range(n)]),
            "area_id": pl.Series([f"A{i // per_area:0{a}d}" for i in range(n)]).scatter(np.flatnonzero(direct), None),
            "feeder_id": [f"F{i // per_feeder:0{f}d}" for i in range(n)],
            "role": ["customer"] * n,
            "customer_class": customer_class,
            "prepay": prepay.astype(int) if prepay is not None else [0] * n,
            "org_id": org_id if org_id is not None else ["ORG01"] * n,
        }
    )
    lake.write_partition(ARCHIVE.clean, snapshot.isoformat(), fill(archive, ARCHIVE.clean.schema))
    return archive


def bills(
    archive: pl.DataFrame, month: str, amount_yuan: np.ndarray, prepay: np.ndarray, status: np.ndarray | list[str]
) -> pl.DataFrame:
    """One bill row per customer of ``archive`` for ``month`` (its period ending on the 28th)."""
    n = archive.height
    y, mo = int(month[:4]), int(month[5:])
    return pl.DataFrame(
        {
            "month": [month] * n,
            "customer_id": archive["customer_id"],
            "period_end": [D(y, mo, 28)] * n,
            "area_id": archive["area_id"],
            "customer_class": archive["customer_class"],
            "prepay": pl.Series(prepay, dtype=pl.Int8),
            "amount_yuan": amount_yuan,
            "status": status,
        }
    )


def write_bills(lake: Lake, month: str, frame: pl.DataFrame) -> None:
    lake.write_partition(BILLS_MONTHLY, month, fill(frame, BILLS_MONTHLY.schema))


def mark_held_to(lake: Lake, day: dt.date) -> None:
    """A meter_daily day: how far the lake holds data (the stage's as-of date)."""
    lake.write_partition(METER_DAILY, day.isoformat(), fill(pl.DataFrame({"date": [day]}), METER_DAILY.schema))


def write_payments(
    lake: Lake, pays: pl.DataFrame, reversed_share: float, seed: int, delay: pl.Expr, last: dt.date, source: str
) -> tuple[int, int]:
    """Write ``pays`` (txn_id, txn_type, customer_id, paid_date, amount_yuan, bill_month and
    perhaps channel) and a ``reversed_share`` sample of them reversed ``delay`` after the
    payment (not after ``last``) as the clean payments, one partition a day; the row counts
    (all, reversals)."""
    rev = pays.sample(fraction=reversed_share, seed=seed).with_columns(
        ref_txn_id=pl.col("txn_id"),
        txn_id=pl.format("R{}", pl.col("txn_id")),
        txn_type=pl.lit("reversal"),
        paid_date=pl.min_horizontal(pl.col("paid_date") + delay, pl.lit(last)),
    )
    out = pl.concat([pays, rev], how="diagonal")
    out = out.with_columns(
        *([] if "channel" in out.columns else [pl.lit("wechat").alias("channel")]),
        paid_at=pl.col("paid_date").cast(pl.Datetime("us")) + pl.duration(hours=9),
        source_file=pl.lit(source),
        source_line=pl.int_range(pl.len()) + 2,
        delivered_at=pl.lit(dt.datetime(2026, 3, 1)),
    )
    for (d,), part in out.partition_by("paid_date", as_dict=True).items():
        lake.write_partition(PAYMENTS.clean, d.isoformat(), fill(part, PAYMENTS.clean.schema))
    return out.height, rev.height
