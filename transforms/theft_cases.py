"""Theft cases (窃电案件) from the area energy balance: stolen kWh, back charge and penalty. Pure.

The inputs are small (one row per balance theft candidate) and the stage hands them in:
the candidates of one detection date (``loss_diagnosis`` rows of rule
``loss.diagnosis.theft_candidate.balance``), each candidate meter's tariff and recorded
TOU energy in the window (``meter_daily``), the tariff prices of the date
(:func:`meterlake.transforms.tariffs.price_calendar`) and the inspection outcomes.

Amounts (供电营业规则 art. 102): back charge = stolen kWh x price (追补电费), penalty =
``penalty_multiple`` x back charge (违约使用电费, 3 by the rules), both rounded to 0.01 yuan.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import polars as pl

from meterlake.schemas.loss_diagnosis import BALANCE_RULES
from meterlake.schemas.theft_cases import THEFT_CASES

TOU = ("sharp", "peak", "flat", "valley")


def _words(evidence: pl.Expr) -> pl.Expr:
    """The balance evidence in words (for the inspection order)."""

    def f(path: str) -> pl.Expr:
        return evidence.str.json_path_match(f"$.{path}").fill_null("?")

    share = (evidence.str.json_path_match("$.unrecorded_share").cast(pl.Float64) * 100).round(0).cast(pl.Int64)
    return pl.format(
        "the area's interval energy balance leaves {} kWh/day unrecorded ({}% of the use; coefficient {} "
        "against the area's {}, t = {}; {} slots and {} daily rows)",
        f("unrecorded_kwh_per_day"),
        share.cast(pl.String).fill_null("?"),
        f("coefficient"),
        f("area_technical_coefficient"),
        f("t_stat"),
        f("slot_rows"),
        f("daily_rows"),
    )


#: what the cases of several detection dates are keyed by besides the meter
DAY = "_detection_date"


def theft_cases(
    diagnosis: pl.DataFrame,
    meter_days: pl.DataFrame,
    prices: pl.DataFrame,
    inspections: pl.DataFrame,
    day: dt.date,
    min_score: float,
    penalty_multiple: float,
    observed: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The ``theft_cases`` rows of detection date ``day``.

    ``diagnosis``: loss_diagnosis rows (any dates; those of ``day`` with the balance's
    theft rule are used). ``meter_days``: meter_daily rows of the window (meter_id,
    date, tariff_id, kwh, kwh_sharp..kwh_valley). ``prices``: price_calendar rows.
    ``inspections``: meter_id, inspection_date, outcome (may be empty). ``observed``:
    cases the area master found as observer of shape thefts
    (:func:`meterlake.transforms.observer.cases`), added where the balance names none.
    """
    return theft_cases_at(
        diagnosis, meter_days, prices, inspections, [day], min_score, penalty_multiple, {day: observed}
    )[day]


