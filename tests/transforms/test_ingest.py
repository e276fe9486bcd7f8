"""Reader cases: every encoding/format the contract allows, and every bad-input kind."""

from __future__ import annotations

import datetime as dt
import gc
import gzip
import weakref

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from meterlake.schemas import LANDINGS, REASONS
from meterlake.transforms import ingest
from meterlake.transforms.ingest import DateWindow, decode, parse_landing_bytes

REG = LANDINGS["registers"]
PUR = LANDINGS["purchases"]
EVT = LANDINGS["events"]

CANONICAL = "meter_id,freeze_date,total_kwh,reverse_kwh\n0001,2026-01-01,100.5,0\n0002,2026-01-01,7.25,1.5\n"
EXPECTED = pl.DataFrame(
    {
        "meter_id": ["0001", "0002"],
        "freeze_date": [dt.date(2026, 1, 1)] * 2,
        "total_kwh": [100.5, 7.25],
        "reverse_kwh": [0.0, 1.5],
    }
)


def _core(parsed) -> pl.DataFrame:
    return parsed.rows.select("meter_id", "freeze_date", "total_kwh", "reverse_kwh")


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(CANONICAL.encode("utf-8"), id="utf8"),
        pytest.param(b"\xef\xbb\xbf" + CANONICAL.encode("utf-8"), id="utf8-bom"),
        pytest.param(
            "电能表资产编号,冻结日期,正向有功总,反向有功总\n0001,20260101,100.5,0\n0002,20260101,7.25,1.5\n".encode(
                "gbk"
            ),
            id="gbk-chinese-headers-yyyymmdd",
        ),
        pytest.param(
            "冻结日期,反向有功总,电能表资产编号,正向有功总\n2026-01-01,0,0001,100.5\n2026-01-01,1.5,0002,7.25\n".encode(
                "gb18030"
            ),
            id="gb18030-free-order",
        ),
        pytest.param(gzip.compress(CANONICAL.encode(), mtime=0), id="gzip"),
        pytest.param(CANONICAL.replace("\n", "\r\n").encode(), id="crlf"),
        pytest.param(
            b"meter_id,vendor_note,freeze_date,total_kwh,reverse_kwh\n0001,x,2026-01-01,100.5,0\n0002,y,2026-01-01,7.25,1.5\n",
            id="extra-column",
        ),
    ],
)
def test_reader_accepts_every_contract_format(raw: bytes) -> None:
    parsed = parse_landing_bytes(raw, REG, "registers/f.csv")
    assert parsed.quarantine.height == 0
    assert_frame_equal(_core(parsed), EXPECTED)
    assert parsed.rows["source_line"].to_list() == [2, 3]


def test_leading_zeros_and_lineage_are_kept() -> None:
    parsed = parse_landing_bytes(b"meter_id,freeze_date,total_kwh\n000123,2026-01-01,1\n", REG, "registers/x.csv")
    assert parsed.rows["meter_id"].to_list() == ["000123"]
    assert parsed.rows["source_file"].to_list() == ["registers/x.csv"]


def test_extra_columns_are_reported_not_kept() -> None:
    parsed = parse_landing_bytes(b"meter_id,freeze_date,total_kwh,foo\n1,2026-01-01,1,z\n", REG, "r.csv")
    assert parsed.stats.extra_columns == ["foo"]
    assert "foo" not in parsed.rows.columns


def _one_bad(body: str, spec=REG, header: str = "meter_id,freeze_date,total_kwh") -> pl.DataFrame:
    raw = f"{header}\n{body}".encode()
    parsed = parse_landing_bytes(raw, spec, "f.csv")
    assert parsed.stats.rows_read == parsed.rows.height + parsed.stats.rows_quarantined
    return parsed.quarantine


