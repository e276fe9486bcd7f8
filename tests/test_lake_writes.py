"""The lake's writes behind the caller (one thread, in order, bounded), its partitions written
together, and its empty Parquet files."""

from __future__ import annotations

import datetime as dt
import functools
import threading
from pathlib import Path

import polars as pl
import pytest
from lake_kit import TOY_DAILY
from polars.testing import assert_frame_equal

from meterlake.lake import (
    NO_FILE,
    Lake,
    WriteBehind,
    file_identity,
    identity_stamp,
    kept_stamps,
    write_now_or_behind,
)
from meterlake.schemas._base import Column, Table
from meterlake.schemas.outage_meter_days import OUTAGE_METER_DAYS


def test_jobs_run_in_the_order_given_and_wait_returns_once_all_are_done() -> None:
    done: list[int] = []
    with WriteBehind() as writes:
        for i in range(5):
            writes.submit(functools.partial(done.append, i))
        writes.wait()
        assert done == [0, 1, 2, 3, 4]


def test_a_failed_job_is_raised_and_the_jobs_after_it_are_not_run() -> None:
    done: list[str] = []
    release = threading.Event()

    def fail() -> None:
        release.wait(5)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), WriteBehind() as writes:
        writes.submit(lambda: done.append("before"))
        writes.submit(fail)
        writes.submit(lambda: done.append("after"))  # queued behind the failing job
        release.set()
        writes.wait()
    assert done == ["before"]


def test_leaving_by_an_exception_starts_no_job_not_yet_started() -> None:
    done: list[str] = []
    started, release = threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        release.wait(5)
        done.append("slow")

    with pytest.raises(RuntimeError), WriteBehind() as writes:
        writes.submit(slow)
        writes.submit(lambda: done.append("queued"))
        started.wait(5)
        release.set()
        raise RuntimeError("the caller failed")
    assert done == ["slow"]  # the running job finished; the queued one never ran


def test_submit_waits_while_the_frames_held_would_pass_the_bound() -> None:
    release = threading.Event()
    order: list[str] = []
    writes = WriteBehind(max_bytes=100)

    def first() -> None:
        release.wait(5)
        order.append("first done")

    writes.submit(first, nbytes=80)  # the first job is taken whatever its size
    threading.Timer(0.2, release.set).start()
    writes.submit(lambda: order.append("second"), nbytes=30)  # 80 + 30 > 100: waits for the first
    order.append("second submitted")
    writes.wait()
    writes.__exit__(None, None, None)
    assert order[0] == "first done"
    assert order.index("second submitted") > 0


def test_at_most_depth_jobs_wait_or_run() -> None:
    release = threading.Event()
    order: list[str] = []
    writes = WriteBehind(depth=1)

    def first() -> None:
        release.wait(5)
        order.append("first")

    writes.submit(first)
    threading.Timer(0.2, release.set).start()
    writes.submit(lambda: order.append("second"))
    order.append("submitted")
    writes.__exit__(None, None, None)
    assert order == ["first", "submitted", "second"] or order == ["first", "second", "submitted"]


def test_without_a_writer_the_job_runs_at_once() -> None:
    done: list[int] = []
    write_now_or_behind(None, lambda: done.append(1))
    assert done == [1]


@pytest.mark.parametrize("level", [None, 1])
def test_an_empty_frame_is_written_as_the_bytes_polars_gives_it(tmp_path: Path, level: int | None) -> None:
    lake = Lake(tmp_path / "lake")
    schema = {"meter_id": pl.String(), "kwh": pl.Float64(), "day": pl.Date(), "at": pl.Datetime("us")}
    ours = lake.write_file(tmp_path / "lake" / "a.parquet", pl.DataFrame(schema=schema), level=level)
    again = lake.write_file(tmp_path / "lake" / "b.parquet", pl.DataFrame(schema=schema), level=level)
    polars_own = tmp_path / "c.parquet"
    pl.DataFrame(schema=schema).write_parquet(
        polars_own, compression="zstd", compression_level=level, statistics=True, row_group_size=256_000
    )
    assert ours.read_bytes() == polars_own.read_bytes() == again.read_bytes()
    back = pl.read_parquet(ours)
    assert back.height == 0 and back.schema == pl.Schema(schema)
    # another schema: other bytes, not the first schema's
    other = lake.write_file(tmp_path / "lake" / "d.parquet", pl.DataFrame(schema={"meter_id": pl.String()}))
    assert pl.read_parquet(other).schema == pl.Schema({"meter_id": pl.String()})


