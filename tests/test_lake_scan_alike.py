"""The lake's scans of many partition files: files of one schema read as one multi-file scan
(the rows, order and types of a scan a file), files of differing schemas each on its own."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import polars as pl
import pytest
from lake_kit import TOY_DAILY
from polars.testing import assert_frame_equal

from meterlake import lake as lake_mod
from meterlake.lake import Lake, scan_alike
from meterlake.report.data import read_mart

D1, D2, D3 = dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)


def _write(lake: Lake, day: dt.date, frame: pl.DataFrame) -> Path:
    """A partition file as written by hand (no conform): the frame's columns as they are."""
    path = lake.partition_path(TOY_DAILY, day.isoformat())
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path)
    return path


def test_files_of_one_schema_read_in_partition_order_with_the_date_typed(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    _write(lake, D2, pl.DataFrame({"meter_id": ["b"], "kwh": [2.0]}))
    _write(lake, D1, pl.DataFrame({"meter_id": ["a", "c"], "kwh": [1.0, 3.0]}))
    got = lake.scan(TOY_DAILY).collect()
    want = pl.DataFrame(
        {"date": [D1, D1, D2], "meter_id": ["a", "c", "b"], "kwh": [1.0, 3.0, 2.0]},
        schema={"date": pl.Date, "meter_id": pl.String, "kwh": pl.Float64},
    )
    assert_frame_equal(got, want)
    # a partition asked for twice is read twice, as a scan a file reads it
    twice = lake.scan(TOY_DAILY, [D1.isoformat(), D1.isoformat()]).collect()
    assert twice["meter_id"].to_list() == ["a", "c", "a", "c"]


def test_an_older_file_without_a_later_column_reads_it_as_empty(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    _write(lake, D1, pl.DataFrame({"meter_id": ["a"]}))
    _write(lake, D2, pl.DataFrame({"meter_id": ["b"], "kwh": [2.0]}))
    _write(lake, D3, pl.DataFrame({"meter_id": ["c"], "kwh": [3.0]}))
    got = lake.scan(TOY_DAILY).collect()
    assert got.columns == ["date", "meter_id", "kwh"]
    assert got["kwh"].to_list() == [None, 2.0, 3.0]
    assert got["date"].to_list() == [D1, D2, D3]


def test_scan_alike_declines_what_a_single_scan_cannot_read_alike(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    p1 = _write(lake, D1, pl.DataFrame({"meter_id": ["a"], "kwh": [1.0]}))
    p2 = _write(lake, D2, pl.DataFrame({"meter_id": ["b"], "kwh": [2.0]}))
    p3 = _write(lake, D3, pl.DataFrame({"meter_id": ["c"], "kwh": [3]}))  # kwh an integer here
    assert scan_alike([("2026-01-01", p1)], "date", pl.Date()) is None  # one file
    assert scan_alike([("2026-01-01", p1), ("2026-01-01", p1)], "date", pl.Date()) is None  # a file twice
    assert scan_alike([("2026-01-01", p1), ("2026-01-03", p3)], "date", pl.Date()) is None  # two schemas
    both = scan_alike([("2026-01-02", p2), ("2026-01-01", p1)], "date", pl.Date())
    assert both is not None
    assert both.collect().rows() == [("b", 2.0, D2), ("a", 1.0, D1)]
    # only the columns asked for that the files hold, then the key; none of them: declined
    some = scan_alike([("2026-01-02", p2), ("2026-01-01", p1)], "date", pl.Date(), ("kwh", "absent"))
    assert some is not None
    assert some.collect().rows() == [(2.0, D2), (1.0, D1)]
    assert scan_alike([("2026-01-02", p2), ("2026-01-01", p1)], "date", pl.Date(), ("absent",)) is None


def test_a_file_replaced_is_read_with_its_new_schema(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    _write(lake, D1, pl.DataFrame({"meter_id": ["a"], "kwh": [1.0]}))
    _write(lake, D2, pl.DataFrame({"meter_id": ["b"], "kwh": [2.0]}))
    assert lake.scan(TOY_DAILY).collect()["kwh"].to_list() == [1.0, 2.0]
    # D2 replaced by a file without kwh (a new file renamed over the old, as the lake writes)
    path = lake.partition_path(TOY_DAILY, D2.isoformat())
    tmp = path.with_suffix(".tmp")
    pl.DataFrame({"meter_id": ["b2"]}).write_parquet(tmp)
    os.replace(tmp, path)
    got = lake.scan(TOY_DAILY).collect()
    assert got["meter_id"].to_list() == ["a", "b2"]
    assert got["kwh"].to_list() == [1.0, None]


def test_the_schema_cache_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lake_mod, "_SCHEMAS_MAX", 2)
    monkeypatch.setattr(lake_mod, "_SCHEMAS", {})
    lake = Lake(tmp_path)
    for day in (D1, D2, D3):
        _write(lake, day, pl.DataFrame({"meter_id": ["a"], "kwh": [1.0]}))
    assert lake.scan(TOY_DAILY).collect().height == 3
    assert len(lake_mod._SCHEMAS) <= 2


def test_read_mart_reads_files_of_one_schema_as_a_scan_each_would(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    for day, ids in ((D1, ["a"]), (D2, ["b", "c"])):
        path = tmp_path / "marts" / "toy_daily" / f"date={day.isoformat()}" / "part-0.parquet"
        path.parent.mkdir(parents=True)
        pl.DataFrame({"meter_id": ids, "kwh": [1.0] * len(ids)}).write_parquet(path)
    got = read_mart(lake, "toy_daily", [D2], ("meter_id", "absent"))
    assert got is not None
    assert got.rows() == [("b", D2), ("c", D2)]
    every = read_mart(lake, "toy_daily", None)
    assert every is not None
    assert every.columns == ["meter_id", "kwh", "date"]
    assert every["date"].to_list() == [D1, D2, D2]
    # no column asked for is held: no rows, as a scan of each file without columns gives
    none = read_mart(lake, "toy_daily", None, ("absent",))
    assert none is not None and none.height == 0
