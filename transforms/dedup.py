"""Resolve the rows of one partition delivered by several files. Pure.

CONTRACT §1: an identical repeat of a keyed row (a resent file, an overlap between
files) is dropped and counted; when repeats of a key disagree, the later delivery
wins and the earlier row goes to quarantine (``superseded``). Delivery order is
``(delivered_at, source_file, source_line)``, so the outcome does not depend on the
order files are read in, and re-running gives the same rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from .frames import filter_few_out, sort_if_needed

LINEAGE = ["source_file", "source_line", "delivered_at"]
#: from this many rows :func:`resolve` first checks whether the keys are in strictly increasing
#: order (no repeat possible) before it hashes every key (cheaper for a few rows)
ORDER_CHECK_ROWS = 50_000
ORDER = ["delivered_at", "source_file", "source_line"]


@dataclass
class Resolved:
    #: one row per key: the latest delivery
    clean: pl.DataFrame
    #: identical repeats that were dropped (lineage only)
    duplicates: pl.DataFrame
    #: earlier, disagreeing deliveries of a key (full rows)
    superseded: pl.DataFrame


def resolve(rows: pl.DataFrame, key: list[str]) -> Resolved:
    """Split ``rows`` into the winning row per key, identical repeats and superseded rows."""
    data_cols = [c for c in rows.columns if c not in LINEAGE]
    ordered = rows.height >= ORDER_CHECK_ROWS and strictly_increasing(rows, key)
    if ordered or not rows.select(pl.struct(key).is_duplicated().any()).item():
        # no key repeats: every row is the clean one, in the order it came (not copied)
        return Resolved(rows, rows.select(LINEAGE).clear(), rows.clear())
    rows = sort_if_needed(rows, ORDER)
    dup_key = rows.select(pl.struct(key).is_duplicated()).to_series()
    single = rows.filter(~dup_key)
    multi = rows.filter(dup_key)
    # of identical copies keep the last delivered (it carries the newest lineage)
    last_copy = multi.select(pl.struct(data_cols).is_last_distinct()).to_series()
    duplicates = multi.filter(~last_copy).select(LINEAGE)
    distinct = multi.filter(last_copy)
    # of disagreeing versions of a key, the latest delivery wins
    winner = distinct.select(pl.struct(ORDER).rank("ordinal", descending=True).over(key) == 1).to_series()
    clean = pl.concat([single, distinct.filter(winner)])
    return Resolved(clean, duplicates, distinct.filter(~winner))


def strictly_increasing(rows: pl.DataFrame, key: list[str]) -> bool:
    """Whether each row's ``key`` is greater than the row's before (by the columns in turn):
    then no key repeats. A comparison of neighbours, where hashing every key (a county
    day's rows as they are staged, in key order) costs a table of them; False where a key
    is null or the rows are in another order (the caller then looks for repeats)."""
    if rows.height < 2:
        return True
    later = pl.lit(False)
    for name in reversed(key):
        col, before = pl.col(name), pl.col(name).shift(1)
        later = (col > before) | ((col == before) & later)
    return bool(rows.select(later.slice(1).fill_null(False).all()).item())


def archive_valid_on(archive: pl.LazyFrame, day: dt.date) -> pl.LazyFrame:
    """The archive rows valid on ``day``: the latest snapshot dated on or before it.

    Each archive file is a full snapshot (CONTRACT §1): a meter absent from the
    latest snapshot has left service.
    """
    latest = archive.filter(pl.col("snapshot_date") <= day).select(pl.col("snapshot_date").max())
    return archive.join(latest, on="snapshot_date", how="semi")


def split_known_meters(rows: pl.DataFrame, meters: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows whose meter is in ``meters`` (a frame with meter_id), and the others.

    When every meter is known (the common case) the rows are handed back as they are, not copied.
    """
    known = _known(rows["meter_id"], meters["meter_id"])
    if known.all():
        return rows, rows.clear()
    return filter_few_out(rows, known), rows.filter(~known)


#: from this many rows or meters, the rows of :func:`split_known_meters` are looked up in
#: the meters by binary search when those come sorted (the ingest stage sorts them): half
#: the CPU of a hash table of them for a county day's curves (0.055 s against 0.10 s), and
#: a day's few thousand events need no hash table of the county's 500,000 meters (0.004
#: s against 0.055 s)
SEARCH_ROWS = 10_000


def _known(ids: pl.Series, meters: pl.Series) -> pl.Series:
    """Whether each of ``ids`` is one of ``meters`` (a null is not)."""
    large = ids.len() >= SEARCH_ROWS or meters.len() >= SEARCH_ROWS
    if large and meters.len() and not meters.null_count() and meters.is_sorted():
        at = meters.search_sorted(ids, side="left").clip(0, meters.len() - 1)
        return (meters.gather(at) == ids).fill_null(False).alias("meter_id")
    return ids.is_in(meters.implode()).fill_null(False)


def reserialise(columns: list[str]) -> pl.Expr:
    """A CSV line rebuilt from parsed values (for quarantining rows whose text is gone)."""
    return pl.concat_str([pl.col(c).cast(pl.String).fill_null("") for c in columns], separator=",")
