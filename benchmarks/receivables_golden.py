"""Golden outputs of the receivables stage: record them once, compare after a change.

    python benchmarks/receivables_golden.py record DIR [GENERATED_LAKE]
    python benchmarks/receivables_golden.py compare DIR

``record`` synthesises a small lake in ``DIR/synth/base`` (about 600 post-paid customers,
four bill months 2025-10 .. 2026-01 with payments November .. February: on time, late,
never, several payments, overpayments, reversals before and after the due date, payments
naming a bill, a month without a bill and a wrong month, 10 kV customers without an
area, commercial customers across the year end, a few prepay and held bills), copies
``GENERATED_LAKE`` (a lake the full pipeline built from ``meterlake generate``; its
receivables marts are dropped) to ``DIR/gen/base``, and records for each lake what the
stage writes: a first run over every date, a rerun after some bills are restated, and
(synthetic lake) a run of the last month only. ``compare`` reruns the same on fresh
copies of the bases and checks every written Parquet file byte for byte, and the frames
row for row (sorted), against the record.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np
import polars as pl
import receivables_lake as synth

from meterlake import pipeline
from meterlake.lake import Lake
from meterlake.schemas.bills_monthly import BILLS_MONTHLY
from meterlake.schemas.customer_credit_monthly import CUSTOMER_CREDIT_MONTHLY
from meterlake.schemas.dunning_list import DUNNING_LIST
from meterlake.schemas.meter_daily import METER_DAILY
from meterlake.schemas.payments import LANDING as PAYMENTS
from meterlake.schemas.receivables_monthly import RECEIVABLES_MONTHLY
from meterlake.schemas.recovery_monthly import RECOVERY_MONTHLY
from meterlake.settings import Settings

REPO = Path(__file__).resolve().parents[1]
MARTS = (RECEIVABLES_MONTHLY, RECOVERY_MONTHLY, CUSTOMER_CREDIT_MONTHLY, DUNNING_LIST)
D = dt.date
BILL_MONTHS = ("2025-10", "2025-11", "2025-12", "2026-01")


def synthesise(lake: Lake, n: int = 600, seed: int = 11) -> None:
    rng = np.random.default_rng(seed)
    direct = rng.random(n) < 0.03
    prepay = (rng.random(n) < 0.03) & ~direct
    classes = np.where(rng.random(n) < 0.7, "resident", "commercial")
    orgs = np.where(rng.random(n) < 0.5, "ORG01", "ORG02")
    archive = synth.write_archive(lake, D(2025, 10, 1), (5, 6, 3, 2), 40, 200, direct, classes, prepay, orgs)
    cust = archive["customer_id"]
    amounts = {}
    for k, m in enumerate(BILL_MONTHS):
        amt = np.round(rng.gamma(2.0, 60.0, n) * np.where(direct, 150, 1), 2)
        amounts[m] = amt
        # a few customers have two bill rows in a month (a tariff version changed in it)
        split = rng.random(n) < 0.05
        held = (rng.random(n) < 0.01) & (k == len(BILL_MONTHS) - 1)
        y, mo = int(m[:4]), int(m[5:])
        base = synth.bills(
            archive, m, np.where(split, np.round(amt * 0.4, 2), amt), prepay.astype(int), np.where(held, "held", "ok")
        )
        extra = base.filter(pl.Series(split)).with_columns(
            period_end=pl.lit(D(y, mo, 14)),
            amount_yuan=pl.Series(np.round(amt[split] - np.round(amt[split] * 0.4, 2), 2)),
        )
        synth.write_bills(lake, m, pl.concat([base, extra]))
    synth.mark_held_to(lake, D(2026, 2, 27))
    rows = []
    behaviour = rng.random(n)  # per customer: < .7 on time, < .85 late, < .9 chronic, < .95 overpayer, else mixed
    for k, m in enumerate(BILL_MONTHS):
        y, mo = int(m[:4]), int(m[5:])
        issue = D(y + mo // 12, mo % 12 + 1, 1)
        u = rng.random(n)
        pay = amounts[m].copy()
        offset = rng.integers(0, 20, n)
        late = (behaviour >= 0.7) & (behaviour < 0.85)
        offset[late] = rng.integers(15, 70, int(late.sum()))
        over = (behaviour >= 0.9) & (behaviour < 0.95)
        pay[over] = np.ceil(pay[over] / 100) * 100
        partial = (behaviour >= 0.95) & (u < 0.5)
        pay[partial] = np.round(pay[partial] * 0.6, 2)
        go = ~((behaviour >= 0.85) & (behaviour < 0.9) & (u < 0.8)) & ~prepay
        day = np.datetime64(issue) + offset.astype("timedelta64[D]")
        named = rng.random(n) < 0.3
        month_named = np.where(named, m, "")
        wrong = rng.random(n) < 0.02
        month_named[wrong] = "2026-03"  # no bill yet: a held credit
        prev = (rng.random(n) < 0.03) & (k > 0)
        month_named[prev] = BILL_MONTHS[k - 1]
        rows.append(
            pl.DataFrame(
                {
                    "txn_id": [f"P{m[2:4]}{m[5:]}{i:05d}" for i in range(n)],
                    "txn_type": ["payment"] * n,
                    "customer_id": cust,
                    "paid_date": pl.Series(day).cast(pl.Date),
                    "amount_yuan": pay,
                    "bill_month": pl.Series(month_named).replace("", None),
                }
            ).filter(pl.Series(go))
        )
        # second payments: the rest of partial payers, a few days later
        rest = pl.DataFrame(
            {
                "txn_id": [f"Q{m[2:4]}{m[5:]}{i:05d}" for i in range(n)],
                "txn_type": ["payment"] * n,
                "customer_id": cust,
                "paid_date": pl.Series(day + rng.integers(3, 40, n).astype("timedelta64[D]")).cast(pl.Date),
                "amount_yuan": np.round(amounts[m] - pay, 2),
                "bill_month": pl.Series([None] * n, dtype=pl.String),
            }
        ).filter(pl.Series(partial & go))
        rows.append(rest)
    pays = pl.concat(rows).filter(pl.col("paid_date") <= D(2026, 2, 27))
    delay = pl.duration(days=pl.col("amount_yuan").cast(pl.Int64) % 30)
    synth.write_payments(lake, pays, 0.03, seed, delay, D(2026, 2, 27), "payments/golden.csv")


def restate(lake: Lake) -> None:
    """Raise the second-to-last bill month's bills of every 17th customer by 12.34 yuan."""
    months = lake.partitions(BILLS_MONTHLY)
    m = months[-2]
    bills = lake.scan(BILLS_MONTHLY, [m]).collect()
    ids = bills["customer_id"].unique().sort()
    pick = ids.gather(list(range(0, ids.len(), 17)))
    bills = bills.with_columns(
        amount_yuan=pl.when(pl.col("customer_id").is_in(pick.implode()))
        .then(pl.col("amount_yuan") + 12.34)
        .otherwise(pl.col("amount_yuan"))
    )
    lake.write_partition(BILLS_MONTHLY, m, bills)


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _run(lake: Path, dates: list[dt.date]) -> None:
    settings = Settings(lake=lake, landing=lake.parent / "landing", config_dir=REPO / "config")
    pipeline.run_stage(settings, "receivables", dates, run_id="golden", progress=lambda _m: None)


