"""Diagnosis of abnormal area loss: who to inspect first (线损诊断).

Pure functions of the ``meter_daily`` mart over a window of days; they never open a
file. :func:`diagnose` returns ``loss_diagnosis`` rows (see
``schemas/loss_diagnosis.py`` for the kinds, scores and ranks).

Every statistic uses the area's *complete* days of the window: days on which every
master and customer value is present (actual or estimated) and supply is positive,
i.e. days with a ``loss_rate``. Days that are uncomputable only because collection
fell below the target still count: an estimated value is still the best figure there
is, and a window with 97% collection every day must still be diagnosable.

The window of an area is *abnormal* (CONTRACT §3 thresholds of the area's class) when
its summed rate over the complete days (Σ loss / Σ supply) is high or negative, or
when at least ``min_abnormal_days`` complete days are high or negative, or when the
mean daily rate of the window's second half exceeds the first half's by ``rise_min``
or more (a theft that starts mid-window in a 4% area may never cross 10%).

* theft candidates are sought in areas whose loss is high or rising (theft raises
  loss; a customer in a negative area who "falls as loss rises" is a mapping case);
* multiplier suspects in areas whose window rate is high or negative;
* mapping suspects among the customers of every area on the feeder of an area whose
  loss is high or rising (the area that supplies a mis-filed customer carries its kWh
  as loss).

Evidence values are rounded (kWh to 1e-3, rates and correlations to 1e-6) so the file
is identical across reruns.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from meterlake.schemas.loss_diagnosis import LOSS_DIAGNOSIS, RULES
from meterlake.transforms.loss import LossRules, area_days, check_input, prepare

#: standard CT rated primary currents in A (GB/T 20840.2 / IEC 61869-2 series and the
#: ratings common on Chinese distribution transformers and 10 kV metering); with a 5 A
#: secondary the CT's multiplier is primary / 5
CT_PRIMARY_A: tuple[float, ...] = (
    5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 250, 300, 400, 500, 600, 750, 800, 1000,
    1200, 1500, 2000, 2500, 3000, 4000,
)
CT_SECONDARY_A = 5.0
#: PT ratios: none (0.4 kV), 10 kV/100 V, 35 kV/100 V
PT_RATIOS: tuple[float, ...] = (1, 100, 350)


@dataclass(frozen=True)
class DiagnosisRules:
    """Settings of :func:`diagnose` (shipped defaults in config/loss.toml [diagnosis])."""

    window_days: int = 30
    #: fewest complete days a correlation or a window status may rest on
    min_days: int = 10
    min_abnormal_days: int = 3
    rise_min: float = 0.01
    theft_min_score: float = 0.4
    theft_max_per_area: int = 20
    ct_primary_a: tuple[float, ...] = CT_PRIMARY_A
    ct_secondary_a: float = CT_SECONDARY_A
    pt_ratios: tuple[float, ...] = PT_RATIOS
    multiplier_neighbours: int = 2
    large_customer_share: float = 0.05
    large_customers_per_area: int = 3
    multiplier_min_normal_share: float = 0.8
    mapping_min_corr: float = 0.6
    mapping_min_margin: float = 0.5
    mapping_slope_tolerance: float = 0.5

    def __post_init__(self) -> None:
        if self.window_days < 2:
            raise ValueError(f"window_days: expected at least 2 days, found {self.window_days}")
        if self.min_days < 3:
            raise ValueError(f"min_days: expected at least 3 (a correlation needs them), found {self.min_days}")
        if self.multiplier_neighbours < 1:
            raise ValueError(f"multiplier_neighbours: expected at least 1, found {self.multiplier_neighbours}")


# -- multipliers ----------------------------------------------------------------------


def neighbour_multipliers(multipliers: Iterable[float], diag: DiagnosisRules = DiagnosisRules()) -> pl.DataFrame:
    """Standard multipliers within ``multiplier_neighbours`` steps of each given one.

    A multiplier m is read as CT x PT for every PT ratio p that makes m/p a standard CT
    multiplier (for a non-standard m: every p that puts m/p inside the CT series); the
    candidates are the CT multipliers up to k steps below and above m/p, times p. Loops
    over the handful of distinct multipliers, not over rows.

    >>> neighbour_multipliers([30.0], DiagnosisRules(multiplier_neighbours=1)).to_dicts()
    [{'multiplier': 30.0, 'candidate': 20.0}, {'multiplier': 30.0, 'candidate': 40.0}]
    """
    cts = sorted({float(c) / diag.ct_secondary_a for c in diag.ct_primary_a})
    k = diag.multiplier_neighbours

    def standard(ct: float) -> bool:
        return any(math.isclose(ct, c, rel_tol=1e-9) for c in cts)

    pairs: set[tuple[float, float]] = set()
    for m in {float(x) for x in multipliers if x is not None and math.isfinite(x) and x > 0}:
        # the readings of m as a standard CT x PT; a non-standard m is read with every PT
        # that puts m/PT inside the CT series
        pts = [p for p in diag.pt_ratios if standard(m / p)] or [
            p for p in diag.pt_ratios if cts[0] <= m / p <= cts[-1]
        ]
        for p in pts:
            ct = m / p
            lo = bisect.bisect_left(cts, ct - 1e-9)
            hi = lo + 1 if standard(ct) else lo
            for c in cts[max(0, lo - k) : lo] + cts[hi : hi + k]:
                pairs.add((m, c * p))
    return pl.DataFrame(
        sorted(pairs), schema={"multiplier": pl.Float64, "candidate": pl.Float64}, orient="row"
    )


# -- window summary ---------------------------------------------------------------------


def window_summary(days: pl.LazyFrame, mid: dt.date, diag: DiagnosisRules) -> pl.LazyFrame:
    """One row per area: the window's rate and status and whether it is abnormal."""
    ok = pl.col("loss_rate").is_not_null()
    rate = pl.col("loss_rate").filter(ok)
    high = pl.col("_high_above").first()
    neg = pl.col("_negative_below").first()
    s = (
        days.group_by("area_id")
        .agg(
            feeder_id=pl.col("feeder_id").sort_by("date").last(),
            _days=ok.sum().cast(pl.Int32),
            _supply=pl.col("supply_kwh").filter(ok).sum(),
            _loss=pl.col("loss_kwh").filter(ok).sum(),
            _days_high=(rate > high).sum(),
            _days_negative=(rate < neg).sum(),
            _rate_first=pl.col("loss_rate").filter(ok & (pl.col("date") < mid)).mean(),
            _rate_second=pl.col("loss_rate").filter(ok & (pl.col("date") >= mid)).mean(),
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
    return s.with_columns(
        _high_or_rising=enough
        & (pl.col("area_status") != "negative")
        & (
            (pl.col("area_status") == "high")
            | (pl.col("_days_high") >= diag.min_abnormal_days)
            | (pl.col("_rise").fill_null(0.0) >= diag.rise_min)
        ),
        _off_band=pl.col("area_status").is_in(["high", "negative"]),
    )


# -- the three kinds ------------------------------------------------------------------


def _theft(cust: pl.LazyFrame, complete: pl.LazyFrame, summary: pl.LazyFrame, mid: dt.date, diag: DiagnosisRules) -> pl.LazyFrame:
    # 反窃电: correlate the customer's daily kWh with the area's daily loss rate; a
    # theft that begins in the window lowers the one as it raises the other. The
    # rate, not the kWh, is correlated so that weather moving every load together
    # (and the technical loss with it) does not read as theft. The correlation is
    # then weighted by how well the sizes match: energy taken off the meter reappears
    # as loss, so the slope of the area's loss kWh on the customer's kWh is near -1
    # for the thief and far from it for a customer who merely follows the same trend.
    first = pl.col("date") < mid
    scope = summary.filter(pl.col("_high_or_rising")).select("area_id")
    slope = pl.col("_slope")
    match = pl.when(slope < 0).then(pl.min_horizontal(-slope, -1.0 / slope)).otherwise(0.0)
    return (
        cust.join(scope, on="area_id", how="semi")
        .join(complete.select("date", "area_id", "loss_rate", "loss_kwh"), on=["date", "area_id"])
        .group_by("area_id", "meter_id")
        .agg(
            customer_id=pl.col("customer_id").sort_by("date").last(),
            days=pl.len().cast(pl.Int32),
            _corr=pl.corr("kwh", "loss_rate"),
            _slope=pl.cov("kwh", "loss_kwh") / pl.col("kwh").var(),
            _kwh_first=pl.col("kwh").filter(first).mean(),
            _kwh_second=pl.col("kwh").filter(~first).mean(),
            _rate_first=pl.col("loss_rate").filter(first).mean(),
            _rate_second=pl.col("loss_rate").filter(~first).mean(),
        )
        .filter((pl.col("days") >= diag.min_days) & pl.col("_corr").is_finite() & slope.is_finite())
        .with_columns(_match=match)
        .with_columns(score=((-pl.col("_corr")).clip(0.0, 1.0) * pl.col("_match")).round(6))
        .filter(pl.col("score") >= diag.theft_min_score)
        .with_columns(
            kind=pl.lit("theft_candidate"),
            role=pl.lit("customer"),
            other_area_id=pl.lit(None, pl.String),
            evidence=pl.struct(
                corr_kwh_loss_rate=pl.col("_corr").round(6),
                slope_loss_kwh_per_kwh=pl.col("_slope").round(6),
                kwh_mean_first_half=pl.col("_kwh_first").round(3),
                kwh_mean_second_half=pl.col("_kwh_second").round(3),
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
    # (multiplier > 1; a direct-connected meter has no ratio to get wrong).
    scope = summary.filter(pl.col("_off_band")).select("area_id", "_negative_below", "_high_above")
    cdays = complete.join(scope, on="area_id").select(
        "date", "area_id", "supply_kwh", "sales_kwh", "_negative_below", "_high_above"
    )
    vals = members.join(cdays.select("date", "area_id"), on=["date", "area_id"], how="semi")
    per_meter = (
        vals.group_by("area_id", "meter_id")
        .agg(
            role=pl.col("role").sort_by("date").last(),
            customer_id=pl.col("customer_id").sort_by("date").last(),
            multiplier=pl.col("multiplier").sort_by("date").last(),
            _kwh=pl.col("_kwh").sum().round(6),
        )
        .join(
            cdays.group_by("area_id").agg(_sales=pl.col("sales_kwh").sum()), on="area_id"
        )
        .with_columns(
            _share=pl.when(pl.col("_sales") > 0).then(pl.col("_kwh") / pl.col("_sales")),
            _size_rank=pl.col("_kwh").rank("ordinal", descending=True).over("area_id", pl.col("role")),
        )
    )
    suspects = per_meter.filter(
        (pl.col("role") == "area_master")
        | (
            (pl.col("role") == "customer")
            & (pl.col("multiplier") > 1)
            & (pl.col("_share") >= diag.large_customer_share)
            & (pl.col("_size_rank") <= diag.large_customers_per_area)
        )
    ).select("area_id", "meter_id", "role", "customer_id", "multiplier")
    mults = suspects.select("multiplier").unique().collect()["multiplier"].to_list()
    cands = suspects.join(neighbour_multipliers(mults, diag).lazy(), on="multiplier")
    daily_vals = vals.select(
        "date", "area_id", "meter_id", pl.col("multiplier").alias("_m_day"), pl.col("_kwh").alias("_k"), pl.col("_rev").alias("_r")
    )
    is_master = pl.col("role") == "area_master"
    f = pl.when(pl.col("_m_day") == pl.col("multiplier")).then(pl.col("candidate") / pl.col("multiplier")).otherwise(1.0)
    k = pl.col("_k").fill_null(0.0)
    r = pl.col("_r").fill_null(0.0)
    grid = (
        cands.join(cdays, on="area_id")
        .join(daily_vals, on=["date", "area_id", "meter_id"], how="left")
        .with_columns(
            _supply_after=pl.col("supply_kwh")
            + pl.when(is_master).then((f - 1) * k).otherwise((f - 1) * r),
            _sales_after=pl.col("sales_kwh") + pl.when(is_master).then(0.0).otherwise((f - 1) * k),
        )
        .with_columns(
            _rate_before=pl.col("supply_kwh").pipe(lambda s: (s - pl.col("sales_kwh")) / s),
            _rate_after=pl.when(pl.col("_supply_after") > 0).then(
                (pl.col("_supply_after") - pl.col("_sales_after")) / pl.col("_supply_after")
            ),
        )
    )

    def normal(rate: str) -> pl.Expr:
        return ((pl.col(rate) >= pl.col("_negative_below")) & (pl.col(rate) <= pl.col("_high_above"))).fill_null(False)

    out = (
        grid.group_by("area_id", "meter_id", "candidate")
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
            & (pl.col("_normal_after") >= diag.multiplier_min_normal_share)
            & (pl.col("score") > 0)
        )
        # the best candidate of each meter: highest score, then the rate nearest the
        # middle of the normal band
        .with_columns(
            _tie=(pl.col("_window_after") - (pl.col("_negative_below") + pl.col("_high_above")) / 2).abs().round(9)
        )
        .sort("area_id", "meter_id", pl.col("score"), "_tie", "candidate", descending=[False, False, True, False, False])
        .group_by("area_id", "meter_id", maintain_order=True)
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


def _mapping(cust: pl.LazyFrame, complete: pl.LazyFrame, summary: pl.LazyFrame, diag: DiagnosisRules) -> pl.LazyFrame:
    # 户变关系: a customer physically fed from area B but filed under A adds its kWh to
    # B's loss (B's master measures it, B's sales do not hold it) and takes it from
    # A's, so its daily kWh correlates positively with B's daily loss kWh, with a
    # slope near 1, and negatively with A's.
    targets = (
        complete.join(summary.filter(pl.col("_high_or_rising")).select("area_id"), on="area_id", how="semi")
        .select(
            "date",
            pl.col("feeder_id"),
            pl.col("area_id").alias("other_area_id"),
            pl.col("loss_kwh").alias("_other_loss"),
            pl.col("supply_kwh").alias("_other_supply"),
        )
        .filter(pl.col("feeder_id").is_not_null())
    )
    pairs = (
        cust.filter(pl.col("feeder_id").is_not_null())
        .join(targets, on=["feeder_id", "date"])
        .filter(pl.col("area_id") != pl.col("other_area_id"))
        .group_by("area_id", "meter_id", "other_area_id")
        .agg(
            customer_id=pl.col("customer_id").sort_by("date").last(),
            days=pl.len().cast(pl.Int32),
            _corr_other=pl.corr("kwh", "_other_loss"),
            _slope=pl.cov("kwh", "_other_loss") / pl.col("kwh").var(),
            _kwh=pl.col("kwh").sum(),
            _other_loss=pl.col("_other_loss").sum(),
            _other_supply=pl.col("_other_supply").sum(),
        )
        .filter(
            (pl.col("days") >= diag.min_days)
            & pl.col("_corr_other").is_finite()
            & (pl.col("_corr_other") >= diag.mapping_min_corr)
            & ((pl.col("_slope") - 1.0).abs() <= diag.mapping_slope_tolerance)
        )
    )
    own = (
        cust.join(complete.select("date", "area_id", "loss_kwh", "supply_kwh"), on=["date", "area_id"])
        .group_by("area_id", "meter_id")
        .agg(
            _corr_own=pl.corr("kwh", "loss_kwh"),
            _own_kwh=pl.col("kwh").sum(),
            _own_loss=pl.col("loss_kwh").sum(),
            _own_supply=pl.col("supply_kwh").sum(),
        )
        .with_columns(_corr_own=pl.when(pl.col("_corr_own").is_finite()).then(pl.col("_corr_own")).otherwise(0.0))
    )
    out = (
        pairs.join(own, on=["area_id", "meter_id"], how="left")
        .with_columns(_corr_own=pl.col("_corr_own").fill_null(0.0))
        .with_columns(_margin=pl.col("_corr_other") - pl.col("_corr_own"))
        .filter(pl.col("_margin") >= diag.mapping_min_margin)
        .with_columns(score=(pl.col("_margin") / 2).clip(0.0, 1.0).round(6))
        .sort("area_id", "meter_id", "score", "other_area_id", descending=[False, False, True, False])
        .group_by("area_id", "meter_id", maintain_order=True)
        .first()
    )
    rate = lambda loss, supply: pl.when(supply > 0).then(loss / supply).round(6)  # noqa: E731
    return out.with_columns(
        kind=pl.lit("mapping_suspect"),
        role=pl.lit("customer"),
        evidence=pl.struct(
            corr_kwh_other_area_loss=pl.col("_corr_other").round(6),
            corr_kwh_own_area_loss=pl.col("_corr_own").round(6),
            slope_other_area_loss_per_kwh=pl.col("_slope").round(6),
            customer_kwh=pl.col("_kwh").round(3),
            other_area_loss_rate=rate(pl.col("_other_loss"), pl.col("_other_supply")),
            other_area_loss_rate_if_moved=rate(pl.col("_other_loss") - pl.col("_kwh"), pl.col("_other_supply")),
            own_area_loss_rate=rate(pl.col("_own_loss"), pl.col("_own_supply")),
            own_area_loss_rate_if_moved=rate(pl.col("_own_loss") + pl.col("_own_kwh"), pl.col("_own_supply")),
        ).struct.json_encode(),
        _tie=pl.lit(0.0),
    )


# -- entry point ----------------------------------------------------------------------

_OUT = ("area_id", "kind", "meter_id", "customer_id", "role", "other_area_id", "score", "days", "evidence")


def diagnose(
    meter_daily: pl.DataFrame | pl.LazyFrame,
    window_end: dt.date,
    rules: LossRules = LossRules(),
    diag: DiagnosisRules = DiagnosisRules(),
) -> pl.DataFrame:
    """loss_diagnosis rows for the ``window_days`` days ending at ``window_end``.

    ``meter_daily`` may hold more days; those outside the window are ignored.
    """
    start = window_end - dt.timedelta(days=diag.window_days - 1)
    mid = start + dt.timedelta(days=diag.window_days // 2)
    rows = prepare(meter_daily).filter(pl.col("date").is_between(start, window_end))
    check_input(rows)
    rows = rows.collect().lazy()
    days = area_days(rows, rules).collect().lazy()
    complete = days.filter(pl.col("loss_rate").is_not_null())
    summary = window_summary(days, mid, diag).collect().lazy()
    members = rows.filter(
        pl.col("area_id").is_not_null() & pl.col("role").is_in(["area_master", "customer"])
    )
    cust = members.filter((pl.col("role") == "customer") & pl.col("_present")).select(
        "date", "area_id", "feeder_id", "meter_id", "customer_id", pl.col("_kwh").alias("kwh")
    )
    found = pl.concat(
        [
            _theft(cust, complete, summary, mid, diag).select(*_OUT, "_tie"),
            _multiplier(members, complete, summary, diag).select(*_OUT, "_tie"),
            _mapping(cust, complete, summary, diag).select(*_OUT, "_tie"),
        ]
    ).collect()
    ranked = (
        found.sort(["area_id", "kind", "score", "_tie", "meter_id"], descending=[False, False, True, False, False])
        .with_columns(rank=(pl.int_range(pl.len()).over("area_id", "kind") + 1).cast(pl.Int32))
        .filter((pl.col("kind") != "theft_candidate") | (pl.col("rank") <= diag.theft_max_per_area))
        .join(summary.select("area_id", "area_status", "area_loss_rate").collect(), on="area_id", how="left")
        .with_columns(
            date=pl.lit(window_end),
            window_start=pl.lit(start),
            rule=pl.col("kind").replace_strict(RULES, return_dtype=pl.String),
            severity=pl.lit("warning"),
            area_loss_rate=pl.col("area_loss_rate").round(6),
        )
    )
    return LOSS_DIAGNOSIS.conform(ranked).sort("area_id", "kind", "rank").collect()
