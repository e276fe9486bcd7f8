"""Diagnosis of abnormal area loss: who to inspect first (线损诊断).

Pure functions of the ``meter_daily`` mart over a window of days; they never open a
file. :func:`diagnose` returns ``loss_diagnosis`` rows (see
``schemas/loss_diagnosis.py`` for the kinds, scores and ranks).

Every statistic uses the area's *complete* days of the window: days on which every
master and customer value is present (actual or estimated) and supply is positive,
i.e. days with a ``loss_rate``. Days that are uncomputable only because collection
fell below the target still count: an estimated value is still the best figure there
is, and a window with 97% collection every day must still be diagnosable.

A customer enters an area's balance through its daily *net* kWh (forward - reverse):
loss = master - Σ net, so a meter wired in reverse moves the loss by its forward fall
plus its reverse rise, and a PV roof by neither. Technical loss grows with the load,
and every customer's use moves with everyone's (weather, weekdays), so the loss kWh
is only compared with a customer's kWh once the area's load is accounted for: through
the rate (theft: the *loss residual* loss - window rate x supply) or by holding the
load fixed in a partial regression (mapping).

The window of an area is *abnormal* (CONTRACT §3 thresholds of the area's class) when
its summed rate over the complete days (Σ loss / Σ supply) is high or negative, or at
least ``min_abnormal_days`` complete days are; it is *rising* when the mean daily rate
of the window's second half exceeds the first half's by ``rise_min`` or more (a theft
starting mid-window in a 4% area may never cross 10%).

* theft candidates are sought in areas whose loss is high or rising, never negative
  (theft raises loss), or in every area with ``theft_areas = "all"``;
* multiplier suspects in areas whose window rate is high or negative, almost every
  day of the window (a wrong ratio is off by the same share every day);
* mapping suspects among all customers whose net kWh moves against their own area's
  loss (given its supply), paired with every other area on their feeder.

The window's meter-days are read per range of whole areas (``rows_per_range``), each
range twice: once for the per-customer statistics (a streaming group-by), then only
for the meters the findings need; the per-area balances of the whole window are small
and held. The stage hands over its kept member rows of each day (:func:`member_rows`,
sorted by area), so a range's reads are a few row groups of them, not meter_daily. A county window is never held whole in memory. :func:`diagnose_windows` diagnoses several
windows in one pass (every group keyed by the window's end), each window's rows those
:func:`diagnose` gives it alone: a small zone's windows cost one pass, not one each.

Evidence values are rounded (kWh to 1e-3, rates and correlations to 1e-6) so the file
is identical across reruns.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
from collections.abc import Iterable
from typing import Literal

import polars as pl
from pydantic import Field

from meterlake.schemas.loss_diagnosis import LOSS_DIAGNOSIS, RULES
from meterlake.transforms.balance import range_firsts
from meterlake.transforms.loss import LossRules, area_days, check_input, prepare
from meterlake.transforms.metering import CT_PRIMARY_A, CT_SECONDARY_A, PT_RATIOS

from .strict import StrictModel


class TheftRules(StrictModel):
    """Theft candidates (窃电嫌疑); config/loss.toml [diagnosis.theft]."""

    areas: Literal["abnormal", "all"] = Field(
        "abnormal", description="seek theft in high or rising areas only, or in every area that is not negative"
    )
    min_score: float = Field(0.4, ge=0.0, le=1.0, description="list theft candidates scoring at least this")
    max_per_area: int = Field(20, ge=1, description="at most this many theft candidates per area and window")


class MultiplierRules(StrictModel):
    """Multiplier suspects (倍率错误); config/loss.toml [diagnosis.multiplier]. The
    candidate ratios come from the rating table (:mod:`meterlake.transforms.metering`)."""

    neighbours: int = Field(4, ge=1, description="candidate ratios: up to this many standard steps either side")
    large_customer_share: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="a CT-metered customer with at least this share of the area's sales is tested too",
    )
    large_customers_per_area: int = Field(3, ge=0, description="test at most this many large customers per area")
    min_normal_share: float = Field(
        0.8, ge=0.0, le=1.0, description="share of complete days that must be normal after the change"
    )
    max_normal_share_before: float = Field(
        0.2, ge=0.0, le=1.0, description="share of complete days that may be normal before it"
    )


class MappingRules(StrictModel):
    """Customer-to-area mapping suspects (户变关系); config/loss.toml [diagnosis.mapping]."""

    max_own_corr: float = Field(
        -0.4,
        ge=-1.0,
        le=1.0,
        description="greatest correlation of the customer's net kWh with its own area's loss residual",
    )
    min_corr: float = Field(
        0.6,
        ge=-1.0,
        le=1.0,
        description="least correlation of the customer's net kWh with the other area's loss residual",
    )
    min_margin: float = Field(
        1.3, ge=0.0, le=2.0, description="least excess of that correlation over the one with its own area's residual"
    )
    slope_tolerance: float = Field(
        0.4, ge=0.0, description="the other area's loss residual per customer net kWh must be within this of 1"
    )


class DiagnosisRules(StrictModel):
    """Settings of :func:`diagnose`; config/loss.toml [diagnosis] (the stage's settings
    add the cadence and the interval balance)."""

    window_days: int = Field(30, ge=2, le=366, description="days in a diagnosis window")
    min_days: int = Field(20, ge=3, description="fewest complete days a correlation or window status rests on")
    min_abnormal_days: int = Field(
        3, ge=1, description="an area with this many high or negative days in the window is abnormal"
    )
    rise_min: float = Field(
        0.005, description="an area whose daily rate rose this much from the first half of the window is abnormal"
    )
    theft: TheftRules = Field(default_factory=TheftRules, description="theft candidates (窃电嫌疑)")
    multiplier: MultiplierRules = Field(default_factory=MultiplierRules, description="multiplier suspects (倍率错误)")
    mapping: MappingRules = Field(
        default_factory=MappingRules, description="customer-to-area mapping suspects (户变关系)"
    )


# -- multipliers ----------------------------------------------------------------------


def neighbour_multipliers(multipliers: Iterable[float], rules: MultiplierRules = MultiplierRules()) -> pl.DataFrame:
    """Standard multipliers (the rating table) within ``neighbours`` steps of each given one.

    A multiplier m is read as CT x PT for every PT ratio p that makes m/p a standard CT
    multiplier (for a non-standard m: every p that puts m/p inside the CT series); the
    candidates are the CT multipliers up to k steps below and above m/p, times p. Loops
    over the handful of distinct multipliers, not over rows.

    >>> neighbour_multipliers([30.0], MultiplierRules(neighbours=1)).to_dicts()
    [{'multiplier': 30.0, 'candidate': 25.0}, {'multiplier': 30.0, 'candidate': 32.0}]
    """
    cts = sorted({float(c) / CT_SECONDARY_A for c in CT_PRIMARY_A})
    k = rules.neighbours

    def standard(ct: float) -> bool:
        return any(math.isclose(ct, c, rel_tol=1e-9) for c in cts)

    pairs: set[tuple[float, float]] = set()
    for m in {float(x) for x in multipliers if x is not None and math.isfinite(x) and x > 0}:
        # the readings of m as a standard CT x PT; a non-standard m is read with every PT
        # that puts m/PT inside the CT series
        pts = [p for p in PT_RATIOS if standard(m / p)] or [p for p in PT_RATIOS if cts[0] <= m / p <= cts[-1]]
        for p in pts:
            ct = m / p
            lo = bisect.bisect_left(cts, ct - 1e-9)
            hi = lo + 1 if standard(ct) else lo
            for c in cts[max(0, lo - k) : lo] + cts[hi : hi + k]:
                pairs.add((m, c * p))
    return pl.DataFrame(sorted(pairs), schema={"multiplier": pl.Float64, "candidate": pl.Float64}, orient="row")


# -- window summary ---------------------------------------------------------------------


def window_summary(days: pl.LazyFrame, diag: DiagnosisRules) -> pl.LazyFrame:
    """One row per window and area: the window's rate and status, and which searches it enters.

    ``days``: the area-days of every window, each with its window's end (``_end``) and
    the first day of its second half (``_mid``).
    """
    ok = pl.col("loss_rate").is_not_null()
    rate = pl.col("loss_rate").filter(ok)
    high = pl.col("_high_above").first()
    neg = pl.col("_negative_below").first()
    s = (
        days.group_by(*WINDOW, "area_id")
        .agg(
            feeder_id=pl.col("feeder_id").sort_by("date").last(),
            _days=ok.sum().cast(pl.Int32),
            _supply=pl.col("supply_kwh").filter(ok).sum(),
            _loss=pl.col("loss_kwh").filter(ok).sum(),
            _days_high=(rate > high).sum(),
            _days_negative=(rate < neg).sum(),
            _rate_first=pl.col("loss_rate").filter(ok & (pl.col("date") < pl.col("_mid"))).mean(),
            _rate_second=pl.col("loss_rate").filter(ok & (pl.col("date") >= pl.col("_mid"))).mean(),
            _high_above=high,
            _negative_below=neg,
        )
        .with_columns(
            area_loss_rate=pl.when(pl.col("_supply") > 0).then(pl.col("_loss") / pl.col("_supply")),
            _rise=pl.col("_rate_second") - pl.col("_rate_first"),
        )
        .with_columns(
            area_status=pl.when((pl.col("_days") < diag.min_days) | pl.col("area_loss_rate").is_null())
            .then(pl.lit("uncomputable"))
            .when(pl.col("area_loss_rate") < pl.col("_negative_below"))
            .then(pl.lit("negative"))
            .when(pl.col("area_loss_rate") > pl.col("_high_above"))
            .then(pl.lit("high"))
            .otherwise(pl.lit("normal"))
        )
    )
    enough = pl.col("_days") >= diag.min_days
    high_days = (pl.col("area_status") == "high") | (pl.col("_days_high") >= diag.min_abnormal_days)
    rising = pl.col("_rise").fill_null(0.0) >= diag.rise_min
    theft = (high_days | rising) if diag.theft.areas == "abnormal" else pl.lit(True)
    return s.with_columns(
        # theft raises loss: sought where it is high or rising, never where negative
        _theft_scope=enough & theft & (pl.col("area_status") != "negative"),
        # a wrong multiplier puts the window's rate out of band
        _off_band=pl.col("area_status").is_in(["high", "negative"]),
    )


def _residuals(complete: pl.LazyFrame, summary: pl.LazyFrame) -> pl.LazyFrame:
    """Per complete area-day: the loss, the load, and the loss the rate does not explain.

    ``resid_kwh``: loss - the window's rate x supply. A theft that starts in the
    window stays in it whole, as a step (used for theft).
    """
    return complete.join(summary.select(*WINDOW, "area_id", "area_loss_rate"), on=[*WINDOW, "area_id"]).select(
        *WINDOW,
        "date",
        "area_id",
        "feeder_id",
        "loss_rate",
        "loss_kwh",
        "supply_kwh",
        "sales_kwh",
        resid_kwh=pl.col("loss_kwh") - pl.col("area_loss_rate") * pl.col("supply_kwh"),
    )


def _partial(x: str, y: str, z: str) -> tuple[pl.Expr, pl.Expr]:
    """Partial correlation of x and y given z, and the coefficient of x in y ~ x + z.

    From the pairwise correlations, so it runs inside a group-by:
    r_xy.z = (r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2)), and the coefficient
    is r_xy.z x sd(y|z) / sd(x|z). A constant z reads as no z at all.
    """
    rxy = pl.corr(x, y)
    rxz = pl.corr(x, z).fill_nan(0.0)
    ryz = pl.corr(y, z).fill_nan(0.0)
    ux, uy = (1 - rxz * rxz).sqrt(), (1 - ryz * ryz).sqrt()
    r = (rxy - rxz * ryz) / (ux * uy)
    return r, r * (pl.col(y).std() * uy) / (pl.col(x).std() * ux)


def _slope(y: str, x: str = "kwh") -> pl.Expr:
    """Least-squares slope of y on x."""
    return pl.cov(x, y) / pl.col(x).var()


def _customer_stats(cust: pl.LazyFrame, resid: pl.LazyFrame) -> pl.LazyFrame:
    """One row per (window, area, customer meter): its net kWh against its own area's loss."""
    first = pl.col("date") < pl.col("_mid")
    return (
        cust.join(resid, on=[*WINDOW, "date", "area_id"])
        .group_by(*WINDOW, "area_id", "meter_id")
        .agg(
            customer_id=pl.col("customer_id").sort_by("date").last(),
            days=pl.len().cast(pl.Int32),
            _corr_rate=pl.corr("kwh", "loss_rate"),
            _slope_resid=_slope("resid_kwh"),
            # the customer's net kWh against its area's loss, the area's supply held
            # fixed (technical loss grows with the load; a master does not measure a
            # customer fed from elsewhere, so supply leaves such a customer out)
            _corr_resid=_partial("kwh", "loss_kwh", "supply_kwh")[0],
            _kwh=pl.col("kwh").sum(),
            _own_loss=pl.col("loss_kwh").sum(),
            _own_supply=pl.col("supply_kwh").sum(),
            _kwh_first=pl.col("kwh").filter(first).mean(),
            _kwh_second=pl.col("kwh").filter(~first).mean(),
            _rate_first=pl.col("loss_rate").filter(first).mean(),
            _rate_second=pl.col("loss_rate").filter(~first).mean(),
        )
    )


