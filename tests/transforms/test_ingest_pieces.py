"""The parse in pieces: a file read a few bytes at a time gives what the whole file gives.

Landing files are parsed in pieces of whole lines (``CHUNK_BYTES``), so a county file is
never held whole. Here the pieces are made tiny, so that bad rows, blank lines, quoted
lines and the file's cut-off last line fall on and across piece boundaries.
"""

from __future__ import annotations

import datetime as dt
import io

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from meterlake.landing import LandingReadError, open_landing_file, unchanged
from meterlake.schemas import LANDINGS
from meterlake.transforms.dedup import split_known_meters
from meterlake.transforms.ingest import parse_landing_bytes, parse_landing_file

REG = LANDINGS["registers"]
CURVES = LANDINGS["curves"]

#: one line per case; line 1 is the header, the last line has no newline
LINES = [
    "meter_id,freeze_date,total_kwh,reverse_kwh",
    "M01,2026-01-01,1.5,0",  # 2 clean
    "M02,2026-01-01,x,0",  # 3 bad_number
    "M03,2026-01-01, 2.5,0",  # 4 clean: a padded number gets its second chance
    "",  # 5 blank
    "M04,2026-13-01,1,0",  # 6 bad_date
    "M05,2026-01-01,1,0,9",  # 7 field_count
    '"M06",2026-01-01,3,0',  # 8 clean: quoted
    "M07,2026-01-01,inf,0",  # 9 bad_number: not finite
    "M08,2026-01-01,-1,0",  # 10 out_of_range: below the minimum of 0
    "电09,2026-01-01,4,0\r",  # 11 clean: a CRLF line end, a multi-byte meter id
    "M10,2026-01-01,5,0",  # 12 truncated: the file ends without a newline
]
RAW = "\n".join(LINES).encode()

CLEAN = {"M01": 1.5, "M03": 2.5, "M06": 3.0, "电09": 4.0}
QUARANTINED = [
    (3, "bad_number"),
    (6, "bad_date"),
    (7, "field_count"),
    (9, "bad_number"),
    (10, "out_of_range"),
    (12, "truncated"),
]


@pytest.mark.parametrize("chunk", [1, 5, 23, 64, 200, 10**9])
def test_bad_rows_across_piece_boundaries_end_where_a_whole_file_parse_puts_them(chunk: int) -> None:
    parsed = parse_landing_bytes(RAW, REG, "r.csv", chunk_bytes=chunk)
    rows = parsed.rows
    assert dict(zip(rows["meter_id"], rows["total_kwh"], strict=True)) == CLEAN
    assert rows["source_line"].to_list() == [2, 4, 8, 11]
    assert list(zip(parsed.quarantine["line"], parsed.quarantine["reason"], strict=True)) == QUARANTINED
    s = parsed.stats
    assert (s.rows_read, s.rows_parsed, s.rows_quarantined, s.blank_lines) == (10, 4, 6, 1)
    whole = parse_landing_bytes(RAW, REG, "r.csv", chunk_bytes=10**9)
    assert_frame_equal(parsed.rows, whole.rows)
    assert_frame_equal(parsed.quarantine, whole.quarantine)


