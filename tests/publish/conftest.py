"""A small hand-made lake for the publish tests, and the PostgreSQL fixture.

Values are chosen so the totals can be checked by hand:

* meter_daily 2026-01-01: kwh 1.50 + 2.25 + 10.00 = 13.75; 2026-01-02: 3.00 + 4.25 = 7.25
* area_loss_monthly 2026-01: supply 1000.00 + 500.00, loss 50.00 + 100.00
* quarantine: dataset=curves holds two files (ingest writes one per landing file)
  that repeat one row; dataset=purchases has a whole-file problem (line empty)
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from meterlake.lake import Lake
from meterlake.schemas.area_loss_monthly import AREA_LOSS_MONTHLY
from meterlake.schemas.meter_daily import METER_DAILY
from meterlake.schemas.quarantine import QUARANTINE

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)


def filled(table, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with the contract's other columns as typed nulls."""
    missing = [c for c in table.names if c not in frame.columns]
    return frame.with_columns(pl.lit(None).cast(table.schema[c]).alias(c) for c in missing)


def meter_day(day: dt.date, meters: list[str], kwh: list[float]) -> pl.DataFrame:
    return filled(
        METER_DAILY,
        pl.DataFrame(
            {
                "date": [day] * len(meters),
                "meter_id": meters,
                "kwh": kwh,
                "quality": ["actual"] * len(meters),
                "customer_id": [f"c{m[1:]}" for m in meters],
            }
        ),
    )


def build_lake(root: Path) -> Lake:
    lake = Lake(root)
    lake.write_partition(METER_DAILY, D1.isoformat(), meter_day(D1, ["m1", "m2", "m3"], [1.5, 2.25, 10.0]))
    lake.write_partition(METER_DAILY, D2.isoformat(), meter_day(D2, ["m1", "m2"], [3.0, 4.25]))
    lake.write_partition(
        AREA_LOSS_MONTHLY,
        "2026-01",
        filled(
            AREA_LOSS_MONTHLY,
            pl.DataFrame(
                {
                    "month": ["2026-01", "2026-01"],
                    "area_id": ["A1", "A2"],
                    "area_class": ["default", "default"],
                    "supply_kwh": [1000.0, 500.0],
                    "sales_kwh": [950.0, 400.0],
                    "loss_kwh": [50.0, 100.0],
                    "loss_rate": [0.05, 0.2],
                    "status": ["normal", "high"],
                }
            ),
        ),
    )
    # quarantine as ingest writes it: several files per dataset partition
    qdir = lake.table_dir(QUARANTINE)
    rows = pl.DataFrame(
        {
            "source_file": ["curves/c1.csv", "curves/c1.csv"],
            "line": [3, 7],
            "reason": ["bad_number", "field_count"],
            "detail": ["p5: expected a number, found 'x'", "expected 98 fields, found 97"],
            "raw": ["m1,2026-01-01,x", "m2,2026-01-01"],
        },
        schema={"source_file": pl.String, "line": pl.Int64, "reason": pl.String, "detail": pl.String, "raw": pl.String},
    )
    lake.write_file(qdir / "dataset=curves" / "file-aaaa.parquet", rows)
    lake.write_file(qdir / "dataset=curves" / "date-2026-01-01.parquet", rows.head(1))  # a repeat of line 3
    lake.write_file(
        qdir / "dataset=purchases" / "file-bbbb.parquet",
        pl.DataFrame(
            {
                "source_file": ["purchases/p1.csv"],
                "line": [None],
                "reason": ["missing_columns"],
                "detail": ["missing column(s) txn_id"],
                "raw": [None],
            },
            schema=rows.schema,
        ),
    )
    return lake


@pytest.fixture(name="meter_day")
def meter_day_fixture():
    """The ``meter_day(day, meters, kwh)`` frame builder, for tests that rewrite a day."""
    return meter_day


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return build_lake(tmp_path / "lake")


@pytest.fixture
def pg_schema(pg_dsn: str) -> Iterator[str]:
    """A fresh schema per test, dropped afterwards (tests can run side by side)."""
    import psycopg
    from psycopg import sql

    name = f"mlt_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
