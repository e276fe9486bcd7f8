"""Parse one landing file into typed rows and quarantine rows. Pure: bytes in, frames out.

Every data line of a file ends in exactly one of the two outputs:

* ``rows``: the typed fields of the landing contract, the partition date, and lineage
  (``source_file``, ``source_line``);
* ``quarantine``: the line's number, a stable reason code (``schemas.quarantine.REASONS``),
  a detail naming the column and the value, and the raw text with personal data masked.

Whole-file problems (not decodable, no header, missing columns) are quarantine rows
too: one per data line where lines can be read, else one row with an empty ``line``.

The file is split into physical lines by polars' CSV reader with a separator that
cannot occur, so line numbers are exact (blank lines are kept as nulls) and the work
is vectorised; fields are split on commas. Lines holding a double quote are parsed
with the csv module (rare in head-end exports).
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import polars as pl

from ..schemas.landing import Field, Landing

T = TypeVar("T")

#: field separator used by every landing file (CONTRACT §1: CSV)
SEP = ","
#: a digit run this long in a raw purchases line is treated as a card number and masked
CARD_DIGITS = 12
#: any such digit run (keeping its last 4 digits) in a raw purchases line or file
CARD_PATTERN = rf"\d{{{CARD_DIGITS - 4},}}(\d{{4}})"
_CARD_RUN = re.compile(CARD_PATTERN)
#: lines parsed at a time: bounds memory for county-size files (~100 MB per chunk of curves)
CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class DateWindow:
    """The dates a landing row may carry; anything outside is quarantined ``out_of_range``."""

    earliest: dt.date
    latest: dt.date


@dataclass
class ParseStats:
    """What happened to one file."""

    encoding: str = ""
    gzip: bool = False
    #: data lines (physical lines after the header, blank lines excluded)
    rows_read: int = 0
    rows_parsed: int = 0
    rows_quarantined: int = 0
    blank_lines: int = 0
    #: header columns not in the contract: kept out of the clean tables
    extra_columns: list[str] = field(default_factory=list)
    #: one-line problems with the file as a whole
    file_problems: list[str] = field(default_factory=list)


@dataclass
class Parsed:
    rows: pl.DataFrame
    quarantine: pl.DataFrame
    stats: ParseStats


QUARANTINE_SCHEMA = pl.Schema(
    {
        "source_file": pl.String(),
        "line": pl.Int64(),
        "reason": pl.String(),
        "detail": pl.String(),
        "raw": pl.String(),
    }
)


def empty_rows(spec: Landing) -> pl.DataFrame:
    return _cached(spec, None, "empty", lambda: _empty_rows(spec)).clear()


def _empty_rows(spec: Landing) -> pl.DataFrame:
    schema = {f.name: f.dtype for f in spec.fields}
    schema[spec.date_field] = pl.Date()
    schema |= {"source_file": pl.String(), "source_line": pl.Int64()}
    return pl.DataFrame(schema=schema)


#: what is built once per landing spec (and date window): expressions and empty frames.
#: Building them costs more than parsing a small file, and a run parses hundreds.
_BUILT: dict[tuple[int, DateWindow | None, str], tuple[Landing, Any]] = {}


def _cached(spec: Landing, window: DateWindow | None, what: str, build: Callable[[], T]) -> T:
    key = (id(spec), window, what)
    hit = _BUILT.get(key)
    if hit is not None and hit[0] is spec:  # the same spec object, not one reusing its id
        return cast(T, hit[1])
    if len(_BUILT) > 256:
        _BUILT.clear()
    value = build()
    _BUILT[key] = (spec, value)
    return value


# --- bytes -> text ---------------------------------------------------------------


def decompress(raw: bytes) -> tuple[bytes, bool]:
    """Gunzip ``raw``; return (data, complete). A cut-off stream yields what it held."""
    try:
        return gzip.decompress(raw), True
    except (EOFError, zlib.error, gzip.BadGzipFile):
        d = zlib.decompressobj(wbits=47)  # gzip or zlib header, auto-detected
        try:
            out = d.decompress(raw)
        except zlib.error:
            return b"", False
        return out, d.eof


def decode(data: bytes) -> tuple[bytes, str]:
    """UTF-8 bytes of ``data`` and the encoding it arrived in.

    UTF-8 (with or without BOM) is taken as is; anything else is read as GB18030 (a
    superset of GBK and GB2312). A file cut off inside a multi-byte character keeps
    its last line (marked by a replacement character), which then fails the field
    count. Raises ``UnicodeDecodeError`` when neither encoding fits.
    """
    if _utf16_or_binary(data):
        # UTF-16/32 (or binary): GB18030 would "decode" it into garbage
        raise UnicodeDecodeError("utf-8", data, 0, 2, "UTF-16 or binary data (NUL bytes)")
    if data.startswith(b"\xef\xbb\xbf"):
        data, bom = data[3:], True
    else:
        bom = False
    try:
        data.decode("utf-8")
        return data, "utf-8-sig" if bom else "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3 and b"\n" not in data[exc.start :]:
            return data.decode("utf-8", errors="replace").encode("utf-8"), "utf-8"
        utf8_error = exc
    try:
        return data.decode("gb18030").encode("utf-8"), "gb18030"
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 4 and b"\n" not in data[exc.start :]:
            return data.decode("gb18030", errors="replace").encode("utf-8"), "gb18030"
        raise utf8_error from exc


def _utf16_or_binary(data: bytes) -> bool:
    """A UTF-16 byte-order mark, or NUL bytes in a quarter of the head (UTF-16/32 text is half NULs).

    A stray NUL in a text file is not: that line alone is quarantined as malformed.
    """
    head = data[:4096]
    return head[:2] in (b"\xff\xfe", b"\xfe\xff") or head.count(b"\x00") * 4 > len(head)


def decode_lines(data: bytes) -> tuple[bytes, str, pl.Series]:
    """UTF-8 bytes, the encoding, and the physical lines of ``data``.

    Valid UTF-8 (the common case) is validated by polars' reader itself, without a
    Python-level decode of the whole file.
    """
    plain = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    if not _utf16_or_binary(data):
        try:
            return plain, "utf-8-sig" if plain is not data else "utf-8", split_lines(plain)
        except pl.exceptions.ComputeError:
            pass
    text, encoding = decode(data)
    return text, encoding, split_lines(text)


def split_lines(text: bytes) -> pl.Series:
    """Physical lines of UTF-8 ``text`` (blank lines as null, ``\\r`` stripped)."""
    if not text:
        return pl.Series("line", [], dtype=pl.String)
    if b"\x1f" in text:  # the reader's separator: such a line is malformed (read as holding a NUL)
        text = text.replace(b"\x1f", b"\x00")
    lines = pl.read_csv(
        text,
        has_header=False,
        separator="\x1f",
        quote_char=None,
        new_columns=["line"],
        infer_schema=False,
        raise_if_empty=False,
    )["line"]
    return lines.rechunk().str.strip_suffix("\r")


# --- header -----------------------------------------------------------------------


def map_header(header: str, spec: Landing) -> tuple[list[str | None], list[str], list[str]]:
    """Canonical name for each header position (None = extra), extras, duplicates."""
    aliases = spec.aliases
    names: list[str | None] = []
    extras: list[str] = []
    dupes: list[str] = []
    seen: set[str] = set()
    for raw_name in _split_header(header):
        key = raw_name.strip().strip('"').lstrip("\ufeff").strip().casefold()
        canon = aliases.get(key)
        if canon is None:
            extras.append(raw_name.strip())
        elif canon in seen:
            dupes.append(raw_name.strip())
            canon = None
        else:
            seen.add(canon)
        names.append(canon)
    return names, extras, dupes


# --- the parse -------------------------------------------------------------------


def parse_landing_bytes(raw: bytes, spec: Landing, source_file: str, window: DateWindow | None = None) -> Parsed:
    """Parse one landing file's bytes (gzip or not, any supported encoding).

    Any byte sequence gives a :class:`Parsed`: what cannot be read becomes quarantine
    rows with a reason code and a one-line detail, never an exception. ``window``
    bounds the dates and timestamps accepted (outside it: ``out_of_range``).
    """
    stats = ParseStats()
    quarantine: list[pl.DataFrame] = []
    loose = _loose_masker(spec)

    def whole_file(reason: str, detail: str, raw_text: str = "") -> Parsed:
        detail = _one_line(mask_digit_runs(detail) if _has_personal(spec) else detail)
        stats.file_problems.append(f"{reason}: {detail}")
        q = pl.DataFrame(
            {"source_file": [source_file], "line": [None], "reason": [reason], "detail": [detail], "raw": [raw_text]},
            schema=QUARANTINE_SCHEMA,
        )
        # whatever state the file is in, its text is masked like a line that does not split
        q = q.with_columns(loose(pl.col("raw")))
        stats.rows_quarantined = 0
        return Parsed(empty_rows(spec), q, stats)

    complete = True
    if raw[:2] == b"\x1f\x8b" or source_file.endswith(".gz"):
        stats.gzip = True
        raw, complete = decompress(raw)
        if not raw:
            return whole_file("unreadable", "not a readable gzip stream")
    try:
        text, stats.encoding, lines = decode_lines(raw)
    except UnicodeDecodeError as exc:
        found = exc.reason if "NUL" in exc.reason else f"byte {exc.start} is {exc.object[exc.start : exc.start + 8]!r}"
        return whole_file(
            "encoding",
            f"expected UTF-8 or GB18030/GBK text; {found}",
            raw[:200].decode("utf-8", errors="replace"),
        )
    if b"\r" in text and b"\n" not in text:
        # classic Mac line ends (CR only): each CR ends a line
        stats.file_problems.append("line_ends: the lines end in CR only; read as line breaks")
        text = text.replace(b"\r", b"\n")
        lines = split_lines(text)
    ends_with_newline = text.endswith(b"\n")
    if lines.len() == 0 or lines[0] is None or not lines[0].strip():
        return whole_file("empty_file", "the file has no header row")

    header = lines[0]
    names, extras, dupes = map_header(header, spec)
    stats.extra_columns = extras
    body = (
        pl.DataFrame({"line_text": lines[1:]})
        .with_row_index("source_line", offset=2)
        .with_columns(pl.col("source_line").cast(pl.Int64))
    )
    blank = body["line_text"].is_null() | body["line_text"].str.contains(r"^\s*$")
    stats.blank_lines = int(blank.sum())
    body = body.filter(~blank)
    stats.rows_read = body.height
    last_line = lines.len() if body.height else -1  # physical number of the last data line

    mask = _masker(spec, names)

    present = {n for n in names if n}
    missing = [f.name for f in spec.fields if f.required and f.name not in present]
    if missing or dupes:
        file_reason = "missing_columns" if missing else "duplicate_column"
        found = ", ".join(h.strip() for h in _split_header(header))
        file_detail = (
            f"header lacks required column(s) {', '.join(missing)}; found {found}"
            if missing
            else f"header maps several columns to the same name: {', '.join(dupes)}"
        )
        if body.height == 0:
            return whole_file(file_reason, file_detail, header)
        file_detail = _one_line(mask_digit_runs(file_detail) if _has_personal(spec) else file_detail)
        stats.file_problems.append(f"{file_reason}: {file_detail}")
        q = body.select(
            pl.lit(source_file).alias("source_file"),
            pl.col("source_line").alias("line"),
            pl.lit(file_reason).alias("reason"),
            pl.lit(file_detail).alias("detail"),
            mask(pl.col("line_text")).alias("raw"),
        )
        stats.rows_quarantined = q.height
        return Parsed(empty_rows(spec), q, stats)

    if not complete:
        stats.file_problems.append("truncated: the gzip stream ends early; lines after the last complete one are lost")
        quarantine.append(
            pl.DataFrame(
                {
                    "source_file": [source_file],
                    "line": [None],
                    "reason": ["truncated"],
                    "detail": [
                        "gzip stream ends early: the file was cut off; rows after the last complete line are lost"
                    ],
                    "raw": [""],
                },
                schema=QUARANTINE_SCHEMA,
            )
        )

    n_fields = len(names)
    text_line = pl.col("line_text")
    body = body.with_columns(
        (text_line.str.count_matches(SEP, literal=True) + 1).cast(pl.Int64).alias("n_fields"),
        text_line.str.contains('"', literal=True).alias("quoted"),
        # a CR inside a line or a NUL byte: no CSV reader splits such a line reliably
        text_line.str.contains(r"[\r\x00]").alias("malformed"),
    )
    cut_off = (~pl.lit(ends_with_newline)) & (pl.col("source_line") == last_line)

    malformed = body.filter(pl.col("malformed"))
    if malformed.height:
        quarantine.append(
            malformed.select(
                pl.lit(source_file).alias("source_file"),
                pl.col("source_line").alias("line"),
                pl.lit("malformed_line").alias("reason"),
                pl.lit("the line holds a carriage return or NUL byte inside it; expected plain CSV text").alias(
                    "detail"
                ),
                mask(text_line).alias("raw"),
            )
        )
    body = body.filter(~pl.col("malformed"))

    # lines with quotes follow csv quoting rules: split them with the csv module (rare);
    # a quote the rules reject (unbalanced, text after a closing quote) quarantines the line
    quoted_lines = body.filter(pl.col("quoted"))
    quoted_fields: list[list[str]] = []
    if quoted_lines.height:
        counts: list[int] = []
        for t in quoted_lines["line_text"]:
            try:
                fields = next(csv.reader([t], strict=True))
            except csv.Error:
                fields = []
                counts.append(-1)
            else:
                counts.append(len(fields))
            quoted_fields.append(fields)
        body = body.update(
            quoted_lines.select("source_line", pl.Series("n_fields", counts, dtype=pl.Int64)), on="source_line"
        )
        bad_quote = body.filter(pl.col("n_fields") == -1)
        if bad_quote.height:
            quarantine.append(
                bad_quote.select(
                    pl.lit(source_file).alias("source_file"),
                    pl.col("source_line").alias("line"),
                    pl.lit("malformed_line").alias("reason"),
                    pl.lit("a double quote breaks CSV quoting (unbalanced, or text after a closing quote)").alias(
                        "detail"
                    ),
                    mask(text_line).alias("raw"),
                )
            )
            body = body.filter(pl.col("n_fields") != -1)

    bad_count = body.filter(pl.col("n_fields") != n_fields)
    if bad_count.height:
        quarantine.append(
            bad_count.select(
                pl.lit(source_file).alias("source_file"),
                pl.col("source_line").alias("line"),
                pl.when(cut_off).then(pl.lit("truncated")).otherwise(pl.lit("field_count")).alias("reason"),
                pl.when(cut_off)
                .then(pl.format("the file ends mid-row: {} of {} fields", pl.col("n_fields"), pl.lit(n_fields)))
                .otherwise(
                    pl.format("expected {} fields as in the header, found {}", pl.lit(n_fields), pl.col("n_fields"))
                )
                .alias("detail"),
                mask(text_line).alias("raw"),
            )
        )
    good = body.filter(pl.col("n_fields") == n_fields)
    # the file ends without a newline but the last row has all its fields: still cut off
    if not ends_with_newline and good.height and good["source_line"][-1] == last_line:
        quarantine.append(
            good.filter(pl.col("source_line") == last_line).select(
                pl.lit(source_file).alias("source_file"),
                pl.col("source_line").alias("line"),
                pl.lit("truncated").alias("reason"),
                pl.lit("the file ends without a newline: the last row may be cut off").alias("detail"),
                mask(text_line).alias("raw"),
            )
        )
        good = good.filter(pl.col("source_line") != last_line)
    quoted_good = _quoted_frame(quoted_lines["source_line"], quoted_fields, good["source_line"], n_fields)
    good = good.filter(~pl.col("quoted"))

    del body
    typed, reason_expr, detail_expr, values, failed = _parse_exprs(spec, window)
    chunks: list[pl.DataFrame] = []
    # fixed-size chunks keep memory bounded however large the file
    parts: list[tuple[pl.DataFrame, pl.DataFrame | None]] = [
        (good.slice(offset, CHUNK_ROWS), None) for offset in range(0, good.height, CHUNK_ROWS)
    ]
    if quoted_good is not None:
        parts.append((good.clear(), quoted_good))
    starts = _line_starts(text, lines)
    for part, pre_split in parts:
        blob = _lines_bytes(text, starts, part) if pre_split is None else None
        strings = _split_fields(part, names, spec, present, pre_split, blob)
        if not strings.height:
            continue
        # cast every field once; a row fails if any rule fails (the reason is found later)
        strings = strings.with_columns(typed[f.name].alias(f"{f.name}__value") for f in spec.fields)
        strings = strings.with_columns(failed.alias("_bad"))
        chunks.append(strings.filter(~pl.col("_bad")).select("source_line", *[f"{n}__value" for n in values]))
        suspect = strings.filter(pl.col("_bad"))
        del strings
        if not suspect.height:
            continue
        # second chance for padded values (" 1.5"): strip, then judge the row for good
        line_texts = quoted_lines if pre_split is not None else part
        suspect = suspect.join(line_texts.select("source_line", "line_text"), on="source_line")
        suspect = suspect.with_columns(pl.col(f.name).str.strip_chars().replace("", None) for f in spec.fields)
        suspect = suspect.with_columns(typed[f.name].alias(f"{f.name}__value") for f in spec.fields)
        suspect = suspect.with_columns(reason_expr.alias("_reason"), detail_expr.alias("_detail"))
        detail_col = pl.col("_detail")
        quarantine.append(
            suspect.filter(pl.col("_reason").is_not_null()).select(
                pl.lit(source_file).alias("source_file"),
                pl.col("source_line").alias("line"),
                pl.col("_reason").alias("reason"),
                (loose(detail_col) if _has_personal(spec) else detail_col).alias("detail"),
                mask(text_line).alias("raw"),
            )
        )
        chunks.append(suspect.filter(pl.col("_reason").is_null()).select(chunks[-1].columns))
    del good
    ok_rows = (
        pl.concat(chunks).sort("source_line")
        if chunks
        else pl.DataFrame(schema={"source_line": pl.Int64, **{f"{f.name}__value": f.dtype for f in spec.fields}})
    )
    rows = ok_rows.select(
        *[pl.col(f"{f.name}__value").alias(f.name) for f in spec.fields],
        pl.lit(source_file).alias("source_file"),
        pl.col("source_line"),
    )
    rows = rows.with_columns(_partition_date(spec).alias(spec.date_field)).select(empty_rows(spec).columns)

    q = pl.concat(quarantine, how="vertical") if quarantine else pl.DataFrame(schema=QUARANTINE_SCHEMA)
    q = q.sort("line", nulls_last=False)
    stats.rows_parsed = rows.height
    stats.rows_quarantined = int(q["line"].is_not_null().sum())
    return Parsed(rows, q, stats)


def _line_starts(text: bytes, lines: pl.Series) -> pl.Series | None:
    """Byte offset in ``text`` of each physical line (index 0 = line 1), or None when the
    lines are not plain newline-separated slices of ``text`` (CR line ends, or lengths
    that do not add up to the text's)."""
    if b"\r" in text or not lines.len():
        return None
    lengths = lines.str.len_bytes().fill_null(0).cast(pl.Int64) + 1  # each line and its newline
    if int(lengths.sum()) != len(text) + (0 if text.endswith(b"\n") else 1):
        return None
    return lengths.cum_sum() - lengths


def _lines_bytes(text: bytes, starts: pl.Series | None, part: pl.DataFrame) -> bytes | None:
    """The bytes of ``part``'s lines, newline-terminated, when they are consecutive lines
    of ``text`` (the common case: a clean file): one slice of the text instead of the
    lines joined anew. None when they are not, or the slice does not hold exactly them."""
    if starts is None or not part.height:
        return None
    first, last = int(part["source_line"][0]), int(part["source_line"][-1])
    if last - first + 1 != part.height or last > starts.len():
        return None
    head, tail = part["line_text"][0].encode("utf-8"), part["line_text"][-1].encode("utf-8")
    begin, end = int(starts[first - 1]), int(starts[last - 1]) + len(tail)
    blob = text[begin : end + 1]
    if not blob.endswith(b"\n"):  # the file's last line, without its newline
        blob += b"\n"
    if not blob.startswith(head) or blob.count(b"\n") != part.height:
        return None
    return blob


def _split_fields(
    good: pl.DataFrame,
    names: list[str | None],
    spec: Landing,
    present: set[str],
    pre_split: pl.DataFrame | None = None,
    blob: bytes | None = None,
) -> pl.DataFrame:
    """String columns, one per contract field, for lines with the right field count.

    Lines without quotes are handed back to polars' multithreaded CSV reader (every
    field a string; empty = null), much faster than splitting each line in an
    expression. ``pre_split`` holds lines already split by the csv module (quoted);
    ``blob``, when given, is the lines' text already (see :func:`_lines_bytes`).
    """
    schema = pl.Schema({f"c{i}": pl.String() for i in range(len(names))})
    if pre_split is not None:
        cols = pre_split.select(schema.names()).with_columns(pl.all().replace("", None))
        lines = pre_split["source_line"]
    elif good.height:
        if blob is None:
            blob = (good["line_text"].str.join("\n").item() + "\n").encode("utf-8")
        cols = pl.read_csv(blob, has_header=False, schema=schema, quote_char=None)
        if cols.height != good.height:  # never expected: a line the reader split differently
            cols = (
                good.select(
                    pl.col("line_text").str.split_exact(SEP, len(names) - 1).struct.rename_fields(schema.names())
                )
                .unnest("line_text")
                .with_columns(pl.all().replace("", None))
            )
        lines = good["source_line"]
    else:
        cols = pl.DataFrame(schema=schema)
        lines = good["source_line"]
    out = cols.select(pl.col(f"c{i}").alias(name) for i, name in enumerate(names) if name is not None).with_columns(
        pl.lit(None, pl.String).alias(f.name) for f in spec.fields if f.name not in present
    )
    # codes, ids and dates: surrounding spaces are never meaningful
    trim = [f.name for f in spec.fields if f.kind not in ("float", "int")]
    out = out.with_columns(pl.col(trim).str.strip_chars().replace("", None))
    # an empty field of a column the header carries may have a meaning (pv_capacity_kw: 0)
    out = out.with_columns(
        pl.col(f.name).fill_null(f.empty_as) for f in spec.fields if f.empty_as is not None and f.name in present
    )
    return out.with_columns(lines.alias("source_line"))


def _quoted_frame(
    quoted_lines: pl.Series, quoted_fields: list[list[str]], good_lines: pl.Series, n_fields: int
) -> pl.DataFrame | None:
    """The quoted lines that passed the field count, as string columns c0..c<n-1>."""
    keep = set(good_lines.to_list()) if quoted_fields else set()
    picked = [(ln, f) for ln, f in zip(quoted_lines.to_list(), quoted_fields, strict=True) if ln in keep]
    if not picked:
        return None
    columns = {f"c{i}": [f[i] for _, f in picked] for i in range(n_fields)}
    return pl.DataFrame(
        {**columns, "source_line": [ln for ln, _ in picked]},
        schema={**{c: pl.String() for c in columns}, "source_line": pl.Int64()},
    )


def _partition_date(spec: Landing) -> pl.Expr:
    source = spec.field(spec.date_field) if spec.date_field in spec.names else None
    if source is not None:
        return pl.col(spec.date_field)
    # events and purchases are partitioned by the local date of their timestamp
    ts = next(f for f in spec.fields if f.kind == "timestamp")
    return pl.col(ts.name).dt.date()


def _parse_field(f: Field) -> pl.Expr:
    s = pl.col(f.name)
    match f.kind:
        case "string" | "code":
            return s
        case "date":
            return pl.coalesce(s.str.to_date("%Y-%m-%d", strict=False), s.str.to_date("%Y%m%d", strict=False))
        case "timestamp":
            return pl.coalesce(
                s.str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False, time_unit="us"),
                s.str.to_datetime("%Y%m%d %H:%M:%S", strict=False, time_unit="us"),
            )
        case "float":
            v = s.cast(pl.Float64, strict=False)
            return pl.when(v.is_finite()).then(v)
        case "int":
            return s.cast(pl.Int64, strict=False)
    raise AssertionError(f.kind)