def _snapshot(lake: Path, out: Path) -> None:
    """Every mart file of the stage (bytes) and each mart as one sorted frame."""
    out.mkdir(parents=True, exist_ok=True)
    lk = Lake(lake)
    sums = []
    for t in MARTS:
        for f in sorted(lk.table_dir(t).rglob("*.parquet")):
            sums.append(f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.relative_to(lake)}")
        frame = lk.scan(t).collect()
        frame.sort(frame.columns, nulls_last=True).write_parquet(out / f"{t.name}.parquet")
    (out / "sha256.txt").write_text("\n".join(sums) + "\n")


def _scenarios(base: Path, work: Path, out: Path, synthetic: bool) -> None:
    lk = Lake(base)
    months = lk.partitions(BILLS_MONTHLY)
    held = lk.partitions(METER_DAILY)
    first = D.fromisoformat(months[0] + "-01")
    last = D.fromisoformat(max([*lk.partitions(PAYMENTS.clean), held[-1]]))
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(base, work)
    _run(work, _days(first, last))
    _snapshot(work, out / "1-all")
    restate(Lake(work))
    _run(work, _days(first, last))
    _snapshot(work, out / "2-restated")
    if synthetic:
        shutil.rmtree(work)
        shutil.copytree(base, work)
        _run(work, _days(last.replace(day=1), last))
        _snapshot(work, out / "3-last-month")
    shutil.rmtree(work)


