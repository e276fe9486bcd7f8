"""Line loss (线损): area and feeder energy balances per day and per month.

Pure functions of the ``meter_daily`` mart (CONTRACT §3); they never open a file.

Area (台区, 0.4 kV)::

    supply = Σ area master kWh + Σ customer reverse kWh   (PV export counts as supply)
    sales  = Σ customer forward kWh
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
``high_above``, else ``normal``. Monthly figures are sums of the daily kWh (estimated
days included, so a missing register reading, shared over the days around it, keeps
the month exact); the monthly status follows the monthly rate and is
``uncomputable`` only when some day lacks a value.

kWh are rounded to 1e-6 after summing, so that the parallel engine's summation order
cannot change a file between reruns; that is far below the 0.01 kWh the figures are
exact to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl
from polars.expr.whenthen import ChainedThen, Then

from meterlake.schemas._base import MissingColumnsError
from meterlake.schemas.area_loss_daily import AREA_LOSS_DAILY
from meterlake.schemas.area_loss_monthly import AREA_LOSS_MONTHLY
from meterlake.schemas.feeder_loss_daily import FEEDER_LOSS_DAILY
from meterlake.schemas.feeder_loss_monthly import FEEDER_LOSS_MONTHLY

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
}


class LossInputError(ValueError):
    """meter_daily breaks its contract in a way line loss cannot work around."""


# -- rules --------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusRule:
    """Thresholds of the status rule (CONTRACT §3 defaults)."""

    #: an area/feeder-day needs at least this share of customer-role meters actual
    min_actual_share: float = 0.98
    #: loss_rate below this is `negative` (负损)
    negative_below: float = 0.0
    #: loss_rate above this is `high` (高损)
    high_above: float = 0.10

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_actual_share <= 1.0:
            raise ValueError(f"min_actual_share: expected a share in [0, 1], found {self.min_actual_share}")
        if self.negative_below > self.high_above:
            raise ValueError(f"negative_below ({self.negative_below}) must not exceed high_above ({self.high_above})")


@dataclass(frozen=True)
class AreaClass:
    """A class of areas with thresholds of its own (e.g. rural areas with long lines)."""

    name: str
    rule: StatusRule
    #: areas named one by one
    area_ids: tuple[str, ...] = ()
    #: or a regular expression an area_id must contain (polars/Rust regex syntax)
    area_id_pattern: str | None = None


@dataclass(frozen=True)
class LossRules:
    area: StatusRule = field(default_factory=StatusRule)
    feeder: StatusRule = field(default_factory=StatusRule)
    #: checked in order; the first class an area matches applies, else `area`
    area_classes: tuple[AreaClass, ...] = ()


DEFAULT_CLASS = "default"


# -- input --------------------------------------------------------------------------


def prepare(meter_daily: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """The meter_daily columns loss needs, typed, with value flags.

    Empty ids become nulls (a directly fed customer's area_id may arrive as "").
    A value is *present* when kwh is not null and quality is not ``missing``;
    ``_kwh``/``_rev`` hold the value only when present. Raises
    :class:`LossInputError` on negative kWh (meter_daily handles rollovers and
    registers going down, so a negative day is an upstream bug, not data).
    """
    lf = meter_daily.lazy()
    present_cols = lf.collect_schema().names()
    missing = [c for c in INPUT_COLUMNS if c not in present_cols]
    if missing:
        raise MissingColumnsError("meter_daily (line loss input)", missing, present_cols)
    lf = lf.select(pl.col(c).cast(t) for c, t in INPUT_COLUMNS.items())

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
            f"{r['meter_id']} on {r['date']} (kwh={r['kwh']}, reverse_kwh={r['reverse_kwh']})"
            for r in bad.head(3).iter_rows(named=True)
        )
        raise LossInputError(
            f"meter_daily: expected kwh and reverse_kwh >= 0 (rollovers resolved upstream); "
            f"found {bad.height} negative row(s), first: {first}"
        )


# -- shared helpers -------------------------------------------------------------------


def _r(expr: pl.Expr) -> pl.Expr:
    return expr.round(KWH_DECIMALS)


def _sum_if_complete(col: str) -> pl.Expr:
    """Σ col, or null when some value is null (a month lacking a day's value)."""
    return pl.when(pl.col(col).null_count() == 0).then(_r(pl.col(col).sum()))


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


def _class_thresholds(rules: LossRules) -> list[pl.Expr]:
    """Per-row thresholds from the row's area_class."""
    out = []
    for name in ("min_actual_share", "negative_below", "high_above"):
        expr: pl.Expr = pl.lit(getattr(rules.area, name))
        for cls in reversed(rules.area_classes):
            expr = pl.when(pl.col("area_class") == cls.name).then(pl.lit(getattr(cls.rule, name))).otherwise(expr)
        out.append(expr.cast(pl.Float64).alias(f"_{name}"))
    return out


def _feeder_thresholds(rules: LossRules) -> list[pl.Expr]:
    r = rules.feeder
    return [
        pl.lit(r.min_actual_share).alias("_min_actual_share"),
        pl.lit(r.negative_below).alias("_negative_below"),
        pl.lit(r.high_above).alias("_high_above"),
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
            _pv_sum=pl.col("_rev").filter(c).sum(),
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
    )
    return out


def area_loss_daily(meter_daily: pl.DataFrame | pl.LazyFrame, rules: LossRules = LossRules()) -> pl.DataFrame:
    """area_loss_daily rows for every (date, area) in ``meter_daily``, sorted."""
    rows = prepare(meter_daily)
    check_input(rows)
    return area_daily_table(area_days(rows, rules))


def area_daily_table(days: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The area_loss_daily columns of :func:`area_days` frames, sorted."""
    return AREA_LOSS_DAILY.conform(days).sort("date", "area_id").collect()


def area_loss_monthly(meter_daily: pl.DataFrame | pl.LazyFrame, rules: LossRules = LossRules()) -> pl.DataFrame:
    """area_loss_monthly rows for every (month, area) in ``meter_daily``.

    Give it all the days of each month the lake holds: the month is the sum of
    the days it is given.
    """
    rows = prepare(meter_daily)
    check_input(rows)
    return area_months(area_days(rows, rules), rules)


def area_months(days: pl.DataFrame | pl.LazyFrame, rules: LossRules = LossRules()) -> pl.DataFrame:
    """area_loss_monthly rows from :func:`area_days` frames (any number of days).

    The stage computes each day once and rolls the days up here, so a month never
    has to be held in memory at meter level.
    """
    monthly = (
        days.lazy()
        .with_columns(_month())
        .group_by("month", "area_id")
        .agg(
            feeder_id=pl.col("feeder_id").sort_by("date").last(),
            days=pl.len().cast(pl.Int32),
            master_kwh=_sum_if_complete("master_kwh"),
            pv_export_kwh=_r(pl.col("pv_export_kwh").sum()),
            sales_kwh=_sum_if_complete("sales_kwh"),
            days_uncomputable=(pl.col("status") == "uncomputable").sum().cast(pl.Int32),
            meter_days_estimated=(pl.col("_master_estimated") + pl.col("customers_estimated")).sum().cast(pl.Int32),
            meter_days_missing=(pl.col("_master_meters") - pl.col("_master_present") + pl.col("customers_missing"))
            .sum()
            .cast(pl.Int32),
            _no_master=(pl.col("_master_meters") == 0).any(),
            _no_customers=(pl.col("customer_meters") == 0).any(),
            _master_missing=(pl.col("_master_present") < pl.col("_master_meters")).any(),
            _customer_missing=(pl.col("customers_missing") > 0).any(),
        )
        .with_columns(area_class=area_class_expr(rules))
        .with_columns(_class_thresholds(rules))
        .with_columns(supply_kwh=_r(pl.col("master_kwh") + pl.col("pv_export_kwh")))
        .with_columns(loss_kwh=_r(pl.col("supply_kwh") - pl.col("sales_kwh")))
        .with_columns(loss_rate=_rate())
        .with_columns(
            reason=_reason(
                [
                    ("archive_no_master", pl.col("_no_master")),
                    ("archive_no_customers", pl.col("_no_customers")),
                    ("master_missing", pl.col("_master_missing")),
                    ("customer_missing", pl.col("_customer_missing")),
                    ("zero_supply", pl.col("supply_kwh") <= 0),
                ]
            )
        )
        .with_columns(status=_status())
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
    )


def feeder_loss_daily(meter_daily: pl.DataFrame | pl.LazyFrame, rules: LossRules = LossRules()) -> pl.DataFrame:
    """feeder_loss_daily rows for every (date, feeder) in ``meter_daily``, sorted."""
    rows = prepare(meter_daily)
    check_input(rows)
    return feeder_daily_table(feeder_days(rows, rules))


def feeder_daily_table(days: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The feeder_loss_daily columns of :func:`feeder_days` frames, sorted."""
    return FEEDER_LOSS_DAILY.conform(days).sort("date", "feeder_id").collect()


def feeder_loss_monthly(meter_daily: pl.DataFrame | pl.LazyFrame, rules: LossRules = LossRules()) -> pl.DataFrame:
    """feeder_loss_monthly rows for every (month, feeder) in ``meter_daily``."""
    rows = prepare(meter_daily)
    check_input(rows)
    return feeder_months(feeder_days(rows, rules), rules)


def feeder_months(days: pl.DataFrame | pl.LazyFrame, rules: LossRules = LossRules()) -> pl.DataFrame:
    """feeder_loss_monthly rows from :func:`feeder_days` frames (any number of days)."""
    monthly = (
        days.lazy()
        .with_columns(_month())
        .group_by("month", "feeder_id")
        .agg(
            days=pl.len().cast(pl.Int32),
            supply_kwh=_sum_if_complete("supply_kwh"),
            area_masters_kwh=_r(pl.col("area_masters_kwh").sum()),
            direct_customers_kwh=_r(pl.col("direct_customers_kwh").sum()),
            sales_kwh=_sum_if_complete("sales_kwh"),
            days_uncomputable=(pl.col("status") == "uncomputable").sum().cast(pl.Int32),
            meter_days_estimated=(pl.col("_head_estimated") + pl.col("downstream_estimated")).sum().cast(pl.Int32),
            meter_days_missing=(pl.col("_head_meters") - pl.col("_head_present") + pl.col("downstream_missing"))
            .sum()
            .cast(pl.Int32),
            _no_head=(pl.col("_head_meters") == 0).any(),
            _no_downstream=((pl.col("area_masters") + pl.col("direct_customers")) == 0).any(),
            _head_missing=(pl.col("_head_present") < pl.col("_head_meters")).any(),
            _downstream_missing=(pl.col("downstream_missing") > 0).any(),
        )
        .with_columns(_feeder_thresholds(rules))
        .with_columns(loss_kwh=_r(pl.col("supply_kwh") - pl.col("sales_kwh")))
        .with_columns(loss_rate=_rate())
        .with_columns(
            reason=_reason(
                [
                    ("archive_no_head", pl.col("_no_head")),
                    ("archive_no_downstream", pl.col("_no_downstream")),
                    ("head_missing", pl.col("_head_missing")),
                    ("downstream_missing", pl.col("_downstream_missing")),
                    ("zero_supply", pl.col("supply_kwh") <= 0),
                ]
            )
        )
        .with_columns(status=_status())
    )
    return FEEDER_LOSS_MONTHLY.conform(monthly).sort("month", "feeder_id").collect()