def _failure_conditions(spec: Landing, typed: dict[str, pl.Expr], window: DateWindow | None) -> list[pl.Expr]:
    return [cond for cond, _, _ in _checks(spec, typed, window)]


def _parse_exprs(
    spec: Landing, window: DateWindow | None
) -> tuple[dict[str, pl.Expr], pl.Expr, pl.Expr, dict[str, pl.Expr], pl.Expr]:
    """:func:`_typed_exprs`, the typed value columns and the row-fails condition, built once."""

    def build() -> tuple[dict[str, pl.Expr], pl.Expr, pl.Expr, dict[str, pl.Expr], pl.Expr]:
        typed, reason, detail = _typed_exprs(spec, window)
        values = {f.name: pl.col(f"{f.name}__value") for f in spec.fields}
        failed = pl.any_horizontal(_failure_conditions(spec, values, window)).fill_null(False)
        return typed, reason, detail, values, failed

    return _cached(spec, window, "parse", build)


def _typed_exprs(spec: Landing, window: DateWindow | None) -> tuple[dict[str, pl.Expr], pl.Expr, pl.Expr]:
    """Typed value per field, and the first failing reason/detail per row (null = ok)."""
    typed = {f.name: _parse_field(f) for f in spec.fields}
    reason = pl.lit(None, pl.String)
    detail = pl.lit(None, pl.String)
    for cond, code, text in reversed(_checks(spec, typed, window)):
        reason = pl.when(cond.fill_null(False)).then(pl.lit(code)).otherwise(reason)
        detail = pl.when(cond.fill_null(False)).then(text).otherwise(detail)
    return typed, reason, detail


