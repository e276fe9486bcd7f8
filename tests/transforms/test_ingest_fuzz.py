"""Fuzz: the landing parser turns any byte sequence into rows and quarantine rows, never an exception.

Real landing files (a small generated zone) are mutated the ways deliveries break:
truncation, flipped bytes, inserted quotes / CR / NUL / commas / newlines, far-off dates,
duplicated and deleted lines, CR-only line ends, other encodings, gzip and cut-off gzip.
For every input: nothing escapes, every data line is clean or quarantined exactly once
(read = clean + quarantined; duplicates are resolved later, per partition), reasons are
known codes, details are one line, accepted dates lie in the window, and no card number
of the input appears in clear in the quarantine.

CI runs a short derandomised search; ``METERLAKE_FUZZ_EXAMPLES=10000`` runs a long one.
``tests/fuzz/fuzz_ingest.py`` is the coverage-guided (atheris) target over the same files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import os
import random
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterlake import audit
from meterlake.schemas import LANDINGS, REASONS
from meterlake.transforms.ingest import DateWindow, parse_landing_bytes

T = TypeVar("T")
WINDOW = DateWindow(dt.date(2000, 1, 1), dt.date(2099, 12, 31))
EXAMPLES = int(os.environ.get("METERLAKE_FUZZ_EXAMPLES", "150"))
#: bytes a broken export or transfer inserts
TOKENS = [
    b'"',
    b'""',
    b"\r",
    b"\r\n",
    b"\n",
    b"\x00",
    b",",
    b",,",
    b"\xff",
    b"\xe4\xb8",
    b"\xef\xbb\xbf",
    b"9999-12-31",
    b"0001-01-01 00:00:00",
    b"99991231",
    b"NaN",
    b"-1e309",
    b"\t",
    b" ",
]
ENCODINGS = ["gb18030", "utf-16", "latin-1", "utf-8-sig"]


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, bytes]]:
    """(relative path, bytes) of every landing file of a small generated zone."""
    from meterlake.generate import generate

    out = tmp_path_factory.mktemp("fuzz") / "landing"
    generate(out, meters=40, days=2, start=dt.date(2026, 1, 1), seed=23)
    files = sorted(p for ds in LANDINGS for p in (out / ds).glob("*") if p.is_file())
    assert {p.parent.name for p in files} >= {"archive", "curves", "registers", "events", "purchases"}
    return [(p.relative_to(out).as_posix(), p.read_bytes()) for p in files]


class Chooser(Protocol):
    """Where a mutation's choices come from: hypothesis (shrinks) or a seeded RNG (long runs)."""

    def integer(self, lo: int, hi: int) -> int: ...

    def choice(self, options: Sequence[T]) -> T: ...


@dataclass
class HypothesisChooser:
    data: st.DataObject

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, hi))

    def choice(self, options: Sequence[T]) -> T:
        return self.data.draw(st.sampled_from(options))


@dataclass
class RandomChooser:
    rng: random.Random

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def choice(self, options: Sequence[T]) -> T:
        return self.rng.choice(options)


MUTATIONS = ["truncate", "flip", "insert", "delete", "dup_line", "cr_only", "encode", "gzip", "cut_gzip"]