@pytest.mark.parametrize(
    ("body", "reason", "detail_part"),
    [
        pytest.param("0001,2026-01-01,1,9\n", "field_count", "expected 3 fields", id="too-many-fields"),
        pytest.param("0001,2026-01-01\n", "field_count", "found 2", id="too-few-fields"),
        pytest.param("0001,2026-13-01,1\n", "bad_date", "freeze_date", id="bad-date-month-13"),
        pytest.param("0001,2026-02-30,1\n", "bad_date", "2026-02-30", id="bad-date-feb-30"),
        pytest.param("0001,01/02/2026,1\n", "bad_date", "01/02/2026", id="bad-date-format"),
        pytest.param("0001,2026-01-01,12,5a\n", "field_count", "", id="number-with-extra-field"),
        pytest.param("0001,2026-01-01,1.2.3\n", "bad_number", "total_kwh", id="bad-number"),
        pytest.param("0001,2026-01-01,nan\n", "bad_number", "total_kwh", id="nan-is-not-a-reading"),
        pytest.param("0001,2026-01-01,-4\n", "out_of_range", "total_kwh", id="negative-register"),
        pytest.param(",2026-01-01,4\n", "missing_value", "meter_id", id="missing-key"),
        pytest.param("0001,2026-01-01,1\n0002,2026-01-01,", "truncated", "cut off", id="cut-off-mid-row"),
    ],
)
def test_bad_rows_go_to_quarantine_with_reason(body: str, reason: str, detail_part: str) -> None:
    q = _one_bad(body)
    assert q.height == 1
    assert q["reason"][0] == reason
    assert detail_part in q["detail"][0]
    assert reason in REASONS


def test_cut_off_file_with_complete_last_fields_is_still_truncated() -> None:
    q = _one_bad("0001,2026-01-01,1\n0002,2026-01-01,12")  # '12' may have been '123.4'
    assert q["reason"].to_list() == ["truncated"]
    assert q["line"].to_list() == [3]


def test_unknown_event_code() -> None:
    q = _one_bad("0001,2026-01-01 10:00:00,COVER_BLOWN\n", EVT, "meter_id,event_time,event_code")
    assert q["reason"].to_list() == ["unknown_code"]
    assert "COVER_BLOWN" in q["detail"][0]


def test_bad_timestamp() -> None:
    q = _one_bad("0001,2026-01-01 25:00:00,POWER_OFF\n", EVT, "meter_id,event_time,event_code")
    assert q["reason"].to_list() == ["bad_date"]


PUR_HEADER = "txn_id,txn_type,customer_id,meter_id,card_no,purchase_time,amount_yuan,purchase_seq,channel"


def test_negative_amount_is_quarantined_and_card_masked() -> None:
    q = _one_bad("T1,purchase,C1,M1,6222021234567890123,2026-01-01 10:00:00,-50,3,wechat\n", PUR, PUR_HEADER)
    assert q["reason"].to_list() == ["negative_amount"]
    assert "6222021234567890123" not in q["raw"][0]
    assert "****0123" in q["raw"][0]


def test_card_masked_even_when_the_row_does_not_split() -> None:
    q = _one_bad("T1,purchase,C1,M1,6222021234567890123,2026-01-01 10:00:00,50,3,wechat,extra\n", PUR, PUR_HEADER)
    assert q["reason"].to_list() == ["field_count"]
    assert "622202123456" not in q["raw"][0]
    assert q["raw"][0].count("0123") == 1


def test_missing_columns_quarantines_every_line_and_names_them() -> None:
    parsed = parse_landing_bytes(b"meter_id,total_kwh\n0001,5\n0002,6\n", REG, "r.csv")
    assert parsed.rows.height == 0
    assert parsed.quarantine["reason"].to_list() == ["missing_columns"] * 2
    assert "freeze_date" in parsed.quarantine["detail"][0]
    assert "found meter_id, total_kwh" in parsed.quarantine["detail"][0]


def test_wrong_encoding_is_a_whole_file_quarantine_row() -> None:
    parsed = parse_landing_bytes(CANONICAL.encode("utf-16"), REG, "r.csv")
    assert parsed.rows.height == 0
    assert parsed.quarantine["reason"].to_list() == ["encoding"]
    assert parsed.quarantine["line"].to_list() == [None]


