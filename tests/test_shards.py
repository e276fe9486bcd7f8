"""Shards: the org unit is the unit of work; units never write each other's files.

The split hands each unit its rows of every landing file (a file holding several units
is split by unit); each unit's sub-lake has its own manifest, ledgers and lock, so two
processes writing two units both land whole, and two writers of one unit cannot both
commit. The marts of a sharded lake are those of one unsharded run over the same zone.
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

from meterlake import audit, lock, pipeline, shards
from meterlake.settings import Settings

DAY = dt.date(2026, 1, 1)
ARCHIVE = (
    "snapshot_date,meter_id,customer_id,area_id,feeder_id,role,customer_class,tariff_id,multiplier,"
    "register_max,prepay,org_id\n"
    "2026-01-01,M1,C1,AR1,F1,customer,resident,RES_TIER,1,100000,0,A\n"
    "2026-01-01,M2,C2,AR2,F2,customer,resident,RES_TIER,1,100000,0,B\n"
    "2026-01-01,M3,C3,AR3,F3,customer,resident,RES_TIER,1,100000,0,\n"
)
SLOTS = ",".join(["0.1"] * 96)
CURVES = (
    "meter_id,data_date," + ",".join(f"p{i}" for i in range(1, 97)) + "\n"
    f"M1,2026-01-01,{SLOTS}\n"
    f"M2,2026-01-01,{SLOTS}\n"
    f"M9,2026-01-01,{SLOTS}\n"  # no archive names M9
    "M1,2026-01-01,0.1,0.2\n"  # wrong field count: does not parse
)


def _settings(landing: Path, lake: Path) -> Settings:
    return Settings(landing=landing, lake=lake, pii_key="test-key", progress=False)


@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, Path]:
    landing = tmp_path / "landing"
    for rel, text in (("archive/archive_20260101.csv", ARCHIVE), ("curves/curves_20260101.csv", CURVES)):
        (landing / rel).parent.mkdir(parents=True, exist_ok=True)
        (landing / rel).write_text(text, encoding="utf-8")
    return landing, tmp_path / "lake"


def _inbox(lake: Path, org: str, dataset: str) -> dict[str, object]:
    rows = pl.concat(pl.read_parquet(p) for p in (shards.shard_root(lake, org) / "_meta" / "inbox").glob("*.parquet"))
    (entry,) = rows.filter(pl.col("dataset") == dataset).to_dicts()
    return entry


def test_split_hands_each_unit_its_rows(small: tuple[Path, Path]) -> None:
    landing, lake = small
    pipeline.split(_settings(landing, lake), "r1")
    # A and B from the archive's org_id; M3's empty org_id is the default unit
    assert shards.shards(lake) == ["A", "B", "default"]

    def staged(org: str, dataset: str) -> list[str]:
        (path,) = (shards.shard_root(lake, org) / "_meta" / "staged" / dataset).glob("*.parquet")
        return sorted(pl.read_parquet(path)["meter_id"])

    assert (
        staged("A", "archive") == ["M1"] and staged("B", "archive") == ["M2"] and staged("default", "archive") == ["M3"]
    )
    # the curves file holds A and B (one row each: A wins the tie by name and is the file's main
    # unit): A also gets the unknown meter's row and the line that does not parse
    assert staged("A", "curves") == ["M1", "M9"]
    assert staged("B", "curves") == ["M2"]
    a, b = _inbox(lake, "A", "curves"), _inbox(lake, "B", "curves")
    assert (a["rows_read"], a["rows_staged"], a["rows_quarantined"]) == (3, 2, 1)
    assert (b["rows_read"], b["rows_staged"], b["rows_quarantined"]) == (1, 1, 0)
    assert not (shards.shard_root(lake, "default") / "_meta" / "staged" / "curves").exists()
    # nothing is split twice
    again = pipeline.split(_settings(landing, lake), "r2")
    assert again.details["files_new"] == 0


def test_a_unit_ingests_from_its_inbox(small: tuple[Path, Path]) -> None:
    landing, lake = small
    settings = _settings(landing, lake)
    pipeline.split(settings, "r1")
    record = pipeline.run_shard(settings, "A", DAY, DAY, stages=["ingest"], run_id="r1")
    sub = shards.shard_root(lake, "A")
    clean = pl.read_parquet(sub / "clean" / "curves" / "data_date=2026-01-01" / "part-0.parquet")
    assert clean["meter_id"].to_list() == ["M1"]
    files = {f["source_file"]: f for f in record["stages"]["ingest"]["details"]["files"]}
    curves = files["curves/curves_20260101.csv"]
    # A's 3 lines: M1 clean; M9 (unknown meter) and the bad line quarantined
    assert (curves["read"], curves["clean"], curves["quarantined"], curves["duplicate"]) == (3, 1, 2, 0)
    assert not list((sub / "_meta" / "inbox").glob("*.parquet")), "committed entries leave the inbox"
    # B has not run: its entries wait in its inbox
    assert len(list((shards.shard_root(lake, "B") / "_meta" / "inbox").glob("*.parquet"))) == 2


def test_a_resent_file_counts_as_duplicates_in_each_unit(small: tuple[Path, Path]) -> None:
    landing, lake = small
    settings = _settings(landing, lake)
    pipeline.split(settings, "r1")
    (landing / "curves" / "curves_20260101_again.csv").write_text(CURVES, encoding="utf-8")
    pipeline.split(settings, "r2")
    resent = [_inbox_entry(lake, org, "curves/curves_20260101_again.csv") for org in ("A", "B")]
    assert [(e["status"], e["rows_read"]) for e in resent] == [("duplicate_file", 3), ("duplicate_file", 1)]


def _inbox_entry(lake: Path, org: str, source_file: str) -> dict[str, object]:
    rows = pl.concat(pl.read_parquet(p) for p in (shards.shard_root(lake, org) / "_meta" / "inbox").glob("*.parquet"))
    (entry,) = rows.filter(pl.col("source_file") == source_file).to_dicts()
    return entry


def test_org_ids_that_cannot_name_a_folder_are_refused() -> None:
    with pytest.raises(ValueError, match="names the shard's folder"):
        shards.shard_root(Path("/x"), "../etc")


# --- two units, two processes ------------------------------------------------------------
START, END = "2026-01-01", "2026-01-02"
STAGES = ("ingest", "validate", "loss")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERLAKE_")}
    return env | {"METERLAKE_PII_KEY": "test-key", "METERLAKE_PROGRESS": "false"}


def _run(landing: Path, lake: Path, *more: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "meterlake", "run", "--landing", str(landing), "--lake", str(lake)]
    cmd += ["--start", START, "--end", END, *more]
    for s in STAGES:
        cmd += ["--stage", s]
    return subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A two-unit landing zone and the lake one sequential sharded run makes of it."""
    from meterlake.generate import generate

    base = tmp_path_factory.mktemp("province")
    generate(base / "landing", meters=60, days=2, start=dt.date(2026, 1, 1), seed=3, orgs=2)
    proc = _run(base / "landing", base / "reference", "--sharded")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return base / "landing", base / "reference"