def test_a_job_holding_more_than_the_bound_is_waited_for_at_once() -> None:
    order: list[str] = []
    with WriteBehind(max_bytes=100) as writes:
        writes.submit(functools.partial(order.append, "small"), nbytes=10)
        writes.submit(functools.partial(order.append, "large"), nbytes=500)
        order.append("submitted")  # after the large job is written, never beside it
    assert order == ["small", "large", "submitted"]


def test_a_frame_of_many_float_columns_is_written_with_dictionary_encoded_floats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np
    import pyarrow.parquet as pq

    from meterlake import lake as lake_module

    monkeypatch.setattr(lake_module, "DICTIONARY_ROWS", 7)  # the frame below: 7 rows
    n = lake_module.DICTIONARY_FLOATS
    # -0.0, NaN and a null must come back as they were: the dictionary keeps their bits
    values = [0.0, -0.0, float("nan"), None, 1.5, 0.25, 1.5]
    frame = pl.DataFrame(
        {"meter_id": [f"m{i}" for i in range(len(values))], **{f"p{i}": values for i in range(1, n + 1)}},
        schema={"meter_id": pl.String(), **{f"p{i}": pl.Float64() for i in range(1, n + 1)}},
    ).with_columns(pl.datetime(2026, 3, 2, 10, 30).dt.cast_time_unit("us").alias("delivered_at"))
    path = Lake(tmp_path).write_file(tmp_path / "curves.parquet", frame)
    back = pl.read_parquet(path)
    assert back.schema == frame.schema
    assert_frame_equal(back, frame)
    bits = back["p1"].to_numpy().view(np.uint64)
    assert bits[1] == 1 << 63  # -0.0: the sign bit alone
    assert back["p1"].is_null().to_list() == [False, False, False, True, False, False, False]
    column = pq.ParquetFile(path).metadata.row_group(0).column(1)
    assert column.path_in_schema == "p1" and "RLE_DICTIONARY" in column.encodings
    # one float column fewer: polars' own writer, floats plain
    fewer = frame.drop(f"p{n}")
    path = Lake(tmp_path).write_file(tmp_path / "fewer.parquet", fewer)
    assert "RLE_DICTIONARY" not in pq.ParquetFile(path).metadata.row_group(0).column(1).encodings
    assert_frame_equal(pl.read_parquet(path), fewer)
    # lz4 (a working file read back often): polars' own writer, whatever the columns
    path = Lake(tmp_path).write_file(tmp_path / "lz4.parquet", frame, compression="lz4")
    assert "RLE_DICTIONARY" not in pq.ParquetFile(path).metadata.row_group(0).column(1).encodings
    # one row fewer than the bound: polars' own writer too
    path = Lake(tmp_path).write_file(tmp_path / "short.parquet", frame.head(6))
    assert "RLE_DICTIONARY" not in pq.ParquetFile(path).metadata.row_group(0).column(1).encodings


def _meter_days(day: dt.date, meters: list[str]) -> pl.DataFrame:
    """outage_meter_days rows of ``day`` for ``meters`` (in the order given: the write sorts them)."""
    n = len(meters)
    return pl.DataFrame(
        {
            "date": [day] * n,
            "meter_id": meters,
            "outage_min": [30.0 * (i + 1) for i in range(n)],
            "first_slot": [1] * n,
            "last_slot": [i + 1 for i in range(n)],
            "off_at_midnight": [False] * n,
        }
    )


@pytest.mark.parametrize("alike", [pytest.param(True, id="one-schema"), pytest.param(False, id="schemas-differ")])
def test_partitions_written_together_are_the_files_written_one_by_one(tmp_path: Path, alike: bool) -> None:
    days = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(12)]
    frames = {d: _meter_days(d, ["m3", "m1", "m2"][: 1 + i % 3]) for i, d in enumerate(days)}
    frames[days[5]] = frames[days[5]].clear()  # a day without rows
    if not alike:  # an integer where the contract has a float, an extra column: conformed one by one
        frames[days[7]] = frames[days[7]].with_columns(pl.col("outage_min").cast(pl.Int64), extra=pl.lit(1))
    one, together = Lake(tmp_path / "one"), Lake(tmp_path / "together")
    expected = [one.write_partition(OUTAGE_METER_DAYS, d, f) for d, f in frames.items()]
    paths = together.write_partitions(OUTAGE_METER_DAYS, frames)
    assert [p.relative_to(together.root) for p in paths] == [p.relative_to(one.root) for p in expected]
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in expected]
    # sorted by the table key, the partition column left to the folder name
    assert pl.read_parquet(paths[2])["meter_id"].to_list() == ["m1", "m2", "m3"]
    assert together.partitions(OUTAGE_METER_DAYS) == [d.isoformat() for d in days]
    assert not any(together.staging.iterdir())


