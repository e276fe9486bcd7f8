"""Area energy balance on the 96-point curves (台区电量平衡): theft, multiplier and 户变 errors.

Pure: polars and numpy in, polars out; no file I/O. The stage feeds it the window's
clean curves (meter side, raw: a null slot was not collected, so estimated slots never
enter the fit) and the window's ``meter_daily`` rows (area, role, multiplier, daily
registers).

The model
---------
For an area and a window, every slot t (a day's 15-minute interval) gives one row::

    loss_t = master_t - Σ_i r_i,t = Σ_i β_i r_i,t + c + k · master_t² + π · e_t + ε_t

``r_i,t`` is customer i's recorded forward kWh (primary side: curve x multiplier),
``c + k·master²`` the technical loss (no-load iron loss plus copper loss growing with
the square of the load), ``e_t`` the area's PV export proxy (the day's reverse kWh of
its customers spread over the daylight slots: the master sees the export, the curves
do not). A customer whose meter records a share a of its use leaves
``β = 1/a − 1`` (60 % recorded: β = 0.667), a multiplier booked at half the true one
β = 1, at twice the true one β = −0.5, and a customer booked here but fed from another
area β = −1 (its kWh are subtracted but the master never saw them). In that other area
the same customer's series explains loss with a coefficient near +1.

A technical loss proportional to the load is indistinguishable from a common shift τ
of every β (Σ_i τ r_i,t = τ · load). So each customer is judged against the area's
median coefficient τ: the recorded share is ``(1 + τ) / (1 + β_i)``, the unrecorded
kWh ``((1 + β_i)/(1 + τ) − 1) ·`` its recorded kWh, the estimated true multiplier
``multiplier · (1 + β_i)/(1 + τ)``.

A day on which some member's curve is missing contributes its slots where every member
was collected; a day with no such slot falls back to one row of daily registers (the
same equation summed over the day, weighted 1/96 since its noise is the sum of 96
slots').

The estimator, chosen by measurement
------------------------------------
Non-negative least squares is ruled out by the model itself: a too-large multiplier
and a wrong area need negative coefficients. Signed weighted least squares (a ridge of
1e-6 of each standardised column's norm, only to keep an idle customer's column from
making the system singular) and Huber IRLS (c = 1.345, 6 iterations, scale from the
MAD of the residuals) were compared on a generated county (``meterlake generate
--meters 20000 --days 30 --seed 7``; every third area, 48 areas, 6,748 customers, 25
partial thieves, one 14-day window ending 2026-01-28; shared 2-core machine)::

    estimator   partial-theft AUC   partial in top 5   multipliers found   mappings found   time
    ols         0.597               5 / 25              9 / 11              3 / 10           62.7 s
    huber       0.676               8 / 25              9 / 11              6 / 10           116.4 s

Huber wins on these three kinds (the slot residuals carry spikes: a master behind a
large CT records in steps of several kWh, outages, a slot filled from a register), at
twice the cost. But it reads the tampered days of a false-data injection as exactly
such spikes and down-weights the evidence: in the hand-made tests (one customer of 12
applying an attack on 10 of 30 days) Huber loses the zero-window (h2) and flat-day (h5)
attackers, least squares ranks all six first. Least squares is therefore the default;
``estimator = "huber"`` remains for areas whose thefts are steady shares.

The loop is over areas, never over meters or rows: each area's design is one dense
array built by fancy indexing, solved by one Cholesky factorisation.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl

from meterlake.schemas.loss_diagnosis import BALANCE_RULES
from meterlake.transforms.loss import INPUT_COLUMNS as LOSS_INPUT_COLUMNS
from meterlake.transforms.metering import standard_multipliers

SLOT_COLUMNS: tuple[str, ...] = tuple(f"p{i}" for i in range(1, 97))
SLOTS = 96

#: the meter_daily columns the balance reads: line loss's inputs, less the quality flag and PV rating
MEMBER_COLUMNS: dict[str, pl.DataType] = {
    k: v for k, v in LOSS_INPUT_COLUMNS.items() if k not in ("quality", "pv_capacity_kw")
}

#: rule names the balance's findings carry in loss_diagnosis
RULE_THEFT = BALANCE_RULES["theft_candidate"]
RULE_MULTIPLIER = BALANCE_RULES["multiplier_suspect"]
RULE_MAPPING = BALANCE_RULES["mapping_suspect"]


@dataclass(frozen=True)
class BalanceRules:
    """Settings of the interval balance (shipped defaults in config/loss.toml [balance])."""

    window_days: int = 14
    #: fewest days with a balance row an area's fit may rest on
    min_days: int = 7
    estimator: Literal["ols", "huber"] = "ols"
    huber_c: float = 1.345
    huber_iterations: int = 6
    ridge: float = 1e-6
    #: a customer-day below this share of the master's energy gets its uncollected slots
    #: filled from its daily register (by its own mean shape); larger ones are dropped
    fill_max_share: float = 0.05
    #: an area is fitted only with at least this many rows per coefficient (an area of
    #: 140 customers needs 5 days of curves at 3 rows per coefficient)
    min_rows_per_column: float = 3.0
    #: a customer recording less than this (kWh over the window) gets no coefficient
    min_recorded_kwh: float = 1.0
    #: a coefficient must stand this many standard errors from the area's τ
    min_t: float = 4.0
    theft_min_share: float = 0.1
    #: an added variable (night, deficit, reshape) counts from this coefficient up
    #: (deficit and reshape leave about 1 for a thief, night 1/a - 1)
    added_min_coefficient: float = 0.25
    #: forward selection of the added variables: at most this many per area, each with
    #: a plain t of at least select_t (see _estimate)
    max_selected: int = 3
    select_t: float = 8.0
    #: the share at which the theft score reaches 1
    theft_full_share: float = 0.5
    multiplier_min_ratio: float = 1.25
    #: the estimated true multiplier must be within this (log distance) of a standard one
    multiplier_tolerance: float = 0.12
    #: β within this of −1 makes a mapping candidate; γ/(1+τ) within this of 1 the area that fits
    mapping_tolerance: float = 0.25
    #: daylight hours of the PV export proxy (local time, slot start)
    pv_hours: tuple[float, float] = (6.0, 18.0)
    #: bumps over the daylight hours the export may take its shape from
    pv_bases: int = 12
    #: standard multipliers (CT ratio x PT ratio): the rating table
    standard_multipliers: tuple[float, ...] = field(default_factory=standard_multipliers)

    def __post_init__(self) -> None:
        if self.window_days < 1:
            raise ValueError(f"balance window_days: expected at least 1, found {self.window_days}")
        if self.estimator not in ("ols", "huber"):
            raise ValueError(f"balance estimator: expected 'ols' or 'huber', found {self.estimator!r}")
        if not 0 < self.theft_min_share < self.theft_full_share <= 1:
            raise ValueError(
                "balance theft shares: expected 0 < theft_min_share < theft_full_share <= 1, "
                f"found {self.theft_min_share}, {self.theft_full_share}"
            )


class BalanceInputError(ValueError):
    """The curves or meter_daily rows handed to the balance lack a column or are mistyped."""


def _require(frame: pl.LazyFrame, columns: dict[str, pl.DataType], what: str) -> pl.LazyFrame:
    schema = frame.collect_schema()
    missing = [c for c in columns if c not in schema]
    if missing:
        raise BalanceInputError(f"{what}: expected columns {', '.join(missing)}; found {', '.join(schema.names())}")
    return frame.select(pl.col(c).cast(t) for c, t in columns.items())


# -- the window as arrays -----------------------------------------------------------------


def member_days(
    curves: pl.DataFrame | pl.LazyFrame,
    members: pl.DataFrame | pl.LazyFrame,
    start: dt.date,
    end: dt.date,
) -> tuple[pl.DataFrame, np.ndarray]:
    """One row per area member and day of the window, and its primary-side curve.

    ``curves``: meter_id, data_date, p1..p96 (meter side; null = not collected).
    ``members``: meter_daily rows (:data:`MEMBER_COLUMNS`). The frame is sorted by
    area, role (master first), meter, date; ``_d`` is the day index in the window, ``_j``
    the customer's column in its area (-1 for a master). The array (rows x 96, NaN =
    not collected or no curve) is the curve times the multiplier, row for row. Only the
    narrow frame is joined and sorted; the wide curves are read into numpy once and
    gathered.
    """
    c = (
        _require(
            curves.lazy(),
            {"meter_id": pl.String(), "data_date": pl.Date(), **dict.fromkeys(SLOT_COLUMNS, pl.Float64())},
            "curves",
        )
        .filter(pl.col("data_date").is_between(start, end))
        .unique(["meter_id", "data_date"], keep="first", maintain_order=True)
        .collect()
    )
    master = pl.col("role") == "area_master"
    frame = (
        _require(members.lazy(), MEMBER_COLUMNS, "meter_daily")
        .filter(
            pl.col("date").is_between(start, end)
            & pl.col("area_id").is_not_null()
            & pl.col("role").is_in(["area_master", "customer"])
        )
        .unique(["meter_id", "date"], keep="first", maintain_order=True)
        .join(
            c.lazy().select("meter_id", pl.col("data_date").alias("date")).with_row_index("_c"),
            on=["meter_id", "date"],
            how="left",
        )
        .with_columns(_d=(pl.col("date") - pl.lit(start)).dt.total_days().cast(pl.Int32), _master=master)
        .sort("area_id", "_master", "meter_id", "date", descending=[False, True, False, False])
        .with_columns(
            _j=(pl.when(~master).then(pl.col("meter_id")).rank("dense").over("area_id") - 1)
            .fill_null(-1)
            .cast(pl.Int32)
        )
        .collect()
    )
    wide = c.select(SLOT_COLUMNS).to_numpy().astype(np.float64) if c.height else np.empty((0, SLOTS))
    wide = np.vstack([wide, np.full((1, SLOTS), np.nan)])  # the row of a member-day without a curve
    idx = frame["_c"].fill_null(len(wide) - 1).to_numpy()
    values = wide[idx] * frame["multiplier"].fill_null(1.0).to_numpy()[:, None]
    return frame, values


@dataclass
class AreaFit:
    """One area's fit: the customers' coefficients and what the mapping test needs."""

    area_id: str
    feeder_id: str | None
    meters: list[str]
    customers: list[str | None]
    multipliers: np.ndarray
    beta: np.ndarray  # nan where the customer had no usable column
    se: np.ndarray
    tau: float
    recorded_kwh: np.ndarray  # over the window's days, daily registers
    days: int
    slot_rows: int
    day_rows: int
    rmse: float
    y: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    w: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    cols: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0, np.int64))
    rows: tuple[np.ndarray, np.ndarray, np.ndarray] = field(repr=False, default=(np.empty(0), np.empty(0), np.empty(0)))
    #: per added variable (night, deficit): (coefficient, t, the variable's kWh over the window), each (n,)
    added: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(repr=False, default_factory=dict)
    # for the mapping test: the rows (d*97+s, s=96 a daily row), design, weights, residual, G^-1
    keys: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0, np.int64))
    design: np.ndarray = field(repr=False, default_factory=lambda: np.empty((0, 0)))
    weights: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    resid: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    ginv: np.ndarray = field(repr=False, default_factory=lambda: np.empty((0, 0)))
    series: np.ndarray = field(repr=False, default_factory=lambda: np.empty((0, 0, 0)))  # (days, n, 97)


def _pv_shape(hours: tuple[float, float], bases: int) -> np.ndarray:
    """(bases, 96): overlapping bumps tiling the daylight hours, together summing to 1 per slot used.

    Export is generation minus the exporters' own load, clipped at 0, so its daily
    shape is narrower than the sun's and changes with the weather: a few free bumps
    let the fit find it instead of assuming it.
    """
    h = (np.arange(SLOTS) + 0.5) / 4.0
    lo, hi = hours
    centres = np.linspace(lo, hi, bases + 2)[1:-1]
    width = (hi - lo) / (bases + 1)
    s = np.exp(-0.5 * ((h[None, :] - centres[:, None]) / (0.6 * width)) ** 2)
    s = np.where((h > lo) & (h < hi), s, 0.0)
    return s / s.sum(1, keepdims=True)


def _estimate(
    design: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    series: np.ndarray,
    cols: np.ndarray,
    dd: np.ndarray,
    ss: np.ndarray,
    dday: np.ndarray,
    n: int,
    rules: BalanceRules,
) -> tuple[
    np.ndarray,
    np.ndarray,
    float,
    dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    np.ndarray,
    np.ndarray,
    np.ndarray,
    float,
    np.ndarray,
]:
    """Solve an area's design: coefficients, standard errors, τ, the added variables and the fit's internals.

    Forward selection of the added variables: the strongest (customer, variable) whose t
    stands out (``select_t`` and 4 x the median |t| of that variable in the area) joins
    the design and the fit is solved again, up to ``max_selected`` times. A thief's
    misfit otherwise leaks into the residual every other customer is tested against.
    """
    feats = _features(series, cols, dd, ss, dday, n)
    names = list(feats)
    chosen: list[tuple[str, int]] = []
    x = design
    while True:
        b, wt, ginv = _solve(x, y, w, rules)
        resid = y - x @ b
        sigma2 = float((wt * resid * resid).sum() / max(len(y) - x.shape[1], 1))
        tested = {name: _added(feats[name], x, wt, resid, ginv, sigma2) for name in names}
        if len(chosen) >= rules.max_selected:
            break
        best: tuple[float, str, int] | None = None
        for name, (g, t) in tested.items():  # three variables
            t = np.where(g >= rules.added_min_coefficient, t, -np.inf)
            for nm, k in chosen:
                if nm == name:
                    t[k] = -np.inf
            k = int(np.nanargmax(t)) if np.isfinite(t).any() else -1
            if k < 0:
                continue
            bar = max(rules.select_t, 4.0 * float(np.nanmedian(np.abs(tested[name][1]))))
            if t[k] >= bar and (best is None or t[k] > best[0]):
                best = (float(t[k]), name, k)
        if best is None:
            break
        chosen.append((best[1], best[2]))
        x = np.column_stack([x, feats[best[1]][:, best[2]]])
    se_all = np.sqrt(np.maximum(np.diag(ginv) * sigma2, 0.0))
    beta = np.full(n, np.nan)
    se = np.full(n, np.nan)
    beta[cols] = b[: len(cols)]
    se[cols] = se_all[: len(cols)]
    tau = float(np.median(beta[cols])) if len(cols) else 0.0
    extras = {}
    for name in names:
        g, t = tested[name]
        for i, (nm, k) in enumerate(chosen):
            if nm == name:
                col = design.shape[1] + i
                g[k], t[k] = b[col], b[col] / max(se_all[col], 1e-300)
        coef_n, t_n, kwh = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
        coef_n[cols], t_n[cols], kwh[cols] = g, t, feats[name].sum(0)
        extras[name] = (coef_n, t_n, kwh)
    return beta, se, tau, extras, wt, resid, ginv, sigma2, x


def refit_with_incoming(fits: Sequence[AreaFit], maps: pl.DataFrame, rules: BalanceRules) -> None:
    """Refit every area that fits a customer booked elsewhere, with that customer's series added.

    A customer fed from area B but booked in A is load B's master sees and B's fit
    lacks; B's own customers of the same shape then absorb it and read as reshaped or
    short days. Once the mapping test has found where it fits, B is fitted again with
    it (in place), so B's customers are judged on the balance that holds.
    """
    good = maps.filter((pl.col("gamma") - 1).abs() <= rules.mapping_tolerance)
    if good.height == 0:
        return
    by_area = {f.area_id: f for f in fits}
    by_meter = {m: (f, j) for f in fits for j, m in enumerate(f.meters)}
    for other_area, meters in good.group_by("other_area_id").agg("meter_id").iter_rows():  # areas
        fit = by_area[other_area]
        dd, ss, dday = fit.rows
        zs = []
        for m in meters:
            own, j = by_meter[m]
            z = np.nan_to_num(own.series[:, j, :].reshape(-1)[fit.keys])
            zs.append(z)
        design = np.column_stack([fit.design, *zs])
        n = len(fit.meters)
        beta, se, tau, extras, wt, resid, ginv, sigma2, design = _estimate(
            design, fit.y, fit.w, fit.series, fit.cols, dd, ss, dday, n, rules
        )
        fit.beta, fit.se, fit.tau, fit.added, fit.design = beta, se, tau, extras, design
        fit.weights, fit.resid, fit.ginv, fit.rmse = wt, resid, ginv, math.sqrt(sigma2)


def _fill_from_registers(series: np.ndarray, master_day: np.ndarray, max_share: float) -> None:
    """Fill a customer's uncollected slots from its daily register, in place.

    With 150 customers an area rarely has a day on which every curve arrived; dropping
    every slot one customer lacks would drop most days. Instead a customer-day's
    uncollected slots share the energy its register measured beyond the collected
    slots (daily kWh - Σ collected), in proportion to the customer's own mean shape
    over its collected days of the window. The error of that guess stays with that
    customer's few slots; a day whose register is missing too stays missing. Only a
    customer-day holding less than ``max_share`` of the master's energy is filled: the
    guess of a large customer's curve would swamp the others' signal (that day's slots
    are left out, or the day falls back to daily registers).
    """
    curve = series[:, :, :SLOTS]
    small = series[:, :, SLOTS] < max_share * np.nan_to_num(master_day, nan=0.0)[:, None]
    gap = np.isnan(curve) & small[:, :, None]
    if not gap.any():
        return
    full = ~gap.any(2)
    with np.errstate(invalid="ignore", divide="ignore"):
        shape = np.where(full[:, :, None], curve, 0.0).sum(0)
        shape = shape / shape.sum(1, keepdims=True)
    shape = np.where(np.isfinite(shape), shape, 1.0 / SLOTS)  # no whole day: flat
    shape = np.maximum(shape, 1e-9)
    rest = series[:, :, SLOTS] - np.where(gap, 0.0, curve).sum(2)
    weight = np.where(gap, shape[None, :, :], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = weight / weight.sum(2, keepdims=True)
    filled = share * np.maximum(rest, 0.0)[:, :, None]
    curve[gap] = filled[gap]  # NaN where the register is missing too


#: the added variables tested per customer (see :func:`_added_variables`)
ADDED = ("night", "deficit")
#: slots of the night window (22:00-06:00) of the night-only added variable
NIGHT_SLOTS = (np.arange(SLOTS) < 24) | (np.arange(SLOTS) >= 88)


def _features(
    series: np.ndarray, cols: np.ndarray, dd: np.ndarray, ss: np.ndarray, dday: np.ndarray, n: int
) -> dict[str, np.ndarray]:
    """Theft that is not a steady share, tested one customer at a time against the fit's residual.

    One coefficient per customer reads a meter bypassed only at night, or only on some
    days, the wrong way round: the loss is there exactly when the recorded use is low,
    so the coefficient comes out negative. Two more variables per customer find them,
    each tested by the added-variable (Frisch-Waugh) regression of the window fit's
    residual on the variable cleared of the whole design (the customer's own recorded
    series included), so the coefficient is the one a joint fit would give:

    * ``night``: the recorded use in the night slots (22:00-06:00); a night-only bypass
      recording a share a there leaves 1/a - 1;
    * ``deficit``: how far the day's recorded total falls below the customer's usual
      high day (80th percentile of its window), spread by its usual shape; a meter
      bypassed on some days leaves about 1 (the missing energy reappears as loss);

    A day recorded flat or in reverse order (false-data injection h5, h6: the total is
    right, the timing is not) needs no added variable: it leaves the customer's own
    coefficient significantly *negative* (the area loses energy exactly in the slots
    where the meter records less), which :func:`findings` reads as a lead.
    """
    rec_day = series[:, :, SLOTS]
    with np.errstate(invalid="ignore", divide="ignore"):
        shape = np.nansum(series[:, :, :SLOTS], 0)
        shape = shape / shape.sum(1, keepdims=True)
    shape = np.where(np.isfinite(shape), shape, 1.0 / SLOTS)
    high = np.nanpercentile(np.where(rec_day > 0, rec_day, np.nan), 80, axis=0)
    high = np.where(np.isfinite(high), high, 0.0)
    short = np.nan_to_num(np.maximum(high[None, :] - rec_day, 0.0))  # (days, n)
    night_day = np.nansum(np.where(NIGHT_SLOTS[None, None, :], series[:, :, :SLOTS], 0.0), 2)
    features = {
        "night": np.concatenate([series[dd, :, ss] * NIGHT_SLOTS[ss][:, None], night_day[dday]]),
        "deficit": np.concatenate([shape[:, ss].T * short[dd], short[dday]]),
    }
    return {name: np.nan_to_num(f[:, cols]) for name, f in features.items()}


def _added(
    f: np.ndarray, design: np.ndarray, wt: np.ndarray, resid: np.ndarray, ginv: np.ndarray, sigma2: float
) -> tuple[np.ndarray, np.ndarray]:
    """Added-variable coefficient and t of every column of ``f`` against a solved design."""
    ft = f - design @ (ginv @ (design.T @ (wt[:, None] * f)))
    den = (wt[:, None] * ft * ft).sum(0)
    ok = den > 1e-12 * np.maximum((wt[:, None] * f * f).sum(0), 1e-300)
    g = np.where(ok, (wt[:, None] * ft * resid[:, None]).sum(0) / np.where(ok, den, 1.0), np.nan)
    return g, g / np.sqrt(sigma2 / np.where(ok, den, np.inf))


def _solve(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, rules: BalanceRules
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted (ridge) least squares, or Huber IRLS: coefficients, final weights, G^-1."""
    scale = np.sqrt((x * x * w[:, None]).sum(0))
    scale[scale == 0] = 1.0
    xs = x / scale
    ridge = rules.ridge * np.eye(x.shape[1])
    wt = w.copy()
    iterations = rules.huber_iterations if rules.estimator == "huber" else 1
    for _ in range(iterations):
        g = xs.T @ (xs * wt[:, None]) + ridge
        ginv = np.linalg.inv(g)
        b = ginv @ (xs.T @ (wt * y))
        if rules.estimator != "huber":
            break
        r = (y - xs @ b) * np.sqrt(w)
        s = 1.4826 * np.median(np.abs(r)) or 1e-12
        u = np.abs(r) / (rules.huber_c * s)
        wt = w * np.where(u <= 1.0, 1.0, 1.0 / np.maximum(u, 1e-12))
    return b / scale, wt, ginv / np.outer(scale, scale)