def _curve_file(n: int, bad: dict[int, str]) -> bytes:
    """A curves file of ``n`` rows, values i/1000; ``bad`` replaces p5 of some rows (0-based)."""
    header = "meter_id,data_date," + ",".join(f"p{i}" for i in range(1, 97))
    lines = [header]
    for r in range(n):
        values = [f"{r / 1000:g}"] * 96
        if r in bad:
            values[4] = bad[r]
        lines.append(f"M{r:04d},2026-03-02," + ",".join(values))
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("chunk", [1, 700, 5000, 10**9])
def test_typed_pieces_reread_only_their_failing_rows_as_text(chunk: int) -> None:
    """Plain pieces are read with their numbers typed; a failing row is judged from its text."""
    raw = _curve_file(40, {3: "x", 17: " 0.5", 18: "NaN", 38: "1e999", 39: ""})
    parsed = parse_landing_bytes(raw, CURVES, "c.csv", chunk_bytes=chunk)
    q = parsed.quarantine
    # rows 3, 18 and 38 are lines 5, 20 and 40; a padded number is read as the number
    assert list(zip(q["line"], q["reason"], strict=True)) == [(5, "bad_number"), (20, "bad_number"), (40, "bad_number")]
    assert q["detail"].to_list() == [
        "p5: expected a number, found 'x'",
        "p5: expected a number, found 'NaN'",
        "p5: expected a number, found '1e999'",
    ]
    rows = parsed.rows
    assert rows.height == 37 and rows["source_line"].is_sorted()
    assert rows.filter(pl.col("meter_id") == "M0017")["p5"].to_list() == [0.5]
    assert rows.filter(pl.col("meter_id") == "M0020")["p96"].to_list() == [0.02]
    assert rows.filter(pl.col("meter_id") == "M0039")["p5"].to_list() == [None]  # empty: no value, not bad


def test_a_large_file_is_read_in_blocks_never_whole() -> None:
    raw = _curve_file(300, {150: "x"})
    sizes: list[int] = []

    class Recording(io.BytesIO):
        def read(self, size: int | None = -1, /) -> bytes:
            sizes.append(-1 if size is None else size)
            return super().read(size)

    parsed = parse_landing_file(Recording(raw), CURVES, "c.csv", chunk_bytes=1000)
    assert len(raw) > 50_000 and parsed.rows.height == 299
    assert max(sizes) == 4096 and -1 not in sizes  # the first block is 4 KiB (the encoding sniff)


def test_a_file_that_is_not_utf8_after_the_first_piece_is_decoded_whole() -> None:
    raw = ("meter_id,freeze_date,total_kwh\n" + "0001,2026-01-01,1\n" * 300 + "电表,2026-01-01,2\n").encode("gb18030")
    parsed = parse_landing_bytes(raw, REG, "r.csv", chunk_bytes=100)
    assert parsed.stats.encoding == "gb18030"
    assert parsed.rows["meter_id"].to_list()[-1] == "电表" and parsed.rows.height == 301


