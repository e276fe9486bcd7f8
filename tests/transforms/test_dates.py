"""The dates module, on hand-computed calendar cases."""

from __future__ import annotations

import datetime as dt
import itertools

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterlake.transforms import dates

D = dt.date


def test_days_includes_both_ends_and_crosses_months() -> None:
    assert dates.days(D(2026, 1, 30), D(2026, 2, 2)) == [D(2026, 1, 30), D(2026, 1, 31), D(2026, 2, 1), D(2026, 2, 2)]
    assert dates.days(D(2026, 3, 5), D(2026, 3, 5)) == [D(2026, 3, 5)]


def test_days_refuses_a_reversed_range() -> None:
    with pytest.raises(ValueError, match="end date 2026-01-01 is before start date 2026-01-02"):
        dates.days(D(2026, 1, 2), D(2026, 1, 1))


@pytest.mark.parametrize(
    "month, first, last",
    [
        pytest.param("2024-02", D(2024, 2, 1), D(2024, 2, 29), id="leap-february"),
        pytest.param("2026-02", D(2026, 2, 1), D(2026, 2, 28), id="february"),
        pytest.param("2025-12", D(2025, 12, 1), D(2025, 12, 31), id="december"),
        pytest.param("2026-04", D(2026, 4, 1), D(2026, 4, 30), id="thirty-days"),
    ],
)
def test_month_bounds(month: str, first: dt.date, last: dt.date) -> None:
    assert dates.month_bounds(month) == (first, last)
    assert len(dates.month_days(month)) == last.day


@pytest.mark.parametrize("bad", ["2026-1", "2026-13", "26-01", "2026-01-01", ""])
def test_a_bad_month_names_the_value(bad: str) -> None:
    with pytest.raises(ValueError, match="expected a month YYYY-MM"):
        dates.month_bounds(bad)


def test_months() -> None:
    assert dates.month_of(D(2026, 1, 31)) == "2026-01"
    assert dates.month_key(D(2026, 1, 31)) == (2026, 1)
    assert dates.month_label((2026, 1)) == "2026-01"
    assert dates.previous_month(D(2026, 1, 15)) == "2025-12"
    assert dates.months_touched([D(2026, 2, 1), D(2026, 1, 31), D(2026, 1, 1)]) == ["2026-01", "2026-02"]


def test_iso_round_trip() -> None:
    days = [D(2026, 1, 2), D(2026, 1, 1)]
    assert dates.iso(days) == ["2026-01-02", "2026-01-01"]
    assert dates.parse_dates(dates.iso(days)) == days


def test_span_of_date_columns() -> None:
    frame = pl.DataFrame({"a": [D(2026, 1, 3), D(2026, 1, 1)], "b": [D(2026, 1, 9), D(2026, 1, 4)]})
    assert dates.span(frame, "a") == (D(2026, 1, 1), D(2026, 1, 3))
    assert dates.span(frame, "a", "b") == (D(2026, 1, 1), D(2026, 1, 9))
    with pytest.raises(TypeError, match="expected date columns"):
        dates.span(pl.DataFrame({"a": [1]}), "a")


@given(st.dates(D(2000, 1, 1), D(2100, 12, 31)), st.integers(0, 400))
def test_days_is_a_contiguous_run(first: dt.date, n: int) -> None:
    run = dates.days(first, first + dt.timedelta(days=n))
    assert len(run) == n + 1
    assert all((b - a).days == 1 for a, b in itertools.pairwise(run))
    assert set(dates.months_touched(run)) == {dates.month_of(d) for d in run}
