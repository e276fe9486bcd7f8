"""End to end under Airflow: ``airflow dags test`` / ``dag.test()`` on SQLite in tmp_path.

``dag.test()`` runs one DAG run and records its asset events; no scheduler runs the
consumers. ``scripts/airflow_chain.py`` starts each consumer as another ``dag.test()``
whose run conf carries the upstream events' values (param ``upstream``), so these
tests see the whole chain through supported interfaces only: ingest -> marts ->
publish, and monthly -> publish.

Two kinds of run:

* wiring: every stage replaced by a stub that records what it was asked to do (in a
  subprocess, via sys.modules), so the DAGs, dates, paths, asset events and the gate
  are tested whatever state the stages are in;
* real: a small generated landing zone through the real stages, compared with
  ``meterlake run`` on the same landing zone.

Each Airflow process runs in a subprocess: Airflow reads its configuration (home,
database) once per process, at import.
"""

from __future__ import annotations

import http.server
import json
import os
import sqlite3
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any, ClassVar

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
SCRIPTS = REPO / "scripts"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow

#: a stage stand-in: records its call, fails on demand, reports a late date from ingest
STUB_STAGES = """
import datetime as dt, json, os, sys, types
from meterlake.stages import BlockingValidationError, StageResult

def _stub(name):
    def run(ctx, dates):
        with open(os.environ["STUB_LOG"], "a", encoding="utf-8") as fh:
            fh.write(json.dumps({
                "stage": name, "dates": [d.isoformat() for d in dates],
                "lake": str(ctx.settings.lake), "landing": str(ctx.settings.landing),
                "run_id": ctx.run_id,
            }) + "\\n")
        if name == os.environ.get("STUB_BLOCK"):
            raise BlockingValidationError(
                "blocking expectation expect_column_values_to_be_between failed "
                f"on table meter_daily, partition date={dates[0].isoformat()}"
            )
        late = [dates[0] - dt.timedelta(days=5)] if name == "ingest" else []
        return StageResult(
            stage=name, rows={f"stub_{name}": 10 * len(dates)}, dates=sorted(set(dates) | set(late))
        )
    return run

_wanted = os.environ.get("STUB_STAGES", "ingest,outages,validate,loss,anomalies,billing,receivables,check,docs,publish")
for _name in filter(None, _wanted.split(",")):
    _module = types.ModuleType(f"meterlake.stages.{_name}")
    _module.run = _stub(_name)
    sys.modules[_module.__name__] = _module
"""


# --- fixtures and helpers --------------------------------------------------------
#: what every test's Airflow process starts with: the Airflow CLI and the chain
#: runner as functions, and a way to keep a copy of the metadata DB between steps
SCRIPT_PRELUDE = """
import json, os, sqlite3, sys
from airflow.__main__ import main as _airflow_main
import airflow_chain

def cli(*argv):
    sys.argv = ["airflow", *argv]
    try:
        _airflow_main()
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise

def chain(*argv):
    rc = airflow_chain.main([*argv, "--no-retries", "--summary", os.environ["CHAIN_SUMMARY"]])
    sys.exit(rc)

def snapshot(name):  # SQLite's backup API: consistent, WAL included
    with sqlite3.connect(os.environ["AIRFLOW_DB"]) as src:
        with sqlite3.connect(os.path.join(os.environ["AIRFLOW_HOME"], name + ".db")) as dst:
            src.backup(dst)
"""


