"""The observer in steady state at county size: a stand-in county date and its on-off figure.

No generated county holds a full 14-day window of history (a 500,000-meter zone of 16 days
takes long to generate and build on the shared machine), so a smaller zone's lake is
repeated: ``build`` writes ``--copies`` copies of a built lake's tables into a new lake,
each copy's identifiers prefixed (``c0``, ``c1``, ...: the copies sort after one another,
so every file keeps its order) and its energy figures (the curves' slots, the kWh columns,
the observer's kept blocks) scaled by its own factor (1 + 0.013 · copy). The observer's
kept summaries of the window's days are copied the same way (not summarised again); the
measured date's curves are copied whole, the other days' curves are linked from the base
lake (they are not read in steady state: their summaries are kept).

``measure`` runs the anomalies stage alone for the date, in fresh processes, with the
observer on and off alternately (``[observer] enabled``, a copy of ``config/anomaly.toml``
in a folder given as ``METERLAKE_CONFIG_DIR``), and reports each run's wall, CPU (user +
system), peak RSS and a digest of what it wrote for the date (the anomalies and theft_cases
partitions, the kept summaries), and the medians' on − off. With ``--code DIR`` (another
version of the code unpacked, e.g. ``git archive REV | tar -x -C DIR``, with links
``DIR/meterlake/{transforms,schemas,checks,defaults}`` to ``../{transforms,schemas,checks,config}``
as the package is installed) each round runs that version first, then this checkout::

    # the base: the 50,000-meter zone of 16 days, built through the anomalies stage
    meterlake generate --out ZONE --meters 50000 --days 16 --start 2026-03-02 --seed 1
    meterlake run --landing ZONE --lake BASE --start 2026-03-02 --end 2026-03-16 \\
        --stage ingest --stage outages --stage validate --stage loss --stage anomalies
    python benchmarks/observer_steady.py build --base BASE --out LAKE --copies 10 --date 2026-03-16
    python benchmarks/observer_steady.py measure --lake LAKE --landing ZONE --date 2026-03-16 --repeat 3 \\
        [--code DIR] [--results FILE]

Ten copies of the 50,000-meter zone: 494,270 customers in 3,570 areas.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from meterlake.lake import Lake  # noqa: E402

#: the tables the anomalies stage reads (and the observer's kept summaries)
READ = (
    "clean/curves",
    "clean/events",
    "clean/inspections",
    "marts/meter_daily",
    "marts/loss_diagnosis",
    "marts/outage_meter_days",
    "_state/observer",
)
#: identifier columns prefixed per copy
ID = re.compile(r"^(meter_id|area_id|other_area_id|customer_id|account_id|transformer_id|feeder_id|parent_id|case_id)$")
#: energy columns scaled per copy (curves' slots, kWh figures, the observer's blocks)
ENERGY = re.compile(r"^(p\d+|[bms]\d\d|kwh|.*_kwh|kwh_.*)$")


def _copy_frame(frame: pl.DataFrame, copies: int) -> pl.DataFrame:
    parts = []
    for k in range(copies):
        f = 1.0 + 0.013 * k
        cols = []
        for name, dtype in frame.schema.items():
            c = pl.col(name)
            if ID.match(name) and dtype == pl.String:
                cols.append((pl.lit(f"c{k}") + c).alias(name))
            elif ENERGY.match(name) and dtype.is_float() and k:
                cols.append((c.cast(pl.Float64) * f).cast(dtype).alias(name))
            else:
                cols.append(c)
        parts.append(frame.select(cols))
    return pl.concat(parts)


def build(base: Path, out: Path, copies: int, date: str) -> None:
    shutil.rmtree(out, ignore_errors=True)
    lake = Lake(out)
    t0 = time.perf_counter()
    for src in sorted(base.rglob("*.parquet")):
        rel = src.relative_to(base)
        if not any(rel.as_posix().startswith(t + "/") for t in READ):
            continue  # a table the anomalies stage does not read
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if rel.parts[:2] == ("clean", "curves") and rel.parts[2] != f"data_date={date}":
            os.link(src, dest)  # not read in steady state: the day's summaries are kept
            continue
        frame = _copy_frame(pl.read_parquet(src), copies)
        if rel.name == "customers.parquet" and "observer" in rel.parts:
            lake.write_file(dest, frame, row_group_size=16_384, compression="lz4")
        else:
            lake.write_file(dest, frame)
        print(f"{time.perf_counter() - t0:7.1f}s {rel} {frame.height:,} rows", flush=True)


def _config_dir(enabled: bool) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="observer-steady-config-"))
    text = (ROOT / "config" / "anomaly.toml").read_text(encoding="utf-8")
    head, sep, tail = text.partition("\n[observer]\n")
    assert sep, "config/anomaly.toml has no [observer] table"
    tail = re.sub(r"(?m)^enabled = true$", f"enabled = {'true' if enabled else 'false'}", tail, count=1)
    (folder / "anomaly.toml").write_text(head + sep + tail, encoding="utf-8")
    return folder


def _digest(lake: Path, date: str) -> str:
    """One hash over the date's anomalies and theft_cases partitions and its kept summaries."""
    h = hashlib.sha256()
    files = [
        *sorted((lake / "marts").glob(f"*/date={date}/*.parquet")),
        *sorted(lake.joinpath("_state", "observer").glob(f"*/date={date}/*.parquet")),
    ]
    for f in files:
        h.update(f.relative_to(lake).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _run(lake: Path, landing: Path, date: str, config: Path, code: Path | None) -> dict[str, object]:
    lake, landing, config = lake.resolve(), landing.resolve(), config.resolve()  # run from another folder
    # the date's own meter_daily day is new each morning: its prepared day, kept by an earlier
    # run (the anomalies stage's ``_state/anomalies/days``), is not there yet
    lake.joinpath("_state", "anomalies", "days", f"date={date}.parquet").unlink(missing_ok=True)
    env = {**os.environ, "METERLAKE_CONFIG_DIR": str(config)}
    if code is not None:  # another version of the code (an unpacked checkout, its packages linked)
        env["PYTHONPATH"] = str(code)
    cmd = [
        "/usr/bin/time",
        "-f",
        "TIME %e %U %S %M",
        sys.executable,
        "-m",
        "meterlake",
        "run",
        "--landing",
        str(landing),
        "--lake",
        str(lake),
        "--start",
        date,
        "--end",
        date,
        "--stage",
        "anomalies",
    ]
    load = Path("/proc/loadavg").read_text().split()[0]
    # `python -m` puts the working folder first on sys.path: run from the version's own
    # folder, or a checkout's `meterlake/` would shadow the version given by PYTHONPATH
    cwd = code if code is not None else ROOT
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    line = [x for x in done.stderr.splitlines() if x.startswith("TIME ")]
    if done.returncode or not line:
        raise SystemExit(f"run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    wall, user, sys_, rss = (float(v) for v in line[-1].split()[1:])
    return {
        "wall": wall,
        "cpu": round(user + sys_, 2),
        "rss_gb": round(rss * 1024 / 1e9, 2),
        "load": float(load),
        "digest": _digest(lake, date),
    }


def measure(
    lake: Path, landing: Path, date: str, repeat: int, code: Path | None = None, observer: str = "both"
) -> dict[str, object]:
    """``repeat`` rounds of the stage with the observer on and off (``observer``: both, or
    only one of them); with ``code``, each round runs that version of the code (``before``)
    and then this checkout's (``after``)."""
    on, off = _config_dir(True), _config_dir(False)
    modes = [(n, c) for n, c in (("on", on), ("off", off)) if observer in ("both", n)]
    versions: list[tuple[str, Path | None]] = [("before", code), ("after", None)] if code else [("this", None)]
    runs: dict[str, list[dict[str, object]]] = {}
    for _ in range(repeat):
        for version, where in versions:
            for name, cfg in modes:
                got = _run(lake, landing, date, cfg, where)
                runs.setdefault(f"{version} {name}", []).append(got)
                print(version, name, json.dumps(got), flush=True)
    med = {
        k: {m: statistics.median(float(r[m]) for r in v) for m in ("wall", "cpu", "rss_gb")}  # type: ignore[arg-type]
        for k, v in runs.items()
    }
    adds = {
        version: {m: round(med[f"{version} on"][m] - med[f"{version} off"][m], 2) for m in ("wall", "cpu")}
        for version, _ in versions
        if observer == "both"
    }
    result = {"runs": runs, "median": med, "observer_adds": adds}
    print(json.dumps(med), "\nobserver adds", json.dumps(adds), flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--base", type=Path, required=True)
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--copies", type=int, default=10)
    b.add_argument("--date", default="2026-03-16")
    m = sub.add_parser("measure")
    m.add_argument("--lake", type=Path, required=True)
    m.add_argument("--landing", type=Path, required=True)
    m.add_argument("--date", default="2026-03-16")
    m.add_argument("--repeat", type=int, default=3)
    m.add_argument("--results", type=Path)
    m.add_argument("--observer", choices=("both", "on", "off"), default="both", help="run the observer on, off or both")
    m.add_argument(
        "--code",
        type=Path,
        help="an unpacked checkout of another version (its packages linked as installed): run it before this one",
    )
    args = ap.parse_args()
    if args.cmd == "build":
        build(args.base, args.out, args.copies, args.date)
    else:
        result = measure(args.lake, args.landing, args.date, args.repeat, args.code, args.observer)
        if args.results:
            args.results.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