def fit_areas(frame: pl.DataFrame, values: np.ndarray, days: int, rules: BalanceRules) -> list[AreaFit]:
    """Fit every area of ``frame`` and ``values`` (from :func:`member_days`); loops over areas only."""
    if frame.height == 0:
        return []
    area = frame["area_id"].to_numpy()
    d_idx = frame["_d"].to_numpy()
    j_idx = frame["_j"].to_numpy()
    kwh = frame["kwh"].to_numpy().astype(np.float64)
    rev = frame["reverse_kwh"].fill_null(0.0).to_numpy().astype(np.float64)
    meter = frame["meter_id"].to_numpy()
    cust = frame["customer_id"].to_list()
    mult = frame["multiplier"].fill_null(1.0).to_numpy()
    feeder = frame["feeder_id"].to_list()
    bounds = np.flatnonzero(np.r_[True, area[1:] != area[:-1], True])
    pv = _pv_shape(rules.pv_hours, rules.pv_bases)
    out = []
    for lo, hi in itertools.pairwise(bounds):  # loop over areas
        fit = _fit_area(
            values[lo:hi], d_idx[lo:hi], j_idx[lo:hi], kwh[lo:hi], rev[lo:hi], meter[lo:hi], cust[lo:hi],
            mult[lo:hi], str(area[lo]), feeder[hi - 1], days, pv, rules,
        )  # fmt: skip
        if fit is not None:
            out.append(fit)
    return out


