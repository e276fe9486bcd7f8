"""Writing landing files the way head-end systems deliver them.

One call writes one file: header in canonical names or the Chinese aliases of the
landing contract, columns in the contract's order or shuffled, dates as ``YYYY-MM-DD``
or ``YYYYMMDD``, encoded UTF-8, UTF-8 with BOM or GBK, optionally gzip, with line-level
faults spliced in as raw text and the delivery time set as the file's mtime.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from meterlake.schemas import LANDINGS

#: local time is UTC+8 all year (CONTRACT: Asia/Shanghai, no DST)
_UTC_OFFSET = dt.timedelta(hours=8)
_EPOCH = dt.datetime(1970, 1, 1)
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
#: above this many bytes gzip runs at level 1 (speed), else level 6
_FAST_GZIP_BYTES = 4 << 20


def local_epoch_ns(local: dt.datetime) -> int:
    """Nanoseconds since the Unix epoch of a naive local (UTC+8) time."""
    return int((local - _UTC_OFFSET - _EPOCH).total_seconds()) * 1_000_000_000


@dataclass(frozen=True)
class FileFormat:
    encoding: str = "utf-8"  # "utf-8", "utf-8-sig" (BOM) or "gbk"
    header: str = "canonical"  # "canonical" or "zh"
    gzip: bool = False
    date_format: str = "%Y-%m-%d"  # or "%Y%m%d"
    #: column order (canonical names); empty = the contract's order
    order: tuple[str, ...] = ()

    @property
    def suffix(self) -> str:
        return ".csv.gz" if self.gzip else ".csv"


@dataclass
class LineEdit:
    """A raw-text fault spliced into a file.

    ``row`` is the 0-based data row of the frame being written; ``insert`` puts a new
    line before it, else the row's line is replaced. ``make`` gets that row's fields and
    the canonical column names in file order and returns the new line's text.
    """

    row: int
    insert: bool
    make: Callable[[list[str], list[str]], str]
    reason: str
    meter_id: str = ""
    date: str = ""
    detail: str = ""
    #: set by the writer: the 1-based physical line (the header is line 1)
    line: int = 0


@dataclass
class Written:
    path: str  # relative to the landing root, POSIX separators
    dataset: str
    fmt: FileFormat
    delivered: dt.datetime
    rows: int  # data lines (after edits; a cut-off last line counts)
    dates: tuple[str, str]
    edits: list[LineEdit] = field(default_factory=list)
    cutoff_line: int = 0
    cutoff_meter: str = ""
    extra_columns: tuple[str, ...] = ()


def header_names(dataset: str, names: Sequence[str], header: str) -> list[str]:
    land = LANDINGS[dataset]
    canonical = set(land.names)
    if header == "zh":
        return [land.field(n).zh if n in canonical else n for n in names]
    return list(names)


def _split_head(body: bytes, k: int) -> tuple[list[bytes], bytes]:
    lines: list[bytes] = []
    pos = 0
    for _ in range(k):
        j = body.index(b"\n", pos)
        lines.append(body[pos:j])
        pos = j + 1
    return lines, body[pos:]


def write(
    root: Path,
    rel: str,
    dataset: str,
    frame: pl.DataFrame,
    fmt: FileFormat,
    delivered: dt.datetime,
    dates: tuple[str, str],
    edits: Sequence[LineEdit] = (),
    cutoff: bool = False,
) -> Written:
    """Write ``frame`` (canonical column names, extra columns kept as named) to ``root/rel``."""
    land = LANDINGS[dataset]
    names = list(fmt.order) if fmt.order else [c for c in land.names if c in frame.columns]
    extras = tuple(c for c in frame.columns if c not in land.names)
    names += [c for c in extras if c not in names]
    frame = frame.select(names)
    body = frame.write_csv(
        include_header=False,
        date_format=fmt.date_format,
        datetime_format=TIMESTAMP_FORMAT,
        null_value="",
    ).encode("utf-8")
    rows = frame.height
    edits = sorted(edits, key=lambda e: (e.row, not e.insert))
    if edits:
        k = max(e.row for e in edits) + 1
        head, rest = _split_head(body, k)
        out: list[bytes] = []
        i = 0
        for r, line in enumerate(head):
            while i < len(edits) and edits[i].row == r and edits[i].insert:
                e = edits[i]
                out.append(e.make(line.decode("utf-8").split(","), names).encode("utf-8"))
                e.line = len(out) + 1
                i += 1
            if i < len(edits) and edits[i].row == r:
                e = edits[i]
                out.append(e.make(line.decode("utf-8").split(","), names).encode("utf-8"))
                e.line = len(out) + 1
                i += 1
            else:
                out.append(line)
        rows += sum(e.insert for e in edits)
        body = b"\n".join(out) + b"\n" + rest
    cutoff_line = 0
    cutoff_meter = ""
    if cutoff and rows:
        body = body[:-1]
        start = body.rfind(b"\n") + 1
        last = body[start:]
        keep = max(1, len(last) * 2 // 5)
        while keep > 1 and last[keep - 1] >= 0x80:
            keep -= 1
        cutoff_meter = last.split(b",")[names.index("meter_id")].decode() if "meter_id" in names else ""
        body = body[: start + keep]
        cutoff_line = rows + 1
    header = ",".join(header_names(dataset, names, fmt.header)) + "\n"
    if fmt.encoding == "gbk" and not body.isascii():
        body = body.decode("utf-8").encode("gbk")
    data = header.encode(fmt.encoding) + body
    if fmt.gzip:
        data = gzip.compress(data, compresslevel=1 if len(data) > _FAST_GZIP_BYTES else 6, mtime=0)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    ns = local_epoch_ns(delivered)
    os.utime(path, ns=(ns, ns))
    return Written(rel, dataset, fmt, delivered, rows, dates, list(edits), cutoff_line, cutoff_meter, extras)


def copy(root: Path, src: Written, rel: str, delivered: dt.datetime) -> Written:
    """Deliver the identical bytes of ``src`` again under another name."""
    path = root / rel
    path.write_bytes((root / src.path).read_bytes())
    ns = local_epoch_ns(delivered)
    os.utime(path, ns=(ns, ns))
    return Written(
        rel,
        src.dataset,
        src.fmt,
        delivered,
        src.rows,
        src.dates,
        [],
        src.cutoff_line,
        src.cutoff_meter,
        src.extra_columns,
    )


def set_mtime(path: Path, local: dt.datetime) -> None:
    ns = local_epoch_ns(local)
    os.utime(path, ns=(ns, ns))
