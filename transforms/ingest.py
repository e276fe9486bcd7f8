"""Parse one landing file into typed rows and quarantine rows. Pure: bytes in, frames out.

Every data line of a file ends in exactly one of the two outputs:

* ``rows``: the typed fields of the landing contract, the partition date, and lineage
  (``source_file``, ``source_line``);
* ``quarantine``: the line's number, a stable reason code (``schemas.quarantine.REASONS``),
  a detail naming the column and the value, and the raw text with personal data masked.

Whole-file problems (not decodable, no header, missing columns) are quarantine rows
too: one per data line where lines can be read, else one row with an empty ``line``.

The file is read and parsed in pieces of whole lines (``CHUNK_BYTES``), so a county
file is never held whole, nor its lines. A piece of plain lines that all carry the
header's field count (the common case, checked on the bytes) goes straight to polars'
CSV reader as strings; any other piece is split into physical lines by the reader with
a separator that cannot occur, so line numbers are exact (blank lines are kept as
nulls), and its lines are judged one by one, vectorised; fields are split on commas.
Lines holding a double quote are parsed with the csv module (rare in head-end exports).
The outcome does not depend on where the pieces are cut.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, BinaryIO, TypeVar, cast

import polars as pl

from ..schemas.landing import Field, Landing
from .frames import take_in_runs

T = TypeVar("T")

#: field separator used by every landing file (CONTRACT §1: CSV)
SEP = ","
#: a digit run this long in a raw purchases line is treated as a card number and masked
CARD_DIGITS = 12
#: any such digit run (keeping its last 4 digits) in a raw purchases line or file
CARD_PATTERN = rf"\d{{{CARD_DIGITS - 4},}}(\d{{4}})"
_CARD_RUN = re.compile(CARD_PATTERN)
#: lines split into fields at a time on the line-by-line path (a piece with odd lines)
CHUNK_ROWS = 100_000
#: bytes of a landing file read and parsed at a time (whole lines): bounds memory for
#: county-size files (a county day's curves: ~12,000 lines a piece, ~40 pieces; larger
#: pieces leave more freed memory behind in the allocator, smaller ones cost more calls)
CHUNK_BYTES = 8 << 20
#: rows from which parsed rows are put in order column by column (bounded memory, more calls)
SORT_BY_COLUMN = 100_000
#: the UTF-8 byte-order mark
BOM = b"\xef\xbb\xbf"


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


#: a file's quarantine rows when it has none (cleared per file: a frame built once)
_NO_QUARANTINE = pl.DataFrame(schema=QUARANTINE_SCHEMA)


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
        if not data.isascii():  # ASCII is UTF-8: checked without decoding a copy of the text
            data.decode("utf-8")
        return data, "utf-8-sig" if bom else "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3 and b"\n" not in data[exc.start :]:
            return data.decode("utf-8", errors="replace").encode("utf-8"), "utf-8"
        # kept without its traceback: through it this frame (and every caller's, with the
        # rows they hold) would stay in a cycle with it after a GB18030 file decodes
        utf8_error = exc.with_traceback(None)
    try:
        return _gb18030_to_utf8(data), "gb18030"
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 4 and b"\n" not in data[exc.start :]:
            return data.decode("gb18030", errors="replace").encode("utf-8"), "gb18030"
        raise utf8_error from exc


#: GB18030 text is decoded in blocks of whole lines of about this size: a block of ASCII
#: lines is its own UTF-8 and is not decoded (an archive file's rows, whose header alone is
#: Chinese: 50 MB decoded in 0.03 s instead of 0.5 s)
GB_BLOCK = 1 << 20


def _gb18030_to_utf8(data: bytes) -> bytes:
    """``data`` decoded from GB18030, as UTF-8 bytes; raises ``UnicodeDecodeError`` as decoding
    it whole does (offsets into ``data``).

    A newline is never a byte of a GB18030 multi-byte character (trail bytes are 0x30-0x39,
    0x40-0x7E, 0x80-0xFE), so lines decode alone, and ASCII decodes to itself.
    """
    if len(data) <= GB_BLOCK:
        return data.decode("gb18030").encode("utf-8")
    out = []
    start = 0
    while start < len(data):
        nl = data.find(b"\n", start + GB_BLOCK - 1)
        end = len(data) if nl < 0 else nl + 1
        block = data[start:end]
        if block.isascii():
            out.append(block)
        else:
            try:
                out.append(block.decode("gb18030").encode("utf-8"))
            except UnicodeDecodeError:
                return data.decode("gb18030").encode("utf-8")  # the error as the whole text gives it
        start = end
    return b"".join(out)


def _utf16_or_binary(data: bytes) -> bool:
    """A UTF-16 byte-order mark, or NUL bytes in a quarter of the head (UTF-16/32 text is half NULs).

    A stray NUL in a text file is not: that line alone is quarantined as malformed.
    """
    head = data[:4096]
    return head[:2] in (b"\xff\xfe", b"\xfe\xff") or head.count(b"\x00") * 4 > len(head)


def split_lines(text: bytes) -> pl.Series:
    """Physical lines of UTF-8 ``text`` (blank lines as null, ``\\r`` stripped)."""
    if not text:
        return pl.Series("line", [], dtype=pl.String)
    if b"\x1f" in text:  # the reader's separator: such a line is malformed (read as holding a NUL)
        text = text.replace(b"\x1f", b"\x00")
    # the reader drops a byte-order mark that starts its input: a line starting with one
    # (a BOM at the start of the file is removed before) keeps it behind a blank line
    bom = text.startswith(BOM)
    if bom:
        text = b"\n" + text
    lines = pl.read_csv(
        text,
        has_header=False,
        separator="\x1f",
        quote_char=None,
        new_columns=["line"],
        infer_schema=False,
        raise_if_empty=False,
    )["line"]
    if bom:
        lines = lines.slice(1)
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


def parse_landing_bytes(
    raw: bytes,
    spec: Landing,
    source_file: str,
    window: DateWindow | None = None,
    chunk_bytes: int | None = None,
    order_by: Sequence[str] = (),
) -> Parsed:
    """Parse one landing file's bytes (gzip or not, any supported encoding).

    Any byte sequence gives a :class:`Parsed`: what cannot be read becomes quarantine
    rows with a reason code and a one-line detail, never an exception. ``window``
    bounds the dates and timestamps accepted (outside it: ``out_of_range``). The rows
    come in line order, or ordered by the columns ``order_by`` (stable, nulls last).
    """
    return parse_landing_file(BytesIO(raw), spec, source_file, window, chunk_bytes, order_by)


def parse_landing_file(
    fh: BinaryIO,
    spec: Landing,
    source_file: str,
    window: DateWindow | None = None,
    chunk_bytes: int | None = None,
    order_by: Sequence[str] = (),
) -> Parsed:
    """:func:`parse_landing_bytes` of what an open, seekable binary file holds, read in pieces.

    A plain UTF-8 file (the common case, and every county-size file) is read
    ``chunk_bytes`` at a time and parsed a piece of whole lines at a time, so memory
    holds one piece of text besides the typed rows, never the whole file or its lines.
    A gzip file, or one that is not UTF-8 (GB18030, UTF-16, binary), is read whole and
    decoded first; its text is then parsed in the same pieces. The outcome is the same
    whatever the piece size.
    """
    size = max(1, chunk_bytes or CHUNK_BYTES)
    head = fh.read(max(size, 4096))  # the encoding is judged on the first 4 KiB
    if head[:2] != b"\x1f\x8b" and not source_file.endswith(".gz") and b"\n" in head and not _utf16_or_binary(head):
        plain = head[3:] if head.startswith(BOM) else head
        run = _FileParse(spec, source_file, window, order_by)
        run.stats.encoding = "utf-8-sig" if plain is not head else "utf-8"
        parsed = run.pieces(_stream_pieces(plain, fh.read, size), utf8_checked=False)
        if parsed is not None:
            return parsed
        fh.seek(0)  # a piece that is not UTF-8: decode the whole file instead
        head = b""
    return _FileParse(spec, source_file, window, order_by).whole(head + fh.read(), size)


def _stream_pieces(first: bytes, read: Callable[[int], bytes], size: int) -> Iterator[bytes]:
    """Pieces of whole lines, each ending in a newline (the file's last may not), about ``size`` bytes.

    A piece is its block's whole lines joined to the line left over from the block before
    in one copy (a block ending in a newline with nothing left over is the piece itself),
    and the block is let go before the piece is handed on: a county day's curves (40
    blocks of 8 MiB) take 41,000 page faults and 0.18 s instead of 75,000 and 0.27 s,
    where a slice and a concatenation made two fresh copies of each block."""
    pending = b""
    block = first
    while block:
        nl = block.rfind(b"\n")
        if nl < 0:
            pending += block
        else:
            piece = block if not pending and nl + 1 == len(block) else b"".join((pending, memoryview(block)[: nl + 1]))
            pending = block[nl + 1 :]
            del block
            yield piece
            del piece
        block = read(size)
    if pending:
        yield pending


def _text_pieces(text: bytes, size: int) -> Iterator[bytes]:
    """``text`` in pieces of whole lines of at least ``size`` bytes (the last may be shorter)."""
    start = 0
    while start < len(text):
        nl = text.find(b"\n", start + size - 1)
        end = len(text) if nl < 0 else nl + 1
        yield text[start:end]
        start = end


def _byte_counts(text: bytes) -> tuple[int, int]:
    """Newlines and commas in ``text``: a large piece is counted vectorised (bytes.count scans
    6x slower), so numpy is loaded only by a run that reads a large file."""
    if len(text) < 1 << 20:
        return text.count(b"\n"), text.count(SEP.encode())
    import numpy as np  # at first use: importing the pipeline loads no numpy

    codes = np.frombuffer(text, dtype=np.uint8)
    return int(np.count_nonzero(codes == ord("\n"))), int(np.count_nonzero(codes == ord(SEP)))


def _is_utf8(piece: bytes) -> bool:
    if piece.isascii():
        return True
    try:
        piece.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class _FileParse:
    """The state of one file's parse: its header, what its pieces gave so far, its stats."""

    def __init__(
        self, spec: Landing, source_file: str, window: DateWindow | None, order_by: Sequence[str] = ()
    ) -> None:
        self.spec, self.source_file, self.window = spec, source_file, window
        self.order_by = list(order_by)
        self.stats = ParseStats()
        self.quarantine: list[pl.DataFrame] = []
        self.rows: list[pl.DataFrame] = []
        self.loose = _loose_masker(spec)
        self.header: str | None = None
        self.names: list[str | None] = []
        self.present: set[str] = set()
        self.mask: Callable[[pl.Expr], pl.Expr] = lambda e: e
        #: a problem of the header that quarantines every line (reason, detail)
        self.file_reason: tuple[str, str] | None = None
        self.next_line = 1  # physical number of the next piece's first line
        #: a gzip stream that ends early
        self.gzip_cut = False

    def whole_file(self, reason: str, detail: str, raw_text: str = "") -> Parsed:
        detail = _one_line(mask_digit_runs(detail) if _has_personal(self.spec) else detail)
        self.stats.file_problems.append(f"{reason}: {detail}")
        q = pl.DataFrame(
            {
                "source_file": [self.source_file],
                "line": [None],
                "reason": [reason],
                "detail": [detail],
                "raw": [raw_text],
            },
            schema=QUARANTINE_SCHEMA,
        )
        # whatever state the file is in, its text is masked like a line that does not split
        q = q.with_columns(self.loose(pl.col("raw")))
        self.stats.rows_quarantined = 0
        return Parsed(empty_rows(self.spec), q, self.stats)

    def whole(self, raw: bytes, size: int) -> Parsed:
        """Parse a file held whole: gunzip, decode, then its text in pieces."""
        stats = self.stats
        complete = True
        if raw[:2] == b"\x1f\x8b" or self.source_file.endswith(".gz"):
            stats.gzip = True
            raw, complete = decompress(raw)
            if not raw:
                return self.whole_file("unreadable", "not a readable gzip stream")
        try:
            text, stats.encoding = decode(raw)
        except UnicodeDecodeError as exc:
            found = (
                exc.reason if "NUL" in exc.reason else f"byte {exc.start} is {exc.object[exc.start : exc.start + 8]!r}"
            )
            return self.whole_file(
                "encoding", f"expected UTF-8 or GB18030/GBK text; {found}", raw[:200].decode("utf-8", errors="replace")
            )
        del raw
        if text.startswith(BOM):  # a byte-order mark in another encoding (GB18030's) is not text either
            text = text[len(BOM) :]
        if b"\r" in text and b"\n" not in text:
            # classic Mac line ends (CR only): each CR ends a line
            stats.file_problems.append("line_ends: the lines end in CR only; read as line breaks")
            text = text.replace(b"\r", b"\n")
        self.gzip_cut = not complete
        parsed = self.pieces(_text_pieces(text, size), utf8_checked=True)
        assert parsed is not None  # decoded text is UTF-8
        return parsed

    def pieces(self, pieces: Iterator[bytes], utf8_checked: bool) -> Parsed | None:
        """Parse the file's pieces in order; None when one is not UTF-8 (the caller decodes the file)."""
        piece = next(pieces, b"")
        while True:
            upcoming = next(pieces, None)
            if not utf8_checked and not _is_utf8(piece):
                return None
            if self.header is None:
                early = self._header(piece)
                if early is not None:
                    return early
                nl = piece.find(b"\n")
                piece = piece[nl + 1 :] if nl >= 0 else b""
                self.next_line = 2
            self._piece(piece, final=upcoming is None)
            if upcoming is None:
                return self._result()
            piece = upcoming

    def _header(self, piece: bytes) -> Parsed | None:
        """Read the header from the first piece; a Parsed when the file ends there (no header)."""
        nl = piece.find(b"\n")
        # the line as split_lines reads it: the reader's separator as a NUL, one CR end stripped
        line = piece if nl < 0 else piece[:nl]
        header = line.replace(b"\x1f", b"\x00").decode("utf-8").removesuffix("\r")
        if not header.strip():
            return self.whole_file("empty_file", "the file has no header row")
        self.header = header
        spec = self.spec
        self.names, extras, dupes = map_header(header, spec)
        self.stats.extra_columns = extras
        self.mask = _masker(spec, self.names)
        self.present = {n for n in self.names if n}
        missing = [f.name for f in spec.fields if f.required and f.name not in self.present]
        if missing:
            found = ", ".join(h.strip() for h in _split_header(header))
            self.file_reason = (
                "missing_columns",
                f"header lacks required column(s) {', '.join(missing)}; found {found}",
            )
        elif dupes:
            self.file_reason = ("duplicate_column", f"header maps several columns to the same name: {', '.join(dupes)}")
        return None

    def _quarantine(self, frame: pl.DataFrame, reason: pl.Expr | str, detail: pl.Expr | str) -> None:
        """Quarantine the lines of ``frame`` (source_line, line_text) with a reason and detail."""
        self.quarantine.append(
            frame.select(
                pl.lit(self.source_file).alias("source_file"),
                pl.col("source_line").alias("line"),
                (pl.lit(reason) if isinstance(reason, str) else reason).alias("reason"),
                (pl.lit(detail) if isinstance(detail, str) else detail).alias("detail"),
                self.mask(pl.col("line_text")).alias("raw"),
            )
        )

    def _fast(self, text: bytes, typed: bool) -> pl.DataFrame | None:
        """The fields of a piece of plain lines, every one with the header's field count;
        None when the piece needs the line-by-line path.

        No line holds a quote, CR, NUL or the line splitter's separator; the commas add up to
        exactly one short of the field count per line and the reader refuses a line with more
        fields than the header, so no line has fewer either (a blank line has none).
        ``typed``: the number fields are read as numbers by the reader itself (see
        :func:`_read_fields`); a piece with a field the reader cannot read is None.
        """
        n = len(self.names)
        if n < 2 or not text.endswith(b"\n") or self.file_reason is not None:
            return None
        if any(c in text for c in (b'"', b"\r", b"\x00", b"\x1f")):
            return None
        counts = _byte_counts(text)
        lines = counts[0]
        if counts[1] != (n - 1) * lines:
            return None
        try:
            cols = _read_fields(text, n, self.numbers if typed else None)
        except pl.exceptions.PolarsError:
            return None
        if cols.height != lines:
            return None
        return cols

    @property
    def numbers(self) -> dict[int, pl.DataType]:
        """Header positions of the number fields the reader may type itself (no empty_as)."""
        kinds = {f.name: f for f in self.spec.fields}
        return {
            i: pl.Float64()
            for i, name in enumerate(self.names)
            if name is not None and kinds[name].kind == "float" and kinds[name].empty_as is None
        }

    def _piece(self, text: bytes, final: bool) -> None:
        """Parse one piece of whole lines; the file's last piece judges its last line too.

        A piece of plain lines is read with its numbers typed by the reader; should a row
        of it fail a rule, or the reader refuse a value, the piece is read again as strings
        (the reader's and the cast's number syntax differ only in what the second chance
        for padded values accepts, and a failing row needs its text for the detail).
        """
        first = self.next_line
        if not text:
            return
        for typed in (True, False) if self.numbers else (False,):
            cols = self._fast(text, typed)
            if cols is None:
                continue
            self.next_line += cols.height
            self.stats.rows_read += cols.height
            source_line = pl.int_range(first, first + cols.height, dtype=pl.Int64, eager=True)
            fields = _named_fields(cols, source_line, self.names, self.spec, self.present)
            self._judge(fields, lambda: _numbered_lines(text, first), typed=typed)
            return
        self._lines(text, first, final)

    def _lines(self, text: bytes, first: int, final: bool) -> None:
        """The line-by-line path: blank, malformed, quoted and short or long lines."""
        lines = split_lines(text)
        self.next_line += lines.len()
        body = (
            pl.DataFrame({"line_text": lines})
            .with_row_index("source_line", offset=first)
            .with_columns(pl.col("source_line").cast(pl.Int64))
        )
        blank = body["line_text"].is_null() | body["line_text"].str.contains(r"^\s*$")
        self.stats.blank_lines += int(blank.sum())
        body = body.filter(~blank)
        self.stats.rows_read += body.height
        if self.file_reason is not None:
            self._quarantine(body, *self.file_reason)
            return
        ends_with_newline = text.endswith(b"\n") or not final
        # physical number of the file's last line (when this piece holds it)
        last_line = first + lines.len() - 1 if final and body.height else -1

        n_fields = len(self.names)
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
            self._quarantine(
                malformed,
                "malformed_line",
                "the line holds a carriage return or NUL byte inside it; expected plain CSV text",
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
                self._quarantine(
                    bad_quote,
                    "malformed_line",
                    "a double quote breaks CSV quoting (unbalanced, or text after a closing quote)",
                )
                body = body.filter(pl.col("n_fields") != -1)

        bad_count = body.filter(pl.col("n_fields") != n_fields)
        if bad_count.height:
            self._quarantine(
                bad_count,
                pl.when(cut_off).then(pl.lit("truncated")).otherwise(pl.lit("field_count")),
                pl.when(cut_off)
                .then(pl.format("the file ends mid-row: {} of {} fields", pl.col("n_fields"), pl.lit(n_fields)))
                .otherwise(
                    pl.format("expected {} fields as in the header, found {}", pl.lit(n_fields), pl.col("n_fields"))
                ),
            )
        good = body.filter(pl.col("n_fields") == n_fields)
        # the file ends without a newline but the last row has all its fields: still cut off
        if not ends_with_newline and good.height and good["source_line"][-1] == last_line:
            self._quarantine(
                good.filter(pl.col("source_line") == last_line),
                "truncated",
                "the file ends without a newline: the last row may be cut off",
            )
            good = good.filter(pl.col("source_line") != last_line)
        quoted_good = _quoted_frame(quoted_lines["source_line"], quoted_fields, good["source_line"], n_fields)
        good = good.filter(~pl.col("quoted"))
        del body

        done = len(self.rows)
        texts = pl.concat([good.select("source_line", "line_text"), quoted_lines.select("source_line", "line_text")])
        starts = _line_starts(text, lines)
        # fixed-size chunks keep memory bounded however large the piece
        for offset in range(0, good.height, CHUNK_ROWS):
            part = good.slice(offset, CHUNK_ROWS)
            blob = _lines_bytes(text, starts, part, first)
            if blob is None:
                blob = (part["line_text"].str.join("\n").item() + "\n").encode("utf-8")
            cols = _read_fields(blob, n_fields)
            if cols.height != part.height:  # never expected: a line the reader split differently
                cols = (
                    part.select(
                        pl.col("line_text")
                        .str.split_exact(SEP, n_fields - 1)
                        .struct.rename_fields([f"c{i}" for i in range(n_fields)])
                    )
                    .unnest("line_text")
                    .with_columns(pl.all().replace("", None))
                )
            strings = _named_fields(cols, part["source_line"], self.names, self.spec, self.present)
            self._judge(strings, lambda: texts)
        if quoted_good is not None:
            cols = quoted_good.drop("source_line").with_columns(pl.all().replace("", None))
            strings = _named_fields(cols, quoted_good["source_line"], self.names, self.spec, self.present)
            self._judge(strings, lambda: texts)
        # the quoted rows come after the others: order the piece's rows by line again
        if quoted_good is not None and len(self.rows) - done > 1:
            mine = self.rows[done:]
            del self.rows[done:]
            self.rows.append(pl.concat(mine).sort("source_line"))

    def _judge(self, strings: pl.DataFrame, line_texts: Callable[[], pl.DataFrame], typed: bool = False) -> None:
        """Type the string fields; rows failing a rule go to quarantine with the first rule's reason.

        ``typed``: the reader typed the number fields already; rows failing a rule are read
        again from their text as strings and judged as such (the reader and the cast differ
        only in what the second chance for padded values accepts, and a failing row needs
        its text for the detail).
        """
        if not strings.height:
            return
        spec = self.spec
        typed_exprs, reason_expr, detail_expr, values, failed = _parse_exprs(spec, self.window)
        value_cols = [f"{n}__value" for n in values]
        # cast every field once; a row fails if any rule fails (the reason is found later)
        if typed:  # the number columns are the values already; only a non-finite one fails the cast
            value_exprs, failed = _read_typed_exprs(spec, self.window, tuple(self.names[i] for i in self.numbers))
        else:
            value_exprs = [typed_exprs[f.name].alias(f"{f.name}__value") for f in spec.fields]
        strings = strings.with_columns(value_exprs)
        bad = strings.select(failed).to_series()
        if not bad.any():
            self.rows.append(strings.select("source_line", *value_cols))
            return
        if typed:
            done = len(self.rows)
            self.rows.append(strings.filter(~bad).select("source_line", *value_cols))
            texts = line_texts().join(strings.filter(bad).select("source_line"), on="source_line", how="semi")
            blob = (texts["line_text"].str.join("\n").item() + "\n").encode("utf-8")
            again = _named_fields(
                _read_fields(blob, len(self.names)), texts["source_line"], self.names, spec, self.present
            )
            self._judge(again, lambda: texts)
            mine = self.rows[done:]
            del self.rows[done:]
            self.rows.append(pl.concat(mine).sort("source_line"))
            return
        ok = strings.filter(~bad).select("source_line", *value_cols)
        suspect = strings.filter(bad)
        del strings
        # second chance for padded values (" 1.5"): strip, then judge the row for good
        suspect = suspect.join(line_texts(), on="source_line")
        suspect = suspect.with_columns(pl.col(f.name).str.strip_chars().replace("", None) for f in spec.fields)
        suspect = suspect.with_columns(typed_exprs[f.name].alias(f"{f.name}__value") for f in spec.fields)
        suspect = suspect.with_columns(reason_expr.alias("_reason"), detail_expr.alias("_detail"))
        detail_col = pl.col("_detail")
        self._quarantine(
            suspect.filter(pl.col("_reason").is_not_null()),
            pl.col("_reason"),
            self.loose(detail_col) if _has_personal(spec) else detail_col,
        )
        rescued = suspect.filter(pl.col("_reason").is_null()).select(ok.columns)
        self.rows.append(pl.concat([ok, rescued]).sort("source_line") if rescued.height else ok)

    def _result(self) -> Parsed:
        spec, stats = self.spec, self.stats
        if self.file_reason is not None:
            reason, detail = self.file_reason
            if stats.rows_read == 0:
                return self.whole_file(reason, detail, self.header or "")
            detail = _one_line(mask_digit_runs(detail) if _has_personal(spec) else detail)
            stats.file_problems.append(f"{reason}: {detail}")
            q = pl.concat(self.quarantine).with_columns(pl.lit(detail).alias("detail"))
            stats.rows_quarantined = q.height
            return Parsed(empty_rows(spec), q, stats)
        if self.gzip_cut:
            stats.file_problems.append(
                "truncated: the gzip stream ends early; lines after the last complete one are lost"
            )
            self.quarantine.insert(
                0,
                pl.DataFrame(
                    {
                        "source_file": [self.source_file],
                        "line": [None],
                        "reason": ["truncated"],
                        "detail": [
                            "gzip stream ends early: the file was cut off; rows after the last complete line are lost"
                        ],
                        "raw": [""],
                    },
                    schema=QUARANTINE_SCHEMA,
                ),
            )
        ok_rows = (
            pl.concat(self.rows)
            if self.rows
            else pl.DataFrame(schema={"source_line": pl.Int64, **{f"{f.name}__value": f.dtype for f in spec.fields}})
        )
        values = _cached(spec, None, "values", lambda: [pl.col(f"{f.name}__value").alias(f.name) for f in spec.fields])
        rows = ok_rows.select(*values, pl.lit(self.source_file).alias("source_file"), pl.col("source_line"))
        rows = rows.with_columns(_partition_date(spec).alias(spec.date_field)).select(empty_rows(spec).columns)
        del ok_rows
        self.rows.clear()  # the rows are held by ``rows`` alone now
        if self.order_by and rows.height > 1:
            order = rows.select(pl.arg_sort_by(self.order_by, maintain_order=True, nulls_last=True)).to_series()
            moved = None if order.is_sorted() else take_in_runs(rows, order)
            if moved is not None:
                # a few rows out of place (a late row): the runs between them are slices, nothing is copied
                rows = moved
            elif not order.is_sorted() and rows.height < SORT_BY_COLUMN:
                rows = rows[order]
            elif not order.is_sorted():
                # column by column: each unsorted column is released once its sorted copy is made,
                # so the sort needs one column more, not the frame twice (a county day's curves: 0.4 GB);
                # a column is made one chunk first: gathering from its pieces' chunks costs 2.4x as much
                ordered: dict[str, pl.Series] = {}
                for name in rows.columns:
                    ordered[name] = rows.get_column(name).rechunk().gather(order)
                    rows = rows.drop(name)
                rows = pl.DataFrame(ordered)
        if self.quarantine:
            q = pl.concat(self.quarantine, how="vertical").sort("line", nulls_last=False)
        else:
            q = _NO_QUARANTINE.clear()
        stats.rows_parsed = rows.height
        stats.rows_quarantined = int(q["line"].is_not_null().sum())
        return Parsed(rows, q, stats)


def _numbered_lines(text: bytes, first: int) -> pl.DataFrame:
    """source_line, line_text of a piece whose first line is physical line ``first``."""
    return (
        pl.DataFrame({"line_text": split_lines(text)})
        .with_row_index("source_line", offset=first)
        .with_columns(pl.col("source_line").cast(pl.Int64))
    )


def _line_starts(text: bytes, lines: pl.Series) -> pl.Series | None:
    """Byte offset in ``text`` of each physical line (index 0 = its first line), or None when the
    lines are not plain newline-separated slices of ``text`` (CR line ends, or lengths
    that do not add up to the text's)."""
    if b"\r" in text or not lines.len():
        return None
    lengths = lines.str.len_bytes().fill_null(0).cast(pl.Int64) + 1  # each line and its newline
    if int(lengths.sum()) != len(text) + (0 if text.endswith(b"\n") else 1):
        return None
    return lengths.cum_sum() - lengths


def _lines_bytes(text: bytes, starts: pl.Series | None, part: pl.DataFrame, first: int = 1) -> bytes | None:
    """The bytes of ``part``'s lines, newline-terminated, when they are consecutive lines
    of ``text`` (the common case: a clean file): one slice of the text instead of the
    lines joined anew. None when they are not, or the slice does not hold exactly them."""
    if starts is None or not part.height:
        return None
    lo, hi = int(part["source_line"][0]) - first, int(part["source_line"][-1]) - first
    if hi - lo + 1 != part.height or hi >= starts.len():
        return None
    head, tail = part["line_text"][0].encode("utf-8"), part["line_text"][-1].encode("utf-8")
    begin, end = int(starts[lo]), int(starts[hi]) + len(tail)
    blob = text[begin : end + 1]
    if not blob.endswith(b"\n"):  # the file's last line, without its newline
        blob += b"\n"
    if not blob.startswith(head) or blob.count(b"\n") != part.height:
        return None
    return blob


def _read_fields(blob: bytes, n_fields: int, numbers: dict[int, pl.DataType] | None = None) -> pl.DataFrame:
    """Newline-terminated lines without quotes as string columns c0..c<n-1> (empty = null),
    by polars' multithreaded CSV reader: much faster than splitting each line in an expression.

    ``numbers``: positions the reader types itself (it raises on a value it cannot read):
    no string buffers for the 96 values of a curve row, and no cast afterwards.
    """
    numbers = numbers or {}
    schema = pl.Schema({f"c{i}": numbers.get(i, pl.String()) for i in range(n_fields)})
    if blob.startswith(BOM):  # the reader would drop it (see split_lines): keep it behind an empty row
        return pl.read_csv(
            b"," * (n_fields - 1) + b"\n" + blob, has_header=False, schema=schema, quote_char=None
        ).slice(1)
    return pl.read_csv(blob, has_header=False, schema=schema, quote_char=None)


def _named_fields(
    cols: pl.DataFrame, source_line: pl.Series, names: list[str | None], spec: Landing, present: set[str]
) -> pl.DataFrame:
    """String columns, one per contract field, from the split fields c0..c<n-1> of some lines."""

    def build() -> tuple[list[pl.Expr], list[pl.Expr], list[pl.Expr]]:
        pick = [pl.col(f"c{i}").alias(name) for i, name in enumerate(names) if name is not None]
        pick += [pl.lit(None, pl.String).alias(f.name) for f in spec.fields if f.name not in present]
        # codes, ids and dates: surrounding spaces are never meaningful
        trim = [f.name for f in spec.fields if f.kind not in ("float", "int")]
        trimmed = [pl.col(trim).str.strip_chars().replace("", None)] if trim else []
        # an empty field of a column the header carries may have a meaning (pv_capacity_kw: 0)
        filled = [
            pl.col(f.name).fill_null(f.empty_as) for f in spec.fields if f.empty_as is not None and f.name in present
        ]
        return pick, trimmed, filled

    pick, trimmed, filled = _cached(spec, None, "named:" + ",".join(n or "" for n in names), build)
    out = cols.select(pick)
    if trimmed:
        out = out.with_columns(trimmed)
    if filled:
        out = out.with_columns(filled)
    return out.with_columns(source_line.alias("source_line"))


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


def _read_typed_exprs(
    spec: Landing, window: DateWindow | None, numbers: tuple[str | None, ...]
) -> tuple[list[pl.Expr], pl.Expr]:
    """The value columns and the row-fails condition of rows whose ``numbers`` the reader typed.

    Such a value is its column as read; the cast would turn a non-finite one (inf, NaN)
    into null, a ``bad_number``, so a non-finite value fails the row here.
    """

    def build() -> tuple[list[pl.Expr], pl.Expr]:
        typed, _, _, values, _ = _parse_exprs(spec, window)
        read = frozenset(n for n in numbers if n is not None)
        exprs = [
            (pl.col(f.name) if f.name in numbers else typed[f.name]).alias(f"{f.name}__value") for f in spec.fields
        ]
        conds = [cond for cond, _, _ in _checks(spec, values, window, read)]
        failed = pl.any_horizontal(conds).fill_null(False) if conds else pl.lit(False)
        # one sum instead of a test per column: any inf or NaN makes it non-finite (a sum that
        # overflows on finite values fails the row too, which is then judged from its text)
        nonfinite = pl.sum_horizontal(sorted(read)).is_finite().not_().fill_null(False) if read else pl.lit(False)
        return exprs, failed | nonfinite

    return _cached(spec, window, "read:" + ",".join(n or "" for n in numbers), build)


def _typed_exprs(spec: Landing, window: DateWindow | None) -> tuple[dict[str, pl.Expr], pl.Expr, pl.Expr]:
    """Typed value per field, and the first failing reason/detail per row (null = ok)."""
    typed = {f.name: _parse_field(f) for f in spec.fields}
    reason = pl.lit(None, pl.String)
    detail = pl.lit(None, pl.String)
    for cond, code, text in reversed(_checks(spec, typed, window)):
        reason = pl.when(cond.fill_null(False)).then(pl.lit(code)).otherwise(reason)
        detail = pl.when(cond.fill_null(False)).then(text).otherwise(detail)
    return typed, reason, detail


def _checks(
    spec: Landing, typed: dict[str, pl.Expr], window: DateWindow | None, read: frozenset[str] = frozenset()
) -> list[tuple[pl.Expr, str, pl.Expr]]:
    """(condition, reason code, detail) per rule, in order of precedence.

    ``read``: number fields the CSV reader typed itself, whose value is the field as read:
    their ``bad_number`` rule cannot fail and is left out.
    """
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
        elif f.kind in ("float", "int") and f.name not in read:
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
