import polars as pl
from polars.testing import assert_frame_equal

from meterlake.transforms.frames import sort_if_needed


def test_sorted_frame_is_returned_as_is() -> None:
    df = pl.DataFrame({"k": ["a", "b", "b"], "t": [1, 1, 2]})
    assert sort_if_needed(df, ["k", "t"]) is df


def test_unsorted_frame_is_sorted_stably_nulls_last() -> None:
    df = pl.DataFrame({"k": ["b", None, "a", "b"], "v": [1, 2, 3, 4]})
    assert_frame_equal(sort_if_needed(df, ["k"]), pl.DataFrame({"k": ["a", "b", "b", None], "v": [3, 1, 4, 2]}))
