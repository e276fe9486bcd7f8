"""Partial thefts: meters that record only part of what their customer uses.

The blunt thefts of the plan (a bypass from a slot on, a stopped meter, reversed
wiring) change the daily series at once. The ones utilities lose most to are quieter:
a shunted phase or a tampered CT that records a steady fraction, a bypass switched in
only at night, or only on some days. Decided once before the first day, with their own
random stream (so the rest of a generated zone is the same with or without them), and
applied to the recorded curve after the area master has seen the true use.

Kinds in ``_truth/injections.csv``: ``theft_partial`` (detail: the mode and the share
recorded). Partial thieves and false-data injectors are drawn from two areas of every
three (area index mod 3 != 1): the third left over keeps areas whose balance holds
exactly, against which the generator's physics is checked.
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
    ok = (topo.area[:c] >= 0) & (topo.area[:c] % 3 != 1) & ~topo.vacant[:c] & (topo.base_kwh[:c] >= 2.0)
    ok &= (topo.pv_kw[:c] == 0) & ~taken[:c]
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


# --- the six standard false-data-injection attacks (Jokar, Arianpoo and Leung 2016) --------

#: attack types; "mix" draws one of h1..h6 afresh for every tampered day
ATTACKS = ("h1", "h2", "h3", "h4", "h5", "h6", "mix")
#: share of area customers that run an attack
ATTACK_RATE = 0.003
#: at most this many attackers in one area. The area master is the observer of its area,
#: and an area already carries blunt and partial thieves: with several attackers as well
#: (up to 19 in one area of a 30,000-meter zone at 0.3% per type) its top 5 could not hold them
ATTACKERS_PER_AREA = 1


@dataclass
class Attacks:
    idx: np.ndarray  # customers, sorted
    kind: np.ndarray  # index into ATTACKS
    days_on: np.ndarray  # (attackers, days) bool: tampered days (30-70% of the days)
    day_kind: np.ndarray  # (attackers, days) the h1..h6 index (0..5) applied that day
    alpha: np.ndarray  # (attackers, days) h1's factor U(0.1, 0.8)
    window: np.ndarray  # (attackers, days, 2) h2's zero window [start, end) in slots, >= 16 slots
    seed: int

    def recorded(self, k: int, rows: np.ndarray) -> np.ndarray:
        """The recorded curves of the attackers on day ``k`` from their true ``rows`` (attackers x 96)."""
        rng = np.random.default_rng([self.seed, 0xA7, k])
        n = len(self.idx)
        on = self.days_on[:, k]
        kind = self.day_kind[:, k]
        mean = rows.mean(1, keepdims=True)
        gamma = rng.uniform(0.1, 0.8, (n, sh.SLOTS))
        slot = np.arange(sh.SLOTS)[None, :]
        w0, w1 = self.window[:, k, 0:1], self.window[:, k, 1:2]
        cases = [
            rows * self.alpha[:, k : k + 1],  # h1: alpha x_t
            np.where((slot >= w0) & (slot < w1), 0.0, rows),  # h2: 0 in a window of >= 4 h
            gamma * rows,  # h3: gamma_t x_t
            gamma * mean,  # h4: gamma_t mean(x)
            np.broadcast_to(mean, rows.shape),  # h5: mean(x) in every slot
            rows[:, ::-1],  # h6: the day reversed
        ]
        out = rows.copy()
        for h, case in enumerate(cases):  # six attack types, not rows
            m = on & (kind == h)
            out[m] = case[m]
        return out


def plan_attacks(topo: tp.Topology, plan: Plan, taken_idx: np.ndarray, days: int, start: dt.date, seed: int) -> Attacks:
    """Pick the attackers (customers of areas not given another fault) and append their truth.

    Truth kinds ``theft_h1`` .. ``theft_h6`` and ``theft_mix``; the detail lists the
    tampered days (day numbers from 1).
    """
    rng = np.random.default_rng([seed, 0xA1])
    c = topo.n_cust
    taken = np.zeros(topo.n, dtype=bool)
    taken[used_by(plan)] = True
    taken[taken_idx] = True
    taken[:c] |= plan.archive_area[:c] != topo.area[:c]
    taken[:c] |= plan.mult_archive[:c] != topo.mult[:c]
    ok = (topo.area[:c] >= 0) & (topo.area[:c] % 3 != 1) & ~topo.vacant[:c] & (topo.base_kwh[:c] >= 2.0)
    ok &= (topo.pv_kw[:c] == 0) & ~taken[:c]
    pool = rng.permutation(np.arange(c)[ok])
    # the first ATTACKERS_PER_AREA of each area in a random order
    order = np.argsort(topo.area[pool], kind="stable")
    first = np.r_[True, np.diff(topo.area[pool][order]) != 0]
    nth = np.arange(len(order)) - np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    pool = np.sort(pool[order][nth < ATTACKERS_PER_AREA])
    k = count(ATTACK_RATE * len(ATTACKS), int((topo.area[:c] >= 0).sum()), minimum=len(ATTACKS))
    idx = np.sort(rng.choice(pool, min(k, len(pool)), replace=False)) if len(pool) else np.array([], dtype=np.int64)
    n = len(idx)
    kind = np.arange(n) % len(ATTACKS)
    rng.shuffle(kind)
    share = rng.uniform(0.3, 0.7, n)
    days_on = rng.random((n, days)) < share[:, None]
    days_on[np.arange(n), rng.integers(0, days, n)] = True  # at least one tampered day
    day_kind = np.where((kind == 6)[:, None], rng.integers(0, 6, (n, days)), kind[:, None])
    alpha = rng.uniform(0.1, 0.8, (n, days))
    length = rng.integers(16, 49, (n, days))  # 4 to 12 hours
    w0 = rng.integers(0, sh.SLOTS - length + 1)
    window = np.stack([w0, w0 + length], axis=2)
    detail = pl.Series(
        [
            f"{ATTACKS[kd]}; tampered days " + ",".join(str(d + 1) for d in np.flatnonzero(days_on[i]))
            for i, kd in enumerate(kind)
        ],
        dtype=pl.String,
    )  # one string per attacker, built once
    for a, name in enumerate(ATTACKS):
        m = kind == a
        if m.any():
            first = np.array([np.flatnonzero(days_on[i])[0] for i in np.flatnonzero(m)])
            plan.truth.append(
                truth_rows(topo, f"theft_{name}", start, idx[m], first, days - 1, detail.filter(pl.Series(m)))
            )
    return Attacks(idx=idx, kind=kind, days_on=days_on, day_kind=day_kind, alpha=alpha, window=window, seed=seed)
