"""A landing zone and a lake on object storage: a real S3 API server on loopback.

The suite starts moto's S3 server on 127.0.0.1 (a free port), runs ``meterlake run`` with
``s3://`` paths in a separate process, the endpoint and credentials in the standard
AWS variables only, and reads the marts back from the bucket. The lake on the bucket
holds the same tables as a run on the local filesystem over the same landing zone.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

pytest.importorskip("obstore")
pytest.importorskip("boto3")
pytest.importorskip("moto.server")

BUCKET = "meterlake-test"
START, END = "2026-01-01", "2026-01-02"
#: every stage that writes the lake (the gate and publishing read it)
STAGES = ("ingest", "outages", "validate", "loss", "anomalies", "billing", "receivables")
#: how long one run may take on a busy machine before the test gives up
RUN_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def s3(s3_server: dict[str, str], s3_client: Any) -> dict[str, str]:
    """The module's bucket on the session's S3 server, and the variables that reach it."""
    s3_client.create_bucket(Bucket=BUCKET)
    return s3_server


def _upload(client: Any, landing: Path, prefix: str) -> None:
    """Deliver the landing files to the bucket in their delivery order (the object's time is its delivery)."""
    files = sorted((p for p in landing.rglob("*") if p.is_file() and "_truth" not in p.parts), key=os.path.getmtime)
    for path in files:
        client.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(landing).as_posix()}")


def _run(env: dict[str, str], cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("METERLAKE_", "AWS_"))}
    full |= env | {"METERLAKE_PII_KEY": "test-key", "METERLAKE_PROGRESS": "false", "METERLAKE_CACHE_DIR": str(cache)}
    cmd = [sys.executable, "-m", "meterlake", "run", "--start", START, "--end", END, *args]
    for s in STAGES:
        cmd += ["--stage", s]
    return subprocess.run(cmd, env=full, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)


def _scan(pattern: str) -> pl.DataFrame:
    return pl.scan_parquet(pattern, hive_partitioning=True).collect()


@pytest.mark.slow
def test_a_sharded_run_on_a_bucket_gives_the_marts_of_a_local_run(
    s3: dict[str, str], s3_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meterlake.generate import generate

    generated = tmp_path / "generated"
    generate(generated, meters=60, days=2, start=dt.date(2026, 1, 1), seed=5, orgs=2)
    _upload(s3_client, generated, "prov/landing")
    cache = tmp_path / "cache"
    t0 = time.monotonic()
    res = _run(s3, cache, "--landing", f"s3://{BUCKET}/prov/landing", "--lake", f"s3://{BUCKET}/prov/lake", "--sharded")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert time.monotonic() - t0 < RUN_TIMEOUT_S

    # the reference: the same landing zone as the bucket delivers it (the object times are the
    # delivery times), run on the local filesystem
    landing = tmp_path / "landing"
    shutil.copytree(cache / BUCKET / "prov" / "landing", landing)  # copytree keeps the times
    local = tmp_path / "local"
    res = _run(s3, tmp_path / "unused", "--landing", str(landing), "--lake", str(local), "--sharded")
    assert res.returncode == 0, res.stderr[-3000:]

    # read the marts straight from the bucket, as an analyst would
    for key, value in s3.items():
        monkeypatch.setenv(key, value)
    lake_url = f"s3://{BUCKET}/prov/lake"
    listed = {o["Key"] for o in s3_client.list_objects_v2(Bucket=BUCKET, Prefix="prov/lake/")["Contents"]}
    assert not any("/locks/" in k or "/.staging/" in k for k in listed), "locks released, no staging files"
    compared = 0
    for layer in ("clean", "marts"):
        tables = sorted({p.parent.parent.name for p in local.glob(f"org_id=*/{layer}/*/*=*/*.parquet")})
        for table in tables:
            if table == "quarantine":
                continue
            here = _scan(f"{local}/org_id=*/{layer}/{table}/**/*.parquet")
            there = _scan(f"{lake_url}/org_id=*/{layer}/{table}/**/*.parquet")
            assert_frame_equal(here.sort(pl.all()), there.select(here.columns).sort(pl.all()))
            compared += 1
    assert compared > 20
    assert {"org_id=ORG01", "org_id=ORG02"} <= {k.split("/")[2] for k in listed}

    # a second run finds nothing new and rewrites the same tables
    res = _run(s3, cache, "--landing", f"s3://{BUCKET}/prov/landing", "--lake", lake_url)
    assert res.returncode == 0, res.stderr[-3000:]
    meter_daily = _scan(f"{lake_url}/org_id=*/marts/meter_daily/**/*.parquet")
    assert meter_daily.height == _scan(f"{local}/org_id=*/marts/meter_daily/**/*.parquet").height


def test_two_writers_of_one_lake_on_a_bucket_cannot_both_hold_it(
    s3: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key, value in s3.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("METERLAKE_CACHE_DIR", str(tmp_path))
    from meterlake.objectstore import LockBusy, Prefix

    lake = Prefix(f"s3://{BUCKET}/locks/lake")
    with lake.lock("org_id=ORG01/_meta/locks/lake.lock", "first"):
        with (
            pytest.raises(LockBusy, match=r"is locked by pid \d+ on .*, run first, since "),
            lake.lock("org_id=ORG01/_meta/locks/lake.lock", "second"),
        ):
            pass
        # another unit's lock is another object: free
        with lake.lock("org_id=ORG02/_meta/locks/lake.lock", "second"):
            pass
    # released: the next writer takes it
    with lake.lock("org_id=ORG01/_meta/locks/lake.lock", "third"):
        pass


def test_a_partition_object_is_replaced_whole(
    s3: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Push uploads what changed and deletes what the run removed; the rest is left alone."""
    for key, value in s3.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("METERLAKE_CACHE_DIR", str(tmp_path))
    from meterlake.objectstore import Prefix

    lake = Prefix(f"s3://{BUCKET}/push/lake")
    (lake.local / "marts" / "t" / "date=2026-01-01").mkdir(parents=True)
    pl.DataFrame({"x": [1]}).write_parquet(lake.local / "marts" / "t" / "date=2026-01-01" / "part-0.parquet")
    (lake.local / "_meta").mkdir()
    (lake.local / "_meta" / "ingest_plan.parquet").write_bytes(b"plan")
    assert lake.push() == {"uploaded": 2, "deleted": 0}
    assert lake.push() == {"uploaded": 0, "deleted": 0}
    pl.DataFrame({"x": [2, 3]}).write_parquet(lake.local / "marts" / "t" / "date=2026-01-01" / "part-0.parquet")
    (lake.local / "_meta" / "ingest_plan.parquet").unlink()
    assert lake.push() == {"uploaded": 1, "deleted": 1}
    assert _scan(f"s3://{BUCKET}/push/lake/marts/t/**/*.parquet")["x"].to_list() == [2, 3]
    # a fresh worker's cache pulls exactly what the bucket holds
    monkeypatch.setenv("METERLAKE_CACHE_DIR", str(tmp_path / "other"))
    fresh = Prefix(f"s3://{BUCKET}/push/lake")
    assert fresh.pull() == 1
    assert sorted(p.relative_to(fresh.local).as_posix() for p in fresh.local.rglob("*.parquet")) == [
        "marts/t/date=2026-01-01/part-0.parquet"
    ]
    assert fresh.pull() == 0