def _checks(spec: Landing, typed: dict[str, pl.Expr], window: DateWindow | None) -> list[tuple[pl.Expr, str, pl.Expr]]:
    """(condition, reason code, detail) per rule, in order of precedence."""
    checks: list[tuple[pl.Expr, str, pl.Expr]] = []
    for f in spec.fields:
        raw = pl.col(f.name)
        if f.not_null:
            checks.append((raw.is_null(), "missing_value", pl.lit(f"{f.name} is empty")))
    for f in spec.fields:
        raw, val = pl.col(f.name), typed[f.name]
        if f.kind in ("date", "timestamp"):
            want = "YYYY-MM-DD or YYYYMMDD" if f.kind == "date" else "YYYY-MM-DD HH:MM:SS"
            checks.append(
                (
                    raw.is_not_null() & val.is_null(),
                    "bad_date",
                    pl.format(f"{f.name}: expected {want}, found '{{}}'", raw),
                )
            )
        elif f.kind in ("float", "int"):
            want = "a number" if f.kind == "float" else "a whole number"
            checks.append(
                (
                    raw.is_not_null() & val.is_null(),
                    "bad_number",
                    pl.format(f"{f.name}: expected {want}, found '{{}}'", raw),
                )
            )
        elif f.kind == "code":
            codes = ", ".join(f.codes)
            checks.append(
                (
                    raw.is_not_null() & ~raw.is_in(list(f.codes)),
                    "unknown_code",
                    pl.format(f"{f.name}: '{{}}' is not one of {codes}", raw),
                )
            )
    for f in spec.fields:
        val = typed[f.name]
        if window is not None and f.kind in ("date", "timestamp"):
            # a date far outside any plausible delivery (9999-12-31, 0001-01-01) is a fault
            day = val if f.kind == "date" else val.dt.date()
            checks.append(
                (
                    (day < window.earliest) | (day > window.latest),
                    "out_of_range",
                    pl.format(
                        f"{f.name}: must lie in {window.earliest}..{window.latest}, found {{}}", val.cast(pl.String)
                    ),
                )
            )
        if f.exclusive_minimum is not None:
            reason = "negative_amount" if f.unit == "yuan" else "out_of_range"
            checks.append(
                (
                    val <= f.exclusive_minimum,
                    reason,
                    pl.format(f"{f.name}: must be > {f.exclusive_minimum:g}, found {{}}", val),
                )
            )
        if f.minimum is not None:
            checks.append(
                (val < f.minimum, "out_of_range", pl.format(f"{f.name}: must be >= {f.minimum:g}, found {{}}", val))
            )
    if spec.row_rules is not None:
        checks += spec.row_rules(typed)
    return checks


