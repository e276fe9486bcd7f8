"""The payments the generator writes: behaviours in the truth, reversals that name their payment."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from meterlake.generate import generate


@pytest.fixture(scope="module")
def zone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "landing"
    generate(out, meters=800, days=31, start=dt.date(2026, 1, 1), seed=5)
    return out


def payments(zone: Path) -> pl.DataFrame:
    files = sorted((zone / "payments").glob("*.csv*"))
    frames = []
    for f in files:
        raw = f.read_bytes()
        if f.name.endswith(".gz"):
            import gzip

            raw = gzip.decompress(raw)
        for enc in ("utf-8-sig", "gb18030"):
            try:
                text = raw.decode(enc)
                break
            except UnicodeDecodeError:
                continue
        frames.append(pl.read_csv(text.encode(), infer_schema=False))
    aliases = {
        "交易流水号": "txn_id",
        "交易类型": "txn_type",
        "原交易流水号": "ref_txn_id",
        "用户编号": "customer_id",
        "缴费时间": "paid_at",
        "缴费金额": "amount_yuan",
        "电费年月": "bill_month",
        "缴费渠道": "channel",
        "操作员": "operator_id",
    }
    return pl.concat(
        [
            f.rename({k: v for k, v in aliases.items() if k in f.columns}).select(sorted(set(aliases.values())))
            for f in frames
        ]
    )


def test_truth_holds_every_behaviour_and_payments_follow_it(zone: Path) -> None:
    truth = pl.read_csv(zone / "_truth" / "payers.csv", schema_overrides={"customer_id": pl.String})
    assert set(truth["behaviour"]) == {"on_time", "overpayer", "late", "chronic", "bank_10kv"}
    p = payments(zone).join(truth, on="customer_id", how="left")
    assert p["behaviour"].null_count() == 0  # only post-paid customers pay
    day = pl.col("paid_at").str.slice(0, 10).str.to_date()
    first = p.filter(pl.col("txn_type") == "payment").group_by("customer_id", "behaviour").agg(day.min().alias("d"))
    # January's bill is issued 02-01 and due 02-20: on-time payers pay by then, late ones after
    on_time = first.filter(pl.col("behaviour").is_in(["on_time", "overpayer"]))["d"]
    assert on_time.max() <= dt.date(2026, 2, 20) and on_time.min() >= dt.date(2026, 2, 2)
    assert first.filter(pl.col("behaviour") == "late")["d"].min() > dt.date(2026, 2, 20)
    # 10 kV customers pay by bank and name the month
    bank = p.filter(pl.col("behaviour") == "bank_10kv")
    assert set(bank["channel"]) == {"bank"} and bank["bill_month"].null_count() == 0
    assert {"wechat", "alipay", "withholding"} <= set(p["channel"])


def test_each_reversal_names_an_earlier_payment_of_its_customer(zone: Path) -> None:
    p = payments(zone)
    rev = p.filter(pl.col("txn_type") == "reversal")
    assert rev.height > 0
    joined = rev.join(p.filter(pl.col("txn_type") == "payment"), left_on="ref_txn_id", right_on="txn_id", suffix="_p")
    assert joined.height == rev.height
    assert (joined["customer_id"] == joined["customer_id_p"]).all()
    assert (joined["amount_yuan"] == joined["amount_yuan_p"]).all()
    assert (joined["paid_at_p"] < joined["paid_at"]).all()
