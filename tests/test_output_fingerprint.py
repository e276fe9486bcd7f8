"""Speed-ups must not change what the pipeline writes: a fixed small run against a stored fingerprint.

The landing zone is generated from a fixed seed (200 meters, 35 days across a month
end, so the monthly stages run for two months), every stage runs (check and publish
included), and each table under ``clean/`` and ``marts/`` is fingerprinted by its sorted
rows (:func:`meterlake.audit.table_fingerprints`), with the row accounting of every
landing file. ``tests/golden/pipeline_fingerprint.json`` was written by the code as it
was before the performance work; a change that is meant to alter outputs (a new
definition, a new column) rewrites it on purpose:

    .venv/bin/python tests/test_output_fingerprint.py --write

The run happens in a child process with the CPU-dependent arithmetic pinned
(:data:`PINNED_CPU`): OpenBLAS's kernel and thread count, numpy's SIMD loops held to
AVX2 (it dispatches AVX-512 versions of its reductions and math functions where the CPU
has them), and numba compiling for Haswell rather than for the host. Each of these picks
its code by CPU, and the interval balance's fits came out different in the last bits
between them; through the window's thresholds (the customers that stand out, the days at
t >= 2) that moved a days statistic in its third decimal and borderline listings (a
fingerprint written with OpenBLAS alone pinned failed on another machine a day later).
Pinned, the fixed run is meant to write the same tables on any x86-64 machine with AVX2;
the pipeline itself keeps whatever the machine has.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden" / "pipeline_fingerprint.json"
METERS, DAYS, START, SEED = 200, 35, dt.date(2026, 1, 20), 11
#: the arithmetic the fixed run uses whatever the machine (read by OpenBLAS, numpy and
#: numba when they load): Haswell's BLAS kernel on one thread, numpy's loops up to AVX2
#: (its dispatch targets above X86_V3 turned off), numba's code for Haswell
PINNED_CPU = {
    "OPENBLAS_CORETYPE": "Haswell",
    "OPENBLAS_NUM_THREADS": "1",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
    "NUMBA_CPU_NAME": "haswell",
}


def _has_avx2() -> bool:
    """Whether this CPU runs OpenBLAS's Haswell kernel (x86-64 with AVX2 and FMA, Linux)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return False
    return " avx2" in flags and " fma" in flags


def fingerprint_pinned(tmp: Path) -> dict[str, object]:
    """:func:`run_fixed` in a child process with :data:`PINNED_CPU` set before numpy loads."""
    env = {k: v for k, v in os.environ.items() if k not in ("METERLAKE_PG_DSN", "METERLAKE_CONFIG_DIR")}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--print", str(tmp)],
        env=env | PINNED_CPU,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"the fixed run failed:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


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
@pytest.mark.skipif(
    not _has_avx2(), reason="the stored fingerprint was made with OpenBLAS's Haswell kernel (x86-64, AVX2)"
)
def test_fixed_run_matches_stored_fingerprint(tmp_path: Path) -> None:
    got = fingerprint_pinned(tmp_path)
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert got["accounting"] == want["accounting"], "row accounting differs"
    tables_got, tables_want = got["tables"], want["tables"]
    assert isinstance(tables_got, dict) and isinstance(tables_want, dict)
    differ = sorted(t for t in tables_got.keys() | tables_want.keys() if tables_got.get(t) != tables_want.get(t))
    assert not differ, f"tables differ from the stored fingerprint: {differ}"


if __name__ == "__main__":  # pragma: no cover - rewrites the golden file
    import tempfile
    import warnings

    if sys.argv[1:2] == ["--print"] and len(sys.argv) == 3:  # the child of fingerprint_pinned
        warnings.simplefilter("ignore")  # the outputs are compared, not the warnings libraries raise
        print(json.dumps(run_fixed(Path(sys.argv[2]))))
        raise SystemExit(0)
    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python tests/test_output_fingerprint.py --write")
    with tempfile.TemporaryDirectory() as tmp:
        fp = fingerprint_pinned(Path(tmp))
    GOLDEN.write_text(json.dumps(fp, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN}")
