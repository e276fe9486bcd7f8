"""The observer's day part per customer, compiled (numba): which customers the judging must look at.

``transforms/observer.py`` judges a customer's window with numpy over a chunk of
customers: two usual days of per-block medians, the day strengths of both passes, the
mean of the strongest days (the *day part*). Only a customer whose day part passes the
day ramp's low end can score; everyone else's judging is thrown away. This module
computes the same day part one customer at a time in compiled loops (about a tenth of
the numpy judging's cost), so the numpy judging runs only for the customers it finds
near or above that end (:func:`day_parts`; the judged figures and the outputs stay
numpy's, bit for bit: this is a filter, not the judging).

The loops follow the numpy steps operation by operation (the same medians as order
statistics, the same ramps and thresholds); only the order of float additions differs,
so a day part here differs from numpy's by rounding (~1e-15), and the filter keeps a
margin (:data:`MARGIN`) below the ramp's low end. A figure that is not finite here
(never seen) lets the customer through.

It also summarises a piece of a day's curves (:func:`summarise_rows`, for
``observer.day_summaries``): each row's blocks, kWh, share collected, zero run, filled kWh
and roughness in one pass per row instead of a few dozen numpy passes over the piece. Those
figures are kept and written, so they are numpy's bit for bit: the same additions in the
same order (a row's slots one after another, as numpy adds a slot-major row), the
logarithms taken by numpy between the two passes, the same order statistics for the median.

The compiled code is cached on disk (numba's ``cache=True``: the package's
``__pycache__`` when writable, else the user's cache folder, or ``NUMBA_CACHE_DIR``), so
only the first process after an install pays the compilation (a few seconds). It lives
outside ``transforms/`` because of that cache: the transform takes the function as an
argument.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

if TYPE_CHECKING:
    from .transforms.anomaly import ObserverRules

Arr = np.ndarray

#: a customer whose compiled day part is at least the day ramp's low end less this is judged
#: (the two day parts differ by rounding only; the margin covers far more than that)
MARGIN = 0.01


@njit(cache=True, nogil=True)
def _sort_head(buf: Arr, k: int) -> None:  # pragma: no cover - compiled
    """Insertion sort of ``buf[:k]`` (a handful of days)."""
    for i in range(1, k):
        v = buf[i]
        j = i - 1
        while j >= 0 and buf[j] > v:
            buf[j + 1] = buf[j]
            j -= 1
        buf[j + 1] = v


@njit(cache=True, nogil=True)
def _quantile(buf: Arr, k: int, q: float) -> float:  # pragma: no cover - compiled
    """Quantile ``q`` of ``buf[:k]`` as ``observer._masked_quantile`` takes it (NaN when k is 0)."""
    if k == 0:
        return np.nan
    _sort_head(buf, k)
    top = k - 1
    pos = q * top
    lo = math.floor(pos)
    hi = min(lo + 1, top)
    a = float(buf[lo])
    b = float(buf[hi])
    step = b - a if hi > lo else 0.0
    return a + (pos - lo) * step


@njit(cache=True, nogil=True)
def _ramp(x: float, lo: float, hi: float) -> float:  # pragma: no cover - compiled
    v = (x - lo) / (hi - lo)
    if v < 0.0:
        return 0.0
    if v > 1.0:
        return 1.0
    return v


@njit(cache=True, nogil=True)
def _block_medians(
    blocks: Arr, idx: Arr, m: int, buf: Arr, out: Arr, rank: Arr, gaps: bool
) -> None:  # pragma: no cover - compiled
    """Per block, the median over the days ``idx[:m]`` of ``blocks`` (days, blocks), 0 where
    there is no day. Each day's rank among the days is counted for all blocks at once
    (branch-free, a few lanes at a time): a handful of days sorted one block at a time
    mispredicts a branch for most of its values. ``gaps``: some of the days have a block
    without a value (never for a judged day), left out one block at a time."""
    nb = blocks.shape[1]
    if m == 0:
        out[:] = 0.0
        return
    if gaps:
        _block_medians_sorted(blocks, idx, m, buf, out)
        return
    lo_rank = (m - 1) // 2
    hi_rank = m // 2
    lo = out  # the lower middle value, then the median
    hi = buf[:nb]
    for i in range(m):
        vi = blocks[idx[i]]
        rank[:] = 0
        for j in range(m):
            vj = blocks[idx[j]]
            if j < i:
                for b in range(nb):
                    rank[b] += vj[b] <= vi[b]
            elif j > i:
                for b in range(nb):
                    rank[b] += vj[b] < vi[b]
        for b in range(nb):
            if rank[b] == lo_rank:
                lo[b] = vi[b]
            if rank[b] == hi_rank:
                hi[b] = vi[b]
    if lo_rank != hi_rank:
        for b in range(nb):
            lo[b] = lo[b] + 0.5 * (hi[b] - lo[b])


@njit(cache=True, nogil=True)
def _block_medians_sorted(blocks: Arr, idx: Arr, m: int, buf: Arr, out: Arr) -> None:  # pragma: no cover - compiled
    """:func:`_block_medians` leaving NaN out, a block at a time."""
    nb = blocks.shape[1]
    for b in range(nb):
        k = 0
        for j in range(m):
            v = blocks[idx[j], b]
            if not math.isnan(v):
                buf[k] = v
                k += 1
        v = _quantile(buf, k, 0.5)
        out[b] = 0.0 if math.isnan(v) else v


@njit(cache=True, nogil=True)
def _gather(values: Arr, pick: Arr, tix: Arr, g: int, buf: Arr) -> int:  # pragma: no cover - compiled
    """The picked days' ``values`` (of type ``g``; every type where ``g < 0``) that are not
    NaN, into ``buf``; their count."""
    k = 0
    for d in range(len(values)):
        if pick[d] and (g < 0 or tix[d] == g) and not math.isnan(values[d]):
            buf[k] = values[d]
            k += 1
    return k


@njit(cache=True, nogil=True)
def _median_or_0(values: Arr, pick: Arr, tix: Arr, g: int, buf: Arr) -> float:  # pragma: no cover - compiled
    """The median of :func:`_gather`'s values; 0 where there are none."""
    v = _quantile(buf, _gather(values, pick, tix, g, buf), 0.5)
    return 0.0 if math.isnan(v) else v


