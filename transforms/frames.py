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
    if _leading_increases(frame[by[0]]):  # a meter's rows of a day, as they are mostly written
        return frame
    order = frame.select(pl.arg_sort_by(sort_keys(frame, by), maintain_order=True, nulls_last=True)).to_series()
    if order.is_sorted():  # a permutation in ascending order is the identity
        return frame
    if frame.height < RUNS_FROM_ROWS:  # a copy costs less than finding runs in the order
        return frame[order]
    moved = take_in_runs(frame, order)  # blocks of rows moved whole (files concatenated): slices, not a copy
    return frame[order] if moved is None else moved


#: from this many rows :func:`sort_if_needed` looks for runs of rows it can move whole
#: (:func:`take_in_runs`) instead of copying the frame in its order
RUNS_FROM_ROWS = 10_000


def _leading_increases(values: pl.Series) -> bool:
    """Whether ``values`` (a frame's first sort key: text, whole numbers or dates) hold no
    null and each is above the one before: the rows are then in order whatever the other
    keys. 2 ms for 500,000 meter numbers, where sorting them to find the order unchanged
    took 20-40 ms."""
    dtype = values.dtype
    if not (dtype == pl.String or dtype == pl.Date or dtype.is_integer()) or values.null_count():
        return False
    return bool((values.slice(1) > values.slice(0, values.len() - 1)).all())


def digit_code(values: pl.Series) -> pl.Series | None:
    """``values`` as UInt64 numbers when they are strings of ASCII digits all of the same
    length (at most 19, and no null): their order is then the strings' order (a meter
    number's, say), ties included. None otherwise."""
    if values.dtype != pl.String or values.null_count() or not values.len():
        return None
    lengths = values.str.len_bytes()
    lo, hi = lengths.min(), lengths.max()
    if lo != hi or not isinstance(hi, int) or not 0 < hi <= 19 or not values.str.contains("^[0-9]+$").all():
        return None
    return values.cast(pl.UInt64)


def sort_distinct(frame: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """``frame.sort(by)`` for keys that tell every row apart (a meter's row, a meter-day's),
    through :func:`sort_keys`: with distinct keys the order is the text sort's to the row."""
    if frame.height < 2 or not by:
        return frame
    return frame.sort(sort_keys(frame, by))


#: from this many rows the digit-string keys of :func:`sort_keys` are sorted as numbers;
#: below it as text, which costs less than the checks :func:`digit_code` makes (a few calls
#: into polars per column): measured, one stable sort by a meter number and a date, text
#: against numbers: 300 rows 0.10 against 0.35 ms, 30,000 rows 3.5 against 4.9 ms (rows
#: shuffled), 0.8 against 1.7 ms (rows in order)
DIGIT_CODE_ROWS = 100_000


def sort_keys(frame: pl.DataFrame, by: list[str]) -> list[pl.Expr]:
    """The columns ``by`` as sort keys, a column of equal-length digit strings
    (:func:`digit_code`: meter, customer and area numbers) as the numbers it spells: the
    same order at about half the cost for a large frame (500k meter numbers shuffled, one
    key: 73-80 ms as text, 41-43 ms as numbers). Other columns sort as they are, and every
    column of a frame under :data:`DIGIT_CODE_ROWS` rows."""
    if frame.height < DIGIT_CODE_ROWS:
        return [pl.col(c) for c in by]
    return [pl.col(c) if (code := digit_code(frame[c])) is None else pl.lit(code) for c in by]


#: at most this many rows dropped, :func:`filter_few_out` slices the rows kept instead of copying them
FEW_OUT = 32


def filter_few_out(frame: pl.DataFrame, keep: pl.Series) -> pl.DataFrame:
    """``frame.filter(keep)`` (a null in ``keep`` drops the row), without copying ``frame``
    when it drops at most :data:`FEW_OUT` rows: the kept runs between them are slices of it.

    A county day's curves with one unknown meter keep their 0.4 GB of values in place
    instead of holding them twice.
    """
    out = keep.not_().fill_null(True).arg_true()
    if out.len() > FEW_OUT:
        return frame.filter(keep)
    starts = [0, *(out + 1).to_list()]
    ends = [*out.to_list(), frame.height]
    parts = [frame.slice(a, b - a) for a, b in zip(starts, ends, strict=True) if b > a]
    return pl.concat(parts, rechunk=False) if parts else frame.clear()


#: at most this many runs of consecutive rows, :func:`take_in_runs` slices them instead of gathering
FEW_RUNS = 64


def take_in_runs(frame: pl.DataFrame, order: pl.Series) -> pl.DataFrame | None:
    """``frame[order]`` (``order`` a permutation of its rows) as slices of ``frame``, when ``order``
    is made of at most :data:`FEW_RUNS` runs of consecutive rows; None when it is not.

    A county day's curves with one row out of place are put in order by moving that row,
    not by copying their 0.4 GB of values.
    """
    if order.len() != frame.height:
        raise ValueError(f"order has {order.len()} positions for {frame.height} rows")
    if not order.len():
        return frame
    starts = order.diff().ne(1).fill_null(True).arg_true()
    if starts.len() > FEW_RUNS:
        return None
    at = [*starts.to_list(), order.len()]
    first = order.gather(starts).to_list()
    parts = [frame.slice(src, b - a) for src, a, b in zip(first, at, at[1:], strict=False)]
    return pl.concat(parts, rechunk=False)
