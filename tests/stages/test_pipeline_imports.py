"""The pipeline imports a stage's module when the stage first runs, not before; the publish stage
imports the PostgreSQL driver only when there is a database to publish to."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, sys
from meterlake import pipeline
before = sorted(m for m in sys.modules if m.startswith("meterlake.stages."))
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"great_expectations", "psycopg", "duckdb", "numpy"})
print(json.dumps({"stages": before, "heavy": heavy, "runners": list(pipeline.RUNNERS)}))
"""


def test_importing_the_pipeline_imports_no_stage() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["stages"] == []
    assert got["heavy"] == []
    assert got["runners"] == [
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
    ]


PUBLISH_PROBE = """
import json, sys
from meterlake.stages import publish
from meterlake.publish import dsn
print(json.dumps({"psycopg": "psycopg" in sys.modules, "dsn": dsn.resolve_dsn(None)}))
"""


def test_the_publish_stage_loads_the_postgresql_driver_only_for_a_database() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("METERLAKE_PG_DSN", "AIRFLOW_CTX_DAG_ID")}
    done = subprocess.run([sys.executable, "-c", PUBLISH_PROBE], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"psycopg": False, "dsn": None}