@njit(cache=True, nogil=True)
def _usual(
    blocks: Arr,
    run: Arr,
    rough: Arr,
    energy: Arr,
    pick: Arr,
    tix: Arr,
    types: int,
    first: bool,
    keep_b: Arr,
    keep_run: Arr,
    keep_rough: Arr,
    p: Arr,
    out_b: Arr,
    out_run: Arr,
    out_rough: Arr,
    buf: Arr,
    w_b: Arr,
    idx: Arr,
    rank: Arr,
    gaps: bool,
) -> None:  # pragma: no cover - compiled
    """One customer's usual day per type (``observer._usual``): ``first`` the first pass (the
    ``usual_top`` share of the picked days with most energy), else the second (the picked
    days, falling back on ``keep_*``)."""
    nd, nb = blocks.shape
    usual_top, min_type_days, min_usual_days = p[0], int(p[1]), int(p[2])
    q = 1.0 - usual_top
    short = False
    if first:
        for g in range(types):
            c = 0
            for d in range(nd):
                if pick[d] and tix[d] == g:
                    c += 1
            if c < min_type_days:
                short = True
    w_run = 0.0
    w_rough = 0.0
    if short:  # the window's usual day
        cut = _quantile(buf, _gather(energy, pick, tix, -1, buf), q)
        m = 0
        for d in range(nd):
            if pick[d] and energy[d] >= cut:
                idx[m] = d
                m += 1
        _block_medians(blocks, idx, m, buf, w_b, rank, gaps)
        w_run = _median_or_0(run, pick, tix, -1, buf)
        w_rough = _median_or_0(rough, pick, tix, -1, buf)
    for g in range(types):
        count = 0
        for d in range(nd):
            if pick[d] and tix[d] == g:
                count += 1
        m = 0
        if first:
            ok = count >= min_type_days
            cut = _quantile(buf, _gather(energy, pick, tix, g, buf), q)
            for d in range(nd):
                if pick[d] and tix[d] == g and energy[d] >= cut:
                    idx[m] = d
                    m += 1
        else:
            ok = count >= min_usual_days
            for d in range(nd):
                if pick[d] and tix[d] == g:
                    idx[m] = d
                    m += 1
        if not ok:
            for b in range(nb):
                out_b[g, b] = w_b[b] if first else keep_b[g, b]
            out_run[g] = w_run if first else keep_run[g]
            out_rough[g] = w_rough if first else keep_rough[g]
            continue
        _block_medians(blocks, idx, m, buf, out_b[g], rank, gaps)
        out_run[g] = _median_or_0(run, pick, tix, g, buf)
        out_rough[g] = _median_or_0(rough, pick, tix, g, buf)


