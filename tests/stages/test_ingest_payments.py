"""Ingest of post-paid payments: Chinese headers, repeats, quarantine reasons, late payments of a reversal."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import polars as pl

from meterlake import pipeline
from meterlake.lake import Lake
from meterlake.schemas import LANDINGS
from meterlake.settings import Settings

ARCHIVE = (
    "snapshot_date,meter_id,customer_id,area_id,feeder_id,role,customer_class,tariff_id,multiplier,register_max,prepay\n"
    "2026-02-01,0001,C1,A1,F1,customer,resident,RES_TIER,1,100000,0\n"
    "2026-02-01,0002,C2,A1,F1,customer,resident,RES_TIER,1,100000,1\n"
)
HEADER_ZH = "交易流水号,交易类型,原交易流水号,用户编号,缴费时间,缴费金额,电费年月,缴费渠道,操作员\n"
DAY1 = (
    HEADER_ZH
    + "P1,payment,,C1,2026-02-10 09:00:00,100.00,2026-01,wechat,\n"  # line 2: clean
    + "P2,payment,,C1,2026-02-10 10:00:00,0,,wechat,\n"  # 3: zero amount
    + "P3,payment,,C9,2026-02-10 10:00:00,50.00,,alipay,\n"  # 4: unknown customer
    + "P4,payment,,C2,2026-02-10 11:00:00,50.00,,counter,CZ001\n"  # 5: a prepay customer
    + "R1,reversal,P1,C1,2026-02-10 12:00:00,100.00,,wechat,\n"  # 6: reverses P1
    + "R2,reversal,P1,C1,2026-02-10 13:00:00,100.00,,wechat,\n"  # 7: P1 already reversed
    + "R3,reversal,PX,C1,2026-02-10 13:00:00,100.00,,wechat,\n"  # 8: no such payment
    + "P5,payment,,C1,2026-02-10 14:00:00,30.00,2026-13,wechat,\n"  # 9: not a month
    + "P6,payment,,C1,2026-02-10 15:00:00,30.00,2026-06,withholding,\n"  # 10: no bill yet: clean (held)
    + "P1,payment,,C1,2026-02-10 09:00:00,100.00,2026-01,wechat,\n"  # 11: identical repeat of P1
)
D = dt.date(2026, 2, 10)


def put(landing: Path, rel: str, text: str, when: str, encoding: str = "utf-8") -> None:
    path = landing / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    ts = dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC).timestamp()
    os.utime(path, (ts, ts))


def ingest(landing: Path, lake: Path, run_id: str) -> pipeline.StageResult:
    return pipeline.run_stage(Settings(landing=landing, lake=lake), "ingest", [D], run_id, progress=lambda _m: None)


def quarantined(lake: Path) -> pl.DataFrame:
    q = pl.read_parquet(lake / "marts" / "quarantine" / "dataset=payments" / "*.parquet")
    return q.sort("line")


def test_payments_quarantine_reasons_and_clean_rows(tmp_path: Path) -> None:
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    put(landing, "archive/a.csv", ARCHIVE, "2026-02-01 00:00:00")
    put(landing, "payments/p.csv", DAY1, "2026-02-11 02:00:00", encoding="gbk")
    result = ingest(landing, lake, "r1")
    clean = Lake(lake).scan(LANDINGS["payments"].clean).collect().sort("source_line")
    assert clean.select("txn_id", "source_line", "bill_month").rows() == [
        ("R1", 6, None),
        ("P6", 10, "2026-06"),
        ("P1", 11, "2026-01"),  # the later identical copy carries the lineage
    ]
    assert dict(quarantined(lake).select("line", "reason").rows()) == {
        3: "negative_amount",
        4: "unknown_customer",
        5: "prepay_customer",
        7: "reversal_repeated",
        8: "reversal_unknown_ref",
        9: "bad_month",
    }
    (acc,) = [a for a in result.details["accounting"] if a["dataset"] == "payments"]
    assert (acc["read"], acc["clean"], acc["quarantined"], acc["duplicate"], acc["unaccounted"]) == (10, 3, 6, 1, 0)


def test_a_payment_delivered_after_its_reversal_clears_the_reversal(tmp_path: Path) -> None:
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    put(landing, "archive/a.csv", ARCHIVE, "2026-02-01 00:00:00")
    put(
        landing,
        "payments/late_reversal.csv",
        HEADER_ZH + "R9,reversal,P9,C1,2026-02-12 09:00:00,80.00,,bank,\n",
        "2026-02-13 02:00:00",
    )
    ingest(landing, lake, "r1")
    assert quarantined(lake)["reason"].to_list() == ["reversal_unknown_ref"]
    # the payment it cancels arrives later (a late file of the 10th): the reversal's day is rebuilt
    put(
        landing,
        "payments/late_payment.csv",
        HEADER_ZH + "P9,payment,,C1,2026-02-10 09:00:00,80.00,,bank,\n",
        "2026-02-14 02:00:00",
    )
    ingest(landing, lake, "r2")
    clean = Lake(lake).scan(LANDINGS["payments"].clean).collect()
    assert sorted(clean["txn_id"].to_list()) == ["P9", "R9"]
    assert not list((lake / "marts" / "quarantine" / "dataset=payments").glob("*.parquet"))


def test_a_landing_zone_without_payments_is_valid(tmp_path: Path) -> None:
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    put(landing, "archive/a.csv", ARCHIVE, "2026-02-01 00:00:00")
    result = ingest(landing, lake, "r1")
    assert "payments" not in {a["dataset"] for a in result.details["accounting"]}
