"""Line loss (线损): area and feeder energy balances per day and per month.

Pure functions of the ``meter_daily`` mart (CONTRACT §3); they never open a file.

Area (台区, 0.4 kV)::

    supply = Σ area master kWh + Σ reverse kWh of the customers with PV
    sales  = Σ customer forward kWh

A customer has PV when the archive row valid on the day says ``pv_capacity_kw > 0``;
reverse kWh of a customer without PV is no supply (reversed wiring or unregistered PV:
an anomaly) and is reported apart in ``reverse_no_pv_kwh``. An archive without the
column (v1) leaves ``pv_capacity_kw`` empty; PV is then inferred from the reverse
register's history (:func:`infer_pv`) and the row says ``pv_basis = 'inferred'``.
    loss   = supply - sales;  loss_rate = loss / supply

Feeder (10 kV)::

    supply = Σ feeder head kWh
    sales  = Σ area master kWh + Σ kWh of customers fed directly (role customer, no area)

Membership is whatever meter_daily says for the day: its area_id / feeder_id / role come
from the archive row valid on that date, so a customer who moves area on the 15th counts
in the old area up to the 14th and in the new one from the 15th, daily and monthly.

Status (CONTRACT §3, thresholds from config/loss.toml): ``uncomputable`` when the
supply meter's day is not actual, or fewer than ``min_actual_share`` of the customer
role meters have an actual day, or a value is missing, or the archive has no supply
meter / no customers; otherwise ``negative`` below ``negative_below``, ``high`` above
``high_above``, else ``normal``. The band (``negative_below`` .. ``high_above``, and an
optional economic band) is the area's own, its class's, or the defaults; the rows
carry the band they were judged by.

Monthly (CONTRACT §3 v2): sums of the daily kWh (estimated days included, so a missing
register reading, shared over the days around it, keeps the month exact). A meter-day
that still has no value (typically the month's last day before the next reading
arrives) is *substituted* with the meter's mean kWh over its days of the month that
have a value (:func:`substitutes`), reported in ``substituted_kwh``; a meter with no
value in the month contributes nothing. ``coverage`` = customer-role meter-days with a
value / customer-role meter-days in service. The monthly status follows the monthly
rate and is ``uncomputable`` only when the supply meter has more than
``max_master_substituted_days`` substituted days or none with a value, or coverage is
below ``min_coverage`` (or the archive lacks the meters, or supply is zero). The month
is rebuilt from the lake whenever one of its days is, so once the reading arrives the
substitution is gone.

kWh are rounded to 1e-6 after summing, so that the parallel engine's summation order
cannot change a file between reruns; that is far below the 0.01 kWh the figures are
exact to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl
from polars.expr.whenthen import ChainedThen, Then
from pydantic import Field, model_validator

from meterlake.schemas._base import MissingColumnsError
from meterlake.schemas.area_loss_daily import AREA_LOSS_DAILY
from meterlake.schemas.area_loss_monthly import AREA_LOSS_MONTHLY
from meterlake.schemas.feeder_loss_daily import FEEDER_LOSS_DAILY
from meterlake.schemas.feeder_loss_monthly import FEEDER_LOSS_MONTHLY

from .strict import StrictModel

#: kWh are rounded to this many decimals after summing (see the module docstring)
KWH_DECIMALS = 6

#: the meter_daily columns line loss reads, with their types
INPUT_COLUMNS: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "meter_id": pl.String(),
    "customer_id": pl.String(),
    "area_id": pl.String(),
    "feeder_id": pl.String(),
    "role": pl.String(),
    "multiplier": pl.Float64(),
    "kwh": pl.Float64(),
    "reverse_kwh": pl.Float64(),
    "quality": pl.String(),
    "pv_capacity_kw": pl.Float64(),
}
#: INPUT_COLUMNS a meter_daily written before the column existed may lack (read as empty)
OPTIONAL_INPUT = ("pv_capacity_kw",)
#: how the PV membership of an area's customers was decided
PV_BASES = ("archive", "inferred")
#: the columns of a meter-day without a value, kept for the monthly substitution
GAP_COLUMNS = ("date", "meter_id", "area_id", "feeder_id", "role", "_pv")


class LossInputError(ValueError):
    """meter_daily breaks its contract in a way line loss cannot work around."""


# -- rules --------------------------------------------------------------------------


class StatusRule(StrictModel):
    """Thresholds of the status rule (CONTRACT §3 defaults); config/loss.toml [area] and [feeder]."""

    min_actual_share: float = Field(
        0.98,
        ge=0.0,
        le=1.0,
        description="uncomputable when fewer than this share of customer-role meters have an actual day (CONTRACT §3: 0.98)",
    )
    negative_below: float = Field(0.0, description="loss_rate below this is negative, 负损 (CONTRACT §3: 0)")
    high_above: float = Field(0.10, description="loss_rate above this is high, 高损 (CONTRACT §3: 0.10)")
    min_coverage: float = Field(
        0.98,
        ge=0.0,
        le=1.0,
        description="a month is uncomputable below this share of customer meter-days with a value (CONTRACT §3 v2: 0.98)",
    )
    max_master_substituted_days: int = Field(
        2,
        ge=0,
        description="a month is uncomputable when the master meter has more substituted days (CONTRACT §3 v2: 2)",
    )
    economic_low: float | None = Field(None, description="optional economic band (经济线损率), lower edge")
    economic_high: float | None = Field(None, description="optional economic band (经济线损率), upper edge")

    @model_validator(mode="after")
    def _ordered(self) -> StatusRule:
        if self.negative_below > self.high_above:
            raise ValueError(f"negative_below ({self.negative_below}) must not exceed high_above ({self.high_above})")
        if (self.economic_low is None) != (self.economic_high is None):
            raise ValueError("economic_low and economic_high: give both or neither")
        if self.economic_low is not None and self.economic_high is not None and self.economic_low > self.economic_high:
            raise ValueError(f"economic_low ({self.economic_low}) must not exceed economic_high ({self.economic_high})")
        return self


@dataclass(frozen=True)
class AreaClass:
    """A class of areas with thresholds of its own (e.g. rural areas with long lines)."""

    name: str
    rule: StatusRule
    #: areas named one by one
    area_ids: tuple[str, ...] = ()
    #: or a regular expression an area_id must contain (polars/Rust regex syntax)
    area_id_pattern: str | None = None


class PvInference(StrictModel):
    """How PV is inferred for customers whose archive row does not say (a v1 archive);
    config/loss.toml [pv].

    The rule of the anomaly ranking (config/anomaly.toml [reverse]): a PV roof exports
    from its first sunny day, so a customer whose reverse register first moved within
    ``quiet_days`` of its first day in the lake is taken to have PV; one whose register
    stood still longer and then moved is not (reversed wiring, a new unregistered roof).
    """

    moved_kwh: float = Field(
        0.05, ge=0.0, description="reverse kWh in a day above which the reverse register moved (PV inference)"
    )
    quiet_days: int = Field(
        14, ge=1, description="days the reverse register stood still after the meter's first lake day that rule PV out"
    )


@dataclass(frozen=True)
class LossRules:
    area: StatusRule = field(default_factory=StatusRule)
    feeder: StatusRule = field(default_factory=StatusRule)
    #: checked in order; the first class an area matches applies, else `area`
    area_classes: tuple[AreaClass, ...] = ()
    pv: PvInference = field(default_factory=PvInference)


DEFAULT_CLASS = "default"


# -- input --------------------------------------------------------------------------


def prepare(meter_daily: pl.DataFrame | pl.LazyFrame, pv: pl.DataFrame | None = None) -> pl.LazyFrame:
    """The meter_daily columns loss needs, typed, with value flags.

    Empty ids become nulls (a directly fed customer's area_id may arrive as "").
    A value is *present* when kwh is not null and quality is not ``missing``;
    ``_kwh``/``_rev`` hold the value only when present.

    ``_pv``: the customer has PV, by the archive (``pv_capacity_kw > 0``) or, where
    the archive did not say, by ``pv`` (:func:`infer_pv`: ``meter_id, pv_inferred``);
    without an inference a customer the archive says nothing of counts as PV (the v1
    rule). ``_pv_inferred``: a customer the archive said nothing of.

    :func:`check_input` raises :class:`LossInputError` on negative kWh (meter_daily
    handles rollovers and registers going down, so a negative day is an upstream bug).
    """
    lf = meter_daily.lazy()
    present_cols = lf.collect_schema().names()
    missing = [c for c in INPUT_COLUMNS if c not in present_cols and c not in OPTIONAL_INPUT]
    if missing:
        raise MissingColumnsError("meter_daily (line loss input)", missing, present_cols)
    lf = lf.select(
        (pl.col(c) if c in present_cols else pl.lit(None)).cast(t).alias(c) for c, t in INPUT_COLUMNS.items()
    )
    declared = pl.col("pv_capacity_kw")
    if pv is not None:
        lf = lf.join(pv.lazy().select("meter_id", "pv_inferred"), on="meter_id", how="left")
        guess = pl.col("pv_inferred").fill_null(False)
    else:
        guess = pl.lit(True)
    customer = pl.col("role") == "customer"
    lf = lf.with_columns(
        _pv=customer & pl.when(declared.is_not_null()).then(declared > 0).otherwise(guess),
        _pv_inferred=customer & declared.is_null(),
    )

    def _id(c: str) -> pl.Expr:
        s = pl.col(c).str.strip_chars()
        return pl.when(s.str.len_chars() > 0).then(s).alias(c)

    present = pl.col("kwh").is_not_null() & (pl.col("quality") != "missing")
    return lf.with_columns(_id("area_id"), _id("feeder_id"), _id("customer_id")).with_columns(
        _present=present,
        _actual=present & (pl.col("quality") == "actual"),
        _estimated=present & (pl.col("quality") != "actual"),
        _kwh=pl.when(present).then(pl.col("kwh")),
        _rev=pl.when(present).then(pl.col("reverse_kwh").fill_null(0.0)),
    )


def check_input(rows: pl.LazyFrame) -> None:
    """Raise :class:`LossInputError` naming the first rows with negative energy."""
    bad = (
        rows.filter((pl.col("_kwh") < 0) | (pl.col("_rev") < 0))
        .select("meter_id", "date", "kwh", "reverse_kwh")
        .sort("date", "meter_id")
        .collect()
    )
    if bad.height:
        first = ", ".join(
            f"{r['meter_id']} on {r['date']} (kwh={r['kwh']:.2f}, reverse_kwh={r['reverse_kwh']:.2f})"
            for r in bad.head(3).iter_rows(named=True)
        )
        raise LossInputError(
            f"meter_daily: expected kwh and reverse_kwh >= 0 (rollovers resolved upstream); "
            f"found {bad.height} negative row(s), first: {first}"
        )


def infer_pv(history: pl.DataFrame | pl.LazyFrame, rule: PvInference = PvInference()) -> pl.DataFrame:
    """``meter_id, pv_inferred`` for customer meters whose archive rows leave PV empty.

    ``history``: meter_daily rows (``date, meter_id, role, kwh, reverse_kwh, quality``
    and ``pv_capacity_kw`` when there is one), as far back as the lake goes. A meter
    has PV when its reverse register first moved (more than ``moved_kwh`` in a day)
    within ``quiet_days`` of its first day with a value; a meter whose reverse never
    moved has nothing to count either way and gets False.
    """
    lf = history.lazy()
    if "pv_capacity_kw" in lf.collect_schema().names():
        lf = lf.filter(pl.col("pv_capacity_kw").is_null())
    has = (pl.col("quality") != "missing") & pl.col("kwh").is_not_null()
    moved = has & (pl.col("reverse_kwh") > rule.moved_kwh)
    return (
        lf.filter(pl.col("role") == "customer")
        .group_by("meter_id")
        .agg(first_seen=pl.col("date").filter(has).min(), first_reverse=pl.col("date").filter(moved).min())
        .select(
            "meter_id",
            pv_inferred=(
                pl.col("first_reverse").is_not_null()
                & ((pl.col("first_reverse") - pl.col("first_seen")).dt.total_days() < rule.quiet_days)
            ),
        )
        .collect()
        .sort("meter_id")
    )


# -- shared helpers -------------------------------------------------------------------


def _r(expr: pl.Expr) -> pl.Expr:
    return expr.round(KWH_DECIMALS)


def _reason(codes: Sequence[tuple[str, pl.Expr]]) -> pl.Expr:
    joined = pl.concat_str([pl.when(cond).then(pl.lit(code)) for code, cond in codes], separator=",", ignore_nulls=True)
    return pl.when(joined.str.len_chars() > 0).then(joined)


def _status(rate: str = "loss_rate", reason: str = "reason") -> pl.Expr:
    return (
        pl.when(pl.col(reason).is_not_null() | pl.col(rate).is_null())
        .then(pl.lit("uncomputable"))
        .when(pl.col(rate) < pl.col("_negative_below"))
        .then(pl.lit("negative"))
        .when(pl.col(rate) > pl.col("_high_above"))
        .then(pl.lit("high"))
        .otherwise(pl.lit("normal"))
    )


def _rate(loss: str = "loss_kwh", supply: str = "supply_kwh") -> pl.Expr:
    return pl.when(pl.col(supply) > 0).then(pl.col(loss) / pl.col(supply))


def area_class_expr(rules: LossRules) -> pl.Expr:
    """The class name of each area_id (first matching class, else ``default``)."""
    expr: Then | ChainedThen | None = None
    for cls in rules.area_classes:
        cond = pl.col("area_id").is_in(list(cls.area_ids))
        if cls.area_id_pattern:
            cond = cond | pl.col("area_id").str.contains(cls.area_id_pattern)
        expr = (pl.when(cond) if expr is None else expr.when(cond)).then(pl.lit(cls.name))
    if expr is None:
        return pl.lit(DEFAULT_CLASS).alias("area_class")
    return expr.otherwise(pl.lit(DEFAULT_CLASS)).alias("area_class")


#: the StatusRule fields every row carries as ``_<name>``
THRESHOLDS = (
    "min_actual_share",
    "negative_below",
    "high_above",
    "min_coverage",
    "max_master_substituted_days",
    "economic_low",
    "economic_high",
)


def _class_thresholds(rules: LossRules) -> list[pl.Expr]:
    """Per-row thresholds from the row's area_class."""
    out = []
    for name in THRESHOLDS:
        expr: pl.Expr = pl.lit(getattr(rules.area, name), pl.Float64)
        for cls in reversed(rules.area_classes):
            expr = (
                pl.when(pl.col("area_class") == cls.name)
                .then(pl.lit(getattr(cls.rule, name), pl.Float64))
                .otherwise(expr)
            )
        out.append(expr.cast(pl.Float64).alias(f"_{name}"))
    return out


def _feeder_thresholds(rules: LossRules) -> list[pl.Expr]:
    return [pl.lit(getattr(rules.feeder, name), pl.Float64).alias(f"_{name}") for name in THRESHOLDS]


def _band() -> list[pl.Expr]:
    """The band a row was judged by, and whether its rate lies in the economic band."""
    rate = pl.col("loss_rate")
    return [
        pl.col("_negative_below").alias("band_low"),
        pl.col("_high_above").alias("band_high"),
        pl.col("_economic_low").alias("economic_low"),
        pl.col("_economic_high").alias("economic_high"),
        pl.when(pl.col("_economic_low").is_not_null() & (pl.col("status") != "uncomputable"))
        .then((rate >= pl.col("_economic_low")) & (rate <= pl.col("_economic_high")))
        .alias("in_economic_band"),
    ]


def _month() -> pl.Expr:
    return pl.col("date").dt.strftime("%Y-%m").alias("month")


def _quality(meters: str, present: str, actual: str) -> pl.Expr:
    """Worst quality of a group's supply meters: missing > estimated > actual."""
    return (
        pl.when(pl.col(meters) == 0)
        .then(None)
        .when(pl.col(present) < pl.col(meters))
        .then(pl.lit("missing"))
        .when(pl.col(actual) < pl.col(meters))
        .then(pl.lit("estimated"))
        .otherwise(pl.lit("actual"))
    )


# -- area ---------------------------------------------------------------------------


def area_days(rows: pl.LazyFrame, rules: LossRules = LossRules()) -> pl.LazyFrame:
    """Area balances per (date, area_id) from :func:`prepare`'d rows, with status.

    The result has the area_loss_daily columns plus the internal counts the monthly
    roll-up and the diagnosis use (``_master_*``, thresholds ``_negative_below`` ...).
    """
    m = pl.col("role") == "area_master"
    c = pl.col("role") == "customer"
    i32 = pl.Int32
    agg = (
        rows.filter(pl.col("area_id").is_not_null() & (m | c))
        .group_by("date", "area_id")
        .agg(
            _master_meters=m.sum().cast(i32),
            _master_present=(m & pl.col("_present")).sum().cast(i32),
            _master_actual=(m & pl.col("_actual")).sum().cast(i32),
            _master_estimated=(m & pl.col("_estimated")).sum().cast(i32),
            master_meter_id=pl.col("meter_id").filter(m).min(),
            _master_feeder=pl.col("feeder_id").filter(m).min(),
            _any_feeder=pl.col("feeder_id").min(),
            _master_sum=pl.col("_kwh").filter(m).sum(),
            customer_meters=c.sum().cast(i32),
            customers_actual=(c & pl.col("_actual")).sum().cast(i32),
            customers_estimated=(c & pl.col("_estimated")).sum().cast(i32),
            customers_missing=(c & ~pl.col("_present")).sum().cast(i32),
            _pv_sum=pl.col("_rev").filter(c & pl.col("_pv")).sum(),
            _rev_no_pv_sum=pl.col("_rev").filter(c & ~pl.col("_pv")).sum(),
            pv_customers=(c & pl.col("_pv")).sum().cast(i32),
            _pv_inferred_meters=(c & pl.col("_pv_inferred")).sum().cast(i32),
            _sales_sum=pl.col("_kwh").filter(c).sum(),
        )
    )
    out = (
        agg.with_columns(
            feeder_id=pl.coalesce("_master_feeder", "_any_feeder"),
            master_kwh=pl.when(
                (pl.col("_master_meters") > 0) & (pl.col("_master_present") == pl.col("_master_meters"))
            ).then(_r(pl.col("_master_sum"))),
            pv_export_kwh=_r(pl.col("_pv_sum")),
            reverse_no_pv_kwh=_r(pl.col("_rev_no_pv_sum")),
            pv_basis=pl.when(pl.col("_pv_inferred_meters") > 0).then(pl.lit("inferred")).otherwise(pl.lit("archive")),
            sales_kwh=pl.when(pl.col("customers_missing") == 0).then(_r(pl.col("_sales_sum"))),
            master_quality=_quality("_master_meters", "_master_present", "_master_actual"),
            actual_share=pl.when(pl.col("customer_meters") > 0).then(
                pl.col("customers_actual") / pl.col("customer_meters")
            ),
            area_class=area_class_expr(rules),
        )
        .with_columns(_class_thresholds(rules))
        .with_columns(supply_kwh=_r(pl.col("master_kwh") + pl.col("pv_export_kwh")))
        .with_columns(loss_kwh=_r(pl.col("supply_kwh") - pl.col("sales_kwh")))
        .with_columns(loss_rate=_rate())
        .with_columns(
            reason=_reason(
                [
                    ("archive_no_master", pl.col("_master_meters") == 0),
                    ("archive_no_customers", pl.col("customer_meters") == 0),
                    ("master_missing", pl.col("master_quality") == "missing"),
                    ("master_estimated", pl.col("master_quality") == "estimated"),
                    ("customer_missing", pl.col("customers_missing") > 0),
                    ("collection_incomplete", pl.col("actual_share") < pl.col("_min_actual_share")),
                    ("zero_supply", pl.col("supply_kwh") <= 0),
                ]
            )
        )
        .with_columns(status=_status())
        .with_columns(_band())
    )
    return out


def area_loss_daily(
    meter_daily: pl.DataFrame | pl.LazyFrame, rules: LossRules = LossRules(), pv: pl.DataFrame | None = None
) -> pl.DataFrame:
    """area_loss_daily rows for every (date, area) in ``meter_daily``, sorted (``pv``: :func:`prepare`)."""
    rows = prepare(meter_daily, pv)
    check_input(rows)
    return area_daily_table(area_days(rows, rules))


def area_daily_table(days: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The area_loss_daily columns of :func:`area_days` frames, sorted."""
    return AREA_LOSS_DAILY.conform(days).sort("date", "area_id").collect()


def value_gaps(rows: pl.LazyFrame) -> pl.LazyFrame:
    """The meter-days of :func:`prepare`'d rows that have no value (:data:`GAP_COLUMNS`).

    Small (a few percent of the meter-days at most); the stage keeps them for the
    month's substitution while it balances one day at a time.
    """
    roles = ["area_master", "customer", "feeder_head"]
    return rows.filter(~pl.col("_present") & pl.col("role").is_in(roles)).select(GAP_COLUMNS)


def meter_means(meter_daily: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """Per (month, meter): the mean kWh and reverse kWh over its days with a value.

    Give it the month's meter_daily rows of the meters that have gaps (the stage
    filters on their ids while reading); a meter with no value in the month is absent.
    """
    rows = prepare(meter_daily, pv=pl.DataFrame(schema={"meter_id": pl.String, "pv_inferred": pl.Boolean}))
    return (
        rows.filter(pl.col("_present"))
        .with_columns(_month())
        .group_by("month", "meter_id")
        .agg(_mean_kwh=pl.col("_kwh").mean(), _mean_rev=pl.col("_rev").mean())
    )


def substitutes(gaps: pl.DataFrame | pl.LazyFrame, means: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """Each gap (:func:`value_gaps`) with its substitute: the meter's mean of the month.

    ``_sub_kwh`` / ``_sub_rev`` are empty when the meter has no value in the month
    (it then contributes nothing, CONTRACT §3).
    """
    return (
        gaps.lazy()
        .with_columns(_month())
        .join(means.lazy(), on=["month", "meter_id"], how="left")
        .rename({"_mean_kwh": "_sub_kwh", "_mean_rev": "_sub_rev"})
    )


def _no_gaps() -> pl.LazyFrame:
    schema = {"month": pl.String, "meter_id": pl.String, "_mean_kwh": pl.Float64, "_mean_rev": pl.Float64}
    return pl.LazyFrame(schema=schema)


def _month_parts(
    meter_daily: pl.DataFrame | pl.LazyFrame, rules: LossRules, pv: pl.DataFrame | None
) -> tuple[pl.LazyFrame, pl.DataFrame]:
    rows = prepare(meter_daily, pv)
    check_input(rows)
    gaps = value_gaps(rows).collect()
    means = meter_means(meter_daily.lazy().filter(pl.col("meter_id").is_in(gaps["meter_id"].unique().implode())))
    return rows, substitutes(gaps, means if gaps.height else _no_gaps()).collect()


def area_loss_monthly(
    meter_daily: pl.DataFrame | pl.LazyFrame, rules: LossRules = LossRules(), pv: pl.DataFrame | None = None
) -> pl.DataFrame:
    """area_loss_monthly rows for every (month, area) in ``meter_daily``.

    Give it all the days of each month the lake holds: the month is the sum of
    the days it is given, days without a value substituted (module docstring).
    """
    rows, subs = _month_parts(meter_daily, rules, pv)
    return area_months(area_days(rows, rules), subs, rules)


def area_months(
    days: pl.DataFrame | pl.LazyFrame, subs: pl.DataFrame | pl.LazyFrame, rules: LossRules = LossRules()
) -> pl.DataFrame:
    """area_loss_monthly rows from :func:`area_days` frames (any number of days) and the
    :func:`substitutes` of their meter-days without a value.

    The stage computes each day once and rolls the days up here, so a month never
    has to be held in memory at meter level.
    """
    m, c = pl.col("role") == "area_master", pl.col("role") == "customer"
    filled = (
        subs.lazy()
        .filter(pl.col("area_id").is_not_null() & (m | c))
        .group_by("month", "area_id")
        .agg(
            _master_sub=pl.col("_sub_kwh").filter(m).sum(),
            _master_unfilled=(m & pl.col("_sub_kwh").is_null()).any(),
            _sales_sub=pl.col("_sub_kwh").filter(c).sum(),
            _pv_sub=pl.col("_sub_rev").filter(c & pl.col("_pv")).sum(),
            _rev_no_pv_sub=pl.col("_sub_rev").filter(c & ~pl.col("_pv")).sum(),
        )
    )
    monthly = (
        days.lazy()
        .with_columns(_month())
        .group_by("month", "area_id")
        .agg(
            feeder_id=pl.col("feeder_id").sort_by("date").last(),
            days=pl.len().cast(pl.Int32),
            _master_sum=pl.col("_master_sum").sum(),
            _pv_sum=pl.col("_pv_sum").sum(),
            _rev_no_pv_sum=pl.col("_rev_no_pv_sum").sum(),
            _sales_sum=pl.col("_sales_sum").sum(),
            pv_customers=pl.col("pv_customers").max(),
            pv_basis=pl.when((pl.col("pv_basis") == "inferred").any())
            .then(pl.lit("inferred"))
            .otherwise(pl.lit("archive")),
            days_uncomputable=(pl.col("status") == "uncomputable").sum().cast(pl.Int32),
            meter_days_estimated=(pl.col("_master_estimated") + pl.col("customers_estimated")).sum().cast(pl.Int32),
            meter_days_missing=(pl.col("_master_meters") - pl.col("_master_present") + pl.col("customers_missing"))
            .sum()
            .cast(pl.Int32),
            master_substituted_days=(pl.col("_master_meters") - pl.col("_master_present")).sum().cast(pl.Int32),
            _customer_days=pl.col("customer_meters").sum(),
            _customer_days_valued=(pl.col("customer_meters") - pl.col("customers_missing")).sum(),
            _no_master=(pl.col("_master_meters") == 0).any(),
            _no_customers=(pl.col("customer_meters") == 0).any(),
        )
        .join(filled, on=["month", "area_id"], how="left")
        .with_columns(pl.col("_master_sub", "_sales_sub", "_pv_sub", "_rev_no_pv_sub").fill_null(0.0))
        .with_columns(area_class=area_class_expr(rules))
        .with_columns(_class_thresholds(rules))
        .with_columns(
            master_kwh=pl.when(~pl.col("_no_master") & ~pl.col("_master_unfilled").fill_null(False)).then(
                _r(pl.col("_master_sum") + pl.col("_master_sub"))
            ),
            pv_export_kwh=_r(pl.col("_pv_sum") + pl.col("_pv_sub")),
            reverse_no_pv_kwh=_r(pl.col("_rev_no_pv_sum") + pl.col("_rev_no_pv_sub")),
            sales_kwh=_r(pl.col("_sales_sum") + pl.col("_sales_sub")),
            substituted_kwh=_r(pl.col("_master_sub") + pl.col("_sales_sub") + pl.col("_pv_sub")),
            coverage=pl.when(pl.col("_customer_days") > 0).then(
                pl.col("_customer_days_valued") / pl.col("_customer_days")
            ),
        )
        .with_columns(supply_kwh=_r(pl.col("master_kwh") + pl.col("pv_export_kwh")))
        .with_columns(loss_kwh=_r(pl.col("supply_kwh") - pl.col("sales_kwh")))
        .with_columns(loss_rate=_rate())
        .with_columns(
            reason=_reason(
                [
                    ("archive_no_master", pl.col("_no_master")),
                    ("archive_no_customers", pl.col("_no_customers")),
                    (
                        "master_missing",
                        (pl.col("master_substituted_days") > pl.col("_max_master_substituted_days"))
                        | pl.col("_master_unfilled").fill_null(False),
                    ),
                    ("customer_missing", pl.col("coverage") < pl.col("_min_coverage")),
                    ("zero_supply", pl.col("supply_kwh") <= 0),
                ]
            )
        )
        .with_columns(status=_status())
        .with_columns(_band())
    )
    return AREA_LOSS_MONTHLY.conform(monthly).sort("month", "area_id").collect()


# -- feeder -------------------------------------------------------------------------


def feeder_days(rows: pl.LazyFrame, rules: LossRules = LossRules()) -> pl.LazyFrame:
    """Feeder balances per (date, feeder_id) from :func:`prepare`'d rows, with status."""
    h = pl.col("role") == "feeder_head"
    am = pl.col("role") == "area_master"
    dc = (pl.col("role") == "customer") & pl.col("area_id").is_null()
    d = am | dc
    i32 = pl.Int32
    agg = (
        rows.filter(pl.col("feeder_id").is_not_null() & (h | d))
        .group_by("date", "feeder_id")
        .agg(
            _head_meters=h.sum().cast(i32),
            _head_present=(h & pl.col("_present")).sum().cast(i32),
            _head_actual=(h & pl.col("_actual")).sum().cast(i32),
            _head_estimated=(h & pl.col("_estimated")).sum().cast(i32),
            head_meter_id=pl.col("meter_id").filter(h).min(),
            _head_sum=pl.col("_kwh").filter(h).sum(),
            area_masters=am.sum().cast(i32),
            direct_customers=dc.sum().cast(i32),
            downstream_actual=(d & pl.col("_actual")).sum().cast(i32),
            downstream_estimated=(d & pl.col("_estimated")).sum().cast(i32),
            downstream_missing=(d & ~pl.col("_present")).sum().cast(i32),
            area_masters_kwh=_r(pl.col("_kwh").filter(am).sum()),
            direct_customers_kwh=_r(pl.col("_kwh").filter(dc).sum()),
        )
    )
    downstream = pl.col("area_masters") + pl.col("direct_customers")
    return (
        agg.with_columns(
            *_feeder_thresholds(rules),
            supply_kwh=pl.when((pl.col("_head_meters") > 0) & (pl.col("_head_present") == pl.col("_head_meters"))).then(
                _r(pl.col("_head_sum"))
            ),
            sales_kwh=pl.when(pl.col("downstream_missing") == 0).then(
                _r(pl.col("area_masters_kwh") + pl.col("direct_customers_kwh"))
            ),
            head_quality=_quality("_head_meters", "_head_present", "_head_actual"),
            actual_share=pl.when(downstream > 0).then(pl.col("downstream_actual") / downstream),
        )
        .with_columns(loss_kwh=_r(pl.col("supply_kwh") - pl.col("sales_kwh")))
        .with_columns(loss_rate=_rate())
        .with_columns(
            reason=_reason(
                [
                    ("archive_no_head", pl.col("_head_meters") == 0),
                    ("archive_no_downstream", downstream == 0),
                    ("head_missing", pl.col("head_quality") == "missing"),
                    ("head_estimated", pl.col("head_quality") == "estimated"),
                    ("downstream_missing", pl.col("downstream_missing") > 0),
                    ("collection_incomplete", pl.col("actual_share") < pl.col("_min_actual_share")),
                    ("zero_supply", pl.col("supply_kwh") <= 0),
                ]
            )
        )
        .with_columns(status=_status())
        .with_columns(_band())
    )


def feeder_loss_daily(
    meter_daily: pl.DataFrame | pl.LazyFrame, rules: LossRules = LossRules(), pv: pl.DataFrame | None = None
) -> pl.DataFrame:
    """feeder_loss_daily rows for every (date, feeder) in ``meter_daily``, sorted."""
    rows = prepare(meter_daily, pv)
    check_input(rows)
    return feeder_daily_table(feeder_days(rows, rules))


def feeder_daily_table(days: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The feeder_loss_daily columns of :func:`feeder_days` frames, sorted."""
    return FEEDER_LOSS_DAILY.conform(days).sort("date", "feeder_id").collect()


def feeder_loss_monthly(
    meter_daily: pl.DataFrame | pl.LazyFrame, rules: LossRules = LossRules(), pv: pl.DataFrame | None = None
) -> pl.DataFrame:
    """feeder_loss_monthly rows for every (month, feeder) in ``meter_daily``."""
    rows, subs = _month_parts(meter_daily, rules, pv)
    return feeder_months(feeder_days(rows, rules), subs, rules)


def feeder_months(
    days: pl.DataFrame | pl.LazyFrame, subs: pl.DataFrame | pl.LazyFrame, rules: LossRules = LossRules()
) -> pl.DataFrame:
    """feeder_loss_monthly rows from :func:`feeder_days` frames (any number of days) and
    the :func:`substitutes` of their meter-days without a value."""
    h = pl.col("role") == "feeder_head"
    am = pl.col("role") == "area_master"
    dc = (pl.col("role") == "customer") & pl.col("area_id").is_null()
    filled = (
        subs.lazy()
        .filter(pl.col("feeder_id").is_not_null() & (h | am | dc))
        .group_by("month", "feeder_id")
        .agg(
            _head_sub=pl.col("_sub_kwh").filter(h).sum(),
            _head_unfilled=(h & pl.col("_sub_kwh").is_null()).any(),
            _am_sub=pl.col("_sub_kwh").filter(am).sum(),
            _dc_sub=pl.col("_sub_kwh").filter(dc).sum(),
        )
    )
    downstream = pl.col("area_masters") + pl.col("direct_customers")
    monthly = (
        days.lazy()
        .with_columns(_month())
        .group_by("month", "feeder_id")
        .agg(
            days=pl.len().cast(pl.Int32),
            _head_sum=pl.col("_head_sum").sum(),
            _am_sum=pl.col("area_masters_kwh").sum(),
            _dc_sum=pl.col("direct_customers_kwh").sum(),
            days_uncomputable=(pl.col("status") == "uncomputable").sum().cast(pl.Int32),
            meter_days_estimated=(pl.col("_head_estimated") + pl.col("downstream_estimated")).sum().cast(pl.Int32),
            meter_days_missing=(pl.col("_head_meters") - pl.col("_head_present") + pl.col("downstream_missing"))
            .sum()
            .cast(pl.Int32),
            head_substituted_days=(pl.col("_head_meters") - pl.col("_head_present")).sum().cast(pl.Int32),
            _downstream_days=downstream.sum(),
            _downstream_days_valued=(downstream - pl.col("downstream_missing")).sum(),
            _no_head=(pl.col("_head_meters") == 0).any(),
            _no_downstream=(downstream == 0).any(),
        )
        .join(filled, on=["month", "feeder_id"], how="left")
        .with_columns(pl.col("_head_sub", "_am_sub", "_dc_sub").fill_null(0.0))
        .with_columns(_feeder_thresholds(rules))
        .with_columns(
            supply_kwh=pl.when(~pl.col("_no_head") & ~pl.col("_head_unfilled").fill_null(False)).then(
                _r(pl.col("_head_sum") + pl.col("_head_sub"))
            ),
            area_masters_kwh=_r(pl.col("_am_sum") + pl.col("_am_sub")),
            direct_customers_kwh=_r(pl.col("_dc_sum") + pl.col("_dc_sub")),
            substituted_kwh=_r(pl.col("_head_sub") + pl.col("_am_sub") + pl.col("_dc_sub")),
            coverage=pl.when(pl.col("_downstream_days") > 0).then(
                pl.col("_downstream_days_valued") / pl.col("_downstream_days")
            ),
        )
        .with_columns(sales_kwh=_r(pl.col("area_masters_kwh") + pl.col("direct_customers_kwh")))
        .with_columns(loss_kwh=_r(pl.col("supply_kwh") - pl.col("sales_kwh")))
        .with_columns(loss_rate=_rate())
        .with_columns(
            reason=_reason(
                [
                    ("archive_no_head", pl.col("_no_head")),
                    ("archive_no_downstream", pl.col("_no_downstream")),
                    (
                        "head_missing",
                        (pl.col("head_substituted_days") > pl.col("_max_master_substituted_days"))
                        | pl.col("_head_unfilled").fill_null(False),
                    ),
                    ("downstream_missing", pl.col("coverage") < pl.col("_min_coverage")),
                    ("zero_supply", pl.col("supply_kwh") <= 0),
                ]
            )
        )
        .with_columns(status=_status())
        .with_columns(_band())
    )
    return FEEDER_LOSS_MONTHLY.conform(monthly).sort("month", "feeder_id").collect()