@njit(cache=True, nogil=True)
def _strengths(
    bz: Arr,
    x_sum: Arr,
    x_sq: Arr,
    run0: Arr,
    rough0: Arr,
    seen: Arr,
    tix: Arr,
    types: int,
    u_b: Arr,
    u_run: Arr,
    u_rough: Arr,
    r: Arr,
    out: Arr,
    mu: Arr,
    suu: Arr,
    c_ur: Arr,
    cv_u: Arr,
) -> None:  # pragma: no cover
    """Each seen day's strength (the strongest pattern, ``observer._day_strengths``) against
    the usual day of its type; 0 for a day not seen."""
    nd, nb = bz.shape
    eps = 1e-9
    min_usual_cv, min_reverse_gap = r[0], r[1]
    low_lo, low_hi, flat_lo, flat_hi = r[2], r[3], r[4], r[5]
    zero_lo, zero_hi, rough_lo, rough_hi = r[6], r[7], r[8], r[9]
    rev_lo, rev_hi, shape_lo, shape_hi = r[10], r[11], r[12], r[13]
    for g in range(types):
        s = 0.0
        ss = 0.0
        sr = 0.0
        for b in range(nb):
            s += u_b[g, b]
            ss += u_b[g, b] * u_b[g, b]
            sr += u_b[g, b] * u_b[g, nb - 1 - b]
        m = s / nb
        mu[g] = m
        suu[g] = max(ss - nb * m * m, 0.0)
        sur = sr - nb * m * m
        c_ur[g] = sur / suu[g] if suu[g] > 0 else 0.0
        cv_u[g] = math.sqrt(suu[g] / nb) / max(m, eps)
    for d in range(nd):
        if not seen[d]:
            out[d] = 0.0
            continue
        g = tix[d]
        mx = x_sum[d] / nb
        m = mu[g]
        sxx = max(x_sq[d] - nb * mx * mx, 0.0)
        pu = 0.0
        pr = 0.0
        for b in range(nb):
            pu += bz[d, b] * u_b[g, b]
            pr += bz[d, b] * u_b[g, nb - 1 - b]
        sxu = pu - nb * mx * m
        sxr = pr - nb * mx * m
        norm = sxx * suu[g]
        c_u = sxu / math.sqrt(norm) if norm > 0 else 0.0
        c_r = sxr / math.sqrt(norm) if norm > 0 else 0.0
        cv_b = math.sqrt(sxx / nb) / max(mx, eps)
        shaped = cv_u[g] > min_usual_cv
        best = _ramp(1.0 - x_sum[d] / max(nb * m, eps), low_lo, low_hi)
        if shaped:
            best = max(best, _ramp(1.0 - cv_b / max(cv_u[g], eps), flat_lo, flat_hi))
            best = max(best, _ramp(1.0 - c_u, shape_lo, shape_hi))
        best = max(best, _ramp(run0[d] - u_run[g], zero_lo, zero_hi))
        best = max(best, _ramp(rough0[d] - u_rough[g], rough_lo, rough_hi))
        gap = max(1.0 - c_ur[g], min_reverse_gap)
        best = max(best, _ramp((c_r - c_u) / gap, rev_lo, rev_hi))
        v = x_sum[d] + x_sq[d] + c_u + c_r + cv_b
        out[d] = best if not math.isnan(v) else np.inf  # not finite: let the customer through


