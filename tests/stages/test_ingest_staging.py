"""How the ingest stage stages a new file of one day: kept in memory until its day's
rebuild, and, when it alone makes the partition, staged as a hard link to it."""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import os
from pathlib import Path

import polars as pl
import pytest
from landing_kit import ingest, put, quarantine, registers, tree_digest

from meterlake.lake import Lake
from meterlake.manifest import LEDGER_SCHEMA, read_manifest
from meterlake.schemas import LANDINGS
from meterlake.stages import ingest as ingest_stage

D1 = dt.date(2026, 1, 1)
ARCHIVE = (
    "snapshot_date,meter_id,customer_id,area_id,feeder_id,role,customer_class,tariff_id,multiplier,register_max,prepay\n"
    "2026-01-01,0001,C1,A1,F1,customer,resident,RES_TIER,1,100000,0\n"
    "2026-01-01,0002,C2,A1,F1,customer,resident,RES_TIER,1,100000,1\n"
)


SPEC = LANDINGS["registers"]
#: meter 0009 is in no archive: the partition leaves it out
REG = "meter_id,freeze_date,total_kwh\n0002,2026-01-01,20\n0009,2026-01-01,90\n0001,2026-01-01,10\n"


def staged_files(lake: Path) -> dict[str, str]:
    """file_id of each ingested registers file, by source file."""
    m = read_manifest(Lake(lake)).filter((pl.col("dataset") == "registers") & (pl.col("status") == "ingested"))
    return dict(zip(m["source_file"], m["file_id"], strict=True))


@pytest.fixture
def zone(tmp_path: Path) -> tuple[Path, Path]:
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    put(landing, "archive/archive_20260101.csv", ARCHIVE, "2026-01-01T00:00:00")
    put(landing, "registers/reg_20260101.csv", REG, "2026-01-01T01:00:00")
    return landing, lake


def test_a_file_alone_in_its_partition_is_staged_as_a_link_to_it(zone) -> None:
    landing, lake = zone
    ingest(landing, lake, "r1")
    fid = staged_files(lake)["registers/reg_20260101.csv"]
    assert fid == hashlib.sha256((landing / "registers/reg_20260101.csv").read_bytes()).hexdigest()
    lk = Lake(lake)
    staged = ingest_stage.staged_path(lk, "registers", fid)
    assert os.stat(staged).st_ino == os.stat(lk.partition_path(SPEC.clean, D1)).st_ino
    rest = pl.read_parquet(ingest_stage.rest_path(lk, "registers", fid))
    assert rest["meter_id"].to_list() == ["0009"] and rest["source_line"].to_list() == [3]
    # read back: every row of the file as staged, in key order, with its date
    rows = ingest_stage.read_staged(lk, SPEC, fid, D1).collect()
    assert rows["meter_id"].to_list() == ["0001", "0002", "0009"]
    assert rows["source_line"].to_list() == [4, 2, 3]
    assert rows["total_kwh"].to_list() == [10.0, 20.0, 90.0]
    assert rows["freeze_date"].to_list() == [D1] * 3
    assert rows.columns == ingest_stage.read_staged(lk, SPEC, fid, D1).collect_schema().names()
    assert quarantine(lake)["reason"].to_list() == ["unknown_meter"]


def staged_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """A filesystem without hard links: every staged copy is written whole."""

    def no_links(src, dst, *a, **k):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)


def test_without_hard_links_the_staged_copy_is_written_whole(zone, monkeypatch) -> None:
    landing, lake = zone
    staged_whole(monkeypatch)
    ingest(landing, lake, "r1")
    lk = Lake(lake)
    fid = staged_files(lake)["registers/reg_20260101.csv"]
    whole = pl.read_parquet(ingest_stage.staged_path(lk, "registers", fid))
    assert whole["meter_id"].to_list() == ["0001", "0002", "0009"] and "freeze_date" in whole.columns
    assert not ingest_stage.rest_path(lk, "registers", fid).exists()
    assert registers(lake)["meter_id"].to_list() == ["0001", "0002"]


