"""Which meters get which injected fault, decided once before the first day."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from meterlake.schemas.events import EVENT_CODES

from . import _shapes as sh
from . import _topology as tp
from ._topology import UNIT

EV = {c: i for i, c in enumerate(EVENT_CODES)}
THEFT_KINDS = ("theft_bypass", "theft_stopped", "theft_reversed")

# --- small vectorised helpers shared with the simulation ---------------------------------


def dates(start: dt.date, offsets: np.ndarray | int, n: int) -> pl.Series:
    off = np.broadcast_to(np.asarray(offsets, dtype=np.int64), (n,))
    return pl.Series(np.datetime64(start, "D") + off.astype("timedelta64[D]"), dtype=pl.Date)


def gather_code(codes: pl.Series, idx: np.ndarray) -> pl.Series:
    """codes[idx] with null where idx < 0."""
    idx = np.asarray(idx, dtype=np.int64)
    s = codes.gather(np.where(idx < 0, 0, idx))
    neg = np.flatnonzero(idx < 0)
    return s.scatter(neg, None) if len(neg) else s


def text(values: str | Sequence[str | None], n: int) -> pl.Series:
    if isinstance(values, str):
        return pl.repeat(values, n, dtype=pl.String, eager=True)
    return pl.Series(values, dtype=pl.String)


def money(cents: np.ndarray) -> pl.Series:
    """Signed integer cents -> "-12.34"."""
    cents = np.asarray(cents, dtype=np.int64)
    a = np.abs(cents)
    return (
        pl.DataFrame({"neg": cents < 0, "i": a // 100, "f": a % 100})
        .select(
            pl.format(
                "{}{}.{}",
                pl.when(pl.col.neg).then(pl.lit("-")).otherwise(pl.lit("")),
                pl.col.i,
                pl.col.f.cast(pl.String).str.zfill(2),
            )
        )
        .to_series()
    )


def reading(units: np.ndarray, four: np.ndarray) -> pl.Series:
    """Register units (1e-4 kWh, >= 0) -> text with 2 decimals, or 4 where ``four``."""
    units = np.asarray(units, dtype=np.int64)
    return (
        pl.DataFrame({"i": units // UNIT, "f": units % UNIT, "four": np.asarray(four, dtype=bool)})
        .select(
            pl.format(
                "{}.{}",
                pl.col.i,
                pl.when(pl.col.four)
                .then(pl.col.f.cast(pl.String).str.zfill(4))
                .otherwise((pl.col.f // 100).cast(pl.String).str.zfill(2)),
            )
        )
        .to_series()
    )


def hhmm(seconds: np.ndarray) -> pl.Series:
    s = np.asarray(seconds, dtype=np.int64)
    return (
        pl.DataFrame({"h": s // 3600, "m": s % 3600 // 60})
        .select(pl.format("{}:{}", pl.col.h.cast(pl.String).str.zfill(2), pl.col.m.cast(pl.String).str.zfill(2)))
        .to_series()
    )


def truth_rows(
    topo: tp.Topology,
    kind: str,
    start: dt.date,
    idx: np.ndarray,
    start_off: np.ndarray | int,
    end_off: np.ndarray | int,
    detail: pl.Series | str,
    area: np.ndarray | None = None,
) -> pl.DataFrame:
    """Rows of ``_truth/injections.csv`` for the meters ``idx`` (internal indices)."""
    idx = np.asarray(idx, dtype=np.int64)
    n = len(idx)
    return pl.DataFrame(
        {
            "kind": text(kind, n),
            "meter_id": topo.meter_id.gather(idx),
            "customer_id": topo.customer_id.gather(idx),
            "area_id": gather_code(topo.area_code, topo.area[idx] if area is None else area),
            "start_date": dates(start, start_off, n),
            "end_date": dates(start, end_off, n),
            "detail": text(detail, n) if isinstance(detail, str) else detail.cast(pl.String).alias("detail"),
        }
    )


def other_area(topo: tp.Topology, areas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another area for each of ``areas``: on the same feeder when it has more than one."""
    areas = np.asarray(areas, dtype=np.int64)
    f = topo.area_feeder[areas]
    first = np.searchsorted(topo.area_feeder, f)
    count = np.bincount(topo.area_feeder, minlength=topo.n_feeder)[f]
    k = rng.integers(1, np.maximum(count, 2))
    same = first + (areas - first + k) % np.maximum(count, 1)
    other = (areas + rng.integers(1, max(topo.n_area, 2), len(areas))) % topo.n_area
    return np.where(count > 1, same, other).astype(np.int32)


