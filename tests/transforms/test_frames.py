import polars as pl
import pytest
from polars.testing import assert_frame_equal

from meterlake.transforms import frames
from meterlake.transforms.frames import sort_if_needed


@pytest.fixture(params=[0, frames.DIGIT_CODE_ROWS], ids=["digit-codes", "small-frame-as-text"])
def digit_rows(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Each sort test twice: digit-string keys sorted through their numbers, and as text
    (a frame under DIGIT_CODE_ROWS): the same order either way."""
    monkeypatch.setattr(frames, "DIGIT_CODE_ROWS", request.param)
    return request.param


def test_sorted_frame_is_returned_as_is() -> None:
    df = pl.DataFrame({"k": ["a", "b", "b"], "t": [1, 1, 2]})
    assert sort_if_needed(df, ["k", "t"]) is df


def test_unsorted_frame_is_sorted_stably_nulls_last(digit_rows: int) -> None:
    df = pl.DataFrame({"k": ["b", None, "a", "b"], "v": [1, 2, 3, 4]})
    assert_frame_equal(sort_if_needed(df, ["k"]), pl.DataFrame({"k": ["a", "b", "b", None], "v": [3, 1, 4, 2]}))


def test_few_rows_dropped_leave_the_kept_rows_as_slices() -> None:
    from meterlake.transforms.frames import filter_few_out

    df = pl.DataFrame({"k": ["a", "b", "c", "d", "e"], "v": [1.0, 2.0, 3.0, 4.0, 5.0]})
    keep = pl.Series([True, False, True, None, True])
    out = filter_few_out(df, keep)
    assert_frame_equal(out, pl.DataFrame({"k": ["a", "c", "e"], "v": [1.0, 3.0, 5.0]}))
    assert out.n_chunks() == 3  # three runs of kept rows, none copied
    assert filter_few_out(df, pl.Series([False] * 5)).height == 0
    assert filter_few_out(df, pl.Series([True] * 5)).n_chunks() == 1


def test_many_rows_dropped_are_filtered_as_usual() -> None:
    from meterlake.transforms import frames

    df = pl.DataFrame({"i": list(range(100))})
    keep = pl.Series([i % 2 == 0 for i in range(100)])  # 50 dropped, more than FEW_OUT
    out = frames.filter_few_out(df, keep)
    assert out["i"].to_list() == list(range(0, 100, 2)) and out.n_chunks() == 1


def test_rows_a_few_out_of_place_are_put_in_order_as_slices() -> None:
    from meterlake.transforms.frames import take_in_runs

    df = pl.DataFrame({"k": ["a", "b", "d", "e", "c", "f"], "v": [1, 2, 4, 5, 3, 6]})
    # the row of "c" (position 4) belongs between "b" and "d": runs 0-1, 4, 2-3, 5
    order = pl.Series([0, 1, 4, 2, 3, 5], dtype=pl.UInt32)
    out = take_in_runs(df, order)
    assert out is not None
    assert_frame_equal(out, pl.DataFrame({"k": ["a", "b", "c", "d", "e", "f"], "v": [1, 2, 3, 4, 5, 6]}))
    assert out.n_chunks() == 4  # four slices of the frame, none copied


def test_rows_in_many_runs_are_left_to_a_gather(monkeypatch) -> None:
    from meterlake.transforms import frames

    monkeypatch.setattr(frames, "FEW_RUNS", 2)
    monkeypatch.setattr(frames, "RUNS_FROM_ROWS", 0)
    df = pl.DataFrame({"v": [3, 2, 1]})
    assert frames.take_in_runs(df, pl.Series([2, 1, 0], dtype=pl.UInt32)) is None  # three runs of one row
    # sort_if_needed gathers then, and gives the same rows
    assert_frame_equal(frames.sort_if_needed(df, ["v"]), pl.DataFrame({"v": [1, 2, 3]}))


def test_blocks_moved_whole_are_sorted_as_slices(digit_rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    df = pl.DataFrame({"file": ["b", "b", "a", "a"], "line": [1, 2, 1, 2]})
    monkeypatch.setattr(frames, "RUNS_FROM_ROWS", 0)  # a large frame's rows
    out = sort_if_needed(df, ["file", "line"])
    assert_frame_equal(out, pl.DataFrame({"file": ["a", "a", "b", "b"], "line": [1, 2, 1, 2]}))
    assert out.n_chunks() == 2
    monkeypatch.setattr(frames, "RUNS_FROM_ROWS", 5)  # a small frame is copied in its order
    small = sort_if_needed(df, ["file", "line"])
    assert_frame_equal(small, out)
    assert small.n_chunks() == 1


def test_digit_code_only_for_equal_length_digit_strings() -> None:
    from meterlake.transforms.frames import digit_code

    code = digit_code(pl.Series(["0012", "0003", "1000"]))
    assert code is not None and code.to_list() == [12, 3, 1000]
    assert digit_code(pl.Series(["12", "003"])) is None  # lengths differ: "12" > "003", 12 > 3 but not as text
    assert digit_code(pl.Series(["1a", "003"])) is None
    assert digit_code(pl.Series(["+12", "012"])) is None
    assert digit_code(pl.Series(["12", None])) is None
    assert digit_code(pl.Series(["1" * 20, "2" * 20])) is None  # beyond UInt64
    assert digit_code(pl.Series([1, 2])) is None


def test_meter_numbers_sorted_as_text_stably(digit_rows: int) -> None:
    """Equal-length digit keys (sorted through their numbers): the text order, the tied
    rows in their order; keys of other lengths are sorted as text (10 < 9)."""
    frame = pl.DataFrame({"m": ["0012", "0003", "0012", "1000"], "v": [1, 2, 3, 4]})
    assert sort_if_needed(frame, ["m"])["v"].to_list() == [2, 1, 3, 4]
    frame = pl.DataFrame({"m": ["9", "10", "9"], "v": [1, 2, 3]})
    assert sort_if_needed(frame, ["m"])["v"].to_list() == [2, 1, 3]


def test_distinct_keys_sorted_as_the_text_sorts_them(digit_rows: int) -> None:
    """Meter and area numbers (equal-length digits) sort through their numbers, a date
    column beside them as it is: the order ``frame.sort`` gives, worked out by hand."""
    import datetime as dt

    from meterlake.transforms.frames import sort_distinct

    d1, d2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
    frame = pl.DataFrame(
        {
            "area_id": ["0002", "0001", "0002", "0001"],
            "meter_id": ["0100", "0999", "0020", "0999"],
            "date": [d1, d2, d1, d1],
            "v": [1, 2, 3, 4],
        }
    )
    assert sort_distinct(frame, ["area_id", "meter_id", "date"])["v"].to_list() == [4, 2, 3, 1]
    assert sort_distinct(frame.filter(pl.col("date") == d1), ["meter_id"])["v"].to_list() == [3, 1, 4]
    assert_frame_equal(sort_distinct(frame, ["area_id", "meter_id", "date"]), frame.sort("area_id", "meter_id", "date"))


def test_distinct_keys_of_other_text_sorted_as_text(digit_rows: int) -> None:
    """Keys of unequal lengths or with a null are sorted as text, nulls first as
    ``frame.sort`` puts them ("10" before "9")."""
    from meterlake.transforms.frames import sort_distinct

    frame = pl.DataFrame({"m": ["9", "10", None, "08"], "v": [1, 2, 3, 4]})
    assert sort_distinct(frame, ["m"])["v"].to_list() == [3, 4, 2, 1]
    frame = pl.DataFrame({"m": ["9", "10", "08"], "v": [1, 2, 3]})
    assert sort_distinct(frame, ["m"])["v"].to_list() == [3, 2, 1]


def test_keys_of_several_columns_sorted_stably_nulls_last(digit_rows: int) -> None:
    """A customer number beside a tariff name and a date: the numbers sort as text does,
    the ties of all three keep their order, a null tariff sorts last (worked out by hand)."""
    import datetime as dt

    d1, d2 = dt.date(2026, 3, 1), dt.date(2026, 2, 1)
    frame = pl.DataFrame(
        {
            "customer_id": ["0300000016", "0300000015", "0300000016", "0300000016", "0300000015"],
            "tariff_id": ["RES_TIER", "RES_TIER", None, "AGR_FLAT", "RES_TIER"],
            "from": [d1, d2, d1, d1, d2],
            "v": [1, 2, 3, 4, 5],
        }
    )
    assert sort_if_needed(frame, ["customer_id", "tariff_id", "from"])["v"].to_list() == [2, 5, 4, 1, 3]


@pytest.mark.parametrize(
    ("first", "returned_as_is"),
    [
        (["0001", "0002", "0010"], True),  # each above the one before: in order, whatever the dates
        (["0001", "0001", "0010"], False),  # a tie: the dates decide
        (["0001", None, "0010"], False),  # a null sorts last
        (["0002", "0001", "0010"], False),
    ],
)
def test_rows_whose_first_key_increases_are_in_order_without_a_sort(
    first: list, returned_as_is: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt

    df = pl.DataFrame({"m": first, "d": [dt.date(2026, 3, 3), dt.date(2026, 3, 1), dt.date(2026, 3, 2)]})
    if returned_as_is:  # found in order by the first key alone: no sort keys are even built

        def no_sort(*args: object) -> list[pl.Expr]:
            raise AssertionError("sorted to find the order unchanged")

        monkeypatch.setattr(frames, "sort_keys", no_sort)
    out = sort_if_needed(df, ["m", "d"])
    assert (out is df) is returned_as_is
    assert_frame_equal(out, df.sort("m", "d", nulls_last=True, maintain_order=True))


def test_large_frames_of_meter_numbers_are_sorted_through_the_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = frames.digit_code

    def counted(values: pl.Series) -> pl.Series | None:
        calls.append(values.len())
        return real(values)

    monkeypatch.setattr(frames, "digit_code", counted)
    small = pl.DataFrame({"m": ["0003", "0001", "0002"]})
    assert frames.sort_distinct(small, ["m"])["m"].to_list() == ["0001", "0002", "0003"]
    assert calls == []  # under DIGIT_CODE_ROWS: as text
    monkeypatch.setattr(frames, "DIGIT_CODE_ROWS", 3)
    assert frames.sort_distinct(small, ["m"])["m"].to_list() == ["0001", "0002", "0003"]
    assert calls == [3]
