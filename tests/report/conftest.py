"""Hand-made lakes for the report tests.

``tiny_lake``: two areas, two days, numbers chosen so every figure the report
shows can be worked out by hand (the expected values are in the tests).
``demo_lake``: a seeded, larger month of every mart, for the "every section has
data" check and the screenshot; its values are not asserted.

Marts are written through ``Lake.write_partition`` with their declared contract
(registry); a mart no schema module declares yet gets a contract made here.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from meterlake.lake import Lake
from meterlake.publish import registry
from meterlake.schemas import Column, Table

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)

#: CONTRACT §3 minimal columns of marts that may not be declared yet
ADHOC = {
    "anomalies": Table(
        name="anomalies",
        description="test contract: CONTRACT §3 minimal columns",
        columns=(
            Column("date", pl.Date(), "date"),
            Column("meter_id", pl.String(), "meter"),
            Column("customer_id", pl.String(), "customer"),
            Column("area_id", pl.String(), "area"),
            Column("score", pl.Float64(), "score"),
            Column("reasons", pl.String(), "reasons"),
        ),
        key=("meter_id", "date"),
        partition_by="date",
    ),
}


def mart(name: str) -> Table:
    return registry.marts().get(name) or ADHOC[name]


def write_mart(lake: Lake, name: str, frame: pl.DataFrame) -> None:
    """Write ``frame`` as the mart's partitions; contract columns it lacks are null."""
    table = mart(name)
    missing = [c for c in table.names if c not in frame.columns]
    frame = frame.with_columns(pl.lit(None).cast(table.schema[c]).alias(c) for c in missing)
    key = table.partition_by
    assert key is not None, f"{name} is not partitioned"
    for (value,) in frame.select(key).unique().sort(key).iter_rows():
        part = frame.filter(pl.col(key) == value)
        lake.write_partition(table, value.isoformat() if isinstance(value, dt.date) else value, part)