def test_a_failing_partition_write_is_raised_after_the_others_are_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = Lake(tmp_path / "lake")
    days = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(6)]
    frames = {d: _meter_days(d, ["m1", "m2"]) for d in days}
    real = Lake.write_file
    failing = lake.partition_path(OUTAGE_METER_DAYS, days[2])

    def write(self: Lake, path: Path, frame: pl.DataFrame, *args: object, **kwargs: object) -> Path:
        if path == failing:
            raise OSError(28, "No space left on device")
        return real(self, path, frame)

    monkeypatch.setattr(Lake, "write_file", write)
    with pytest.raises(OSError, match="No space left"):
        lake.write_partitions(OUTAGE_METER_DAYS, frames)
    held = lake.partitions(OUTAGE_METER_DAYS)
    assert held == [d.isoformat() for d in days if d != days[2]]
    for d in held:  # every file written is whole
        assert pl.read_parquet(lake.partition_path(OUTAGE_METER_DAYS, d)).height == 2


def test_of_several_failing_partition_writes_the_first_is_raised_and_the_others_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    lake = Lake(tmp_path / "lake")
    days = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(5)]
    frames = {d: _meter_days(d, ["m1"]) for d in days}
    real = Lake.write_file
    failing = {
        lake.partition_path(OUTAGE_METER_DAYS, days[1]): "first",
        lake.partition_path(OUTAGE_METER_DAYS, days[3]): "second",
    }

    def write(self: Lake, path: Path, frame: pl.DataFrame, *args: object, **kwargs: object) -> Path:
        if path in failing:
            raise OSError(5, f"I/O error on the {failing[path]}")
        return real(self, path, frame)

    monkeypatch.setattr(Lake, "write_file", write)
    with caplog.at_level("WARNING", logger="meterlake.lake"), pytest.raises(OSError, match="on the first"):
        lake.write_partitions(OUTAGE_METER_DAYS, frames)
    logged = [r.getMessage() for r in caplog.records if r.name == "meterlake.lake"]
    assert len(logged) == 1 and "I/O error on the second" in logged[0] and "2026-01-04" in logged[0]


def test_partitions_written_from_one_frame_are_the_files_written_one_by_one(tmp_path: Path) -> None:
    d1, d2, d3 = dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)
    # rows of two days, out of meter order, kwh written as ints (conform casts them), an extra column
    frame = pl.DataFrame(
        {
            "date": [d2, d1, d2, d1, d2],
            "meter_id": ["m3", "m2", "m1", "m1", "m2"],
            "kwh": [3, 2, 1, 4, 5],
            "extra": ["x"] * 5,
        }
    )
    together, alone = Lake(tmp_path / "together"), Lake(tmp_path / "alone")
    written = together.write_partitions_from(TOY_DAILY, frame, [d1, d2, d3])
    assert written == {d1: 2, d2: 3, d3: 0}  # d3 has no rows: an empty file, written all the same
    for day in (d1, d2, d3):
        alone.write_partition(TOY_DAILY, day, frame.filter(pl.col("date") == day))
        path = together.partition_path(TOY_DAILY, day)
        assert path.read_bytes() == alone.partition_path(TOY_DAILY, day).read_bytes()
    back = pl.read_parquet(together.partition_path(TOY_DAILY, d2))
    assert back.to_dict(as_series=False) == {"meter_id": ["m1", "m2", "m3"], "kwh": [1.0, 5.0, 3.0]}
    assert pl.read_parquet(together.partition_path(TOY_DAILY, d3)).schema == pl.Schema(
        {"meter_id": pl.String(), "kwh": pl.Float64()}
    )


