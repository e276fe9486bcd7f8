"""Small frame helpers shared by the transforms. Pure."""

from __future__ import annotations

import polars as pl


def sort_if_needed(frame: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """``frame`` sorted by ``by`` (stable), without copying it when it already is.

    Sorting a 100-column county-day frame costs seconds; the sort keys alone are
    cheap to check. Nulls sort last.
    """
    if frame.height < 2 or not by:
        return frame
    order = frame.select(pl.arg_sort_by(by, maintain_order=True, nulls_last=True)).to_series()
    if order.is_sorted():  # a permutation in ascending order is the identity
        return frame
    return frame[order]