def build_tiny_lake(root: Path) -> Lake:
    lake = Lake(root)
    write_mart(
        lake,
        "collection_daily",
        pl.DataFrame(
            {
                "date": [D1, D1, D2, D2],
                "area_id": ["A1", "A2", "A1", "A2"],
                "feeder_id": ["F1"] * 4,
                "scope": ["area"] * 4,
                "meters_total": [50, 40, 50, 40],
                "meters_read": [49, 30, 50, 38],
                "success_rate": [0.98, 0.75, 1.0, 0.95],
                "curves_complete": [49, 30, 50, 38],
            }
        ),
    )
    write_mart(
        lake,
        "area_loss_daily",
        pl.DataFrame(
            {
                "date": [D1, D1, D2, D2],
                "area_id": ["A1", "A2", "A1", "A2"],
                "area_class": ["default"] * 4,
                "supply_kwh": [1000.0, 500.0, 1000.0, None],
                "sales_kwh": [950.0, 400.0, 960.0, 420.0],
                "loss_kwh": [50.0, 100.0, 40.0, None],
                "loss_rate": [0.05, 0.2, 0.04, None],
                "status": ["normal", "high", "normal", "uncomputable"],
            }
        ),
    )
    write_mart(
        lake,
        "area_loss_monthly",
        pl.DataFrame(
            {
                "month": ["2026-01"] * 3,
                "area_id": ["A1", "A2", "A3"],
                "feeder_id": ["F1", "F1", "F1"],
                "area_class": ["default"] * 3,
                "supply_kwh": [2000.0, 500.0, 300.0],
                "sales_kwh": [1910.0, 400.0, 315.0],
                "loss_kwh": [90.0, 100.0, -15.0],
                "loss_rate": [0.045, 0.2, -0.05],
                "status": ["normal", "high", "negative"],
            }
        ),
    )
    write_mart(
        lake,
        "loss_diagnosis",
        pl.DataFrame(
            {
                "date": [D2, D2, D1],
                "area_id": ["A2", "A2", "A2"],
                "kind": ["theft_candidate", "mapping_suspect", "theft_candidate"],
                "rule": [
                    "loss.diagnosis.theft_candidate",
                    "loss.diagnosis.mapping_suspect",
                    "loss.diagnosis.theft_candidate",
                ],
                "severity": ["warning"] * 3,
                "meter_id": ["m21", "m22", "m29"],
                "score": [0.83, 0.41, 0.99],
                "rank": [1, 1, 1],
            }
        ),
    )
    write_mart(
        lake,
        "anomalies",
        pl.DataFrame(
            {
                "date": [D1, D2, D2],
                "meter_id": ["m21", "m21", "m13"],
                "customer_id": ["c21", "c21", "c13"],
                "area_id": ["A2", "A2", "A1"],
                "score": [0.9, 0.95, 0.5],
                "reasons": ["cover_open,loss_correlation", "loss_correlation", "zero_consumption"],
            }
        ),
    )
    write_mart(
        lake,
        "bills_monthly",
        pl.DataFrame(
            {
                "month": ["2026-01"] * 3,
                "customer_id": ["c11", "c13", "c21"],
                "tariff_id": ["RES_TIER", "RES_TIER", "COM_TOU"],
                "kwh_total": [180.0, 450.5, 60.0],
                "amount_yuan": [100.0, 250.5, 49.5],
                "status": ["ok", "ok", "exception"],
            }
        ),
    )
    write_mart(
        lake,
        "prepay_daily",
        pl.DataFrame(
            {
                "date": [D1, D1, D2, D2],
                "customer_id": ["c21", "c22", "c21", "c22"],
                "meter_id": ["m21", "m22", "m21", "m22"],
                "area_id": ["A2"] * 4,
                "balance_yuan": [3.0, 80.0, -12.5, 75.0],
                "meter_balance_yuan": [3.0, 80.0, -12.5, 75.0],
                "status": ["low", "ok", "arrears", "ok"],
            }
        ),
    )
    write_mart(
        lake,
        "recovery_monthly",
        pl.DataFrame(
            {
                "month": ["2026-01", "2026-01"],
                "area_id": ["A1", "A2"],
                "billed_yuan": [350.5, 49.5],
                "prepay_billed_yuan": [350.5, 49.5],
                "collected_yuan": [350.5, 37.0],
                "arrears_customers": [0, 1],
                "arrears_yuan": [0.0, 12.5],
                "recovery_rate": [1.0, 37.0 / 49.5],
            }
        ),
    )
    # receivables of February (January's bills issued on 02-01, due 02-20): p1 paid, p2 owes
    # 80 of it 8 days after the due date, p3 owes 200 of December's bill too (39 days)
    write_mart(
        lake,
        "receivables_monthly",
        pl.DataFrame(
            {
                "month": ["2026-02"] * 3,
                "customer_id": ["p1", "p2", "p3"],
                "arrears_yuan": [-5.0, 80.0, 300.0],
                "overdue_yuan": [0.0, 80.0, 300.0],
                "overdue_days": pl.Series([0, 8, 39], dtype=pl.Int32),
                "aging": ["current", "1-30", "31-90"],
                "late_fee_yuan": [0.0, 0.64, 9.5],
            }
        ),
    )
    write_mart(
        lake,
        "dunning_list",
        pl.DataFrame(
            {
                "date": [dt.date(2026, 2, 28)] * 2,
                "rank": pl.Series([1, 2], dtype=pl.Int32),
                "customer_id": ["p3", "p2"],
                "overdue_yuan": [300.0, 80.0],
                "days_overdue": pl.Series([39, 8], dtype=pl.Int32),
                "credit_grade": ["D", "B"],
                "action": ["stop_notice", "sms"],
                "reason_zh": ["2025-12账期起欠费300.0元", "2026-01账期起欠费80.0元"],
            }
        ),
    )
    write_mart(
        lake,
        "meter_daily",
        pl.DataFrame(
            {
                "date": [D1, D1, D1, D2, D2, D2],
                "meter_id": ["m11", "m13", "m21", "m11", "m13", "m21"],
                "quality": ["actual", "actual", "estimated", "actual", "missing", "actual"],
            }
        ),
    )
    write_mart(
        lake,
        "quarantine",
        pl.DataFrame(
            {
                "dataset": ["curves", "curves", "purchases"],
                "source_file": ["curves/c1.csv", "curves/c1.csv", "purchases/p1.csv"],
                "line": [3, 7, None],
                "reason": ["bad_number", "bad_number", "missing_columns"],
                "raw": ["m11,2026-01-01,x", "m13,2026-01-01,y", None],
            }
        ),
    )
    write_mart(
        lake,
        "vee_findings",
        pl.DataFrame(
            {
                "date": [D1, D1, D2],
                "rule": ["vee.interval.spike", "vee.interval.spike", "vee.register.down"],
                "severity": ["warning", "warning", "error"],
                "meter_id": ["m11", "m13", "m21"],
            }
        ),
    )
    docs = lake.reports / "data_docs" / "local_site" / "index.html"
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text("<html><body>Data Docs</body></html>", encoding="utf-8")
    return lake


