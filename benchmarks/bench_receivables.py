"""County-month receivables benchmark: 500k post-paid customers, about one payment each.

Synthesises a lake with numpy (not timed): the archive (one meter per customer, 200
customers an area, 20 areas a feeder, 0.4% of customers fed at 10 kV), bills_monthly of
December and January (every customer post-paid), and the clean payments of January and
February: about one payment per customer a month (85% on time, 10% late, 3% never, 2%
overpaying; 1% reversed, a third naming the bill month). Then, in a fresh process per
run, times the receivables stage for February: receivables_monthly of the ledger
month, recovery_monthly of January's bills, customer_credit_monthly and the two dunning
lists (02-21 and 02-28), written to the lake. Median of the runs (wall time and CPU time of
the stage, CPU time of the whole process with its imports) and the peak RSS of each
run's process, with the 1-minute load average at the end of each run.

    .venv/bin/python benchmarks/bench_receivables.py                  # 500k customers, 3 runs
    .venv/bin/python benchmarks/bench_receivables.py --customers 50000 --repeat 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import receivables_lake as synth

from meterlake.lake import Lake

REPO = Path(__file__).resolve().parents[1]
MONTHS = ("2025-12", "2026-01")
D = dt.date


def synthesise(lake: Lake, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    direct = rng.random(n) < 0.004
    classes = np.where(rng.random(n) < 0.85, "resident", "commercial")
    archive = synth.write_archive(lake, D(2025, 12, 1), (8, 10, 5, 4), 200, 4000, direct, classes)
    amounts = {m: np.round(rng.gamma(2.0, 60.0, n) * np.where(direct, 200, 1), 2) for m in MONTHS}
    for m in MONTHS:
        synth.write_bills(lake, m, synth.bills(archive, m, amounts[m], np.zeros(n, int), ["ok"] * n))
    synth.mark_held_to(lake, D(2026, 2, 28))
    rows = []
    for m, issue in zip(MONTHS, (D(2026, 1, 1), D(2026, 2, 1)), strict=True):
        u = rng.random(n)
        pay = amounts[m].copy()
        offset = rng.integers(1, 19, n)
        late = (u >= 0.85) & (u < 0.95)
        offset[late] = rng.integers(20, 45, int(late.sum()))
        over = (u >= 0.95) & (u < 0.97)
        pay[over] = np.ceil(pay[over] / 50) * 50
        go = u < 0.97
        day = np.datetime64(issue) + offset.astype("timedelta64[D]")
        named = rng.random(n) < 0.33
        rows.append(
            pl.DataFrame(
                {
                    "txn_id": [f"P{m[2:4]}{m[5:]}{i:08d}" for i in range(n)],
                    "txn_type": ["payment"] * n,
                    "customer_id": archive["customer_id"],
                    "paid_date": pl.Series(day).cast(pl.Date),
                    "amount_yuan": pay,
                    "bill_month": pl.Series(np.where(named, m, "")).replace("", None),
                    "channel": ["wechat"] * n,
                }
            ).filter(pl.Series(go) & (pl.col("paid_date") <= D(2026, 2, 28)))
        )
    total, reversals = synth.write_payments(
        lake, pl.concat(rows), 0.01, seed, pl.duration(days=2), D(2026, 2, 28), "payments/bench.csv"
    )
    print(f"synthesised {n:,} customers, {total:,} payment rows ({reversals:,} reversals)", flush=True)


def one_run(lake: Path) -> None:
    """Time the stage in this (fresh) process; print a JSON line."""
    from meterlake import pipeline
    from meterlake.settings import Settings

    settings = Settings(lake=lake, landing=lake.parent / "landing", config_dir=REPO / "config")
    feb = [D(2026, 2, 1) + dt.timedelta(days=i) for i in range(28)]
    t0, c0 = time.perf_counter(), time.process_time()
    result = pipeline.run_stage(settings, "receivables", feb, run_id="bench", progress=lambda _m: None)
    seconds, stage_cpu = time.perf_counter() - t0, time.process_time() - c0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss = usage.ru_maxrss / 1e6  # KiB -> GB
    cpu = usage.ru_utime + usage.ru_stime  # the whole process: import and the stage, every thread
    print(
        json.dumps(
            {
                "seconds": seconds,
                "stage_cpu_seconds": stage_cpu,  # the stage alone, every thread
                "cpu_seconds": cpu,
                "peak_rss_gb": rss,
                "load": os.getloadavg()[0],
                "rows": result.rows,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--one-run", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one_run:
        one_run(args.one_run)
        return
    with tempfile.TemporaryDirectory(prefix="bench-receivables-") as tmp:
        base = Lake(Path(tmp) / "lake")
        t0 = time.perf_counter()
        synthesise(base, args.customers, args.seed)
        print(f"synthesis {time.perf_counter() - t0:.1f} s", flush=True)
        runs = []
        for i in range(args.repeat):
            out = subprocess.run(
                [sys.executable, __file__, "--one-run", str(base.root)], capture_output=True, text=True, check=True
            )
            run = json.loads(out.stdout.strip().splitlines()[-1])
            runs.append(run)
            print(
                f"run {i + 1}: {run['seconds']:.2f} s ({run['stage_cpu_seconds']:.1f} s CPU in the stage, "
                f"{run['cpu_seconds']:.1f} s in the process), peak RSS {run['peak_rss_gb']:.2f} GB, "
                f"load {run['load']:.1f}, rows {run['rows']}"
            )
        secs = [r["seconds"] for r in runs]
        cpus = [r["cpu_seconds"] for r in runs]
        stage_cpus = [r["stage_cpu_seconds"] for r in runs]
        print(
            f"receivables stage, {args.customers:,} customers: median {statistics.median(secs):.2f} s "
            f"({statistics.median(stage_cpus):.1f} s CPU in the stage, {statistics.median(cpus):.1f} s in the process) "
            f"(min {min(secs):.2f}, max {max(secs):.2f}), peak RSS max {max(r['peak_rss_gb'] for r in runs):.2f} GB"
        )


if __name__ == "__main__":
    main()