def test_rows_of_values_not_asked_for_are_refused_not_dropped(tmp_path: Path) -> None:
    d1, d2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
    frame = pl.DataFrame({"date": [d1, d2], "meter_id": ["m1", "m1"], "kwh": [1.0, 2.0]})
    lake = Lake(tmp_path / "lake")
    with pytest.raises(ValueError, match="2026-01-01 outside the partitions to write"):
        lake.write_partitions_from(TOY_DAILY, frame, [d2])
    assert lake.partitions(TOY_DAILY) == []
    assert lake.write_partitions_from(TOY_DAILY, frame, [d1, d2]) == {d1: 1, d2: 1}


def test_a_mapping_of_frames_for_an_unpartitioned_table_is_refused(tmp_path: Path) -> None:
    whole = Table(name="toy", description="no partitions", columns=(Column("meter_id", pl.String(), "the meter"),))
    with pytest.raises(ValueError, match="not partitioned"):
        Lake(tmp_path / "lake").write_partitions(whole, {"x": pl.DataFrame({"meter_id": ["m1"]})})


def test_an_unpartitioned_table_is_refused(tmp_path: Path) -> None:
    whole = Table(name="toy", description="no partitions", columns=(Column("meter_id", pl.String(), "the meter"),))
    with pytest.raises(ValueError, match="not partitioned"):
        Lake(tmp_path / "lake").write_partitions_from(whole, pl.DataFrame({"meter_id": ["m1"]}), ["x"])


def test_jobs_on_several_threads_run_at_once_and_wait_waits_for_all() -> None:
    # two jobs that each wait for the other's start end only if they run at the same time
    a_started, b_started = threading.Event(), threading.Event()
    done: list[str] = []

    def job(mine: threading.Event, other: threading.Event, name: str) -> None:
        mine.set()
        assert other.wait(5), "the jobs did not run at once"
        done.append(name)

    with WriteBehind(threads=2) as writes:
        writes.submit(functools.partial(job, a_started, b_started, "a"))
        writes.submit(functools.partial(job, b_started, a_started, "b"))
        writes.wait()
        assert sorted(done) == ["a", "b"]


def test_on_several_threads_no_job_starts_after_a_failed_one() -> None:
    done: list[str] = []

    def fail() -> None:
        raise OSError("disk full")

    release = threading.Event()
    with pytest.raises(OSError, match="disk full"), WriteBehind(threads=2) as writes:
        writes.submit(lambda: release.wait(5))  # holds one thread until the failure is in
        writes.submit(fail)
        writes.submit(lambda: done.append("after"))  # queued behind both: starts once one ends
        writes.submit(lambda: done.append("after 2"))
        release.set()
        writes.wait()
    # the failing job's thread takes the next job only after the failure: neither runs
    assert done == []