def mutate(data: bytes, pick: Chooser) -> bytes:
    """One mutation of ``data``."""
    if data[:2] == b"\x1f\x8b":
        with contextlib.suppress(OSError, EOFError, zlib.error):  # a cut-off stream: mutate its bytes as they are
            data = gzip.decompress(data)
    kind = pick.choice(MUTATIONS)
    n = len(data)
    pos = pick.integer(0, max(n - 1, 0))
    match kind:
        case "truncate":
            return data[:pos]
        case "flip":
            if not n:
                return data
            return data[:pos] + bytes([data[pos] ^ pick.integer(1, 255)]) + data[pos + 1 :]
        case "insert":
            return data[:pos] + pick.choice(TOKENS) + data[pos:]
        case "delete":
            return data[:pos] + data[pos + pick.integer(1, 200) :]
        case "dup_line":
            lines = data.split(b"\n")
            i = pick.integer(0, len(lines) - 1)
            return b"\n".join(lines[: i + 1] + [lines[i]] * pick.integer(1, 3) + lines[i + 1 :])
        case "cr_only":
            return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r")
        case "encode":
            return data.decode("utf-8", errors="replace").encode(pick.choice(ENCODINGS), errors="replace")
        case "gzip":
            return gzip.compress(data, mtime=0)
        case "cut_gzip":
            blob = gzip.compress(data, mtime=0)
            return blob[: pick.integer(0, len(blob))]
    raise AssertionError(kind)


def mutated_input(seeds: list[tuple[str, bytes]], pick: Chooser) -> tuple[str, bytes, set[str]]:
    """A seed file with 1-3 mutations: (path as delivered, bytes, the seed's card numbers)."""
    rel, raw = pick.choice(seeds)
    cards = card_numbers(rel, raw)
    for _ in range(pick.integer(1, 3)):
        raw = mutate(raw, pick)
    if raw[:2] == b"\x1f\x8b" and not rel.endswith(".gz"):
        rel += ".gz"
    return rel, raw, cards


def card_numbers(rel: str, data: bytes) -> set[str]:
    """The card numbers of a purchases file (its card_no column)."""
    return audit.card_numbers(data) if rel.startswith("purchases/") else set()


def check_parse(rel: str, raw: bytes, cards: set[str]) -> None:
    """The parser's contract on any input (shared with the long fuzz run)."""
    spec = LANDINGS[rel.split("/")[0]]
    parsed = parse_landing_bytes(raw, spec, rel, WINDOW)
    q, rows, stats = parsed.quarantine, parsed.rows, parsed.stats
    line_rows = q.filter(pl.col("line").is_not_null())
    assert line_rows["line"].is_unique().all(), "a line quarantined twice"
    clean_lines = set(rows["source_line"].to_list())
    quarantined = set(line_rows["line"].to_list())
    assert not clean_lines & quarantined, "a line both clean and quarantined"
    assert stats.rows_read == len(clean_lines) + len(quarantined) == rows.height + stats.rows_quarantined
    assert set(q["reason"].to_list()) <= set(REASONS)
    for text in q["detail"].to_list() + stats.file_problems:
        assert "\n" not in text and "\r" not in text, f"a multi-line detail: {text[:200]!r}"
    if rows.height:
        day = rows[spec.date_field]
        assert day.min() >= WINDOW.earliest and day.max() <= WINDOW.latest
    if cards:
        blob = "\n".join(q["raw"].to_list() + q["detail"].to_list() + stats.file_problems)
        leaked = [c for c in cards if c in blob]
        assert not leaked, f"card number(s) in clear in the quarantine: {len(leaked)}"


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_any_mutation_of_a_real_landing_file_is_parsed_and_accounted(
    seeds: list[tuple[str, bytes]], data: st.DataObject
) -> None:
    check_parse(*mutated_input(seeds, HypothesisChooser(data)))


def test_seed_files_parse_cleanly_apart_from_the_injected_faults(seeds: list[tuple[str, bytes]]) -> None:
    """The fuzz starts from real files: unmutated, only the generator's few injected faults are quarantined."""
    for rel, raw in seeds:
        parsed = parse_landing_bytes(raw, LANDINGS[rel.split("/")[0]], rel, WINDOW)
        assert parsed.stats.rows_read - parsed.rows.height <= 3, rel


def test_card_pattern_matches_what_the_generator_writes(seeds: list[tuple[str, bytes]]) -> None:
    cards = set().union(*(card_numbers(rel, raw) for rel, raw in seeds))
    assert cards and all(re.fullmatch(r"\d{12,19}", c) for c in cards)
