"""VEE: validation of the 96-point curves and the daily registers, findings as data.

Pure: lazy frames (or frames) in, frames out; nothing here opens a file. The stage
``meterlake.stages.validate`` reads the lake and calls :func:`validate_day` once per date.

The checks follow the order the meter-data systems run them in (docs/domain.md#validation-checks), each
with a dotted rule name (schemas.vee_findings.RULES), a severity (configurable, defaults in
:data:`DEFAULT_SEVERITY`) and JSON evidence; the comment above each check names the
practice it follows. Findings never change data; the curve slots that are replaced are
listed in ``interval_edits`` (see :mod:`.estimation`).

Work on the 500k-meter county day is vectorised over the 96 slot columns and done in two
passes. A cheap screen of every row (:func:`interval_screen`: horizontal counts, sums and
extremes) says which rows can hold a finding at all; only those get the costlier details
(:func:`interval_details`: runs of equal values by a sliding AND over neighbouring slot
comparisons built by doubling, :func:`_run_starts`; the third-highest slot by sorting a
fixed-size array; on a small day, the same in long form, cheaper to plan). Estimation
works in long form on the few rows that need it.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl
from pydantic import Field, field_validator

from ..schemas.curves import SLOTS
from ..schemas.vee_findings import RULES, VEE_FINDINGS
from . import estimation
from .meter_daily import collection_daily, exact_sum
from .metering import standard_multipliers
from .strict import StrictModel

Severity = Literal["warning", "error", "blocking"]

#: default severity of each rule; config/vee.toml [severity] overrides per rule
DEFAULT_SEVERITY: dict[str, Severity] = {
    "vee.structure.no_archive": "blocking",
    "vee.structure.future_interval": "error",
    "vee.structure.future_register": "error",
    "vee.completeness.register_missing": "warning",
    "vee.completeness.curve_missing": "warning",
    "vee.completeness.curves_absent": "warning",
    "vee.completeness.curve_incomplete": "warning",
    "vee.completeness.collection_below_target": "warning",
    "vee.clock.fault": "error",
    "vee.interval.negative": "error",
    "vee.register.reverse_no_generation": "warning",
    "vee.register.down": "error",
    "vee.register.rollover": "warning",
    "vee.register.runaway": "error",
    "vee.register.stopped": "error",
    "vee.archive.multiplier_changed": "warning",
    "vee.archive.multiplier_nonstandard": "warning",
    "vee.interval.zero_run": "warning",
    "vee.interval.flat_line": "warning",
    "vee.interval.spike": "warning",
    "vee.usage.high": "warning",
    "vee.usage.low": "warning",
    "vee.sum.curve_register": "error",
    "vee.sum.tou_total": "error",
    "vee.interval.capacity": "error",
    "vee.estimate.unestimated": "warning",
    "vee.estimate.scale": "warning",
    "vee.estimate.capacity": "error",
}
assert set(DEFAULT_SEVERITY) == set(RULES), set(DEFAULT_SEVERITY) ^ set(RULES)


# --- configuration --------------------------------------------------------------------


class RegistersConfig(StrictModel):
    max_gap_days: int = Field(
        31,
        ge=1,
        le=366,
        description="longest span between two existing readings whose difference is shared over the days between them; longer gaps leave their days missing; also the look-back/look-ahead window of register partitions read",
    )
    rollover_fraction: float = Field(
        0.5,
        gt=0,
        le=1,
        description="a negative difference is a rollover when difference + register_max is below this share of register_max (CONTRACT §1: half)",
    )
    tou_tolerance_kwh_meter: float = Field(
        0.05, ge=0, description="largest |sharp+peak+flat+valley - total| of one reading accepted, meter-side kWh"
    )


class EstimationConfig(StrictModel):
    max_interpolation_slots: int = Field(
        8,
        ge=0,
        le=95,
        description="longest gap (15-minute slots) filled by linear interpolation between actual values; 8 = 2 h (CPUC Rev 2.0, VDN MeteringCode)",
    )
    like_days: int = Field(
        3, ge=1, le=10, description="number of nearest earlier days of the same type averaged by like-day estimation"
    )
    like_day_window_days: int = Field(35, ge=1, le=366, description="how far back like days are looked for, days")
    scale_band: float = Field(
        3.0, gt=1, description="a scale factor outside [1/scale_band, scale_band] is reported (vee.estimate.scale)"
    )
    residual_tolerance_kwh_meter: float = Field(
        0.05,
        ge=0,
        description="actual slots may exceed the register difference by this much (rounding) before scaling is called impossible, meter-side kWh",
    )


class CalendarConfig(StrictModel):
    holidays: list[dt.date] = Field(
        default_factory=list, description="public holidays: treated as Sundays by like-day estimation"
    )
    workdays: list[dt.date] = Field(
        default_factory=list, description="adjusted workdays (调休, weekend days worked): treated as workdays"
    )


class IntervalConfig(StrictModel):
    spike_factor: float = Field(
        5.0,
        gt=1,
        description="spike when the highest slot exceeds this multiple of the third-highest (Oracle Utilities MDM spike check)",
    )
    spike_min_kwh: float = Field(0.5, ge=0, description="a spike must also reach this many primary kWh in its slot")
    flat_line_slots: int = Field(
        16, ge=2, le=96, description="consecutive identical non-zero slots that make a flat line (16 = 4 h)"
    )
    zero_run_slots: int = Field(48, ge=1, le=96, description="consecutive zero slots that make a zero run (48 = 12 h)")
    capacity_margin: float = Field(
        1.2,
        gt=0,
        description="a slot's mean kW (kWh x 4, primary) above the meter's capacity x this margin fails the capacity check",
    )


class RegisterChecksConfig(StrictModel):
    stopped_curve_min_kwh: float = Field(
        1.0,
        ge=0,
        description="stopped register: the register did not move while the day's actual slots add up to at least this many primary kWh",
    )
    runaway_factor: float = Field(
        1.0, gt=0, description="runaway register: the day's primary kWh above the meter's capacity x 24 h x this factor"
    )
    curve_register_abs_kwh_meter: float = Field(
        0.05,
        ge=0,
        description="sum check: absolute tolerance between Σ96 slots and the register difference, meter-side kWh",
    )
    curve_register_rel: float = Field(
        0.01,
        ge=0,
        description="sum check: relative tolerance (share of the register difference); the larger of the two applies",
    )


class HistoryConfig(StrictModel):
    days: int = Field(
        28, ge=1, le=366, description="history window of the high/low and reverse checks, days before the date"
    )
    min_days: int = Field(7, ge=1, description="actual days the window must hold for the history checks to run")
    high_factor: float = Field(
        3.0, gt=1, description="high usage: the day's kWh above this multiple of the history mean"
    )
    high_min_kwh: float = Field(5.0, ge=0, description="high usage: and at least this many kWh above the mean")
    low_factor: float = Field(
        0.2, ge=0, lt=1, description="low usage: the day's kWh below this multiple of the history mean"
    )
    low_min_mean_kwh: float = Field(
        2.0, ge=0, description="low usage is tested only when the history mean is at least this many kWh"
    )
    reverse_min_kwh: float = Field(0.5, ge=0, description="a day exports when its reverse kWh reach this")
    reverse_max_history_days: int = Field(
        0,
        ge=0,
        description="a customer exporting today has 'no generation' when it exported on at most this many history days",
    )


class MultiplierConfig(StrictModel):
    """Standard CT/PT ratios come from the one rating table (transforms/metering.py)."""

    def allowed(self) -> list[float]:
        """Every CT ratio x PT ratio of the rating table (a direct-connected meter is 1)."""
        return list(standard_multipliers())


class CapacityConfig(StrictModel):
    direct_resident_kw: float = Field(
        39.6,
        gt=0,
        description="largest power of a direct-connected resident meter: 3 x 220 V x 60 A (a three-phase 5(60) A meter; the archive does not say which households are single-phase, 13.2 kW)",
    )
    direct_other_kw: float = Field(
        66.0,
        gt=0,
        description="largest power of another direct-connected meter: three-phase 3 x 220 V x 100 A (a 10(100) A meter)",
    )
    ct_low_voltage_kw: float = Field(
        3.96,
        gt=0,
        description="largest meter-side power of a transformer-rated low-voltage meter: 3 x 220 V x 6 A (1.5(6) A); x multiplier = primary kW",
    )
    ct_high_voltage_kw: float = Field(
        1.04,
        gt=0,
        description="largest meter-side power of a 10 kV meter behind PTs: 3 x 57.7 V x 6 A (1.5(6) A); x multiplier = primary kW",
    )


class CollectionConfig(StrictModel):
    target_rate: float = Field(0.98, ge=0, le=1, description="采集成功率 target per area and day (commonly 98-99.5 %)")


class VeeConfig(StrictModel):
    """Thresholds of the validate stage (config/vee.toml)."""

    registers: RegistersConfig = Field(default_factory=RegistersConfig, description="register differences and readings")
    estimation: EstimationConfig = Field(default_factory=EstimationConfig, description="interval estimation")
    calendar: CalendarConfig = Field(default_factory=CalendarConfig, description="holidays for like days")
    interval: IntervalConfig = Field(default_factory=IntervalConfig, description="curve checks")
    register_checks: RegisterChecksConfig = Field(default_factory=RegisterChecksConfig, description="register checks")
    history: HistoryConfig = Field(default_factory=HistoryConfig, description="checks against the meter's own history")
    multiplier: MultiplierConfig = Field(default_factory=MultiplierConfig, description="standard CT/PT ratios")
    capacity: CapacityConfig = Field(
        default_factory=CapacityConfig, description="largest power a meter can register, by connection"
    )
    collection: CollectionConfig = Field(default_factory=CollectionConfig, description="collection success target")
    severity: dict[str, Severity] = Field(
        default_factory=dict, description="severity per rule name, overriding DEFAULT_SEVERITY"
    )

    @field_validator("severity")
    @classmethod
    def _known_rules(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(RULES))
        if unknown:
            raise ValueError(f"unknown rule(s) {', '.join(unknown)}; rules are {', '.join(sorted(RULES))}")
        return v

    def severity_of(self, rule: str) -> str:
        return self.severity.get(rule, DEFAULT_SEVERITY[rule])


# --- building blocks ----------------------------------------------------------------


def finding(
    frame: pl.LazyFrame,
    rule: str,
    cfg: VeeConfig,
    *,
    evidence: dict[str, pl.Expr],
    value: pl.Expr | None = None,
    limit: pl.Expr | float | None = None,
    slot: pl.Expr | None = None,
    meter: bool = True,
) -> pl.LazyFrame:
    """One finding per row of ``frame`` (already filtered to the rows that fail ``rule``).

    ``frame`` has ``date`` and, for meter findings, ``meter_id, area_id, feeder_id``.
    """
    if rule not in RULES:
        raise KeyError(f"unknown VEE rule {rule!r}; add it to schemas.vee_findings.RULES")
    names = frame.collect_schema().names()
    col = lambda c: pl.col(c) if c in names else pl.lit(None, pl.String)  # noqa: E731
    lim = limit if isinstance(limit, pl.Expr) else pl.lit(limit, pl.Float64)
    return frame.select(
        pl.col("date"),
        pl.lit(rule).alias("rule"),
        pl.lit(cfg.severity_of(rule)).alias("severity"),
        (col("meter_id") if meter else pl.lit(None, pl.String)).alias("meter_id"),
        col("area_id").alias("area_id"),
        col("feeder_id").alias("feeder_id"),
        (slot if slot is not None else pl.lit(None)).cast(pl.Int16).alias("slot"),
        (value if value is not None else pl.lit(None)).cast(pl.Float64).alias("value"),
        lim.cast(pl.Float64).alias("limit"),
        pl.struct([v.alias(k) for k, v in evidence.items()]).struct.json_encode().alias("evidence"),
    )


def empty_findings() -> pl.DataFrame:
    return pl.DataFrame(schema=VEE_FINDINGS.schema)


def capacity_kw(cfg: VeeConfig) -> pl.Expr:
    """The most a meter can register (primary kW): its maximum current at nominal voltage,
    times the multiplier. The archive carries no contracted capacity (合同容量); the meter's
    own rating is the physical ceiling. A meter with multiplier 1 is direct-connected; a
    feeder head or a customer without an area (专变) is metered at 10 kV behind PTs; any
    other meter with a multiplier is a transformer-rated low-voltage meter."""
    cap = cfg.capacity
    mult = pl.col("multiplier").cast(pl.Float64)
    role = pl.col("role")
    high_voltage = (role == "feeder_head") | ((role == "customer") & pl.col("area_id").is_null())
    meter_kw = (
        pl.when((mult <= 1) & (pl.col("customer_class") == "resident"))
        .then(cap.direct_resident_kw)
        .when(mult <= 1)
        .then(cap.direct_other_kw)
        .when(high_voltage)
        .then(cap.ct_high_voltage_kw)
        .otherwise(cap.ct_low_voltage_kw)
    )
    return (meter_kw * mult).cast(pl.Float64)


def _run_starts(conds: list[pl.Expr], length: int) -> list[pl.Expr]:
    """``out[i]`` is true when ``conds[i] ... conds[i+length-1]`` all hold.

    Built by doubling (windows of 1, 2, 4, ... combined by the binary digits of
    ``length``), so it costs about ``len(conds) x log2(length)`` boolean column ops.
    """
    n = len(conds)
    if length < 1 or length > n:
        return []
    result: list[pl.Expr] | None = None
    res_w = 0
    cur, w, need = list(conds), 1, length
    while True:
        if need & 1:
            if result is None:
                result, res_w = cur, w
            else:
                result = [result[i] & cur[i + res_w] for i in range(n - res_w - w + 1)]
                res_w += w
        need >>= 1
        if not need:
            break
        cur = [cur[i] & cur[i + w] for i in range(n - 2 * w + 1)]
        w *= 2
    assert result is not None and len(result) == n - length + 1
    return result


def _first_slot(flags: list[pl.Expr]) -> pl.Expr:
    """1-based index of the first true flag, empty when none."""
    return pl.min_horizontal([pl.when(f).then(pl.lit(i, pl.Int16)) for i, f in enumerate(flags, start=1)])


def _done_slots() -> pl.Expr:
    """Slots of the day that had ended when the file was delivered (-1..96)."""
    minutes = (pl.col("delivered_at") - pl.col("date").cast(pl.Datetime("us"))).dt.total_minutes()
    return (minutes // 15).clip(-1, 96)


def interval_screen(curves: pl.LazyFrame, cfg: VeeConfig, ended: bool = False) -> pl.LazyFrame:
    """Cheap per-row figures over the 96 slots, for every curve row of the day.

    ``curves``: ``meter_id, date, p1..p96`` and optionally ``delivered_at``. Returns
    ``meter_id, date, slots_read`` (collected), ``slots_valid`` (collected and >= 0),
    ``negative_slots``, ``actual_kwh_meter`` (Σ valid slots),
    ``max_kwh_meter``, ``zero_slots``, ``equal_pairs`` (neighbouring slots with the same
    non-zero value) and ``future_slots`` (values in slots that had not ended when the
    file was delivered). A row can hold a zero run or a flat line only if its counts
    allow one: :func:`interval_details` looks for them on those rows only. ``ended``: the
    caller knows that every row was delivered after its day ended (no future slot can hold
    a value): ``future_slots`` is then 0 without looking at the slots.
    """
    has_delivery = "delivered_at" in curves.collect_schema().names()
    return curves.with_columns(
        (_done_slots() if has_delivery else pl.lit(96)).alias("_done"),
    ).select("meter_id", "date", *_screen_figures(has_delivery, ended))


@functools.cache
def _screen_figures(has_delivery: bool, ended: bool = False) -> tuple[pl.Expr, ...]:
    """The figures of :func:`interval_screen`: ~700 terms over the slots, built once (an
    expression is immutable, and building them cost more than a small day's rows)."""
    p = [pl.col(s) for s in SLOTS]
    future = (
        pl.sum_horizontal([c.is_not_null() & (pl.lit(i) > pl.col("_done")) for i, c in enumerate(p, start=1)])
        if has_delivery and not ended
        else pl.lit(0)
    )
    return (
        pl.sum_horizontal([c.is_not_null() for c in p]).cast(pl.Int16).alias("slots_read"),
        pl.sum_horizontal([(c >= 0).fill_null(False) for c in p]).cast(pl.Int16).alias("slots_valid"),
        pl.sum_horizontal([(c < 0).fill_null(False) for c in p]).cast(pl.Int16).alias("negative_slots"),
        _actual_kwh(),
        pl.max_horizontal(p).alias("max_kwh_meter"),
        pl.sum_horizontal([(c == 0).fill_null(False) for c in p]).cast(pl.Int16).alias("zero_slots"),
        pl.sum_horizontal([((a == b) & (a != 0)).fill_null(False) for a, b in itertools.pairwise(p)])
        .cast(pl.Int16)
        .alias("equal_pairs"),
        future.cast(pl.Int16).alias("future_slots"),
        (pl.col("delivered_at") if has_delivery else pl.lit(None, pl.Datetime("us"))).alias("delivered_at"),
    )


@functools.cache
def _actual_kwh() -> pl.Expr:
    """``actual_kwh_meter`` of :func:`interval_screen`: the sum of the slots at least 0."""
    return pl.sum_horizontal([pl.when(pl.col(s) >= 0).then(pl.col(s)) for s in SLOTS]).alias("actual_kwh_meter")


def _any_nan(slots: pl.DataFrame) -> bool:
    """Whether a slot holds NaN: numpy reads an empty slot as NaN, and polars orders NaN
    above every number, so such a frame is left to polars."""
    return bool(slots.select(pl.any_horizontal(pl.col(SLOTS).is_nan()).any()).item())


def _negative_zero(block: np.ndarray) -> bool:
    """Whether a block of slots holds -0.0, which polars orders against 0.0 and numpy does not."""
    return bool((np.signbit(block) & (block == 0)).any())


#: rows of slots :func:`screen_frame` copies to numpy at a time (~25 MB)
SCREEN_CHUNK_ROWS = 32_768


def screen_frame(curves: pl.DataFrame, cfg: VeeConfig, ended: bool = False) -> pl.DataFrame:
    """``interval_screen(curves.lazy(), cfg, ended).collect()``, the same frame, cheaper:
    the counts and the highest slot taken in numpy over blocks of rows (polars' ~600
    horizontal terms cost more), the sum of the valid slots in polars (its order of
    addition is polars' own, and the last bits follow it).

    numpy reads an empty slot as NaN and cannot order -0.0 against 0.0 as polars does:
    a frame holding a NaN or -0.0 slot, one whose slots are not Float64, or one that may
    hold future slots (delivered before its day ended), is screened by polars alone."""
    screen = interval_screen(curves.lazy(), cfg, ended=ended)
    has_delivery = "delivered_at" in curves.columns
    if (
        not curves.height
        or (has_delivery and not ended)
        or any(curves.schema[s] != pl.Float64 for s in SLOTS)
        or _any_nan(curves)
    ):
        return screen.collect()
    counts = _screen_counts(curves.select(SLOTS))
    if counts is None:
        return screen.collect()
    # a lazy query, as interval_screen's: an eager select adds the slots in another order
    return (
        curves.lazy()
        .select(
            "meter_id",
            "date",
            _actual_kwh(),
            (pl.col("delivered_at") if has_delivery else pl.lit(None, pl.Datetime("us"))).alias("delivered_at"),
        )
        .collect()
        .with_columns(*counts, pl.lit(0, pl.Int16).alias("future_slots"))
        .select(screen.collect_schema().names())
    )


def _screen_counts(slots: pl.DataFrame) -> list[pl.Series] | None:
    """The numpy figures of :func:`screen_frame` (``slots``: the 96 Float64 slots, no NaN);
    None when a slot holds -0.0."""
    names = ("slots_read", "slots_valid", "negative_slots", "max_kwh_meter", "zero_slots", "equal_pairs")
    out: dict[str, list] = {n: [] for n in names}
    for start in range(0, slots.height, SCREEN_CHUNK_ROWS):
        a = slots.slice(start, SCREEN_CHUNK_ROWS).to_numpy()  # an empty slot is NaN
        if _negative_zero(a):
            return None
        zero = a == 0
        out["slots_read"].append((~np.isnan(a)).sum(axis=1, dtype=np.int16))
        out["slots_valid"].append((a >= 0).sum(axis=1, dtype=np.int16))
        out["negative_slots"].append((a < 0).sum(axis=1, dtype=np.int16))
        out["max_kwh_meter"].append(np.fmax.reduce(a, axis=1))  # NaN where every slot is empty
        out["zero_slots"].append(zero.sum(axis=1, dtype=np.int16))
        out["equal_pairs"].append(((a[:, :-1] == a[:, 1:]) & ~zero[:, :-1]).sum(axis=1, dtype=np.int16))
    series = {n: pl.Series(n, np.concatenate(v)) for n, v in out.items()}
    series["max_kwh_meter"] = series["max_kwh_meter"].fill_nan(None)
    return list(series.values())


#: rows of curves :func:`screen_in_ranges` decodes and screens at a time: a row group of
#: the lake's files, ~0.2 GB of slot columns where a county day's are ~0.4 GB (smaller
#: ranges cost more CPU and did not lower the county day's peak further)
SCREEN_ROWS = 256_000


def _on_dates(day: dt.date | Sequence[dt.date]) -> pl.Expr:
    """The rows of ``day`` (one date, or several)."""
    if isinstance(day, dt.date):
        return pl.col("date") == day
    return pl.col("date").is_in(list(day))


def _keys(day: dt.date | Sequence[dt.date]) -> list[str]:
    """What names a meter-day: the meter on one date, the meter and the date on several."""
    return ["meter_id"] if isinstance(day, dt.date) else ["meter_id", "date"]


def _day_curves(curves: pl.LazyFrame, day: dt.date | Sequence[dt.date]) -> pl.LazyFrame:
    """``meter_id, date, p1..p96`` (and ``delivered_at`` when there) of the rows of ``day``."""
    has_delivery = "delivered_at" in curves.collect_schema().names()
    return (
        curves.rename({"data_date": "date"}, strict=False)
        .filter(_on_dates(day))
        .select("meter_id", "date", *SLOTS, *(["delivered_at"] if has_delivery else []))
    )


def screen_in_ranges(
    curves: pl.LazyFrame,
    day: dt.date | Sequence[dt.date],
    cfg: VeeConfig,
    meters: pl.DataFrame,
    rows: int = SCREEN_ROWS,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """:func:`interval_screen` of the rows of ``day`` in ``curves`` (clean curves, ``date``
    or ``data_date``), worked ``rows`` rows of ``curves`` at a time, so that the slot
    columns of the whole day are never held at once.

    Returns the screen (the same frame, in the same order, as one pass over all the rows:
    each row's figures are its own) and the rows (``meter_id, date``, the slots,
    ``delivered_at``), in their order, that the later steps read: those that may hold an
    interval finding (:func:`needs_details`, with the attributes of ``meters``) and those
    with a slot empty or negative (:func:`.estimation.needs_edit`). A meter has one curve
    row a date (the clean table's key), so a range's flags are the row's own. The ranges
    are cut before the date's filter: each reads only its own rows of the file. ``day``
    may be several dates: ``meters`` then has ``date`` too.
    """
    screen, kept, _ = _screen_ranges(curves, day, cfg, meters, rows)
    return screen, kept


def _screen_ranges(
    curves: pl.LazyFrame,
    day: dt.date | Sequence[dt.date],
    cfg: VeeConfig,
    meters: pl.DataFrame,
    rows: int = SCREEN_ROWS,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """:func:`screen_in_ranges`, and the screen joined with ``meters`` (inner, on the keys):
    each range's rows are joined once, for its flags and for the caller's profile."""
    k = _keys(day)
    n = curves.select(pl.len()).collect().item()
    screens, kept, profiles = [], [], []
    for start in range(0, max(n, 1), rows):
        part = _day_curves(curves.slice(start, rows), day).collect()
        # files delivered after their days ended (the usual case) hold no future slot
        done = part.select(_done_slots().min()).item() if "delivered_at" in part.columns else None
        screen = screen_frame(part, cfg, ended=done is None or done >= len(SLOTS))
        profile = screen.join(meters, on=k, how="inner")
        flagged = profile.filter(needs_details(cfg)).select(k)
        # a slot empty (not read) or negative is what needs_edit looks for
        edit = screen.filter((pl.col("slots_read") < len(SLOTS)) | (pl.col("negative_slots") > 0)).select(k)
        kept.append(part.join(pl.concat([flagged, edit]), on=k, how="semi"))
        screens.append(screen)
        profiles.append(profile)
        del part  # before the next range is read, not after
    return pl.concat(screens, rechunk=True), pl.concat(kept, rechunk=True), pl.concat(profiles, rechunk=True)


#: up to this many rows, :func:`interval_details` works in long form (cheaper to plan);
#: above, over the slot columns (cheaper per row). The two give the same frame.
DETAILS_LONG_MAX_ROWS = 10_000


def interval_details(
    curves: pl.LazyFrame, cfg: VeeConfig, rows: int | None = None, by: Sequence[str] = ("meter_id",)
) -> pl.LazyFrame:
    """Where in the day the interval findings are, for the rows that have one.

    Costlier than :func:`interval_screen` (run tests over slot windows, a sort for the
    third-highest slot): call it on the rows the screen flagged. Returns ``meter_id,
    first_negative_slot, min_kwh_meter, zero_run_slot, flat_line_slot, flat_line_kwh_meter,
    max_slot, third_kwh_meter, first_future_slot`` (slots are 1-based; empty when there is
    none; ``min_kwh_meter`` the lowest slot, read by the negative-value check only, so not
    worked out by the screen for every row), one row per curve row, in order. ``rows``: how many rows ``curves`` holds, when the
    caller knows; a few rows (a small utility's day) are worked in long form. ``by``: the
    columns that name a row (``meter_id, date`` for rows of several dates).
    """
    if rows is not None and rows <= DETAILS_LONG_MAX_ROWS:
        return _details_long(curves, cfg, by)
    return _details_wide(curves, cfg, by)


def _details_wide(curves: pl.LazyFrame, cfg: VeeConfig, by: Sequence[str] = ("meter_id",)) -> pl.LazyFrame:
    """:func:`interval_details` over the 96 slot columns: runs by a sliding AND built by
    doubling (:func:`_run_starts`). Its thousands of expressions cost ~0.15 s to plan
    whatever the rows, then little per row."""
    p = [pl.col(s) for s in SLOTS]
    zero = _run_starts([(c == 0).fill_null(False) for c in p], cfg.interval.zero_run_slots)
    same = [((a == b) & (a != 0)).fill_null(False) for a, b in itertools.pairwise(p)]
    flat = _run_starts(same, cfg.interval.flat_line_slots - 1)
    has_delivery = "delivered_at" in curves.collect_schema().names()
    valid = [pl.when(c >= 0).then(c) for c in p]
    return curves.with_columns(
        pl.max_horizontal(p).alias("_max"),
        (_done_slots() if has_delivery else pl.lit(96)).alias("_done"),
    ).select(
        *by,
        _first_slot([(c < 0).fill_null(False) for c in p]).alias("first_negative_slot"),
        pl.min_horizontal(p).alias("min_kwh_meter"),
        (_first_slot(zero) if zero else pl.lit(None, pl.Int16)).alias("zero_run_slot"),
        (_first_slot(flat) if flat else pl.lit(None, pl.Int16)).alias("flat_line_slot"),
        (pl.coalesce([pl.when(f).then(p[i]) for i, f in enumerate(flat)]) if flat else pl.lit(None, pl.Float64)).alias(
            "flat_line_kwh_meter"
        ),
        _first_slot([(c == pl.col("_max")).fill_null(False) for c in p]).alias("max_slot"),
        # Oracle's spike rule compares the highest slot with the third-highest
        pl.concat_arr(valid).arr.sort(descending=True, nulls_last=True).arr.get(2).alias("third_kwh_meter"),
        _first_slot([c.is_not_null() & (pl.lit(i) > pl.col("_done")) for i, c in enumerate(p, start=1)]).alias(
            "first_future_slot"
        ),
    )


def _details_long(curves: pl.LazyFrame, cfg: VeeConfig, by: Sequence[str] = ("meter_id",)) -> pl.LazyFrame:
    """:func:`interval_details` in long form (one row per slot, the 96 slots of a curve row
    consecutive): a run of ``k`` flags ending at slot ``j`` is a rolling sum of ``k`` at
    ``j >= k``, and it starts at ``j - k + 1``. A few dozen expressions: cheap to plan,
    dearer per row than the wide form."""
    ic = cfg.interval
    zero_len, flat_len = ic.zero_run_slots, ic.flat_line_slots - 1  # flat: runs of equal neighbour pairs
    n = len(SLOTS)
    has_delivery = "delivered_at" in curves.collect_schema().names()
    v, slot = pl.col("v"), pl.col("slot")

    def run_start(flag: pl.Expr, length: int, last: int) -> pl.Expr:
        """Start slot of the run of ``length`` true flags ending on this row (among slots 1..last)."""
        if length < 1 or length > last:
            return pl.lit(None, pl.Int16)
        full = flag.cast(pl.Int32).rolling_sum(window_size=length) == length
        return pl.when(full & (slot >= length) & (slot <= last)).then(slot - (length - 1)).cast(pl.Int16)

    long = (
        curves.select(
            *by,
            (_done_slots() if has_delivery else pl.lit(96)).alias("_done"),
            *SLOTS,
        )
        .with_row_index("_row")
        .unpivot(index=["_row", *by, "_done"], on=list(SLOTS), variable_name="_name", value_name="v")
        .with_columns(pl.col("_name").str.slice(1).cast(pl.Int16).alias("slot"))
        .sort("_row", "slot")
        .with_columns(
            run_start((v == 0).fill_null(False), zero_len, n).alias("_zero_start"),
            run_start(((v == v.shift(-1)) & (v != 0)).fill_null(False), flat_len, n - 1).alias("_flat_start"),
        )
    )
    flat_slot = pl.col("_flat_start").min()
    return (
        long.group_by("_row")
        .agg(
            *(pl.col(b).first() for b in by),
            slot.filter(v < 0).min().alias("first_negative_slot"),
            v.min().alias("min_kwh_meter"),
            pl.col("_zero_start").min().alias("zero_run_slot"),
            flat_slot.alias("flat_line_slot"),
            v.filter(slot == flat_slot).first().alias("flat_line_kwh_meter"),
            slot.filter(v == v.max()).min().alias("max_slot"),
            # Oracle's spike rule compares the highest slot with the third-highest
            v.filter(v >= 0).sort(descending=True).slice(2, 1).first().alias("third_kwh_meter"),
            slot.filter(v.is_not_null() & (slot > pl.col("_done"))).min().alias("first_future_slot"),
        )
        .sort("_row")
        .drop("_row")
    )


def interval_peaks(curves: pl.LazyFrame, by: Sequence[str] = ("meter_id",), third: bool = True) -> pl.LazyFrame:
    """:func:`interval_details` of rows whose screen rules out every run, negative and
    future slot (:func:`needs_runs` false): ``max_slot`` and ``third_kwh_meter`` as there,
    the other columns empty (as there: those rows have none). ``third=False`` leaves
    ``third_kwh_meter`` empty (:func:`interval_peaks_frame` fills it)."""
    p = [pl.col(s) for s in SLOTS]
    valid = [pl.when(c >= 0).then(c) for c in p]
    none = pl.lit(None, pl.Int16)
    third_expr = (
        pl.concat_arr(valid).arr.sort(descending=True, nulls_last=True).arr.get(2)
        if third
        else pl.lit(None, pl.Float64)
    )
    return curves.with_columns(pl.max_horizontal(p).alias("_max")).select(
        *by,
        none.alias("first_negative_slot"),
        pl.min_horizontal(p).alias("min_kwh_meter"),
        none.alias("zero_run_slot"),
        none.alias("flat_line_slot"),
        pl.lit(None, pl.Float64).alias("flat_line_kwh_meter"),
        _first_slot([(c == pl.col("_max")).fill_null(False) for c in p]).alias("max_slot"),
        third_expr.alias("third_kwh_meter"),
        none.alias("first_future_slot"),
    )


#: rows of slots :func:`third_highest` copies to numpy at a time (~50 MB)
THIRD_ROWS = 65_536


def interval_peaks_frame(curves: pl.DataFrame, by: Sequence[str] = ("meter_id",)) -> pl.DataFrame:
    """:func:`interval_peaks` of a collected frame, the same frame: the third-highest slot
    taken by :func:`third_highest` (a partial sort of each row in numpy, where polars sorts
    a 96-value array per row) unless that cannot say it exactly."""
    third = third_highest(curves)
    if third is None:
        return interval_peaks(curves.lazy(), by=by).collect()
    return interval_peaks(curves.lazy(), by=by, third=False).collect().with_columns(third)


def third_highest(curves: pl.DataFrame) -> pl.Series | None:
    """``third_kwh_meter``: per row of ``curves``, the third-highest of its slots that are
    at least 0 (empty with fewer than three), as polars' descending sort of them gives it.

    None when a slot holds NaN (polars orders NaN above every number, and numpy reads an
    empty slot as NaN) or -0.0 (which of two equal zeros comes third is the sort's choice):
    the caller then sorts in polars."""
    slots = curves.select(SLOTS)
    if _any_nan(slots):
        return None
    parts = []
    k = len(SLOTS) - 3  # the third-highest is at this index in ascending order
    for start in range(0, curves.height, THIRD_ROWS):
        a = slots.slice(start, THIRD_ROWS).to_numpy()  # float64, an empty slot NaN
        if _negative_zero(a):
            return None
        valid = a >= 0  # False for NaN: the empty slots
        v = np.where(valid, a, -np.inf)
        third = np.partition(v, k, axis=1)[:, k] if len(a) else np.empty(0)
        parts.append(np.where(valid.sum(axis=1) >= 3, third, np.nan))
    values = np.concatenate(parts) if parts else np.empty(0)
    return pl.Series("third_kwh_meter", values, dtype=pl.Float64).fill_nan(None)


def needs_runs(cfg: VeeConfig) -> pl.Expr:
    """Rows of :func:`interval_screen` whose counts allow a negative or future slot, a zero
    run or a flat line: only these need the run tests of :func:`interval_details`; the
    others' details are their peaks (:func:`interval_peaks`)."""
    ic = cfg.interval
    return (
        (pl.col("negative_slots") > 0)
        | (pl.col("zero_slots") >= ic.zero_run_slots)
        | (pl.col("equal_pairs") >= ic.flat_line_slots - 1)
        | (pl.col("future_slots") > 0)
    ).fill_null(False)


def needs_details(cfg: VeeConfig) -> pl.Expr:
    """Rows of :func:`interval_screen` (joined with ``multiplier, role, customer_class``)
    that may hold an interval finding needing :func:`interval_details`."""
    ic = cfg.interval
    mult = pl.col("multiplier").cast(pl.Float64)
    n = pl.col("slots_valid").cast(pl.Float64)
    mx = pl.col("max_kwh_meter")
    # a spike needs max > f x third-highest >= f x (Σ - 2 max) / (n - 2): rows whose sums
    # rule that out skip the sort
    spike = (
        (n >= 3)
        & (mx * mult >= ic.spike_min_kwh)
        & (mx * (n - 2) > ic.spike_factor * (pl.col("actual_kwh_meter") - 2 * mx))
    )
    capacity = mx * mult * 4.0 > capacity_kw(cfg) * ic.capacity_margin
    return (
        (pl.col("negative_slots") > 0)
        | (pl.col("zero_slots") >= ic.zero_run_slots)
        | (pl.col("equal_pairs") >= ic.flat_line_slots - 1)
        | (pl.col("future_slots") > 0)
        | spike
        | capacity
    ).fill_null(False)


# --- the checks ------------------------------------------------------------------------


def interval_findings(profile: pl.LazyFrame, cfg: VeeConfig) -> list[pl.LazyFrame]:
    """Checks on one curve row at a time. ``profile``: :func:`interval_screen` joined with
    the meter-day (``area_id, feeder_id, role, customer_class, multiplier, day_status,
    delta_total_kwh_meter``) and, left, :func:`interval_details` of the flagged rows."""
    mult = pl.col("multiplier").cast(pl.Float64)
    cap = capacity_kw(cfg)
    ic, rc = cfg.interval, cfg.register_checks
    out = []

    # docs/domain.md#validation-checks 1, structure: a value for a slot that had not ended when the file was
    # delivered is a timestamp in the future (Oracle/Itron "future interval" check)
    out.append(
        finding(
            profile.filter(pl.col("future_slots") > 0),
            "vee.structure.future_interval",
            cfg,
            slot=pl.col("first_future_slot"),
            value=pl.col("future_slots"),
            limit=0.0,
            evidence={
                "future_slots": pl.col("future_slots"),
                "delivered_at": pl.col("delivered_at").dt.to_string("%Y-%m-%d %H:%M:%S"),
            },
        )
    )
    # VEE 2, completeness: 96 slots per local day (China has no DST); CPUC Rev 2.0 and
    # Ontario MDM/R check the interval count per day
    out.append(
        finding(
            profile.filter(pl.col("slots_read") < 96),
            "vee.completeness.curve_incomplete",
            cfg,
            value=pl.col("slots_read"),
            limit=96.0,
            evidence={"slots_read": pl.col("slots_read"), "slots_expected": pl.lit(96)},
        )
    )
    # VEE 4, negative values: forward energy cannot be negative (CPUC Rev 2.0 "negative
    # consumption"); the slots are replaced by estimates (reason `negative`)
    out.append(
        finding(
            profile.filter(pl.col("negative_slots") > 0),
            "vee.interval.negative",
            cfg,
            slot=pl.col("first_negative_slot"),
            value=pl.col("min_kwh_meter"),
            limit=0.0,
            evidence={"negative_slots": pl.col("negative_slots"), "min_kwh_meter": pl.col("min_kwh_meter")},
        )
    )
    # VEE 6, zero runs: Ontario MDM/R and Oracle zero-consumption checks
    out.append(
        finding(
            profile.filter(pl.col("zero_run_slot").is_not_null()),
            "vee.interval.zero_run",
            cfg,
            slot=pl.col("zero_run_slot"),
            value=pl.col("zero_run_slot"),
            limit=float(ic.zero_run_slots),
            evidence={
                "run_start_slot": pl.col("zero_run_slot"),
                "min_run_slots": pl.lit(ic.zero_run_slots),
                "day_kwh_meter": pl.col("actual_kwh_meter"),
            },
        )
    )
    # VEE 6, flat lines: identical non-zero values for hours indicate a stuck meter
    # (Oracle/Itron flat-line check)
    out.append(
        finding(
            profile.filter(pl.col("flat_line_slot").is_not_null()),
            "vee.interval.flat_line",
            cfg,
            slot=pl.col("flat_line_slot"),
            value=pl.col("flat_line_kwh_meter"),
            limit=float(ic.flat_line_slots),
            evidence={
                "run_start_slot": pl.col("flat_line_slot"),
                "min_run_slots": pl.lit(ic.flat_line_slots),
                "repeated_kwh_meter": pl.col("flat_line_kwh_meter"),
            },
        )
    )
    # VEE 7, spikes: Oracle Utilities MDM compares the highest interval with the
    # third-highest (robust to one neighbouring high value); plus a kWh floor of ours
    spike = (
        pl.col("third_kwh_meter").is_not_null()
        & (pl.col("max_kwh_meter") * mult >= ic.spike_min_kwh)
        & (pl.col("max_kwh_meter") > ic.spike_factor * pl.col("third_kwh_meter"))
    )
    out.append(
        finding(
            profile.filter(spike),
            "vee.interval.spike",
            cfg,
            slot=pl.col("max_slot"),
            value=pl.col("max_kwh_meter"),
            limit=ic.spike_factor * pl.col("third_kwh_meter"),
            evidence={
                "max_kwh_meter": pl.col("max_kwh_meter"),
                "third_highest_kwh_meter": pl.col("third_kwh_meter"),
                "factor": pl.lit(ic.spike_factor),
                "multiplier": mult,
            },
        )
    )
    # VEE 10, capacity: a slot's energy x 4 is its mean kW over 15 minutes; above the
    # meter's capacity it cannot be real (docs/domain.md#validation-checks item 10)
    kw = pl.col("max_kwh_meter") * mult * 4.0
    out.append(
        finding(
            profile.filter(kw > cap * ic.capacity_margin),
            "vee.interval.capacity",
            cfg,
            slot=pl.col("max_slot"),
            value=kw,
            limit=cap * ic.capacity_margin,
            evidence={"max_kw": kw, "capacity_kw": cap, "margin": pl.lit(ic.capacity_margin), "multiplier": mult},
        )
    )
    # VEE 9, sum check: Σ of the 96 actual slots against the register difference (VDN
    # MeteringCode 2006 annex 7/8, where a failure blocks the meter's data; CPUC Rev 2.0
    # interval-vs-register check). Only on complete actual curves and actual register days.
    delta = pl.col("delta_total_kwh_meter")
    tol = pl.max_horizontal(pl.lit(rc.curve_register_abs_kwh_meter), delta.abs() * rc.curve_register_rel)
    diff = pl.col("actual_kwh_meter") - delta
    actual_day = pl.col("day_status").is_in(["actual", "rollover"])
    out.append(
        finding(
            profile.filter(actual_day & (pl.col("slots_valid") == 96) & (diff.abs() > tol)),
            "vee.sum.curve_register",
            cfg,
            value=diff,
            limit=tol,
            evidence={
                "curve_kwh_meter": pl.col("actual_kwh_meter"),
                "register_kwh_meter": delta,
                "difference_kwh_meter": diff,
                "tolerance_kwh_meter": tol,
            },
        )
    )
    # VEE 5, stopped register (停走): the register did not move while the curve shows
    # consumption (Oracle "zero consumption with interval usage"; threshold ours)
    curve_kwh = pl.col("actual_kwh_meter") * mult
    out.append(
        finding(
            profile.filter((pl.col("day_status") == "actual") & (delta == 0) & (curve_kwh >= rc.stopped_curve_min_kwh)),
            "vee.register.stopped",
            cfg,
            value=curve_kwh,
            limit=rc.stopped_curve_min_kwh,
            evidence={"register_kwh_meter": delta, "curve_kwh": curve_kwh, "slots_valid": pl.col("slots_valid")},
        )
    )
    return out


def register_findings(
    days: pl.LazyFrame,
    readings: pl.LazyFrame,
    history: pl.LazyFrame,
    events: pl.LazyFrame,
    cfg: VeeConfig,
    by: Sequence[str] = ("meter_id",),
) -> list[pl.LazyFrame]:
    """Checks on the meter-day's registers.

    ``days``: :func:`~.meter_daily.register_days` rows of the date (with archive
    attributes). ``readings``: clean register rows frozen on the date (with
    ``delivered_at``). ``history``: :func:`history_stats` of the date. ``events``: clean
    events of the date (only METER_CLEAR is used here, as evidence). ``by``: what names
    a meter-day (``meter_id, date`` when the frames hold several dates).
    """
    k = list(by)
    mult = pl.col("multiplier").cast(pl.Float64)
    rc, hc = cfg.register_checks, cfg.history
    out = []
    status = pl.col("day_status")
    day = days.join(history, on=k, how="left")

    # VEE 2, completeness of the daily frozen registers (采集成功率 counts them; Ontario
    # MDM/R "missing reads")
    out.append(
        finding(
            days.filter(~pl.col("register_read")),
            "vee.completeness.register_missing",
            cfg,
            evidence={
                "previous_reading": pl.col("reading_from").dt.to_string("%Y-%m-%d"),
                "next_reading": pl.col("reading_to").dt.to_string("%Y-%m-%d"),
                "day_quality": status,
            },
        )
    )
    # VEE 5, register going down (示度下降): more than a rollover allows (CONTRACT §1)
    clears = events.filter(pl.col("event_code") == "METER_CLEAR").group_by(k).agg(pl.len().alias("_clears"))
    down = days.filter(status == "register_down").join(clears, on=k, how="left")
    d = pl.col("total_kwh_to") - pl.col("total_kwh_from")
    out.append(
        finding(
            down,
            "vee.register.down",
            cfg,
            value=d,
            limit=-pl.col("register_max").cast(pl.Float64) * (1 - cfg.registers.rollover_fraction),
            evidence={
                "reading_from": pl.col("reading_from").dt.to_string("%Y-%m-%d"),
                "total_kwh_from": pl.col("total_kwh_from"),
                "reading_to": pl.col("reading_to").dt.to_string("%Y-%m-%d"),
                "total_kwh_to": pl.col("total_kwh_to"),
                "register_max": pl.col("register_max"),
                "meter_clear_events": pl.col("_clears").fill_null(0),
            },
        )
    )
    # rollover at register_max: corrected, reported for the record (CONTRACT §1)
    out.append(
        finding(
            days.filter(pl.col("rolled_over")),
            "vee.register.rollover",
            cfg,
            value=d,
            limit=0.0,
            evidence={
                "total_kwh_from": pl.col("total_kwh_from"),
                "total_kwh_to": pl.col("total_kwh_to"),
                "register_max": pl.col("register_max"),
                "corrected_kwh_meter": pl.col("delta_total_kwh_meter"),
            },
        )
    )
    # VEE 5, runaway register (飞走): more energy than the meter's capacity allows in 24 h
    kwh = pl.col("delta_total_kwh_meter") * mult
    limit = capacity_kw(cfg) * 24.0 * rc.runaway_factor
    actual = status.is_in(["actual", "rollover"])
    out.append(
        finding(
            days.filter(actual & (kwh > limit)),
            "vee.register.runaway",
            cfg,
            value=kwh,
            limit=limit,
            evidence={"kwh": kwh, "capacity_kw": capacity_kw(cfg), "hours": pl.lit(24.0 * rc.runaway_factor)},
        )
    )
    # VEE 8, high/low against the meter's own history (Oracle high/low usage check on the
    # average daily use; only actual days count, never estimates)
    enough = pl.col("history_actual_days") >= hc.min_days
    mean = pl.col("history_mean_kwh")
    hist_ev = {"kwh": kwh, "history_mean_kwh": mean, "history_actual_days": pl.col("history_actual_days")}
    out.append(
        finding(
            day.filter(actual & enough & (kwh > hc.high_factor * mean) & (kwh - mean >= hc.high_min_kwh)),
            "vee.usage.high",
            cfg,
            value=kwh,
            limit=hc.high_factor * mean,
            evidence=hist_ev,
        )
    )
    out.append(
        finding(
            day.filter(actual & enough & (mean >= hc.low_min_mean_kwh) & (kwh < hc.low_factor * mean)),
            "vee.usage.low",
            cfg,
            value=kwh,
            limit=hc.low_factor * mean,
            evidence=hist_ev,
        )
    )
    # VEE 4, reverse energy on a customer with no generation on record (a reversed or
    # tampered meter; docs/domain.md#validation-checks item 4)
    rev = pl.col("delta_reverse_kwh_meter") * mult
    out.append(
        finding(
            day.filter(
                actual
                & (pl.col("role") == "customer")
                & (rev >= hc.reverse_min_kwh)
                & enough
                & (pl.col("history_export_days") <= hc.reverse_max_history_days)
            ),
            "vee.register.reverse_no_generation",
            cfg,
            value=rev,
            limit=hc.reverse_min_kwh,
            evidence={
                "reverse_kwh": rev,
                "history_export_days": pl.col("history_export_days"),
                "history_actual_days": pl.col("history_actual_days"),
            },
        )
    )
    # VEE 9, Σ 尖峰平谷 against the total register of the same reading
    rd = readings.join(days.select(*k, "area_id", "feeder_id", "register_max"), on=k, how="inner")
    names = rd.collect_schema().names()
    tou = [c for c in ("sharp_kwh", "peak_kwh", "flat_kwh", "valley_kwh") if c in names]
    if len(tou) == 4 or "delivered_at" in names:
        rd = rd.collect().lazy()  # joined once: both checks below read it (a county day's readings)
    if len(tou) == 4:
        tsum = pl.sum_horizontal(tou)
        # modulo the register's range: the total and each TOU register roll over on their own
        raw = tsum - pl.col("total_kwh")
        rmax = pl.col("register_max").cast(pl.Float64)
        tdiff = raw - (raw / rmax).round() * rmax
        has_all = pl.all_horizontal([pl.col(c).is_not_null() for c in [*tou, "total_kwh"]])
        out.append(
            finding(
                rd.filter(has_all & (tdiff.abs() > cfg.registers.tou_tolerance_kwh_meter)),
                "vee.sum.tou_total",
                cfg,
                value=tdiff,
                limit=cfg.registers.tou_tolerance_kwh_meter,
                evidence={
                    "total_kwh_meter": pl.col("total_kwh"),
                    "tou_sum_kwh_meter": tsum,
                    **{f"{c}_meter": pl.col(c) for c in tou},
                },
            )
        )
    # VEE 1, structure: a register frozen at 00:00 of the date cannot be delivered before
    if "delivered_at" in names:
        frozen = pl.col("date").cast(pl.Datetime("us"))
        out.append(
            finding(
                rd.filter(pl.col("delivered_at") < frozen),
                "vee.structure.future_register",
                cfg,
                # hours; a product, not a quotient: see meter_daily.exact_sum
                value=(frozen - pl.col("delivered_at")).dt.total_seconds() * (1 / 3600.0),
                limit=0.0,
                evidence={"delivered_at": pl.col("delivered_at").dt.to_string("%Y-%m-%d %H:%M:%S")},
            )
        )
    return out


def archive_findings(
    days: pl.LazyFrame, before: pl.LazyFrame, cfg: VeeConfig, by: Sequence[str] = ("meter_id",)
) -> list[pl.LazyFrame]:
    """Multiplier checks (VEE 5, 倍率错误). ``days``: meter-days of the date with
    ``multiplier``; ``before``: ``meter_id, multiplier`` valid on the day before (with
    ``date``, the day it is before, when ``by`` holds it)."""
    allowed = cfg.multiplier.allowed()
    m = pl.col("multiplier").cast(pl.Float64)
    prev = before.select(*by, pl.col("multiplier").cast(pl.Float64).alias("_prev"))
    changed = days.join(prev, on=list(by), how="inner").filter(pl.col("_prev") != m)
    return [
        # a CT/PT change should come with a new meter record; a silent change of the
        # multiplier is the commonest archive error behind abnormal loss (docs/domain.md#causes-of-abnormal-loss)
        finding(
            changed,
            "vee.archive.multiplier_changed",
            cfg,
            value=m,
            limit=pl.col("_prev"),
            evidence={"multiplier": m, "previous_multiplier": pl.col("_prev")},
        ),
        # the multiplier should be a CT ratio x PT ratio (IEC 61869 / GB/T 20840 ratings)
        finding(
            days.filter(~m.round(6).is_in(allowed)),
            "vee.archive.multiplier_nonstandard",
            cfg,
            value=m,
            evidence={"multiplier": m},
        ),
    ]


def event_findings(
    days: pl.LazyFrame, events: pl.LazyFrame, cfg: VeeConfig, by: Sequence[str] = ("meter_id",)
) -> list[pl.LazyFrame]:
    """Clock and status (VEE 3): clock faults reported by the meter (时钟超差; Q/GDW 376.1
    terminal event for meter clock deviation). Data of such a day are suspect."""
    faults = (
        events.filter(pl.col("event_code") == "CLOCK_FAULT")
        .group_by(*by)
        .agg(pl.len().alias("_n"), pl.col("event_time").min().alias("_first"))
    )
    j = days.select("date", "meter_id", "area_id", "feeder_id").join(faults, on=list(by), how="inner")
    return [
        finding(
            j,
            "vee.clock.fault",
            cfg,
            value=pl.col("_n"),
            limit=0.0,
            evidence={"events": pl.col("_n"), "first_event_time": pl.col("_first").dt.to_string("%Y-%m-%d %H:%M:%S")},
        )
    ]


def estimate_findings(
    summary: pl.LazyFrame, edits: pl.LazyFrame, days: pl.LazyFrame, cfg: VeeConfig, by: Sequence[str] = ("meter_id",)
) -> list[pl.LazyFrame]:
    """Estimates are validated again (docs/domain.md#vee): slots left missing, days whose estimates
    could not be scaled (or with an extreme factor), estimates above capacity."""
    k = list(by)
    attrs = days.select(*k, "area_id", "feeder_id", "multiplier", "role", "customer_class")
    s = summary.join(attrs, on=k, how="inner")
    band = cfg.estimation.scale_band
    out = [
        finding(
            s.filter(pl.col("unestimated_slots") > 0),
            "vee.estimate.unestimated",
            cfg,
            value=pl.col("unestimated_slots"),
            limit=0.0,
            evidence={"unestimated_slots": pl.col("unestimated_slots"), "edited_slots": pl.col("edited_slots")},
        ),
        finding(
            s.filter(~pl.col("scalable") | (pl.col("scale") > band) | (pl.col("scale") < 1.0 / band)),
            "vee.estimate.scale",
            cfg,
            value=pl.col("scale"),
            limit=band,
            evidence={
                "scale": pl.col("scale"),
                "register_kwh_meter": pl.col("delta_kwh_meter"),
                "actual_kwh_meter": pl.col("actual_kwh_meter"),
                "estimated_kwh_meter": pl.col("estimated_kwh_meter"),
                "scalable": pl.col("scalable"),
            },
        ),
    ]
    mult = pl.col("multiplier").cast(pl.Float64)
    cap = capacity_kw(cfg) * cfg.interval.capacity_margin
    over = (
        edits.filter(pl.col("kwh_meter").is_not_null())
        .join(attrs, on=k, how="inner")
        .filter(pl.col("kwh_meter") * mult * 4.0 > cap)
        .group_by("date", "meter_id", "area_id", "feeder_id")
        .agg(
            pl.col("slot").min(),
            (pl.col("kwh_meter") * mult * 4.0).max().alias("_kw"),
            cap.first().alias("_cap"),
            pl.len().alias("_n"),
        )
    )
    out.append(
        finding(
            over,
            "vee.estimate.capacity",
            cfg,
            slot=pl.col("slot"),
            value=pl.col("_kw"),
            limit=pl.col("_cap"),
            evidence={"max_kw": pl.col("_kw"), "capacity_kw": pl.col("_cap"), "slots": pl.col("_n")},
        )
    )
    return out


def history_stats(history: pl.LazyFrame, day: dt.date, cfg: VeeConfig) -> pl.LazyFrame:
    """Per meter, from meter_daily rows of the ``cfg.history.days`` days before ``day``:
    ``history_actual_days``, ``history_mean_kwh`` (mean of actual days; estimated days
    never count) and ``history_export_days`` (actual days with reverse kWh >=
    reverse_min_kwh)."""
    hc = cfg.history
    start = day - dt.timedelta(days=hc.days)
    actual = pl.col("quality") == "actual"
    return (
        history.filter((pl.col("date") >= start) & (pl.col("date") < day) & actual)
        .group_by("meter_id")
        .agg(
            pl.len().cast(pl.Int32).alias("history_actual_days"),
            (exact_sum(pl.col("kwh")) / pl.len()).alias("history_mean_kwh"),
            (pl.col("reverse_kwh") >= hc.reverse_min_kwh).sum().cast(pl.Int32).alias("history_export_days"),
        )
    )


def history_stats_days(history: pl.LazyFrame, days: Sequence[dt.date], cfg: VeeConfig) -> pl.LazyFrame:
    """:func:`history_stats` of each of ``days`` at once, keyed ``meter_id, date``.

    ``history``: the meter_daily rows each date would read (the ``cfg.history.days``
    before it). Each figure is a difference of running totals per meter: integers (the
    kWh in 1e-9 units of :func:`~.meter_daily.exact_sum`), so every date gets exactly the
    floats :func:`history_stats` gives it alone.
    """
    hc = cfg.history
    if len(days) == 1:
        return history_stats(history, days[0], cfg).with_columns(pl.lit(days[0], pl.Date()).alias("date"))
    first = min(days) - dt.timedelta(days=hc.days)
    rows = (
        history.filter((pl.col("quality") == "actual") & (pl.col("date") >= first) & (pl.col("date") < max(days)))
        .select(
            "meter_id",
            "date",
            (pl.col("kwh") * 1e9).round().cast(pl.Int64).fill_null(0).alias("_k"),
            (pl.col("reverse_kwh") >= hc.reverse_min_kwh).fill_null(False).cast(pl.Int64).alias("_e"),
        )
        .sort("meter_id", "date")
        .with_columns(
            pl.col("_k").cum_sum().over("meter_id").alias("_ck"),
            pl.col("_e").cum_sum().over("meter_id").alias("_ce"),
            pl.col("meter_id").cum_count().cast(pl.Int64).over("meter_id").alias("_cn"),
        )
        .select("meter_id", "date", "_ck", "_ce", "_cn")
        .collect()
    )
    targets = (
        rows.select("meter_id")
        .unique()
        .join(pl.DataFrame({"date": sorted(days)}, schema={"date": pl.Date()}), how="cross")
        .with_columns(
            (pl.col("date") - pl.duration(days=1)).alias("_hi"),
            (pl.col("date") - pl.duration(days=hc.days + 1)).alias("_lo"),
        )
        .sort("_hi")
    )

    def upto(col: str, suffix: str) -> pl.LazyFrame:
        return (
            targets.lazy()
            .sort(col)
            .join_asof(
                rows.lazy().sort("date").rename({"date": "_at"}),
                left_on=col,
                right_on="_at",
                by="meter_id",
                strategy="backward",
                check_sortedness=False,
            )
            .select(
                "meter_id",
                "date",
                *(pl.col(c).fill_null(0).alias(c + suffix) for c in ("_ck", "_ce", "_cn")),
            )
        )

    n = pl.col("_cn_hi") - pl.col("_cn_lo")
    return (
        upto("_hi", "_hi")
        .join(upto("_lo", "_lo"), on=["meter_id", "date"], how="inner")
        .filter(n > 0)
        .select(
            "meter_id",
            "date",
            n.cast(pl.Int32).alias("history_actual_days"),
            (((pl.col("_ck_hi") - pl.col("_ck_lo")) * 1e-9) / n.cast(pl.UInt32)).alias("history_mean_kwh"),
            (pl.col("_ce_hi") - pl.col("_ce_lo")).cast(pl.Int32).alias("history_export_days"),
        )
    )


# --- one day -----------------------------------------------------------------------------


@dataclass
class VeeDay:
    """What :func:`validate_day` produced for one date."""

    findings: pl.DataFrame
    edits: pl.DataFrame
    #: ``meter_id, date, curve_slots_read, curve_kwh_meter`` of every meter in service
    curve_days: pl.DataFrame
    collection: pl.DataFrame
    counts: dict[str, int] = field(default_factory=dict)


def outage_slots(outages: pl.LazyFrame) -> pl.LazyFrame:
    """``meter_id, date, slot`` for every curve slot wholly inside an interruption."""
    return (
        outages.filter(pl.col("first_slot").is_not_null())
        .select("meter_id", "date", pl.int_ranges("first_slot", pl.col("last_slot") + 1).alias("slot"))
        .explode("slot")
    )


def validate_day(
    day: dt.date,
    *,
    days: pl.DataFrame,
    curves: pl.LazyFrame,
    readings: pl.LazyFrame,
    like_curves: pl.LazyFrame,
    events: pl.LazyFrame,
    history: pl.LazyFrame,
    before: pl.LazyFrame,
    cfg: VeeConfig,
    outages: pl.LazyFrame | None = None,
) -> VeeDay:
    """VEE of one date.

    ``days``: :func:`~.meter_daily.register_days` for the meters in service on ``day``
    (with archive attributes). ``curves``: clean curves of the date (``meter_id,
    data_date, p1..p96, delivered_at``). ``readings``: clean registers frozen on the date.
    ``like_curves``: clean curves of the like dates (:func:`.estimation.like_dates`).
    ``events``: clean events of the date. ``history``: meter_daily rows of the days
    before (``meter_id, date, kwh, reverse_kwh, quality``). ``before``: ``meter_id,
    multiplier`` of the archive valid on the day before. ``outages``: the date's
    outage_meter_days (``meter_id, date, first_slot, last_slot, off_at_midnight``): the
    slots inside an interruption are zero supply, not gaps to estimate, and a register not
    frozen because the meter had no power is counted apart in collection_daily.
    """
    return _validate(
        day,
        days=days,
        curves=curves,
        readings=readings,
        like_curves=like_curves,
        events=events,
        history=history,
        before=before,
        cfg=cfg,
        outages=outages,
        like_map=None,
    )


def validate_days(
    dates: Sequence[dt.date],
    *,
    days: pl.DataFrame,
    curves: pl.LazyFrame,
    readings: pl.LazyFrame,
    like_curves: pl.LazyFrame,
    like_map: pl.DataFrame,
    events: pl.LazyFrame,
    history: pl.LazyFrame,
    before: pl.LazyFrame,
    cfg: VeeConfig,
    outages: pl.LazyFrame | None = None,
) -> VeeDay:
    """VEE of several dates in one pass: for each date, the rows :func:`validate_day`
    gives it alone (every check is a function of the meter-day and its own date's inputs).

    As :func:`validate_day`, for the dates of ``dates`` (a partition each: ``curves``,
    ``readings``, ``events`` with its ``event_date``, ``outages``), with: ``like_curves``
    the clean curves of every date's like dates and ``like_map`` (``date, _like_date``)
    which like dates each date reads; ``history`` the meter_daily rows every date's window
    holds (:func:`history_stats_days`); ``before`` ``meter_id, date, multiplier``: the
    multiplier valid on the day before ``date``.
    """
    return _validate(
        list(dates),
        days=days,
        curves=curves,
        readings=readings,
        like_curves=like_curves,
        events=events,
        history=history,
        before=before,
        cfg=cfg,
        outages=outages,
        like_map=like_map,
    )


def _validate(
    day: dt.date | list[dt.date],
    *,
    days: pl.DataFrame,
    curves: pl.LazyFrame,
    readings: pl.LazyFrame,
    like_curves: pl.LazyFrame,
    events: pl.LazyFrame,
    history: pl.LazyFrame,
    before: pl.LazyFrame,
    cfg: VeeConfig,
    outages: pl.LazyFrame | None,
    like_map: pl.DataFrame | None,
) -> VeeDay:
    """:func:`validate_day` (``day`` a date: frames joined on the meter) or
    :func:`validate_days` (a list: joined on the meter and the date)."""
    one = isinstance(day, dt.date)
    dates = [day] if isinstance(day, dt.date) else day
    k = _keys(day)
    days = days.filter(_on_dates(day))
    svc = days.lazy()
    meter_cols = [
        "meter_id",
        "area_id",
        "feeder_id",
        "role",
        "customer_class",
        "multiplier",
        "day_status",
        "delta_total_kwh_meter",
    ]
    if not one:
        meter_cols.insert(1, "date")
    # the day's 96-slot rows are never held whole (~0.4 GB on a county day): the screen
    # reads them a range of rows at a time and keeps the few rows it flags
    screen, few, profile = _screen_ranges(curves, day, cfg, days.select(meter_cols))
    readings = readings.rename({"freeze_date": "date"}, strict=False).filter(_on_dates(day)).collect().lazy()
    findings: list[pl.LazyFrame] = []

    served = set(days["date"].unique().to_list()) if not one else ({day} if days.height else set())
    for d in dates:
        if d in served:
            continue
        if one:
            n_curves, n_reads = screen.height, readings.select(pl.len()).collect().item()
        else:
            n_curves = screen.filter(pl.col("date") == d).height
            n_reads = readings.filter(pl.col("date") == d).select(pl.len()).collect().item()
        if n_curves or n_reads:
            findings.append(
                finding(
                    pl.LazyFrame({"date": [d]}),
                    "vee.structure.no_archive",
                    cfg,
                    meter=False,
                    value=pl.lit(n_curves + n_reads),
                    evidence={"curve_rows": pl.lit(n_curves), "register_rows": pl.lit(n_reads)},
                )
            )

    # --- curves: a cheap screen of every row (``profile``: joined with the meter-day), details
    # of the flagged rows, the checks --------------------------------------------------------
    flagged = profile.filter(needs_details(cfg)).select(*k, needs_runs(cfg).alias("_runs"))
    to_detail = few.join(flagged.filter("_runs").select(k), on=k, how="semi")
    details = interval_details(to_detail.lazy(), cfg, rows=to_detail.height, by=k).collect()
    # rows flagged for a spike or the capacity only (most of a county day's): their peaks
    to_peak = few.join(flagged.filter(~pl.col("_runs")).select(k), on=k, how="semi")
    if to_peak.height:
        peaks = interval_peaks_frame(to_peak, by=k)
        details = pl.concat([details, peaks.select(pl.col(c).cast(t) for c, t in details.schema.items())])
    profile = profile.join(details, on=k, how="left")
    findings += interval_findings(profile.lazy(), cfg)
    # VEE 2: no curve row at all for a meter in service. When no meter's curve arrived the
    # day has not been collected (or a file was lost): one day-level finding, and nothing
    # to estimate from until it arrives (else a county-day of like-day estimates)
    with_curves = set(screen["date"].unique().to_list()) if screen.height else set()
    absent = [d for d in dates if d in served and d not in with_curves]
    for d in absent:
        n = days.height if one else days.filter(pl.col("date") == d).height
        findings.append(
            finding(
                pl.LazyFrame({"date": [d]}),
                "vee.completeness.curves_absent",
                cfg,
                meter=False,
                value=pl.lit(n),
                evidence={"meters_in_service": pl.lit(n)},
            )
        )
    if one and absent:
        no_curve = svc.clear()
    else:
        collected = svc if not absent else svc.filter(~pl.col("date").is_in(absent))
        no_curve = collected.join(screen.lazy().select(k), on=k, how="anti")
        findings.append(
            finding(
                no_curve, "vee.completeness.curve_missing", cfg, evidence={"register_quality": pl.col("day_status")}
            )
        )

    # --- estimation: rows with empty/negative slots, and absent rows --------------------
    blank = no_curve.select("meter_id", "date", *(pl.lit(None, pl.Float64).alias(s) for s in SLOTS))
    damaged = few.lazy().filter(estimation.needs_edit()).join(svc.select(k), on=k, how="semi")
    to_fix = pl.concat([damaged.select("meter_id", "date", *SLOTS), blank], how="vertical_relaxed")
    deltas = svc.filter(pl.col("day_status").is_in(["actual", "rollover"])).select(
        "meter_id", "date", pl.col("delta_total_kwh_meter").alias("delta_kwh_meter")
    )
    edits = estimation.estimate(
        to_fix,
        deltas,
        like_curves.rename({"data_date": "date"}, strict=False),
        max_interpolation_slots=cfg.estimation.max_interpolation_slots,
        residual_tolerance_kwh_meter=cfg.estimation.residual_tolerance_kwh_meter,
        outage_slots=None if outages is None else outage_slots(outages),
        like_map=like_map,
    ).collect()
    summary = estimation.edit_summary(edits.lazy()).collect()
    findings += estimate_findings(summary.lazy(), edits.lazy(), svc, cfg, by=k)

    # --- the day's curve figures for meter_daily -------------------------------------------
    curve_days = (
        days.select("meter_id", "date")
        .join(profile.select(*k, "slots_read", "slots_valid", "actual_kwh_meter"), on=k, how="left")
        .join(summary.select(*k, "validated_kwh_meter", "edited_slots"), on=k, how="left")
        .select(
            "meter_id",
            "date",
            pl.col("slots_read").fill_null(0).alias("curve_slots_read"),
            pl.when(pl.col("edited_slots").is_not_null())
            .then(pl.col("validated_kwh_meter"))
            .when(pl.col("slots_valid") == 96)
            .then(pl.col("actual_kwh_meter"))
            .alias("curve_kwh_meter"),
        )
    )

    # --- registers, archive, events ------------------------------------------------------
    # each collected once: several checks read them
    if isinstance(day, dt.date):
        hist = history_stats(history, day, cfg).collect().lazy()
        events = events.filter(pl.col("event_time").dt.date() == day).collect().lazy()
    else:
        hist = history_stats_days(history, day, cfg).collect().lazy()
        events = (
            events.filter(pl.col("event_time").dt.date() == pl.col("event_date"))
            .with_columns(pl.col("event_date").alias("date"))
            .collect()
            .lazy()
        )
    findings += register_findings(svc, readings, hist, events, cfg, by=k)
    findings += archive_findings(svc, before, cfg, by=k)
    findings += event_findings(svc, events, cfg, by=k)

    # --- collection success ---------------------------------------------------------------
    collection = collection_daily(
        svc, curve_days.lazy(), target_rate=cfg.collection.target_rate, outages=outages
    ).collect()
    below = collection.lazy().filter(pl.col("below_target"))
    findings.append(
        finding(
            below,
            "vee.completeness.collection_below_target",
            cfg,
            meter=False,
            value=pl.col("success_rate"),
            limit=pl.col("target_rate"),
            evidence={
                "scope": pl.col("scope"),
                "meters_total": pl.col("meters_total"),
                "meters_read": pl.col("meters_read"),
                "success_rate": pl.col("success_rate"),
            },
        )
    )

    found = pl.concat(pl.collect_all(findings), how="vertical_relaxed") if findings else empty_findings()
    found = VEE_FINDINGS.conform(found).collect()
    counts = {
        "meters": days.height,
        "curves": screen.height,
        "edited_slots": edits.height,
        "estimated_slots": int((edits["quality"] == "estimated").sum()) if edits.height else 0,
        "findings": found.height,
    }
    return VeeDay(findings=found, edits=edits, curve_days=curve_days, collection=collection, counts=counts)
