"""Audits of a lake: is it the same as another, and does any file hold a secret in clear?

Used by the reliability tests (a killed, re-run lake must equal a clean run's) and
handy for operators: ``python -m meterlake.audit LAKE`` prints the card numbers of
the landing zone found in clear anywhere under the lake and in its reporting DB.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import re
import sys
from collections.abc import Iterable
from pathlib import Path

import polars as pl

#: the lake folders whose bytes a completed run determines (marts and clean tables)
COMPARED_LAYERS = ("clean", "marts")


def fingerprint(lake: Path, layers: Iterable[str] = COMPARED_LAYERS) -> dict[str, str]:
    """SHA-256 of every file under the given layers, by path relative to the lake."""
    root = Path(lake)
    out: dict[str, str] = {}
    for layer in layers:
        base = root / layer
        if base.is_dir():
            for p in sorted(base.rglob("*")):
                if p.is_file():
                    out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def table_fingerprints(lake: Path, layers: Iterable[str] = COMPARED_LAYERS) -> dict[str, str]:
    """SHA-256 of each table's content, by ``layer/table``: its rows sorted, whatever the file bytes.

    Two lakes with the same rows in the same partitions (and the same column names and
    types) have the same fingerprint, even when the Parquet files differ in row order,
    row groups or encoding. Each row carries the path of the partition it was read from.
    """
    root = Path(lake)
    out: dict[str, str] = {}
    for layer in layers:
        base = root / layer
        if not base.is_dir():
            continue
        for table in sorted(p for p in base.iterdir() if p.is_dir()):
            files = sorted(table.rglob("*.parquet"))
            frames = [
                pl.read_parquet(f).with_columns(pl.lit(f.relative_to(table).as_posix()).alias("_partition"))
                for f in files
            ]
            frame = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
            frame = frame.select(sorted(frame.columns))
            if frame.width:
                frame = frame.sort(frame.columns, nulls_last=True, maintain_order=True)
            digest = hashlib.sha256(repr(list(frame.schema.items())).encode())
            digest.update(frame.write_csv(null_value="<null>").encode())
            out[f"{layer}/{table.name}"] = f"{frame.height}:{digest.hexdigest()}"
    return out


def accounting_rows(lake: Path) -> list[dict[str, object]]:
    """The lake's row accounting per landing file (run ids left out)."""
    from .lake import Lake
    from .manifest import accounting, read_manifest

    lk = Lake(lake)
    return accounting(lk, read_manifest(lk)).to_dicts()


def landing_card_numbers(landing: Path) -> set[str]:
    """Every card number in the ``card_no`` column of the landing zone's purchases files."""
    cards: set[str] = set()
    for p in sorted((Path(landing) / "purchases").rglob("*")):
        if p.is_file() and not p.is_symlink():
            cards |= card_numbers(p.read_bytes())
    return cards


def card_numbers(raw: bytes) -> set[str]:
    """The card numbers in the ``card_no`` column of one purchases file's bytes."""
    import csv
    import io

    from .schemas import LANDINGS

    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError):
            return set()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("gb18030", errors="replace")
    rows = csv.reader(io.StringIO(text.replace("\x00", ""), newline=""))
    aliases = LANDINGS["purchases"].aliases
    try:
        header = [aliases.get(h.strip().casefold()) for h in next(rows, [])]
    except csv.Error:
        return set()
    if "card_no" not in header:
        return set()
    i = header.index("card_no")
    try:
        return {r[i].strip() for r in rows if len(r) > i and len(r[i].strip()) >= 8}
    except csv.Error:
        return set()


def _texts(path: Path) -> Iterable[str]:
    """The text a file holds, decoded: Parquet cells, DuckDB tables, or raw bytes."""
    name = path.name
    if name.endswith(".parquet"):
        try:
            frame = pl.read_parquet(path)
        except Exception:
            yield path.read_bytes().decode("latin-1")
            return
        yield from _frame_text(frame)
        return
    if name.endswith(".duckdb"):
        import duckdb

        con = duckdb.connect(str(path), read_only=True)
        try:
            tables = con.sql("SELECT table_name FROM information_schema.tables").fetchall()
            for (table,) in tables:
                try:
                    yield from _frame_text(con.sql(f'SELECT * FROM "{table}"').pl())
                except duckdb.Error:
                    continue
        finally:
            con.close()
        yield path.read_bytes().decode("latin-1")
        return
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        with contextlib.suppress(OSError, EOFError):
            raw = gzip.decompress(raw)
    yield raw.decode("utf-8", errors="replace")


def _frame_text(frame: pl.DataFrame) -> Iterable[str]:
    for col in frame.columns:
        s = frame[col]
        if s.dtype == pl.String:
            yield "\n".join(v for v in s.drop_nulls().to_list())
        elif s.dtype.is_nested() or s.dtype == pl.Binary:
            yield "\n".join(str(v) for v in s.to_list())
        else:
            yield "\n".join(str(v) for v in s.cast(pl.String, strict=False).drop_nulls().to_list())


def find_in_clear(paths: Iterable[Path], needles: set[str]) -> list[tuple[str, str]]:
    """(file, needle) for each needle found in clear in any file under ``paths``."""
    hits: list[tuple[str, str]] = []
    if not needles:
        return hits
    pattern = re.compile("|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True)))
    for base in paths:
        base = Path(base)
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for f in files:
            found = {m.group(0) for text in _texts(f) for m in pattern.finditer(text)}
            hits += [(str(f), n) for n in sorted(found)]
    return hits


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - thin CLI
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 2:
        print("usage: python -m meterlake.audit LANDING LAKE", file=sys.stderr)
        return 2
    landing, lake = Path(args[0]), Path(args[1])
    cards = landing_card_numbers(landing)
    duck = lake.parent / f"{lake.name}.duckdb"
    hits = find_in_clear([lake, *([duck] if duck.exists() else [])], cards)
    for f, n in hits:
        print(f"{f}: ****{n[-4:]}")
    print(f"{len(cards)} card-length digit runs in the landing purchases; {len(hits)} found in clear", file=sys.stderr)
    return 1 if hits else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