# -- the three kinds ------------------------------------------------------------------


def _theft(stats: pl.LazyFrame, summary: pl.LazyFrame, diag: DiagnosisRules) -> pl.LazyFrame:
    # 反窃电: correlate the customer's daily kWh with the area's daily loss rate; a
    # theft that begins in the window lowers the one as it raises the other. The rate,
    # not the kWh, is correlated so that weather moving every load together (and the
    # technical loss with it) does not read as theft. The correlation is then weighted
    # by how well the sizes match: energy taken off the meter reappears as loss, so the
    # slope of the area's loss residual on the customer's net kWh is near -1 for the
    # thief and far from it for a customer who merely follows the same trend.
    slope = pl.col("_slope_resid")
    match = pl.when(slope < 0).then(pl.min_horizontal(-slope, -1.0 / slope)).otherwise(0.0)
    return (
        stats.join(
            summary.filter(pl.col("_theft_scope")).select(*WINDOW, "area_id"), on=[*WINDOW, "area_id"], how="semi"
        )
        .filter((pl.col("days") >= diag.min_days) & pl.col("_corr_rate").is_finite() & slope.is_finite())
        .with_columns(score=((-pl.col("_corr_rate")).clip(0.0, 1.0) * match).round(6))
        .filter(pl.col("score") >= diag.theft.min_score)
        .with_columns(
            kind=pl.lit("theft_candidate"),
            role=pl.lit("customer"),
            other_area_id=pl.lit(None, pl.String),
            evidence=pl.struct(
                corr_net_kwh_loss_rate=pl.col("_corr_rate").round(6),
                slope_loss_residual_per_net_kwh=slope.round(6),
                net_kwh_mean_first_half=pl.col("_kwh_first").round(3),
                net_kwh_mean_second_half=pl.col("_kwh_second").round(3),
                loss_rate_first_half=pl.col("_rate_first").round(6),
                loss_rate_second_half=pl.col("_rate_second").round(6),
            ).struct.json_encode(),
            _tie=pl.lit(0.0),
        )
    )