def _fit_area(
    values: np.ndarray,
    d_idx: np.ndarray,
    j_idx: np.ndarray,
    kwh: np.ndarray,
    rev: np.ndarray,
    meter: np.ndarray,
    cust: list[str | None],
    mult: np.ndarray,
    area_id: str,
    feeder_id: str | None,
    days: int,
    pv: np.ndarray,
    rules: BalanceRules,
) -> AreaFit | None:
    is_c = j_idx >= 0
    n = int(j_idx.max()) + 1 if is_c.any() else 0
    if n == 0 or (~is_c).sum() == 0:
        return None
    # too few rows for the area's coefficients even if every slot were usable: skip
    # before building anything (a county's first days of history)
    if len(np.unique(d_idx[~is_c])) * SLOTS < rules.min_rows_per_column * (n + 2):
        return None
    # (day, member, slot + daily) with nan = member without a value, 0 = not a member that day
    series = np.zeros((days, n, SLOTS + 1))
    series[d_idx[is_c], j_idx[is_c], :SLOTS] = values[is_c]
    series[d_idx[is_c], j_idx[is_c], SLOTS] = kwh[is_c]
    master = np.zeros((days, SLOTS + 1))
    msk = ~is_c
    np.add.at(master[:, :SLOTS], d_idx[msk], values[msk])
    np.add.at(master[:, SLOTS], d_idx[msk], kwh[msk])
    present = np.zeros(days, dtype=bool)
    present[d_idx[msk]] = True
    rev_day = np.zeros(days)
    np.add.at(rev_day, d_idx[is_c], rev[is_c])
    master[~present] = np.nan

    _fill_from_registers(series, master[:, SLOTS], rules.fill_max_share)
    slot_ok = ~np.isnan(master[:, :SLOTS]) & ~np.isnan(series[:, :, :SLOTS]).any(1)
    day_ok = ~slot_ok.any(1) & ~np.isnan(master[:, SLOTS]) & ~np.isnan(series[:, :, SLOTS]).any(1)
    dd, ss = np.nonzero(slot_ok)
    dday = np.flatnonzero(day_ok)
    used_days = len(np.unique(np.r_[dd, dday]))
    if used_days < min(rules.min_days, days):
        return None

    xs = np.concatenate([series[dd, :, ss], series[dday, :, SLOTS]])
    m = np.concatenate([master[dd, ss], master[dday, SLOTS]])
    y = m - xs.sum(1)
    const = np.r_[np.ones(len(dd)), np.full(len(dday), float(SLOTS))]
    sq = np.r_[m[: len(dd)] ** 2, m[len(dd) :] ** 2 / SLOTS]
    pvx = np.concatenate([rev_day[dd, None] * pv[:, ss].T, np.repeat(rev_day[dday, None], len(pv), 1)])
    w = np.r_[np.ones(len(dd)), np.full(len(dday), 1.0 / SLOTS)]

    recorded = np.nansum(series[:, :, SLOTS], axis=0)
    usable = (recorded >= rules.min_recorded_kwh) & (np.abs(xs).sum(0) > 0)
    cols = np.flatnonzero(usable)
    extra = [const, sq / max(float(np.abs(sq).max()), 1e-12)]
    if rev_day.sum() > 0:
        extra += list(pvx.T)
    design = np.column_stack([xs[:, cols], *extra])
    if len(y) < rules.min_rows_per_column * design.shape[1]:
        return None
    beta, se, tau, extras, wt, resid, ginv, sigma2, design = _estimate(
        design, y, w, series, cols, dd, ss, dday, n, rules
    )

    # identity of each customer column: its latest row
    ids = np.flatnonzero(is_c)
    last = np.full(n, -1)
    last[j_idx[ids]] = ids
    keys = np.r_[dd * (SLOTS + 1) + ss, dday * (SLOTS + 1) + SLOTS]
    return AreaFit(
        area_id=area_id,
        feeder_id=feeder_id,
        meters=[str(meter[i]) for i in last],
        customers=[cust[i] for i in last],
        multipliers=mult[last].astype(float),
        beta=beta,
        se=se,
        tau=tau,
        recorded_kwh=recorded,
        days=used_days,
        slot_rows=len(dd),
        day_rows=len(dday),
        rmse=math.sqrt(sigma2),
        added=extras,
        y=y,
        w=w,
        cols=cols,
        rows=(dd, ss, dday),
        keys=keys,
        design=design,
        weights=wt,
        resid=resid,
        ginv=ginv,
        series=series,
    )


