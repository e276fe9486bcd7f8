"""County-month billing benchmark: 500k customers x 30 days of meter_daily.

Synthesises meter_daily partitions with numpy straight into a temporary lake (the
shape the validate stage writes: one Parquet file per date), then times the bill
computation the billing stage runs for one month: scan the month's days, price them
(TOU split, calendar-year tiers, tariff calendar join) and aggregate bills_monthly,
written to the lake. Median of 3 runs.

    .venv/bin/python benchmarks/bench_billing.py                 # 500k x 30, January
    .venv/bin/python benchmarks/bench_billing.py --customers 50000 --prior-months 2

``--prior-months N`` also writes N earlier months (billed once before the timing, as
the pipeline would have) so the billed month's annual tiers start from a year-to-date
opening read from the earlier bills. ``--stage`` also times the whole billing stage (bills, prepay
balances, findings, recovery): a backfill of every day, then the daily run of the
last day, whose prepay balances start from the checkpoint the backfill left.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from meterlake import config
from meterlake.lake import Lake
from meterlake.schemas.bills_monthly import BILLS_MONTHLY
from meterlake.schemas.meter_daily import METER_DAILY
from meterlake.stages.billing import year_opening
from meterlake.transforms.billing import (
    BillRules,
    bill_segments,
    billable_days,
    price_days,
)
from meterlake.transforms.tariffs import TariffBook, price_calendar

REPO = Path(__file__).resolve().parents[1]
TARIFFS = ("RES_TIER", "RES_TIER_TOU", "COM_TOU", "AGR_FLAT")
TARIFF_SHARE = (0.60, 0.25, 0.10, 0.05)
CLASS_OF = {"RES_TIER": "resident", "RES_TIER_TOU": "resident", "COM_TOU": "commercial", "AGR_FLAT": "agricultural"}


def synthesise(lake: Lake, customers: int, days: list[dt.date], seed: int) -> None:
    """Write one meter_daily partition per day for ``customers`` customer meters."""
    rng = np.random.default_rng(seed)
    n = customers
    cust = pl.Series([f"C{i:08d}" for i in range(n)])
    meter = pl.Series([f"M{i:010d}" for i in range(n)])
    area = pl.Series([f"A{i // 200:05d}" for i in range(n)])
    tariff_idx = rng.choice(len(TARIFFS), size=n, p=TARIFF_SHARE)
    tariff = pl.Series(np.array(TARIFFS)[tariff_idx])
    klass = tariff.replace_strict(CLASS_OF)
    prepay = pl.Series((rng.random(n) < 0.3).astype(np.int8))
    mean_kwh = np.where(tariff_idx == 2, 60.0, np.where(tariff_idx == 3, 20.0, 8.0))
    # a few heavy households cross tier 1 within the month
    mean_kwh = mean_kwh * np.where(rng.random(n) < 0.02, 12.0, 1.0)
    remaining = rng.uniform(-10, 300, n)
    for day in days:
        kwh = np.round(rng.gamma(2.0, mean_kwh / 2.0), 2)
        split = rng.dirichlet((1.0, 3.0, 3.0, 3.0), size=n)
        quality = np.where(rng.random(n) < 0.02, "estimated", "actual")
        remaining = remaining - kwh * 0.55 + np.where(rng.random(n) < 0.03, 100.0, 0.0)
        frame = pl.DataFrame(
            {
                "date": pl.Series([day] * n, dtype=pl.Date),
                "meter_id": meter,
                "customer_id": cust,
                "area_id": area,
                "feeder_id": area.str.slice(0, 4),
                "role": pl.Series(["customer"] * n),
                "customer_class": klass,
                "tariff_id": tariff,
                "prepay": prepay,
                "multiplier": np.ones(n),
                "kwh": kwh,
                "kwh_sharp": np.round(kwh * split[:, 0], 4),
                "kwh_peak": np.round(kwh * split[:, 1], 4),
                "kwh_flat": np.round(kwh * split[:, 2], 4),
                "kwh_valley": np.round(kwh * split[:, 3], 4),
                "reverse_kwh": np.zeros(n),
                "quality": quality,
                "method": pl.Series(["register"] * n),
                "curve_kwh": kwh,
                "curve_slots_read": pl.Series([96] * n, dtype=pl.Int16),
                "register_read": pl.Series([True] * n),
                "remaining_yuan": np.where(prepay.to_numpy() == 1, np.round(remaining, 2), np.nan),
            }
        ).with_columns(pl.col("remaining_yuan").fill_nan(None))
        # columns billing does not read (and any the contract gains later) stay empty
        frame = frame.with_columns(
            pl.lit(None, dtype).alias(name) for name, dtype in METER_DAILY.schema.items() if name not in frame.columns
        )
        lake.write_partition(METER_DAILY, day.isoformat(), frame)


def bill_month(lake: Lake, book: TariffBook, month_start: dt.date, rules: BillRules) -> int:
    """What the billing stage does for one month's bills (scan, price, aggregate, write)."""
    held = [dt.date.fromisoformat(p) for p in lake.partitions(METER_DAILY)]
    month = (month_start.year, month_start.month)
    in_month = [d for d in held if (d.year, d.month) == month]
    cal = price_calendar(book, min(in_month), max(in_month))
    opening = year_opening(lake, held, month)  # earlier months: their bills, else meter_daily
    days = billable_days(lake.scan(METER_DAILY, [d.isoformat() for d in in_month]))
    priced = price_days(days, cal, opening, rules.tou_fallback_register)
    bills = bill_segments(priced, rules).collect()
    lake.write_partition(BILLS_MONTHLY, month_start.strftime("%Y-%m"), bills)
    return bills.height


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=500_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--prior-months", type=int, default=0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=20260101)
    ap.add_argument("--stage", action="store_true", help="also time the whole billing stage once")
    ap.add_argument("--lake", type=Path, default=None, help="reuse/keep this lake folder")
    args = ap.parse_args(argv)

    book = config.load("tariffs", TariffBook, REPO / "config")
    rules = BillRules()
    month_start = dt.date(2026, 1 + args.prior_months, 1)
    with tempfile.TemporaryDirectory(prefix="bench_billing_") as tmp:
        lake = Lake(args.lake or Path(tmp) / "lake")
        days = [month_start + dt.timedelta(days=i) for i in range(args.days)]
        for m in range(args.prior_months):
            first = dt.date(2026, 1 + m, 1)
            nxt = dt.date(2026, 2 + m, 1)
            days = [first + dt.timedelta(days=i) for i in range((nxt - first).days)] + days
        if not lake.partitions(METER_DAILY):
            t0 = time.perf_counter()
            synthesise(lake, args.customers, sorted(days), args.seed)
            print(f"synthesised {args.customers} customers x {len(days)} days in {time.perf_counter() - t0:.1f} s")
        for m in range(args.prior_months):
            bill_month(lake, book, dt.date(2026, 1 + m, 1), rules)
        times, cpus = [], []
        for i in range(args.runs):
            t0, c0 = time.perf_counter(), _cpu_seconds()
            rows = bill_month(lake, book, month_start, rules)
            times.append(time.perf_counter() - t0)
            cpus.append(_cpu_seconds() - c0)
            print(f"run {i + 1}: {rows} bills in {times[-1]:.2f} s (cpu {cpus[-1]:.2f} s)")
        load = os.getloadavg()[0]
        print(
            f"bill computation, {args.customers} customers x {args.days} days "
            f"(+{args.prior_months} prior months): median {statistics.median(times):.2f} s of {args.runs} "
            f"(cpu median {statistics.median(cpus):.2f} s; {os.cpu_count()} cores, load average {load:.1f})"
        )
        if args.stage:
            from meterlake.settings import Settings
            from meterlake.stages import StageContext, billing

            ctx = StageContext(settings=Settings(lake=lake.root, config_dir=REPO / "config"), run_id="bench")
            ctx.progress = lambda msg: None
            t0 = time.perf_counter()
            res = billing.run(ctx, sorted(days))
            print(f"billing stage, backfill of all {len(days)} days: {time.perf_counter() - t0:.2f} s, rows {res.rows}")
            t0 = time.perf_counter()
            res = billing.run(ctx, [max(days)])
            print(
                f"billing stage, daily run for {max(days)} (checkpoint {res.details.get('prepay_checkpoint')}): "
                f"{time.perf_counter() - t0:.2f} s, rows {res.rows}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
