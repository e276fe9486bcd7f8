"""Theft that hides in the shape, found with the area master meter as observer. Pure.

False-data injection (the six attacks of Jokar, Arianpoo and Leung, "Electricity theft
detection in AMI using customers' consumption patterns", IEEE Trans. Smart Grid 2016)
changes what a meter records on some days: a scaled day (h1), a zero window of hours
(h2), every slot scaled by its own random factor (h3, or of the day's mean: h4), a flat
day at the day's mean (h5), the day reversed (h6). A linear balance with one
coefficient per customer fits them poorly: the unrecorded energy comes and goes by
day and follows the true shape, not the recorded one. The area master meter records
the true sum on every day, so what the customer's meter hides shows up in the area's
loss on the days it hides it.

Two steps, so that memory stays bounded (a day's curves :data:`SUMMARY_ROWS` rows at a
time, then the window's per-customer daily summaries :data:`CHUNK` customers at a time):

1. :func:`day_summaries`, once per day, from that day's curves and ``meter_daily``:
   per customer its energy in ``blocks`` equal blocks of the day (primary kWh; slots not
   collected filled from the day's register, evenly, and counted as filled), the
   longest run of zero slots and the slot roughness (median |Δ ln kWh| between
   consecutive slots); per area the master's blocks and the sum of its customers'. The
   anomalies stage keeps them in the lake, so a date summarises its own day only.
2. :func:`indicator` (summaries in memory) or :func:`indicator_of_days` (each day's
   kept summaries read a span of rows at a time, :class:`DayRows`), per detection date,
   over the window's summaries. A cheap look first (:func:`_screen`, ``screen`` of
   ``config/anomaly.toml [observer]``): the same day strengths against references that
   need no median over blocks (the upper quartile of the customer's days' energy, its
   most shaped day, the mean of its days, its second smoothest day and shortest zero run);
   only a customer whose three strongest days reach ``screen`` on average is judged, the
   others score 0 (``screen`` 0, the setting: everyone is judged). A ``prefilter`` (the stage
   passes ``meterlake/observer_kernel.py``'s, compiled) may spare the judging of customers
   whose day part cannot pass its ramp's low end: they score 0 either way, so the outputs
   do not change. Judging is below; only a customer whose day part passes its ramp's low
   end can score, so the confirmation and the evidence are computed for those alone:

   * each customer's **usual day** of each day type (working days, weekend: per-block
     median over its window days of that type that look used (:func:`_natural`: not far
     rougher slot to slot than its smoothest days, not flat), then again over the days
     that do not look tampered against it, so days tampered with do not set the usual
     shape even when they are most of the window; an office's Sunday is compared with its
     Sundays);
   * per day, its recorded day against its usual day (each a strength in [0, 1] by a
     ramp of ``config/anomaly.toml [observer]``): ``low`` (energy far under the usual:
     h1, h3, h4), ``flat`` (much flatter than usual: h5, h4), ``zero`` (a zero run
     longer than usual: h2), ``rough`` (slots far noisier than usual: h3, h4),
     ``reverse`` (closer to its usual day reversed than to its usual day, scaled by how
     far reversing moves the usual day: h6), ``shape``
     (uncorrelated with its usual day); the day's strength is the strongest of them;
   * the **observer**: on the customer's suspect days, the deficit they imply (usual
     day minus recorded day, per block) against the area's excess loss of those days
     (master − Σ recorded − the area's median loss share of the master, less the
     per-block median of the window's days, so steady thefts and the steady loss do not
     count), measured against the same deficits on the customer's calm days (a
     permutation null: the area's other faults, the master's kWh steps and weekly
     cycles set the scale, not an assumed white noise; :func:`_confirmation`). A
     recorded day that is low because the use was low (a holiday, an outage: the master
     fell too) is not confirmed; a tampered day is;
   * strength = ramp(mean of the ``top_days`` strongest day strengths) × (``floor`` +
     (1 − ``floor``) · ramp(t)); below ``min_strength`` it is 0;
   * the evidence: the suspect days, their dominant pattern, the kWh they leave
     unrecorded (usual minus recorded; none for a flattened or reversed day that kept its
     total) and the kWh taken out of the hours they were used in (what a flat or
     reversed day moves to other hours, where a TOU tariff may bill it cheaper).

Cost per detection date in steady state (the window's other days already summarised),
2026-12-06, 2 shared cores at load 2-3, medians of 3 runs alternating with the code
before: on a 50,000-meter zone with a 14-day window (``meterlake generate --meters
50000 --days 15``) the day's summary 0.60 → 0.38 s CPU and the window 2.70 → 1.80 s,
the process's peak 0.96 → 0.43 GB (0.2 GB of it the interpreter and libraries); outputs
identical. On a 500,000-meter county date with an 8-day window: summary 11.3 → 3.5 s,
window 16.9 → 10.6 s, peak 3.4 → 0.8 GB; with a 14-day window ~22 s CPU (~33 s
before): the 5 s aimed at is not met. Judging only the customers the cheap look passes
(``screen``, 2026-12-06 evening): on the 500,000-meter county (``meterlake generate
--meters 500000 --days 15 --seed 7``) with a full 14-day window, the window 14.5 / 13.1 →
7.4 / 7.8 s CPU (two runs each, alternating, load 2; peak 0.8 GB); 11 of its 5,744
scoring customers lost their observer points. It stays off: on the generated 20,000-meter
zone of seed 11 it drops an h5 attacker whose flat days the judging finds reversed by
rounding noise (h5 in its area's top 5: 12 → 11 of 13; docs/domain.md, "Who is judged").
What is left either way: the look (about 4 µs a customer), reading the 14 kept days and
joining their keys, placing their rows, and the day's own summary (3.5 s). The compiled
day part (2026-12-06, night; outputs unchanged) judges with numpy only the customers that
can score, ~1.5 %: on the 50,000-meter zone the window 1.08-1.21 → 0.53-0.54 s CPU in a
warm process (plus ~0.5 s once to load numba), so ~6 s for a county's 14-day window
(benchmarks/README.md). Since 2026-12-07 the stage also summarises a day's curves with a
compiled pass per row (a :data:`Summariser`; the same figures bit for bit), finds each curve
row's member by one join for the day, numbers a steady roster by row and reads the kept
blocks straight from their row groups: at 50,000 meters the summary ~0.1 s and the window
~0.2 s less of CPU; the 5 s per steady county date is still not shown (benchmarks/README.md).
Later on 2026-12-07 (outputs identical): the customers the look lets through are judged a pool
of :data:`CHUNK` at a time, not ~75 per chunk (:class:`_Pool`); a kept day whose meters and
areas are stored as the day before's bytes is numbered from its ``actual`` alone
(:attr:`DayRows.roster`); the day's rows are put in area order by integer codes
(:func:`_area_order`) and the window's meters, numbered in area order, are not sorted again.
Later still (outputs identical): a window chunk is held day by day (:func:`_place`: a kept day's
rows go in as one copy per block, NaN only where a customer has no row) and, with a compiled
``prefilter``, looked at on a second thread while the next chunk is read; a day's curve pieces
are summarised on a second thread while the next is read (with a ``summariser``); the stage
holds the date's own day in memory for its window while its file is written (benchmarks/README.md).
The stage keeps beside each day's Parquet summaries a window copy of the numbers the window reads
(Arrow IPC, uncompressed: ``DayRows.arrays`` and ``DayRows.actual`` come from it with no decoding;
``meterlake/stages/anomalies.py``, ``_DayFile``).

Chosen by measurement on generated zones (``meterlake generate --meters 30000 --days 30``,
seed 1 tuned, seed 2 confirmed; docs/domain.md#shape-thefts-and-the-area-master-as-observer
has the tables). The area's excess loss alone does not find them: it carries every other
fault of the area (blunt and partial thefts, wrong mappings, filled slots), and a
projection of it on a customer's deficit with white-noise errors reached ROC AUC 0.6-0.77
even when the tampered days were given (an oracle), while the recorded-day strengths
reach 0.90-0.99. The observer's confirmation, once its scale came from the permutation
null, halved the honest customers reaching 0.5 and keeps a thief above honest customers
whose own days also vary (weekends, outages), which is what the top-5-of-the-area
measure rewards. Drawing the first usual day from the days that look used
(:func:`_natural`) took h3 on a 50,000-meter zone from ROC AUC 0.845 to 0.991 (24 to 33
of 34 attackers in their area's top 5; of those tampering with 10 or more of 14 days,
1 of 7 had scored) and h5 from 32 to 34, the other types and the customers stealing nothing
unchanged within one or two (docs/domain.md#shape-thefts-and-the-area-master-as-observer,
"Mostly tampered customers", has the tables).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa

from meterlake.transforms.dedup import strictly_increasing
from meterlake.transforms.frames import sort_distinct

if TYPE_CHECKING:
    from meterlake.transforms.anomaly import ObserverRules

SLOTS = 96
SLOT_COLUMNS: tuple[str, ...] = tuple(f"p{i}" for i in range(1, SLOTS + 1))
#: the meter_daily columns a day's summary reads
MEMBER_COLUMNS: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "meter_id": pl.String(),
    "area_id": pl.String(),
    "role": pl.String(),
    "multiplier": pl.Float64(),
    "kwh": pl.Float64(),
}
#: the day patterns, in the order of their strengths
PATTERNS: tuple[str, ...] = ("low", "flat", "zero", "rough", "reverse", "shape")
#: what each pattern means, in words (English, 中文)
PATTERN_WORDS: dict[str, tuple[str, str]] = {
    "low": ("far less energy than its usual day", "电量远低于其常态日"),
    "flat": (
        "flattened: much flatter than its usual day (a flat day keeps its total unless it was lowered too)",
        "曲线被拉平：较常态明显平直（总量不降则电量未少计，只是时段被抹平）",
    ),
    "zero": ("a zero run of hours its usual day does not have", "出现常态所无的数小时零电量"),
    "rough": ("slots far noisier than usual", "各点波动远大于常态"),
    "reverse": (
        "reversed in time: its usual day run backwards (the energy is recorded, at other hours)",
        "曲线时序颠倒：电量照计，但被挪到其他时段",
    ),
    "shape": ("a shape unlike its usual day", "曲线形状与常态日不符"),
}


class ObserverInputError(ValueError):
    """The curves or meter_daily rows break what the observer needs."""


def block_names(blocks: int) -> list[str]:
    """The block columns of a day's summaries: b01 .. (``blocks`` of them)."""
    return [f"b{i:02d}" for i in range(1, blocks + 1)]


