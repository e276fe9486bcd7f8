"""A province day on the CeleryExecutor: 8 org units x 60,000 meters x 1 day, on 1 and 2 workers.

For each worker count: a fresh lake and a fresh PostgreSQL metadata database, Redis as the
broker (a database number and a queue of the benchmark's own), an api-server, a scheduler,
a DAG processor and N Celery workers (concurrency 1 each, pool ``meterlake_shards`` of N
slots); one ``meterlake_province`` run is triggered for the day and timed from the trigger
to its end. Reported per worker count: wall, speedup over 1 worker, per-unit task time
(median), the peak RSS of each worker (the worker and its task processes, sampled every
0.5 s), and the scheduler's overhead per shard: the median time a unit task waited between
being queued and starting while a pool slot was free, and the run's wall minus the work
(split + the unit tasks spread over N workers + record) divided by the units.

The baseline is ``meterlake run --sharded`` in one process on the same landing zone.

    flock /work/wt/county.lock .venv/bin/python benchmarks/province_celery.py [--orgs 8] [--meters 60000]

Needs PostgreSQL on 127.0.0.1:5432 (trust auth) and Redis on 127.0.0.1:6379. Prints one
JSON line per configuration.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DAY = dt.date(2026, 1, 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def json_list(out: str) -> list[dict[str, Any]]:
    for line in out.splitlines():
        if line.startswith("["):
            found: list[dict[str, Any]] = json.loads(line)
            return found
    return []


class Sampler(threading.Thread):
    """Peak RSS of a process and its children, sampled every 0.5 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in procs if p.is_running())
                self.peak = max(self.peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.5)


def deployment(workdir: Path, workers: int, landing: Path, lake: Path) -> dict[str, Any]:
    db = f"meterlake_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG, autocommit=True) as con:
        con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
    home = workdir / f"airflow-{workers}"
    home.mkdir(parents=True)
    queue = f"meterlake_bench_{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "METERLAKE_"))}
    env |= {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Asia/Shanghai",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": url,
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{secrets.randbelow(14) + 1}",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + url,
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        # the scheduled run made on unpausing finds an empty zone and ends at once
        "METERLAKE_LANDING": str(workdir / "empty-landing"),
        "METERLAKE_LAKE": str(workdir / f"empty-lake-{workers}"),
        "METERLAKE_PII_KEY": "bench-key",
        "METERLAKE_PROGRESS": "false",
    }
    (workdir / "empty-landing").mkdir(exist_ok=True)
    return {"db": db, "home": home, "queue": queue, "port": port, "env": env, "landing": landing, "lake": lake}


def airflow(dep: dict[str, Any], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "airflow"), *args], env=dep["env"], capture_output=True, text=True, timeout=timeout, check=False
    )