def test_empty_file() -> None:
    parsed = parse_landing_bytes(b"", REG, "r.csv")
    assert parsed.quarantine["reason"].to_list() == ["empty_file"]


def test_cut_off_gzip_keeps_complete_lines_and_says_so() -> None:
    body = CANONICAL + "".join(f"{i:04d},2026-01-01,{i},0\n" for i in range(3, 3000))
    blob = gzip.compress(body.encode(), mtime=0)
    parsed = parse_landing_bytes(blob[: len(blob) // 2], REG, "r.csv.gz")
    reasons = parsed.quarantine["reason"].to_list()
    assert "truncated" in reasons
    assert parsed.quarantine.filter(pl.col("line").is_null())["reason"].to_list() == ["truncated"]
    assert parsed.rows.height > 100
    assert parsed.stats.rows_read == parsed.rows.height + parsed.stats.rows_quarantined


def test_gbk_file_cut_inside_a_character() -> None:
    raw = "电能表资产编号,冻结日期,正向有功总\n0001,2026-01-01,1\n0002,2026-01-01,中".encode("gbk")[:-1]
    parsed = parse_landing_bytes(raw, REG, "r.csv")
    assert parsed.rows.height == 1
    assert parsed.quarantine["reason"].to_list() == ["truncated"]


def test_quoted_fields_are_parsed_with_csv_rules() -> None:
    raw = b'meter_id,event_time,event_code,value\n0001,2026-01-01 10:00:00,POWER_OFF,"1.5"\n'
    parsed = parse_landing_bytes(raw, EVT, "e.csv")
    assert parsed.rows["value"].to_list() == [1.5]
    assert parsed.rows["event_date"].to_list() == [dt.date(2026, 1, 1)]


def test_blank_lines_keep_physical_numbering() -> None:
    parsed = parse_landing_bytes(b"meter_id,freeze_date,total_kwh\n\n0001,2026-01-01,x\n", REG, "r.csv")
    assert parsed.quarantine["line"].to_list() == [3]
    assert parsed.stats.blank_lines == 1


def test_header_only_file_is_empty_not_an_error() -> None:
    for raw in (b"meter_id,freeze_date,total_kwh\n", b"meter_id,freeze_date,total_kwh"):
        parsed = parse_landing_bytes(raw, REG, "r.csv")
        assert parsed.rows.height == 0 and parsed.quarantine.height == 0
        assert parsed.stats.rows_read == 0


ARC = LANDINGS["archive"]
ARC_HEAD = (
    "snapshot_date,meter_id,customer_id,area_id,feeder_id,role,customer_class,tariff_id,multiplier,register_max,prepay"
)
ARC_ROW = "2026-01-01,{m},C{m},A1,F1,customer,resident,RES_TIER,1,1000000,0"


@pytest.mark.parametrize(
    "value, reason, detail_part",
    [
        pytest.param("-3", "out_of_range", "pv_capacity_kw: must be >= 0, found -3", id="negative"),
        pytest.param("6kW", "bad_number", "pv_capacity_kw: expected a number, found '6kW'", id="non-numeric"),
        pytest.param("NaN", "bad_number", "pv_capacity_kw: expected a number, found 'NaN'", id="nan"),
    ],
)
def test_bad_pv_capacity_is_quarantined_never_read_as_zero(value: str, reason: str, detail_part: str) -> None:
    raw = f"{ARC_HEAD},pv_capacity_kw\n{ARC_ROW.format(m='0001')},5.5\n{ARC_ROW.format(m='0002')},{value}\n"
    parsed = parse_landing_bytes(raw.encode(), ARC, "archive/a.csv")
    assert parsed.rows["meter_id"].to_list() == ["0001"]
    assert parsed.quarantine.select("line", "reason").rows() == [(3, reason)]
    assert detail_part in parsed.quarantine["detail"].item()


def test_pv_capacity_empty_is_zero_and_absent_column_stays_empty() -> None:
    # the column is there: an empty field is "no PV" (0 kW)
    with_col = f"{ARC_HEAD},pv_capacity_kw\n{ARC_ROW.format(m='0001')},\n{ARC_ROW.format(m='0002')},4.2\n"
    got = parse_landing_bytes(with_col.encode(), ARC, "archive/a.csv").rows
    assert got["pv_capacity_kw"].to_list() == [0.0, 4.2]
    # a v1 archive without the column: nothing was said, so nothing is assumed
    without = f"{ARC_HEAD}\n{ARC_ROW.format(m='0001')}\n"
    got = parse_landing_bytes(without.encode(), ARC, "archive/b.csv").rows
    assert got["pv_capacity_kw"].to_list() == [None]


# --- regressions: inputs that crashed or leaked before ---------------------------------

WINDOW = DateWindow(dt.date(2000, 1, 1), dt.date(2099, 12, 31))
REG_HEADER = "meter_id,freeze_date,total_kwh\n"


def test_short_lines_in_a_large_file_are_field_count_rows_not_a_panic() -> None:
    body = [f"{i:06d},2026-01-01,{i}" for i in range(3000)]
    body[5], body[1500] = "M1,2", "M2"
    parsed = parse_landing_bytes((REG_HEADER + "\n".join(body) + "\n").encode(), REG, "r.csv", WINDOW)
    assert parsed.quarantine.select("line", "reason").rows() == [(7, "field_count"), (1502, "field_count")]
    assert parsed.rows.height == 2998


@pytest.mark.parametrize(
    ("line", "reason", "detail_part"),
    [
        pytest.param('"0002,2026-01-01,2', "malformed_line", "double quote", id="unbalanced-quote"),
        pytest.param('"00"02,2026-01-01,2', "malformed_line", "double quote", id="text-after-closing-quote"),
        pytest.param("00\r02,2026-01-01,2", "malformed_line", "carriage return", id="stray-cr"),
        pytest.param("00\x0002,2026-01-01,2", "malformed_line", "NUL", id="nul-byte"),
        pytest.param("00\x1f02,2026-01-01,2", "malformed_line", "NUL", id="unit-separator-byte"),
        pytest.param("0002,9999-12-31,2", "out_of_range", "freeze_date: must lie in 2000-01-01..2099-12-31", id="9999"),
        pytest.param("0002,19991231,2", "out_of_range", "found 1999-12-31", id="before-2000"),
    ],
)
def test_a_broken_line_is_one_quarantine_row_and_its_neighbours_are_clean(
    line: str, reason: str, detail_part: str
) -> None:
    raw = (REG_HEADER + "0001,2026-01-01,1\n" + line + "\n0003,2026-01-01,3\n").encode()
    parsed = parse_landing_bytes(raw, REG, "r.csv", WINDOW)
    assert parsed.rows["meter_id"].to_list() == ["0001", "0003"]
    assert parsed.quarantine.select("line", "reason").rows() == [(3, reason)]
    detail = parsed.quarantine["detail"][0]
    assert detail_part in detail and "\n" not in detail and len(detail) < 200


def test_a_quote_inside_a_meter_id_is_kept_as_text() -> None:
    parsed = parse_landing_bytes((REG_HEADER + 'M0"1,2026-01-01,1\n').encode(), REG, "r.csv", WINDOW)
    assert parsed.rows["meter_id"].to_list() == ['M0"1']


def test_cr_only_line_ends_are_line_breaks() -> None:
    raw = (REG_HEADER + "0001,2026-01-01,1\n0002,2026-01-01,2\n").replace("\n", "\r").encode()
    parsed = parse_landing_bytes(raw, REG, "r.csv", WINDOW)
    assert parsed.rows["meter_id"].to_list() == ["0001", "0002"]
    assert parsed.quarantine.height == 0
    assert parsed.stats.file_problems == ["line_ends: the lines end in CR only; read as line breaks"]


def test_an_event_at_year_one_is_out_of_range() -> None:
    raw = b"meter_id,event_time,event_code\n0001,0001-01-01 00:00:00,POWER_OFF\n"
    parsed = parse_landing_bytes(raw, EVT, "e.csv", WINDOW)
    assert parsed.quarantine["reason"].to_list() == ["out_of_range"]


CARD = "6222021234567890123"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            (PUR_HEADER + f"\nT1,purchase,C1,M1,{CARD},2026-01-01 10:00:00,-5,3,wechat\n").encode() + b"\x00" * 3,
            id="nul",
        ),
        pytest.param(
            (
                PUR_HEADER.replace("card_no", "card_number")
                + f"\nT1,purchase,C1,M1,{CARD},2026-01-01 10:00:00,-5,3,wechat\n"
            ).encode(),
            id="card-column-renamed",
        ),
        pytest.param(f"T1,purchase,C1,M1,{CARD}\nT2,purchase,C1,M1,{CARD}\n".encode(), id="no-header"),
        pytest.param(f"{PUR_HEADER}\nT1,purchase,C1,M1,{CARD}\n".encode("utf-16"), id="utf-16"),
        pytest.param(
            f'{PUR_HEADER}\nT1,"purchase,C1,M1,{CARD},2026-01-01 10:00:00,5,3,wechat\n'.encode(), id="broken-quote"
        ),
        pytest.param(
            f"{PUR_HEADER}\nT1,purchase,C1,M1,2026-01-01 10:00:00,{CARD},5,3,wechat\n".encode(), id="shifted-card"
        ),
    ],
)
def test_no_card_number_in_clear_in_quarantine_whatever_the_file(raw: bytes) -> None:
    parsed = parse_landing_bytes(raw, PUR, "p.csv", WINDOW)
    q = parsed.quarantine
    assert q.height >= 1
    text = "\n".join(q["raw"].to_list() + q["detail"].to_list() + parsed.stats.file_problems)
    assert CARD not in text and CARD[:12] not in text


