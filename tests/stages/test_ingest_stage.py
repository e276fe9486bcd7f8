"""The ingest stage on hand-made landing zones: late, resent and overlapping files,
accounting, idempotence and atomic partition writes."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from landing_kit import ingest, put, quarantine, registers, tree_digest
from polars.testing import assert_frame_equal

from meterlake import pipeline
from meterlake.lake import Lake
from meterlake.schemas import LANDINGS
from meterlake.settings import Settings

D1 = dt.date(2026, 1, 1)
ARCHIVE = (
    "snapshot_date,meter_id,customer_id,area_id,feeder_id,role,customer_class,tariff_id,multiplier,register_max,prepay\n"
    "2026-01-01,0001,C1,A1,F1,customer,resident,RES_TIER,1,100000,0\n"
    "2026-01-01,0002,C2,A1,F1,customer,resident,RES_TIER,1,100000,1\n"
    "2026-01-01,0003,,A1,F1,area_master,,,80,1000000,0\n"
)


@pytest.fixture
def zone(tmp_path: Path) -> tuple[Path, Path]:
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    put(landing, "archive/archive_20260101.csv", ARCHIVE, "2026-01-01T00:00:00")
    put(
        landing,
        "registers/reg_20260101.csv",
        "meter_id,freeze_date,total_kwh\n0001,2026-01-01,10\n0002,2026-01-01,20\n0003,2026-01-01,5\n",
        "2026-01-01T01:00:00",
    )
    return landing, lake


def test_clean_rows_and_accounting_close(zone) -> None:
    landing, lake = zone
    res = ingest(landing, lake, "r1")
    assert registers(lake)["meter_id"].to_list() == ["0001", "0002", "0003"]
    acc = {r["dataset"]: r for r in res.details["accounting"]}
    assert acc["registers"] == {
        "dataset": "registers",
        "read": 3,
        "clean": 3,
        "quarantined": 0,
        "duplicate": 0,
        "unaccounted": 0,
    }


def test_rerun_gives_byte_identical_outputs(zone) -> None:
    landing, lake = zone
    ingest(landing, lake, "r1")
    before = tree_digest(lake)
    res = ingest(landing, lake, "r2")
    assert res.details["files_new"] == 0
    assert tree_digest(lake) == before


def test_resent_file_counts_duplicates_and_changes_nothing(zone) -> None:
    landing, lake = zone
    ingest(landing, lake, "r1")
    before = tree_digest(lake)
    shutil.copy(landing / "registers/reg_20260101.csv", landing / "registers/reg_20260101_resend.csv")
    res = ingest(landing, lake, "r2")
    assert tree_digest(lake) == before
    (row,) = res.details["files"]
    assert row["status"] == "duplicate_file" and row["duplicate"] == 3 and row["unaccounted"] == 0


def test_late_file_with_disagreeing_row_wins_and_earlier_is_quarantined(zone) -> None:
    landing, lake = zone
    ingest(landing, lake, "r1", dates=[D1])
    # two days later, a correction for meter 0002 and a repeat of 0001, plus a new day
    put(
        landing,
        "registers/reg_late.csv",
        "meter_id,freeze_date,total_kwh\n0001,2026-01-01,10\n0002,2026-01-01,21\n0001,2026-01-02,11\n",
        "2026-01-03T09:00:00",
    )
    res = ingest(landing, lake, "r2", dates=[dt.date(2026, 1, 3)])
    reg = registers(lake)
    assert dict(zip(reg["meter_id"], reg["total_kwh"], strict=True)) == {"0001": 10.0, "0002": 21.0, "0003": 5.0}
    assert reg.filter(pl.col("meter_id") == "0001")["source_file"].to_list() == ["registers/reg_late.csv"]
    q = quarantine(lake)
    assert q.select("source_file", "line", "reason").rows() == [("registers/reg_20260101.csv", 3, "superseded")]
    # late days are rebuilt downstream; 01-02 waits for the reading of 01-03
    assert D1 in res.dates and dt.date(2026, 1, 2) not in res.dates
    acc = pipeline._jsonable(res.details["files"])
    assert acc == [
        {
            "dataset": "registers",
            "source_file": "registers/reg_late.csv",
            "status": "ingested",
            "read": 3,
            "clean": 3,
            "quarantined": 0,
            "duplicate": 0,
            "unaccounted": 0,
        }
    ]


def test_unknown_meter_then_archive_arrives(tmp_path: Path) -> None:
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    put(landing, "registers/r.csv", "meter_id,freeze_date,total_kwh\n0001,2026-01-01,10\n", "2026-01-01T01:00:00")
    ingest(landing, lake, "r1")
    assert registers(lake).height == 0
    assert quarantine(lake)["reason"].to_list() == ["unknown_meter"]
    put(landing, "archive/a.csv", ARCHIVE, "2026-01-01T02:00:00")
    ingest(landing, lake, "r2", dates=[])
    assert registers(lake)["meter_id"].to_list() == ["0001"]
    assert quarantine(lake).height == 0


def test_meter_leaving_service_is_unknown_after_its_last_snapshot(zone) -> None:
    landing, lake = zone
    put(
        landing,
        "archive/archive_20260102.csv",
        ARCHIVE.replace("2026-01-01", "2026-01-02").replace(
            "2026-01-02,0002,C2,A1,F1,customer,resident,RES_TIER,1,100000,1\n", ""
        ),
        "2026-01-02T00:00:00",
    )
    put(
        landing,
        "registers/reg_20260102.csv",
        "meter_id,freeze_date,total_kwh\n0001,2026-01-02,11\n0002,2026-01-02,21\n",
        "2026-01-02T01:00:00",
    )
    ingest(landing, lake, "r1", dates=[D1, dt.date(2026, 1, 2)])
    assert registers(lake, dt.date(2026, 1, 2))["meter_id"].to_list() == ["0001"]
    assert registers(lake, D1)["meter_id"].to_list() == ["0001", "0002", "0003"]


def test_card_numbers_never_reach_the_lake_in_clear(tmp_path: Path) -> None:
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    put(landing, "archive/a.csv", ARCHIVE, "2026-01-01T00:00:00")
    card = "6222021234567890123"
    put(
        landing,
        "purchases/p.csv",
        "txn_id,txn_type,customer_id,meter_id,card_no,purchase_time,amount_yuan,purchase_seq,channel\n"
        f"T1,purchase,C2,0002,{card},2026-01-01 10:00:00,100,1,wechat\n"
        f"T2,purchase,C2,0002,{card},2026-01-01 11:00:00,-5,2,wechat\n",
        "2026-01-01T12:00:00",
    )
    ingest(landing, lake, "r1")
    pur = Lake(lake).scan(LANDINGS["purchases"].clean, [D1]).collect()
    assert pur["card_last4"].to_list() == ["0123"]
    assert pur["card_token"][0] is not None and card not in pur["card_token"][0]
    for path in lake.rglob("*.parquet"):
        frame = pl.read_parquet(path)
        text = frame.select(pl.col(pl.String)).write_csv() if frame.select(pl.col(pl.String)).width else ""
        assert card[-8:] not in text, path


def test_killed_write_leaves_previous_partition_whole(zone, monkeypatch) -> None:
    landing, lake = zone
    ingest(landing, lake, "r1")
    before = registers(lake)
    put(landing, "registers/reg_fix.csv", "meter_id,freeze_date,total_kwh\n0001,2026-01-01,99\n", "2026-01-02T00:00:00")

    real = pl.DataFrame.write_parquet

    def dies_midway(self, file, *args, **kwargs):
        if self.height and "total_kwh" in self.columns:
            Path(file).write_bytes(b"PAR1 half a file")
            raise KeyboardInterrupt("killed")
        return real(self, file, *args, **kwargs)

    monkeypatch.setattr(pl.DataFrame, "write_parquet", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        ingest(landing, lake, "r2")
    monkeypatch.undo()
    assert_frame_equal(registers(lake), before)
    assert not list((lake / ".staging").glob("*"))  # no half file left behind either
    ingest(landing, lake, "r3")
    assert registers(lake).filter(pl.col("meter_id") == "0001")["total_kwh"].to_list() == [99.0]


rows_strategy = st.lists(
    st.tuples(st.sampled_from(["0001", "0002", "0003"]), st.integers(1, 3), st.integers(0, 50)),
    min_size=1,
    max_size=12,
)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(rows_strategy, min_size=1, max_size=3))
def test_ingesting_files_twice_equals_once(tmp_path_factory, files) -> None:
    base = tmp_path_factory.mktemp("prop")
    landing = base / "landing"
    put(landing, "archive/a.csv", ARCHIVE, "2026-01-01T00:00:00")
    for i, rows in enumerate(files):
        body = "".join(f"{m},2026-01-0{d},{v}\n" for m, d, v in rows)
        put(landing, f"registers/f{i}.csv", "meter_id,freeze_date,total_kwh\n" + body, f"2026-01-0{i + 1}T05:00:00")
    days = [dt.date(2026, 1, d) for d in (1, 2, 3)]
    ingest(landing, base / "once", "r1", days)
    once = tree_digest(base / "once")
    # deliver every file again under a new name, later: nothing may change
    for i in range(len(files)):
        shutil.copy2(landing / f"registers/f{i}.csv", landing / f"registers/again_{i}.csv")
        later = (landing / f"registers/f{i}.csv").stat().st_mtime + 86400 * 5
        os.utime(landing / f"registers/again_{i}.csv", (later, later))
    res = ingest(landing, base / "once", "r2", days)
    assert tree_digest(base / "once") == once
    assert all(f["unaccounted"] == 0 for f in res.details["files"])
    # and one run over everything holds the same rows (lineage may name either copy)
    ingest(landing, base / "all_at_once", "r3", days)
    for day in days:
        assert_frame_equal(
            registers(base / "all_at_once", day).drop("source_file", "delivered_at"),
            registers(base / "once", day).drop("source_file", "delivered_at"),
        )


def test_register_days_passed_downstream_are_only_computable_ones(tmp_path: Path) -> None:
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    put(landing, "archive/a.csv", ARCHIVE, "2026-01-01T00:00:00")
    body = "".join(f"0001,2026-01-0{d},{10 + d}\n" for d in (1, 2, 3))
    put(landing, "registers/r.csv", "meter_id,freeze_date,total_kwh\n" + body, "2026-01-04T01:00:00")
    res = ingest(landing, lake, "r1", dates=[])
    # readings of 01-01..01-03: days 01-01 and 01-02 are computable; 12-31 has no opening
    # reading and 01-03 waits for the reading of 01-04
    assert res.dates == [dt.date(2026, 1, 1), dt.date(2026, 1, 2)]


def test_days_after_the_run_are_left_to_the_runs_that_cover_them(tmp_path: Path) -> None:
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    put(landing, "archive/a.csv", ARCHIVE, "2026-01-01T00:00:00")
    body = "".join(f"0001,2026-01-0{d},{10 + d}\n" for d in (1, 2, 3, 4, 5))
    put(landing, "registers/r.csv", "meter_id,freeze_date,total_kwh\n" + body, "2026-01-05T01:00:00")
    res = ingest(landing, lake, "r1", dates=[D1])
    # 01-02..01-04 are computable but after the run's last date: the daily stages build them
    # when a run covers them, not now (early data must not make them build days without readings)
    assert res.dates == []
    # the clean partitions of those days are written all the same
    assert registers(lake, dt.date(2026, 1, 4))["total_kwh"].to_list() == [14.0]


def test_a_single_stage_run_can_write_its_own_record(zone) -> None:
    landing, lake = zone
    pipeline.run_stage(
        Settings(landing=landing, lake=lake),
        "ingest",
        [D1],
        "manual__2026-01-02T06:00:00+08:00",
        progress=lambda _m: None,
        record=True,
    )
    import json

    (path,) = (lake / "_meta" / "runs").glob("*/ingest.json")
    rec = json.loads(path.read_text())
    assert path.parent.name == "manual__2026-01-02T06_00_00_08_00"
    assert {r["dataset"]: r["read"] for r in rec["details"]["accounting"]} == {"archive": 3, "registers": 3}


def test_a_file_redelivered_under_its_own_name_still_closes_the_accounting(zone) -> None:
    landing, lake = zone
    ingest(landing, lake, "r1")
    before = tree_digest(lake)
    path = landing / "registers/reg_20260101.csv"
    os.utime(path, (path.stat().st_mtime + 60, path.stat().st_mtime + 60))  # delivered again, same bytes
    res = ingest(landing, lake, "r2")
    assert tree_digest(lake) == before
    (row,) = res.details["files"]
    assert (row["read"], row["clean"], row["duplicate"], row["unaccounted"]) == (6, 3, 3, 0)
    # then rewritten in place with a correction: the new value wins, the old one is quarantined
    put(
        landing,
        "registers/reg_20260101.csv",
        "meter_id,freeze_date,total_kwh\n0001,2026-01-01,10\n0002,2026-01-01,22\n0003,2026-01-01,5\n",
        "2026-01-02T00:00:00",
    )
    res = ingest(landing, lake, "r3")
    assert registers(lake).filter(pl.col("meter_id") == "0002")["total_kwh"].to_list() == [22.0]
    (row,) = res.details["files"]
    assert row["unaccounted"] == 0 and row["read"] == 9 and row["clean"] == 3
