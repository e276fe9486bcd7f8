"""The DuckDB reporting file: one view per table over the lake, rebuilt atomically."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from meterlake.lake import Lake
from meterlake.publish import duckdb_db, registry
from meterlake.schemas import Column, Table
from meterlake.schemas.meter_daily import METER_DAILY

D1 = dt.date(2026, 1, 1)


def connect(path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path), read_only=True)


def test_default_path_is_beside_the_lake(tmp_path: Path) -> None:
    assert duckdb_db.default_path(tmp_path / "lake") == tmp_path / "lake.duckdb"


def test_one_view_per_declared_table_plus_undeclared_lake_tables(lake: Lake, tmp_path: Path) -> None:
    extra = lake.root / "marts" / "scratch" / "date=2026-01-01"
    extra.mkdir(parents=True)
    pl.DataFrame({"x": [1]}).write_parquet(extra / "part-0.parquet")

    summary = duckdb_db.build_reporting_db(lake)

    expected = (
        {f"main.{t.name}" for t in registry.tables("marts")}
        | {f"clean.{t.name}" for t in registry.tables("clean")}
        | {"main.scratch"}
    )
    assert set(summary.views) == expected
    assert summary.views["main.meter_daily"] == "parquet"
    assert summary.views["clean.curves"] == "empty"
    assert summary.notes == ["marts/scratch: no schema module declares this table; view has the files' columns"]
    with connect(summary.path) as con:
        listed = {
            f"{s}.{n}"
            for s, n in con.execute("SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        }
    assert listed == expected


def test_views_read_the_lake_with_typed_partitions(lake: Lake) -> None:
    path = duckdb_db.build_reporting_db(lake).path
    with connect(path) as con:
        got = con.sql("SELECT date, meter_id, kwh FROM meter_daily ORDER BY date, meter_id").pl()
        kinds = dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'area_loss_monthly'"
            ).fetchall()
        )
        month = con.execute("SELECT month, sum(loss_kwh) FROM area_loss_monthly GROUP BY month").fetchall()
        quarantine = con.execute(
            "SELECT dataset, count(*) FROM quarantine GROUP BY dataset ORDER BY dataset"
        ).fetchall()
    expected = pl.DataFrame(
        {
            "date": [D1, D1, D1, dt.date(2026, 1, 2), dt.date(2026, 1, 2)],
            "meter_id": ["m1", "m2", "m3", "m1", "m2"],
            "kwh": [1.5, 2.25, 10.0, 3.0, 4.25],
        }
    )
    assert_frame_equal(got, expected)
    assert kinds["month"] == "VARCHAR" and kinds["loss_rate"] == "DOUBLE"
    assert month == [("2026-01", 150.0)]
    # every file of a partition is read (ingest writes several per dataset); rows are not deduplicated here
    assert quarantine == [("curves", 3), ("purchases", 1)]


def test_columns_follow_the_contract_and_missing_ones_read_as_null(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    v1 = Table(
        "things",
        "test",
        (Column("date", pl.Date(), "d"), Column("kwh", pl.Float64(), "e")),
        key=("date",),
        partition_by="date",
    )
    lake.write_partition(v1, D1.isoformat(), pl.DataFrame({"date": [D1], "kwh": [1.0]}))
    v2 = Table(
        "things",
        "test",
        (
            Column("date", pl.Date(), "d"),
            Column("thing_id", pl.String(), "id", zh="编号"),
            Column("kwh", pl.Float64(), "e"),
        ),
        key=("date",),
        partition_by="date",
    )
    path = duckdb_db.build_reporting_db(lake, tmp_path / "r.duckdb", tables=[v2]).path
    with connect(path) as con:
        got = con.sql("SELECT * FROM things").pl()
        comment = con.execute(
            "SELECT comment FROM duckdb_columns() WHERE table_name = 'things' AND column_name = 'thing_id'"
        ).fetchone()
    assert_frame_equal(
        got,
        pl.DataFrame(
            {"date": [D1], "thing_id": [None], "kwh": [1.0]},
            schema={"date": pl.Date, "thing_id": pl.String, "kwh": pl.Float64},
        ),
    )
    assert comment == ("编号 | id",)


def test_a_declared_table_without_data_is_an_empty_view_of_its_types(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    path = duckdb_db.build_reporting_db(lake, tables=[METER_DAILY]).path
    with connect(path) as con:
        got = con.sql("SELECT * FROM meter_daily").pl()
    assert got.height == 0
    assert got.columns == METER_DAILY.names
    assert got.schema["date"] == pl.Date and got.schema["kwh"] == pl.Float64


def test_rebuild_replaces_the_file_atomically_and_leaves_nothing_behind(lake: Lake) -> None:
    first = duckdb_db.build_reporting_db(lake).path
    inode = first.stat().st_ino
    reader = connect(first)  # an analyst with the old file open keeps reading it
    # a table appears: its view is new, so the file is rebuilt
    extra = lake.root / "marts" / "scratch" / "date=2026-01-01"
    extra.mkdir(parents=True)
    pl.DataFrame({"x": [1]}).write_parquet(extra / "part-0.parquet")
    second = duckdb_db.build_reporting_db(lake)
    assert second.path == first and second.rebuilt
    assert first.stat().st_ino != inode  # a new file moved into place, not edited in place
    assert reader.execute("SELECT count(*) FROM meter_daily").fetchone() == (5,)
    reader.close()
    assert sorted(p.name for p in first.parent.iterdir() if p.name.startswith(".")) == []


def test_unchanged_views_leave_the_file_alone_and_new_partitions_show_up(lake: Lake, meter_day) -> None:
    first = duckdb_db.build_reporting_db(lake)
    state = first.path.stat()
    # a new day of meter_daily: same columns, so the same views
    lake.write_partition(METER_DAILY, "2026-01-03", meter_day(dt.date(2026, 1, 3), ["m1"], [7.0]))
    again = duckdb_db.build_reporting_db(lake)
    assert not again.rebuilt and again.views == first.views
    after = again.path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (state.st_ino, state.st_mtime_ns)
    with connect(again.path) as con:
        assert con.execute("SELECT count(*), sum(kwh) FROM meter_daily").fetchone() == (6, 28.0)


def test_a_touched_or_missing_file_or_a_moved_lake_is_rebuilt(lake: Lake, tmp_path: Path) -> None:
    path = duckdb_db.build_reporting_db(lake).path
    # someone wrote into the file (a user's own table): the publish does not trust it
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE mine AS SELECT 1 AS x")
    assert duckdb_db.build_reporting_db(lake).rebuilt
    assert not duckdb_db.build_reporting_db(lake).rebuilt
    path.unlink()
    assert duckdb_db.build_reporting_db(lake).rebuilt and path.is_file()
    # the same lake published to another file
    assert duckdb_db.build_reporting_db(lake, tmp_path / "other.duckdb").rebuilt
    assert duckdb_db.build_reporting_db(lake, path).rebuilt


def test_a_new_column_in_the_files_rebuilds(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    things = Table(
        "things",
        "test",
        (Column("date", pl.Date(), "d"), Column("kwh", pl.Float64(), "e")),
        key=("date",),
        partition_by="date",
    )
    lake.write_partition(things, D1.isoformat(), pl.DataFrame({"date": [D1], "kwh": [1.0]}))
    out = tmp_path / "r.duckdb"
    assert duckdb_db.build_reporting_db(lake, out, tables=[things]).rebuilt
    assert not duckdb_db.build_reporting_db(lake, out, tables=[things]).rebuilt
    # an undeclared extra column in a new partition: the view lists it, so it changes
    d2 = dt.date(2026, 1, 2)
    newer = lake.root / "marts" / "things" / f"date={d2}"
    newer.mkdir()
    pl.DataFrame({"kwh": [2.0], "note": ["x"]}).write_parquet(newer / "part-0.parquet")
    assert duckdb_db.build_reporting_db(lake, out, tables=[things]).rebuilt
    with connect(out) as con:
        assert con.sql("SELECT * FROM things ORDER BY date").fetchall() == [(D1, 1.0, None), (d2, 2.0, "x")]


def test_no_card_number_in_any_view(lake: Lake) -> None:
    # even a file no contract declares, carrying card numbers, does not expose them
    stray = lake.root / "marts" / "stray_purchases" / "date=2026-01-01"
    stray.mkdir(parents=True)
    pl.DataFrame({"txn_id": ["t1"], "card_no": ["6222021234567890"]}).write_parquet(stray / "part-0.parquet")
    path = duckdb_db.build_reporting_db(lake).path
    with connect(path) as con:
        assert (
            con.execute(
                "SELECT table_schema, table_name FROM information_schema.columns WHERE column_name = 'card_no'"
            ).fetchall()
            == []
        )
        purchases = con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'clean' AND table_name = 'purchases'"
        ).fetchall()
    assert ("card_last4",) in purchases and ("card_token",) in purchases
    with connect(path) as con:
        assert con.execute("SELECT * FROM stray_purchases").fetchall() == [("t1", dt.date(2026, 1, 1))]


@pytest.mark.parametrize(
    ("dtype", "sql"),
    [
        pytest.param(pl.String(), "VARCHAR", id="string"),
        pytest.param(pl.Datetime("us"), "TIMESTAMP", id="timestamp"),
        pytest.param(pl.Int8(), "TINYINT", id="int8"),
        pytest.param(pl.List(pl.String()), "VARCHAR[]", id="list"),
        pytest.param(pl.Decimal(12, 2), "DECIMAL(12, 2)", id="decimal"),
    ],
)
def test_duckdb_types(dtype: pl.DataType, sql: str) -> None:
    assert duckdb_db.duckdb_type(dtype) == sql
