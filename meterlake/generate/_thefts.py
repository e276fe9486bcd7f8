"""Partial thefts: meters that record only part of what their customer uses.

The blunt thefts of the plan (a bypass from a slot on, a stopped meter, reversed
wiring) change the daily series at once. The ones utilities lose most to are quieter:
a shunted phase or a tampered CT that records a steady fraction, a bypass switched in
only at night, or only on some days. Decided once before the first day, with their own
random stream (so the rest of a generated zone is the same with or without them), and
applied to the recorded curve after the area master has seen the true use.

Kinds in ``_truth/injections.csv``: ``theft_partial`` (detail: the mode and the share
recorded).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from . import _shapes as sh
from . import _topology as tp
from ._plan import Plan, count, truth_rows

#: how a partial thief records: every slot, only at night (22:00-06:00), or on some days
MODES = ("constant", "night", "some_days")
NIGHT = (np.arange(sh.SLOTS) < 24) | (np.arange(sh.SLOTS) >= 88)
#: share of area customers that steal partially
RATE = 0.005


@dataclass
class PartialThefts:
    idx: np.ndarray  # customers, sorted
    mode: np.ndarray  # index into MODES
    share: np.ndarray  # share of the use the meter records, U(0.1, 0.9)
    first_day: np.ndarray  # day index the theft starts
    days_on: np.ndarray  # (thieves, days) bool: the theft is on that day

    def recorded(self, k: int, rows: np.ndarray) -> np.ndarray:
        """The recorded curves of the thieves on day ``k`` from their true ``rows``."""
        on = self.days_on[:, k] & (self.first_day <= k)
        slots = np.where((self.mode == 1)[:, None], NIGHT[None, :], True) & on[:, None]
        return np.where(slots, rows * self.share[:, None], rows)


def used_by(plan: Plan) -> np.ndarray:
    """Customers the plan already gave a fault to."""
    return np.concatenate([plan.theft_idx, plan.move_idx, plan.rollover_idx, plan.mismatch_idx, plan.overdraft_idx])


def plan_partial(topo: tp.Topology, plan: Plan, days: int, start: dt.date, seed: int) -> PartialThefts:
    """Pick the partial thieves (customers of areas, PV areas included) and append their truth."""
    rng = np.random.default_rng([seed, 0x7E])
    c = topo.n_cust
    cust = np.arange(c)
    taken = np.zeros(topo.n, dtype=bool)
    taken[used_by(plan)] = True
    taken[:c] |= plan.archive_area[:c] != topo.area[:c]
    taken[:c] |= plan.mult_archive[:c] != topo.mult[:c]
    ok = (topo.area[:c] >= 0) & ~topo.vacant[:c] & (topo.base_kwh[:c] >= 2.0) & (topo.pv_kw[:c] == 0) & ~taken[:c]
    pool = cust[ok]
    k = count(RATE, int((topo.area[:c] >= 0).sum()))
    idx = np.sort(rng.choice(pool, min(k, len(pool)), replace=False)) if len(pool) else np.array([], dtype=np.int64)
    n = len(idx)
    mode = rng.integers(0, len(MODES), n)
    share = rng.uniform(0.1, 0.9, n)
    first_day = rng.integers(0, max(days // 3, 1), n)
    days_on = np.where((mode == 2)[:, None], rng.random((n, days)) < 0.5, True)
    plan.truth.append(
        truth_rows(
            topo,
            "theft_partial",
            start,
            idx,
            first_day,
            days - 1,
            pl.DataFrame({"m": np.array(MODES)[mode], "s": np.round(share, 2)})
            .select(pl.format("{}; recorded share {}", pl.col("m"), pl.col("s")))
            .to_series(),
        )
    )
    return PartialThefts(idx=idx, mode=mode, share=share, first_day=first_day, days_on=days_on)