def build_demo_lake(root: Path, seed: int = 7, days: int = 31, areas: int = 24) -> Lake:
    """A month of every mart with plausible, seeded values (not asserted)."""
    rng = np.random.default_rng(seed)
    lake = Lake(root)
    dates = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(days)]
    area_ids = [f"T{i:03d}" for i in range(areas)]
    feeders = [f"F{i % 4 + 1:02d}" for i in range(areas)]
    n = len(dates) * areas
    date_col = [d for d in dates for _ in area_ids]
    area_col = area_ids * len(dates)
    feeder_col = feeders * len(dates)
    total = rng.integers(60, 400, areas).repeat(1)
    total_col = np.tile(total, len(dates))
    miss = rng.binomial(total_col, np.tile(rng.uniform(0.0, 0.04, areas), len(dates)))
    read = total_col - miss
    write_mart(
        lake,
        "collection_daily",
        pl.DataFrame(
            {
                "date": date_col,
                "area_id": area_col,
                "feeder_id": feeder_col,
                "scope": ["area"] * n,
                "meters_total": total_col.astype(np.int32),
                "meters_read": read.astype(np.int32),
                "success_rate": read / total_col,
                "curves_complete": read.astype(np.int32),
            }
        ),
    )
    base_rate = np.tile(rng.normal(0.05, 0.04, areas), len(dates)) + rng.normal(0, 0.01, n)
    base_rate[np.tile(np.arange(areas) == 3, len(dates))] += 0.15  # a theft area
    base_rate[np.tile(np.arange(areas) == 5, len(dates))] -= 0.12  # a mapping error
    supply = np.tile(total * rng.uniform(6, 9, areas), len(dates)) * rng.uniform(0.9, 1.1, n)
    sales = supply * (1 - base_rate)
    uncomputable = rng.uniform(0, 1, n) < 0.04
    status = np.where(
        uncomputable, "uncomputable", np.where(base_rate > 0.10, "high", np.where(base_rate < 0, "negative", "normal"))
    )
    write_mart(
        lake,
        "area_loss_daily",
        pl.DataFrame(
            {
                "date": date_col,
                "area_id": area_col,
                "feeder_id": feeder_col,
                "area_class": ["default"] * n,
                "supply_kwh": supply,
                "sales_kwh": sales,
                "loss_kwh": supply - sales,
                "loss_rate": (supply - sales) / supply,
                "status": status,
            }
        ),
    )
    daily = pl.read_parquet(lake.root / "marts" / "area_loss_daily" / "**" / "*.parquet", hive_partitioning=True)
    monthly = (
        daily.group_by("area_id", "feeder_id")
        .agg(pl.col("supply_kwh").sum(), pl.col("sales_kwh").sum(), pl.len().alias("days"))
        .with_columns(
            month=pl.lit("2026-01"),
            area_class=pl.lit("default"),
            loss_kwh=pl.col("supply_kwh") - pl.col("sales_kwh"),
        )
        .with_columns(loss_rate=pl.col("loss_kwh") / pl.col("supply_kwh"))
        .with_columns(
            status=pl.when(pl.col("loss_rate") > 0.10)
            .then(pl.lit("high"))
            .when(pl.col("loss_rate") < 0)
            .then(pl.lit("negative"))
            .otherwise(pl.lit("normal"))
        )
    )
    write_mart(lake, "area_loss_monthly", monthly.with_columns(pl.col("days").cast(pl.Int32)))
    feeder = (
        monthly.group_by("feeder_id")
        .agg(pl.col("supply_kwh").sum() * 1.03, pl.col("supply_kwh").sum().alias("sales_kwh"))
        .with_columns(month=pl.lit("2026-01"), loss_kwh=pl.col("supply_kwh") - pl.col("sales_kwh"))
        .with_columns(loss_rate=pl.col("loss_kwh") / pl.col("supply_kwh"), status=pl.lit("normal"))
    )
    write_mart(lake, "feeder_loss_monthly", feeder)
    kinds = ["theft_candidate", "mapping_suspect", "multiplier_suspect"]
    diag = pl.DataFrame(
        {
            "date": [dates[-1]] * 6,
            "area_id": [area_ids[3]] * 3 + [area_ids[5]] * 3,
            "kind": [kinds[0], kinds[0], kinds[2], kinds[1], kinds[1], kinds[0]],
            "meter_id": ["M0312", "M0307", "M0300", "M0518", "M0521", "M0502"],
            "score": [0.91, 0.62, 0.35, 0.77, 0.58, 0.12],
        }
    ).with_columns(rule=pl.format("loss.diagnosis.{}", "kind"), severity=pl.lit("warning"))
    write_mart(lake, "loss_diagnosis", diag)
    meters = [f"M{a:02d}{m:02d}" for a in range(areas) for m in range(1, 25)]
    k = 180
    reasons_pool = ["cover_open", "loss_correlation", "zero_consumption", "reverse_no_pv", "voltage_loss", "magnetic"]
    pick = rng.integers(0, len(meters), k)
    write_mart(
        lake,
        "anomalies",
        pl.DataFrame(
            {
                "date": [dates[i] for i in rng.integers(0, len(dates), k)],
                "meter_id": [meters[i] for i in pick],
                "customer_id": [f"C{meters[i][1:]}" for i in pick],
                "area_id": [f"T{int(meters[i][1:3]):03d}" for i in pick],
                "score": rng.beta(2, 5, k),
                "reasons": [
                    ",".join(sorted(set(rng.choice(reasons_pool, rng.integers(1, 3)).tolist()))) for _ in range(k)
                ],
            }
        ).unique(subset=["meter_id", "date"]),
    )
    customers = [f"C{m[1:]}" for m in meters]
    tariffs = rng.choice(["RES_TIER", "RES_TIER_TOU", "COM_TOU", "AGR_FLAT"], len(customers), p=[0.6, 0.2, 0.15, 0.05])
    kwh = rng.gamma(2.0, 120.0, len(customers))
    price = np.select([tariffs == "COM_TOU", tariffs == "AGR_FLAT"], [0.72, 0.5], 0.55)
    write_mart(
        lake,
        "bills_monthly",
        pl.DataFrame(
            {
                "month": ["2026-01"] * len(customers),
                "customer_id": customers,
                "tariff_id": tariffs,
                "area_id": [f"T{int(c[1:3]):03d}" for c in customers],
                "kwh_total": kwh,
                "amount_yuan": np.round(kwh * price, 2),
                "status": np.where(rng.uniform(0, 1, len(customers)) < 0.03, "exception", "ok"),
            }
        ),
    )
    prepay_customers = customers[::3]
    bal = rng.normal(60, 45, len(prepay_customers))
    write_mart(
        lake,
        "prepay_daily",
        pl.DataFrame(
            {
                "date": [dates[-1]] * len(prepay_customers),
                "customer_id": prepay_customers,
                "meter_id": [f"M{c[1:]}" for c in prepay_customers],
                "area_id": [f"T{int(c[1:3]):03d}" for c in prepay_customers],
                "balance_yuan": bal,
                "meter_balance_yuan": bal + rng.normal(0, 0.3, len(bal)),
                "status": np.where(bal < 0, "arrears", np.where(bal < 20, "low", "ok")),
            }
        ),
    )
    billed = rng.uniform(2000, 9000, areas)
    rate = np.clip(rng.normal(0.985, 0.02, areas), 0.85, 1.0)
    write_mart(
        lake,
        "recovery_monthly",
        pl.DataFrame(
            {
                "month": ["2026-01"] * areas,
                "area_id": area_ids,
                "billed_yuan": billed,
                "collected_yuan": billed * rate,
                "arrears_yuan": billed * (1 - rate),
                "arrears_customers": rng.integers(0, 4, areas).astype(np.int32),
                "recovery_rate": rate,
            }
        ),
    )
    md_n = len(meters) * len(dates)
    write_mart(
        lake,
        "meter_daily",
        pl.DataFrame(
            {
                "date": [d for d in dates for _ in meters],
                "meter_id": meters * len(dates),
                "quality": rng.choice(["actual", "estimated", "missing"], md_n, p=[0.95, 0.035, 0.015]),
            }
        ),
    )
    reasons = ["bad_number", "field_count", "unknown_meter", "superseded", "bad_date", "truncated"]
    q = 140
    ds = rng.choice(["curves", "registers", "events", "purchases"], q)
    write_mart(
        lake,
        "quarantine",
        pl.DataFrame(
            {
                "dataset": ds,
                "source_file": [f"{d}/f{i % 9}.csv" for i, d in enumerate(ds)],
                "line": np.arange(2, q + 2),
                "reason": rng.choice(reasons, q, p=[0.35, 0.2, 0.2, 0.15, 0.06, 0.04]),
            }
        ),
    )
    rules = ["vee.interval.spike", "vee.interval.zero_run", "vee.register.down", "vee.sum.curve_register"]
    v = 300
    write_mart(
        lake,
        "vee_findings",
        pl.DataFrame(
            {
                "date": [dates[i] for i in rng.integers(0, len(dates), v)],
                "rule": rng.choice(rules, v),
                "severity": rng.choice(["warning", "error"], v, p=[0.8, 0.2]),
                "meter_id": [meters[i] for i in rng.integers(0, len(meters), v)],
            }
        ).unique(subset=["date", "rule", "meter_id"]),
    )
    runs = lake.meta / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    (runs / "demo-run.json").write_text(
        json.dumps(
            {
                "run_id": "demo-run",
                "status": "ok",
                "start": dates[0].isoformat(),
                "end": dates[-1].isoformat(),
                "stages": {
                    "ingest": {"rows": {"registers": md_n}, "seconds": 3.2, "notes": ["12 files, 3 resent"]},
                    "publish": {"rows": {}, "seconds": 0.4, "notes": []},
                },
            }
        ),
        encoding="utf-8",
    )
    docs = lake.reports / "data_docs" / "local_site" / "index.html"
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text("<html><body>Data Docs</body></html>", encoding="utf-8")
    return lake


@pytest.fixture
def tiny_lake(tmp_path: Path) -> Lake:
    return build_tiny_lake(tmp_path / "lake")


@pytest.fixture
def demo_lake(tmp_path: Path) -> Lake:
    return build_demo_lake(tmp_path / "lake")