@njit(cache=True, nogil=True)
def _day_parts(
    blocks: Arr,
    run: Arr,
    rough: Arr,
    tix: Arr,
    types: int,
    p: Arr,
    r: Arr,
    n_min_days: int,
    top_days: int,
    rule_nat: Arr,
) -> Arr:  # pragma: no cover
    n, nd, nb = blocks.shape
    out = np.full(n, -1.0)
    bz = np.zeros((nd, nb))
    x_sum = np.zeros(nd)
    x_sq = np.zeros(nd)
    run0 = np.zeros(nd)
    rough0 = np.zeros(nd)
    energy = np.zeros(nd)
    seen = np.zeros(nd, dtype=np.bool_)
    pick = np.zeros(nd, dtype=np.bool_)
    base = np.zeros(nd, dtype=np.bool_)
    buf = np.zeros(max(nd, nb, 2))
    rank = np.zeros(nb, dtype=np.int32)
    strength = np.zeros(nd)
    u1_b = np.zeros((types, nb))
    u1_run = np.zeros(types)
    u1_rough = np.zeros(types)
    u2_b = np.zeros((types, nb))
    u2_run = np.zeros(types)
    u2_rough = np.zeros(types)
    blk = np.zeros((nd, nb), dtype=blocks.dtype)  # ranked as kept (float32: twice the lanes)
    w_b = np.zeros(nb)
    idx = np.zeros(nd, dtype=np.int64)
    mu = np.zeros(types)
    suu = np.zeros(types)
    c_ur = np.zeros(types)
    cv_u = np.zeros(types)
    min_usual_cv, flat_hi, zero_lo, rough_lo = rule_nat[0], rule_nat[1], rule_nat[2], rule_nat[3]
    suspect_day = rule_nat[4]
    k_top = min(top_days, nd)
    for c in range(n):
        days = 0
        for d in range(nd):
            seen[d] = not math.isnan(run[c, d])
            if seen[d]:
                days += 1
        if days < n_min_days:
            continue  # never judged
        gaps = False  # a seen day with a block without a value (never from the summaries)
        for d in range(nd):
            s = 0.0
            ss = 0.0
            for b in range(nb):
                v = float(blocks[c, d, b])
                blk[d, b] = v
                if math.isnan(v):
                    gaps = gaps or seen[d]
                    v = 0.0
                bz[d, b] = v
                s += v
                ss += v * v
            x_sum[d] = s
            x_sq[d] = ss
            energy[d] = s if seen[d] else np.nan
            run0[d] = 0.0 if math.isnan(run[c, d]) else run[c, d]
            rough0[d] = 0.0 if math.isnan(rough[c, d]) else rough[c, d]
        # the days that look used (observer._natural)
        any_shaped = False
        for d in range(nd):
            mean = x_sum[d] / nb
            var = max(x_sq[d] / nb - mean * mean, 0.0)
            cv = math.sqrt(var) / (mean if mean > 0 else 1.0)
            base[d] = seen[d] and cv >= min_usual_cv * (1.0 - flat_hi)
            any_shaped = any_shaped or base[d]
        if not any_shaped:
            for d in range(nd):
                base[d] = seen[d]
        short = np.inf
        for d in range(nd):
            if base[d] and run0[d] < short:
                short = run0[d]
        s1 = np.inf
        s2 = np.inf
        for d in range(nd):
            if base[d] and run0[d] < short + zero_lo:
                v = rough0[d]
                if v < s1:
                    s2 = s1
                    s1 = v
                elif v < s2:
                    s2 = v
        smooth = s2 if nd > 1 else s1
        if math.isinf(smooth):
            smooth = s1
        any_nat = False
        for d in range(nd):
            pick[d] = base[d] and rough0[d] < smooth + rough_lo
            any_nat = any_nat or pick[d]
        if not any_nat:
            for d in range(nd):
                pick[d] = seen[d]
        # the first usual day, the day strengths against it, the second usual day from the calm days
        _usual(
            blk,
            run[c],
            rough[c],
            energy,
            pick,
            tix,
            types,
            True,
            u1_b,
            u1_run,
            u1_rough,
            p,
            u1_b,
            u1_run,
            u1_rough,
            buf,
            w_b,
            idx,
            rank,
            gaps,
        )
        _strengths(
            bz, x_sum, x_sq, run0, rough0, seen, tix, types, u1_b, u1_run, u1_rough, r, strength, mu, suu, c_ur, cv_u
        )
        for d in range(nd):
            pick[d] = seen[d] and strength[d] < suspect_day
        _usual(
            blk,
            run[c],
            rough[c],
            energy,
            pick,
            tix,
            types,
            False,
            u1_b,
            u1_run,
            u1_rough,
            p,
            u2_b,
            u2_run,
            u2_rough,
            buf,
            w_b,
            idx,
            rank,
            gaps,
        )
        _strengths(
            bz, x_sum, x_sq, run0, rough0, seen, tix, types, u2_b, u2_run, u2_rough, r, strength, mu, suu, c_ur, cv_u
        )
        # the mean of the top_days strongest (unseen days count 0)
        total = 0.0
        for _ in range(k_top):
            best = -1.0
            at = 0
            for d in range(nd):
                if strength[d] > best:
                    best = strength[d]
                    at = d
            total += best
            strength[at] = -2.0
        out[c] = total / k_top
    return out