def test_a_landing_file_written_to_while_read_is_refused(tmp_path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(b"meter_id\n1\n")
    with open_landing_file(path) as fh:
        import os

        before = os.fstat(fh.fileno())
        unchanged(fh, before, path)  # untouched: fine
        with open(path, "ab") as out:
            out.write(b"2\n")
        with pytest.raises(LandingReadError, match="changed while it was read"):
            unchanged(fh, before, path)


def test_known_meters_are_split_without_copying_when_all_are_known() -> None:
    rows = pl.DataFrame({"meter_id": ["A", "B", None, "C"], "v": [1, 2, 3, 4]})
    known, unknown = split_known_meters(rows, pl.DataFrame({"meter_id": ["A", "B", "C", "D"]}))
    assert known["v"].to_list() == [1, 2, 4] and unknown["v"].to_list() == [3]  # a null meter is unknown
    every = rows.filter(pl.col("meter_id").is_not_null())
    known, unknown = split_known_meters(every, pl.DataFrame({"meter_id": ["C", "B", "A"]}))
    assert known is every and unknown.height == 0 and unknown.columns == every.columns


def test_dates_of_a_typed_piece_are_checked_like_the_others() -> None:
    raw = _curve_file(3, {}).replace(b"M0001,2026-03-02", b"M0001,2026-02-30")
    parsed = parse_landing_bytes(raw, CURVES, "c.csv")
    assert parsed.quarantine["reason"].to_list() == ["bad_date"]
    assert parsed.rows["data_date"].to_list() == [dt.date(2026, 3, 2)] * 2


@pytest.mark.parametrize("by_column", [True, False])
def test_rows_come_in_key_order_when_asked(by_column: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from meterlake.transforms import ingest

    monkeypatch.setattr(ingest, "SORT_BY_COLUMN", 1 if by_column else 10**9)
    body = ["M3,2026-01-02,3,0", "M1,2026-01-02,1,0", "M2,2026-01-01,x,0", "M2,2026-01-02,2,0", "M1,2026-01-01,5,0"]
    raw = ("meter_id,freeze_date,total_kwh,reverse_kwh\n" + "\n".join(body) + "\n").encode()
    parsed = parse_landing_bytes(raw, REG, "r.csv", chunk_bytes=20, order_by=["meter_id", "freeze_date"])
    rows = parsed.rows
    assert list(zip(rows["meter_id"], rows["freeze_date"].dt.day(), rows["source_line"], strict=True)) == [
        ("M1", 1, 6),
        ("M1", 2, 3),
        ("M2", 2, 5),
        ("M3", 2, 2),
    ]
    assert rows["total_kwh"].to_list() == [5.0, 1.0, 2.0, 3.0]
    assert parsed.quarantine["line"].to_list() == [4]
    in_lines = parse_landing_bytes(raw, REG, "r.csv", chunk_bytes=20)
    assert_frame_equal(rows, in_lines.rows.sort("meter_id", "freeze_date"))


@pytest.mark.parametrize("sorted_meters", [pytest.param(True, id="sorted-archive"), pytest.param(False, id="unsorted")])
def test_known_meters_by_binary_search_are_those_of_a_lookup(
    monkeypatch: pytest.MonkeyPatch, sorted_meters: bool
) -> None:
    from meterlake.transforms import dedup

    monkeypatch.setattr(dedup, "SEARCH_ROWS", 1)  # the binary search from the first row
    meters = ["M02", "M04", "M06", "M08"]
    rows = pl.DataFrame({"meter_id": ["M01", "M02", None, "M04", "M05", "M08", "M09", "M02", ""], "v": list(range(9))})
    archive = pl.DataFrame({"meter_id": meters if sorted_meters else meters[::-1]})
    known, unknown = split_known_meters(rows, archive)
    # before the first id, between ids, after the last, a null, an empty id: unknown
    assert known["v"].to_list() == [1, 3, 5, 7]
    assert unknown["v"].to_list() == [0, 2, 4, 6, 8]
    monkeypatch.setattr(dedup, "SEARCH_ROWS", 10**9)  # a hash lookup of the ids
    assert_frame_equal(split_known_meters(rows, archive)[0], known)


def test_a_few_rows_are_looked_up_in_many_sorted_meters_by_binary_search(monkeypatch: pytest.MonkeyPatch) -> None:
    # a day's few events against a county's meters: no hash table of the meters
    from meterlake.transforms import dedup

    monkeypatch.setattr(dedup, "SEARCH_ROWS", 4)
    meters = pl.Series("meter_id", ["M02", "M04", "M06", "M08", "M10"]).sort()
    ids = pl.Series("meter_id", ["M04", "M05", None])

    def no_hash_table(*args: object, **kwargs: object) -> pl.Series:
        raise AssertionError("looked up through a hash table")

    monkeypatch.setattr(pl.Series, "is_in", no_hash_table)
    assert dedup._known(ids, meters).to_list() == [True, False, False]


@pytest.mark.parametrize("size", [1, 3, 4, 5, 7, 64])
@pytest.mark.parametrize(
    "text",
    [b"", b"a\n", b"ab\ncd\n", b"ab\ncd", b"abcdefghij\nk\n", b"\n\n\n", b"a\nbcdefghijklmnop\nq\nrs"],
)
def test_a_streamed_file_comes_in_pieces_of_whole_lines(text: bytes, size: int) -> None:
    from meterlake.transforms.ingest import _stream_pieces

    fh = io.BytesIO(text)
    pieces = list(_stream_pieces(fh.read(size), fh.read, size))
    assert b"".join(pieces) == text
    assert all(type(p) is bytes and p for p in pieces)
    assert all(p.endswith(b"\n") for p in pieces[:-1])  # only the last may lack its newline
    assert all(p.count(b"\n") <= max(1, size) for p in pieces[:-1])  # about one block each