# -- what the coefficients say ---------------------------------------------------------------


def coefficients(fits: Sequence[AreaFit]) -> pl.DataFrame:
    """One row per fitted customer: coefficient, its standard error, the area's τ and the derived figures."""
    schema = {
        "area_id": pl.String,
        "feeder_id": pl.String,
        "meter_id": pl.String,
        "customer_id": pl.String,
        "multiplier": pl.Float64,
        "coefficient": pl.Float64,
        "std_error": pl.Float64,
        "area_tau": pl.Float64,
        "recorded_kwh": pl.Float64,
        "days": pl.Int32,
        "slot_rows": pl.Int32,
        "day_rows": pl.Int32,
        **{f"{name}_{what}": pl.Float64 for name in ADDED for what in ("coefficient", "t_stat", "kwh")},
    }
    frame = pl.DataFrame(schema=schema) if not fits else pl.DataFrame(
        {
            "area_id": np.concatenate([[f.area_id] * len(f.meters) for f in fits]),
            "feeder_id": [f.feeder_id for f in fits for _ in f.meters],
            "meter_id": [m for f in fits for m in f.meters],
            "customer_id": [c for f in fits for c in f.customers],
            "multiplier": np.concatenate([f.multipliers for f in fits]),
            "coefficient": np.concatenate([f.beta for f in fits]),
            "std_error": np.concatenate([f.se for f in fits]),
            "area_tau": np.concatenate([np.full(len(f.meters), f.tau) for f in fits]),
            "recorded_kwh": np.concatenate([f.recorded_kwh for f in fits]),
            "days": np.concatenate([np.full(len(f.meters), f.days) for f in fits]),
            "slot_rows": np.concatenate([np.full(len(f.meters), f.slot_rows) for f in fits]),
            "day_rows": np.concatenate([np.full(len(f.meters), f.day_rows) for f in fits]),
            **{
                f"{name}_{what}": np.concatenate([f.added[name][k] if f.added else np.full(len(f.meters), np.nan) for f in fits])
                for name in ADDED
                for k, what in enumerate(("coefficient", "t_stat", "kwh"))
            },
        },
        schema=schema,
    )  # fmt: skip
    ratio = (1 + pl.col("coefficient")) / (1 + pl.col("area_tau"))

    def robust(t: pl.Expr) -> pl.Expr:
        # slot residuals are not independent (a household's noise runs over hours and days),
        # so the textbook t overstates: each t is read against the area's own customers,
        # most of them honest (median and scaled MAD, Hampel)
        med = t.median().over("area_id")
        mad = 1.4826 * (t - med).abs().median().over("area_id")
        return (t - med) / pl.max_horizontal(mad, pl.lit(1.0))

    return frame.filter(pl.col("coefficient").is_not_nan()).with_columns(
        true_use_ratio=ratio,
        t_stat=robust((pl.col("coefficient") - pl.col("area_tau")) / pl.col("std_error")),
        steady_unrecorded_kwh=(ratio - 1) * pl.col("recorded_kwh"),
        night_t_stat=robust(pl.col("night_t_stat")),
        deficit_t_stat=robust(pl.col("deficit_t_stat")),
    )