def test_clean_staging_takes_away_what_a_killed_run_left_files_and_folders(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    lake.staging.mkdir(parents=True)
    (lake.staging / "part-1.parquet.tmp").write_bytes(b"half")
    left = lake.staging / "anomalies-x1"  # a stage's working folder, with a file in it
    left.mkdir()
    (left / "range-0.parquet").write_bytes(b"rows")
    assert lake.clean_staging() == 2
    assert not any(lake.staging.iterdir())


def test_a_rewritten_lake_file_has_another_identity(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    path = lake.root / "x.parquet"
    assert file_identity(path) == NO_FILE
    lake.write_file(path, pl.DataFrame({"a": [1]}))
    first = file_identity(path)
    assert first != NO_FILE and file_identity(path) == first
    lake.write_file(path, pl.DataFrame({"a": [1]}))  # the same content, a new file renamed over
    assert file_identity(path) != first


def test_a_partition_written_again_with_the_same_rows_is_left_as_it_is(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    day = dt.date(2026, 1, 2)
    path = lake.write_partition(OUTAGE_METER_DAYS, day, _meter_days(day, ["m1", "m2"]))
    before, stamp = path.read_bytes(), file_identity(path)
    called: list[bool] = []
    # the same rows in another order: the file would be the same bytes (rows sorted by the key)
    same = _meter_days(day, ["m1", "m2"]).reverse()
    assert not lake.write_partition_if_changed(OUTAGE_METER_DAYS, day, same, before=lambda: called.append(True))
    assert file_identity(path) == stamp and path.read_bytes() == before
    assert called == []  # nothing to record before a replacement that does not happen
    assert not any(lake.staging.iterdir())


def test_a_partition_with_other_rows_is_replaced_after_before_is_called(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    day = dt.date(2026, 1, 2)
    path = lake.write_partition(OUTAGE_METER_DAYS, day, _meter_days(day, ["m1", "m2"]))
    old = path.read_bytes()
    seen: list[bytes] = []
    new = _meter_days(day, ["m1", "m2", "m3"])
    assert lake.write_partition_if_changed(OUTAGE_METER_DAYS, day, new, before=lambda: seen.append(path.read_bytes()))
    assert seen == [old]  # called while the old file still stood
    assert pl.read_parquet(path)["meter_id"].to_list() == ["m1", "m2", "m3"]
    # the bytes write_partition writes
    other = Lake(tmp_path / "other")
    assert path.read_bytes() == other.write_partition(OUTAGE_METER_DAYS, day, new).read_bytes()
    # a partition not there yet is written (and counts as changed)
    later = dt.date(2026, 1, 3)
    assert lake.write_partition_if_changed(OUTAGE_METER_DAYS, later, _meter_days(later, ["m1"]))
    assert lake.partitions(OUTAGE_METER_DAYS) == [day.isoformat(), later.isoformat()]
    assert not any(lake.staging.iterdir())


def test_a_float_differing_in_its_last_bit_is_a_change(tmp_path: Path) -> None:
    """Unchanged means the same bytes: a value that compares almost equal is still written."""
    lake = Lake(tmp_path / "lake")
    day = dt.date(2026, 1, 2)
    frame = _meter_days(day, ["m1"]).with_columns(outage_min=pl.lit(0.1 + 0.2))
    lake.write_partition(OUTAGE_METER_DAYS, day, frame)
    assert lake.write_partition_if_changed(OUTAGE_METER_DAYS, day, frame.with_columns(outage_min=pl.lit(0.3)))
    assert lake.scan(OUTAGE_METER_DAYS).collect()["outage_min"].to_list() == [0.3]


def test_kept_state_of_days_no_run_reads_is_removed(tmp_path: Path, monkeypatch) -> None:
    """By hand: newest day 2026-03-31, 14 days read plus a margin of 31: the first day kept
    is 03-31 - 44 days = 2026-02-15; folders and files of earlier days go, other names stay."""
    import datetime as dt

    import meterlake.lake as lake_module
    from meterlake.lake import Lake

    lake = Lake(tmp_path / "lake")
    base = lake.root / "_state" / "x"
    names = ["2026-02-13", "2026-02-14", "2026-02-15", "2026-03-31"]
    for d in names:
        (base / "settings-a" / f"date={d}").mkdir(parents=True)
        (base / "settings-a" / f"date={d}" / "customers.parquet").write_bytes(b"x")
        (base / f"date={d}.parquet").write_bytes(b"x")
    (base / "stamps.json").write_text("{}")
    # an abandoned settings folder is pruned by the newest day of the whole state
    (base / "settings-old" / "date=2026-01-02").mkdir(parents=True)
    assert lake_module.STATE_MARGIN_DAYS == 31
    assert lake.prune_dated_state(("_state", "x"), 14) == 2 + 2 + 1
    left = sorted(p.relative_to(base).as_posix() for p in base.rglob("date=*"))
    assert left == [
        "date=2026-02-15.parquet",
        "date=2026-03-31.parquet",
        "settings-a/date=2026-02-15",
        "settings-a/date=2026-03-31",
    ]
    assert (base / "stamps.json").exists() and (base / "settings-old").is_dir()
    assert not list(lake.staging.iterdir())
    # a state folder that is not there, or holds no dated entry: nothing to do
    assert lake.prune_dated_state(("_state", "none"), 14) == 0
    monkeypatch.setattr(lake_module, "STATE_MARGIN_DAYS", 0)
    assert lake.prune_dated_state(("_state", "x"), 1) == 2  # 02-15 now outside a day's read
    assert dt.date(2026, 3, 31).isoformat() in {p.name[5:15] for p in base.rglob("date=*")}


def test_a_large_job_written_beside_is_not_waited_for_but_by_wait() -> None:
    release = threading.Event()
    order: list[str] = []
    writes = WriteBehind(max_bytes=100, threads=2)

    def large() -> None:
        release.wait(5)
        order.append("large")

    writes.submit(large, nbytes=500, beside=True)  # over the bound: not waited for at once
    # 90 bytes fit the bound: the large job's 500 are not counted against it
    writes.submit(functools.partial(order.append, "small"), nbytes=90)
    writes.wait_others()
    assert order == ["small"]  # the small job is written, the large one still runs
    release.set()
    writes.wait()
    assert order == ["small", "large"]
    writes.__exit__(None, None, None)


def test_a_second_job_beside_waits_for_the_first() -> None:
    release = threading.Event()
    order: list[str] = []
    writes = WriteBehind(max_bytes=100, threads=2)

    def first() -> None:
        release.wait(5)
        order.append("first")

    writes.submit(first, nbytes=500, beside=True)
    threading.Timer(0.2, release.set).start()
    writes.submit(functools.partial(order.append, "second"), nbytes=500, beside=True)
    assert order[0] == "first"  # submitted once the first was written
    writes.wait_beside()
    assert order == ["first", "second"]
    writes.__exit__(None, None, None)


def test_a_small_job_asked_beside_is_written_behind_as_ever() -> None:
    order: list[str] = []
    with WriteBehind(max_bytes=100) as writes:
        writes.submit(functools.partial(order.append, "small"), nbytes=10, beside=True)
        writes.wait_others()  # within the bound: one of the jobs wait_others waits for
        assert order == ["small"]


def test_a_job_beside_that_fails_is_raised_by_wait() -> None:
    writes = WriteBehind(max_bytes=100)

    def fails() -> None:
        raise OSError("disk full")

    writes.submit(fails, nbytes=500, beside=True)
    with pytest.raises(OSError, match="disk full"):
        writes.wait()
    writes.__exit__(None, None, None)


def test_a_kept_file_reads_back_the_stamps_written_in_its_footer_and_none_when_unreadable(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    source = lake.write_file(lake.root / "source.parquet", pl.DataFrame({"x": [1, 2]}))
    ino, size, mtime = file_identity(source)
    assert identity_stamp(source) == f"{ino} {size} {mtime}"
    assert identity_stamp(tmp_path / "none") == "-1 -1 -1"  # a missing file's identity

    kept = lake.root / "_state" / "k" / "date=2026-03-01.parquet"
    stamps = {"source": identity_stamp(source), "settings": '{"a": 1}'}
    lake.write_file(kept, pl.DataFrame({"y": [3.5]}), metadata=stamps)
    assert kept_stamps(kept, stamps) == stamps
    assert pl.read_parquet(kept)["y"].to_list() == [3.5]
    # a key the footer lacks is left out, so the answer differs from what is asked for
    assert kept_stamps(kept, ["source", "version"]) == {"source": stamps["source"]}
    # a file without stamps, a cut-off file, no file
    lake.write_file(kept, pl.DataFrame({"y": [3.5]}))
    assert kept_stamps(kept, stamps) == {}
    whole = kept.read_bytes()
    kept.write_bytes(whole[: len(whole) // 2])
    assert kept_stamps(kept, stamps) is None
    assert kept_stamps(tmp_path / "none.parquet", stamps) is None


def test_a_partition_in_the_contracts_columns_is_written_as_one_conformed_first(tmp_path: Path) -> None:
    # the frame in the contract's columns and types skips the conforming query; one with an
    # extra column, another order or another type is conformed: the files are the same bytes
    table = Table(
        "toy_part",
        "a toy partitioned table",
        (
            Column("date", pl.Date(), "partition"),
            Column("meter_id", pl.String(), "meter"),
            Column("kwh", pl.Float64(), "kWh"),
        ),
        key=("date", "meter_id"),
        partition_by="date",
    )
    day = dt.date(2026, 3, 2)
    exact = pl.DataFrame(
        {"date": [day] * 3, "meter_id": ["0003", "0001", "0002"], "kwh": [3.0, 1.0, -0.0]},
        schema=table.schema,
    )
    reordered = exact.select("kwh", "meter_id", "date", pl.lit(7).alias("extra"))  # conformed
    written = []
    for i, frame in enumerate([exact, reordered]):
        lake = Lake(tmp_path / f"lake{i}")
        path = lake.write_partition(table, day.isoformat(), frame)
        written.append(path.read_bytes())
        assert pl.read_parquet(path)["meter_id"].to_list() == ["0001", "0002", "0003"]
    assert written[0] == written[1]
