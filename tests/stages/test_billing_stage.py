"""The billing stage on a small hand-made lake: what it writes, reruns, carried months."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from meterlake import pipeline
from meterlake.lake import Lake
from meterlake.schemas.bills_monthly import BILLS_MONTHLY
from meterlake.schemas.loss_diagnosis import LOSS_DIAGNOSIS
from meterlake.schemas.meter_daily import METER_DAILY
from meterlake.schemas.prepay_daily import PREPAY_DAILY
from meterlake.schemas.prepay_findings import PREPAY_FINDINGS
from meterlake.schemas.purchases import LANDING as PURCHASES
from meterlake.schemas.recovery_monthly import RECOVERY_MONTHLY
from meterlake.settings import Settings
from meterlake.stages import StageError

REPO = Path(__file__).resolve().parents[2]
JAN = [dt.date(2026, 1, d) for d in (1, 2, 3)]
FEB1 = dt.date(2026, 2, 1)


def meter_day(day: dt.date, meter: str, kwh: float, **kw) -> dict:
    row = {
        "date": day,
        "meter_id": meter,
        "customer_id": None,
        "area_id": "A1",
        "feeder_id": "F1",
        "role": "customer",
        "customer_class": "resident",
        "tariff_id": "RES_TIER",
        "prepay": 0,
        "multiplier": 1.0,
        "kwh": kwh,
        "kwh_sharp": 0.0,
        "kwh_peak": 0.0,
        "kwh_flat": kwh,
        "kwh_valley": 0.0,
        "reverse_kwh": 0.0,
        "quality": "actual",
        "method": "register",
        "curve_kwh": None,
        "curve_slots_read": 96,
        "register_read": True,
        "remaining_yuan": None,
    }
    row.update(kw)
    return row


# C1: post-paid RES_TIER. C2: prepay AGR_FLAT (0.50), meter balance read every day.
C1 = {"customer_id": "C1"}
C2 = {"customer_id": "C2", "tariff_id": "AGR_FLAT", "customer_class": "agricultural", "prepay": 1}


def write_days(lake: Lake, rows: list[dict]) -> None:
    frame = pl.DataFrame(rows, schema=METER_DAILY.schema)
    for (day,), part in frame.partition_by("date", as_dict=True).items():
        lake.write_partition(METER_DAILY, day.isoformat(), part)


def write_purchases(lake: Lake, rows: list[dict]) -> None:
    base = {
        "ref_txn_id": None,
        "channel": "counter",
        "operator_id": "OP1",
        "card_last4": "1234",
        "card_token": "tok",
        "source_file": "purchases/p.csv",
        "delivered_at": dt.datetime(2026, 2, 2),
    }
    frame = pl.DataFrame([{**base, **r} for r in rows], schema=PURCHASES.clean.schema)
    for (day,), part in frame.partition_by("purchase_date", as_dict=True).items():
        lake.write_partition(PURCHASES.clean, day.isoformat(), part)


def jan_rows(c1_jan3: float = 800.0, c2_jan3: float = 20.0) -> list[dict]:
    return [
        meter_day(JAN[0], "M1", 1000.0, **C1),
        meter_day(JAN[1], "M1", 1000.0, **C1),
        meter_day(JAN[2], "M1", c1_jan3, **C1),
        # the prepay meter: 100.00 at 24:00 on the 1st (anchor); +50 on the 2nd
        meter_day(JAN[0], "M2", 6.0, remaining_yuan=100.0, **C2),
        meter_day(JAN[1], "M2", 10.0, remaining_yuan=145.0, **C2),
        meter_day(JAN[2], "M2", c2_jan3, remaining_yuan=135.0, **C2),
        # the area master is never billed
        meter_day(JAN[0], "MASTER", 5000.0, role="area_master", tariff_id=None),
    ]


FEB_ROWS = [meter_day(FEB1, "M1", 100.0, **C1), meter_day(FEB1, "M2", 4.0, remaining_yuan=133.0, **C2)]


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    lake = Lake(tmp_path / "lake")
    write_days(lake, jan_rows())
    write_purchases(
        lake,
        [
            {
                "txn_id": "T1",
                "txn_type": "purchase",
                "customer_id": "C2",
                "meter_id": "M2",
                "purchase_time": dt.datetime(2026, 1, 2, 9),
                "amount_yuan": 50.0,
                "purchase_seq": 3,
                "purchase_date": JAN[1],
                "source_line": 2,
            }
        ],
    )
    return lake


@pytest.fixture
def settings(lake: Lake) -> Settings:
    return Settings(lake=lake.root, landing=lake.root.parent / "landing", config_dir=REPO / "config")


def run(settings: Settings, dates: list[dt.date]):
    return pipeline.run_stage(settings, "billing", dates, run_id="test")


def read(lake: Lake, table, value: str) -> pl.DataFrame:
    return pl.read_parquet(lake.partition_path(table, value))


def test_writes_bills_prepay_and_findings_then_receivables_the_recovery(lake, settings) -> None:
    result = run(settings, JAN)
    assert result.rows == {"bills_monthly": 2, "prepay_daily": 3, "prepay_findings": 0}

    bills = lake.scan(BILLS_MONTHLY).collect().sort("customer_id")
    # C1: 2800 kWh: 2760 x 0.538 + 40 x 0.588 = 1484.88 + 23.52 = 1508.40
    # C2: 36 kWh x 0.50 = 18.00
    expected = pl.DataFrame(
        {
            "month": ["2026-01", "2026-01"],
            "customer_id": ["C1", "C2"],
            "kwh_total": [2800.0, 36.0],
            "kwh_tier1": [2760.0, 36.0],
            "kwh_tier2": [40.0, 0.0],
            "amount_yuan": [1508.40, 18.00],
            "status": ["ok", "ok"],
        }
    )
    assert_frame_equal(bills.select(expected.columns), expected)

    prepay = lake.scan(PREPAY_DAILY).collect().sort("date")
    # 1st: anchor 100; 2nd: 100 + 50 - 5 = 145; 3rd: 145 - 10 = 135 (meter agrees)
    assert prepay.select("date", "purchases_yuan", "consumption_yuan", "balance_yuan", "status").rows() == [
        (JAN[0], 0.0, 3.0, 100.0, "ok"),
        (JAN[1], 50.0, 5.0, 145.0, "ok"),
        (JAN[2], 0.0, 10.0, 135.0, "ok"),
    ]
    assert lake.partitions(PREPAY_FINDINGS) == [d.isoformat() for d in JAN]

    pipeline.run_stage(settings, "receivables", JAN, run_id="test")
    rec = read(lake, RECOVERY_MONTHLY, "2026-01").filter(pl.col("scope") == "area")
    # C1's post-paid 1508.40 is not paid (no payments): collected 18.00 of the prepay bill
    assert rec.select(
        "area_id",
        "customers_billed",
        "billed_yuan",
        "prepay_billed_yuan",
        "prepay_purchases_yuan",
        "arrears_customers",
        "collected_yuan",
    ).rows() == [("A1", 2, 1526.40, 18.0, 50.0, 1, 18.0)]


def test_rerun_writes_identical_files(lake, settings) -> None:
    run(settings, JAN)
    files = sorted(p for p in (lake.root / "marts").rglob("*.parquet"))
    before = {p: p.read_bytes() for p in files}
    run(settings, JAN)
    after = {p: p.read_bytes() for p in sorted((lake.root / "marts").rglob("*.parquet"))}
    assert before == after


def test_february_tiers_start_from_januarys_kwh(lake, settings) -> None:
    write_days(lake, FEB_ROWS)
    run(settings, [FEB1])
    feb = read(lake, BILLS_MONTHLY, "2026-02").sort("customer_id")
    # C1 stands at 2800 kWh: February's 100 kWh are tier 2: 100 x 0.588 = 58.80
    assert feb.select("customer_id", "kwh_tier2", "amount_yuan").rows() == [("C1", 100.0, 58.80), ("C2", 0.0, 2.0)]
    # the prepay balance carries over from January: 135 - 2 = 133
    assert read(lake, PREPAY_DAILY, FEB1.isoformat())["balance_yuan"].to_list() == [133.0]


def test_rebuilding_january_rebuilds_later_months_and_days(lake, settings) -> None:
    write_days(lake, FEB_ROWS)
    run(settings, [*JAN, FEB1])
    # a late correction of 3 January: C1 2800 kWh instead of 800; C2 30 kWh instead of 20
    write_days(lake, [r for r in jan_rows(c1_jan3=2800.0, c2_jan3=30.0) if r["date"] == JAN[2]])
    result = run(settings, [JAN[2]])
    # C1 now has 4800 kWh in January: February's 100 kWh are tier 3: 100 x 0.838 = 83.80
    feb = read(lake, BILLS_MONTHLY, "2026-02").filter(pl.col("customer_id") == "C1")
    assert feb.select("kwh_tier3", "amount_yuan").row(0) == (100.0, 83.80)
    # January: 2760 x 0.538 + 2040 x 0.588 = 1484.88 + 1199.52 = 2684.40
    jan = read(lake, BILLS_MONTHLY, "2026-01").filter(pl.col("customer_id") == "C1")
    assert jan["amount_yuan"].item() == 2684.40
    # the balance of 1 February follows: 3rd 145 - 15 = 130 (meter says 135: mismatch); 1 Feb 128
    assert read(lake, PREPAY_DAILY, JAN[2].isoformat()).select("balance_yuan", "status").row(0) == (130.0, "mismatch")
    assert read(lake, PREPAY_DAILY, FEB1.isoformat())["balance_yuan"].to_list() == [128.0]
    assert result.dates == [FEB1]
    assert sorted(result.details["months"]) == ["2026-01", "2026-02"]


def test_purchase_findings_land_on_their_date(lake, settings) -> None:
    write_purchases(
        lake,
        [
            {
                "txn_id": "T2",
                "txn_type": "purchase",
                "customer_id": "C2",
                "meter_id": "M2",
                "purchase_time": dt.datetime(2026, 1, 3, 9),
                "amount_yuan": 10.0,
                "purchase_seq": 5,
                "purchase_date": JAN[2],
                "source_line": 2,
            }
        ],
    )
    run(settings, JAN)
    found = read(lake, PREPAY_FINDINGS, JAN[2].isoformat())
    assert found.select("rule", "txn_id").rows() == [("prepay.purchase.seq_gap", "T2")]
    # the purchase is in the balance: 145 + 10 - 10 = 145, the meter says 135 -> mismatch
    assert read(lake, PREPAY_DAILY, JAN[2].isoformat()).select("purchases_yuan", "balance_yuan", "status").row(0) == (
        10.0,
        145.0,
        "mismatch",
    )


def test_thresholds_come_from_the_users_config_dir(lake, settings, tmp_path) -> None:
    user = tmp_path / "conf"
    user.mkdir()
    shutil.copy(REPO / "config" / "tariffs.toml", user / "tariffs.toml")
    text = (
        (REPO / "config" / "billing.toml")
        .read_text(encoding="utf-8")
        .replace("low_balance_yuan = 20.0", "low_balance_yuan = 200.0")
    )
    (user / "billing.toml").write_text(text, encoding="utf-8")
    run(settings.model_copy(update={"config_dir": user}), JAN)
    assert lake.scan(PREPAY_DAILY).collect()["status"].to_list() == ["low", "low", "low"]


def test_nothing_to_bill_is_a_note(tmp_path) -> None:
    settings = Settings(lake=tmp_path / "empty", config_dir=REPO / "config")
    result = run(settings, JAN)
    assert result.rows == {}
    assert result.notes == ["no meter_daily days to bill"]


def test_checkpoint_and_billed_months_give_what_a_full_recomputation_gives(lake, settings, tmp_path) -> None:
    write_days(lake, FEB_ROWS)
    # A: January first, then February alone: February starts from January's bills and
    # from the prepay balance of 3 January (the last day held before February)
    run(settings, JAN)
    result = run(settings, [FEB1])
    assert result.details["prepay_checkpoint"] == JAN[2].isoformat()
    # B: a fresh lake with the same days, everything in one run from the first day
    other = Lake(tmp_path / "other")
    shutil.copytree(lake.root / "clean", other.root / "clean")
    shutil.copytree(lake.root / "marts" / "meter_daily", other.root / "marts" / "meter_daily")
    run(settings.model_copy(update={"lake": other.root}), [*JAN, FEB1])
    for table, value in ((BILLS_MONTHLY, "2026-02"), (PREPAY_DAILY, FEB1.isoformat())):
        assert_frame_equal(read(lake, table, value), read(other, table, value), check_exact=False, abs_tol=1e-9)
    assert read(lake, PREPAY_DAILY, FEB1.isoformat()).select("balance_yuan", "balance_anchor_date").row(0) == (
        133.0,
        JAN[0],
    )


def test_a_month_without_customer_kwh_gets_no_bills_partition(lake, settings) -> None:
    write_days(lake, [meter_day(dt.date(2025, 12, 31), "MASTER", 10.0, role="area_master", tariff_id=None)])
    result = run(settings, [dt.date(2025, 12, 31), *JAN])
    assert lake.partitions(BILLS_MONTHLY) == ["2026-01"]
    assert "bills 2025-12: no customer kWh in the days held; not billed" in result.notes


def test_unknown_tariff_is_a_note_and_a_bad_tariff_file_a_stage_error(lake, settings, tmp_path) -> None:
    write_days(lake, [meter_day(JAN[0], "M9", 5.0, customer_id="C9", tariff_id="RES_2027")])
    result = run(settings, JAN)
    assert (
        "bills 2026-01: 1 without an amount: no tariff version in tariffs.toml for tariff_id RES_2027 on some day"
        in result.notes
    )
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "tariffs.toml").write_text(
        (REPO / "config" / "tariffs.toml")
        .read_text(encoding="utf-8")
        .replace("[2760.0, 4800.0]", "[4800.0, 2760.0]", 1),
        encoding="utf-8",
    )
    shutil.copy(REPO / "config" / "billing.toml", bad / "billing.toml")
    with pytest.raises(StageError, match=r"billing: .*tariffs\.toml: tariffs\.RES_TIER\.versions\.0: .*out of order"):
        run(settings.model_copy(update={"config_dir": bad}), JAN)


def test_the_loss_diagnosis_in_the_lake_holds_a_suspect_meters_bill(lake, settings) -> None:
    # the loss stage (run before billing) suspects M1 of a wrong multiplier in the window
    # ending 3 January: C1's January bill is held; C2's goes out
    suspect = dict.fromkeys(LOSS_DIAGNOSIS.names)
    suspect.update(
        date=JAN[2],
        area_id="A1",
        kind="multiplier_suspect",
        rule="loss.diagnosis.multiplier_suspect",
        severity="warning",
        meter_id="M1",
        customer_id="C1",
        score=0.9,
        rank=1,
        evidence="{}",
    )
    lake.write_partition(LOSS_DIAGNOSIS, JAN[2].isoformat(), pl.DataFrame([suspect], schema=LOSS_DIAGNOSIS.schema))
    result = run(settings, JAN)
    bills = read(lake, BILLS_MONTHLY, "2026-01").sort("customer_id")
    assert bills.select("customer_id", "status", "exception_reasons").rows() == [
        ("C1", "held", "multiplier_suspect"),
        ("C2", "ok", None),
    ]
    assert "1 bill(s) held for review (bills_monthly.status = held)" in result.notes