def later_delivery(landing: Path) -> None:
    # a correction of 0002 and a repeat of 0001 for the linked day, and a new archive snapshot naming 0009
    put(
        landing,
        "registers/reg_late.csv",
        "meter_id,freeze_date,total_kwh\n0001,2026-01-01,10\n0002,2026-01-01,21\n",
        "2026-01-03T09:00:00",
    )


@pytest.mark.parametrize("links", [True, False])
def test_a_linked_day_rebuilt_later_gives_what_a_whole_copy_gives(zone, tmp_path, monkeypatch, links) -> None:
    landing, lake = zone
    other = tmp_path / "lake-whole"
    ingest(landing, lake, "r1")
    with monkeypatch.context() as m:
        staged_whole(m)
        ingest(landing, other, "r1")
    later_delivery(landing)
    if not links:
        staged_whole(monkeypatch)
    res = ingest(landing, lake, "r2")
    res_other = ingest(landing, other, "r2")
    assert tree_digest(lake) == tree_digest(other)
    assert res.details["files"] == res_other.details["files"]
    reg = registers(lake)
    assert dict(zip(reg["meter_id"], reg["total_kwh"], strict=True)) == {"0001": 10.0, "0002": 21.0}
    # the partition was replaced; the first file's staged rows are still the ones it delivered
    fid = staged_files(lake)["registers/reg_20260101.csv"]
    rows = ingest_stage.read_staged(Lake(lake), SPEC, fid, D1).collect()
    assert rows["total_kwh"].to_list() == [10.0, 20.0, 90.0]
    # and once the archive knows 0009, the day is rebuilt from the staged rows again
    with_0009 = ARCHIVE + "2026-01-01,0009,C9,A1,F1,customer,resident,RES_TIER,1,100000,0\n"
    put(landing, "archive/archive_20260102.csv", with_0009, "2026-01-01T05:00:00")
    ingest(landing, lake, "r3", dates=[])
    assert registers(lake)["meter_id"].to_list() == ["0001", "0002", "0009"]


def test_a_file_of_several_days_is_staged_at_once(tmp_path: Path) -> None:
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    put(landing, "archive/a.csv", ARCHIVE, "2026-01-01T00:00:00")
    put(
        landing,
        "registers/r.csv",
        "meter_id,freeze_date,total_kwh\n0001,2026-01-01,10\n0001,2026-01-02,11\n",
        "2026-01-02T01:00:00",
    )
    ingest(landing, lake, "r1", dates=[D1, D1 + dt.timedelta(days=1)])
    lk = Lake(lake)
    fid = staged_files(lake)["registers/r.csv"]
    whole = pl.read_parquet(ingest_stage.staged_path(lk, "registers", fid))
    assert whole["freeze_date"].to_list() == [D1, D1 + dt.timedelta(days=1)]
    assert not ingest_stage.rest_path(lk, "registers", fid).exists()


def test_a_file_of_a_new_size_is_hashed_as_it_is_parsed_one_of_a_known_size_first(zone, monkeypatch) -> None:
    """A file no ingested file matches in size cannot repeat one: it is read once, hashed on the
    way; a file of a size seen before is hashed first, and not parsed when its bytes were."""
    landing, lake = zone
    hashed_first: list[str] = []
    real = ingest_stage.file_digest

    def spy(fh):
        ino = os.fstat(fh.fileno()).st_ino  # the landing file is opened by descriptor: found by inode
        hashed_first.extend(p.name for p in (landing / "registers").iterdir() if p.stat().st_ino == ino)
        return real(fh)

    monkeypatch.setattr(ingest_stage, "file_digest", spy)
    ingest(landing, lake, "r1")
    assert hashed_first == []  # two files of new sizes: each read once
    ids = staged_files(lake)
    assert ids["registers/reg_20260101.csv"] == hashlib.sha256(REG.encode()).hexdigest()
    # the same bytes under another name, and a file of the same size with other bytes
    put(landing, "registers/reg_20260101_again.csv", REG, "2026-01-01T02:00:00")
    other = REG.replace("0002,2026-01-01,20", "0002,2026-01-01,21")
    put(landing, "registers/reg_20260101_fixed.csv", other, "2026-01-01T03:00:00")
    res = ingest(landing, lake, "r2")
    assert hashed_first == ["reg_20260101_again.csv", "reg_20260101_fixed.csv"]
    assert any("same content as registers/reg_20260101.csv" in n for n in res.notes)
    assert staged_files(lake)["registers/reg_20260101_fixed.csv"] == hashlib.sha256(other.encode()).hexdigest()
    assert registers(lake).filter(pl.col("meter_id") == "0002")["total_kwh"].to_list() == [21.0]


