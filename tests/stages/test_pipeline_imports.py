"""The pipeline imports a stage's module when the stage first runs, not before; the publish stage
imports the PostgreSQL driver only when there is a database to publish to."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from meterlake.pipeline import RUNNERS

ROOT = Path(__file__).resolve().parents[2]

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


def _imported_modules(path: Path) -> set[str]:
    """The absolute names of the meterlake modules a source file imports (relative imports
    resolved against the file's own package)."""
    parts = path.relative_to(ROOT).parts[:-1]
    # transforms/, schemas/ and checks/ are installed as meterlake.transforms and so on
    package = ".".join(parts if parts[0] in {"meterlake", "dags"} else ("meterlake", *parts))
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pieces = package.split(".")
                parent = ".".join(pieces[: len(pieces) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


STAGE_MODULES = {f"meterlake.stages.{name}" for name in RUNNERS}


def test_only_the_pipeline_imports_a_stage() -> None:
    """A stage is run by the pipeline, by name; what other modules need of a stage's data
    (the manifest, the schemas, the lake) lives in a module of its own."""
    offenders = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] not in {"meterlake", "transforms", "checks", "dags", "schemas"}:
            continue
        if rel.parts[:2] == ("meterlake", "stages") or rel == Path("meterlake/pipeline.py"):
            continue
        found = _imported_modules(path) & STAGE_MODULES
        if found:
            offenders[str(rel)] = sorted(found)
    assert offenders == {}


def test_the_import_scan_sees_relative_and_absolute_imports() -> None:
    probe = ROOT / "meterlake" / "summary.py"
    assert "meterlake.manifest.accounting" in _imported_modules(probe)
    nested = ROOT / "meterlake" / "report" / "html.py"
    assert "meterlake.report.charts" in _imported_modules(nested)
    mapped = ROOT / "transforms" / "loss.py"
    assert any(name.startswith("meterlake.transforms.") for name in _imported_modules(mapped))