def record(root: Path, generated: Path | None) -> None:
    synth = root / "synth" / "base"
    if synth.exists():
        shutil.rmtree(synth)
    synthesise(Lake(synth))
    if generated is not None:
        gen = root / "gen" / "base"
        if gen.exists():
            shutil.rmtree(gen)
        shutil.copytree(generated, gen)
        for t in MARTS:
            shutil.rmtree(Lake(gen).table_dir(t), ignore_errors=True)
    _outputs(root, root / "expected")


def _outputs(root: Path, out: Path) -> None:
    _scenarios(root / "synth" / "base", root / "synth" / "work", out / "synth", synthetic=True)
    if (root / "gen" / "base").exists():
        _scenarios(root / "gen" / "base", root / "gen" / "work", out / "gen", synthetic=False)


def compare(root: Path) -> int:
    got = root / "actual"
    if got.exists():
        shutil.rmtree(got)
    _outputs(root, got)
    bad = 0
    for exp in sorted((root / "expected").rglob("*")):
        if exp.is_dir():
            continue
        rel = exp.relative_to(root / "expected")
        act = got / rel
        if exp.suffix == ".txt":
            same = act.read_text() == exp.read_text()
            n = len(exp.read_text().splitlines())
            print(f"{'same' if same else 'DIFFERENT'} bytes: {rel} ({n} files)")
        else:
            a, e = pl.read_parquet(act), pl.read_parquet(exp)
            same = a.equals(e)
            # equals() takes -0.0 for 0.0: count the floats whose bits differ all the same
            signed = 0
            if same:
                for c in e.columns:
                    if e[c].dtype == pl.Float64:
                        bits = [f.fill_null(1.5).to_numpy().view("u8") for f in (a[c], e[c])]
                        signed += int((bits[0] != bits[1]).sum())
            note = f", {signed} zeros of the other sign" if signed else ""
            print(f"{'same' if same else 'DIFFERENT'} rows: {rel} ({e.height} rows{note})")
            if not same and a.columns == e.columns and a.height == e.height:
                for c in e.columns:
                    diff = ~(a[c] == e[c]).fill_null(a[c].is_null() & e[c].is_null())
                    if a[c].dtype == pl.Float64:  # -0.0 and 0.0 compare equal: look at the bits
                        diff |= pl.Series(a[c].to_numpy().view("u8") != e[c].to_numpy().view("u8"))
                    if diff.any():
                        print(
                            f"  {c}: expected {e[c].filter(diff).head(5).to_list()}, got {a[c].filter(diff).head(5).to_list()}"
                        )
        bad += not same
    print("identical" if bad == 0 else f"{bad} outputs differ")
    return bad


if __name__ == "__main__":
    if sys.argv[1] == "record":
        record(Path(sys.argv[2]), Path(sys.argv[3]) if len(sys.argv) > 3 else None)
    else:
        sys.exit(1 if compare(Path(sys.argv[2])) else 0)