def _unit_state(lake: Path, org: str) -> tuple[dict[str, str], list[dict[str, object]]]:
    sub = shards.shard_root(lake, org)
    return audit.fingerprint(sub), audit.accounting_rows(sub)


def test_two_units_written_by_two_processes_both_land_whole(province: tuple[Path, Path], tmp_path: Path) -> None:
    landing, reference = province
    lake = tmp_path / "lake"
    # both split (one at a time: the second waits on the split lock, then finds nothing new)
    procs = [_run(landing, lake, "--orgs", org, "--wait", "300") for org in ("ORG01", "ORG02")]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
        assert "Traceback" not in err
    for org in ("ORG01", "ORG02"):
        files, acc = _unit_state(lake, org)
        ref_files, ref_acc = _unit_state(reference, org)
        differ = sorted(f for f in files.keys() | ref_files.keys() if files.get(f) != ref_files.get(f))
        assert not differ, f"{org}: {len(differ)} file(s) differ from a sequential run's: {differ[:8]}"
        assert files, f"{org}: nothing written"
        assert acc == ref_acc and all(r["unaccounted"] == 0 for r in acc)
    # each unit has a manifest of its own, holding only its files' parts
    for org in ("ORG01", "ORG02"):
        manifest = pl.read_parquet(shards.shard_root(lake, org) / "_meta" / "manifest.parquet")
        assert manifest.height and manifest["source_file"].str.contains(f"/{org}/").all()


def test_two_writers_of_one_unit_cannot_both_commit(province: tuple[Path, Path], tmp_path: Path) -> None:
    landing, reference = province
    lake = tmp_path / "lake"
    # another writer holds unit ORG01 (its lock lives in the unit's sub-lake)
    with lock.lake_lock(shards.shard_root(lake, "ORG01"), "other-writer"):
        proc = _run(landing, lake, "--sharded")
        _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1
    last = err.strip().splitlines()[-1]
    assert last == "meterlake: 1 of 2 unit shard(s) did not complete: ORG01", err[-2000:]
    (record_path,) = (lake / "_meta" / "runs").glob("*.json")
    record = json.loads(record_path.read_text())
    assert record["status"] == "incomplete" and record["missing"] == ["ORG01"]
    assert "is locked by" in record["units"]["ORG01"]["error"] and "other-writer" in record["units"]["ORG01"]["error"]
    # the other unit was not held up: it completed, whole
    assert record["units"]["ORG02"]["status"] == "ok"
    assert _unit_state(lake, "ORG02") == _unit_state(reference, "ORG02")
    assert not (shards.shard_root(lake, "ORG01") / "clean").exists(), "the blocked writer wrote nothing"
    # once the holder is gone, the next run completes the missing unit
    proc = _run(landing, lake)  # a sharded lake runs sharded without --sharded
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    assert _unit_state(lake, "ORG01") == _unit_state(reference, "ORG01")


