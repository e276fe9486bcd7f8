"""Estimation and editing of the 96-point curves: the E and E of VEE.

Pure: lazy frames in, lazy frames out.

What gets replaced: a slot that was not collected (empty) or is negative (forward energy
cannot be negative). Nothing else is edited: spikes, flat lines and the like are reported
as findings and left as collected. Raw values stay in ``clean/curves``; every replaced
slot becomes one row of ``interval_edits`` (schemas.interval_edits) with its method and
reason, and :func:`apply_edits` lays those rows over the raw curve.

Methods, in order (docs/domain.md#estimation):

1. **linear interpolation** across a gap of at most ``max_interpolation_slots`` slots with
   an actual value on both sides within the same day (CPUC Direct Access VEE Rev 2.0 and
   the VDN MeteringCode 2006: up to 2 h; Ontario MDM/R's wholesale rule: 1 h). A gap that
   touches midnight has no actual value on one side and goes to step 2.
2. **like day**: the mean of the same slot over the ``like_days`` nearest earlier days of
   the same type (workday / Saturday / Sunday or public holiday, :func:`day_type`) within
   ``like_day_window_days``, using only the days on which that slot was actual (CPUC Rev
   2.0 like-day estimation).
3. **scaling**: when the day's register difference is actual, the estimated slots are
   multiplied by one factor so the day's slots add up to it (the German sum check between
   curve and register, VDN MeteringCode 2006 annex 7/8). The unscaled estimate is kept.

Never from an earlier estimate: interpolation reads only actual neighbours and like days
only raw actual values, so an estimate never feeds another. Where no method applies the
slot stays empty (quality ``missing``, method ``none``) and a finding says so.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable

import polars as pl

from ..schemas.curves import SLOTS
from .meter_daily import exact_sum

DAY_TYPES = ("workday", "saturday", "sunday")


def day_type(day: dt.date, holidays: Iterable[dt.date] = (), workdays: Iterable[dt.date] = ()) -> str:
    """workday, saturday or sunday; a public holiday counts as a Sunday and an adjusted
    workday (调休, a weekend day worked) as a workday.

    >>> day_type(dt.date(2026, 1, 3))
    'saturday'
    >>> day_type(dt.date(2026, 1, 1), holidays=[dt.date(2026, 1, 1)])
    'sunday'
    """
    if day in set(workdays):
        return "workday"
    if day in set(holidays):
        return "sunday"
    wd = day.weekday()
    return "workday" if wd < 5 else ("saturday" if wd == 5 else "sunday")


def like_dates(
    day: dt.date,
    *,
    like_days: int,
    window_days: int,
    holidays: Iterable[dt.date] = (),
    workdays: Iterable[dt.date] = (),
) -> list[dt.date]:
    """The ``like_days`` nearest earlier dates of the same type as ``day`` within the window.

    >>> like_dates(dt.date(2026, 1, 11), like_days=3, window_days=35)  # a Sunday
    [datetime.date(2026, 1, 4), datetime.date(2025, 12, 28), datetime.date(2025, 12, 21)]
    """
    holidays, workdays = set(holidays), set(workdays)
    kind = day_type(day, holidays, workdays)
    out: list[dt.date] = []
    for back in range(1, window_days + 1):
        d = day - dt.timedelta(days=back)
        if day_type(d, holidays, workdays) == kind:
            out.append(d)
            if len(out) == like_days:
                break
    return out


@functools.cache
def needs_edit() -> pl.Expr:
    """True for a curve row with a slot that is empty or negative (built once: an
    expression is immutable, and its 96 terms cost more to build than a small day's work)."""
    return pl.any_horizontal([pl.col(s).is_null() | (pl.col(s) < 0) for s in SLOTS])


def _long(wide: pl.LazyFrame, index: list[str]) -> pl.LazyFrame:
    return (
        wide.unpivot(index=index, on=list(SLOTS), variable_name="_slot", value_name="raw_kwh_meter")
        .with_columns(
            pl.col("_slot").str.slice(1).cast(pl.Int16).alias("slot"),
            pl.col("raw_kwh_meter").cast(pl.Float64),
        )
        .drop("_slot")
    )


@functools.cache
def _no_value() -> pl.Expr:
    """True for a curve row without any value (a meter whose curve did not arrive)."""
    return pl.sum_horizontal([pl.col(s).is_not_null() for s in SLOTS]) == 0


def _without_hopeless(rows: pl.DataFrame, like_curves: pl.LazyFrame, outage_slots: pl.LazyFrame | None) -> pl.DataFrame:
    """``rows`` less those that can get no estimate: without any value (nothing to
    interpolate from), without a slot inside an outage, and when no like day has any curve
    (a lake's first day). Their slots would all stay unestimated, and :func:`estimate`
    leaves such a row out; dropped here, before the 96 slot rows each, they cost nothing
    (the thousands of meters without a curve on a county day)."""
    empty = rows.select(_no_value()).to_series()
    if not empty.any() or like_curves.select(pl.len()).collect().item():
        return rows
    hopeless = rows.filter(empty).select("meter_id", "date")
    if outage_slots is not None:
        hopeless = hopeless.join(
            outage_slots.select("meter_id", "date").unique().collect(), on=["meter_id", "date"], how="anti"
        )
    return rows.join(hopeless, on=["meter_id", "date"], how="anti", maintain_order="left")


def estimate(
    curves: pl.LazyFrame,
    register_delta: pl.LazyFrame,
    like_curves: pl.LazyFrame,
    *,
    max_interpolation_slots: int,
    residual_tolerance_kwh_meter: float = 0.05,
    outage_slots: pl.LazyFrame | None = None,
    like_map: pl.DataFrame | None = None,
) -> pl.LazyFrame:
    """Estimate the empty and negative slots of the curve rows in ``curves``.

    ``curves``: wide rows ``meter_id, date, p1..p96`` to repair (rows with nothing to
    repair give no edits; a meter with no curve row at all is passed as a row of empty
    slots). ``register_delta``: ``meter_id, date, delta_kwh_meter`` — the day's actual
    forward register difference, meter side (empty or absent when the day is not actual).
    ``like_curves``: wide raw rows ``meter_id, date, p1..p96`` of the like days (see
    :func:`like_dates`; rows of other meters are ignored).

    Returns one row per replaced slot with the columns of schemas.interval_edits plus the
    day's working figures: ``actual_kwh_meter`` (Σ actual slots), ``estimated_kwh_meter``
    (Σ unscaled estimates), ``delta_kwh_meter``, ``unestimated_slots`` and ``scalable``
    (False when the day has an actual register difference the estimates cannot be
    scaled to).

    ``outage_slots``: ``meter_id, date, slot`` wholly inside a supply interruption (from
    the outages stage). Such a slot had no supply: an empty or negative one is zero
    (method ``outage_zero``), never interpolated or taken from like days, and it counts
    as an actual zero for its neighbours' interpolation.

    ``like_map``: ``date, _like_date``, which like days each date of ``curves`` reads,
    when ``curves`` holds several dates (without it, every row reads all of
    ``like_curves``).
    """
    # long form, one row per slot, ordered by (row, slot). Each curve row is a run of 96
    # rows, so the previous/next actual slot is a plain forward/backward fill over the
    # whole column, kept only when it comes from the same row (cheaper than a window per
    # meter-day).
    # the row number must mean the same row in every branch below: number a materialised
    # frame (the input is the few rows needing repair)
    key = ["meter_id", "date"]
    rows = (
        _without_hopeless(curves.select(*key, *SLOTS).collect(), like_curves, outage_slots)
        .with_row_index("_row")
        .lazy()
    )
    long = _long(rows, ["_row", "meter_id", "date"]).sort("_row", "slot")
    if outage_slots is None:
        long = long.with_columns(pl.lit(False).alias("_outage"))
    else:
        off = (
            outage_slots.select(*key, pl.col("slot").cast(pl.Int16))
            .unique()
            .with_columns(pl.lit(True).alias("_outage"))
        )
        long = long.join(off, on=[*key, "slot"], how="left", maintain_order="left").with_columns(
            pl.col("_outage").fill_null(False)
        )
    read = (pl.col("raw_kwh_meter") >= 0).fill_null(False)
    valid = read | pl.col("_outage")
    actual = pl.when(read).then(pl.col("raw_kwh_meter")).when(pl.col("_outage")).then(0.0)
    row_if_valid = pl.when(valid).then(pl.col("_row"))
    slot_if_valid = pl.when(valid).then(pl.col("slot"))
    same_prev = row_if_valid.forward_fill() == pl.col("_row")
    same_next = row_if_valid.backward_fill() == pl.col("_row")
    long = long.with_columns(
        valid.alias("_valid"),
        pl.when(same_prev).then(slot_if_valid.forward_fill()).alias("_prev_slot"),
        pl.when(same_prev).then(actual.forward_fill()).alias("_prev"),
        pl.when(same_next).then(slot_if_valid.backward_fill()).alias("_next_slot"),
        pl.when(same_next).then(actual.backward_fill()).alias("_next"),
        exact_sum(actual).over("_row").alias("actual_kwh_meter"),
        pl.col("raw_kwh_meter").is_not_null().sum().over("_row").alias("_collected"),
    )
    edits = long.filter(~read)
    span = (pl.col("_next_slot") - pl.col("_prev_slot")).cast(pl.Float64)
    interpolated = pl.when(
        pl.col("_prev_slot").is_not_null()
        & pl.col("_next_slot").is_not_null()
        & ((pl.col("_next_slot") - pl.col("_prev_slot") - 1) <= max_interpolation_slots)
    ).then(pl.col("_prev") + (pl.col("_next") - pl.col("_prev")) * (pl.col("slot") - pl.col("_prev_slot")) / span)
    # materialised once: both the like-day lookup and the result read it
    interpolated_or_outage = pl.when(pl.col("_outage")).then(0.0).otherwise(interpolated)
    edits = edits.with_columns(interpolated_or_outage.alias("_interp")).collect().lazy()

    # like days: only for the meters that still need them, only actual values. The meters
    # are a literal set so the filter runs while the like days' files are decoded.
    need = edits.filter(pl.col("_interp").is_null()).select("meter_id", "date").unique().collect()
    like_wide = like_curves.select("meter_id", pl.col("date").alias("_like_date"), *SLOTS).filter(
        pl.col("meter_id").is_in(need["meter_id"].unique().implode())
    )
    by = ["meter_id", "slot"]
    if like_map is None:
        like_long = _long(like_wide, ["meter_id", "_like_date"])
    else:
        # each meter-day reads its own like days, and only a meter-day that needs them: a
        # meter estimated on one date of a month does not unfold its like days for every date
        pairs = need.join(like_map.select("date", "_like_date"), on="date").lazy()
        like_long = _long(like_wide.join(pairs, on=["meter_id", "_like_date"]), ["meter_id", "_like_date", "date"])
        by = ["meter_id", "date", "slot"]
    like_long = like_long.filter(pl.col("raw_kwh_meter") >= 0)
    like = like_long.group_by(by).agg((exact_sum(pl.col("raw_kwh_meter")) / pl.len()).alias("_like"))
    edits = edits.join(like, on=by, how="left")
    est = pl.coalesce("_interp", "_like")
    edits = edits.with_columns(
        est.alias("unscaled_kwh_meter"),
        pl.when(pl.col("_outage"))
        .then(pl.lit("outage_zero"))
        .when(pl.col("_interp").is_not_null())
        .then(pl.lit("linear_interpolation"))
        .when(pl.col("_like").is_not_null())
        .then(pl.lit("like_day"))
        .otherwise(pl.lit("none"))
        .alias("method"),
        pl.when(pl.col("raw_kwh_meter").is_null())
        .then(pl.lit("missing"))
        .otherwise(pl.lit("negative"))
        .alias("reason"),
    ).with_columns(
        exact_sum(pl.col("unscaled_kwh_meter")).over("_row").alias("estimated_kwh_meter"),
        pl.col("unscaled_kwh_meter").is_null().sum().over("_row").cast(pl.Int32).alias("unestimated_slots"),
    )

    # scaling to the day's register difference
    deltas = register_delta.select(*key, pl.col("delta_kwh_meter").cast(pl.Float64)).unique(subset=key, keep="any")
    edits = edits.join(deltas, on=key, how="left")
    residual = pl.col("delta_kwh_meter") - pl.col("actual_kwh_meter")
    tol = residual_tolerance_kwh_meter
    est_sum = pl.col("estimated_kwh_meter")
    scale = (
        pl.when(pl.col("delta_kwh_meter").is_null() | (pl.col("unestimated_slots") > 0))
        .then(None)
        .when(residual < -tol)
        .then(None)
        .when(est_sum > 0)
        .then(residual.clip(lower_bound=0.0) / est_sum)
        .when(residual <= tol)
        .then(1.0)
        .otherwise(None)
    )
    scalable = pl.col("delta_kwh_meter").is_null() | (pl.col("unestimated_slots") > 0) | pl.col("scale").is_not_null()
    return (
        # a curve that never arrived and got no estimate at all adds nothing to the finding
        # that says so (vee.completeness.curve_missing): its 96 empty rows are left out
        edits.filter((pl.col("_collected") > 0) | (pl.col("unestimated_slots") < 96))
        # rounded far below the contract's 0.01 kWh, so that a float's last bit (which can
        # differ with the engine's summation order) never changes a rerun's files
        .with_columns(scale.round(12).alias("scale"))
        .with_columns(
            (pl.col("unscaled_kwh_meter") * pl.col("scale").fill_null(1.0)).round(9).alias("kwh_meter"),
            pl.when(pl.col("unscaled_kwh_meter").is_null())
            .then(pl.lit("missing"))
            .otherwise(pl.lit("estimated"))
            .alias("quality"),
            scalable.alias("scalable"),
        )
        .select(
            "date",
            "meter_id",
            "slot",
            "raw_kwh_meter",
            "kwh_meter",
            "quality",
            "method",
            "reason",
            "unscaled_kwh_meter",
            "scale",
            "actual_kwh_meter",
            "estimated_kwh_meter",
            "delta_kwh_meter",
            "unestimated_slots",
            "scalable",
        )
    )


def edit_summary(edits: pl.LazyFrame) -> pl.LazyFrame:
    """One row per edited meter-day: slots replaced, left missing, the validated sum.

    ``validated_kwh_meter`` (Σ actual + Σ final estimates) is empty when a slot stays
    missing. Columns: ``meter_id, date, edited_slots, unestimated_slots,
    actual_kwh_meter, estimated_kwh_meter, delta_kwh_meter, scale, scalable,
    validated_kwh_meter``.
    """
    return edits.group_by("meter_id", "date").agg(
        pl.len().cast(pl.Int32).alias("edited_slots"),
        pl.col("unestimated_slots").first(),
        pl.col("actual_kwh_meter").first(),
        pl.col("estimated_kwh_meter").first(),
        pl.col("delta_kwh_meter").first(),
        pl.col("scale").first(),
        pl.col("scalable").first(),
        pl.when(pl.col("unestimated_slots").first() == 0)
        .then(pl.col("actual_kwh_meter").first().fill_null(0.0) + exact_sum(pl.col("kwh_meter")))
        .alias("validated_kwh_meter"),
    )


def apply_edits(curves: pl.LazyFrame, edits: pl.LazyFrame) -> pl.LazyFrame:
    """The validated curves: raw ``curves`` (wide, ``meter_id, date, p1..p96``) with ``edits``
    (schemas.interval_edits rows) laid over them.

    A slot with an edit takes the edit's ``kwh_meter`` (empty where no method applied);
    every other slot keeps its raw value. Meter-days with edits but no raw row (a curve
    that never arrived) appear too. Adds ``edited_slots`` (0 when untouched).
    """
    wide_edits = edits.select("meter_id", "date", "slot", "kwh_meter")
    flags = {s: (pl.col("slot") == i).any().alias(f"_e{i}") for i, s in enumerate(SLOTS, start=1)}
    values = {
        s: pl.col("kwh_meter").filter(pl.col("slot") == i).first().alias(f"_v{i}") for i, s in enumerate(SLOTS, start=1)
    }
    per_day = wide_edits.group_by("meter_id", "date").agg(
        *flags.values(), *values.values(), pl.len().cast(pl.Int32).alias("edited_slots")
    )
    raw = curves.select("meter_id", "date", *SLOTS)
    j = raw.join(per_day, on=["meter_id", "date"], how="full", coalesce=True)
    return j.select(
        "meter_id",
        "date",
        *(
            pl.when(pl.col(f"_e{i}").fill_null(False))
            .then(pl.col(f"_v{i}"))
            .otherwise(pl.col(s))
            .cast(pl.Float64)
            .alias(s)
            for i, s in enumerate(SLOTS, start=1)
        ),
        pl.col("edited_slots").fill_null(0),
    )
