"""County-day benchmark: 500k meters, 1 day (48M interval values), every dataset, every stage.

Generates the landing zone once (cached under bench-data/), then runs the pipeline
``--repeat`` times, each in a fresh lake and a fresh process, and reports per stage
the median wall time and CPU time (user + system, every thread of the process), the
run's total, and the peak RSS: the run's process alone (``os.wait4`` rusage, exact) and
the sum over it and its helper processes (the docs stage's), sampled every 20 ms
(:class:`TreeRss`): a worker's memory is what all of them hold at once.

    python benchmarks/county_day.py                    # all stages, 3 repeats
    python benchmarks/county_day.py --stages ingest    # the ingest budget alone
    python benchmarks/county_day.py --meters 50000     # a smaller county
    python benchmarks/county_day.py --small            # 300 meters x 59 days: the fixed cost per day
    python benchmarks/county_day.py --days 31 --repeat 1   # a month backfill
    python benchmarks/county_day.py --days 31 --repeat 1 --progress   # ... with the stages' progress lines

A landing zone is cached as ``DATA/landing-<meters>-<days>-<start>`` (complete once it holds
``.complete``): a link of that name to a zone generated elsewhere is used as it is.

The machine is noisy (2 shared cores): quote medians, CPU next to wall, the load
average (printed before and after each run) and the host probe (:data:`PROBE`, timed
before each run: the machine's own speed at that moment).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALL_STAGES = "ingest,outages,validate,loss,anomalies,billing,receivables,check,docs,publish"
#: the small run: a few hundred meters over two months, where the cost per day is fixed cost
SMALL = {"meters": 300, "days": 59, "start": "2026-01-01"}


def generate(landing: Path, meters: int, days: int, start: dt.date) -> float:
    stamp = landing / ".complete"
    if stamp.exists():
        return 0.0
    if landing.is_symlink():  # someone else's zone, not finished (or not ours to regenerate)
        raise SystemExit(f"{landing} links to a landing zone without .complete: finish it there or remove the link")
    shutil.rmtree(landing, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "meterlake",
            "generate",
            "--out",
            str(landing),
            "--meters",
            str(meters),
            "--days",
            str(days),
            "--start",
            start.isoformat(),
            "--seed",
            "7",
        ],
        check=True,
    )
    stamp.write_text("ok")
    return time.perf_counter() - t0


CHILD = """
import datetime as dt, json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
from meterlake import pipeline
from meterlake.settings import Settings
landing, lake, start, end, stages, verbose = sys.argv[1:7]
def say(msg):  # the stages' progress lines, stamped, on stderr (--progress)
    print(time.strftime("%H:%M:%S"), f"{time.perf_counter() - t0:8.1f}s", msg, file=sys.stderr, flush=True)
s = Settings(landing=landing, lake=lake, progress=False, pii_key="benchmark", pg_dsn=None, config_dir=None)
spans = {}  # stage -> [start, end] in seconds from the child's start (stages may overlap)
_run_stage = pipeline.run_stage
def run_stage(settings, stage, *args, **kwargs):
    t = time.perf_counter()
    try:
        return _run_stage(settings, stage, *args, **kwargs)
    finally:
        spans[stage] = [round(t - t0, 2), round(time.perf_counter() - t0, 2)]
pipeline.run_stage = run_stage
rec = pipeline.run(s, dt.date.fromisoformat(start), dt.date.fromisoformat(end), stages=stages.split(","), progress=say if verbose == "1" else lambda m: None)
out = {"wall": {k: v["seconds"] for k, v in rec["stages"].items()}, "cpu": {k: v.get("cpu_seconds", -1.0) for k, v in rec["stages"].items()}}  # -1: code without StageResult.cpu_seconds
out["wall"]["total"] = round(time.perf_counter() - t0, 3)
import resource
kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # the docs stage's helper process
out["cpu"]["total"] = round(time.process_time() - c0 + kids.ru_utime + kids.ru_stime, 3)
# its own peak (ru_maxrss of a child holds the parent's RSS when it was spawned)
out["helper_peak_rss_gb"] = round(rec["stages"].get("docs", {}).get("details", {}).get("helper_peak_rss_mb", 0) / 1024, 2)
out["accounting"] = rec["stages"].get("ingest", {}).get("details", {}).get("accounting")
out["spans"] = spans
print("RESULT " + json.dumps(out))
"""


#: a fixed single-threaded workload, timed in a fresh process before each run (the best of
#: 3): the C library's sort, the interpreter's loop and fresh pages (faults and zeroing),
#: the three things the pipeline's CPU is made of. The machine's speed drifts by a third
#: within hours: the probe shows a slower CPU, not other tenants taking the memory
#: bandwidth or the second core (only base and change run in turn show those)
PROBE = """
import time
import numpy as np
values = np.random.default_rng(7).random(2_000_000)
times = []
for _ in range(3):
    t = time.perf_counter()
    np.sort(values)
    total = 0
    for i in range(1_000_000):
        total += i & 7
    block = bytearray(64 << 20)
    del block
    times.append(time.perf_counter() - t)
