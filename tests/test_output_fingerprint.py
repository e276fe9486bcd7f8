"""Speed-ups must not change what the pipeline writes: a fixed small run against a stored fingerprint.

The landing zone is generated from a fixed seed (200 meters, 35 days across a month
end, so the monthly stages run for two months), every stage runs (check and publish
included), and each table under ``clean/`` and ``marts/`` is fingerprinted by its sorted
rows (:func:`meterlake.audit.table_fingerprints`), with the row accounting of every
landing file. ``tests/golden/pipeline_fingerprint.json`` was written by the code as it
was before the performance work; a change that is meant to alter outputs (a new
definition, a new column) rewrites it on purpose:

    .venv/bin/python tests/test_output_fingerprint.py --write
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden" / "pipeline_fingerprint.json"
METERS, DAYS, START, SEED = 200, 35, dt.date(2026, 1, 20), 11


def run_fixed(tmp: Path) -> dict[str, object]:
    """Generate the fixed landing zone under ``tmp``, run every stage, return the fingerprint."""
    from meterlake import audit, pipeline
    from meterlake.generate import generate
    from meterlake.settings import Settings

    landing, lake = tmp / "landing", tmp / "lake"
    generate(landing, meters=METERS, days=DAYS, start=START, seed=SEED)
    settings = Settings(
        landing=landing,
        lake=lake,
        pii_key="fingerprint-test-key",
        reporting_db=tmp / "reporting.duckdb",
        config_dir=None,
        pg_dsn=None,
        progress=False,
    )
    end = START + dt.timedelta(days=DAYS - 1)
    record = pipeline.run(settings, START, end, progress=lambda _msg: None)
    assert record["status"] == "ok"
    accounting = json.dumps(audit.accounting_rows(lake), sort_keys=True, default=str)
    return {
        "tables": audit.table_fingerprints(lake),
        "accounting": hashlib.sha256(accounting.encode()).hexdigest(),
    }


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")  # the outputs are compared here, not the warnings libraries raise
def test_fixed_run_matches_stored_fingerprint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("METERLAKE_PG_DSN", "METERLAKE_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    got = run_fixed(tmp_path)
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert got["accounting"] == want["accounting"], "row accounting differs"
    tables_got, tables_want = got["tables"], want["tables"]
    assert isinstance(tables_got, dict) and isinstance(tables_want, dict)
    differ = sorted(t for t in tables_got.keys() | tables_want.keys() if tables_got.get(t) != tables_want.get(t))
    assert not differ, f"tables differ from the stored fingerprint: {differ}"


if __name__ == "__main__":  # pragma: no cover - rewrites the golden file
    import tempfile

    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python tests/test_output_fingerprint.py --write")
    with tempfile.TemporaryDirectory() as tmp:
        fp = run_fixed(Path(tmp))
    GOLDEN.write_text(json.dumps(fp, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN}")