#: curve rows summarised at once: a day's memory is a few arrays of this many rows x 96 slots
SUMMARY_ROWS = 16_384


#: a compiled summary of a piece of curves (the stage passes ``meterlake/observer_kernel.py``'s
#: ``summarise_rows``): ``(x, multipliers, kwh, blocks, zero_kwh, floor_kwh)`` to the figures
#: :func:`_summarise` computes with numpy, bit for bit (blocks, kwh, actual, zero_run,
#: filled, rough); or ``None`` for a piece it leaves to numpy (a small one)
Summariser = Callable[[np.ndarray, np.ndarray, np.ndarray, int, float, float], "dict[str, np.ndarray] | None"]


def day_summaries(
    curves: pl.DataFrame | pl.LazyFrame,
    members: pl.DataFrame | pl.LazyFrame,
    day: dt.date,
    rules: ObserverRules,
    summariser: Summariser | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per customer and per area, the summaries of ``day`` (see the module docstring).

    ``curves``: meter_id, p1..p96 (meter side; empty = not collected) of ``day``, one row
    per meter, read :data:`SUMMARY_ROWS` rows at a time; ``members``:
    :data:`MEMBER_COLUMNS` of ``day`` (meter_daily: area, role, multiplier, the day's kWh
    from the registers, primary side).

    Returns ``(customers, areas)``. customers: date, area_id, meter_id, b01.. (primary
    kWh per block, Float32), kwh, actual (share of slots collected), zero_run (longest
    run of zero slots among the collected ones), rough. areas: date, area_id, m01..
    (master), s01.. (Σ customers), filled_kwh (customer energy filled from registers),
    master_actual (share of the master's slots collected). ``summariser``: see :data:`Summariser`.
    """
    if SLOTS % rules.blocks:
        raise ObserverInputError(f"observer: expected blocks dividing {SLOTS}, found {rules.blocks}")
    m = members.lazy()
    have = m.collect_schema().names()
    missing = [c for c in MEMBER_COLUMNS if c not in have]
    if missing:
        raise ObserverInputError(f"observer: meter_daily lacks {missing}; it has {have}")
    m = m.filter(
        (pl.col("date") == day) & pl.col("area_id").is_not_null() & pl.col("role").is_in(["customer", "area_master"])
    ).select("meter_id", "area_id", "role", pl.col("multiplier").fill_null(1.0), "kwh")
    mem = m.collect()
    if not strictly_increasing(mem, ["meter_id"]):  # meter_daily's partition is sorted by meter, each once
        mem = mem.unique("meter_id", keep="first", maintain_order=True)
    names = block_names(rules.blocks)
    if mem.height == 0:
        return _empty(names)
    # the curves a piece at a time (each meter's summary is its own row's), then in area order;
    # each curve row's member found once for the day (one join of the meter ids, not one of
    # every member per piece: a county day has 31 pieces of 500,000 members)
    c = curves.lazy().select("meter_id", *(pl.col(s).cast(pl.Float64) for s in SLOT_COLUMNS))
    ids = curves.lazy().select("meter_id").collect()
    pairs = (
        ids.with_row_index("_c")
        .join(mem.select("meter_id").with_row_index("_m"), on="meter_id", how="inner", maintain_order="left")
        .select("_c", "_m")
    )
    c_of = pairs["_c"].to_numpy().astype(np.int64)
    m_of = pairs["_m"].to_numpy().astype(np.int64)
    del pairs
    parts = []
    member = []  # each part's rows' places in ``mem``
    # with a ``summariser`` and more than one piece, a piece is summarised on a second thread
    # while the next is read (the compiled passes release the interpreter); one piece at a time
    # in flight, the parts kept in the order read
    summarising = (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="observer-summary")
        if summariser is not None and ids.height > SUMMARY_ROWS
        else None
    )
    pending: list[Future[pl.DataFrame]] = []
    start = 0
    try:
        for batch in c.collect_batches(chunk_size=SUMMARY_ROWS):
            end = start + batch.height
            if end <= ids.height and batch["meter_id"].equals(ids["meter_id"].slice(start, batch.height)):
                a, b = np.searchsorted(c_of, [start, end])
                at = m_of[a:b]
                slots = batch.drop("meter_id")
                if b - a < batch.height or (b > a and c_of[b - 1] - c_of[a] != b - a - 1):  # not every row a member's
                    slots = slots.gather(c_of[a:b] - start)
                part = pl.concat([mem.gather(at), slots], how="horizontal")
            else:  # pieces not in the order of the ids read (never seen): joined piece by piece
                part = mem.with_row_index("_m").join(batch, on="meter_id", how="inner")
                at = part["_m"].to_numpy().astype(np.int64)
                part = part.drop("_m")
            start = end
            if part.height:
                if summarising is None:
                    parts.append(_summarise(part, rules, names, summariser))
                else:
                    if pending:
                        parts.append(pending.pop().result())
                    pending.append(summarising.submit(_summarise, part, rules, names, summariser))
                member.append(at)
            del batch, part
        parts += [f.result() for f in pending]
    finally:
        if summarising is not None:
            summarising.shutdown(cancel_futures=True)
    del ids, c_of, m_of
    # members without a curve: every slot not collected
    done = pl.concat([p.select("meter_id") for p in parts]) if parts else pl.DataFrame(schema={"meter_id": pl.String})
    rest = mem.with_row_index("_m").join(done, on="meter_id", how="anti")
    if rest.height:
        parts.append(
            _summarise(
                rest.drop("_m").with_columns(pl.lit(None, pl.Float64).alias(s) for s in SLOT_COLUMNS),
                rules,
                names,
                summariser,
            )
        )
        member.append(rest["_m"].to_numpy().astype(np.int64))
    # in area order by a gather, one chunk and no sorted flag: the sums per area below then
    # add their rows in the same order, chunks and group-by path as one frame of the day would
    every = pl.concat(parts, rechunk=True)
    order = _area_order(every, mem["meter_id"], np.concatenate(member))  # once, not per column
    out = every.select(pl.all().gather(order)).drop("role").select(pl.lit(day).alias("date"), pl.all())
    del every, parts
    customers = out.filter(pl.col("_customer")).drop("_customer", "_filled")
    masters = (
        out.filter(~pl.col("_customer"))
        .group_by("area_id")
        .agg(*(pl.col(b).sum().alias("m" + b[1:]) for b in names), pl.col("actual").min().alias("master_actual"))
    )
    sums = (
        out.filter(pl.col("_customer"))
        .group_by("area_id")
        .agg(
            *(pl.col(b).cast(pl.Float64).sum().alias("s" + b[1:]) for b in names),
            pl.col("_filled").sum().alias("filled_kwh"),
        )
    )
    areas = (
        masters.join(sums, on="area_id", how="inner")
        .with_columns(pl.lit(day).alias("date"))
        .select(
            "date",
            "area_id",
            *("m" + b[1:] for b in names),
            *("s" + b[1:] for b in names),
            "filled_kwh",
            "master_actual",
        )
        .sort("area_id")
    )
    return sort_distinct(customers, ["area_id", "meter_id"]), areas


def _codes(values: pl.Series) -> np.ndarray:
    """Each value's place among the distinct values sorted (a dense rank: the few distinct
    areas or roles are sorted, not every row)."""
    distinct = values.unique().sort()
    lookup = pl.DataFrame({values.name: distinct, "_code": np.arange(len(distinct), dtype=np.int64)})
    return values.to_frame().join(lookup, on=values.name, how="left", maintain_order="left")["_code"].to_numpy()


def _area_order(every: pl.DataFrame, meters: pl.Series, member: np.ndarray) -> pl.Series:
    """The positions of the rows of ``every`` (area_id, role, meter_id, ...) in order of area_id,
    role, meter_id. ``member``: each row's place in ``meters`` (the day's members). Where those
    are in meter order with each member once (meter_daily's partition is sorted by meter_id),
    a member's place orders the meters: the rows are sorted by the codes of their area and role
    and that place (integers), not by three columns of strings (0.3-0.6 s a county day)."""
    n = len(meters)
    once = len(member) == every.height and strictly_increasing(meters.to_frame(), [meters.name])
    if once:
        seen = np.zeros(n, dtype=bool)
        seen[member] = True
        once = int(seen.sum()) == len(member)
    if not once:
        return every.select(pl.arg_sort_by("area_id", "role", "meter_id")).to_series()
    order = np.lexsort((member, _codes(every["role"]), _codes(every["area_id"])))
    return pl.Series("order", order, dtype=pl.UInt32 if every.height < 2**32 else pl.UInt64)


def _summarise(
    frame: pl.DataFrame, rules: ObserverRules, names: list[str], summariser: Summariser | None = None
) -> pl.DataFrame:
    """The summaries of the rows of ``frame`` (meter_id, area_id, role, multiplier, kwh, p1..p96)."""
    got_by = None
    if summariser is not None:
        got_by = summariser(
            frame.select(SLOT_COLUMNS).to_numpy(),  # slot-major, as polars holds it: no transposed copy
            frame["multiplier"].to_numpy(),
            frame["kwh"].fill_null(np.nan).to_numpy(),
            rules.blocks,
            rules.zero_kwh,
            rules.floor_kwh,
        )
    if got_by is not None:
        return _summary_frame(frame, names, **got_by)
    n = frame.height
    # slot-major (Fortran order, as polars gives a frame's columns): the row sums below add
    # the slots in that order, so each meter's sums have the same bits whatever the piece
    x = np.asfortranarray(frame.select(SLOT_COLUMNS).to_numpy(), dtype=np.float64)
    x *= frame["multiplier"].to_numpy()[:, None]
    got = ~np.isnan(x)
    actual = got.sum(1) / SLOTS
    present = np.where(got, x, 0.0)
    kwh = frame["kwh"].fill_null(np.nan).to_numpy()
    # slots not collected: the rest of the day's register, evenly (none when there is none)
    rest = np.where(np.isnan(kwh), 0.0, np.maximum(kwh - present.sum(1), 0.0))
    gaps = SLOTS - got.sum(1)
    fill = np.where(gaps > 0, rest / np.maximum(gaps, 1), 0.0)
    full = np.where(got, x, fill[:, None])
    filled = np.where(got, 0.0, fill[:, None]).sum(1)
    blocks = full.reshape(n, rules.blocks, SLOTS // rules.blocks).sum(2)

    zero = got & (present <= rules.zero_kwh)
    run = np.zeros(n)
    cur = np.zeros(n)
    for s in range(SLOTS):  # 96 slots, not rows
        cur = np.where(zero[:, s], cur + 1, 0.0)
        np.maximum(run, cur, out=run)
    logs = np.log(np.maximum(present, rules.floor_kwh))
    steps = np.abs(np.diff(logs, axis=1))
    steps[~(got[:, 1:] & got[:, :-1])] = np.nan
    rough = _row_median(steps)
    return _summary_frame(frame, names, blocks, full.sum(1), actual, run, filled, rough)


def _summary_frame(
    frame: pl.DataFrame,
    names: list[str],
    blocks: np.ndarray,
    kwh: np.ndarray,
    actual: np.ndarray,
    zero_run: np.ndarray,
    filled: np.ndarray,
    rough: np.ndarray,
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "area_id": frame["area_id"],
            "role": frame["role"],
            "meter_id": frame["meter_id"],
            **{b: blocks[:, i].astype(np.float32) for i, b in enumerate(names)},
            "kwh": kwh,
            "actual": actual,
            "zero_run": zero_run.astype(np.int16),
            "rough": rough.astype(np.float32),
            "_filled": filled,
            "_customer": frame["role"].to_numpy() == "customer",
        }
    )


def _empty(names: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    customers = pl.DataFrame(
        schema={
            "date": pl.Date,
            "area_id": pl.String,
            "meter_id": pl.String,
            **dict.fromkeys(names, pl.Float32),
            "kwh": pl.Float64,
            "actual": pl.Float64,
            "zero_run": pl.Int16,
            "rough": pl.Float32,
        }
    )
    areas = pl.DataFrame(
        schema={
            "date": pl.Date,
            "area_id": pl.String,
            **{"m" + b[1:]: pl.Float64 for b in names},
            **{"s" + b[1:]: pl.Float64 for b in names},
            "filled_kwh": pl.Float64,
            "master_actual": pl.Float64,
        }
    )
    return customers, areas


# -- the window --------------------------------------------------------------------------


def _ramp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def _masked_quantile(values: np.ndarray, keep: np.ndarray, q: float = 0.5) -> np.ndarray:
    """Quantile ``q`` over axis 1 (days) of the kept entries (linear between order statistics); NaN where none is kept.

    ``keep`` has the shape of ``values``' first two axes. One sort of short contiguous rows
    (the days moved last), no per-row Python (numpy's nanquantile goes row by row).
    """
    moved = np.moveaxis(values, 1, -1)
    kept = np.moveaxis(keep.reshape(keep.shape + (1,) * (values.ndim - keep.ndim)), 1, -1) & ~np.isnan(moved)
    v = np.ascontiguousarray(np.where(kept, moved, np.array(np.inf, dtype=values.dtype)))
    v.sort(axis=-1)
    k = kept.sum(-1, keepdims=True)
    pos = q * np.maximum(k - 1, 0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(k - 1, 0))
    # float32 values are sorted as they are (half the memory) and interpolated in float64
    a = np.take_along_axis(v, lo, axis=-1).astype(np.float64)
    b = np.take_along_axis(v, hi, axis=-1).astype(np.float64)
    with np.errstate(invalid="ignore"):
        out = a + (pos - lo) * np.where(hi > lo, b - a, 0.0)
    return np.where(k > 0, out, np.nan)[..., 0]


def _zero_nan(x: np.ndarray) -> np.ndarray:
    """``np.nan_to_num(x)`` in fewer passes: NaN to 0 (an infinite value, never seen, as nan_to_num has it)."""
    out = np.where(np.isnan(x), 0.0, x)
    return np.nan_to_num(out) if np.isinf(out).any() else out


def _row_median(values: np.ndarray) -> np.ndarray:
    """Median of each row of ``values`` (2-D) over its values that are not NaN; NaN where none is:
    :func:`_masked_median`'s, the rows without NaN by a partial sort (a slot's steps are whole
    rows on most days)."""
    ok = ~np.isnan(values)
    full = ok.all(1)
    out = np.empty(len(values))
    k = values.shape[1]
    if k:
        mid = [(k - 1) // 2, k // 2]  # the order statistics of the middle: one when k is odd
        part = np.ascontiguousarray(values[full])
        part.partition(mid, axis=1)
        a, b = part[:, mid[0]], part[:, mid[1]]
        # as _masked_quantile interpolates: a + (pos - lo) * (b - a) with pos - lo 0 or 0.5
        out[full] = a + (0.5 * (k - 1) - mid[0]) * np.where(mid[1] > mid[0], b - a, 0.0)
    rest = ~full if k else np.ones(len(values), dtype=bool)
    out[rest] = _masked_median(values[rest], ok[rest])
    return out


def _masked_median(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Median over axis 1 (days) of the kept entries; NaN where none is kept."""
    return _masked_quantile(values, keep, 0.5)


def _type_days(blocks: np.ndarray, tix: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per day type: its days, their blocks (customers, days of the type, blocks), each day's
    sum and sum of squares; both passes of :func:`_day_strengths` use them."""
    out = []
    for g in range(int(tix.max()) + 1 if len(tix) else 0):  # a handful of day types, not rows
        on = np.flatnonzero(tix == g)
        x = blocks[:, on]
        out.append((on, x, x.sum(2), np.einsum("kdb,kdb->kd", x, x)))
    return out


def _day_strengths(
    typed: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    run: np.ndarray,
    rough: np.ndarray,
    usual: tuple[np.ndarray, np.ndarray, np.ndarray],
    rules: ObserverRules,
) -> np.ndarray:
    """(patterns, customers, days) strengths of each day against the usual day of its type.

    ``typed``: :func:`_type_days` of the blocks; ``usual``: (blocks (customers, types,
    blocks), zero run and roughness (customers, types)) from :func:`_usual`. Correlations
    and spreads come from sums of products (one pass over a type's days, no centred copies).
    """
    eps = 1e-9
    n, n_days = run.shape
    nb = usual[0].shape[2]
    out = np.zeros((len(PATTERNS), n, n_days))
    for g, (on, x, x_sum, x_sq) in enumerate(typed):
        if not len(on):
            continue
        u = usual[0][:, g]  # (customers, blocks)
        r = u[:, ::-1]
        mx, mu = x_sum / nb, u.mean(1)[:, None]
        sxx = np.maximum(x_sq - nb * mx * mx, 0.0)
        suu = np.maximum((u * u).sum(1)[:, None] - nb * mu * mu, 0.0)
        sxu = np.einsum("kdb,kb->kd", x, u) - nb * mx * mu
        sxr = np.einsum("kdb,kb->kd", x, r) - nb * mx * mu
        sur = (u * r).sum(1)[:, None] - nb * mu * mu
        with np.errstate(all="ignore"):
            c_u = np.where(sxx * suu > 0, sxu / np.sqrt(sxx * suu), 0.0)
            c_r = np.where(sxx * suu > 0, sxr / np.sqrt(sxx * suu), 0.0)
            c_ur = np.where(suu > 0, sur / np.where(suu > 0, suu, 1.0), 0.0)
        cv_b = np.sqrt(sxx / nb) / np.maximum(mx, eps)
        cv_u = np.sqrt(suu / nb) / np.maximum(mu, eps)
        shaped = cv_u > rules.min_usual_cv
        out[0][:, on] = _ramp(1.0 - x_sum / np.maximum(nb * mu, eps), rules.low.lo, rules.low.hi)
        out[1][:, on] = np.where(shaped, _ramp(1.0 - cv_b / np.maximum(cv_u, eps), rules.flat.lo, rules.flat.hi), 0.0)
        out[2][:, on] = _ramp(run[:, on] - usual[1][:, g : g + 1], rules.zero_slots.lo, rules.zero_slots.hi)
        out[3][:, on] = _ramp(rough[:, on] - usual[2][:, g : g + 1], rules.rough.lo, rules.rough.hi)
        # how far reversing moves the usual day (1 - its correlation with itself reversed): an
        # office day reversed is nearly the same day an hour earlier, so its step is scaled by it
        gap = np.maximum(1.0 - c_ur, rules.min_reverse_gap)
        out[4][:, on] = _ramp((c_r - c_u) / gap, rules.reverse.lo, rules.reverse.hi)
        out[5][:, on] = np.where(shaped, _ramp(1.0 - c_u, rules.shape.lo, rules.shape.hi), 0.0)
    return out


def _day_kinds(dates: list[dt.date], day_types: list[list[int]]) -> np.ndarray:
    """Per date, the index of its day type among the types present (types follow ``day_types``,
    weekdays Monday = 0; a weekday in no group is a type of its own)."""
    of = {w: g for g, group in enumerate(day_types) for w in group}
    kind = np.array([of.get(d.weekday(), len(day_types)) for d in dates], dtype=np.int64)
    return np.unique(kind, return_inverse=True)[1].reshape(-1)


def _natural(bz: np.ndarray, run: np.ndarray, rough: np.ndarray, seen: np.ndarray, rules: ObserverRules) -> np.ndarray:
    """Per customer and day (customers, days), whether the day looks like a day of use: the
    days the first usual day is drawn from.

    h3 and h4 scale each slot by its own random factor: such a day is far rougher slot to
    slot than any day the customer used as it does, whatever its energy. A day counts when
    its roughness is under the customer's second smoothest day's plus the rough ramp's low
    end. The smoothest days are sought among the days that are neither flat (a coefficient
    of variation over blocks under ``min_usual_cv`` × (1 − ``flat.hi``): h5, while the
    customer has days that are not) nor have a zero run longer than the customer's
    shortest by the zero ramp's low end (h2: a zero window's steps are 0, so its day looks
    smooth); flat days never count. The second smoothest, not the smoothest, so that one
    freak day (a tiny load recorded in whole 0.001 kWh steps can be constant for a day)
    does not set it. A customer with no such day keeps all its days.
    """
    nb = bz.shape[2]
    mean = bz.sum(2) / nb
    with np.errstate(all="ignore"):
        cv = np.sqrt(np.maximum((bz * bz).sum(2) / nb - mean * mean, 0.0)) / np.where(mean > 0, mean, 1.0)
    shaped = seen & (cv >= rules.min_usual_cv * (1.0 - rules.flat.hi))
    base = np.where(shaped.any(1, keepdims=True), shaped, seen)
    short = np.where(base, run, np.inf).min(1, keepdims=True)
    cand = np.where(base, rough, np.inf)
    cand[~(run < short + rules.zero_slots.lo)] = np.inf
    cand.sort(axis=1)
    smooth = cand[:, min(1, cand.shape[1] - 1)]
    smooth = np.where(np.isinf(smooth), cand[:, 0], smooth)[:, None]  # one such day: that one
    nat = base & (rough < smooth + rules.rough.lo)
    return np.where(nat.any(1, keepdims=True), nat, seen)


def _usual(
    blocks: np.ndarray,
    run: np.ndarray,
    rough: np.ndarray,
    pick: np.ndarray,
    energy: np.ndarray | None,
    tix: np.ndarray,
    rules: ObserverRules,
    keep: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    natural: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per customer and day type, its usual day: blocks (customers, types, blocks), zero run
    and roughness (customers, types).

    First pass (``energy`` given): per type, the median of the ``usual_top`` share of the
    ``pick`` days with the most energy (a thief recording less on most of its days does
    not set it); a type with fewer than ``min_type_days`` picked days takes the usual day
    of all the picked days. Second pass (``keep``: the first pass): per type, the median
    of the picked (calm) days where there are ``min_usual_days`` of them, else ``keep``.
    An office's Sunday is compared with its Sundays, not with its working days.
    """
    n, _, nb = blocks.shape
    types = int(tix.max()) + 1 if len(tix) else 0
    if natural is not None:
        pick = pick & natural
    if energy is not None:
        # the window's usual day, for the customers short of days of some type (only they need it)
        short = np.flatnonzero(
            np.stack([pick[:, tix == g].sum(1) < rules.min_type_days for g in range(types)], axis=1).any(1)
        )
        cut = _masked_quantile(energy[short], pick[short], 1.0 - rules.usual_top)
        with np.errstate(invalid="ignore"):  # a customer without days has no cut (NaN): no reference day
            ref = pick[short] & (energy[short] >= cut[:, None])
        whole = (np.zeros((n, nb)), np.zeros(n), np.zeros(n))
        whole[0][short] = _zero_nan(_masked_median(blocks[short], ref))
        whole[1][short] = _zero_nan(_masked_median(run[short], pick[short]))
        whole[2][short] = _zero_nan(_masked_median(rough[short], pick[short]))
    u_b = np.empty((n, types, nb))
    u_run = np.empty((n, types))
    u_rough = np.empty((n, types))
    for g in range(types):  # a handful of day types, not rows
        on = np.flatnonzero(tix == g)
        sel = pick[:, on]
        count = sel.sum(1)
        if energy is not None:
            cut = _masked_quantile(energy[:, on], sel, 1.0 - rules.usual_top)
            with np.errstate(invalid="ignore"):
                ref = sel & (energy[:, on] >= cut[:, None])
            ok = count >= rules.min_type_days
            fb, frun, frough = whole
        else:
            assert keep is not None
            ref = sel
            ok = count >= rules.min_usual_days
            fb, frun, frough = keep[0][:, g], keep[1][:, g], keep[2][:, g]
        u_b[:, g] = np.where(ok[:, None], _zero_nan(_masked_median(blocks[:, on], ref)), fb)
        u_run[:, g] = np.where(ok, _zero_nan(_masked_median(run[:, on], sel)), frun)
        u_rough[:, g] = np.where(ok, _zero_nan(_masked_median(rough[:, on], sel)), frough)
    return u_b, u_run, u_rough


def _confirmation(
    excess: np.ndarray,
    valid: np.ndarray,
    area_of: np.ndarray,
    suspect: np.ndarray,
    usual: np.ndarray,
    blocks: np.ndarray,
    min_spread: float,
) -> np.ndarray:
    """Per customer, how far the area's excess loss on its suspect days follows the deficit they imply.

    A suspect day d implies the deficit δ_d = usual − recorded (per block); its match
    with the area's excess loss of day d' is m(d, d') = <excess_d', δ_d>. The statistic
    compares Σ_d m(d, d) over the suspect days with what the same deficits give against
    the area's excess loss of the customer's calm usable days (a permutation null: the
    mean and variance of m(d, ·) over those days), so the area's own structure — other
    thefts, a master stepping in kWh, weekly cycles — sets the scale, not an assumed
    white noise: t = (Σ_d m(d, d) − Σ_d mean m(d, ·)) / sqrt(Σ_d var m(d, ·)). 0
    without a suspect usable day or with fewer than 3 calm usable days.
    """
    n = len(area_of)
    t = np.zeros(n)
    v = valid[area_of]  # (customers, days)
    use = suspect & v
    calm = v & ~suspect
    who = np.flatnonzero(use.any(1) & (calm.sum(1) >= 3))
    for part in np.array_split(who, max(1, len(who) // 20000 + 1)):  # chunks of customers, bounded memory
        if not len(part):
            continue
        deficit = np.where(use[part][:, :, None], usual[part] - blocks[part], 0.0)
        ex = excess[area_of[part]]  # (k, days, blocks)
        m = np.einsum("kdb,keb->kde", deficit, ex)  # m[k, d, e] = <excess_e, deficit_d>
        ok = calm[part][:, None, :]
        cnt = ok.sum(2)
        mean = np.where(ok, m, 0.0).sum(2) / cnt
        var = np.where(ok, (m - mean[:, :, None]) ** 2, 0.0).sum(2) / np.maximum(cnt - 1, 1)
        diag = np.einsum("kdd->kd", m)
        sel = use[part]
        num = np.where(sel, diag - mean, 0.0).sum(1)
        den = np.sqrt(np.where(sel, var, 0.0).sum(1))
        floor = min_spread * np.sqrt(np.where(sel[:, :, None], deficit**2, 0.0).sum((1, 2)))
        t[part] = num / np.maximum(den, np.maximum(floor, 1e-12))
    return t


#: ``(blocks, run, rough, tix, rules)`` of a chunk (as :func:`_worth` has them) to whether each
#: customer is worth judging: one whose day part could pass the day ramp's low end. It must
#: never leave out such a customer (the others score 0 whoever judges them), so the outputs
#: are the same with or without it; ``meterlake.observer_kernel.worth_judging`` is one
#: (compiled, about a tenth of the judging's cost).
Prefilter = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, "ObserverRules"], np.ndarray]

#: customers judged at once (a chunk's window of blocks: CHUNK x days x blocks floats, and
#: the judging's copies of it; 5,000 was as fast as 20,000 at 50,000 meters, with 0.2 GB less)
CHUNK = 5_000


def _area_positions(values: pl.Series, areas: pl.Series) -> np.ndarray:
    """Position of each of ``values`` in ``areas`` (every value is there)."""
    lookup = pl.DataFrame({"area_id": areas, "_pos": np.arange(areas.len(), dtype=np.int64)})
    return (
        pl.DataFrame({"area_id": values})
        .join(lookup, on="area_id", how="left", maintain_order="left")["_pos"]
        .to_numpy()
    )


def _worth(
    blocks: np.ndarray,
    run: np.ndarray,
    rough: np.ndarray,
    tix: np.ndarray,
    rules: ObserverRules,
    prefilter: Prefilter | None = None,
) -> np.ndarray:
    """A chunk of customers: ``blocks`` (customers, days, blocks; NaN where no day; float32 or 64), ``run``
    and ``rough`` (customers, days). The positions in the chunk of those worth judging: with the
    days to score, passing the cheap look (``screen``) and the ``prefilter`` (:data:`Prefilter`);
    the others score 0."""
    seen = ~np.isnan(run)
    look = seen.sum(1) >= rules.min_days
    if rules.screen > 0:  # numpy's reductions over C arrays, whatever the layout given
        look &= (
            _screen(
                np.ascontiguousarray(blocks), np.ascontiguousarray(run), np.ascontiguousarray(rough), seen, tix, rules
            )
            >= rules.screen
        )
    if prefilter is not None:
        look &= prefilter(blocks, run, rough, tix, rules)
    return np.flatnonzero(look)


class _Pool:
    """The customers worth judging (:func:`_worth`), gathered over chunks and judged together
    (:func:`_judge_some`) once :data:`CHUNK` of them are held: a chunk lets through ~1.5 % of its
    customers, and the judging's few hundred numpy calls cost the same for 75 customers as for
    5,000. Judging is per customer, so the figures are those of judging each chunk alone; the
    customers keep their order (``at``: their positions among all)."""

    def __init__(self, tix: np.ndarray, excess: np.ndarray, valid: np.ndarray, rules: ObserverRules) -> None:
        self.tix, self.excess, self.valid, self.rules = tix, excess, valid, rules
        self.held: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.count = 0
        self.parts: list[dict[str, np.ndarray]] = []

    def add(self, at: np.ndarray, blocks: np.ndarray, run: np.ndarray, rough: np.ndarray, area_of: np.ndarray) -> None:
        if self.held and self.held[0][1].dtype != blocks.dtype:
            self.judge()  # blocks kept as float32 and as float64 are judged apart (never seen)
        self.held.append((at, blocks, run, rough, area_of))
        self.count += len(at)
        if self.count >= CHUNK:
            self.judge()

    def judge(self) -> None:
        if not self.held:
            return
        at, blocks, run, rough, area_of = (np.concatenate(x) for x in zip(*self.held, strict=True))
        self.held, self.count = [], 0
        got = _judge_some(blocks, run, rough, self.tix, self.excess, self.valid, area_of, self.rules)
        got["at"] = at[got["at"]]
        self.parts.append(got)

    def results(self) -> dict[str, np.ndarray]:
        self.judge()
        return {k: np.concatenate([p[k] for p in self.parts]) for k in self.parts[0]}


def _screen(
    blocks: np.ndarray, run: np.ndarray, rough: np.ndarray, seen: np.ndarray, tix: np.ndarray, rules: ObserverRules
) -> np.ndarray:
    """Per customer, the cheap look at its window that decides whether it is judged
    (``rules.screen``): the mean of the ``top_days`` strongest day strengths, the patterns of
    :func:`_day_strengths` against references that need no median over blocks: for the
    energy (low), the upper quartile of its days' energy; for the shape (flat, shape,
    reverse), the per-block mean of its days; both of the day's type (the window's for a
    type of fewer than ``min_type_days`` days of the customer); for the zero run and the
    roughness, its shortest and its smoothest day. The zero and rough strengths are at least
    those against any usual day (its run and roughness are medians of its days, never under
    their least); the low strength is near the first usual day's (the median of the days
    with the most energy); the shape strengths are near the judged ones for a customer whose
    days are mostly its usual ones, and a tampered day's shape departs from both.
    """
    eps = 1e-9
    n, n_days, nb = blocks.shape
    x = np.where(np.isnan(blocks), np.array(0.0, dtype=blocks.dtype), blocks)  # as kept (float32): a look
    x_sum = np.einsum("kdb->kd", x).astype(np.float64)
    mx = x_sum / nb
    cv_b = np.sqrt(np.maximum(np.einsum("kdb,kdb->kd", x, x) / nb - mx * mx, 0.0)) / np.maximum(mx, eps)
    ons = [np.flatnonzero(tix == g) for g in range(int(tix.max()) + 1 if len(tix) else 0)]
    types = len(ons)
    counts = np.stack([seen[:, on].sum(1) for on in ons], axis=1)  # (customers, types)
    short = counts < rules.min_type_days
    every = np.arange(n_days)

    def by_type(stat: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """(customers, days): ``stat`` of the days of each day's type, of the window for a short type."""
        window = stat(every)
        return np.stack([np.where(short[:, g], window, stat(on)) for g, on in enumerate(ons)], axis=1)[:, tix]

    run0, rough0 = _zero_nan(run), _zero_nan(rough)
    # zero run and roughness: against the second least of the days' (a usual day's are medians
    # of 3 days or more, never under it)
    strength = _ramp(run0 - _second_least(np.where(seen, run0, np.inf)), rules.zero_slots.lo, rules.zero_slots.hi)
    np.maximum(
        strength,
        _ramp(rough0 - _second_least(np.where(seen, rough0, np.inf)), rules.rough.lo, rules.rough.hi),
        out=strength,
    )
    # low: against the upper quartile of its days' energy (near the first usual day's, the
    # median of its days with the most energy: a thief recording less on most days stays low)
    energy = np.where(seen, x_sum, np.nan)
    high = _zero_nan(by_type(lambda on: _masked_quantile(energy[:, on], seen[:, on], 0.75)))
    np.maximum(strength, _ramp(1.0 - x_sum / np.maximum(high, eps), rules.low.lo, rules.low.hi), out=strength)
    # flat: against its most shaped day (flat days, however many, do not set it)
    most = by_type(lambda on: np.where(seen[:, on], cv_b[:, on], 0.0).max(1))
    flat = _ramp(1.0 - cv_b / np.maximum(most, eps), rules.flat.lo, rules.flat.hi)
    np.maximum(strength, np.where(most > rules.min_usual_cv, flat, 0.0), out=strength)

    # shape and reverse, on blocks of two (half the work; a day reversed is its pairs reversed):
    # against the per-block mean of the days of its type, and reverse also against its shaped
    # day of most energy (a mean of days reversed and not is nearly symmetric: no reference)
    onehot = (tix[None, :] == np.arange(types)[:, None]).astype(x.dtype)  # (types, days)
    sums = np.matmul(onehot, x)  # (customers, types, blocks)
    window = sums.sum(1, keepdims=True) / np.maximum(seen.sum(1), 1)[:, None, None].astype(x.dtype)
    mean = np.where(short[:, :, None], window, sums / np.maximum(counts, 1)[:, :, None].astype(x.dtype))
    mean_mu = mean.sum(2, dtype=np.float64) / nb
    mean_cv = np.sqrt(np.maximum((mean.astype(np.float64) ** 2).sum(2) / nb - mean_mu**2, 0.0)) / np.maximum(
        mean_mu, eps
    )
    shaped_day = seen & (cv_b >= rules.min_usual_cv * (1.0 - rules.flat.hi))
    key = np.where(shaped_day, x_sum, np.where(seen, -1.0, -np.inf))  # energy is never negative
    pick = np.stack(
        [np.where(short[:, g], key.argmax(1), on[key[:, on].argmax(1)]) for g, on in enumerate(ons)], axis=1
    )
    pair = nb >= 16 and nb % 2 == 0
    xc = x[:, :, 0::2] + x[:, :, 1::2] if pair else x
    meanc = mean[:, :, 0::2] + mean[:, :, 1::2] if pair else mean
    refs = np.concatenate([meanc, xc[np.arange(n)[:, None], pick]], axis=1)  # (customers, 2 types, blocks)
    nc = refs.shape[2]
    both = np.concatenate([refs, refs[:, :, ::-1]], axis=1)  # and reversed
    prod = np.matmul(xc, both.transpose(0, 2, 1)).astype(np.float64)  # (customers, days, 4 types)
    r64 = refs.astype(np.float64)
    r_mu = r64.sum(2) / nc
    r_ss = np.maximum((r64 * r64).sum(2) - nc * r_mu * r_mu, 0.0)  # (customers, 2 types)
    r_rev = (r64 * r64[:, :, ::-1]).sum(2) - nc * r_mu * r_mu
    xmc = x_sum / nc
    sxx = np.maximum(np.einsum("kdb,kdb->kd", xc, xc).astype(np.float64) - nc * xmc * xmc, 0.0)
    for j in (0, 1):  # the mean of the days, the shaped day of most energy
        col = j * types + tix
        mu, ss, rev = r_mu[:, col], r_ss[:, col], r_rev[:, col]
        with np.errstate(all="ignore"):
            norm = np.sqrt(sxx * ss)
            c_u = np.where(norm > 0, (prod[:, every, col] - nc * xmc * mu) / norm, 0.0)
            c_r = np.where(norm > 0, (prod[:, every, 2 * types + col] - nc * xmc * mu) / norm, 0.0)
            c_ur = np.where(ss > 0, rev / np.where(ss > 0, ss, 1.0), 0.0)
        turn = _ramp((c_r - c_u) / np.maximum(1.0 - c_ur, rules.min_reverse_gap), rules.reverse.lo, rules.reverse.hi)
        if j == 0:
            turn = np.where(
                mean_cv[:, tix] > rules.min_usual_cv,
                np.maximum(turn, _ramp(1.0 - c_u, rules.shape.lo, rules.shape.hi)),
                0.0,
            )
        np.maximum(strength, turn, out=strength)
    strength = np.where(seen, strength, 0.0)
    k = min(rules.top_days, n_days)
    return -np.sort(-strength, axis=1)[:, :k].mean(1)


def _second_least(values: np.ndarray) -> np.ndarray:
    """Per row (axis 0), the second least value (the least where a row has one finite value), as a column."""
    two = np.sort(values, axis=1)[:, :2] if values.shape[1] > 1 else np.repeat(values, 2, axis=1)
    return np.where(np.isinf(two[:, 1]), two[:, 0], two[:, 1])[:, None]


def _judge_some(
    blocks: np.ndarray,
    run: np.ndarray,
    rough: np.ndarray,
    tix: np.ndarray,
    excess: np.ndarray,
    valid: np.ndarray,
    area_of: np.ndarray,
    rules: ObserverRules,
) -> dict[str, np.ndarray]:
    """:func:`_Pool`'s judging of the customers :func:`_worth` lets through (each with ``min_days`` days seen)."""
    n_days = blocks.shape[1]
    seen = ~np.isnan(run)
    # the usual day of each day type: median over the window, then over the days not suspect against it
    # float32 blocks (as kept) are summed in float64 and their medians sort them as they are
    bz = _zero_nan(blocks).astype(np.float64)
    energy = np.where(seen, bz.sum(2), np.nan)
    run0, rough0 = _zero_nan(run), _zero_nan(rough)
    usual = _usual(blocks, run, rough, seen, energy, tix, rules, natural=_natural(bz, run0, rough0, seen, rules))
    typed = _type_days(bz, tix)
    first = _day_strengths(typed, run0, rough0, usual, rules).max(0)
    calm = seen & (first < rules.suspect_day)
    usual = _usual(blocks, run, rough, calm, None, tix, rules, usual)
    per = _day_strengths(typed, run0, rough0, usual, rules)
    del typed
    per = np.where(seen[None], per, 0.0)
    strength = per.max(0)  # (customers, days)
    k = min(rules.top_days, n_days)
    days_part = -np.sort(-strength, axis=1)[:, :k].mean(1)

    suspect = (strength >= rules.suspect_day) & seen
    # only a customer whose day part passes the ramp's low end can score (its strength is that
    # ramp times a factor): the others need no confirmation and no evidence
    keep = np.flatnonzero(_ramp(days_part, rules.days.lo, rules.days.hi) > 0)
    strength, per, suspect, days_part = strength[keep], per[:, keep], suspect[keep], days_part[keep]
    bz, area_of = bz[keep], area_of[keep]

    # the observer: the area's excess loss on the suspect days against the implied deficit
    usual_day = usual[0][keep][:, tix]  # (customers, days, blocks): each day's usual day
    t = _confirmation(excess, valid, area_of, suspect, usual_day, bz, rules.min_spread_kwh)
    checked = (suspect & valid[area_of]).any(1)
    factor = np.where(checked, rules.floor + (1 - rules.floor) * _ramp(t, rules.t.lo, rules.t.hi), rules.floor)
    s = np.round(_ramp(days_part, rules.days.lo, rules.days.hi) * factor, 6)
    s = np.where(s >= rules.min_strength, s, 0.0)

    # evidence: the suspect days, their dominant pattern, the kWh they imply
    top_pattern = per.argmax(0)  # (customers, days)
    counts = np.stack([((top_pattern == p) & suspect).sum(1) for p in range(len(PATTERNS))], axis=1)
    deficit = np.where(suspect[:, :, None], usual_day - bz, 0.0)
    # a flattened or reversed day moves its energy to other hours (where a TOU tariff may
    # bill it cheaper) rather than hiding it: its unrecorded kWh count only when its total
    # is low as well; what it took out of the hours it was used in is `moved`. A day is
    # flattened or reversed when that is its strongest pattern or a suspect one of its own
    # (a flat day recorded in 0.01 kWh steps also looks rough).
    moves = (
        np.isin(top_pattern, [PATTERNS.index("flat"), PATTERNS.index("reverse")])
        | (per[PATTERNS.index("flat")] >= rules.suspect_day)
        | (per[PATTERNS.index("reverse")] >= rules.suspect_day)
    )
    keeps_total = moves & (per[PATTERNS.index("low")] <= 0)
    return {
        "at": keep,
        "s": s,
        "t": t,
        "checked": checked,
        "days_part": days_part,
        "suspect": suspect,
        "n_suspect": suspect.sum(1),
        "dominant": counts.argmax(1),
        # never below 0: a suspect day recording more than its usual day returns nothing
        "implied": np.maximum(np.where(keeps_total, 0.0, deficit.sum(2)).sum(1), 0.0),
        "moved": np.maximum(deficit, 0.0).sum((1, 2)),
        "recorded": np.where(suspect[:, :, None], bz, 0.0).sum((1, 2)),
    }


@dataclass(frozen=True)
class DayRows:
    """One day's customer summaries (:func:`day_summaries`) as the window reads them, a part at a time.

    ``keys()``: meter_id, area_id and actual of every row, sorted by area_id then meter_id;
    ``read(r0, r1)``: rows ``r0`` up to ``r1`` of that order with the block columns,
    zero_run and rough. The window asks for increasing, non-overlapping row ranges, so a
    reader over a file keeps only the part it is in. ``arrays(r0, r1)``, when given: the same
    rows as numpy (blocks (rows, blocks), zero_run, rough), for a reader that keeps a small
    day's arrays while the day is in the window (a small zone's dates then spend no frame
    operations on the days they share).
    """

    date: dt.date
    keys: Callable[[], pl.DataFrame]
    read: Callable[[int, int], pl.DataFrame]
    arrays: Callable[[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
    #: when given: a value equal for two days only when their meter_id and area_id are equal
    #: row for row (the stage gives those columns' bytes as stored), and each row's actual
    #: (share of slots collected); a day whose roster's mark is the day before's is then
    #: numbered from its actual alone, its keys never read (a county's day: 0.05 s)
    roster: Callable[[], object] | None = None
    actual: Callable[[], pl.Series] | None = None


def rows_as_arrays(part: pl.DataFrame, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of a day's summaries (:meth:`DayRows.read`) as ``DayRows.arrays`` gives them."""
    return part.select(names).to_numpy(), part["zero_run"].to_numpy(), part["rough"].to_numpy()


def frame_days(customers: pl.DataFrame) -> list[DayRows]:
    """The days of ``customers`` (summaries of several days, in memory) as :class:`DayRows`."""

    def rows_of(part: pl.DataFrame) -> DayRows:
        def keys() -> pl.DataFrame:
            return part.select("meter_id", "area_id", "actual")

        def read(r0: int, r1: int) -> pl.DataFrame:
            return part.slice(r0, r1 - r0)

        return DayRows(part["date"][0], keys, read)

    ordered = customers.sort("date", "area_id", "meter_id")
    return [rows_of(part) for part in ordered.partition_by("date", maintain_order=True)]


def indicator(
    customers: pl.DataFrame,
    areas: pl.DataFrame,
    day: dt.date,
    rules: ObserverRules,
    prefilter: Prefilter | None = None,
) -> pl.DataFrame:
    """The ``observer`` indicator at detection date ``day``: one row per customer meter scored.

    ``customers`` and ``areas``: :func:`day_summaries` of the window's days (those
    outside ``rules.window_days`` up to ``day`` are ignored). Columns: meter_id,
    s_observer (strength in [0, 1]), d_observer (first suspect day), ev_observer (JSON
    evidence), the private ``_observer_*`` figures of the reason text, and the raw
    features ``f_observer_days`` (mean of the strongest day strengths) and
    ``f_observer_t`` (the area loss's confirmation). :func:`indicator_of_days` is the same
    over days read a part at a time.
    """
    names = [c for c in customers.columns if c.startswith("b") and c[1:].isdigit()]
    start = day - dt.timedelta(days=rules.window_days - 1)
    return indicator_of_days(
        frame_days(customers.filter(pl.col("date").is_between(start, day))), areas, day, rules, names, prefilter
    )


#: a window whose judged rows are at most this many (its newest day's times its days) is
#: numbered in one query over all its days' keys (a small zone: one query instead of a few
#: per day and date); a larger one a day at a time (the days' keys never held at once).
#: 14 days of 300 customers: 4 ms against 20; of 10,000 even; of 50,000: 0.15 s against 0.09
WINDOW_ROWS_AT_ONCE = 100_000

_Coded = tuple[pl.DataFrame, list["DayRows"], list[tuple[np.ndarray, np.ndarray]]]


def _judged(keys: pl.DataFrame, min_actual: float) -> pl.LazyFrame:
    """A day's keys judged (enough slots collected), with their row numbers."""
    return (
        keys.lazy().with_row_index("_row").filter(pl.col("actual") >= min_actual).select("_row", "meter_id", "area_id")
    )


def _code_days(newest: list[DayRows], min_actual: float, first: pl.DataFrame | None = None) -> _Coded:
    """The window's customers (meter_id, ``_last`` area, number ``_m``), its days with judged
    rows (newest first) and each one's (row, customer number) of the rows in the meter's
    last area: a day at a time, from the newest (``first``: the newest day's keys, read).

    A day whose meters, areas and order are the day before's (in the order read: a steady
    roster) is numbered by row, no join: each row of the roster keeps its meter's number
    (-1 while none) and whether it is in the meter's last area. A day whose roster differs is
    joined with the meters met so far, and its rows become the roster."""
    numbered = _Numbered()
    kept: list[DayRows] = []
    coded: list[tuple[np.ndarray, np.ndarray]] = []
    mark: object = None  # the roster's mark (DayRows.roster), where known
    for i, src in enumerate(newest):
        actual = src.actual
        now = src.roster() if src.roster is not None and actual is not None else None
        if i and actual is not None and now is not None and now == mark and numbered.roster is not None:
            # the day before's meters, areas and order, as stored: numbered by row from its actual
            at = np.flatnonzero((actual() >= min_actual).fill_null(False).to_numpy())
            if at.size:
                kept.append(src)
                coded.append(numbered.by_row(numbered.roster, at))
            continue
        mark = now
        keys = first if i == 0 and first is not None else src.keys()
        if i == 0:
            numbered.new_roster(keys)
        if numbered.steady(keys):
            at = np.flatnonzero((keys["actual"] >= min_actual).fill_null(False).to_numpy())
            if at.size == 0:
                continue
            kept.append(src)
            coded.append(numbered.by_row(keys, at))
            continue
        rows = _judged(keys, min_actual).collect()
        if rows.height == 0:
            numbered.new_roster(keys)
            continue
        kept.append(src)
        meters = numbered.frame()
        hit = rows.join(meters, on="meter_id", how="left", maintain_order="left")
        new = hit["_m"].is_null().to_numpy()
        code = hit["_m"].to_numpy(allow_copy=True).astype(np.float64)
        code[new] = meters.height + np.arange(int(new.sum()))
        numbered.add(hit.filter(pl.col("_m").is_null()).select("meter_id", pl.col("area_id").alias("_last")))
        same = new | (hit["area_id"] == hit["_last"]).fill_null(False).to_numpy()
        coded.append((hit["_row"].to_numpy()[same].astype(np.int32), code[same].astype(np.int64)))
        numbered.new_roster(keys)
    return numbered.frame(), kept, coded


class _Numbered:
    """:func:`_code_days`' meters in order of numbering, and the roster numbered by row."""

    def __init__(self) -> None:
        self.pieces: list[pl.DataFrame] = []  # meter_id, _last: in order of numbering
        self.count = 0
        self.roster: pl.DataFrame | None = None  # meter_id, area_id of the last day read
        self.code = np.empty(0, dtype=np.int64)  # each roster row's meter number, -1 while none
        self.in_last = np.empty(0, dtype=bool)  # whether the row is in its meter's last area

    def frame(self) -> pl.DataFrame:
        if len(self.pieces) != 1:
            self.pieces = [
                pl.concat(self.pieces, rechunk=True)
                if self.pieces
                else pl.DataFrame(schema={"meter_id": pl.String, "_last": pl.String})
            ]
        return self.pieces[0].with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("_m"))

    def add(self, met: pl.DataFrame) -> None:
        if met.height:
            self.pieces.append(met)
            self.count += met.height

    def steady(self, keys: pl.DataFrame) -> bool:
        r = self.roster
        return r is not None and keys.height == r.height and keys.select("meter_id", "area_id").equals(r)

    def new_roster(self, keys: pl.DataFrame) -> None:
        """``keys`` become the roster, each row numbered (a roster with a meter twice: none)."""
        ids = keys.select("meter_id", "area_id")
        if ids["meter_id"].n_unique() < ids.height:
            self.roster = None
            return
        self.roster = ids
        if not self.count:  # no meter numbered yet (the newest day): nothing to look up
            self.code = np.full(ids.height, -1, dtype=np.int64)
            self.in_last = np.zeros(ids.height, dtype=bool)
            return
        hit = ids.join(self.frame(), on="meter_id", how="left", maintain_order="left")
        self.code = hit["_m"].fill_null(-1).to_numpy().astype(np.int64)
        self.in_last = (hit["area_id"] == hit["_last"]).fill_null(False).to_numpy()

    def by_row(self, keys: pl.DataFrame, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The judged rows ``at`` of a day of the roster: (rows in their meter's last area,
        their numbers); the meters first met here numbered in row order."""
        code = self.code[at]
        new = code < 0
        if new.any():
            fresh = at[new]
            code[new] = self.count + np.arange(len(fresh))
            self.code[fresh] = code[new]
            self.in_last[fresh] = True
            self.add(keys.select("meter_id", pl.col("area_id").alias("_last")).gather(fresh))
        same = self.in_last[at]
        return at[same].astype(np.int32), code[same]


def _code_window(newest: list[DayRows], keys: list[pl.DataFrame], min_actual: float) -> _Coded:
    """:func:`_code_days` over all the days' ``keys`` (newest first) in one query: a meter's
    number is its place among the meters in order of first meeting (days newest first,
    rows in order), its area the one it was first met in. A day that holds a meter twice
    (never from :func:`day_summaries`) is numbered a day at a time, as before."""
    met = (
        pl.concat(
            [_judged(k, min_actual).with_columns(_k=pl.lit(i, pl.Int32)) for i, k in enumerate(keys)],
            how="vertical_relaxed",  # days kept by another version may type an id otherwise
        )
        .collect()
        .with_row_index("_i")
    )
    if met.select(pl.struct("_k", "meter_id").n_unique()).item() < met.height:
        return _code_days(newest, min_actual, keys[0])
    meters = (
        met.unique("meter_id", keep="first", maintain_order=True)
        .select("meter_id", pl.col("area_id").alias("_last"), pl.col("_i").alias("_first"))
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("_m"))
    )
    hit = (
        met.join(meters, on="meter_id", how="left", maintain_order="left")
        .filter((pl.col("_i") == pl.col("_first")) | (pl.col("area_id") == pl.col("_last")).fill_null(False))
        .select("_k", "_row", "_m")
    )
    k_of = hit["_k"].to_numpy()
    row_of = hit["_row"].to_numpy().astype(np.int32)
    m_of = hit["_m"].to_numpy().astype(np.int64)
    used = [int(k) for k in np.unique(met["_k"].to_numpy())]  # the days with judged rows
    bounds = np.searchsorted(k_of, [*used, len(keys)])  # rows stay in day order (newest first)
    coded = [(row_of[bounds[j] : bounds[j + 1]], m_of[bounds[j] : bounds[j + 1]]) for j in range(len(used))]
    return meters.drop("_first"), [newest[k] for k in used], coded


def indicator_of_days(
    days: Sequence[DayRows],
    areas: pl.DataFrame,
    day: dt.date,
    rules: ObserverRules,
    names: list[str] | None = None,
    prefilter: Prefilter | None = None,
) -> pl.DataFrame:
    """:func:`indicator` over the window's days as :class:`DayRows`: memory stays a chunk of
    customers' window (:data:`CHUNK`) plus each day's row positions, whatever the county.
    ``prefilter`` (:data:`Prefilter`) spares the judging of customers that cannot score."""
    names = names if names is not None else block_names(rules.blocks)
    start = day - dt.timedelta(days=rules.window_days - 1)
    window = sorted((d for d in days if start <= d.date <= day), key=lambda d: d.date)

    # the customers: each meter with its area on the last day it is judged in the window,
    # numbered as met going back from the last day; each day's rows in that area kept
    newest = list(reversed(window))
    first = newest[0].keys() if newest else None
    if first is not None and first.height * len(newest) <= WINDOW_ROWS_AT_ONCE:
        keys = [first, *(src.keys() for src in newest[1:])]
        meters, kept, coded = _code_window(newest, keys, rules.min_actual)
        del keys
    else:
        meters, kept, coded = _code_days(newest, rules.min_actual, first)
    del first
    if len(kept) < rules.min_days:
        return no_rows()
    kept.reverse()
    coded.reverse()
    dates = [src.date for src in kept]
    n_days = len(dates)
    if strictly_increasing(meters, ["_last", "meter_id"]):  # numbered in area order (a steady roster)
        order = np.arange(meters.height)
        ids = meters.select("meter_id", pl.col("_last").alias("area_id"))
    else:
        order = meters.select(pl.arg_sort_by("_last", "meter_id")).to_series().to_numpy()
        ids = meters[order].select("meter_id", pl.col("_last").alias("area_id"))
    at = np.empty(len(order), dtype=np.int64)
    at[order] = np.arange(len(order))
    # each day's rows that count (a meter's rows in its last area): their row and customer
    place: list[tuple[np.ndarray, np.ndarray]] = []
    for src, (row_at, code) in zip(kept, coded, strict=True):
        cust = at[code].astype(np.int32)
        if np.any(np.diff(cust) <= 0):
            raise ObserverInputError(f"observer: the summaries of {src.date} are not one row per meter in area order")
        place.append((row_at, cust))
    n = ids.height
    nb = len(names)
    tix = _day_kinds(dates, rules.day_types)

    # the area's excess loss per day and block: master - Σ recorded - its usual loss share,
    # less the per-block median of the window's days
    offset = np.full((day - dates[0]).days + 1, -1, dtype=np.int64)
    offset[[(d - dates[0]).days for d in dates]] = np.arange(n_days)
    areas_of = ids["area_id"].unique(maintain_order=True)
    na = areas_of.len()
    area_of = _area_positions(ids["area_id"], areas_of)
    aw = areas.filter(pl.col("date").is_between(start, day) & pl.col("area_id").is_in(areas_of.implode()))
    excess = np.zeros((na, n_days, nb))
    valid = np.zeros((na, n_days), dtype=bool)
    if aw.height:
        ai_rows = _area_positions(aw["area_id"], areas_of)
        since = (aw["date"] - dates[0]).dt.total_days().to_numpy().astype(np.int64)
        ad = np.where((since >= 0) & (since < len(offset)), offset[np.clip(since, 0, len(offset) - 1)], -1)
        keep = ad >= 0
        master = aw.select("m" + b[1:] for b in names).to_numpy()[keep]
        recorded = aw.select("s" + b[1:] for b in names).to_numpy()[keep]
        ok = (
            (aw["master_actual"].to_numpy()[keep] >= 1.0)
            & (aw["filled_kwh"].to_numpy()[keep] <= rules.max_fill_share * master.sum(1))
            & (master.sum(1) > 0)
        )
        loss = master - recorded
        ai_k, ad_k = ai_rows[keep], ad[keep]
        share = np.where(ok, loss.sum(1) / np.where(master.sum(1) > 0, master.sum(1), 1.0), np.nan)
        for_area = np.full((na, n_days), np.nan)
        for_area[ai_k, ad_k] = share
        tech = _masked_median(for_area, ~np.isnan(for_area))
        excess[ai_k, ad_k] = loss - np.nan_to_num(tech[ai_k])[:, None] * master
        valid[ai_k, ad_k] = ok
    centre = _zero_nan(_masked_median(excess, valid))
    excess = np.where(valid[:, :, None], excess - centre[:, None, :], 0.0)

    # the customers, a chunk at a time (bounded memory: a chunk's window of blocks); those worth
    # judging gathered and judged a pool at a time. With a compiled ``prefilter`` and more than
    # one chunk, each chunk's look runs on a second thread while the next chunk is read and
    # placed (the look releases the interpreter): the chunks are added to the pool in order, so
    # the figures are those of one thread
    pool = _Pool(tix, excess, valid, rules)
    spans = [(lo, min(lo + CHUNK, n)) for lo in range(0, n, CHUNK)]
    # two chunks' arrays, reused in turn: a chunk is looked at while the next is placed, and is
    # added to the pool (its rows copied) before the one after is placed (a fresh chunk's
    # arrays cost a page fault every 4 KiB: ~0.2 s of system time a county date)
    spares: list[dict[str, np.ndarray]] = [{}, {}]

    def placed(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _place(kept, place, lo, hi, n_days, nb, names, spares[(lo // CHUNK) % 2])

    def add(lo: int, hi: int, arrays: tuple[np.ndarray, np.ndarray, np.ndarray], look: np.ndarray) -> None:
        blocks, run, rough = arrays  # transposed views (:func:`_place`): judged as C arrays, as before
        pool.add(
            look + lo,
            np.ascontiguousarray(blocks[look]),
            np.ascontiguousarray(run[look]),
            np.ascontiguousarray(rough[look]),
            area_of[lo:hi][look],
        )

    if prefilter is None or len(spans) < 2:
        for lo, hi in spans:
            arrays = placed(lo, hi)
            add(lo, hi, arrays, _worth(*arrays, tix, rules, prefilter))
            del arrays
    else:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="observer-look") as looker:
            ahead: tuple[int, int, tuple[np.ndarray, np.ndarray, np.ndarray], Future[np.ndarray]] | None = None
            for lo, hi in spans:
                arrays = placed(lo, hi)
                looking = looker.submit(_worth, *arrays, tix, rules, prefilter)
                if ahead is not None:
                    add(ahead[0], ahead[1], ahead[2], ahead[3].result())
                ahead = (lo, hi, arrays, looking)
                del arrays
            if ahead is not None:
                add(ahead[0], ahead[1], ahead[2], ahead[3].result())
            del ahead
    res = pool.results()
    s, suspect, t = res["s"], res["suspect"], res["t"]
    first_day = np.where(suspect.any(1), suspect.argmax(1), -1)
    dates_arr = np.array(dates, dtype="datetime64[D]")
    out = pl.DataFrame(
        {
            "meter_id": ids["meter_id"].gather(res["at"]),
            "s_observer": s,
            "d_observer": np.where(first_day >= 0, dates_arr[np.maximum(first_day, 0)], np.datetime64("NaT")),
            "_observer_days": res["n_suspect"].astype(np.int32),
            "_observer_window": np.full(len(s), n_days, dtype=np.int32),
            "_observer_pattern": np.array(PATTERNS)[res["dominant"]],
            "_observer_kwh": np.round(res["implied"], 2),
            "_observer_moved": np.round(res["moved"], 2),
            "_observer_recorded": np.round(res["recorded"], 3),
            "_observer_t": np.round(t, 2),
            "_observer_checked": res["checked"],
            "f_observer_days": np.round(res["days_part"], 6),
            "f_observer_t": np.round(t, 6),
        },
        schema_overrides={"_observer_pattern": pl.String},
    ).with_columns(pl.col("d_observer").cast(pl.Date))
    out = out.filter(pl.col("s_observer") > 0)
    # each listed customer's suspect days, in date order: one list per row from the
    # flat (row-major) positions of the flagged days and each row's count
    flagged = suspect[s > 0]
    # the arrow arrays from numpy buffers and a polars series: ``pa.array`` imports pandas
    # (1 s, paid by a stage run alone)
    day_names = pl.Series([d.isoformat() for d in dates], dtype=pl.String)
    offsets = np.ascontiguousarray(np.r_[0, np.cumsum(flagged.sum(1))], dtype=np.int64)
    suspect_dates = pl.Series(
        "_dates",
        pa.LargeListArray.from_arrays(
            pa.Array.from_buffers(pa.int64(), len(offsets), [None, pa.py_buffer(offsets)]),
            day_names.gather(np.nonzero(flagged)[1]).to_arrow(),
        ),
    ).cast(pl.List(pl.String))
    out = out.with_columns(suspect_dates)
    ev = pl.struct(
        window_start=pl.lit(str(dates[0])),
        window_end=pl.lit(str(dates[-1])),
        suspect_days=pl.col("_dates"),
        pattern=pl.col("_observer_pattern"),
        implied_kwh=pl.col("_observer_kwh"),
        moved_kwh=pl.col("_observer_moved"),
        area_loss_t=pl.col("_observer_t"),
        area_checked=pl.col("_observer_checked"),
    ).struct.json_encode()
    return out.with_columns(ev.alias("ev_observer")).drop("_dates").sort("meter_id")


def _place(
    kept: Sequence[DayRows],
    place: Sequence[tuple[np.ndarray, np.ndarray]],
    lo: int,
    hi: int,
    n_days: int,
    nb: int,
    names: list[str],
    spare: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Customers ``lo`` up to ``hi`` of the window: their blocks (customers, days, blocks), zero
    runs and roughness (customers, days), NaN where a day has no row of theirs; ``place``: each
    kept day's (rows, customers) that count. ``spare``: arrays of an earlier chunk no longer in
    use, written over where their shape and type are this chunk's (kept in it for the next).

    The blocks are held day by day and block by block (days, blocks, customers) and given as
    that array's transposed view: a day's rows go in as one contiguous copy per block from the
    day's columns (``DayRows.arrays`` gives a kept day's blocks as the view of its columns), not
    a scatter of each row's blocks; the values are the same, only their places in memory differ."""
    m = hi - lo
    read = []
    for d, (src, (row_at, cust)) in enumerate(zip(kept, place, strict=True)):
        a, b = np.searchsorted(cust, np.array([lo, hi], dtype=cust.dtype))  # not the day's rows cast
        if a < b:
            r0, r1 = int(row_at[a]), int(row_at[b - 1]) + 1
            got_rows = src.arrays(r0, r1) if src.arrays is not None else rows_as_arrays(src.read(r0, r1), names)
            read.append((d, got_rows, row_at[a:b] - r0, cust[a:b] - lo))
    # blocks kept as float32 stay float32 until summed (their medians sort half the bytes)
    narrow = all(arrays[0].dtype == np.float32 for _, arrays, _, _ in read)
    kind = np.dtype(np.float32 if narrow else np.float64)
    spare = {} if spare is None else spare
    if "blocks" not in spare or spare["blocks"].shape != (n_days, nb, m) or spare["blocks"].dtype != kind:
        spare.update(
            blocks=np.empty((n_days, nb, m), dtype=kind), run=np.empty((n_days, m)), rough=np.empty((n_days, m))
        )
    by_day, run, rough = spare["blocks"], spare["run"], spare["rough"]
    missing = np.ones(n_days, dtype=bool)  # days with no row of the chunk: NaN throughout
    for d, (day_blocks, day_run, day_rough), pick, into in read:
        k = len(pick)
        if k and int(pick[-1]) - int(pick[0]) == k - 1 and int(into[-1]) - int(into[0]) == k - 1:
            # consecutive rows into consecutive customers (a steady roster): slices, no gathers
            p0, i0 = int(pick[0]), int(into[0])
            by_day[d, :, i0 : i0 + k] = day_blocks[p0 : p0 + k].T
            run[d, i0 : i0 + k] = day_run[p0 : p0 + k]
            rough[d, i0 : i0 + k] = day_rough[p0 : p0 + k]
            for x in (by_day[d], run[d], rough[d]):  # the customers without a row that day
                x[..., :i0] = np.nan
                x[..., i0 + k :] = np.nan
        else:
            none = np.ones(m, dtype=bool)
            none[into] = False
            by_day[d][:, into] = day_blocks[pick].T
            run[d, into] = day_run[pick]
            rough[d, into] = day_rough[pick]
            by_day[d][:, none] = np.nan
            run[d, none] = np.nan
            rough[d, none] = np.nan
        missing[d] = False
    by_day[missing] = np.nan
    run[missing] = np.nan
    rough[missing] = np.nan
    return by_day.transpose(2, 0, 1), run.T, rough.T


def no_rows() -> pl.DataFrame:
    """The indicator's columns, no rows (no curves summarised)."""
    return pl.DataFrame(
        schema={
            "meter_id": pl.String,
            "s_observer": pl.Float64,
            "d_observer": pl.Date,
            "_observer_days": pl.Int32,
            "_observer_window": pl.Int32,
            "_observer_pattern": pl.String,
            "_observer_kwh": pl.Float64,
            "_observer_moved": pl.Float64,
            "_observer_recorded": pl.Float64,
            "_observer_t": pl.Float64,
            "_observer_checked": pl.Boolean,
            "f_observer_days": pl.Float64,
            "f_observer_t": pl.Float64,
            "ev_observer": pl.String,
        }
    )


def cases(ind: pl.DataFrame, day: dt.date, min_strength: float) -> pl.DataFrame:
    """Theft-case candidates (the columns :func:`meterlake.transforms.theft_cases.theft_cases` prices) from the
    indicator rows of ``day`` (:func:`indicator` joined with customer_id and area_id) at
    ``min_strength`` or more: the stolen kWh are those the suspect days leave unrecorded
    (their usual day less what was recorded). A reversed or flattened day that kept its
    total hides nothing: it counts 0 kWh, so its back charge is 0, and its evidence text
    gives the kWh it moved to other hours instead (the TOU bill it lowered is not priced
    here).
    """
    ev = pl.col("ev_observer")
    found = ind.filter(pl.col("s_observer") >= min_strength)
    return found.select(
        pl.lit(day).alias("date"),
        ev.str.json_path_match("$.window_start").str.to_date().alias("window_start"),
        "area_id",
        "meter_id",
        "customer_id",
        pl.col("_observer_days").cast(pl.Int32).alias("days"),
        pl.col("s_observer").alias("score"),
        pl.col("ev_observer").alias("evidence"),
        pl.col("_observer_recorded").alias("recorded_kwh"),
        pl.col("_observer_kwh").clip(lower_bound=0.0).alias("stolen_kwh"),
        reason_text().alias("evidence_text"),
    )


def reason_text() -> pl.Expr:
    """The finding in words, English then Chinese (columns of :func:`indicator`)."""
    en = pl.col("_observer_pattern").replace_strict({k: v[0] for k, v in PATTERN_WORDS.items()}, default="?")
    zh = pl.col("_observer_pattern").replace_strict({k: v[1] for k, v in PATTERN_WORDS.items()}, default="?")

    def s(c: str) -> pl.Expr:
        return pl.col(c).cast(pl.String).fill_null("?")

    confirm = (
        pl.when(pl.col("_observer_checked"))
        .then(pl.format("; area loss on those days t={} against the hidden shape", s("_observer_t")))
        .otherwise(pl.lit("; area master not usable on those days"))
    )
    confirm_zh = (
        pl.when(pl.col("_observer_checked"))
        .then(pl.format("，台区损失与缺计曲线吻合 t={}", s("_observer_t")))
        .otherwise(pl.lit("，台区总表当日数据不可用"))
    )
    return pl.concat_str(
        [
            pl.format("{} of {} days since {}: ", s("_observer_days"), s("_observer_window"), s("d_observer")),
            en,
            pl.format(
                " (about {} kWh unrecorded in all; {} kWh taken out of the hours it was used in)",
                s("_observer_kwh"),
                s("_observer_moved"),
            ),
            confirm,
            pl.lit(" / "),
            pl.format("{}天中{}天", s("_observer_window"), s("_observer_days")),
            zh,
            pl.format("（约少计{}千瓦时，挪出原时段{}千瓦时）", s("_observer_kwh"), s("_observer_moved")),
            confirm_zh,
        ]
    )


__all__ = [
    "MEMBER_COLUMNS",
    "PATTERNS",
    "DayRows",
    "ObserverInputError",
    "block_names",
    "cases",
    "day_summaries",
    "frame_days",
    "indicator",
    "indicator_of_days",
    "no_rows",
    "reason_text",
]
