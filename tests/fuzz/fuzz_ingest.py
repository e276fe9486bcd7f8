"""Long fuzz runs of ingest, outside CI.

Three modes, all over the files of a small generated landing zone:

``loop``   the mutations of ``tests/transforms/test_ingest_fuzz.py`` from a seeded RNG,
           each input checked by the same contract (nothing escapes, every line clean
           or quarantined once, one-line details, dates in the window, no card number
           in clear)::

               python tests/fuzz/fuzz_ingest.py loop --inputs 10000 --seed 1

``zones``  whole mutated landing zones through the ingest stage (``--full``: every
           stage, DuckDB included) into a lake: no exception, row accounting closes for
           every file, and no card number of the landing zone anywhere under the lake
           or in its reporting DB (Parquet and DuckDB decoded)::

               python tests/fuzz/fuzz_ingest.py zones --zones 200 --seed 1
               python tests/fuzz/fuzz_ingest.py zones --zones 10 --full

``atheris`` a coverage-guided libFuzzer target (``pip install atheris``) seeded with the
           zone's files; any libFuzzer flag passes through::

               python tests/fuzz/fuzz_ingest.py atheris -runs=20000

A failing input is written to ``--crashes`` (default ``fuzz-crashes/``) for replay.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import random
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("ingest_fuzz", HERE.parent / "transforms" / "test_ingest_fuzz.py")
assert _spec is not None and _spec.loader is not None
fz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fz)


def seed_zone(work: Path, meters: int, days: int, seed: int) -> Path:
    from meterlake.generate import generate

    out = work / "landing"
    generate(out, meters=meters, days=days, start=dt.date(2026, 1, 1), seed=seed)
    return out


def seed_files(landing: Path) -> list[tuple[str, bytes]]:
    from meterlake.schemas import LANDINGS

    files = sorted(p for ds in LANDINGS for p in (landing / ds).glob("*") if p.is_file())
    return [(p.relative_to(landing).as_posix(), p.read_bytes()) for p in files]


def save(crashes: Path, name: str, raw: bytes, error: str) -> None:
    crashes.mkdir(parents=True, exist_ok=True)
    (crashes / f"{name}.bin").write_bytes(raw)
    (crashes / f"{name}.txt").write_text(error, encoding="utf-8")


def run_loop(seeds: list[tuple[str, bytes]], inputs: int, seed: int, crashes: Path) -> int:
    pick = fz.RandomChooser(random.Random(seed))
    failures = 0
    t0 = time.perf_counter()
    for i in range(1, inputs + 1):
        rel, raw, cards = fz.mutated_input(seeds, pick)
        try:
            fz.check_parse(rel, raw, cards)
        except BaseException as exc:  # a polars panic is a BaseException
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures += 1
            save(crashes, f"loop-{seed}-{i}", raw, f"{rel}\n{traceback.format_exc()}")
        if i % 1000 == 0:
            print(f"{i:,} inputs, {failures} failures, {time.perf_counter() - t0:,.0f} s", flush=True)
    print(f"loop: {inputs:,} mutated inputs (seed {seed}), {failures} failures")
    return failures


def run_zones(landing: Path, zones: int, seed: int, crashes: Path, work: Path, full: bool = False) -> int:
    import json

    import polars as pl

    from meterlake import audit, pipeline
    from meterlake.settings import Settings
    from meterlake.stages import StageError

    blocked = 0

    rng = random.Random(seed)
    pick = fz.RandomChooser(rng)
    cards = audit.landing_card_numbers(landing)
    failures = 0
    files = 0
    for z in range(1, zones + 1):
        zone, lake = work / f"zone-{z}", work / f"lake-{z}"
        shutil.copytree(landing, zone, ignore=shutil.ignore_patterns("_truth"))
        paths = sorted(p for p in zone.rglob("*") if p.is_file())
        for p in rng.sample(paths, k=rng.randint(1, 3)):
            raw = p.read_bytes()
            for _ in range(rng.randint(1, 3)):
                raw = fz.mutate(raw, pick)
            p.write_bytes(raw)
        try:
            settings = Settings(landing=zone, lake=lake, pii_key="fuzz", progress=False)
            days = pipeline.date_range(dt.date(2026, 1, 1), dt.date(2026, 1, 2))
            if full:
                try:  # every stage, publishing to DuckDB included
                    record = pipeline.run(settings, days[0], days[-1], progress=lambda _m: None)
                except StageError as exc:  # e.g. a blocking expectation: a one-line stop, not a crash
                    blocked += 1
                    assert "\n" not in str(exc)
                    record = json.loads(next((lake / "_meta" / "runs").glob("*.json")).read_text())
                files_acc = record["stages"]["ingest"]["details"]["files"]
            else:
                files_acc = pipeline.run_stage(settings, "ingest", days, "fuzz").details["files"]
            acc = pl.DataFrame(files_acc)
            files += acc.height
            assert acc.height == 0 or (acc["unaccounted"] == 0).all(), "row accounting does not close"
            duck = work / f"lake-{z}.duckdb"
            hits = audit.find_in_clear([lake, *([duck] if duck.exists() else [])], cards)
            assert not hits, f"{len(hits)} card number(s) in clear under the lake"
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures += 1
            crashes.mkdir(parents=True, exist_ok=True)
            shutil.copytree(zone, crashes / f"zone-{seed}-{z}", dirs_exist_ok=True)
            (crashes / f"zone-{seed}-{z}.txt").write_text(traceback.format_exc(), encoding="utf-8")
        shutil.rmtree(zone)
        shutil.rmtree(lake, ignore_errors=True)
        (work / f"lake-{z}.duckdb").unlink(missing_ok=True)
        if z % 20 == 0:
            print(f"{z} zones, {failures} failures", flush=True)
    what = "every stage" if full else "ingest"
    print(
        f"zones: {zones} mutated landing zones through {what} ({files} landing files accounted, "
        f"{blocked} stopped by a blocking check), {failures} failures"
    )
    return failures


def run_atheris(seeds: list[tuple[str, bytes]], argv: list[str], work: Path) -> None:
    import atheris

    # a fresh, instrumented copy of the parser: its coverage guides the search
    sys.modules.pop("meterlake.transforms.ingest", None)
    with atheris.instrument_imports(include=["meterlake.transforms.ingest"]):
        import meterlake.transforms.ingest as parser
    from meterlake.schemas import LANDINGS

    corpus = work / "corpus"
    corpus.mkdir()
    # the first byte of an input picks the file (dataset and name) it is parsed as
    for i, (_, raw) in enumerate(seeds):
        (corpus / f"seed-{i}").write_bytes(bytes([i]) + raw)
    names = [rel for rel, _ in seeds]

    def target(data: bytes) -> None:
        if not data:
            return
        rel = names[data[0] % len(names)]
        raw = data[1:]
        if raw[:2] == b"\x1f\x8b" and not rel.endswith(".gz"):
            rel += ".gz"
        parsed = parser.parse_landing_bytes(raw, LANDINGS[rel.split("/")[0]], rel, fz.WINDOW)
        lines = parsed.quarantine["line"].drop_nulls()
        assert lines.is_unique().all()
        assert parsed.stats.rows_read == parsed.rows.height + lines.len()

    atheris.Setup([sys.argv[0], *argv, str(corpus)], target)
    atheris.Fuzz()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["loop", "zones", "atheris"])
    ap.add_argument("--inputs", type=int, default=10_000)
    ap.add_argument("--zones", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--meters", type=int, default=40)
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--crashes", type=Path, default=Path("fuzz-crashes"))
    ap.add_argument("--full", action="store_true", help="zones: run every stage (DuckDB scanned too), not only ingest")
    args, rest = ap.parse_known_args()
    with tempfile.TemporaryDirectory(prefix="meterlake-fuzz-") as tmp:
        work = Path(tmp)
        landing = seed_zone(work, args.meters, args.days, args.seed)
        seeds = seed_files(landing)
        if args.mode == "loop":
            return 1 if run_loop(seeds, args.inputs, args.seed, args.crashes) else 0
        if args.mode == "zones":
            return 1 if run_zones(landing, args.zones, args.seed, args.crashes, work, args.full) else 0
        run_atheris(seeds, rest, work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