MAPPING_SCHEMA = {"meter_id": pl.String, "other_area_id": pl.String, "gamma": pl.Float64, "gamma_t": pl.Float64}


def mapping_tests(fits: Sequence[AreaFit], coef: pl.DataFrame, rules: BalanceRules) -> pl.DataFrame:
    """For every customer whose coefficient is near −1: how well it explains each other area of its feeder.

    Frisch–Waugh: the customer's series, taken on the other area's rows and cleared of
    that area's design, regressed on that area's residual gives γ, the coefficient it
    would get there; a customer fed from there has γ ≈ 1 + τ of that area.
    """
    schema = MAPPING_SCHEMA
    cands = coef.filter(
        ((pl.col("coefficient") + 1).abs() <= rules.mapping_tolerance)
        & (pl.col("t_stat").abs() >= rules.min_t)
        & pl.col("feeder_id").is_not_null()
    )
    if cands.height == 0:
        return pl.DataFrame(schema=schema)
    by_area = {f.area_id: f for f in fits}
    by_feeder: dict[str, list[AreaFit]] = {}
    for f in fits:
        if f.feeder_id is not None:
            by_feeder.setdefault(f.feeder_id, []).append(f)
    rows = []
    for area_id, meter_id, feeder_id in cands.select("area_id", "meter_id", "feeder_id").iter_rows():  # candidates
        own = by_area[area_id]
        j = own.meters.index(meter_id)
        flat = own.series[:, j, :].reshape(-1)
        for other in by_feeder.get(feeder_id, []):
            if other.area_id == area_id or len(other.keys) == 0:
                continue
            z = flat[other.keys]
            ok = ~np.isnan(z)
            if ok.sum() < 2 or not np.any(z[ok]):
                continue
            z = np.where(ok, z, 0.0)
            x, w = other.design, other.weights * ok
            zt = z - x @ (other.ginv @ (x.T @ (w * z)))
            den = float((w * zt * zt).sum())
            if den <= 0:
                continue
            gamma = float((w * zt * other.resid).sum()) / den
            resid = other.resid - gamma * zt
            s2 = float((w * resid * resid).sum()) / max(int(ok.sum()) - x.shape[1] - 1, 1)
            se = math.sqrt(max(s2 / den, 1e-30))
            rows.append((meter_id, other.area_id, gamma, gamma / se))
    return pl.DataFrame(rows, schema=schema, orient="row")


