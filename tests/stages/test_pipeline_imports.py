"""The pipeline imports a stage's module when the stage first runs, not before."""

from __future__ import annotations

import json
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


def test_the_publish_stage_loads_psycopg_only_to_send_to_postgresql() -> None:
    probe = (
        "import sys\n"
        "import meterlake.stages.publish\n"
        "from meterlake.publish import postgres\n"
        "loaded = 'psycopg' in sys.modules\n"
        "postgres.create_sql(postgres.registry.tables()[0], 'meterlake')\n"
        "print(loaded, 'psycopg' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["False", "True"]