def theft_cases_at(
    diagnosis: pl.DataFrame,
    meter_days: pl.DataFrame,
    prices: pl.DataFrame,
    inspections: pl.DataFrame,
    dates: Sequence[dt.date],
    min_score: float,
    penalty_multiple: float,
    observed: Mapping[dt.date, pl.DataFrame | None] | None = None,
) -> dict[dt.date, pl.DataFrame]:
    """:func:`theft_cases` of each of ``dates``, in one pass: date -> its rows.

    ``meter_days`` must hold every case's window (``window_start`` .. its date) and
    ``prices`` every date of ``dates``; ``observed``: date -> that date's observer cases
    (or None). Each date's cases are keyed by the date, and every step that groups by
    meter groups by (date, meter): the same rows as one call per date.
    """
    dates = sorted(set(dates))
    cands = diagnosis.filter(
        pl.col("date").is_in(dates)
        & (pl.col("kind") == "theft_candidate")
        & (pl.col("rule") == BALANCE_RULES["theft_candidate"])
        & (pl.col("score") >= min_score)
    )
    ev = pl.col("evidence")
    cases = cands.select(
        "date",
        "window_start",
        "area_id",
        "meter_id",
        "customer_id",
        "days",
        "score",
        "evidence",
        recorded_kwh=ev.str.json_path_match("$.recorded_kwh").cast(pl.Float64),
        stolen_kwh=ev.str.json_path_match("$.unrecorded_kwh").cast(pl.Float64),
        evidence_text=_words(ev),
    ).with_columns(pl.col("date").alias(DAY))
    seen_cases = [
        o.select(cases.columns[:-1]).cast(cases.drop(DAY).schema).with_columns(pl.lit(d).alias(DAY))
        for d in dates
        if (o := (observed or {}).get(d)) is not None and o.height
    ]
    if seen_cases:  # the balance's case of a meter first, the observer's where it names none
        cases = pl.concat([cases, *seen_cases]).unique([DAY, "meter_id"], keep="first", maintain_order=True)
    window = meter_days.join(cases.select(DAY, "meter_id", "window_start"), on="meter_id").filter(
        pl.col("date").is_between(pl.col("window_start"), pl.col(DAY))
    )
    mix = window.group_by(DAY, "meter_id").agg(
        pl.col("tariff_id").sort_by("date").last(),
        *(pl.col(f"kwh_{r}").fill_null(0.0).sum().alias(f"_{r}") for r in TOU),
    )
    price_day = prices.filter(pl.col("date").is_in(dates)).rename({"date": DAY})
    tou_kwh = pl.sum_horizontal(*(pl.col(f"_{r}") for r in TOU))
    weighted = pl.sum_horizontal(*(pl.col(f"_{r}") * pl.col(f"price_{r}_yuan_per_kwh") for r in TOU))
    priced = mix.join(price_day, on=[DAY, "tariff_id"], how="left").select(
        DAY,
        "meter_id",
        "tariff_id",
        price_yuan_per_kwh=pl.when(tou_kwh > 0)
        .then(weighted / tou_kwh)
        .otherwise(pl.col("price_flat_yuan_per_kwh"))
        .round(6),
    )
    seen = (
        inspections.select("meter_id", "inspection_date", "outcome")
        .join(cases.select(DAY, "meter_id", "window_start"), on="meter_id")
        .filter(pl.col("inspection_date") >= pl.col("window_start"))
        .sort(DAY, "meter_id", "inspection_date")
        .group_by(DAY, "meter_id", maintain_order=True)
        .last()
        .select(DAY, "meter_id", "inspection_date", inspection_outcome=pl.col("outcome"))
    )
    out = (
        cases.join(priced, on=[DAY, "meter_id"], how="left")
        .join(seen, on=[DAY, "meter_id"], how="left")
        .with_columns(
            stolen_kwh=pl.col("stolen_kwh").round(3),
            recorded_kwh=pl.col("recorded_kwh").round(3),
            unrecorded_share=(pl.col("stolen_kwh") / (pl.col("stolen_kwh") + pl.col("recorded_kwh"))).round(6),
            back_charge_yuan=(pl.col("stolen_kwh").round(3) * pl.col("price_yuan_per_kwh")).round(2),
            penalty_multiple=pl.lit(float(penalty_multiple)),
        )
        .with_columns(penalty_yuan=(pl.col("back_charge_yuan") * pl.col("penalty_multiple")).round(2))
        .sort([DAY, "area_id", "stolen_kwh", "meter_id"], descending=[False, False, True, False])
        .with_columns(rank=(pl.int_range(pl.len()).over(DAY, "area_id") + 1).cast(pl.Int32))
    )
    # THEFT_CASES.conform, keeping the date key
    conformed = out.select(DAY, *(pl.col(c.name).cast(c.dtype) for c in THEFT_CASES.columns))
    rows = conformed.sort(DAY, "meter_id")
    found = {key[0]: part.drop(DAY) for key, part in rows.partition_by(DAY, as_dict=True, maintain_order=True).items()}
    empty = rows.clear().drop(DAY)
    return {d: found.get(d, empty) for d in dates}