def start(dep: dict[str, Any], name: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
    log = open(dep["home"] / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(
        [str(BIN / "airflow"), *args],
        env=dep["env"] | env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def paused(dep: dict[str, Any]) -> bool | None:
    res = airflow(dep, "dags", "list", "-o", "json")
    for row in json_list(res.stdout) if res.returncode == 0 else []:
        if row.get("dag_id") == "meterlake_province":
            return str(row.get("is_paused")).lower() in ("true", "1")
    return None


def run_workers(workdir: Path, workers: int, landing: Path, orgs: int) -> dict[str, Any]:
    lake = workdir / f"lake-{workers}"
    dep = deployment(workdir, workers, landing, lake)
    procs: list[subprocess.Popen[bytes]] = []
    samplers: list[Sampler] = []
    try:
        assert airflow(dep, "db", "migrate").returncode == 0
        assert airflow(dep, "pools", "set", "meterlake_shards", str(workers), "bench").returncode == 0
        procs.append(start(dep, "api-server", "api-server", "--port", str(dep["port"])))
        procs.append(start(dep, "dag-processor", "dag-processor"))
        procs.append(start(dep, "scheduler", "scheduler"))
        for n in range(1, workers + 1):
            p = start(
                dep, f"worker{n}", "celery", "worker", "--queues", dep["queue"], "--concurrency", "1",
                "--celery-hostname", f"w{n}-{dep['queue']}@%h",
            )  # fmt: skip
            procs.append(p)
            samplers.append(Sampler(p.pid))
        for s in samplers:
            s.start()
        while paused(dep) is None:
            time.sleep(3)
        assert airflow(dep, "dags", "unpause", "meterlake_province").returncode == 0
        time.sleep(15)  # let the scheduled run (empty zone) finish
        conf = {"start": DAY.isoformat(), "end": DAY.isoformat(), "landing": str(landing), "lake": str(lake)}
        t0 = time.monotonic()
        res = airflow(dep, "dags", "trigger", "meterlake_province", "--conf", json.dumps(conf))
        assert res.returncode == 0, res.stderr[-2000:]
        state = "queued"
        while state not in ("success", "failed"):
            time.sleep(2)
            runs = json_list(airflow(dep, "dags", "list-runs", "meterlake_province", "-o", "json").stdout)
            manual = [r for r in runs if str(r.get("run_id", "")).startswith("manual__")]
            state = manual[0]["state"] if manual else "queued"
        wall_trigger = time.monotonic() - t0
    finally:
        for s in samplers:
            s.stop.set()
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{dep['db']}") as con:
        rows = con.execute(
            "SELECT ti.task_id, ti.map_index, ti.queued_dttm, ti.start_date, ti.end_date, ti.state "
            "FROM task_instance ti JOIN dag_run dr ON dr.run_id = ti.run_id AND dr.dag_id = ti.dag_id "
            "WHERE dr.run_type = 'manual' ORDER BY ti.start_date"
        ).fetchall()
        run = con.execute(
            "SELECT start_date, end_date FROM dag_run WHERE dag_id = 'meterlake_province' AND run_type = 'manual'"
        ).fetchone()
    with psycopg.connect(PG, autocommit=True) as con:
        con.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dep["db"])))
    assert state == "success" and run is not None, f"run {state}; see {dep['home']}"
    units = [r for r in rows if r[0] == "unit"]
    unit_s = [(r[4] - r[3]).total_seconds() for r in units]
    other_s = sum((r[4] - r[3]).total_seconds() for r in rows if r[0] != "unit")
    waits = [(r[3] - r[2]).total_seconds() for r in units if r[2] is not None]
    wall = (run[1] - run[0]).total_seconds()
    ideal = other_s + sum(unit_s) / workers
    return {
        "workers": workers,
        "units": len(units),
        "wall_s": round(wall, 1),
        "wall_from_trigger_s": round(wall_trigger, 1),
        "unit_task_median_s": round(statistics.median(unit_s), 1),
        "unit_task_sum_s": round(sum(unit_s), 1),
        "split_and_record_s": round(other_s, 1),
        "queued_to_start_median_s": round(statistics.median(waits), 2) if waits else None,
        "scheduler_overhead_per_shard_s": round((wall - ideal) / len(units), 2),
        "peak_rss_per_worker_gb": [round(s.peak / 1e9, 2) for s in samplers],
        "load_avg": os.getloadavg(),
    }


def baseline(landing: Path, lake: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERLAKE_")}
    env |= {"METERLAKE_PII_KEY": "bench-key", "METERLAKE_PROGRESS": "false"}
    cmd = [str(BIN / "python"), "-m", "meterlake", "run", "--landing", str(landing), "--lake", str(lake)]
    cmd += ["--start", DAY.isoformat(), "--end", DAY.isoformat(), "--sharded"]
    t0 = time.monotonic()
    before = os.times()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    after = os.times()
    assert res.returncode == 0, res.stderr[-2000:]
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return {"workers": "meterlake run (1 process)", "wall_s": round(time.monotonic() - t0, 1), "cpu_s": round(cpu, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orgs", type=int, default=8)
    ap.add_argument("--meters", type=int, default=60_000)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--workdir", type=Path, default=REPO / "bench-data" / "province")
    args = ap.parse_args()
    landing = args.workdir / f"landing-{args.orgs}x{args.meters}"
    if not landing.exists():
        from meterlake.generate import generate

        t0 = time.monotonic()
        generate(landing, meters=args.meters, days=1, start=DAY, seed=42, orgs=args.orgs)
        print(json.dumps({"generated_s": round(time.monotonic() - t0, 1), "landing": str(landing)}), flush=True)
    run_dir = args.workdir / f"run-{uuid.uuid4().hex[:6]}"
    run_dir.mkdir(parents=True)
    print(json.dumps(baseline(landing, run_dir / "baseline")), flush=True)
    first = None
    for n in (int(w) for w in args.workers.split(",")):
        out = run_workers(run_dir, n, landing, args.orgs)
        first = first or out["wall_s"]
        out["speedup"] = round(first / out["wall_s"], 2)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