def neighbour_ratio(values: np.ndarray, choices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A different standard ratio one or two steps away (the 60-written-for-80 error)."""
    idx = np.clip(np.searchsorted(choices, values), 0, len(choices) - 1)
    step = rng.choice(np.array([-2, -1, 1, 2]), len(values))
    new = np.clip(idx + step, 0, len(choices) - 1)
    new = np.where(new == idx, np.clip(idx - step, 0, len(choices) - 1), new)
    return choices[new].astype(float)


def count(rate: float, pool: int, minimum: int = 2) -> int:
    """``rate`` of ``pool``, at least ``minimum`` (a few of each kind at small sizes)."""
    return int(min(pool, max(minimum, round(rate * pool))))


# --- the plan -----------------------------------------------------------------------------


@dataclass
class Plan:
    theft_idx: np.ndarray  # customers, sorted
    theft_kind: np.ndarray  # 1 bypass, 2 stopped, 3 reversed wiring
    theft_day: np.ndarray  # day index the theft starts
    theft_slot: np.ndarray  # slot (0-based) it starts in on that day
    theft_factor: np.ndarray  # metered share for a bypass
    theft_has_event: np.ndarray
    theft_code: np.ndarray  # EV index of the tamper event
    mult_archive: np.ndarray  # per meter, the multiplier the archive states
    archive_area: np.ndarray  # per meter, the first snapshot's area
    move_idx: np.ndarray
    move_to: np.ndarray
    move_day: int  # day index of the second snapshot; -1 when there is none
    rollover_idx: np.ndarray
    mismatch_idx: np.ndarray  # prepay customers, sorted
    mismatch_day: np.ndarray
    mismatch_kind: np.ndarray  # 0 a purchase not loaded into the meter, 1 wrong price in the meter
    overdraft_idx: np.ndarray
    truth: list[pl.DataFrame]


def make_plan(topo: tp.Topology, days: int, start: dt.date, rng: np.random.Generator) -> Plan:
    n_cust = topo.n_cust
    cust = np.arange(n_cust)
    area_cust = cust[topo.area[:n_cust] >= 0]
    eligible = area_cust[(topo.pv_kw[area_cust] == 0) & ~topo.vacant[area_cust] & (topo.base_kwh[area_cust] >= 2.0)]
    pool = rng.permutation(eligible)
    used = np.zeros(topo.n, dtype=bool)

    def take(k: int, mask: np.ndarray | None = None) -> np.ndarray:
        free = pool[~used[pool]]
        if mask is not None:
            free = free[mask[free]]
        out = np.sort(free[:k])
        used[out] = True
        return out

    n_ac = len(area_cust)
    each = count(0.01 / 3, n_ac)  # ~1% of area customers steal: the rural rates utilities report
    thefts = [take(each) for _ in range(3)]
    none = np.array([], dtype=np.int64)
    wrong = take(count(0.002, n_ac)) if topo.n_area >= 2 else none
    moves = take(count(0.0005, n_ac)) if days >= 7 and topo.n_area >= 2 else none
    rollover = take(count(0.0005, n_ac), (topo.cls == tp.C_RES) & ~topo.prepay)
    n_prepay = int(topo.prepay.sum())
    mismatch = take(count(0.003, n_prepay), topo.prepay)
    overdraft = take(count(0.003, n_prepay), topo.prepay & (topo.cls == tp.C_RES))

    truth: list[pl.DataFrame] = []
    last = days - 1

    # thefts: from a slot of a day inside the window (day 0 only when there is one day),
    # so each thief has clean days before the drop
    theft_idx = np.concatenate(thefts)
    theft_kind = np.concatenate([np.full(len(t), k + 1, dtype=np.int8) for k, t in enumerate(thefts)])
    order = np.argsort(theft_idx, kind="stable")
    theft_idx, theft_kind = theft_idx[order], theft_kind[order]
    nt = len(theft_idx)
    theft_day = rng.integers(1, days, nt) if days >= 2 else np.zeros(nt, dtype=np.int64)
    theft_slot = rng.integers(16, 88, nt)
    theft_factor = np.where(theft_kind == 1, rng.uniform(0.3, 0.6, nt), 0.0)
    has_event = rng.random(nt) < 0.6
    pick = rng.integers(0, 4, nt)
    bypass_codes = np.array(
        [EV["TERMINAL_COVER_OPEN"], EV["MAGNETIC_INTERFERENCE"], EV["CURRENT_LOSS"], EV["COVER_OPEN"]]
    )
    stopped_codes = np.array([EV["COVER_OPEN"], EV["MAGNETIC_INTERFERENCE"], EV["VOLTAGE_LOSS"], EV["COVER_OPEN"]])
    code = np.select(
        [theft_kind == 1, theft_kind == 2], [bypass_codes[pick], stopped_codes[pick]], EV["TERMINAL_COVER_OPEN"]
    )
    # current loss needs a three-phase meter
    code = np.where((code == EV["CURRENT_LOSS"]) & ~topo.three_phase[theft_idx], EV["TERMINAL_COVER_OPEN"], code)
    ev_name = np.array(EVENT_CODES)[code]
    detail = (
        pl.DataFrame(
            {
                "kind": theft_kind,
                "share": np.round(theft_factor, 2),
                "from": hhmm(theft_slot * 900),
                "events": np.where(has_event, ev_name, "none"),
                "rf": np.where(has_event & (theft_kind == 3), ",REVERSE_FLOW", ""),
            }
        )
        .select(
            pl.format(
                "from {}{}; events: {}{}",
                pl.col("from"),
                pl.when(pl.col.kind == 1).then(pl.format("; metered share {}", pl.col.share)).otherwise(pl.lit("")),
                pl.col.events,
                pl.col.rf,
            )
        )
        .to_series()
    )
    for k, kind in enumerate(THEFT_KINDS, start=1):
        m = theft_kind == k
        truth.append(truth_rows(topo, kind, start, theft_idx[m], theft_day[m], last, detail.filter(pl.Series(m))))

    # multiplier errors: area masters and customers behind a CT
    cand = np.concatenate([topo.master_of_area, cust[(topo.mult[:n_cust] > 1) & ~used[:n_cust]]])
    merr = np.sort(rng.choice(cand, count(0.01, len(cand)), replace=False)) if len(cand) else none
    mult_archive = topo.mult.copy()
    is_master = topo.role[merr] == tp.ROLE_MASTER
    direct = (topo.role[merr] == tp.ROLE_CUSTOMER) & (topo.area[merr] < 0)
    mult_archive[merr] = np.select(
        [is_master, direct],
        [
            neighbour_ratio(topo.mult[merr], sh.LV_CT_A / 5.0, rng),
            neighbour_ratio(topo.mult[merr], sh.HV_CT_A / 5.0 * sh.PT_10KV, rng),
        ],
        neighbour_ratio(topo.mult[merr], np.concatenate([sh.SMALL_CT_A, sh.LV_CT_A]) / 5.0, rng),
    )
    detail = (
        pl.DataFrame({"a": mult_archive[merr].astype(np.int64), "t": topo.mult[merr].astype(np.int64)})
        .select(pl.format("archive multiplier {}, true {}", pl.col.a, pl.col.t))
        .to_series()
    )
    truth.append(truth_rows(topo, "multiplier_error", start, merr, 0, last, detail))

    # customers mapped to the wrong area in the archive (physically they stay put)
    archive_area = topo.area.copy()
    if len(wrong):
        archive_area[wrong] = other_area(topo, topo.area[wrong], rng)
        detail = "archive area " + gather_code(topo.area_code, archive_area[wrong])
        truth.append(truth_rows(topo, "wrong_area", start, wrong, 0, last, detail))

    # genuine moves between areas, delivered in the second archive snapshot
    move_day = days // 2 if days >= 7 else -1
    move_to = other_area(topo, topo.area[moves], rng) if len(moves) else np.array([], dtype=np.int32)
    if len(moves):
        detail = "moved from area " + gather_code(topo.area_code, topo.area[moves]) + " (second archive snapshot)"
        truth.append(truth_rows(topo, "area_change", start, moves, move_day, last, detail, area=move_to))

    # rollover candidates get a 5-digit register; the rollovers themselves are recorded
    # from the readings as generated
    topo.reg_max[rollover] = np.where(rng.random(len(rollover)) < 0.5, 100000 * UNIT, 9999999 * 100)

    mismatch_day = rng.integers(0, days, len(mismatch))
    mismatch_kind = np.where((rng.random(len(mismatch)) < 0.4) & (days >= 7), 1, 0)
    wp = mismatch_kind == 1
    if wp.any():
        truth.append(
            truth_rows(
                topo,
                "prepay_mismatch",
                start,
                mismatch[wp],
                mismatch_day[wp],
                last,
                "the meter deducts 1.25 x the tariff price",
            )
        )
    return Plan(
        theft_idx=theft_idx,
        theft_kind=theft_kind,
        theft_day=theft_day,
        theft_slot=theft_slot,
        theft_factor=theft_factor,
        theft_has_event=has_event,
        theft_code=code,
        mult_archive=mult_archive,
        archive_area=archive_area,
        move_idx=moves,
        move_to=move_to,
        move_day=move_day,
        rollover_idx=rollover,
        mismatch_idx=mismatch,
        mismatch_day=mismatch_day,
        mismatch_kind=mismatch_kind,
        overdraft_idx=overdraft,
        truth=truth,
    )