def _multiplier(
    members: pl.LazyFrame, complete: pl.LazyFrame, summary: pl.LazyFrame, diag: DiagnosisRules
) -> pl.LazyFrame:
    # 倍率错误: a wrong CT/PT multiplier in the archive scales a meter's kWh by a
    # constant, so the area's loss is off every day by the same share. Replacing it by
    # a neighbouring standard ratio and recomputing each day's balance tests that.
    # Suspects: the master meter(s), and the largest customers metered through a CT
    # (multiplier > 1; a direct-connected meter has no ratio to get wrong), in areas
    # out of band on almost every day (a rate that strays across a band edge now and
    # then is not a constant factor).
    scope = summary.filter(pl.col("_off_band")).select(*WINDOW, "area_id", "_negative_below", "_high_above")
    cdays = complete.join(scope, on=[*WINDOW, "area_id"]).select(
        *WINDOW, "date", "area_id", "supply_kwh", "sales_kwh", "_negative_below", "_high_above"
    )
    vals = members.join(cdays.select(*WINDOW, "date", "area_id"), on=[*WINDOW, "date", "area_id"], how="semi")
    per_meter = (
        vals.group_by(*WINDOW, "area_id", "meter_id")
        .agg(
            role=pl.col("role").sort_by("date").last(),
            customer_id=pl.col("customer_id").sort_by("date").last(),
            multiplier=pl.col("multiplier").sort_by("date").last(),
            _kwh=pl.col("_kwh").sum().round(6),
        )
        .join(cdays.group_by(*WINDOW, "area_id").agg(_sales=pl.col("sales_kwh").sum()), on=[*WINDOW, "area_id"])
        .with_columns(
            _share=pl.when(pl.col("_sales") > 0).then(pl.col("_kwh") / pl.col("_sales")),
            _ct=(pl.col("role") == "customer") & (pl.col("multiplier") > 1),
        )
        .with_columns(_size_rank=pl.col("_kwh").rank("ordinal", descending=True).over(*WINDOW, "area_id", "_ct"))
    )
    suspects = per_meter.filter(
        (pl.col("role") == "area_master")
        | (
            pl.col("_ct")
            & (pl.col("_share") >= diag.multiplier.large_customer_share)
            & (pl.col("_size_rank") <= diag.multiplier.large_customers_per_area)
        )
    ).select(*WINDOW, "area_id", "meter_id", "role", "customer_id", "multiplier")
    mults = suspects.select("multiplier").unique().collect()["multiplier"].to_list()
    cands = suspects.join(neighbour_multipliers(mults, diag.multiplier).lazy(), on="multiplier")
    daily_vals = vals.select(
        *WINDOW,
        "date",
        "area_id",
        "meter_id",
        pl.col("multiplier").alias("_m_day"),
        pl.col("_kwh").alias("_k"),
        pl.col("_rev").alias("_r"),
    )
    is_master = pl.col("role") == "area_master"
    f = (
        pl.when(pl.col("_m_day") == pl.col("multiplier"))
        .then(pl.col("candidate") / pl.col("multiplier"))
        .otherwise(1.0)
    )
    k = pl.col("_k").fill_null(0.0)
    r = pl.col("_r").fill_null(0.0)
    grid = (
        cands.join(cdays, on=[*WINDOW, "area_id"])
        .join(daily_vals, on=[*WINDOW, "date", "area_id", "meter_id"], how="left")
        .with_columns(
            _supply_after=pl.col("supply_kwh") + pl.when(is_master).then((f - 1) * k).otherwise((f - 1) * r),
            _sales_after=pl.col("sales_kwh") + pl.when(is_master).then(0.0).otherwise((f - 1) * k),
        )
        .with_columns(
            _rate_before=(pl.col("supply_kwh") - pl.col("sales_kwh")) / pl.col("supply_kwh"),
            _rate_after=pl.when(pl.col("_supply_after") > 0).then(
                (pl.col("_supply_after") - pl.col("_sales_after")) / pl.col("_supply_after")
            ),
        )
    )

    def normal(rate: str) -> pl.Expr:
        return ((pl.col(rate) >= pl.col("_negative_below")) & (pl.col(rate) <= pl.col("_high_above"))).fill_null(False)

    out = (
        grid.group_by(*WINDOW, "area_id", "meter_id", "candidate")
        .agg(
            role=pl.col("role").first(),
            customer_id=pl.col("customer_id").first(),
            multiplier=pl.col("multiplier").first(),
            days=pl.len().cast(pl.Int32),
            _normal_before=normal("_rate_before").mean(),
            _normal_after=normal("_rate_after").mean(),
            _supply=pl.col("supply_kwh").sum(),
            _sales=pl.col("sales_kwh").sum(),
            _supply_after=pl.col("_supply_after").sum(),
            _sales_after=pl.col("_sales_after").sum(),
            _meter_kwh=k.sum(),
            _negative_below=pl.col("_negative_below").first(),
            _high_above=pl.col("_high_above").first(),
        )
        .with_columns(
            _window_before=(pl.col("_supply") - pl.col("_sales")) / pl.col("_supply"),
            _window_after=pl.when(pl.col("_supply_after") > 0).then(
                (pl.col("_supply_after") - pl.col("_sales_after")) / pl.col("_supply_after")
            ),
            score=(pl.col("_normal_after") - pl.col("_normal_before")).clip(0.0, 1.0).round(6),
        )
        .filter(
            (pl.col("days") >= diag.min_days)
            & normal("_window_after")
            & (pl.col("_normal_after") >= diag.multiplier.min_normal_share)
            & (pl.col("_normal_before") <= diag.multiplier.max_normal_share_before)
            & (pl.col("score") > 0)
        )
        # the best candidate of each meter: highest score, then the rate nearest the
        # middle of the normal band
        .with_columns(
            _tie=(pl.col("_window_after") - (pl.col("_negative_below") + pl.col("_high_above")) / 2).abs().round(9)
        )
        .sort(
            *WINDOW,
            "area_id",
            "meter_id",
            pl.col("score"),
            "_tie",
            "candidate",
            descending=[False, False, False, True, False, False],
        )
        .group_by(*WINDOW, "area_id", "meter_id", maintain_order=True)
        .first()
    )
    return out.with_columns(
        kind=pl.lit("multiplier_suspect"),
        other_area_id=pl.lit(None, pl.String),
        evidence=pl.struct(
            archive_multiplier=pl.col("multiplier"),
            candidate_multiplier=pl.col("candidate"),
            meter_kwh=pl.col("_meter_kwh").round(3),
            loss_rate_before=pl.col("_window_before").round(6),
            loss_rate_after=pl.col("_window_after").round(6),
            normal_days_share_before=pl.col("_normal_before").round(6),
            normal_days_share_after=pl.col("_normal_after").round(6),
        ).struct.json_encode(),
    )