def test_the_ledger_counts_each_source_files_rows_by_outcome() -> None:
    clean = pl.DataFrame({"source_file": ["b.csv", "a.csv", "b.csv"]})
    dup = pl.DataFrame({"source_file": ["a.csv"]})
    none = pl.DataFrame({"source_file": []}, schema={"source_file": pl.String})
    ledger = ingest_stage.ledger_of({"clean": clean, "duplicate": dup, "superseded": none, "unknown_meter": none})
    assert ledger.schema == LEDGER_SCHEMA
    assert ledger.rows() == [("a.csv", 1, 1, 0, 0), ("b.csv", 2, 0, 0, 0)]
    empty = ingest_stage.ledger_of({"clean": none})
    assert empty.height == 0 and empty.schema == LEDGER_SCHEMA


def test_the_files_of_each_day_in_manifest_order() -> None:
    manifest = pl.DataFrame(
        {
            "file_id": ["f1", "f2", "f3", "f4"],
            "dataset": ["registers", "registers", "curves", "registers"],
            "status": ["ingested", "ingested", "ingested", "duplicate_file"],
            "dates": [[D1, D1 + dt.timedelta(1)], [D1], [D1], [D1]],
        }
    )
    assert ingest_stage.files_by_day(manifest, "registers") == {D1: ["f1", "f2"], D1 + dt.timedelta(1): ["f1"]}


def test_the_meters_valid_on_a_day_are_those_of_the_latest_snapshot_read_once() -> None:
    d = dt.date
    archive = pl.LazyFrame(
        {
            "snapshot_date": [d(2026, 1, 1), d(2026, 1, 1), d(2026, 1, 10)],
            "meter_id": ["0001", "0002", "0002"],
        }
    )
    on = ingest_stage.MetersOn(archive)
    assert on.on(d(2025, 12, 31)).height == 0  # before any snapshot: no meter is known
    assert on.on(d(2026, 1, 1))["meter_id"].to_list() == ["0001", "0002"]
    assert on.on(d(2026, 1, 9)) is on.on(d(2026, 1, 2))  # the same snapshot: read once
    assert on.on(d(2026, 1, 10))["meter_id"].to_list() == ["0002"]  # 0001 left service
    assert on.on(d(2026, 2, 1))["meter_id"].to_list() == ["0002"]


def test_the_meters_valid_on_a_day_come_sorted_for_the_binary_search() -> None:
    # an archive delivered in any order: its meters are looked up by binary search, not a hash table
    archive = pl.LazyFrame({"snapshot_date": [dt.date(2026, 1, 1)] * 4, "meter_id": ["0004", "0001", "0003", "0002"]})
    meters = ingest_stage.MetersOn(archive).on(dt.date(2026, 1, 2))["meter_id"]
    assert meters.to_list() == ["0001", "0002", "0003", "0004"]
    assert meters.flags["SORTED_ASC"]


def test_the_customers_valid_on_a_day_are_those_of_the_latest_snapshot_read_once() -> None:
    d = dt.date
    archive = pl.LazyFrame(
        {
            "snapshot_date": [d(2026, 1, 1), d(2026, 1, 1), d(2026, 1, 1), d(2026, 1, 10)],
            "meter_id": ["0001", "0002", "0003", "0002"],
            "customer_id": ["C1", "C1", None, "C2"],
            "prepay": [1, 0, 1, 1],
        }
    )
    on = ingest_stage.MetersOn(archive)
    assert on.customers(d(2025, 12, 31)).height == 0
    # C1 has a prepay and a post-paid meter: not all prepay (0); the meter without a customer is left out
    assert on.customers(d(2026, 1, 5)).sort("customer_id").rows() == [("C1", 0)]
    assert on.customers(d(2026, 1, 9)) is on.customers(d(2026, 1, 2))  # one snapshot, read once
    assert on.customers(d(2026, 1, 10)).rows() == [("C2", 1)]


