"""Regression tests for the ways an operator's bad day broke ingest: each defect once, as a test.

Every case here crashed, hung, stuck or leaked before: other file names in a dataset
folder, links out of the landing root, FIFOs, far-off dates, undecodable purchases files,
a parser failure, a run killed between staging and committing, and failed runs' records.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import polars as pl
import pytest

from meterlake import audit, pipeline
from meterlake.lake import Lake
from meterlake.manifest import read_manifest
from meterlake.schemas import LANDINGS
from meterlake.settings import Settings
from meterlake.stages import StageError
from meterlake.stages import ingest as ingest_stage

D1 = dt.date(2026, 1, 1)
ARCHIVE = (
    "snapshot_date,meter_id,customer_id,area_id,feeder_id,role,customer_class,tariff_id,multiplier,register_max,prepay\n"
    "2026-01-01,0001,C1,A1,F1,customer,resident,RES_TIER,1,100000,0\n"
    "2026-01-01,0002,C2,A1,F1,customer,resident,RES_TIER,1,100000,1\n"
)
REGISTERS = "meter_id,freeze_date,total_kwh\n0001,2026-01-01,100\n0002,2026-01-01,200\n"
PURCHASES_HEADER = "txn_id,txn_type,customer_id,meter_id,card_no,purchase_time,amount_yuan,purchase_seq,channel\n"
CARD = "6222021234567890123"
#: a line of a file outside the landing root that must never reach the lake
SECRET = "root:x:0:0:meterlake-secret-marker:/root:/bin/bash"


def put(landing: Path, rel: str, data: str | bytes) -> Path:
    path = landing / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def ingest(landing: Path, lake: Path, run_id: str = "r1") -> pipeline.StageResult:
    return pipeline.run_stage(
        Settings(landing=landing, lake=lake, pii_key="k"), "ingest", [D1], run_id, progress=lambda _m: None
    )


def quarantine(lake: Path) -> pl.DataFrame:
    files = sorted((lake / "marts" / "quarantine").rglob("*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files]) if files else pl.DataFrame()


@pytest.fixture
def zone(tmp_path: Path) -> tuple[Path, Path]:
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    put(landing, "archive/archive_20260101.csv", ARCHIVE)
    put(landing, "registers/reg_20260101.csv", REGISTERS)
    return landing, lake


def test_a_file_of_another_name_is_listed_and_skipped_on_every_run(zone: tuple[Path, Path]) -> None:
    landing, lake = zone
    put(landing, "registers/readme.txt", "exported by the head-end\n")
    for run in ("r1", "r2"):
        res = ingest(landing, lake, run)
        assert res.details["files_not_read"] == [
            {
                "source_file": "registers/readme.txt",
                "status": "skipped",
                "reason": "not a landing file: expected a name ending in .csv or .csv.gz",
            }
        ]
    assert Lake(lake).partitions(LANDINGS["registers"].clean) == ["2026-01-01"]


def test_a_link_out_of_the_landing_root_is_refused_and_nothing_of_it_is_read(
    zone: tuple[Path, Path], tmp_path: Path
) -> None:
    landing, lake = zone
    outside = tmp_path / "etc" / "passwd"
    outside.parent.mkdir()
    outside.write_text(SECRET + "\n")
    (landing / "events").mkdir()
    (landing / "events" / "events_20260101.csv").symlink_to(outside)
    (landing / "curves").mkdir()
    (landing / "curves" / "more").symlink_to(outside.parent, target_is_directory=True)
    res = ingest(landing, lake)
    refused = {r["source_file"]: r["reason"] for r in res.details["files_not_read"]}
    assert refused == {
        "curves/more": "a symbolic link: links are never followed",
        "events/events_20260101.csv": "a symbolic link: links are never followed",
    }
    assert audit.find_in_clear([lake], {"meterlake-secret-marker"}) == []


def test_a_fifo_is_refused_without_blocking(zone: tuple[Path, Path]) -> None:
    landing, lake = zone
    (landing / "events").mkdir()
    os.mkfifo(landing / "events" / "events_20260101.csv")
    res = ingest(landing, lake)  # reading a FIFO would block here forever
    assert res.details["files_not_read"] == [
        {
            "source_file": "events/events_20260101.csv",
            "status": "refused",
            "reason": "a FIFO: only regular files are read",
        }
    ]


def test_a_dataset_folder_linked_outside_the_root_is_not_walked(zone: tuple[Path, Path], tmp_path: Path) -> None:
    landing, lake = zone
    elsewhere = tmp_path / "elsewhere"
    put(elsewhere, "events_20260101.csv", "meter_id,event_time,event_code\n0001,2026-01-01 01:00:00,POWER_OFF\n")
    (landing / "events").symlink_to(elsewhere, target_is_directory=True)
    res = ingest(landing, lake)
    assert [r["status"] for r in res.details["files_not_read"]] == ["refused"]
    assert not (lake / "clean" / "events").exists()


@pytest.mark.parametrize(
    ("rel", "text", "column"),
    [
        pytest.param(
            "registers/r2.csv", "meter_id,freeze_date,total_kwh\n0001,9999-12-31,5\n", "freeze_date", id="9999"
        ),
        pytest.param(
            "events/e.csv",
            "meter_id,event_time,event_code\n0001,0001-01-01 00:00:00,POWER_OFF\n",
            "event_time",
            id="0001",
        ),
    ],
)
def test_dates_outside_the_window_are_out_of_range_and_open_no_partition(
    zone: tuple[Path, Path], rel: str, text: str, column: str
) -> None:
    landing, lake = zone
    put(landing, rel, text)
    res = pipeline.run(
        Settings(landing=landing, lake=lake, pii_key="k", progress=False), D1, D1, stages=["ingest", "validate"]
    )
    assert res["status"] == "ok"
    q = quarantine(lake).filter(pl.col("source_file") == rel)
    assert q["reason"].to_list() == ["out_of_range"]
    assert q["detail"][0].startswith(f"{column}: must lie in 2000-01-01..2099-12-31")
    partitions = [p.name for p in (lake / "clean").glob("*/*=*")]
    assert not [p for p in partitions if "9999" in p or "0001-01-01" in p]


def test_the_date_window_is_configuration(zone: tuple[Path, Path], tmp_path: Path) -> None:
    landing, lake = zone
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "ingest.toml").write_text("[dates]\nearliest = 2026-01-02\nlatest = 2026-12-31\n")
    pipeline.run_stage(
        Settings(landing=landing, lake=lake, pii_key="k", config_dir=cfg), "ingest", [D1], "r1", lambda _m: None
    )
    assert quarantine(lake)["reason"].to_list() == ["out_of_range"] * 4  # 2 archive rows, 2 registers


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(
            (PURCHASES_HEADER + f"T1,purchase,C2,0002,{CARD},2026-01-01 10:00:00,50,1,wechat\n").encode() + b"\x00",
            id="nul-byte",
        ),
        pytest.param(
            (
                PURCHASES_HEADER.replace("card_no", "card_number")
                + f"T1,purchase,C2,0002,{CARD},2026-01-01 10:00:00,-5,1,wechat\n"
            ).encode(),
            id="card-column-renamed",
        ),
        pytest.param(f"{CARD},{CARD}\n{CARD}\n".encode(), id="no-header"),
        pytest.param(("\ufeff" + PURCHASES_HEADER + f'T1,"purchase,C2,0002,{CARD},x\n').encode("utf-16"), id="utf-16"),
    ],
)
def test_no_card_number_reaches_the_lake_whatever_the_purchases_file(zone: tuple[Path, Path], data: bytes) -> None:
    landing, lake = zone
    put(landing, "purchases/p.csv", data)
    ingest(landing, lake)
    assert quarantine(lake).filter(pl.col("source_file") == "purchases/p.csv").height >= 1
    assert audit.find_in_clear([lake], {CARD}) == []


def test_a_parser_failure_quarantines_the_file_and_the_run_goes_on(
    zone: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    landing, lake = zone
    put(landing, "events/e.csv", "meter_id,event_time,event_code\n0001,2026-01-01 01:00:00,POWER_OFF\n")
    real = ingest_stage.parse_landing_file

    def panics(fh, spec, rel: str, window, **kw):
        if rel == "events/e.csv":
            raise pl.exceptions.PanicException("assertion failed: i < self.len()")
        return real(fh, spec, rel, window, **kw)

    monkeypatch.setattr(ingest_stage, "parse_landing_file", panics)
    res = ingest(landing, lake)
    q = quarantine(lake).filter(pl.col("source_file") == "events/e.csv")
    assert q["reason"].to_list() == ["unreadable"]
    assert "PanicException: assertion failed" in q["detail"][0]
    assert all(r["unaccounted"] == 0 for r in res.details["files"])


def test_files_staged_by_a_killed_run_are_replayed_not_forgotten(zone: tuple[Path, Path]) -> None:
    """The manifest is written last: a run that staged files but died leaves them in the plan."""
    landing, lake = zone
    settings = Settings(landing=landing, lake=lake, pii_key="k")
    ctx = pipeline.StageContext(settings=settings, run_id="killed")
    ctx.progress = lambda _m: None
    window = ingest_stage.IngestConfig.model_validate(
        {"dates": {"earliest": "2000-01-01", "latest": "2099-12-31"}}
    ).window
    plan, touched, _, _ = ingest_stage.stage_new_files(ctx, read_manifest(Lake(lake)), window)
    assert plan.height == 2 and touched["registers"] == {D1}
    assert not (lake / "_meta" / "manifest.parquet").exists()  # nothing counts as seen yet
    # ... the process dies here; the next run replays the plan instead of parsing again
    res = ingest(landing, lake, "next")
    assert "replaying 2 landing file(s) staged by a run that did not finish" in res.notes
    assert not (lake / "_meta" / "ingest_plan.parquet").exists()
    manifest = read_manifest(Lake(lake))
    assert manifest["run_id"].to_list() == ["next", "next"]
    assert Lake(lake).scan(LANDINGS["registers"].clean).collect().height == 2


def test_a_failed_run_is_recorded_failed_with_its_one_line_error(
    zone: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    landing, lake = zone

    def boom(ctx, dates):
        raise RuntimeError("first line of the failure\nsecond line with a 6222021234567890123")

    monkeypatch.setitem(pipeline.RUNNERS, "validate", boom)
    with pytest.raises(RuntimeError):
        pipeline.run(Settings(landing=landing, lake=lake, pii_key="k", progress=False), D1, D1, run_id="bad")
    record = json.loads((lake / "_meta" / "runs" / "bad.json").read_text())
    assert record["status"] == "failed"
    assert record["error"] == "RuntimeError: first line of the failure"
    log = (lake / "_meta" / "logs" / "bad.log").read_text()
    assert "Traceback" in log and "second line" in log and CARD not in log


def test_the_cli_prints_one_line_and_no_traceback_on_an_unexpected_error(
    zone: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from meterlake.cli import app

    landing, lake = zone

    def boom(ctx, dates):
        raise pl.exceptions.PanicException("assertion failed: i < self.len()")

    monkeypatch.setitem(pipeline.RUNNERS, "loss", boom)
    args = ["run", "--landing", str(landing), "--lake", str(lake), "--start", "2026-01-01", "--end", "2026-01-01"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr
    assert lines[0].startswith("meterlake: PanicException: assertion failed: i < self.len() (traceback in ")
    record = json.loads(next((lake / "_meta" / "runs").glob("*.json")).read_text())
    assert record["status"] == "failed"


def test_leftover_staging_files_are_cleaned_by_the_next_writer(zone: tuple[Path, Path]) -> None:
    landing, lake = zone
    staging = lake / ".staging"
    staging.mkdir(parents=True)
    (staging / "0123abcd.tmp").write_bytes(b"half a parquet file")
    ingest(landing, lake)
    assert list(staging.iterdir()) == []


def test_a_second_writer_fails_with_one_line_naming_the_holder(zone: tuple[Path, Path]) -> None:
    import subprocess
    import sys
    import time

    landing, lake = zone
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from meterlake.lock import lake_lock\n"
            f"with lake_lock({str(lake)!r}, 'holder-run'):\n    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with pytest.raises(StageError) as err:
            pipeline.run_stage(
                Settings(landing=landing, lake=lake, lock_wait_s=0.5), "ingest", [D1], "second", lambda _m: None
            )
        assert time.monotonic() - t0 >= 0.5
        message = str(err.value)
        assert "\n" not in message
        assert f"is locked by pid {holder.pid} on " in message and "run holder-run, since 20" in message
    finally:
        holder.kill()
        holder.communicate()
    # a killed holder leaves no stale lock
    ingest(landing, lake, "third")