def _nearest_standard(ratio: pl.Expr, ratings: Sequence[float]) -> tuple[pl.Expr, pl.Expr]:
    """The standard multiplier nearest (in log) to each estimate, and the log distance."""
    logs = [math.log(r) for r in sorted(set(ratings))]
    if not logs:
        return pl.lit(None, pl.Float64), pl.lit(None, pl.Float64)
    dist = [(ratio.log() - lg).abs() for lg in logs]
    best = pl.min_horizontal(*dist)
    snapped = pl.coalesce(*(pl.when(d == best).then(pl.lit(math.exp(lg))) for d, lg in zip(dist, logs, strict=True)))
    return snapped.round(6), best


def findings(
    coef: pl.DataFrame, maps: pl.DataFrame, window_start: dt.date, window_end: dt.date, rules: BalanceRules
) -> pl.DataFrame:
    """loss_diagnosis-shaped findings: theft candidates, multiplier and mapping suspects.

    Columns: area_id, kind, rule, meter_id, customer_id, role, other_area_id, score,
    days, evidence (JSON), and the figures theft_cases needs (unrecorded_kwh,
    recorded_kwh, days). Scores are in [0, 1].
    """
    days = (window_end - window_start).days + 1
    sig = pl.col("t_stat").abs() >= rules.min_t

    def part(name: str) -> pl.Expr:
        on = (pl.col(f"{name}_t_stat") >= rules.min_t) & (pl.col(f"{name}_coefficient") >= rules.added_min_coefficient)
        return pl.when(on).then(pl.col(f"{name}_coefficient") * pl.col(f"{name}_kwh")).otherwise(0.0)

    steady = pl.when(sig & (pl.col("true_use_ratio") > 1)).then(pl.col("steady_unrecorded_kwh")).otherwise(0.0)
    coef = coef.with_columns(_steady=steady, _night=part("night"), _deficit=part("deficit")).with_columns(
        unrecorded_kwh=pl.col("_steady") + pl.col("_night") + pl.col("_deficit")
    )
    share = pl.col("unrecorded_kwh") / (pl.col("unrecorded_kwh") + pl.col("recorded_kwh"))
    # a direct-connected customer whose curve runs against the area's loss (a coefficient
    # well below the area's that is no wrong area): energy recorded out of step with the
    # energy used, e.g. a day recorded flat or reversed. Its strength is its robust t,
    # 0 at min_t, 1 at 2.5 x min_t. (A CT customer's negative coefficient is read as a
    # too-large multiplier first.)
    against = (
        (pl.col("multiplier") <= 1)
        & (pl.col("coefficient") - pl.col("area_tau") <= -rules.added_min_coefficient)
        & (pl.col("t_stat") <= -rules.min_t)
        & ((pl.col("coefficient") + 1).abs() > rules.mapping_tolerance)
    )
    against_strength = (
        pl.when(against).then(((-pl.col("t_stat") - rules.min_t) / (1.5 * rules.min_t)).clip(0.0, 1.0)).otherwise(0.0)
    )
    #: explained as theft that is not a steady share: not read as a multiplier or mapping error
    unsteady = (pl.col("_night") > 0) | (pl.col("_deficit") > 0)
    ev_common: dict[str, Any] = {
        "coefficient": pl.col("coefficient").round(6),
        "std_error": pl.col("std_error").round(6),
        "area_technical_coefficient": pl.col("area_tau").round(6),
        "t_stat": pl.col("t_stat").round(3),
        "recorded_kwh": pl.col("recorded_kwh").round(3),
        "slot_rows": pl.col("slot_rows"),
        "daily_rows": pl.col("day_rows"),
    }
    theft = coef.filter(((pl.col("unrecorded_kwh") > 0) & (share >= rules.theft_min_share)) | against).with_columns(
        kind=pl.lit("theft_candidate"),
        rule=pl.lit(RULE_THEFT),
        other_area_id=pl.lit(None, pl.String),
        score=pl.max_horizontal((share / rules.theft_full_share).clip(0.0, 1.0), against_strength).round(6),
        unrecorded_share=share,
        evidence=pl.struct(
            unrecorded_kwh_per_day=(pl.col("unrecorded_kwh") / days).round(3),
            unrecorded_share=share.round(6),
            unrecorded_kwh=pl.col("unrecorded_kwh").round(3),
            steady_share_kwh=pl.col("_steady").round(3),
            night_only_kwh=pl.col("_night").round(3),
            some_days_kwh=pl.col("_deficit").round(3),
            night_coefficient=pl.col("night_coefficient").round(6),
            night_t_stat=pl.col("night_t_stat").round(3),
            deficit_coefficient=pl.col("deficit_coefficient").round(6),
            deficit_t_stat=pl.col("deficit_t_stat").round(3),
            runs_against_the_loss=against,
            **ev_common,
        ).struct.json_encode(),
    )
    snapped, dist = _nearest_standard(pl.col("multiplier") * pl.col("true_use_ratio"), rules.standard_multipliers)
    ratio = pl.col("true_use_ratio")
    mult = (
        coef.filter(
            sig
            & ~unsteady
            & (pl.col("multiplier") > 1)
            & ((ratio >= rules.multiplier_min_ratio) | (ratio <= 1 / rules.multiplier_min_ratio))
        )
        .with_columns(_snap=snapped, _dist=dist)
        .filter((pl.col("_dist") <= rules.multiplier_tolerance) & (pl.col("_snap") != pl.col("multiplier")))
        .with_columns(
            kind=pl.lit("multiplier_suspect"),
            rule=pl.lit(RULE_MULTIPLIER),
            other_area_id=pl.lit(None, pl.String),
            score=(1 - pl.col("_dist") / rules.multiplier_tolerance / 2).clip(0.0, 1.0).round(6),
            evidence=pl.struct(
                archive_multiplier=pl.col("multiplier"),
                estimated_multiplier=(pl.col("multiplier") * ratio).round(3),
                candidate_multiplier=pl.col("_snap"),
                **ev_common,
            ).struct.json_encode(),
        )
    )
    best = (
        maps.filter((pl.col("gamma") - 1).abs() <= rules.mapping_tolerance)
        .sort("meter_id", pl.col("gamma_t").abs(), descending=[False, True])
        .group_by("meter_id", maintain_order=True)
        .first()
    )
    own_fit = (1 - (pl.col("coefficient") + 1).abs() / rules.mapping_tolerance).clip(0.0, 1.0)
    other_fit = (1 - (pl.col("gamma") - 1).abs() / rules.mapping_tolerance).clip(0.0, 1.0)
    mapping = (
        coef.filter(sig & ~unsteady & ((pl.col("coefficient") + 1).abs() <= rules.mapping_tolerance))
        .join(best, on="meter_id", how="left")
        .with_columns(
            kind=pl.lit("mapping_suspect"),
            rule=pl.lit(RULE_MAPPING),
            score=pl.when(pl.col("other_area_id").is_not_null())
            .then(0.5 + 0.25 * own_fit + 0.25 * other_fit)
            .otherwise(0.5 * own_fit)
            .round(6),
            evidence=pl.struct(
                coefficient_in_other_area=pl.col("gamma").round(6),
                t_stat_in_other_area=pl.col("gamma_t").round(3),
                **ev_common,
            ).struct.json_encode(),
        )
    )
    cols = [
        "area_id",
        "kind",
        "rule",
        "meter_id",
        "customer_id",
        "other_area_id",
        "score",
        "days",
        "evidence",
        "unrecorded_kwh",
        "recorded_kwh",
    ]
    return pl.concat([f.select(cols) for f in (theft, mult, mapping)]).with_columns(
        role=pl.lit("customer"), days=pl.col("days").cast(pl.Int32)
    )