def _has_personal(spec: Landing) -> bool:
    return any(f.personal for f in spec.fields)


def mask_digit_runs(text: str) -> str:
    """``text`` with every digit run long enough to be a card number cut to its last 4 digits."""
    return _CARD_RUN.sub(lambda m: "*" * 8 + m.group(1), text)


def _one_line(text: str, limit: int = 300) -> str:
    """A detail or note fit for one line: control characters as spaces, long text cut."""
    flat = "".join(c if c.isprintable() else " " for c in text)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _split_header(header: str) -> list[str]:
    try:
        return next(csv.reader([header]))
    except (csv.Error, StopIteration):  # a CR or a broken quote in the header: plain split
        return header.split(SEP)


def _loose_masker(spec: Landing) -> Callable[[pl.Expr], pl.Expr]:
    """Mask every card-length digit run, for datasets with personal fields."""
    if not _has_personal(spec):
        return lambda e: e
    return lambda e: e.str.replace_all(CARD_PATTERN, "********$1")


def _masker(spec: Landing, names: list[str | None]) -> Callable[[pl.Expr], pl.Expr]:
    """Expression builder masking personal fields in a raw line.

    The personal field is cut to its last 4 digits where the line splits into the
    header's fields; then, whatever the line's state, every digit run long enough to
    be a card number is masked too (over-masking is safe, a missed card is not).
    """
    personal = [f.name for f in spec.fields if f.personal]
    if not personal:
        return lambda e: e
    positions = [i for i, n in enumerate(names) if n in personal]
    loose = _loose_masker(spec)

    def mask(line: pl.Expr) -> pl.Expr:
        parts = line.str.split(SEP)
        masked = parts
        for i in positions:
            masked = pl.concat_list(
                masked.list.slice(0, i),
                pl.concat_list(mask_card(masked.list.get(i, null_on_oob=True))),
                masked.list.slice(i + 1),
            )
        exact = pl.when(parts.list.len() == len(names)).then(masked.list.join(SEP))
        return loose(pl.coalesce(exact, line))

    return mask


def mask_card(card: pl.Expr) -> pl.Expr:
    """A card number reduced to its last 4 digits: ``****1234``."""
    return (
        pl.when(card.is_not_null() & (card.str.len_chars() > 0))
        .then(pl.lit("****") + card.str.slice(-4))
        .otherwise(card)
    )


def card_last4(card: pl.Expr) -> pl.Expr:
    return pl.when(card.str.len_chars() > 0).then(card.str.slice(-4))