def test_the_archive_columns_valid_on_a_day_are_those_of_the_latest_snapshot_read_once() -> None:
    d = dt.date
    archive = pl.LazyFrame(
        {
            "snapshot_date": [d(2026, 1, 1), d(2026, 1, 1), d(2026, 1, 10)],
            "meter_id": ["0001", "0002", "0002"],
            "feeder_id": ["F1", "F2", "F3"],
            "area_id": ["A1", None, "A3"],
        }
    )
    on = ingest_stage.MetersOn(archive)
    cols = ("feeder_id", "area_id")
    assert on.columns(d(2025, 12, 31), cols).shape == (0, 2)  # before any snapshot: none
    assert on.columns(d(2026, 1, 5), cols).rows() == [("F1", "A1"), ("F2", None)]
    assert on.columns(d(2026, 1, 9), cols) is on.columns(d(2026, 1, 2), cols)  # one snapshot, read once
    assert on.columns(d(2026, 1, 10), cols).rows() == [("F3", "A3")]
    assert on.columns(d(2026, 1, 10), ()).columns == ["snapshot_date", "meter_id", "feeder_id", "area_id"]


def test_the_registers_days_passed_on_from_the_partitions_counted_or_listed(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    table = LANDINGS["registers"].clean
    for day in (D1, D1 + dt.timedelta(days=1)):
        lake.write_partition(table, day, pl.DataFrame(schema=table.schema))
    d2, d3 = D1 + dt.timedelta(days=1), D1 + dt.timedelta(days=2)
    listed = [ingest_stage.consumption_days(lake, "registers", day) for day in (D1, d2, d3)]
    counted = [
        ingest_stage.consumption_days(lake, "registers", day, {"2026-01-01", "2026-01-02"}) for day in (D1, d2, d3)
    ]
    # D1: no earlier reading, the next day's is in: D1; D2: closes D1, no D3 reading yet; D3: closes D2
    assert listed == counted == [[D1], [D1], [d2]]
    assert ingest_stage.consumption_days(lake, "curves", d3, set()) == [d3]


def test_a_partition_write_that_fails_behind_fails_the_stage_and_commits_nothing(zone, monkeypatch) -> None:
    landing, lake = zone
    real = Lake.write_partition

    def full_disk(self, table, value, frame, *a, **k):
        if table.name == "registers":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, table, value, frame, *a, **k)

    with monkeypatch.context() as m:
        m.setattr(Lake, "write_partition", full_disk)
        with pytest.raises(OSError, match="No space left"):
            ingest(landing, lake, "r1")
    assert read_manifest(Lake(lake)).height == 0  # nothing counts as seen
    assert not (lake / "clean" / "registers").exists()
    ingest(landing, lake, "r2")  # the next run does it all
    assert registers(lake)["meter_id"].to_list() == ["0001", "0002"]
    assert sorted(read_manifest(Lake(lake))["source_file"]) == [
        "archive/archive_20260101.csv",
        "registers/reg_20260101.csv",
    ]


def test_the_payments_verdicts_are_found_once_per_history() -> None:
    t = dt.datetime(2026, 1, 1, 8)
    history = pl.DataFrame(
        {
            "txn_id": ["P1", "R1"],
            "txn_type": ["payment", "reversal"],
            "ref_txn_id": [None, "P9"],
            "customer_id": ["C1", "C1"],
            "paid_at": [t, t],
        }
    )
    first = ingest_stage.payments_verdicts(history)
    assert first.rows() == [("R1", "reversal_unknown_ref")]
    assert ingest_stage.payments_verdicts(history) is first
    other = history.with_columns(ref_txn_id=pl.Series([None, "P1"]))
    assert ingest_stage.payments_verdicts(other).rows() == [("R1", None)]


def days_zone(tmp_path: Path) -> Path:
    """Registers of three days, one file each, and a second file for the third day."""
    landing = tmp_path / "landing"
    put(landing, "archive/archive_20260101.csv", ARCHIVE, "2026-01-01T00:00:00")
    for i in range(3):
        d = (D1 + dt.timedelta(days=i)).isoformat()
        text = f"meter_id,freeze_date,total_kwh\n0002,{d},{20 + i}\n0009,{d},90\n0001,{d},{10 + i}\n"
        put(landing, f"registers/reg_{i}.csv", text, f"2026-01-0{i + 1}T01:00:00")
    put(landing, "registers/reg_2_late.csv", "meter_id,freeze_date,total_kwh\n0001,2026-01-03,13\n", "2026-01-04T01:00")
    return landing


