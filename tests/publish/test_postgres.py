"""PostgreSQL upserts against a real server (METERLAKE_TEST_PG_DSN), not a mock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import psycopg
import pytest
from psycopg import sql

from meterlake.lake import Lake
from meterlake.publish import postgres
from meterlake.publish.postgres import PublishError
from meterlake.schemas import Column, Table
from meterlake.schemas.area_loss_monthly import AREA_LOSS_MONTHLY
from meterlake.schemas.meter_daily import METER_DAILY
from meterlake.schemas.quarantine import QUARANTINE
from meterlake.settings import Settings

pytestmark = pytest.mark.postgres

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)

TABLES = [METER_DAILY, AREA_LOSS_MONTHLY, QUARANTINE]


def query(dsn: str, text: str, params: list | None = None) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(text, params or []).fetchall()


def totals(dsn: str, schema: str) -> dict[str, tuple | None]:
    s = sql.Identifier(schema)
    with psycopg.connect(dsn) as conn:
        return {
            "meter_daily": conn.execute(
                sql.SQL(
                    "SELECT count(*), count(DISTINCT (meter_id, date)), round(sum(kwh)::numeric, 2) FROM {}.meter_daily"
                ).format(s)
            ).fetchone(),
            "area_loss_monthly": conn.execute(
                sql.SQL("SELECT count(*), sum(supply_kwh), sum(loss_kwh) FROM {}.area_loss_monthly").format(s)
            ).fetchone(),
            "quarantine": conn.execute(
                sql.SQL(
                    "SELECT count(*), count(DISTINCT (dataset, source_file, coalesce(line, -1), reason)) FROM {}.quarantine"
                ).format(s)
            ).fetchone(),
        }


def test_publish_twice_gives_no_duplicates_and_the_same_totals(pg_dsn: str, pg_schema: str, lake: Lake) -> None:
    first = postgres.publish(pg_dsn, lake, [D1, D2], tables=TABLES, schema=pg_schema)
    after_first = totals(pg_dsn, pg_schema)
    second = postgres.publish(pg_dsn, lake, [D1, D2], tables=TABLES, schema=pg_schema)
    after_second = totals(pg_dsn, pg_schema)

    # by hand: 5 meter-days, 1.50 + 2.25 + 10.00 + 3.00 + 4.25 = 21.00 kWh
    assert after_first["meter_daily"] == (5, 5, pytest.approx(21.00))
    # supply 1000 + 500, loss 50 + 100
    assert after_first["area_loss_monthly"] == (2, 1500.0, 150.0)
    # curves: lines 3 and 7 (line 3 is in two files: one row); purchases: one whole-file row
    assert after_first["quarantine"] == (3, 3)
    assert after_second == after_first
    assert first.rows == second.rows == {"meter_daily": 5, "area_loss_monthly": 2, "quarantine": 3}
    assert sum(t.deleted for t in second.tables.values()) == 0


def test_rerun_after_the_lake_changed_updates_deletes_and_leaves_other_partitions(
    pg_dsn: str, pg_schema: str, lake: Lake, meter_day
) -> None:
    postgres.publish(pg_dsn, lake, [D1, D2], tables=[METER_DAILY], schema=pg_schema)
    # day 1 recomputed: m2 corrected, m3 left service
    lake.write_partition(METER_DAILY, D1.isoformat(), meter_day(D1, ["m1", "m2"], [1.5, 2.75]))
    summary = postgres.publish(pg_dsn, lake, [D1], tables=[METER_DAILY], schema=pg_schema)

    rows = query(pg_dsn, f'SELECT date, meter_id, kwh FROM "{pg_schema}".meter_daily ORDER BY date, meter_id')
    assert rows == [
        (D1, "m1", 1.5),
        (D1, "m2", 2.75),
        (D2, "m1", 3.0),
        (D2, "m2", 4.25),
    ]
    assert summary.tables["meter_daily"].deleted == 1


def test_a_date_absent_from_the_lake_is_emptied(pg_dsn: str, pg_schema: str, lake: Lake) -> None:
    postgres.publish(pg_dsn, lake, [D1, D2], tables=[METER_DAILY], schema=pg_schema)
    (lake.table_dir(METER_DAILY) / f"date={D2}" / "part-0.parquet").unlink()
    postgres.publish(pg_dsn, lake, [D2], tables=[METER_DAILY], schema=pg_schema)
    assert query(pg_dsn, f'SELECT DISTINCT date FROM "{pg_schema}".meter_daily') == [(D1,)]


def test_keys_are_primary_or_unique_nulls_not_distinct(pg_dsn: str, pg_schema: str, lake: Lake) -> None:
    postgres.publish(pg_dsn, lake, None, tables=TABLES, schema=pg_schema)
    defs = dict(
        query(
            pg_dsn,
            "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE connamespace = %s::regnamespace",
            [pg_schema],
        )
    )
    # meter_daily's key columns are declared non-nullable (date is the partition)
    assert defs[f"{pg_schema}.meter_daily"] == "PRIMARY KEY (date, meter_id)"
    # quarantine.line is empty for a whole-file problem: NULL must still collide
    assert defs[f"{pg_schema}.quarantine"] == "UNIQUE NULLS NOT DISTINCT (dataset, source_file, line, reason)"


def test_comments_carry_the_chinese_names(pg_dsn: str, pg_schema: str, lake: Lake) -> None:
    postgres.publish(pg_dsn, lake, [D1], tables=[AREA_LOSS_MONTHLY], schema=pg_schema)
    (table_comment,) = query(pg_dsn, "SELECT obj_description(%s::regclass)", [f"{pg_schema}.area_loss_monthly"])[0]
    (column_comment,) = query(
        pg_dsn,
        "SELECT col_description(%s::regclass, attnum) FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'loss_rate'",
        [f"{pg_schema}.area_loss_monthly"] * 2,
    )[0]
    assert table_comment.startswith("台区月线损: ")
    assert column_comment.startswith("线损率 | ")


def test_a_repeated_key_with_different_values_is_refused_naming_the_partition(
    pg_dsn: str, pg_schema: str, tmp_path, meter_day
) -> None:
    lake = Lake(tmp_path / "lake")
    frame = meter_day(D1, ["m1", "m1"], [1.0, 2.0])
    path = lake.table_dir(METER_DAILY) / f"date={D1}" / "part-0.parquet"
    lake.write_file(path, frame.drop("date"))
    with pytest.raises(PublishError, match=r"meter_daily/date=2026-01-01: the key \(date, meter_id\) must be unique"):
        postgres.publish(pg_dsn, lake, [D1], tables=[METER_DAILY], schema=pg_schema)


def test_new_contract_columns_are_added_and_lists_become_jsonb(pg_dsn: str, pg_schema: str, tmp_path) -> None:
    lake = Lake(tmp_path / "lake")
    v1 = Table(
        name="things",
        description="test table",
        columns=(
            Column("date", pl.Date(), "partition"),
            Column("thing_id", pl.String(), "key", nullable=False),
            Column("kwh", pl.Float64(), "energy", unit="kWh"),
        ),
        key=("thing_id",),
        partition_by="date",
    )
    v2 = Table(
        name="things",
        description="test table",
        columns=(*v1.columns, Column("reasons", pl.List(pl.String()), "why")),
        key=("thing_id",),
        partition_by="date",
    )
    lake.write_partition(v1, D1.isoformat(), pl.DataFrame({"date": [D1], "thing_id": ["t1"], "kwh": [1.25]}))
    postgres.publish(pg_dsn, lake, [D1], tables=[v1], schema=pg_schema)
    lake.write_partition(
        v2,
        D1.isoformat(),
        pl.DataFrame({"date": [D1, D1], "thing_id": ["t1", "t2"], "kwh": [1.25, None], "reasons": [["a", "b"], None]}),
    )
    summary = postgres.publish(pg_dsn, lake, [D1], tables=[v2], schema=pg_schema)
    assert summary.notes == [f"{pg_schema}.things: added column(s) reasons"]
    rows = query(pg_dsn, f'SELECT thing_id, kwh, reasons FROM "{pg_schema}".things ORDER BY thing_id')
    assert rows == [("t1", 1.25, ["a", "b"]), ("t2", None, None)]


def test_no_card_number_reaches_postgresql(pg_dsn: str, pg_schema: str, tmp_path) -> None:
    """The purchases-derived marts as published hold no card_no column and no 12+ digit string."""
    from meterlake.publish import registry

    lake = Lake(tmp_path / "lake")
    qdir = lake.table_dir(QUARANTINE) / "dataset=purchases"
    lake.write_file(
        qdir / "file-cccc.parquet",
        pl.DataFrame(
            {
                "source_file": ["purchases/p2.csv"],
                "line": [5],
                "reason": ["negative_amount"],
                "detail": ["amount_yuan: expected > 0, found -50"],
                "raw": ["T0001,purchase,,C01,M01,************3456,2026-01-01 09:00:00,-50,1,counter,op1"],
            }
        ),
    )
    marts = registry.tables("marts")
    postgres.publish(pg_dsn, lake, [D1], tables=marts, schema=pg_schema)
    assert (
        query(
            pg_dsn,
            "SELECT table_name FROM information_schema.columns WHERE table_schema = %s AND column_name = 'card_no'",
            [pg_schema],
        )
        == []
    )
    purchase_derived = [t for t in marts if t.name.startswith(("prepay", "recovery")) or t.name == "quarantine"]
    for table in purchase_derived:
        text_cols = [c.name for c in table.columns if c.dtype == pl.String and not c.name.endswith("_id")]
        for col in text_cols:
            hits = query(
                pg_dsn,
                sql.SQL("SELECT count(*) FROM {} WHERE {} ~ '[0-9]{{12,}}'")
                .format(sql.Identifier(pg_schema, table.name), sql.Identifier(col))
                .as_string(),
            )
            assert hits == [(0,)], f"{table.name}.{col} holds a 12+ digit string"


def test_dsn_comes_from_settings_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METERLAKE_PG_DSN", raising=False)
    monkeypatch.delenv("AIRFLOW_CTX_DAG_ID", raising=False)
    assert postgres.resolve_dsn(Settings(pg_dsn=None)) is None
    assert postgres.resolve_dsn(Settings(pg_dsn="postgresql://a@h/db")) == "postgresql://a@h/db"
    monkeypatch.setenv("METERLAKE_PG_DSN", "postgresql://b@h/db")
    assert postgres.resolve_dsn(Settings()) == "postgresql://b@h/db"


def test_partitions_touched_by_dates() -> None:
    dates = [dt.date(2026, 1, 31), dt.date(2026, 2, 1)]
    lake = Lake(Path("/nonexistent"))
    assert postgres.partition_values(lake, METER_DAILY, dates) == (["2026-01-31", "2026-02-01"], False)
    assert postgres.partition_values(lake, AREA_LOSS_MONTHLY, dates) == (["2026-01", "2026-02"], False)
    # quarantine is partitioned by dataset: every partition present, and the set is complete
    assert postgres.partition_values(lake, QUARANTINE, dates) == ([], True)


def test_unreachable_server_is_a_one_line_error(tmp_path) -> None:
    with pytest.raises(PublishError, match="cannot connect to the reporting database"):
        postgres.publish(
            "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", Lake(tmp_path), [D1], tables=[METER_DAILY]
        )