def _mapping(cust: pl.LazyFrame, stats: pl.DataFrame, resid: pl.LazyFrame, diag: DiagnosisRules) -> pl.LazyFrame:
    # 户变关系: a customer physically fed from area B but filed under A adds its kWh to
    # B's loss (B's master measures it, B's sales do not hold it) and takes it from A's.
    # Technical loss grows with the load, and a customer's use moves with everyone's
    # (weather, weekdays), so the test is a partial one: the coefficient of the
    # customer's net kWh in B's loss ~ kWh + B's sales is near 1, and its partial
    # correlation with A's loss given A's supply is negative. First the customers that
    # move against their own area, then each of them against every other area of its
    # feeder.
    candidates = stats.filter(
        (pl.col("days") >= diag.min_days)
        & pl.col("_corr_resid").is_finite()
        & (pl.col("_corr_resid") <= diag.mapping.max_own_corr)
    ).select(*WINDOW, "area_id", "meter_id", "_corr_resid", "_kwh", "_own_loss", "_own_supply")
    # the pairs (a candidate's day x every area of its feeder that day) are the test's
    # bulk: they are keyed by integer codes (the candidate's row, the other area's rank),
    # and the ids put back on the pairs that pass
    keys = candidates.select(*WINDOW, "area_id", "meter_id").with_row_index("_cand")
    days = (
        cust.join(keys.lazy(), on=[*WINDOW, "area_id", "meter_id"], maintain_order="left")
        .filter(pl.col("feeder_id").is_not_null())
        .select("_cand", *WINDOW, "feeder_id", "date", "customer_id", "kwh")
        .collect()
        .with_row_index("_row")
    )
    others = (
        resid.filter(pl.col("feeder_id").is_not_null())
        .select(
            *WINDOW,
            "date",
            "feeder_id",
            pl.col("area_id").alias("other_area_id"),
            pl.col("area_id").rank("dense").cast(pl.UInt32).alias("_other"),
            pl.col("sales_kwh").alias("_other_sales"),
            pl.col("loss_kwh").alias("_other_loss"),
            pl.col("supply_kwh").alias("_other_supply"),
        )
        .collect()
    )
    pairs = (
        days.lazy()
        .join(others.lazy().drop("other_area_id"), on=[*WINDOW, "feeder_id", "date"], maintain_order="left")
        .group_by("_cand", "_other")
        .agg(
            _row=pl.col("_row").sort_by("date").last(),
            days=pl.len().cast(pl.Int32),
            # against the other area's loss, its sales held fixed (they do not hold a
            # customer filed elsewhere though fed from there)
            _corr_other=_partial("kwh", "_other_loss", "_other_sales")[0],
            _slope_other=_partial("kwh", "_other_loss", "_other_sales")[1],
            _kwh_other_days=pl.col("kwh").sum(),
            _other_loss=pl.col("_other_loss").sum(),
            _other_supply=pl.col("_other_supply").sum(),
        )
        .filter(
            (pl.col("days") >= diag.min_days)
            & pl.col("_corr_other").is_finite()
            & (pl.col("_corr_other") >= diag.mapping.min_corr)
            & ((pl.col("_slope_other") - 1.0).abs() <= diag.mapping.slope_tolerance)
        )
        .join(keys.lazy(), on="_cand")
        .join(others.lazy().select("_other", "other_area_id").unique(), on="_other")
        .filter(pl.col("area_id") != pl.col("other_area_id"))
        .join(days.lazy().select("_row", "customer_id"), on="_row", how="left")
        .drop("_cand", "_other", "_row")
    )
    out = (
        pairs.join(candidates.lazy(), on=[*WINDOW, "area_id", "meter_id"])
        .with_columns(_margin=pl.col("_corr_other") - pl.col("_corr_resid"))
        .filter(pl.col("_margin") >= diag.mapping.min_margin)
        .with_columns(score=(pl.col("_margin") / 2).clip(0.0, 1.0).round(6))
        .sort(*WINDOW, "area_id", "meter_id", "score", "other_area_id", descending=[False, False, False, True, False])
        .group_by(*WINDOW, "area_id", "meter_id", maintain_order=True)
        .first()
    )

    def rate(loss: pl.Expr, supply: pl.Expr) -> pl.Expr:
        return pl.when(supply > 0).then(loss / supply).round(6)

    other_loss, other_supply = pl.col("_other_loss"), pl.col("_other_supply")
    own_loss, own_supply = pl.col("_own_loss"), pl.col("_own_supply")
    return out.with_columns(
        kind=pl.lit("mapping_suspect"),
        role=pl.lit("customer"),
        evidence=pl.struct(
            partial_corr_other_area_loss_given_sales=pl.col("_corr_other").round(6),
            partial_corr_own_area_loss_given_supply=pl.col("_corr_resid").round(6),
            other_area_loss_kwh_per_net_kwh=pl.col("_slope_other").round(6),
            customer_net_kwh=pl.col("_kwh").round(3),
            other_area_loss_rate=rate(other_loss, other_supply),
            other_area_loss_rate_if_moved=rate(other_loss - pl.col("_kwh_other_days"), other_supply),
            own_area_loss_rate=rate(own_loss, own_supply),
            own_area_loss_rate_if_moved=rate(own_loss + pl.col("_kwh"), own_supply),
        ).struct.json_encode(),
        _tie=pl.lit(0.0),
    )