def test_line_starts_are_byte_offsets_of_the_physical_lines() -> None:
    from meterlake.transforms.ingest import _line_starts, split_lines

    text = "h,x\nab\n\n电,c\n".encode()  # 电 is 3 bytes in UTF-8
    for t in (text, text.rstrip(b"\n")):  # with and without the final newline
        starts = _line_starts(t, split_lines(t))
        assert starts is not None and starts.to_list() == [0, 4, 7, 8]
    crlf = text.replace(b"\n", b"\r\n")
    assert _line_starts(crlf, split_lines(crlf)) is None  # the lines are not slices of the text


@pytest.mark.parametrize(
    ("body", "clean"),
    [
        # clean: the lines are sliced from the text
        ("M1,2026-01-01,1.5\nM2,2026-01-01,2.5\nM3,2026-01-01,3.5\n", ["M1", "M2", "M3"]),
        # blank line, CRLF, no final newline (the last line may be cut off: quarantined)
        ("M1,2026-01-01,1.5\n\nM2,2026-01-01,2.5\r\nM3,2026-01-01,3.5", ["M1", "M2"]),
        # a quoted line, a bad number, a short line, a multi-byte meter id
        (
            'M1,2026-01-01,1.5\n"M2",2026-01-01,2.5\nM3,2026-01-01,x\nM4,2026-01-01\n电,2026-01-01,4.5\n',
            ["M1", "M2", "电"],
        ),
    ],
)
def test_sliced_lines_parse_as_the_joined_lines(body: str, clean: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    raw = ("meter_id,freeze_date,total_kwh\n" + body).encode()
    monkeypatch.setattr(ingest, "CHUNK_ROWS", 2)  # chunks of two lines: slices inside the text
    sliced = parse_landing_bytes(raw, REG, "f.csv")
    monkeypatch.setattr(ingest, "_line_starts", lambda text, lines: None)
    joined = parse_landing_bytes(raw, REG, "f.csv")
    assert_frame_equal(sliced.rows, joined.rows)
    assert_frame_equal(sliced.quarantine, joined.quarantine)
    assert sorted(sliced.rows["meter_id"].to_list()) == sorted(clean)


def test_decode_takes_ascii_and_utf8_as_they_are_and_reads_anything_else_as_gb18030() -> None:
    assert decode(b"meter_id,kwh\n0001,1.5\n") == (b"meter_id,kwh\n0001,1.5\n", "utf-8")
    assert decode(b"\xef\xbb\xbfa,b\n") == (b"a,b\n", "utf-8-sig")
    text = "台区,电量\n".encode()
    assert decode(text) == (text, "utf-8")
    assert decode("台区,电量\n".encode("gb18030")) == (text, "gb18030")


def test_a_gb18030_decode_lets_its_callers_locals_go_without_the_garbage_collector() -> None:
    """The UTF-8 attempt's error is kept for the message should GB18030 fail too; with its
    traceback it held the decoding frame and every caller's (a county day: the parsed
    rows of two files, ~145 MB) in a cycle until the collector's next full pass."""

    class Rows:  # stands for what a caller holds while the file decodes
        pass

    def caller() -> weakref.ref[Rows]:
        rows = Rows()
        assert decode("台区,电量\n".encode("gb18030"))[1] == "gb18030"
        return weakref.ref(rows)

    gc.collect()
    gc.disable()
    try:
        held = caller()
        assert held() is None  # freed when caller returned, not by a collection
    finally:
        gc.enable()
    # the failure still names the UTF-8 error, raised from the GB18030 one
    with pytest.raises(UnicodeDecodeError) as failed:
        decode(b"a,b\n\xff\xff\xff\n" + b"c,d\n" * 3)
    assert failed.value.encoding == "utf-8" and isinstance(failed.value.__cause__, UnicodeDecodeError)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("0001,1.5\n" * 40, id="ascii-rows"),
        pytest.param("0001,1.5\n" * 20 + "台区,2\n" + "0002,3\n" * 20, id="chinese-row-in-the-middle"),
        pytest.param("0001,1.5\n" * 20 + "台区,2", id="chinese-last-line-without-newline"),
    ],
)
def test_gb18030_text_decoded_in_blocks_of_lines_is_the_text_decoded_whole(
    monkeypatch: pytest.MonkeyPatch, body: str
) -> None:
    monkeypatch.setattr(ingest, "GB_BLOCK", 16)  # blocks of a line or two
    raw = ("电表,电量\n" + body).encode("gb18030")
    assert decode(raw) == (("电表,电量\n" + body).encode(), "gb18030")


def test_gb18030_text_broken_in_a_later_block_fails_as_the_whole_text_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "GB_BLOCK", 16)
    # 0x81 0x0a: a lead byte without its trail byte, in the middle of the file
    raw = "电表,电量\n".encode("gb18030") + b"0001,1.5\n" * 10 + b"\x81\n" + b"0002,2\n" * 10
    with pytest.raises(UnicodeDecodeError) as blocks:
        decode(raw)
    monkeypatch.setattr(ingest, "GB_BLOCK", 1 << 30)  # one block: the text decoded whole
    with pytest.raises(UnicodeDecodeError) as whole:
        decode(raw)
    assert (blocks.value.start, blocks.value.reason) == (whole.value.start, whole.value.reason)
    # cut inside its last character (no newline after it): the rest is kept, marked
    cut = "电表,电量\n".encode("gb18030") + b"0001,1.5\n" * 10 + "台".encode("gb18030")[:1]
    monkeypatch.setattr(ingest, "GB_BLOCK", 16)
    assert decode(cut) == (("电表,电量\n" + "0001,1.5\n" * 10 + "\ufffd").encode(), "gb18030")
