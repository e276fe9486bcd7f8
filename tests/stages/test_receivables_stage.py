"""The receivables stage on a hand-made lake: what it writes, restated bills, identical reruns."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from meterlake import pipeline
from meterlake.lake import Lake
from meterlake.schemas.archive import LANDING as ARCHIVE
from meterlake.schemas.bills_monthly import BILLS_MONTHLY
from meterlake.schemas.meter_daily import METER_DAILY
from meterlake.schemas.payments import LANDING as PAYMENTS
from meterlake.schemas.receivables_monthly import RECEIVABLES_MONTHLY
from meterlake.schemas.recovery_monthly import RECOVERY_MONTHLY
from meterlake.settings import Settings

REPO = Path(__file__).resolve().parents[2]
D = dt.date


def write_bill(lake: Lake, month: str, amount: float) -> None:
    lake.write_partition(
        BILLS_MONTHLY,
        month,
        pl.DataFrame(
            {
                "month": [month],
                "customer_id": ["C1"],
                "period_end": [D(int(month[:4]), int(month[5:]), 28)],
                "area_id": [None],
                "customer_class": ["commercial"],
                "prepay": [0],
                "amount_yuan": [amount],
            }
        ).pipe(
            lambda f: f.with_columns(
                pl.lit(None, BILLS_MONTHLY.schema[c]).alias(c) for c in BILLS_MONTHLY.names if c not in f.columns
            )
        ),
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    lake = Lake(tmp_path / "lake")
    archive = pl.DataFrame(
        {
            "snapshot_date": [D(2026, 1, 1)],
            "meter_id": ["M1"],
            "customer_id": ["C1"],
            "feeder_id": ["F9"],
            "role": ["customer"],
            "prepay": [0],
            "org_id": ["ORG02"],
        }
    )
    lake.write_partition(
        ARCHIVE.clean,
        "2026-01-01",
        archive.with_columns(
            pl.lit(None, ARCHIVE.clean.schema[c]).alias(c) for c in ARCHIVE.clean.names if c not in archive.columns
        ),
    )
    write_bill(lake, "2026-01", 1000.0)
    # meter_daily through 2026-02-28 (the stage ledgers the months the lake holds)
    md = pl.DataFrame({"date": [D(2026, 2, 28)], "meter_id": ["M1"]})
    lake.write_partition(
        METER_DAILY,
        "2026-02-28",
        md.with_columns(pl.lit(None, METER_DAILY.schema[c]).alias(c) for c in METER_DAILY.names if c not in md.columns),
    )
    pays = pl.DataFrame(
        {
            "txn_id": ["T1"],
            "txn_type": ["payment"],
            "customer_id": ["C1"],
            "paid_at": [dt.datetime(2026, 2, 10, 9)],
            "amount_yuan": [600.0],
            "channel": ["bank"],
            "paid_date": [D(2026, 2, 10)],
        }
    )
    lake.write_partition(
        PAYMENTS.clean,
        "2026-02-10",
        pays.with_columns(
            pl.lit(None, PAYMENTS.clean.schema[c]).alias(c) for c in PAYMENTS.clean.names if c not in pays.columns
        ),
    )
    return Settings(lake=lake.root, landing=tmp_path / "landing", config_dir=REPO / "config")


def run(settings: Settings):
    return pipeline.run_stage(settings, "receivables", [D(2026, 1, 1)], run_id="test")


def test_writes_receivables_recovery_credit_and_dunning(settings: Settings) -> None:
    result = run(settings)
    lake = Lake(settings.lake)
    feb = lake.scan(RECEIVABLES_MONTHLY, ["2026-02"]).collect().row(0, named=True)
    # 1000 billed on 02-01, 600 paid on 02-10: 400 open since 02-20 -> 8 days at 02-28;
    # late fee 400 x 8 d x 2‰ (commercial, this year's bill) = 6.40
    assert (feb["billed_yuan"], feb["paid_yuan"], feb["arrears_yuan"], feb["overdue_days"]) == (1000.0, 600.0, 400.0, 8)
    assert (feb["late_fee_yuan"], feb["feeder_id"], feb["org_id"]) == (6.40, "F9", "ORG02")
    rec = lake.scan(RECOVERY_MONTHLY, ["2026-01"]).collect()
    # a 10 kV customer (no area): a feeder row and its unit's row, 600 of 1000 by the due date
    assert rec.select("scope", "scope_id", "collected_yuan", "recovery_rate", "below_target").rows() == [
        ("feeder", "F9", 600.0, 0.6, True),
        ("org", "ORG02", 600.0, 0.6, True),
    ]
    assert result.rows["dunning_list"] == 2  # 02-21 (1 day) and 02-28 (8 days)
    assert any("below the target" in n for n in result.notes)


def test_a_restated_bill_is_visible_and_reruns_are_identical(settings: Settings) -> None:
    run(settings)
    lake = Lake(settings.lake)
    before = {p: p.read_bytes() for p in sorted((lake.root / "marts").rglob("*.parquet"))}
    run(settings)
    assert before == {p: p.read_bytes() for p in sorted((lake.root / "marts").rglob("*.parquet"))}
    write_bill(lake, "2026-01", 1050.0)  # a late reading adds 50 yuan to January
    run(settings)
    feb = lake.scan(RECEIVABLES_MONTHLY, ["2026-02"]).collect().row(0, named=True)
    assert (feb["billed_yuan"], feb["restated_yuan"], feb["arrears_yuan"]) == (1050.0, 50.0, 450.0)


def test_the_scope_of_a_month_is_read_from_the_snapshot_valid_on_its_last_day_alone(settings: Settings) -> None:
    """A snapshot of Feb 15 moves M1 to feeder F7: the ledger month February (valid on Feb 28:
    Feb 15's snapshot) gets F7, the consumption month January (Jan 31: Jan 1's) keeps F9, and
    the snapshot of Mar 1, after both, is read for neither."""
    lake = Lake(settings.lake)
    jan = lake.scan(ARCHIVE.clean, ["2026-01-01"]).collect()
    for snap, feeder in ((D(2026, 2, 15), "F7"), (D(2026, 3, 1), "F5")):
        lake.write_partition(
            ARCHIVE.clean, snap.isoformat(), jan.with_columns(snapshot_date=pl.lit(snap), feeder_id=pl.lit(feeder))
        )
    run(settings)
    got = lake.scan(RECEIVABLES_MONTHLY).select("month", "feeder_id").collect().sort("month").rows()
    assert got == [("2026-02", "F7")]  # January's bill is issued, and ledgered, in February
    rec = lake.scan(RECOVERY_MONTHLY, ["2026-01"]).collect()
    assert rec.filter(pl.col("scope") == "feeder")["scope_id"].to_list() == ["F9"]
    # the books' snapshot of a day: the latest on or before it, none before the first
    from meterlake.stages import receivables

    books = receivables.open_books(
        lake,
        receivables.ReceivablesConfig(),
        receivables.BillingConfig(),
        "2026-01",
        D(2026, 2, 28),
        lake.partitions(PAYMENTS.clean),
    )
    assert books.archive_on(D(2026, 2, 14)).select("feeder_id").collect().to_series().to_list() == ["F9"]
    assert books.archive_on(D(2026, 2, 15)).select("feeder_id").collect().to_series().to_list() == ["F7"]
    assert books.archive_on(D(2025, 12, 31)).collect().height == 0