def day_parts(
    blocks: np.ndarray, run: np.ndarray, rough: np.ndarray, tix: np.ndarray, rules: ObserverRules
) -> np.ndarray:
    """Per customer of a chunk (``blocks`` (customers, days, blocks), NaN where no day; ``run``,
    ``rough`` (customers, days)), the day part as the judging computes it, up to rounding; -1
    for a customer with fewer than ``min_days`` days (never judged)."""
    types = int(tix.max()) + 1 if len(tix) else 0
    p = np.array([rules.usual_top, rules.min_type_days, rules.min_usual_days], dtype=np.float64)
    r = np.array(
        [
            rules.min_usual_cv,
            rules.min_reverse_gap,
            rules.low.lo,
            rules.low.hi,
            rules.flat.lo,
            rules.flat.hi,
            rules.zero_slots.lo,
            rules.zero_slots.hi,
            rules.rough.lo,
            rules.rough.hi,
            rules.reverse.lo,
            rules.reverse.hi,
            rules.shape.lo,
            rules.shape.hi,
        ],
        dtype=np.float64,
    )
    nat = np.array(
        [rules.min_usual_cv, rules.flat.hi, rules.zero_slots.lo, rules.rough.lo, rules.suspect_day], dtype=np.float64
    )
    return _day_parts(
        # as given: a C array, or ``observer``'s chunk held as (days, blocks, customers) and given
        # transposed (numba compiles a second specialisation for it; the same loops, the same figures)
        blocks,
        np.ascontiguousarray(run, dtype=np.float64),
        np.ascontiguousarray(rough, dtype=np.float64),
        np.ascontiguousarray(tix, dtype=np.int64),
        types,
        p,
        r,
        rules.min_days,
        rules.top_days,
        nat,
    )


def worth_judging(
    blocks: np.ndarray, run: np.ndarray, rough: np.ndarray, tix: np.ndarray, rules: ObserverRules
) -> np.ndarray:
    """Whether each customer of the chunk may pass the day ramp's low end (``observer``'s
    ``prefilter``): its compiled day part is at least ``days.lo`` less :data:`MARGIN`."""
    return day_parts(blocks, run, rough, tix, rules) >= rules.days.lo - MARGIN


# -- a day's summary (``observer.day_summaries``), a piece of curves at a time ----------------


@njit(cache=True, nogil=True)
def _summary_pass(
    x: Arr, mult: Arr, kwh: Arr, nb: int, zero_kwh: float, floor_kwh: float, blocks: Arr, out: Arr, logs: Arr
) -> None:  # pragma: no cover - compiled
    """Each row's blocks, kWh, share collected, longest zero run and filled kWh (``out`` columns
    0-3), and the slots' ``max(present, floor)`` into ``logs`` (their logarithms are numpy's)."""
    n, slots = x.shape
    per = slots // nb
    row = np.empty(slots)
    got = np.empty(slots, dtype=np.bool_)
    for i in range(n):
        m = mult[i]
        count = 0
        psum = 0.0
        for s in range(slots):
            v = x[i, s] * m
            row[s] = v
            g = not math.isnan(v)
            got[s] = g
            p = v if g else 0.0
            psum = p if s == 0 else psum + p  # in slot order, as numpy sums a slot-major row
            count += g
            logs[i, s] = max(p, floor_kwh) if g else np.nan  # a step from or to it: none
        k = kwh[i]
        rest = 0.0 if math.isnan(k) else max(k - psum, 0.0)
        gaps = slots - count
        fill = rest / max(gaps, 1) if gaps > 0 else 0.0
        total = 0.0
        filled = 0.0
        run = 0.0
        cur = 0.0
        for s in range(slots):
            g = got[s]
            f = row[s] if g else fill
            total = f if s == 0 else total + f
            e = 0.0 if g else fill
            filled = e if s == 0 else filled + e
            if g and row[s] <= zero_kwh:
                cur += 1.0
            else:
                cur = 0.0
            if cur > run:
                run = cur
            row[s] = f
        for b in range(nb):
            acc = row[b * per]
            for j in range(1, per):
                acc += row[b * per + j]
            blocks[i, b] = acc
        out[i, 0] = total
        out[i, 1] = count / slots
        out[i, 2] = run
        out[i, 3] = filled


