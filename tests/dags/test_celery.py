"""The province DAG on the CeleryExecutor: real services, started and stopped by the test.

Metadata in the machine's PostgreSQL (a database the test creates and drops), the Redis
broker on 127.0.0.1:6379 (a database number and a queue of the test's own, so other
Airflow deployments on the same Redis never take its tasks), an api-server, a scheduler,
a DAG processor and two Celery workers. The landing zone and the lake are on an S3 API
server on loopback and each worker has a cache of its own: the workers share no disk.
The daily DAG over a 4-unit landing zone gives the tables of one ``meterlake run``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
pytest.importorskip("airflow.providers.celery")
pytest.importorskip("obstore")
pytest.importorskip("boto3")
pytest.importorskip("moto.server")

REDIS = ("127.0.0.1", 6379)
BUCKET = "meterlake-celery"
#: the whole test may take this long on a busy 2-core machine before it gives up
DEADLINE_S = 1200
UNITS = ["ORG01", "ORG02", "ORG03", "ORG04"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_answers() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=3) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def database(pg_dsn: str) -> Iterator[str]:
    """A PostgreSQL database of the test's own, as a SQLAlchemy URL (psycopg 3)."""
    import psycopg
    from psycopg import sql

    name = f"meterlake_celery_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as con:
        con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(pg_dsn)
    password = f":{info['password']}" if info.get("password") else ""
    try:
        yield (
            f"postgresql+psycopg://{info.get('user', 'postgres')}{password}"
            f"@{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{name}"
        )
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as con:
            con.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def s3(s3_server: dict[str, str], s3_client: Any) -> dict[str, str]:
    s3_client.create_bucket(Bucket=BUCKET)
    return s3_server


def _json_list(out: str) -> list[dict[str, Any]]:
    """The JSON list an `airflow ... -o json` command printed (log lines may come before it)."""
    for line in out.splitlines():
        if line.startswith("["):
            found: list[dict[str, Any]] = json.loads(line)
            return found
    return []


def _paused(dep: Deployment) -> bool | None:
    """Whether meterlake_province is paused; None until the DAG processor has parsed it."""
    res = dep.airflow("dags", "list", "-o", "json")
    for row in _json_list(res.stdout) if res.returncode == 0 else []:
        if row.get("dag_id") == "meterlake_province":
            return str(row.get("is_paused")).lower() in ("true", "1")
    return None


class Deployment:
    """An Airflow deployment on the CeleryExecutor in tmp_path; every process in its own group."""

    def __init__(self, tmp_path: Path, db_url: str, s3: dict[str, str]) -> None:
        self.home = tmp_path / "airflow"
        self.home.mkdir()
        self.logs = tmp_path / "logs"
        self.logs.mkdir()
        self.queue = f"meterlake_test_{uuid.uuid4().hex[:8]}"
        api_port = _free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "METERLAKE_", "AWS_"))}
        self.env = (
            base
            | s3
            | {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Asia/Shanghai",
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": db_url,
                "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS[0]}:{REDIS[1]}/{secrets.randbelow(14) + 1}",
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + db_url,
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
                "AIRFLOW__API__PORT": str(api_port),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
                "AIRFLOW__CORE__FERNET_KEY": "",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
                # what the scheduled run made on unpausing works on: an empty zone, so it is quick
                "METERLAKE_LANDING": f"s3://{BUCKET}/scheduled/landing",
                "METERLAKE_LAKE": f"s3://{BUCKET}/scheduled/lake",
                "METERLAKE_PII_KEY": "test-key",
                "METERLAKE_PROGRESS": "false",
            }
        )
        self.api_port = api_port
        self.procs: list[subprocess.Popen[bytes]] = []
        self.files: list[Any] = []

    def airflow(self, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "airflow"), *args],
            env=self.env | env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.home,
            check=False,
        )

    def start(self, name: str, *args: str, **env: str) -> None:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.files.append(log)
        self.procs.append(
            subprocess.Popen(
                [str(BIN / "airflow"), *args],
                env=self.env | env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                start_new_session=True,
            )
        )

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for p in self.procs:
            try:
                p.wait(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        for f in self.files:
            f.close()

    def tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in sorted(self.logs.glob("*.log"))
        )