def held_before_rebuild(monkeypatch: pytest.MonkeyPatch) -> dict[str, int | None]:
    """source file -> the estimated size of its rows in memory when the registers rebuilds
    began (None: held, its rows not in memory)."""
    seen: dict[str, int | None] = {}
    real = ingest_stage.rebuild_dataset

    def spy(rb, spec, st, manifest):
        if spec.dataset == "registers":
            names = dict(zip(st.plan["file_id"], st.plan["source_file"], strict=True))
            seen.clear()
            seen.update({names[f]: None if r is None else int(r.estimated_size()) for f, (_, r) in rb.kept.items()})
        return real(rb, spec, st, manifest)

    monkeypatch.setattr(ingest_stage, "rebuild_dataset", spy)
    return seen


@pytest.mark.parametrize("bound", ["none", "one file", "every file"])
def test_past_the_held_bound_a_days_rows_are_staged_whole_and_the_lake_is_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bound: str
) -> None:
    landing = days_zone(tmp_path)
    dates = [D1 + dt.timedelta(days=i) for i in range(3)]
    files = ["registers/reg_0.csv", "registers/reg_1.csv", "registers/reg_2.csv", "registers/reg_2_late.csv"]
    in_memory = held_before_rebuild(monkeypatch)
    ingest(landing, tmp_path / "lake-memory", "r1", dates)  # the default bound holds these small files
    assert sorted(in_memory) == files and None not in in_memory.values()
    sizes: dict[str, int] = {f: int(size or 0) for f, size in in_memory.items()}
    # the bound: nothing; the first file staged (the files are staged in name order); all
    limit = {"none": 0, "one file": sizes[files[0]], "every file": sum(sizes.values())}[bound]
    monkeypatch.setattr(ingest_stage, "HELD_BYTES", limit)
    lake = tmp_path / "lake"
    ingest(landing, lake, "r1", dates)
    # every file of one day is held for its rebuild; the rows of those past the bound are not in memory
    assert sorted(in_memory) == files
    kept = [f for f in files if in_memory[f] is not None]
    assert kept == {"none": [], "one file": files[:1], "every file": files}[bound]
    # the same lake: partitions, quarantine, ledgers; the sole file of a day linked to its partition
    assert tree_digest(lake) == tree_digest(tmp_path / "lake-memory")
    lk, ids = Lake(lake), staged_files(lake)
    for i in range(2):
        staged = ingest_stage.staged_path(lk, "registers", ids[files[i]])
        assert os.stat(staged).st_ino == os.stat(lk.partition_path(SPEC.clean, dates[i])).st_ino
        rows = ingest_stage.read_staged(lk, SPEC, ids[files[i]], dates[i]).collect()
        assert rows["meter_id"].to_list() == ["0001", "0002", "0009"]
        assert rows["total_kwh"].to_list() == [10.0 + i, 20.0 + i, 90.0]
    # the third day's two files are staged whole; the later delivery wins for 0001
    for f in files[2:]:
        assert "freeze_date" in pl.read_parquet(ingest_stage.staged_path(lk, "registers", ids[f])).columns
    third = registers(lake, dates[2])
    assert dict(zip(third["meter_id"], third["total_kwh"], strict=True)) == {"0001": 13.0, "0002": 22.0}