print(round(min(times) * 1000))
"""


def host_probe() -> int:
    """Milliseconds the :data:`PROBE` workload takes on this machine now (lower: faster)."""
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


class TreeRss(threading.Thread):
    """The peak of the summed resident memory of a process and its descendants, sampled
    every ``every_s`` seconds from ``/proc`` (a peak shorter than that may be missed)."""

    def __init__(self, pid: int, every_s: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s = pid, every_s
        self.peak_kib = 0
        #: (seconds since start, MiB) every 0.1 s: which stage holds the peak
        self.timeline: list[tuple[float, int]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        t0 = last = time.perf_counter()
        while not self._stop_event.wait(self.every_s):
            now_kib = sum(_rss_kib(p) for p in _tree(self.pid))
            self.peak_kib = max(self.peak_kib, now_kib)
            if time.perf_counter() - last >= 0.1:
                last = time.perf_counter()
                self.timeline.append((round(last - t0, 2), now_kib // 1024))

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak_kib


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (by ``/proc/<pid>/task/<tid>/children``)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children", encoding="ascii") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except OSError:  # it has ended
            continue
    return out


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def run_once(
    landing: Path, lake: Path, start: dt.date, end: dt.date, stages: str, progress: bool = False, keep: bool = False
) -> dict:
    if not keep:
        shutil.rmtree(lake, ignore_errors=True)
        (lake.parent / f"{lake.name}.duckdb").unlink(missing_ok=True)  # the reporting DB publish writes
    probe_ms = host_probe()
    load_before = os.getloadavg()[0]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            str(landing),
            str(lake),
            start.isoformat(),
            end.isoformat(),
            stages,
            "1" if progress else "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("METERLAKE_")},
    )
    sampler = TreeRss(proc.pid)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    peak_sum_kib = sampler.stop()
    out = proc.stdout.read() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark run failed (exit {os.waitstatus_to_exitcode(status)})")
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    result["peak_rss_gb"] = round(usage.ru_maxrss / 1024**2, 2)  # ru_maxrss is KiB on Linux
    # the run's process and its helpers together, sampled (the exact main peak where larger)
    result["peak_rss_sum_gb"] = round(max(peak_sum_kib, usage.ru_maxrss) / 1024**2, 2)
    result["rss_timeline_mb"] = sampler.timeline
    result["process_cpu"] = round(usage.ru_utime + usage.ru_stime, 2)  # with the interpreter's start
    result["load"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    result["host_probe_ms"] = probe_ms
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meters", type=int, default=500_000)
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--start", default="2026-03-02")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--stages", default=ALL_STAGES, help="comma-separated stages, in pipeline order")
    ap.add_argument("--small", action="store_true", help="300 meters x 59 days from 2026-01-01 (sets the three)")
    ap.add_argument("--data", type=Path, default=ROOT / "bench-data", help="where the generated landing zone is cached")
    ap.add_argument(
        "--lake",
        type=Path,
        default=None,
        help="the lake each run rebuilds (default DATA/lake; give each benchmark running at once its own)",
    )
    ap.add_argument(
        "--results",
        type=Path,
        default=None,
        help="where the runs' figures are written as JSON (default DATA/results.json; give a shared, read-only DATA another)",
    )
    ap.add_argument("--progress", action="store_true", help="print the stages' progress lines, stamped, on stderr")
    ap.add_argument(
        "--keep-lake",
        action="store_true",
        help="run on the lake as it is (e.g. later stages on the lake of an earlier run), not a fresh one",
    )
    args = ap.parse_args()
    if args.small:
        args.meters, args.days, args.start = SMALL["meters"], SMALL["days"], SMALL["start"]

    start = dt.date.fromisoformat(args.start)
    end = start + dt.timedelta(days=args.days - 1)
    landing = args.data / f"landing-{args.meters}-{args.days}-{args.start}"
    gen_s = generate(landing, args.meters, args.days, start)
    if gen_s:
        print(f"generated {args.meters:,} meters x {args.days} day(s) in {gen_s:.1f} s")
    runs = []
    for i in range(args.repeat):
        r = run_once(landing, args.lake or args.data / "lake", start, end, args.stages, args.progress, args.keep_lake)
        runs.append(r)
        print(
            f"run {i + 1}/{args.repeat}: "
            + ", ".join(f"{k} {r['wall'][k]:.1f}s (cpu {r['cpu'][k]:.1f})" for k in r["wall"])
            + f"; peak RSS {r['peak_rss_gb']:.2f} GB (all processes {r['peak_rss_sum_gb']:.2f}, "
            + f"docs helper {r['helper_peak_rss_gb']:.2f}); load {r['load'][0]} -> {r['load'][1]}; "
            + f"host probe {r['host_probe_ms']} ms"
        )
    keys = list(runs[0]["wall"])
    summary = {
        "wall": {k: statistics.median(r["wall"][k] for r in runs) for k in keys},
        "cpu": {k: statistics.median(r["cpu"][k] for r in runs) for k in keys},
        "peak_rss_gb_max": max(r["peak_rss_gb"] for r in runs),
        "peak_rss_sum_gb_max": max(r["peak_rss_sum_gb"] for r in runs),
        "load": [r["load"] for r in runs],
        "host_probe_ms": [r["host_probe_ms"] for r in runs],
    }
    print("median wall: " + json.dumps(summary["wall"]))
    print("median cpu:  " + json.dumps(summary["cpu"]))
    print(
        f"peak RSS (max of runs): {summary['peak_rss_gb_max']:.2f} GB; "
        f"all processes together {summary['peak_rss_sum_gb_max']:.2f} GB"
    )
    print("accounting: " + json.dumps(runs[-1]["accounting"]))
    out = args.results or args.data / "results.json"
    out.write_text(
        json.dumps(
            {
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "runs": runs,
                "median": summary,
            },
            indent=2,
        )
    )
    print(f"results: {out}")


if __name__ == "__main__":
    main()
