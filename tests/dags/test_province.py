"""The province DAGs: one mapped task per org unit, a failed unit leaves the others whole.

``airflow dags test`` (``dag.test()``: mapping included, in-process, SQLite in tmp_path)
over a two-unit landing zone, with a third unit asked for that the lake does not hold:
its task fails, the two others complete and publish, the record task names the missing
unit, and each complete unit's tables are those of one ``meterlake run --sharded``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"

pytestmark = pytest.mark.slow

SCRIPT = """
import sys
CONF = sys.argv[1]
from airflow.__main__ import main
def cli(*argv):
    sys.argv = ["airflow", *argv]
    try:
        main()
    except SystemExit as exc:
        if exc.code not in (None, 0):
            print("EXIT", exc.code)
cli("db", "migrate")
cli("dags", "test", "meterlake_province", "2026-01-03", "--conf", CONF)
"""


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "METERLAKE_"))}
    return env | {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Asia/Shanghai",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "METERLAKE_PII_KEY": "test-key",
        "METERLAKE_PROGRESS": "false",
    }


def _tables(root: Path) -> dict[str, pl.DataFrame]:
    out = {}
    for layer in ("clean", "marts"):
        for table in sorted({p.parent.parent.name for p in root.glob(f"org_id=*/{layer}/*/*=*/*.parquet")}):
            out[f"{layer}/{table}"] = pl.scan_parquet(
                f"{root}/org_id=*/{layer}/{table}/**/*.parquet", hive_partitioning=True
            ).collect()
    return out


def test_a_failed_unit_does_not_stop_the_others(tmp_path: Path) -> None:
    from meterlake.generate import generate

    landing, lake, reference = tmp_path / "landing", tmp_path / "lake", tmp_path / "reference"
    generate(landing, meters=60, days=2, start=dt.date(2026, 1, 1), seed=4, orgs=2)
    home = tmp_path / "airflow"
    home.mkdir()
    conf = {
        "start": "2026-01-01",
        "end": "2026-01-02",
        "landing": str(landing),
        "lake": str(lake),
        "orgs": ["ORG01", "ORG02", "ORG09"],
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(conf)],
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=900,
        cwd=home,
    )
    output = done.stdout + done.stderr
    records = list((lake / "_meta" / "runs").glob("*.json"))
    assert len(records) == 1, output[-8000:]
    (record_path,) = records
    record = json.loads(record_path.read_text())
    assert record["missing"] == ["ORG09"], output[-6000:]
    assert record["status"] == "incomplete"
    assert {o: u["status"] for o, u in record["units"].items()} == {"ORG01": "ok", "ORG02": "ok", "ORG09": "missing"}
    assert "holds no unit 'ORG09'" in output
    assert not (lake / "org_id=ORG09").exists(), "the unknown unit wrote nothing"
    # the complete units published their reports
    for org in ("ORG01", "ORG02"):
        assert list((lake / f"org_id={org}" / "reports").glob("*.html")), f"{org} has no report"

    # the same tables as one `meterlake run --sharded`
    env = {k: v for k, v in _env(home).items() if not k.startswith("AIRFLOW")}
    cmd = [sys.executable, "-m", "meterlake", "run", "--landing", str(landing), "--lake", str(reference)]
    cmd += ["--start", "2026-01-01", "--end", "2026-01-02", "--sharded"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    ours, theirs = _tables(lake), _tables(reference)
    assert ours.keys() == theirs.keys() and len(ours) > 20
    for name, frame in ours.items():
        assert_frame_equal(frame, theirs[name], check_row_order=False)