class Airflow:
    """An Airflow home in tmp_path (SQLite unless told otherwise) and one process on it.

    One process per test: Airflow's imports and its in-process execution API cost
    seconds of CPU per process, so migrate, ``dags test`` and the chain share one.
    """

    def __init__(self, tmp_path: Path, db_url: str | None = None):
        self.home = tmp_path / "airflow"
        self.home.mkdir()
        self.db = self.home / "airflow.db"
        self.landing = tmp_path / "landing"
        self.lake = tmp_path / "lake"
        stub_dir = tmp_path / "stubs"
        stub_dir.mkdir()
        (stub_dir / "meterlake_stub_stages.py").write_text(STUB_STAGES, encoding="utf-8")
        self.stub_log = tmp_path / "stages.jsonl"
        self.summary_path = self.home / "chain-summary.json"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "METERLAKE_"))}
        self.env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__DEFAULT_TIMEZONE="Asia/Shanghai",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=db_url or f"sqlite:///{self.db}",
            AIRFLOW_DB=str(self.db),
            CHAIN_SUMMARY=str(self.summary_path),
            METERLAKE_LANDING=str(self.landing),
            METERLAKE_LAKE=str(self.lake),
            STUB_LOG=str(self.stub_log),
            PYTHONPATH=os.pathsep.join([str(stub_dir), str(SCRIPTS)]),
        )

    def run(self, *steps: str, stubs: bool = True, timeout: int = 600, **env: str) -> dict:
        """Migrate the metadata DB, then run ``steps`` (Python lines) in one process.

        Returns the chain summary when a step ran the chain; ``self.rc`` and
        ``self.output`` hold the process's exit status and output.
        """
        code = SCRIPT_PRELUDE + ("import meterlake_stub_stages\n" if stubs else "")
        code += "cli('db', 'migrate')\n" + "\n".join(steps) + "\n"
        done = subprocess.run(
            [sys.executable, "-c", code],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.home,
        )
        self.rc, self.output = done.returncode, done.stdout + done.stderr
        if not self.summary_path.exists():
            assert self.rc == 0, self.output[-8000:]
            return {}
        return json.loads(self.summary_path.read_text(encoding="utf-8"))

    def stage_calls(self) -> list[dict]:
        if not self.stub_log.exists():
            return []
        return [json.loads(line) for line in self.stub_log.read_text(encoding="utf-8").splitlines()]

    def sql(self, query: str, db: str = "airflow") -> list[tuple]:
        with sqlite3.connect(self.home / f"{db}.db") as con:
            return con.execute(query).fetchall()


def dags_test(dag_id: str, date: str, conf: dict | None = None) -> str:
    """A step: `airflow dags test DAG DATE [--conf JSON]`, the CLI itself."""
    return f"cli('dags', 'test', {dag_id!r}, {date!r}" + (f", '--conf', {json.dumps(conf)!r})" if conf else ")")


def chain(*argv: str) -> str:
    """A step: scripts/airflow_chain.py with these arguments; ends the process."""
    return f"chain(*{list(argv)!r})"


@pytest.fixture
def airflow(tmp_path) -> Airflow:
    return Airflow(tmp_path)


def _run(summary: dict, dag_id: str) -> dict:
    runs = [r for r in summary["runs"] if r["dag_id"] == dag_id]
    assert len(runs) == 1, summary["runs"]
    return runs[0]


def _event_ids(summary: dict, asset: str) -> list[int]:
    return [e["id"] for e in summary["asset_events"] if e["asset"] == asset]


# --- wiring, with stub stages ----------------------------------------------------
def test_chain_runs_the_consumers_with_the_upstream_events_in_their_conf(airflow):
    conf = {"landing": str(airflow.landing), "lake": str(airflow.lake)}
    # the logical date 2026-01-09 (Asia/Shanghai) processes data date 2026-01-08
    summary = airflow.run(chain("meterlake_ingest", "2026-01-09", "--conf", json.dumps(conf)))
    assert airflow.rc == 0, airflow.output[-8000:]

    ingest = _run(summary, "meterlake_ingest")
    chain_run_id = ingest["run_id"].replace(":", "").replace("+", "-")
    clean = [e for e in summary["asset_events"] if e["asset"] == "meterlake.clean"]
    # the event: dates requested + the stub's late date 5 days back, paths, run id, rows
    assert [(e["source_dag_id"], e["extra"]) for e in clean] == [
        (
            "meterlake_ingest",
            {
                "dates": ["2026-01-03", "2026-01-08"],
                "lake": str(airflow.lake),
                "landing": str(airflow.landing),
                "run_id": chain_run_id,
                "stage": "ingest",
                "rows": {"stub_ingest": 10},
            },
        )
    ]
    # the consumers ran as dag.test() runs carrying the upstream events' values
    marts, publish = _run(summary, "meterlake_marts"), _run(summary, "meterlake_publish")
    assert marts["state"] == publish["state"] == "success"
    assert marts["conf"] == {"upstream": [clean[0]["extra"]]}
    checked = [e["extra"] for e in summary["asset_events"] if e["asset"] == "meterlake.checked"]
    assert publish["conf"] == {"upstream": checked} and len(checked) == 1
    assert [r["dag_id"] for r in summary["runs"]] == ["meterlake_ingest", "meterlake_marts", "meterlake_publish"]

    calls = airflow.stage_calls()
    order = [c["stage"] for c in calls]
    assert sorted(order) == sorted(
        ["ingest", "outages", "validate", "loss", "anomalies", "billing", "receivables", "check", "docs", "publish"]
    )
    assert order[:3] == ["ingest", "outages", "validate"] and order[-3:] == ["check", "docs", "publish"]
    assert order.index("loss") < order.index("anomalies")
    assert calls[0]["dates"] == ["2026-01-08"]
    assert {tuple(c["dates"]) for c in calls[1:]} == {("2026-01-03", "2026-01-08")}
    assert {(c["lake"], c["landing"], c["run_id"]) for c in calls} == {
        (str(airflow.lake), str(airflow.landing), chain_run_id)
    }

    # every stage's asset event carries its row counts: 10 per date, 2 dates
    rows = {e["asset"]: e["extra"]["rows"] for e in summary["asset_events"] if e["asset"] != "meterlake.clean"}
    assert rows == {
        "meterlake.outages": {"stub_outages": 20},
        "meterlake.meter_daily": {"stub_validate": 20},
        "meterlake.loss": {"stub_loss": 20},
        "meterlake.anomalies": {"stub_anomalies": 20},
        "meterlake.billing": {"stub_billing": 20},
        "meterlake.receivables": {"stub_receivables": 20},
        "meterlake.checked": {"stub_check": 20},
        "meterlake.data_docs": {"stub_docs": 20},
        "meterlake.published": {"stub_publish": 20},
    }
    # only keys, paths and counts go through XCom
    sizes = airflow.sql("SELECT task_id, length(value) FROM xcom")
    assert sizes and max(size for _, size in sizes) < 2048, sizes