@njit(cache=True, nogil=True)
def _order_stat(values: Arr, k: int, want: int, work: Arr) -> float:  # pragma: no cover - compiled
    """The ``want``-th smallest of ``values[:k]`` (0-based; no NaN; ``values`` unchanged): rounds
    of a pivot (the median of three), counting the values under it and at most it, then keeping
    the side that holds the one wanted in ``work``. The counting and the keeping are
    branch-free: a step's few dozen values compared with a pivot mispredict a branch for
    about half of them."""
    src = values
    n = k
    while True:
        a = src[0]
        b = src[n // 2]
        c = src[n - 1]
        pivot = max(min(a, b), min(max(a, b), c))
        less = 0
        most = 0
        for i in range(n):
            v = src[i]
            less += v < pivot
            most += v <= pivot
        if want < less:
            w = 0
            for i in range(n):
                v = src[i]
                work[w] = v
                w += v < pivot
        elif want < most:
            return pivot
        else:
            w = 0
            for i in range(n):
                v = src[i]
                work[w] = v
                w += v > pivot
            want -= most
        src = work
        n = w


@njit(cache=True, nogil=True)
def _rough_pass(logs: Arr, rough: Arr) -> None:  # pragma: no cover - compiled
    """Each row's median |difference| of consecutive slots' logarithms (NaN for a slot not
    collected: no step from or to it; NaN where no step): ``observer._row_median``'s figure."""
    n, slots = logs.shape
    buf = np.empty(slots)
    work = np.empty(slots)
    for i in range(n):
        k = 0
        for s in range(1, slots):
            d = abs(logs[i, s] - logs[i, s - 1])
            if not math.isnan(d):
                buf[k] = d
                k += 1
        if k == 0:
            rough[i] = np.nan
            continue
        top = k - 1
        pos = 0.5 * top
        lo = math.floor(pos)
        hi = min(lo + 1, top)
        a = _order_stat(buf, k, lo, work)
        if hi > lo:
            # the next order statistic: a again where more than lo + 1 values are at most a,
            # else the least value above a
            most = 0
            b = np.inf
            for j in range(k):
                v = buf[j]
                most += v <= a
                if v > a and v < b:
                    b = v
            if most > hi:
                b = a
            rough[i] = a + (pos - lo) * (b - a)
        else:
            rough[i] = a  # numpy's a + (pos - lo) * 0.0: a itself (a >= 0, never -0.0)


def summarise_rows(
    x: np.ndarray, mult: np.ndarray, kwh: np.ndarray, nb: int, zero_kwh: float, floor_kwh: float
) -> dict[str, np.ndarray]:
    """A piece of a day's curves summarised (``observer.Summariser``): ``x`` (rows, slots) meter
    side, NaN where not collected; ``mult`` the multipliers; ``kwh`` the day's registers (NaN
    where none). The figures ``observer._summarise`` computes with numpy, bit for bit: the same
    sums in the same order, the same logarithms (numpy's), the same medians."""
    x = np.asarray(x, dtype=np.float64)
    if not x.flags.f_contiguous:  # slot-major as polars gives it (no transposed copy), else row-major
        x = np.ascontiguousarray(x)
    n, slots = x.shape
    mult = np.ascontiguousarray(mult, dtype=np.float64)
    blocks = np.empty((n, nb))
    out = np.empty((n, 4))
    logs = np.empty((n, slots))
    _summary_pass(x, mult, np.ascontiguousarray(kwh, dtype=np.float64), nb, zero_kwh, floor_kwh, blocks, out, logs)
    np.log(logs, out=logs)
    rough = np.empty(n)
    _rough_pass(logs, rough)
    return {
        "blocks": blocks,
        "kwh": out[:, 0].copy(),
        "actual": out[:, 1].copy(),
        "zero_run": out[:, 2].copy(),
        "filled": out[:, 3].copy(),
        "rough": rough,
    }


__all__ = ["MARGIN", "day_parts", "summarise_rows", "worth_judging"]