@pytest.mark.skipif(not _redis_answers() and not os.environ.get("CI"), reason="no Redis answers on 127.0.0.1:6379")
def test_province_dag_on_two_celery_workers_gives_the_tables_of_one_run(
    tmp_path: Path, database: str, s3: dict[str, str], s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meterlake.generate import generate

    t0 = time.monotonic()
    landing = tmp_path / "landing"
    generate(landing, meters=60, days=2, start=dt.date(2026, 1, 1), seed=4, orgs=len(UNITS))
    client = s3_client
    for path in sorted(
        (p for p in landing.rglob("*") if p.is_file() and "_truth" not in p.parts), key=os.path.getmtime
    ):
        client.upload_file(str(path), BUCKET, f"landing/{path.relative_to(landing).as_posix()}")
    lake_url = f"s3://{BUCKET}/lake"

    dep = Deployment(tmp_path, database, s3)
    try:
        res = dep.airflow("db", "migrate", timeout=600)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        res = dep.airflow("pools", "set", "meterlake_shards", "2", "units at once")
        assert res.returncode == 0, res.stderr[-3000:]
        dep.start("api-server", "api-server", "--port", str(dep.api_port))
        dep.start("dag-processor", "dag-processor")
        dep.start("scheduler", "scheduler")
        for n in (1, 2):  # two workers, one unit at a time each, caches of their own
            dep.start(
                f"worker{n}",
                "celery",
                "worker",
                "--queues",
                dep.queue,
                "--concurrency",
                "1",
                "--celery-hostname",
                f"w{n}-{dep.queue}@%h",
                METERLAKE_CACHE_DIR=str(tmp_path / f"cache-w{n}"),
            )
        # wait for the DAG processor to parse the DAG (created paused), then unpause it
        while _paused(dep) is None:
            assert time.monotonic() - t0 < DEADLINE_S / 2, dep.tail()
            time.sleep(5)
        res = dep.airflow("dags", "unpause", "meterlake_province")
        assert res.returncode == 0 and _paused(dep) is False, res.stdout[-2000:] + res.stderr[-2000:]
        conf = {
            "start": "2026-01-01",
            "end": "2026-01-02",
            "landing": f"s3://{BUCKET}/landing",
            "lake": lake_url,
        }
        res = dep.airflow("dags", "trigger", "meterlake_province", "--conf", json.dumps(conf), "-o", "json")
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        state = "queued"
        while state not in ("success", "failed"):
            assert time.monotonic() - t0 < DEADLINE_S, f"run still {state}\n{dep.tail()}"
            time.sleep(10)
            runs = dep.airflow("dags", "list-runs", "meterlake_province", "-o", "json")
            found = [
                r
                for r in (_json_list(runs.stdout) if runs.returncode == 0 else [])
                if str(r.get("run_id", "")).startswith("manual__")
            ]
            state = found[0]["state"] if found else "queued"
        assert state == "success", dep.tail()
        workers = {n: (dep.logs / f"worker{n}.log").read_text(errors="replace") for n in (1, 2)}
    finally:
        dep.stop()

    # read the lake back from the bucket: every unit complete
    for key, value in s3.items():
        monkeypatch.setenv(key, value)
    import obstore
    from obstore.store import S3Store

    store = S3Store(BUCKET)
    (key,) = [m["path"] for batch in obstore.list(store, "lake/_meta/runs/") for m in batch]
    record = json.loads(bytes(obstore.get(store, key).bytes()))
    assert record["status"] == "ok" and record["missing"] == []
    assert sorted(record["units"]) == UNITS
    assert all("received" in text.lower() for text in workers.values()), "both workers ran units"

    # the tables of one `meterlake run --sharded` on the same landing zone (as the bucket delivers it)
    reference = tmp_path / "reference"
    env = dep.env | {"METERLAKE_CACHE_DIR": str(tmp_path / "cache-reference")}
    env = {k: v for k, v in env.items() if not k.startswith("AIRFLOW")}
    cmd = [sys.executable, "-m", "meterlake", "run", "--landing", f"s3://{BUCKET}/landing", "--lake", str(reference)]
    cmd += ["--start", "2026-01-01", "--end", "2026-01-02", "--sharded"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    compared = 0
    for layer in ("clean", "marts"):
        tables = sorted({p.parent.parent.name for p in reference.glob(f"org_id=*/{layer}/*/*=*/*.parquet")})
        for table in tables:
            ours = pl.scan_parquet(
                f"{lake_url}/org_id=*/{layer}/{table}/**/*.parquet", hive_partitioning=True
            ).collect()
            theirs = pl.scan_parquet(
                f"{reference}/org_id=*/{layer}/{table}/**/*.parquet", hive_partitioning=True
            ).collect()
            assert set(ours["org_id"]) <= set(UNITS)
            assert_frame_equal(ours.select(theirs.columns), theirs, check_row_order=False)
            compared += 1
    assert compared > 20