def test_with_every_last_partition_written_beside_the_lake_and_the_result_are_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meterlake.generate import generate
    from meterlake.lake import WriteBehind

    monkeypatch.setenv("METERLAKE_PII_KEY", "test-key")  # the two lakes' card tokens alike
    landing = tmp_path / "landing"
    generate(landing, meters=40, days=2, start=D1, seed=5)
    # an events file sent twice: a note on events besides the generator's on registers
    sent = sorted((landing / "events").glob("*.csv"))[0]
    (landing / "events/resent.csv").write_bytes(sent.read_bytes())
    dates = [D1, D1 + dt.timedelta(days=1)]
    alone = ingest(landing, tmp_path / "lake-alone", "r1", dates)
    staged_in: list[str] = []
    real_stage = ingest_stage.stage_dataset

    def spy(ctx, st, dataset, *a, **k):
        staged_in.append(dataset)
        return real_stage(ctx, st, dataset, *a, **k)

    beside: list[bool] = []
    real_submit = WriteBehind.submit

    def submit(self, job, nbytes=0, beside_=False):
        beside.append(beside_ and nbytes > self.max_bytes)
        return real_submit(self, job, nbytes, beside_)

    # every job over the bound: each dataset's last partition is written beside the next
    # datasets' work, every other job at once; every file read waits for the one beside
    monkeypatch.setattr(ingest_stage, "WriteBehind", lambda threads: WriteBehind(max_bytes=0, threads=threads))
    monkeypatch.setattr(WriteBehind, "submit", submit)
    monkeypatch.setattr(ingest_stage, "BESIDE_READ_BYTES", -1)
    monkeypatch.setattr(ingest_stage, "stage_dataset", spy)
    together = ingest(landing, tmp_path / "lake", "r1", dates)
    assert staged_in == list(ingest_stage.STAGE_ORDER) and staged_in[-1] == "registers"
    # the last partition of each dataset rebuilt but the archive
    assert sum(beside) == len(together.details["partitions"]) - 1 >= 4
    assert tree_digest(tmp_path / "lake") == tree_digest(tmp_path / "lake-alone")
    # the notes, rows and partitions in the order of the datasets found, as before
    assert [n.split("/")[0] for n in alone.notes] == ["registers", "events"]
    assert together.notes == alone.notes and together.rows == alone.rows
    assert list(together.rows) == [f"clean.{ds}" for ds in LANDINGS if f"clean.{ds}" in together.rows]
    assert together.details["partitions"] == alone.details["partitions"]
    assert list(together.details["partitions"]) == [ds for ds in LANDINGS if ds in together.details["partitions"]]


def test_files_are_read_beside_a_write_until_their_sizes_pass_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meterlake.lake import WriteBehind

    landing = tmp_path / "landing"
    put(landing, "archive/archive_20260101.csv", ARCHIVE, "2026-01-01T00:00:00")
    put(landing, "registers/reg_a.csv", REG, "2026-01-01T01:00:00")
    put(landing, "registers/reg_b.csv", REG.replace(",20\n", ",21\n"), "2026-01-01T02:00:00")
    put(landing, "registers/reg_c.csv", REG.replace(",20\n", ",22\n"), "2026-01-01T03:00:00")
    size = {f: (landing / "registers" / f).stat().st_size for f in ("reg_a.csv", "reg_b.csv", "reg_c.csv")}
    read: list[str] = []
    waited_before: list[str] = []
    real_stage = ingest_stage._stage_candidate

    def stage(ctx, spec, cand, *a, **k):
        read.append(cand.rel)
        return real_stage(ctx, spec, cand, *a, **k)

    class AlwaysBeside(WriteBehind):
        """A write beside that never ends: every file read counts against the bound."""

        def writing_beside(self) -> bool:
            return True

        def wait_beside(self) -> None:
            waited_before.append(f"after {len(read)} files")

        def wait(self) -> None:  # no write beside to wait for: only the waits for the bound are counted
            self.wait_others()

    monkeypatch.setattr(ingest_stage, "_stage_candidate", stage)
    monkeypatch.setattr(ingest_stage, "WriteBehind", AlwaysBeside)
    archive_size = (landing / "archive/archive_20260101.csv").stat().st_size
    # the archive and reg_a fit; reg_b passes the bound, and so does reg_c after it
    monkeypatch.setattr(ingest_stage, "BESIDE_READ_BYTES", archive_size + size["reg_a.csv"] + size["reg_b.csv"] - 1)
    ingest(landing, tmp_path / "lake", "r1")
    assert read == ["archive/archive_20260101.csv", "registers/reg_a.csv", "registers/reg_b.csv", "registers/reg_c.csv"]
    assert waited_before == ["after 2 files", "after 3 files"]
