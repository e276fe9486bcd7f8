"""The anomalies stage's reverse-register history on a long lake: read whole (as before the
settled days were kept) against the kept parts and the last few days (a daily run).

Writes ``--days`` synthetic meter_daily partitions of ``--meters`` customer meters (1 % with
reverse energy on a day, 2 % stating a PV capacity) into ``--lake`` (once), builds the kept
state up to the day before the last, and then, ``--repeat`` times: the whole history read at
once, and the daily run's :func:`meterlake.stages.anomalies.reverse_history` (the state put
back to the day before after each), checking the two are equal::

    python benchmarks/reverse_history.py --lake /tmp/revlake --days 60 --meters 500000
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from meterlake.lake import Lake  # noqa: E402
from meterlake.schemas.meter_daily import METER_DAILY  # noqa: E402
from meterlake.stages import anomalies  # noqa: E402
from meterlake.transforms import anomaly  # noqa: E402


def build(lake: Lake, days: list[dt.date], meters: int) -> None:
    ids = pl.Series([f"M{i:07d}" for i in range(meters)])
    rng = np.random.default_rng(1)
    for d in days:
        if lake.partition_path(METER_DAILY, d).exists():
            continue
        rev = np.where(rng.random(meters) < 0.01, rng.random(meters) * 3, 0.0)
        pv = np.where(rng.random(meters) < 0.02, 5.0, np.nan)
        frame = pl.DataFrame(
            {
                "date": [d] * meters,
                "meter_id": ids,
                "role": ["customer"] * meters,
                "reverse_kwh": rev,
                "kwh": rng.random(meters) * 10,
                "quality": ["actual"] * meters,
                "pv_capacity_kw": pv,
            }
        ).with_columns(pl.col("pv_capacity_kw").fill_nan(None))
        lake.write_file(lake.partition_path(METER_DAILY, d), frame)


def timed(job):  # type: ignore[no-untyped-def]
    t, c = time.perf_counter(), time.process_time()
    out = job()
    return out, time.perf_counter() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lake", type=Path, required=True)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--meters", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    lake = Lake(args.lake)
    days = [dt.date(2025, 3, 1) + dt.timedelta(days=k) for k in range(args.days)]
    build(lake, days, args.meters)
    cfg = anomaly.AnomalyConfig()
    state = lake.root.joinpath(*anomalies.REVERSE_STATE)
    _, wall, cpu = timed(lambda: anomalies.reverse_history(lake, cfg, days[:-1]))
    print(f"the state built (the whole history read once): {wall:.2f} s wall, {cpu:.2f} s CPU")
    parts, stamps = pl.read_parquet(state / "parts.parquet"), pl.read_parquet_metadata(state / "parts.parquet")
    cols = lake.scan(METER_DAILY, days).select(anomalies.HISTORY_COLUMNS)
    for r in range(args.repeat):
        whole, w1, c1 = timed(lambda: anomaly.reverse_history(cols, cfg, streaming=True))
        kept, w2, c2 = timed(lambda: anomalies.reverse_history(lake, cfg, days))
        assert whole.equals(kept), "the kept history differs from the whole one"
        print(f"round {r + 1}: whole history {w1:.2f} s wall / {c1:.2f} s CPU; kept {w2:.2f} / {c2:.2f}")
        # back to the day before: the parts rewritten (a new file), their stamps with them
        lake.write_file(
            state / "parts.parquet", parts, metadata={k: stamps[k] for k in ("version", "moved_kwh", "days")}
        )


if __name__ == "__main__":
    main()