def balance(
    curves: pl.DataFrame | pl.LazyFrame,
    members: pl.DataFrame | pl.LazyFrame,
    window_end: dt.date,
    rules: BalanceRules = BalanceRules(),
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The window's coefficients (one row per customer) and its findings.

    The window is the ``window_days`` days ending at ``window_end``.
    """
    start = window_end - dt.timedelta(days=rules.window_days - 1)
    held = members.lazy().select(pl.col("date").filter(pl.col("date").is_between(start, window_end)).n_unique())
    if held.collect().item() < rules.min_days:
        # fewer days of history than any fit may rest on: nothing to read
        empty = coefficients([])
        return empty, findings(empty, pl.DataFrame(schema=MAPPING_SCHEMA), start, window_end, rules)
    frame, values = member_days(curves, members, start, window_end)
    fits = fit_areas(frame, values, rules.window_days, rules)
    coef = coefficients(fits)
    maps = mapping_tests(fits, coef, rules)
    if maps.height:
        refit_with_incoming(fits, maps, rules)
        coef = coefficients(fits)
    return coef, findings(coef, maps, start, window_end, rules)


def evidence_text(evidence: str) -> str:
    """The balance evidence of a finding in words (for reports and theft cases)."""
    e = json.loads(evidence)
    if "unrecorded_share" in e:
        return (
            f"the area balance leaves {e['unrecorded_kwh_per_day']} kWh/day unrecorded "
            f"({100 * e['unrecorded_share']:.0f}% of its use; coefficient {e['coefficient']}, t {e['t_stat']})"
        )
    if "candidate_multiplier" in e:
        return f"the area balance puts its multiplier near {e['estimated_multiplier']} (standard {e['candidate_multiplier']}), archive {e['archive_multiplier']}"
    return f"coefficient {e['coefficient']} in its booked area; {e.get('coefficient_in_other_area')} in the other"


def merge_diagnosis(
    diagnosis: pl.DataFrame,
    found: pl.DataFrame,
    window_start: dt.date,
    window_end: dt.date,
    theft_max_per_area: int,
) -> pl.DataFrame:
    """The window's ``loss_diagnosis`` rows with the balance's findings merged in, re-ranked.

    ``diagnosis``: the daily-kWh diagnosis of the window (``loss_diagnosis`` columns);
    ``found``: :func:`findings`. A meter found by both for the same kind keeps the
    balance's row (the curves carry 96 times the evidence of the daily series). Within
    an area and kind, the balance's findings rank first (by score), then the daily
    diagnosis's; theft candidates are cut at ``theft_max_per_area``.
    """
    cols = diagnosis.columns
    status = diagnosis.select("area_id", "area_status", "area_loss_rate").unique("area_id", keep="first")
    new = (
        found.join(status, on="area_id", how="left")
        .with_columns(
            date=pl.lit(window_end),
            window_start=pl.lit(window_start),
            severity=pl.lit("warning"),
            rank=pl.lit(0, pl.Int32),
            _prio=pl.lit(0),
        )
        .select(*cols, "_prio")
    )
    old = diagnosis.join(found.select("area_id", "kind", "meter_id"), on=["area_id", "kind", "meter_id"], how="anti")
    merged = pl.concat([new, old.with_columns(_prio=pl.lit(1)).select(*cols, "_prio")], how="vertical_relaxed")
    ranked = merged.sort(
        ["area_id", "kind", "_prio", "score", "meter_id"], descending=[False, False, False, True, False]
    ).with_columns(rank=(pl.int_range(pl.len()).over("area_id", "kind") + 1).cast(pl.Int32))
    return (
        ranked.filter((pl.col("kind") != "theft_candidate") | (pl.col("rank") <= theft_max_per_area))
        .select(cols)
        .sort("area_id", "kind", "rank")
    )
