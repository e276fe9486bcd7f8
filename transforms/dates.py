"""Calendar arithmetic shared by the stages, the report and the CLI.

A *date* is a local calendar date (Asia/Shanghai, no daylight saving); a *month* is the
partition value ``YYYY-MM``. These helpers are the one place that turns between them,
so a stage never carries its own copy of "the days of a month".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import polars as pl

#: a month as ``(year, month)``: sorts and compares like the calendar
MonthKey = tuple[int, int]


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every date from ``first`` to ``last``, both included.

    >>> days(dt.date(2026, 1, 30), dt.date(2026, 2, 1))
    [datetime.date(2026, 1, 30), datetime.date(2026, 1, 31), datetime.date(2026, 2, 1)]
    """
    if last < first:
        raise ValueError(f"end date {last} is before start date {first}")
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def month_of(day: dt.date) -> str:
    """The month partition value (``YYYY-MM``) of a date."""
    return f"{day.year:04d}-{day.month:02d}"


def month_key(day: dt.date) -> MonthKey:
    """The ``(year, month)`` of a date."""
    return (day.year, day.month)


def month_label(month: MonthKey) -> str:
    """``(2026, 1)`` -> ``"2026-01"``."""
    return f"{month[0]:04d}-{month[1]:02d}"


def parse_month(month: str) -> dt.date:
    """The first day of a ``YYYY-MM`` month; ValueError naming the value otherwise."""
    try:
        first = dt.date.fromisoformat(f"{month}-01")
    except ValueError:
        raise ValueError(f"expected a month YYYY-MM, got {month!r}") from None
    if len(month) != 7:
        raise ValueError(f"expected a month YYYY-MM, got {month!r}")
    return first


def month_bounds(month: str) -> tuple[dt.date, dt.date]:
    """First and last day of a ``YYYY-MM`` month.

    >>> month_bounds("2024-02")
    (datetime.date(2024, 2, 1), datetime.date(2024, 2, 29))
    """
    first = parse_month(month)
    following = (first + dt.timedelta(days=31)).replace(day=1)
    return first, following - dt.timedelta(days=1)


def month_days(month: str) -> list[dt.date]:
    """Every date of a ``YYYY-MM`` month."""
    return days(*month_bounds(month))


def previous_month(day: dt.date) -> str:
    """The month before the one ``day`` is in."""
    return month_of(day.replace(day=1) - dt.timedelta(days=1))


def months_touched(dates: Iterable[dt.date]) -> list[str]:
    """The months (``YYYY-MM``) the dates fall in, sorted, each once."""
    return sorted({month_of(d) for d in dates})


def parse_dates(values: Iterable[str]) -> list[dt.date]:
    """ISO strings (partition values, asset-event extras) -> dates, in the given order."""
    return [dt.date.fromisoformat(v) for v in values]


def iso(dates: Iterable[dt.date]) -> list[str]:
    """Dates -> ISO strings, in the given order."""
    return [d.isoformat() for d in dates]


def split_by_date(frame: pl.DataFrame, days: Iterable[dt.date]) -> dict[dt.date, pl.DataFrame]:
    """``frame`` split by its ``date`` column, one frame per day of ``days`` (an empty one for
    a day without rows; rows of other days are left out)."""
    parts = {key[0]: part for key, part in frame.partition_by("date", as_dict=True, maintain_order=True).items()}
    return {d: parts.get(d, frame.clear()) for d in days}


def span(frame: pl.DataFrame, first: str, last: str | None = None) -> tuple[dt.date, dt.date]:
    """The smallest value of date column ``first`` and the largest of ``last`` (default:
    the same column) of a non-empty frame, typed as dates."""
    lo, hi = frame[first].min(), frame[last or first].max()
    if not isinstance(lo, dt.date) or not isinstance(hi, dt.date):
        raise TypeError(f"expected date columns {first!r}/{last or first!r}, found {lo!r} and {hi!r}")
    return lo, hi