# -- entry point ----------------------------------------------------------------------

#: the key of a window in every frame of :func:`diagnose_windows`: its last day
WINDOW = ("_end",)

_OUT = ("area_id", "kind", "meter_id", "customer_id", "role", "other_area_id", "score", "days", "evidence")


def diagnose(
    meter_daily: pl.DataFrame | pl.LazyFrame,
    window_end: dt.date,
    rules: LossRules = LossRules(),
    diag: DiagnosisRules = DiagnosisRules(),
    days: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """loss_diagnosis rows for the ``window_days`` days ending at ``window_end``.

    ``meter_daily`` may hold more days; those outside the window are ignored.
    ``days``: the window's :func:`~meterlake.transforms.loss.area_days` balances when
    the caller has them already (the stage computes each day once, from rows it has
    checked); otherwise they are computed from ``meter_daily``.
    """
    return diagnose_windows(meter_daily, [window_end], rules, diag, days)


def window_days(ends: Iterable[dt.date], diag: DiagnosisRules) -> pl.DataFrame:
    """Each window's days: ``date``, the window's end ``_end`` and the first day of its
    second half ``_mid``, by end, then date.

    >>> window_days([dt.date(2026, 1, 3)], DiagnosisRules(window_days=2))["date"].to_list()
    [datetime.date(2026, 1, 2), datetime.date(2026, 1, 3)]
    """
    n = diag.window_days
    rows = []
    for end in sorted(set(ends)):
        start = end - dt.timedelta(days=n - 1)
        mid = start + dt.timedelta(days=n // 2)
        rows += [(start + dt.timedelta(days=k), end, mid) for k in range(n)]
    return pl.DataFrame(rows, schema={"date": pl.Date, "_end": pl.Date, "_mid": pl.Date}, orient="row")


def _customers(frame: pl.LazyFrame) -> pl.LazyFrame:
    """The customers' present meter-days of ``frame``, with their net kWh."""
    return frame.filter((pl.col("role") == "customer") & pl.col("_present")).select(
        *WINDOW,
        "_mid",
        "date",
        "area_id",
        "feeder_id",
        "meter_id",
        "customer_id",
        (pl.col("_kwh") - pl.col("_rev")).alias("kwh"),
    )


def _findings(
    members: pl.LazyFrame,
    summary: pl.DataFrame,
    resid: pl.LazyFrame,
    complete: pl.LazyFrame,
    diag: DiagnosisRules,
) -> pl.DataFrame:
    """The three tests on ``members`` (the meter-days of some areas, every window's)."""
    # pass 1: every customer against its own area (streamed, one row per customer out)
    stats = _customer_stats(_customers(members), resid).collect()
    # pass 2: the meter rows the findings need: the members of out-of-band areas (for
    # the multiplier test) and the mapping candidates (of any window: each test then
    # keeps its window's own)
    mapping_candidates = stats.filter(
        (pl.col("days") >= diag.min_days) & (pl.col("_corr_resid") <= diag.mapping.max_own_corr)
    )["meter_id"].unique()
    off_band = summary.filter(pl.col("_off_band"))["area_id"].unique()
    needed = (
        members.filter(
            pl.col("area_id").is_in(off_band.implode()) | pl.col("meter_id").is_in(mapping_candidates.implode())
        )
        .collect()
        .lazy()
    )
    summary_lf = summary.lazy()
    return pl.concat(
        [
            _theft(stats.lazy(), summary_lf, diag).select(*WINDOW, *_OUT, "_tie"),
            _multiplier(needed, complete, summary_lf, diag).select(*WINDOW, *_OUT, "_tie"),
            _mapping(_customers(needed), stats, resid, diag).select(*WINDOW, *_OUT, "_tie"),
        ]
    ).collect()


def _area_ranges(members: pl.LazyFrame, rows_per_range: int | None) -> list[pl.Series | None]:
    """Ranges of whole areas, in id order, cut as the interval balance cuts its window
    (:func:`~meterlake.transforms.balance.range_firsts`: at the first area boundary after
    every ``rows_per_range`` meter-days). One range of every area (``None``: no filter)
    when they hold no more.

    >>> frame = pl.LazyFrame({"area_id": ["A", "B", "B", "C", "C", "C"]})
    >>> [r.to_list() for r in _area_ranges(frame, 3)]
    [['A', 'B'], ['C']]
    >>> _area_ranges(frame, None), _area_ranges(frame, 6)
    ([None], [None])
    """
    if rows_per_range is None:
        return [None]
    sizes = members.group_by("area_id").agg(rows=pl.len()).sort("area_id").collect()
    if sizes["rows"].sum() <= rows_per_range:
        return [None]
    starts = (sizes["rows"].cum_sum() - sizes["rows"]).to_numpy()
    bounds = [*range_firsts(starts, rows_per_range).tolist(), sizes.height]
    return [sizes["area_id"][a:b] for a, b in itertools.pairwise(bounds)]


#: the columns of a window's meter-days the three tests read (:func:`member_rows`)
MEMBER_COLUMNS = (
    "date",
    "area_id",
    "feeder_id",
    "meter_id",
    "customer_id",
    "role",
    "multiplier",
    "_kwh",
    "_rev",
    "_present",
)


def member_rows(prepared: pl.LazyFrame) -> pl.LazyFrame:
    """The meter-days of :func:`~meterlake.transforms.loss.prepare`'d rows the tests read:
    the area masters and customers filed under an area, :data:`MEMBER_COLUMNS` only.

    A function of the day's meter_daily rows alone (no setting, no other day, no PV
    inference enters it), so the stage can keep each day's and hand the kept days to
    :func:`diagnose_windows` (``prepared=True``) instead of meter_daily.
    """
    return prepared.filter(pl.col("area_id").is_not_null() & pl.col("role").is_in(["area_master", "customer"])).select(
        MEMBER_COLUMNS
    )


def diagnose_windows(
    meter_daily: pl.DataFrame | pl.LazyFrame,
    ends: Iterable[dt.date],
    rules: LossRules = LossRules(),
    diag: DiagnosisRules = DiagnosisRules(),
    days: pl.DataFrame | None = None,
    rows_per_range: int | None = None,
    prepared: bool = False,
) -> pl.DataFrame:
    """:func:`diagnose` of every window ending at one of ``ends``, in one pass: the rows
    of every window (``date`` = its end), sorted by date, area, kind and rank.

    Each meter-day enters every window holding it (tagged with the window's end, a key of
    every group), so the rows handed over are repeated up to ``window_days`` times: give
    it as many windows as memory allows (the stage: a budget of rows). Every window's
    rows are those :func:`diagnose` gives it alone.

    ``rows_per_range``: the three tests run on one range of whole areas at a time, each
    holding about this many meter-days (counted once per window holding them), so that
    a county's window is never held at once (the mapping test pairs each candidate's
    days with every other area of its feeder). Every test is an area's or a customer's;
    the mapping test pairs a customer with the other areas' balances, which are small
    and held whole: the rows found are the same whatever the ranges. A range is read
    as the areas between its first and last id, so rows sorted by area (the stage's kept
    days) are read a few row groups a range, not whole.

    ``prepared``: ``meter_daily`` is :func:`member_rows` (the stage's kept days), read as
    they are; ``days`` must then be given (the member rows do not hold every meter a
    balance needs).
    """
    windows = window_days(ends, diag)
    if not windows.height:
        return LOSS_DIAGNOSIS.conform(pl.LazyFrame(schema=LOSS_DIAGNOSIS.schema)).collect()
    span = windows.lazy()
    first, last = windows["date"].min(), windows["date"].max()
    if prepared and days is None:
        raise ValueError("diagnose_windows: prepared member rows need the window's area balances (days=)")
    rows = (meter_daily.lazy() if prepared else prepare(meter_daily)).filter(pl.col("date").is_between(first, last))
    if days is None:
        check_input(rows)
        balances = area_days(rows, rules).collect().lazy()
    else:
        balances = days.lazy()
    # every area-day and meter-day once per window holding it, in their order
    balances = balances.join(span, on="date", maintain_order="left")
    rows = rows.join(span, on="date", maintain_order="left")
    complete = balances.filter(pl.col("loss_rate").is_not_null())
    summary = window_summary(balances, diag).collect()
    resid = _residuals(complete, summary.lazy()).collect().lazy()

    members = rows.filter(pl.col("area_id").is_not_null() & pl.col("role").is_in(["area_master", "customer"]))
    found = pl.concat(
        [
            _findings(
                members
                if part is None
                else members.filter(pl.col("area_id").is_between(pl.lit(part[0]), pl.lit(part[-1]))),
                summary,
                resid,
                complete,
                diag,
            )
            for part in _area_ranges(members, rows_per_range)
        ]
    )
    summary_lf = summary.lazy()
    ranked = (
        found.sort(
            [*WINDOW, "area_id", "kind", "score", "_tie", "meter_id"],
            descending=[False, False, False, True, False, False],
        )
        .with_columns(rank=(pl.int_range(pl.len()).over(*WINDOW, "area_id", "kind") + 1).cast(pl.Int32))
        .filter((pl.col("kind") != "theft_candidate") | (pl.col("rank") <= diag.theft.max_per_area))
        .join(
            summary_lf.select(*WINDOW, "area_id", "area_status", "area_loss_rate").collect(),
            on=[*WINDOW, "area_id"],
            how="left",
        )
        .with_columns(
            date=pl.col("_end"),
            window_start=pl.col("_end") - pl.duration(days=diag.window_days - 1),
            rule=pl.col("kind").replace_strict(RULES, return_dtype=pl.String),
            severity=pl.lit("warning"),
            area_loss_rate=pl.col("area_loss_rate").round(6),
        )
    )
    return LOSS_DIAGNOSIS.conform(ranked).sort("date", "area_id", "kind", "rank").collect()
