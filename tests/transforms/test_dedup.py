"""Repeats of a key across deliveries (transforms/dedup.py)."""

from __future__ import annotations

import datetime as dt

import polars as pl
from polars.testing import assert_frame_equal

from meterlake.transforms.dedup import resolve, strictly_increasing

D = dt.date(2026, 3, 2)


def test_keys_each_greater_than_the_one_before_cannot_repeat() -> None:
    rows = pl.DataFrame({"m": ["a", "a", "b"], "d": [D, D + dt.timedelta(1), D]})
    assert strictly_increasing(rows, ["m", "d"])  # (a, 2), (a, 3), (b, 2): each greater
    assert not strictly_increasing(rows, ["d", "m"])  # (2, a), (3, a), (2, b): the third is smaller
    assert not strictly_increasing(pl.DataFrame({"m": ["a", "a"], "d": [D, D]}), ["m", "d"])  # a repeat
    assert not strictly_increasing(pl.DataFrame({"m": ["a", None]}), ["m"])  # a null key: not known
    assert strictly_increasing(pl.DataFrame({"m": ["a"]}), ["m"])


def test_rows_in_key_order_without_repeats_come_back_as_they_are(monkeypatch) -> None:
    from meterlake.transforms import dedup

    monkeypatch.setattr(dedup, "ORDER_CHECK_ROWS", 2)  # the order is checked from 2 rows here
    rows = pl.DataFrame(
        {
            "m": ["a", "b"],
            "v": [1.0, 2.0],
            "source_file": ["f", "f"],
            "source_line": [2, 3],
            "delivered_at": [dt.datetime(2026, 3, 3)] * 2,
        }
    )
    res = resolve(rows, ["m"])
    assert res.clean is rows
    assert res.duplicates.height == 0 and res.superseded.height == 0


def test_repeats_out_of_key_order_are_still_found() -> None:
    late, early = dt.datetime(2026, 3, 4), dt.datetime(2026, 3, 3)
    rows = pl.DataFrame(
        {
            "m": ["b", "a", "b"],
            "v": [1.0, 2.0, 1.0],
            "source_file": ["f1", "f1", "f2"],
            "source_line": [2, 3, 2],
            "delivered_at": [early, early, late],
        }
    )
    res = resolve(rows, ["m"])
    # the identical repeat of "b" is counted once, the later delivery kept
    assert_frame_equal(
        res.duplicates, pl.DataFrame({"source_file": ["f1"], "source_line": [2], "delivered_at": [early]})
    )
    assert sorted(res.clean["m"].to_list()) == ["a", "b"]
    assert res.clean.filter(pl.col("m") == "b")["source_file"].to_list() == ["f2"]