def test_generator_orgs_writes_one_grid_per_unit(tmp_path: Path) -> None:
    from meterlake.generate import generate

    out = tmp_path / "landing"
    summary = generate(out, meters=40, days=1, start=DAY, seed=9, orgs=2)
    assert summary.meters == 80
    assert all(f.split("/")[1] in ("ORG01", "ORG02") for f in summary.files)
    ids: dict[str, list[set[str]]] = {}
    for org in ("ORG01", "ORG02"):
        (path,) = (out / "archive" / org).glob("archive_*")
        raw = path.read_bytes()
        text = raw.decode("gbk") if not raw.startswith(b"\xef\xbb\xbf") else raw.decode("utf-8-sig")
        archive = pl.read_csv(text.encode(), infer_schema=False)
        archive = archive.rename({c: c for c in archive.columns})
        org_col = "org_id" if "org_id" in archive.columns else "供电单位编码"
        assert set(archive[org_col]) == {org}
        for col, zh in (("meter_id", "电能表资产编号"), ("customer_id", "用户编号"), ("feeder_id", "线路编号")):
            name = col if col in archive.columns else zh
            ids.setdefault(col, []).append(set(archive[name].drop_nulls()))
    for col, (one, two) in ids.items():
        assert one and two and not one & two, f"units share {col} values"
    # the truth names each unit's files where they are
    files = pl.read_csv(out / "_truth" / "ORG02" / "files.csv", infer_schema=False)
    assert files["file"].str.contains("/ORG02/").all()
    assert all((out / f).exists() for f in files["file"].unique())


#: stages that write marts (the gate and the reporting database add nothing to compare)
DATA_STAGES = ("ingest", "outages", "validate", "loss", "anomalies", "billing", "receivables")
#: columns ranked within the lake: a unit's shard ranks within the unit
RANKED = {"anomalies": ["rank"], "loss_worklist_monthly": ["rank"]}


@pytest.mark.slow
def test_a_sharded_lake_holds_the_marts_of_one_unsharded_run(province: tuple[Path, Path], tmp_path: Path) -> None:
    landing, _ = province
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    settings = Settings(landing=landing, lake=whole, pii_key="test-key", progress=False)
    first, last = dt.date.fromisoformat(START), dt.date.fromisoformat(END)
    assert pipeline.run(settings, first, last, stages=DATA_STAGES)["status"] == "ok"
    settings = Settings(landing=landing, lake=sharded, pii_key="test-key", progress=False)
    assert pipeline.run_sharded(settings, first, last, stages=DATA_STAGES)["status"] == "ok"
    compared = 0
    for layer in ("clean", "marts"):
        for table in sorted(p.name for p in (whole / layer).iterdir()):
            if table == "quarantine":  # parse quarantine is keyed by file: compared through the accounting
                continue
            a = pl.scan_parquet(whole / layer / table / "**" / "*.parquet", hive_partitioning=True).collect()
            b = pl.scan_parquet(f"{sharded}/org_id=*/{layer}/{table}/**/*.parquet", hive_partitioning=True).collect()
            # every row of a sharded lake carries its unit
            assert b["org_id"].is_in(["ORG01", "ORG02"]).all(), table
            if "org_id" not in a.columns:
                b = b.drop("org_id")
            drop = RANKED.get(table, [])
            a, b = a.drop(drop), b.select(a.columns).drop(drop)
            # sums over a unit's rows add up in another order: equal to the last few bits
            assert_frame_equal(a.sort(pl.all()), b.sort(pl.all()), check_exact=False, rel_tol=1e-12, abs_tol=1e-9)
            compared += 1
    assert compared > 20
    # the row accounting of every landing file closes across its units
    acc = pl.concat(pl.DataFrame(audit.accounting_rows(shards.shard_root(sharded, o))) for o in ("ORG01", "ORG02"))
    by_file = (
        acc.group_by("source_file").agg(pl.col("read", "clean", "quarantined", "duplicate").sum()).sort("source_file")
    )
    whole_acc = pl.DataFrame(audit.accounting_rows(whole)).select(by_file.columns).sort("source_file")
    assert by_file.equals(whole_acc)