def test_airflow_dags_test_with_the_upstream_event_in_conf(airflow):
    """The shell way: `airflow dags test meterlake_marts --conf '{"upstream": [EXTRA]}'`."""
    extra = {
        "dates": ["2026-01-05"],
        "lake": str(airflow.lake),
        "landing": str(airflow.landing),
        "run_id": "upstream-run",
        "stage": "ingest",
        "rows": {"clean/registers": 3},
    }
    airflow.run(
        dags_test("meterlake_marts", "2026-01-06", {"upstream": [extra]}),
        STUB_STAGES="outages,validate,loss,anomalies,billing,check,docs",
    )
    assert airflow.rc == 0, airflow.output[-8000:]
    calls = airflow.stage_calls()
    assert sorted(c["stage"] for c in calls) == ["anomalies", "billing", "check", "docs", "loss", "outages", "validate"]
    assert {(tuple(c["dates"]), c["lake"], c["run_id"]) for c in calls} == {
        (("2026-01-05",), str(airflow.lake), "upstream-run")
    }


class _Robot(http.server.BaseHTTPRequestHandler):
    """A DingTalk/WeCom group robot stand-in: records what it is sent."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Robot.received.append({"path": self.path, "json": json.loads(body)})
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"errcode":0,"errmsg":"ok"}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def robot():
    _Robot.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Robot)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/robot/send?access_token=t", _Robot.received
    server.shutdown()
    server.server_close()


def test_blocking_check_failure_stops_before_publish_and_alerts(airflow, robot):
    url, received = robot
    conf = {
        "start": "2026-01-08",
        "end": "2026-01-08",
        "landing": str(airflow.landing),
        "lake": str(airflow.lake),
    }
    summary = airflow.run(
        chain("meterlake_ingest", "2026-01-20", "--conf", json.dumps(conf)),
        STUB_BLOCK="check",
        METERLAKE_ALERT_WEBHOOK=url,
        METERLAKE_ALERT_SECRET="SECtest",
    )

    assert airflow.rc == 1
    marts = _run(summary, "meterlake_marts")
    assert marts["state"] == "failed"
    assert marts["tasks"] == {
        "plan": "success",
        "outages": "success",
        "validate": "success",
        "loss": "success",
        "anomalies": "success",
        "billing": "success",
        "receivables": "success",
        "check": "failed",
        "docs": "upstream_failed",
    }
    # the task fails with the stage's message: expectation, table, partition
    message = (
        "check stage failed: blocking expectation expect_column_values_to_be_between failed "
        "on table meter_daily, partition date=2026-01-03"
    )
    assert message in airflow.output
    assert "meterlake.checked" not in {e["asset"] for e in summary["asset_events"]}
    assert "meterlake_publish" not in {r["dag_id"] for r in summary["runs"]}
    assert not {"docs", "publish"} & {c["stage"] for c in airflow.stage_calls()}

    # the failure callback told the robot once, signed, with the task and the reason
    assert len(received) == 1, received
    (alert,) = received
    assert alert["path"].startswith("/robot/send?access_token=t&timestamp=") and "&sign=" in alert["path"]
    assert alert["json"]["msgtype"] == "text"
    text = alert["json"]["text"]["content"]
    assert text.startswith("meterlake: meterlake_marts.check failed (run ")
    assert message in text


def test_monthly_close_reruns_the_month_and_publishes_through_the_gate(airflow):
    summary = airflow.run(chain("meterlake_monthly", "2026-02-02", "--conf", json.dumps({"lake": str(airflow.lake)})))
    assert airflow.rc == 0, airflow.output[-8000:]
    assert _run(summary, "meterlake_monthly")["state"] == "success"
    assert _run(summary, "meterlake_publish")["state"] == "success"

    january = [f"2026-01-{d:02d}" for d in range(1, 32)]
    calls = {c["stage"]: c["dates"] for c in airflow.stage_calls()}
    assert calls == {
        "loss": january,
        "billing": january,
        "receivables": january,
        "check": january,
        "docs": january,
        "publish": january,
    }
    checked = [e["extra"] for e in summary["asset_events"] if e["asset"] == "meterlake.checked"]
    assert [(x["month"], x["rows"]) for x in checked] == [("2026-01", {"stub_check": 310})]


# --- real stages on a generated landing zone -------------------------------------
START, END = "2026-01-01", "2026-01-06"  # D needs the registers frozen on D+1: 7 days generated


@pytest.fixture(scope="module")
def generated_landing(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("generated") / "landing"
    done = subprocess.run(
        [
            str(BIN / "meterlake"),
            "generate",
            "--out",
            str(out),
            "--meters",
            "60",
            "--days",
            "7",
            "--start",
            START,
            "--seed",
            "7",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def _mart_frames(lake: Path) -> dict[str, Any]:
    import polars as pl

    frames = {}
    for path in sorted((lake / "marts").rglob("*.parquet")):
        frame = pl.read_parquet(path)
        frames[str(path.relative_to(lake))] = frame.drop([c for c in frame.columns if "run_id" in c])
    return frames


def test_generated_landing_zone_through_the_dags_matches_meterlake_run(airflow, generated_landing, tmp_path):
    from polars.testing import assert_frame_equal

    conf = {
        "start": START,
        "end": END,
        "landing": str(generated_landing),
        "lake": str(airflow.lake),
    }
    airflow.env["METERLAKE_PII_KEY"] = "e2e-test-key"  # the same card tokens in both lakes
    summary = airflow.run(chain("meterlake_ingest", "2026-01-08", "--conf", json.dumps(conf)), stubs=False)
    assert airflow.rc == 0, airflow.output[-8000:]
    assert [(r["dag_id"], r["state"]) for r in summary["runs"]] == [
        ("meterlake_ingest", "success"),
        ("meterlake_marts", "success"),
        ("meterlake_publish", "success"),
    ]
    clean = [e["extra"] for e in summary["asset_events"] if e["asset"] == "meterlake.clean"]
    assert len(clean) == 1 and sum(clean[0]["rows"].values()) > 0
    assert set(clean[0]["dates"]) >= {f"2026-01-0{d}" for d in range(1, 7)}

    # the same functions as `meterlake run`: the same marts
    cli_lake = tmp_path / "cli-lake"
    done = subprocess.run(
        [
            str(BIN / "meterlake"),
            "run",
            "--landing",
            str(generated_landing),
            "--lake",
            str(cli_lake),
            "--start",
            START,
            "--end",
            END,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=airflow.env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ours, theirs = _mart_frames(airflow.lake), _mart_frames(cli_lake)
    assert ours and sorted(ours) == sorted(theirs)
    for name, frame in ours.items():
        try:
            assert_frame_equal(frame, theirs[name], check_row_order=False)
        except AssertionError as exc:
            raise AssertionError(f"{name}: the DAGs and `meterlake run` disagree: {exc}") from None


# --- production database -----------------------------------------------------------
@pytest.mark.postgres
def test_metadata_db_and_chain_on_postgres(tmp_path, pg_dsn):
    """`airflow db migrate` into a PostgreSQL database of its own, then the chain on it."""
    dsn = pg_dsn
    import psycopg
    from psycopg import sql

    name = f"meterlake_airflow_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
        password = f":{info['password']}" if info.get("password") else ""
        url = (
            f"postgresql+psycopg://{info.get('user', 'postgres')}{password}"
            f"@{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{name}"
        )
        airflow = Airflow(tmp_path, db_url=url)
        # psycopg 3 for Airflow's async engine too (its default driver would be asyncpg)
        airflow.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = url
        summary = airflow.run(chain("meterlake_ingest", "2026-01-09"))
        assert airflow.rc == 0, airflow.output[-8000:]
        assert [(r["dag_id"], r["state"]) for r in summary["runs"]] == [
            ("meterlake_ingest", "success"),
            ("meterlake_marts", "success"),
            ("meterlake_publish", "success"),
        ]
        assert {c["stage"] for c in airflow.stage_calls()} == {
            "ingest",
            "outages",
            "validate",
            "loss",
            "anomalies",
            "billing",
            "receivables",
            "check",
            "docs",
            "publish",
        }
    finally:
        with psycopg.connect(dsn, autocommit=True) as con:
            con.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
