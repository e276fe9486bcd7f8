"""Supply interruptions from meter events, plan compliance and reliability indices. Pure polars.

The steps, each a function of frames (no I/O, no loops over rows):

1. :func:`meter_interruptions`: per meter, POWER_OFF paired with the next POWER_ON. Events
   are sorted first (out-of-order deliveries), repeats of the same state dropped (an OFF
   after an OFF with no sign of supply between them), a missing ON closed by the first
   later sign of supply (another event, or a curve slot with energy), a missing OFF opened
   at the last sign of supply before the ON. Momentary interruptions (≤ 3 min) are flagged.
2. :func:`outage_events`: interruptions grouped into area interruptions (the area master
   meter's, or ≥ 50 % of the area's customer meters off within 5 minutes of each other) and
   customer interruptions (the rest), each matched to a plan of its feeder or area
   (``planned``/``temporary``) or ``fault``, with its deviations from the plan.
3. :func:`plan_checks`: per plan, executed or not, notice lead time against the notice
   rules, early start, overrun, actual against planned minutes and scope.
4. :func:`reliability`: customers served, customer interruptions, customer-hours, SAIFI,
   SAIDI and RS-1 per area, feeder and org unit (DL/T 836), also without pre-arranged
   (planned and temporary) outages.
5. :func:`frequent_customers`, :func:`mapping_suspects`, :func:`meter_days`: the lists and
   the per-meter-day outage minutes other stages read.

The rules are those of the data contract (§1 "Outages come from the meters"); every figure
is :class:`OutageConfig` (``config/outages.toml``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from ..schemas.curves import SLOTS
from ..schemas.loss_diagnosis import LOSS_DIAGNOSIS, RULES

OFF, ON = "POWER_OFF", "POWER_ON"
SLOT_MIN = 15

# --- configuration -------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InterruptionConfig(_Model):
    momentary_max_min: float = Field(3, ge=0, description="an interruption this short or shorter is momentary")
    evidence_window_hours: float = Field(24, gt=0, description="how far other evidence of supply is looked for")


class AreaConfig(_Model):
    customer_share: float = Field(0.5, gt=0, le=1, description="share of an area's customers off together")
    together_min: float = Field(5, ge=0, description="minutes within which their interruptions start")


class PlanConfig(_Model):
    planned_notice_hours: float = Field(168, ge=0, description="notice a planned outage needs (7 days)")
    temporary_notice_hours: float = Field(24, ge=0, description="notice a temporary outage needs (24 h)")
    tolerance_min: float = Field(15, ge=0, description="minutes an outage may start early or end late")


class FrequentConfig(_Model):
    months: int = Field(12, ge=1, description="trailing months counted")
    max_interruptions: int = Field(3, ge=0, description="customers interrupted more often are listed")


class MappingConfig(_Model):
    min_coincidences: int = Field(2, ge=1, description="coincidences with another area's outages needed")
    window_days: int = Field(31, ge=1, description="look-back of the coincidence count")


class QualityConfig(_Model):
    min_outage_min: float = Field(60, ge=0, description="outage minutes that exempt a meter-day from theft screens")


class ReliabilityConfig(_Model):
    default_org: str = Field("default", min_length=1, description="org unit of meters without an org_id")


class OutageConfig(_Model):
    interruptions: InterruptionConfig = Field(default_factory=InterruptionConfig, description="pairing of events")
    area: AreaConfig = Field(default_factory=AreaConfig, description="area interruptions")
    plans: PlanConfig = Field(default_factory=PlanConfig, description="notice rules and plan tolerance")
    frequent: FrequentConfig = Field(default_factory=FrequentConfig, description="frequent-outage customers")
    mapping: MappingConfig = Field(default_factory=MappingConfig, description="mapping suspects from outages")
    quality: QualityConfig = Field(default_factory=QualityConfig, description="outage-aware data quality")
    reliability: ReliabilityConfig = Field(default_factory=ReliabilityConfig, description="reliability scopes")


# --- 1. interruptions per meter ------------------------------------------------------------

INTERRUPTION_SCHEMA = pl.Schema(
    {
        "meter_id": pl.String(),
        "start_time": pl.Datetime("us"),
        "end_time": pl.Datetime("us"),
        "start_source": pl.String(),
        "end_source": pl.String(),
        "duration_min": pl.Float64(),
        "momentary": pl.Boolean(),
    }
)


def supply_evidence(events: pl.LazyFrame, curves: pl.LazyFrame, meters: pl.Series) -> pl.DataFrame:
    """Signs of supply of ``meters``: other events and curve slots with energy.

    One row per sign: ``meter_id``, ``seen_from`` and ``seen_to`` (the interval the meter was
    seen with supply: an event's instant, a slot's 15 minutes) and ``source``.
    """
    wanted = meters.implode()
    other = (
        events.filter(pl.col("meter_id").is_in(wanted) & ~pl.col("event_code").is_in([OFF, ON]))
        .select("meter_id", pl.col("event_time").alias("seen_from"), pl.col("event_time").alias("seen_to"))
        .with_columns(pl.lit("event").alias("source"))
    )
    slots = (
        curves.filter(pl.col("meter_id").is_in(wanted))
        .select("meter_id", "date", *SLOTS)
        .unpivot(index=["meter_id", "date"], on=list(SLOTS), variable_name="_slot", value_name="_kwh")
        .filter(pl.col("_kwh") > 0)
        .with_columns(
            (
                pl.col("date").cast(pl.Datetime("us"))
                + pl.duration(minutes=(pl.col("_slot").str.slice(1).cast(pl.Int32) - 1) * SLOT_MIN)
            ).alias("seen_from")
        )
        .select(
            "meter_id",
            "seen_from",
            (pl.col("seen_from") + pl.duration(minutes=SLOT_MIN)).alias("seen_to"),
            pl.lit("curve").alias("source"),
        )
    )
    return pl.concat([other, slots], how="vertical_relaxed").collect()


def _asof(left: pl.DataFrame, right: pl.DataFrame, on: str, strategy: str, prefix: str) -> pl.DataFrame:
    """``left`` with the nearest ``right`` row of its meter before/after ``on``."""
    r = right.sort(on).rename({c: f"{prefix}{c}" for c in right.columns if c != "meter_id"})
    return left.sort("_t").join_asof(
        r,
        left_on="_t",
        right_on=f"{prefix}{on}",
        by="meter_id",
        strategy=strategy,  # type: ignore[arg-type]
        allow_exact_matches=False,
        check_sortedness=False,
    )


def _shift(col: str, n: int) -> pl.Expr:
    """``col`` of the previous (n=1) or next (n=-1) row of the same meter, on a frame sorted
    by meter (cheaper than a window per meter)."""
    same = pl.col("meter_id") == pl.col("meter_id").shift(n)
    return pl.when(same).then(pl.col(col).shift(n))


def power_events(events: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """POWER_OFF/ON events, one per (meter, time, code), sorted by meter and time."""
    return (
        events.lazy()
        .filter(pl.col("event_code").is_in([OFF, ON]))
        .select("meter_id", pl.col("event_time").alias("_t"), (pl.col("event_code") == OFF).alias("_off"))
        .unique()
        .sort("meter_id", "_t", "_off")
        .collect()
    )


def needs_evidence(power: pl.DataFrame) -> pl.Series:
    """Meters with an OFF not followed by an ON or an ON not preceded by an OFF."""
    nxt = _shift("_off", -1)
    prv = _shift("_off", 1)
    odd = (pl.col("_off") & (nxt.is_null() | nxt)) | (~pl.col("_off") & (prv.is_null() | ~prv))
    return power.filter(odd)["meter_id"].unique().sort()


def lone_meters(power: pl.DataFrame, areas: pl.DataFrame, cfg: OutageConfig) -> pl.Series:
    """Meters with a lost ON or OFF (:func:`needs_evidence`) that no other meter of their area
    saw: no power event of another meter of the area within ``area.together_min`` of it.

    ``areas``: ``date, meter_id, area_id`` of the archive. The other meters' events close
    an area interruption; only these meters need their curves as evidence.
    """
    together = dt.timedelta(minutes=cfg.area.together_min)
    nxt = _shift("_off", -1)
    prv = _shift("_off", 1)
    odd = (pl.col("_off") & (nxt.is_null() | nxt)) | (~pl.col("_off") & (prv.is_null() | ~prv))
    placed = power.with_columns(pl.col("_t").dt.date().alias("date")).join(
        areas.select("date", "meter_id", "area_id"), on=["date", "meter_id"], how="left"
    )
    odd_rows = placed.filter(odd.fill_null(False)).with_row_index("_k")
    seen = (
        odd_rows.filter(pl.col("area_id").is_not_null())
        .join(placed.select("area_id", pl.col("meter_id").alias("_other"), pl.col("_t").alias("_ot")), on="area_id")
        .filter((pl.col("_other") != pl.col("meter_id")) & ((pl.col("_ot") - pl.col("_t")).abs() <= together))
        .select("_k")
        .unique()
    )
    return odd_rows.join(seen, on="_k", how="anti")["meter_id"].unique().sort()


def meter_interruptions(power: pl.DataFrame, evidence: pl.DataFrame, cfg: OutageConfig) -> pl.DataFrame:
    """Interruptions of each meter from its POWER_OFF/ON events (see the module doc).

    ``power``: :func:`power_events`. ``evidence``: :func:`supply_evidence` (of the meters
    :func:`needs_evidence` names; other meters need none).
    """
    window = dt.timedelta(hours=cfg.interruptions.evidence_window_hours)
    ev = evidence.select("meter_id", "seen_from", "seen_to", "source")
    p = power
    after = _asof(p, ev.select("meter_id", "seen_from", "source"), "seen_from", "forward", "_a")
    p = _asof(after, ev.select("meter_id", "seen_to", "source"), "seen_to", "backward", "_b").sort("meter_id", "_t")
    prev_off = _shift("_off", 1)
    prev_t = _shift("_t", 1)
    prev_after = _shift("_aseen_from", 1)
    # an OFF after an OFF with no sign of supply between them repeats the first
    # (an OFF more than the evidence window after the last is a new one even without evidence)
    repeat_off = (
        pl.col("_off")
        & prev_off.fill_null(False)
        & (prev_after.is_null() | (prev_after > pl.col("_t")))
        & (pl.col("_t") - prev_t <= window)
    )
    # an ON whose OFF was lost: supply was last seen a whole slot or more before it, after
    # the previous ON (else it only repeats that ON)
    lost_off = (
        pl.col("_bseen_to").is_not_null()
        & (prev_t.is_null() | (pl.col("_bseen_to") > prev_t))
        & (pl.col("_t") - pl.col("_bseen_to") >= dt.timedelta(minutes=SLOT_MIN))
        & (pl.col("_t") - pl.col("_bseen_to") <= window)
    )
    p = p.with_columns(lost_off.alias("_lost_off"), prev_off.alias("_prev_off"))
    repeat_on = ~pl.col("_off") & (pl.col("_prev_off").eq(False) | pl.col("_prev_off").is_null()) & ~pl.col("_lost_off")
    p = p.filter(~(repeat_off | repeat_on))
    nxt_off = _shift("_off", -1)
    nxt_t = _shift("_t", -1)
    near_after = pl.col("_aseen_from").is_not_null() & (pl.col("_aseen_from") - pl.col("_t") <= window)
    p = p.with_columns(nxt_off.alias("_next_off"), nxt_t.alias("_next_t"))
    paired = pl.col("_next_off").eq(False)
    from_off = p.filter(pl.col("_off")).select(
        "meter_id",
        pl.col("_t").alias("start_time"),
        pl.when(paired).then(pl.col("_next_t")).when(near_after).then(pl.col("_aseen_from")).alias("end_time"),
        pl.lit("event").alias("start_source"),
        pl.when(paired)
        .then(pl.lit("event"))
        .when(near_after)
        .then(pl.col("_asource"))
        .otherwise(pl.lit("open"))
        .alias("end_source"),
    )
    # an ON after an OFF is that OFF's end; an ON that lost its OFF opens at the last sign
    from_on = p.filter(~pl.col("_off") & pl.col("_lost_off") & ~pl.col("_prev_off").fill_null(False)).select(
        "meter_id",
        pl.col("_bseen_to").alias("start_time"),
        pl.col("_t").alias("end_time"),
        pl.col("_bsource").alias("start_source"),
        pl.lit("event").alias("end_source"),
    )
    out = pl.concat([from_off, from_on], how="vertical_relaxed")
    duration = (pl.col("end_time") - pl.col("start_time")).dt.total_seconds() / 60.0
    return (
        out.with_columns(duration.alias("duration_min"))
        .with_columns(
            (pl.col("duration_min") <= cfg.interruptions.momentary_max_min).fill_null(False).alias("momentary")
        )
        .sort("meter_id", "start_time")
        .select(INTERRUPTION_SCHEMA.names())
        .cast(pl.Schema(INTERRUPTION_SCHEMA))
    )


# --- 2. area and customer interruptions, matched to plans ------------------------------------

EVENT_COLUMNS = (
    "outage_id",
    "level",
    "source",
    "org_id",
    "feeder_id",
    "area_id",
    "meter_id",
    "customer_id",
    "start_time",
    "end_time",
    "duration_min",
    "momentary",
    "meters_off",
    "customers_affected",
    "cause",
    "plan_id",
    "deviations",
    "start_source",
    "end_source",
)


def _area_customers(service: pl.DataFrame) -> pl.DataFrame:
    """Customers in service per area and date."""
    return (
        service.filter((pl.col("role") == "customer") & pl.col("area_id").is_not_null())
        .group_by("area_id", "date")
        .agg(pl.len().cast(pl.Int64).alias("_area_customers"))
    )


def _placed(intr: pl.DataFrame, service: pl.DataFrame) -> pl.DataFrame:
    """Interruptions with the meter's archive row valid on their start date."""
    return intr.with_columns(pl.col("start_time").dt.date().alias("date")).join(
        service.select("date", "meter_id", "customer_id", "area_id", "feeder_id", "role", "org_id"),
        on=["date", "meter_id"],
        how="inner",
    )


def group_interruptions(
    intr: pl.DataFrame, service: pl.DataFrame, cfg: OutageConfig
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Area and customer interruptions (unmatched to plans) and the member table.

    Returns ``(events, members)``: events as :data:`EVENT_COLUMNS` less the plan columns;
    members: ``outage_id, meter_id, start_time, end_time`` for every meter interruption
    absorbed into an area interruption (and each customer interruption itself).
    """
    together = dt.timedelta(minutes=cfg.area.together_min)
    placed = _placed(intr, service).with_row_index("_i")
    masters = placed.filter((pl.col("role") == "area_master") & pl.col("area_id").is_not_null())
    customers = placed.filter(pl.col("role") == "customer")
    area_n = _area_customers(service)

    master_ev = masters.select(
        pl.format("A-{}-{}", "area_id", pl.col("start_time").dt.strftime("%Y%m%d%H%M%S")).alias("outage_id"),
        pl.lit("area").alias("level"),
        pl.lit("master").alias("source"),
        "org_id",
        "feeder_id",
        "area_id",
        "date",
        "start_time",
        "end_time",
        "start_source",
        "end_source",
        pl.col("meter_id").alias("_master"),
    )
    # customers off when their master went off (from 5 min before it, until it is back)
    absorbed = (
        customers.filter(pl.col("area_id").is_not_null())
        .join(
            master_ev.select(
                "outage_id", "area_id", pl.col("start_time").alias("_ms"), pl.col("end_time").alias("_me")
            ),
            on="area_id",
        )
        .filter(
            (pl.col("start_time") >= pl.col("_ms") - together)
            & (pl.col("_me").is_null() | (pl.col("start_time") <= pl.col("_me")))
        )
        .sort("_i", "_ms")
        .unique("_i", keep="first")
    )
    rest = customers.join(absorbed.select("_i"), on="_i", how="anti")
    # the others: clusters of customers going off together (starts chained within 5 min)
    in_area = rest.filter(pl.col("area_id").is_not_null()).sort("area_id", "start_time")
    new_cluster = (
        (pl.col("area_id") != pl.col("area_id").shift(1))
        | (pl.col("start_time") - pl.col("start_time").shift(1) > together)
    ).fill_null(True)
    in_area = in_area.with_columns(new_cluster.cum_sum().alias("_c"))
    clusters = (
        in_area.group_by("_c")
        .agg(
            pl.col("area_id").first(),
            pl.col("org_id").first(),
            pl.col("feeder_id").first(),
            pl.col("date").first(),
            pl.col("start_time").min(),
            pl.col("end_time").max(),
            pl.col("end_time").is_null().all().alias("_open"),
            pl.col("meter_id").n_unique().alias("_n"),
        )
        .join(area_n, on=["area_id", "date"], how="left")
        .filter(pl.col("_n") >= cfg.area.customer_share * pl.col("_area_customers"))
    )
    cluster_ev = clusters.select(
        pl.format("A-{}-{}", "area_id", pl.col("start_time").dt.strftime("%Y%m%d%H%M%S")).alias("outage_id"),
        pl.lit("area").alias("level"),
        pl.lit("customers").alias("source"),
        "org_id",
        "feeder_id",
        "area_id",
        "date",
        "start_time",
        pl.when(~pl.col("_open")).then(pl.col("end_time")).alias("end_time"),
        pl.lit("customers").alias("start_source"),
        pl.when(pl.col("_open")).then(pl.lit("open")).otherwise(pl.lit("customers")).alias("end_source"),
        "_c",
    )
    in_cluster = in_area.join(cluster_ev.select("_c", "outage_id"), on="_c")
    single = rest.join(in_cluster.select("_i"), on="_i", how="anti")
    customer_ev = single.select(
        pl.format("C-{}-{}", "meter_id", pl.col("start_time").dt.strftime("%Y%m%d%H%M%S")).alias("outage_id"),
        pl.lit("customer").alias("level"),
        pl.lit("meter").alias("source"),
        "org_id",
        "feeder_id",
        "area_id",
        "meter_id",
        "customer_id",
        "date",
        "start_time",
        "end_time",
        "start_source",
        "end_source",
        pl.lit(1, pl.Int64).alias("meters_off"),
        pl.lit(1, pl.Int64).alias("customers_affected"),
    )
    members = pl.concat(
        [
            m.select("outage_id", "meter_id", "start_time", "end_time")
            for m in (
                absorbed,
                in_cluster,
                customer_ev,
                master_ev.select("outage_id", pl.col("_master").alias("meter_id"), "start_time", "end_time"),
            )
        ]
    )
    off = members.group_by("outage_id").agg(pl.col("meter_id").n_unique().cast(pl.Int64).alias("meters_off"))
    area_ev = (
        pl.concat([master_ev.drop("_master"), cluster_ev.drop("_c")])
        .join(area_n, on=["area_id", "date"], how="left")
        .join(off, on="outage_id", how="left")
        .with_columns(
            pl.lit(None, pl.String).alias("meter_id"),
            pl.lit(None, pl.String).alias("customer_id"),
            pl.col("_area_customers").fill_null(0).alias("customers_affected"),
        )
        .drop("_area_customers")
    )
    events = pl.concat([area_ev, customer_ev], how="diagonal_relaxed")
    duration = (pl.col("end_time") - pl.col("start_time")).dt.total_seconds() / 60.0
    events = events.with_columns(duration.alias("duration_min")).with_columns(
        (pl.col("duration_min") <= cfg.interruptions.momentary_max_min).fill_null(False).alias("momentary")
    )
    return events.drop("date").sort("start_time", "outage_id"), members.sort("outage_id", "meter_id")


PLAN_COLUMNS = ("plan_id", "kind", "feeder_id", "area_id", "planned_start", "planned_end", "notice_time")


def match_plans(events: pl.DataFrame, plans: pl.DataFrame, cfg: OutageConfig) -> pl.DataFrame:
    """``events`` with cause, plan_id and deviations.

    An interruption overlapping a plan of its feeder in time is that plan's (its kind is
    the cause): one of the plan's own area (or a whole-feeder plan) first, else the
    feeder's plan with the deviation ``outside_plan_scope`` (an outage wider than its
    plan). Deviations: ``late_notice`` (less notice than the rule of the plan's kind),
    ``early_start``/``overrun`` (more than the tolerance before/after the plan).
    """
    tol = dt.timedelta(minutes=cfg.plans.tolerance_min)
    p = plans.select(
        "plan_id",
        "kind",
        "feeder_id",
        pl.col("area_id").alias("_plan_area"),
        "planned_start",
        "planned_end",
        "notice_time",
    )
    end = pl.coalesce("end_time", "start_time")
    cand = (
        events.select("outage_id", "feeder_id", "area_id", "start_time", "end_time")
        .join(p, on="feeder_id")
        .filter((pl.col("start_time") < pl.col("planned_end")) & (end > pl.col("planned_start")))
        .with_columns(
            (pl.col("_plan_area").is_null() | (pl.col("_plan_area") == pl.col("area_id"))).alias("_in_scope"),
            (pl.min_horizontal(end, pl.col("planned_end")) - pl.max_horizontal("start_time", "planned_start")).alias(
                "_overlap"
            ),
        )
    )
    # outside its scope only when it went off with one of the plan's own outages (a wider
    # outage), not a fault elsewhere on the feeder that happens to overlap in time
    together = dt.timedelta(minutes=cfg.area.together_min)
    own = cand.filter("_in_scope").select("plan_id", pl.col("start_time").alias("_own_start"))
    wider = (
        cand.filter(~pl.col("_in_scope"))
        .join(own, on="plan_id")
        .filter((pl.col("start_time") - pl.col("_own_start")).abs() <= together)
        .drop("_own_start")
        .unique(["outage_id", "plan_id"])
    )
    cand = (
        pl.concat([cand.filter("_in_scope"), wider])
        .sort(["outage_id", "_in_scope", "_overlap", "plan_id"], descending=[False, True, True, False])
        .unique("outage_id", keep="first")
    )
    need = (
        pl.when(pl.col("kind") == "planned")
        .then(pl.lit(cfg.plans.planned_notice_hours))
        .otherwise(pl.lit(cfg.plans.temporary_notice_hours))
    )
    lead_h = (pl.col("planned_start") - pl.col("notice_time")).dt.total_seconds() / 3600.0
    devs = pl.concat_list(
        pl.when(~pl.col("_in_scope")).then(pl.lit("outside_plan_scope")),
        pl.when(lead_h < need).then(pl.lit("late_notice")),
        pl.when(pl.col("start_time") < pl.col("planned_start") - tol).then(pl.lit("early_start")),
        pl.when(pl.col("end_time") > pl.col("planned_end") + tol).then(pl.lit("overrun")),
    ).list.drop_nulls()
    cand = cand.select("outage_id", "plan_id", pl.col("kind").alias("cause"), devs.list.join(",").alias("deviations"))
    return (
        events.join(cand, on="outage_id", how="left")
        .with_columns(pl.col("cause").fill_null("fault"), pl.col("deviations").fill_null(""))
        .select(EVENT_COLUMNS)
        .sort("start_time", "outage_id")
    )


# --- 3. plan compliance ----------------------------------------------------------------------

PLAN_CHECK_COLUMNS = (
    "plan_id",
    "kind",
    "org_id",
    "feeder_id",
    "area_id",
    "planned_start",
    "planned_end",
    "notice_time",
    "status",
    "notice_lead_hours",
    "notice_required_hours",
    "notice_ok",
    "actual_start",
    "actual_end",
    "planned_min",
    "actual_min",
    "started_early",
    "overran",
    "customers_in_scope",
    "customers_affected",
    "outages",
    "wider_than_plan",
    "deviations",
)


def plan_checks(
    plans: pl.DataFrame, events: pl.DataFrame, service: pl.DataFrame, horizon: dt.datetime | None, cfg: OutageConfig
) -> pl.DataFrame:
    """One row per plan: was it executed, with the notice it needed, on time, in scope.

    ``events``: :func:`match_plans` output. ``service``: archive rows per date (for the
    customers in the plan's scope on its planned start date). ``horizon``: the end of the
    data the lake holds; a plan not executed whose end is later is ``pending``.
    """
    tol = dt.timedelta(minutes=cfg.plans.tolerance_min)
    ev = events.filter(pl.col("plan_id").is_not_null() & ~pl.col("momentary"))
    got = ev.group_by("plan_id").agg(
        pl.col("start_time").min().alias("actual_start"),
        pl.col("end_time").max().alias("actual_end"),
        pl.col("customers_affected").sum().alias("customers_affected"),
        pl.len().cast(pl.Int64).alias("outages"),
        pl.col("deviations").str.contains("outside_plan_scope").any().alias("_outside"),
    )
    cust = service.filter(pl.col("role") == "customer")
    p = plans.with_columns(pl.col("planned_start").dt.date().alias("date"))
    feeder_scope = (
        p.join(cust.select("date", "feeder_id", pl.col("area_id").alias("_a"), "org_id"), on=["date", "feeder_id"])
        .filter(pl.col("area_id").is_null() | (pl.col("area_id") == pl.col("_a")))
        .group_by("plan_id")
        .agg(pl.len().cast(pl.Int64).alias("customers_in_scope"), pl.col("org_id").first())
    )
    need = (
        pl.when(pl.col("kind") == "planned")
        .then(pl.lit(cfg.plans.planned_notice_hours))
        .otherwise(pl.lit(cfg.plans.temporary_notice_hours))
    )
    lead = (pl.col("planned_start") - pl.col("notice_time")).dt.total_seconds() / 3600.0
    executed = pl.col("outages").fill_null(0) > 0
    out = (
        p.join(got, on="plan_id", how="left")
        .join(feeder_scope, on="plan_id", how="left")
        .with_columns(
            pl.when(executed)
            .then(pl.lit("executed"))
            .when(pl.lit(horizon is not None) & (pl.col("planned_end") <= pl.lit(horizon, pl.Datetime("us"))))
            .then(pl.lit("not_executed"))
            .otherwise(pl.lit("pending"))
            .alias("status"),
            lead.alias("notice_lead_hours"),
            need.alias("notice_required_hours"),
            (lead >= need).alias("notice_ok"),
            ((pl.col("planned_end") - pl.col("planned_start")).dt.total_seconds() / 60.0).alias("planned_min"),
            ((pl.col("actual_end") - pl.col("actual_start")).dt.total_seconds() / 60.0).alias("actual_min"),
            (pl.col("actual_start") < pl.col("planned_start") - tol).alias("started_early"),
            (pl.col("actual_end") > pl.col("planned_end") + tol).alias("overran"),
            pl.col("customers_in_scope").fill_null(0),
            pl.col("customers_affected").fill_null(0),
            pl.col("outages").fill_null(0),
        )
        .with_columns(
            (pl.col("_outside").fill_null(False) | (pl.col("customers_affected") > pl.col("customers_in_scope"))).alias(
                "wider_than_plan"
            )
        )
    )
    devs = pl.concat_list(
        pl.when(pl.col("status") == "not_executed").then(pl.lit("not_executed")),
        pl.when(~pl.col("notice_ok")).then(pl.lit("late_notice")),
        pl.when(pl.col("started_early")).then(pl.lit("early_start")),
        pl.when(pl.col("overran")).then(pl.lit("overrun")),
        pl.when(pl.col("wider_than_plan")).then(pl.lit("wider_than_plan")),
    ).list.drop_nulls()
    return (
        out.with_columns(
            devs.list.join(",").alias("deviations"),
            pl.col("started_early").fill_null(False),
            pl.col("overran").fill_null(False),
        )
        .select(PLAN_CHECK_COLUMNS)
        .sort("planned_start", "plan_id")
    )


# --- 4. reliability (DL/T 836) -------------------------------------------------------------------


def affected_customers(events: pl.DataFrame, service: pl.DataFrame) -> pl.DataFrame:
    """One row per customer interrupted by a non-momentary outage: ``outage_id``,
    ``customer_id``, ``meter_id``, ``area_id``, ``feeder_id``, ``org_id``, ``start_time``,
    ``hours``, ``cause``. An area interruption interrupts every customer of the area in
    service at its start (by the archive); a customer interruption its own customer."""
    ev = events.filter(~pl.col("momentary") & pl.col("end_time").is_not_null()).with_columns(
        (pl.col("duration_min") / 60.0).alias("hours"), pl.col("start_time").dt.date().alias("date")
    )
    cust = service.filter(pl.col("role") == "customer").select(
        "date", "meter_id", "customer_id", "area_id", "feeder_id", "org_id"
    )
    area = ev.filter(pl.col("level") == "area").select("outage_id", "area_id", "date", "start_time", "hours", "cause")
    area = area.join(cust, on=["area_id", "date"])
    one = ev.filter(pl.col("level") == "customer").select(
        "outage_id", "customer_id", "meter_id", "area_id", "feeder_id", "org_id", "start_time", "hours", "cause"
    )
    cols = ["outage_id", "customer_id", "meter_id", "area_id", "feeder_id", "org_id", "start_time", "hours", "cause"]
    return pl.concat([area.select(cols), one.select(cols)])


RELIABILITY_COLUMNS = (
    "scope",
    "scope_id",
    "month",
    "customers_served",
    "customer_interruptions",
    "customer_hours",
    "saifi",
    "saidi_hours",
    "rs1",
    "customer_interruptions_unplanned",
    "customer_hours_unplanned",
    "saifi_unplanned",
    "saidi_unplanned_hours",
    "rs1_unplanned",
    "period_hours",
)


def reliability(affected: pl.DataFrame, served: pl.DataFrame, month: str) -> pl.DataFrame:
    """Reliability of one month per area, feeder and org unit (DL/T 836).

    ``affected``: :func:`affected_customers` of the interruptions starting in the month.
    ``served``: the customers in service on the month's last day (``customer_id``,
    ``area_id``, ``feeder_id``, ``org_id``). SAIFI = Σ customer interruptions / customers
    served; SAIDI = Σ customer interruption hours / customers served; RS-1 = 1 - SAIDI /
    hours of the month. The ``_unplanned`` columns leave out pre-arranged interruptions
    (planned and temporary, 预安排停电): faults only.
    """
    first = dt.date.fromisoformat(f"{month}-01")
    nxt = (first + dt.timedelta(days=32)).replace(day=1)
    hours = (nxt - first).days * 24.0
    fault = pl.col("cause") == "fault"
    frames = []
    combos = served.group_by("area_id", "feeder_id", "org_id").agg(pl.len().cast(pl.Int64).alias("_n"))
    for scope, col in (("area", "area_id"), ("feeder", "feeder_id"), ("org", "org_id")):
        n = combos.filter(pl.col(col).is_not_null()).group_by(col).agg(pl.col("_n").sum().alias("customers_served"))
        a = (
            affected.filter(pl.col(col).is_not_null())
            .group_by(col)
            .agg(
                pl.len().cast(pl.Int64).alias("customer_interruptions"),
                pl.col("hours").sum().alias("customer_hours"),
                fault.sum().cast(pl.Int64).alias("customer_interruptions_unplanned"),
                pl.col("hours").filter(fault).sum().alias("customer_hours_unplanned"),
            )
        )
        frames.append(
            n.join(a, on=col, how="full", coalesce=True).select(
                pl.lit(scope).alias("scope"), pl.col(col).alias("scope_id"), pl.exclude(col)
            )
        )
    served_n = pl.col("customers_served").fill_null(0)
    per = lambda c: pl.when(served_n > 0).then(pl.col(c) / served_n)  # noqa: E731
    return (
        pl.concat(frames, how="vertical_relaxed")
        .with_columns(
            pl.lit(month).alias("month"),
            served_n.alias("customers_served"),
            pl.col("customer_interruptions", "customer_interruptions_unplanned").fill_null(0),
            pl.col("customer_hours", "customer_hours_unplanned").fill_null(0.0),
        )
        .with_columns(
            per("customer_interruptions").alias("saifi"),
            per("customer_hours").alias("saidi_hours"),
            per("customer_interruptions_unplanned").alias("saifi_unplanned"),
            per("customer_hours_unplanned").alias("saidi_unplanned_hours"),
            pl.lit(hours).alias("period_hours"),
        )
        .with_columns(
            (1.0 - pl.col("saidi_hours") / hours).alias("rs1"),
            (1.0 - pl.col("saidi_unplanned_hours") / hours).alias("rs1_unplanned"),
        )
        .select(RELIABILITY_COLUMNS)
        .sort("scope", "scope_id")
    )


# --- 5. frequent-outage customers, mapping suspects, outage minutes per meter-day ----------------


def frequent_customers(affected: pl.DataFrame, month: str, cfg: OutageConfig) -> pl.DataFrame:
    """Customers interrupted more than ``max_interruptions`` times in the ``months`` months
    ending with ``month`` (``affected`` holds at least those months)."""
    y, m = (int(x) for x in month.split("-"))
    end = (dt.date(y, m, 1) + dt.timedelta(days=32)).replace(day=1)
    k = y * 12 + (m - 1) - (cfg.frequent.months - 1)
    start = dt.date(k // 12, k % 12 + 1, 1)
    win = affected.filter(
        (pl.col("start_time") >= pl.lit(dt.datetime.combine(start, dt.time())))
        & (pl.col("start_time") < pl.lit(dt.datetime.combine(end, dt.time())))
    )
    return (
        win.sort("start_time")
        .group_by("customer_id")
        .agg(
            pl.col("meter_id").last(),
            pl.col("area_id").last(),
            pl.col("feeder_id").last(),
            pl.col("org_id").last(),
            pl.len().cast(pl.Int64).alias("interruptions"),
            (pl.col("cause") == "fault").sum().cast(pl.Int64).alias("fault_interruptions"),
            pl.col("hours").sum().alias("interruption_hours"),
            pl.col("start_time").max().alias("last_interruption"),
        )
        .filter(pl.col("interruptions") > cfg.frequent.max_interruptions)
        .with_columns(
            pl.lit(month).alias("month"),
            pl.lit(start).alias("window_start"),
            pl.lit(cfg.frequent.max_interruptions, pl.Int64).alias("threshold"),
        )
        .select(
            "month",
            "customer_id",
            "meter_id",
            "area_id",
            "feeder_id",
            "org_id",
            "window_start",
            "interruptions",
            "fault_interruptions",
            "interruption_hours",
            "last_interruption",
            "threshold",
        )
        .sort("interruptions", "customer_id", descending=[True, False])
    )


def meter_days(events: pl.DataFrame, members: pl.DataFrame, service: pl.DataFrame) -> pl.DataFrame:
    """Outage minutes per meter and date: ``meter_id, date, outage_min, first_slot,
    last_slot, off_at_midnight``.

    A meter is off during its own interruptions and during every area interruption of its
    area (also when its own events were lost). ``first_slot..last_slot`` are the curve
    slots wholly inside one of its interruptions (the widest run on the date; null when
    none), ``off_at_midnight`` whether it was off at 00:00 of the date (when registers
    freeze). Momentary interruptions are left out; an open one (no end) runs to the end of
    its start date.
    """
    ev = events.filter(~pl.col("momentary")).with_columns(
        pl.coalesce("end_time", (pl.col("start_time").dt.date() + pl.duration(days=1)).cast(pl.Datetime("us"))).alias(
            "_end"
        ),
        pl.col("start_time").dt.date().alias("date"),
    )
    area = (
        ev.filter(pl.col("level") == "area")
        .select("area_id", "date", "start_time", "_end")
        .join(
            service.select("date", "area_id", "meter_id").filter(pl.col("area_id").is_not_null()),
            on=["area_id", "date"],
        )
        .select("meter_id", "start_time", "_end")
    )
    own = members.join(ev.select("outage_id", "_end"), on="outage_id").select(
        "meter_id", "start_time", pl.coalesce("end_time", "_end").alias("_end")
    )
    spans = pl.concat([area, own]).unique()
    days = spans.with_columns(
        pl.date_ranges(pl.col("start_time").dt.date(), (pl.col("_end") - pl.duration(microseconds=1)).dt.date()).alias(
            "date"
        )
    ).explode("date")
    day0 = pl.col("date").cast(pl.Datetime("us"))
    lo = pl.max_horizontal("start_time", day0)
    hi = pl.min_horizontal("_end", day0 + pl.duration(days=1))
    days = days.with_columns(lo.alias("_lo"), hi.alias("_hi")).with_columns(
        ((pl.col("_lo") - day0).dt.total_seconds() / 60.0).alias("_lo_min"),
        ((pl.col("_hi") - day0).dt.total_seconds() / 60.0).alias("_hi_min"),
    )
    first = (pl.col("_lo_min") / SLOT_MIN).ceil().cast(pl.Int32) + 1
    last = (pl.col("_hi_min") / SLOT_MIN).floor().cast(pl.Int32)
    days = days.with_columns(
        pl.when(last >= first).then(first).alias("first_slot"),
        pl.when(last >= first).then(last).alias("last_slot"),
        (pl.col("_lo_min") == 0).alias("_midnight"),
    )
    return (
        days.sort("meter_id", "date", "_lo")
        .group_by("meter_id", "date")
        .agg(
            # overlapping spans (an own interruption inside its area's) count once: the
            # union's length is Σ(hi - max(lo, running max of earlier hi))
            (
                pl.col("_hi_min")
                - pl.max_horizontal(pl.col("_lo_min"), pl.col("_hi_min").cum_max().shift(1).fill_null(0.0))
            )
            .clip(lower_bound=0.0)
            .sum()
            .alias("outage_min"),
            pl.col("first_slot").sort_by(pl.col("last_slot") - pl.col("first_slot")).last(),
            pl.col("last_slot").sort_by(pl.col("last_slot") - pl.col("first_slot")).last(),
            pl.col("_midnight").any().alias("off_at_midnight"),
        )
        .sort("date", "meter_id")
    )


def mapping_suspects(
    events: pl.DataFrame, members: pl.DataFrame, service: pl.DataFrame, window_end: dt.date, cfg: OutageConfig
) -> pl.DataFrame:
    """Customers whose interruptions coincide with another area's area interruptions and
    with none of their own area's (户变关系核查 by outage events).

    Returns ``meter_id, customer_id, area_id, other_area_id, coincidences,
    own_area_outages, own_coincidences, score, evidence`` for the window of
    ``window_days`` days ending ``window_end``: :func:`mapping_suspects_at` of that one end.
    """
    cust = (
        service.filter(pl.col("role") == "customer")
        .sort("date")
        .group_by("meter_id")
        .agg(pl.col("customer_id").last(), pl.col("area_id").last())
        .with_columns(pl.lit(window_end, pl.Date()).alias("date"))
    )
    return mapping_suspects_at(events, members, cust, [window_end], cfg).drop("date")


def mapping_suspects_at(
    events: pl.DataFrame,
    members: pl.DataFrame,
    customers: pl.DataFrame,
    ends: Sequence[dt.date],
    cfg: OutageConfig,
) -> pl.DataFrame:
    """:func:`mapping_suspects` of several window ends in one pass, with ``date`` (the end).

    ``customers``: ``date, meter_id, customer_id, area_id``: each customer meter as the
    archive valid on the end ``date`` places it. Each end's window holds the events whose
    start date is in it; every count and join is by end, so each end's rows are those it
    gives alone.
    """
    together = dt.timedelta(minutes=cfg.area.together_min)
    back = dt.timedelta(days=cfg.mapping.window_days - 1)
    at = pl.DataFrame({"date": sorted(set(ends))}, schema={"date": pl.Date()})
    started = pl.col("start_time").dt.date()
    ev = (
        events.filter(~pl.col("momentary"))
        .drop("date", strict=False)
        .join(at, how="cross")
        .filter((started >= pl.col("date") - back) & (started <= pl.col("date")))
    )
    area_ev = ev.filter(pl.col("level") == "area").select(
        "date",
        pl.col("outage_id").alias("_aid"),
        pl.col("area_id").alias("other_area_id"),
        pl.col("start_time").alias("_as"),
    )
    own = (
        ev.filter(pl.col("level") == "customer")
        .select("date", "meter_id", "start_time")
        .join(customers.select("date", "meter_id", "customer_id", "area_id"), on=["date", "meter_id"])
        .filter(pl.col("area_id").is_not_null())
    )
    hits = (
        own.join(area_ev, on="date")
        .filter(
            ((pl.col("start_time") - pl.col("_as")).abs() <= together) & (pl.col("other_area_id") != pl.col("area_id"))
        )
        .group_by("date", "meter_id", "customer_id", "area_id", "other_area_id")
        .agg(pl.col("_aid").n_unique().cast(pl.Int64).alias("coincidences"))
    )
    area_count = area_ev.group_by("date", "other_area_id").agg(pl.len().cast(pl.Int64).alias("_other_outages"))
    own_count = area_ev.group_by("date", pl.col("other_area_id").alias("area_id")).agg(
        pl.len().cast(pl.Int64).alias("own_area_outages")
    )
    own_with = (
        members.drop("date", strict=False)
        .join(area_ev.select("date", pl.col("_aid").alias("outage_id")), on="outage_id")
        .group_by("date", "meter_id")
        .agg(pl.col("outage_id").n_unique().cast(pl.Int64).alias("own_coincidences"))
    )
    out = (
        hits.join(area_count, on=["date", "other_area_id"])
        .join(own_count, on=["date", "area_id"], how="left")
        .join(own_with, on=["date", "meter_id"], how="left")
        .with_columns(pl.col("own_area_outages", "own_coincidences").fill_null(0))
        .filter((pl.col("coincidences") >= cfg.mapping.min_coincidences) & (pl.col("own_coincidences") == 0))
        .sort(["date", "meter_id", "coincidences", "other_area_id"], descending=[False, False, True, False])
        .unique(["date", "meter_id"], keep="first")
        .with_columns(
            (pl.col("coincidences") / pl.col("_other_outages")).clip(upper_bound=1.0).alias("score"),
            (pl.col("date") - back).alias("window_start"),
        )
    )
    evidence = pl.struct(
        pl.col("_other_outages").alias("other_area_outages"),
        pl.col("coincidences").alias("coincident_interruptions"),
        "own_area_outages",
        pl.col("own_coincidences").alias("own_area_outages_with_this_meter"),
        pl.col("window_start").cast(pl.String()).alias("window_start"),
    ).struct.json_encode()
    return (
        out.with_columns(evidence.alias("evidence"))
        .select(
            "date",
            "meter_id",
            "customer_id",
            "area_id",
            "other_area_id",
            "coincidences",
            "own_area_outages",
            "own_coincidences",
            "score",
            "window_start",
            "evidence",
        )
        .sort("date", "area_id", "meter_id")
    )


def with_mapping_suspects(diagnosis: pl.DataFrame, suspects: pl.DataFrame) -> pl.DataFrame:
    """``diagnosis`` (loss_diagnosis rows of one window end) plus a ``mapping_suspect`` row
    for each outage mapping suspect (:func:`mapping_suspects`) it does not already hold.

    The rows follow the loss_diagnosis contract: ``other_area_id`` the area whose outages the
    customer follows, ``evidence`` the outage counts, ``rank`` after the area's other mapping
    suspects by score. A meter the balance already names keeps that row.
    """
    if suspects.height == 0:
        return diagnosis
    key = ["area_id", "kind", "meter_id", "date"]
    area = diagnosis.group_by("area_id").agg(pl.col("area_status").first(), pl.col("area_loss_rate").first())
    prior = (
        diagnosis.filter(pl.col("kind") == "mapping_suspect")
        .group_by("area_id")
        .agg(pl.col("rank").max().alias("_prior"))
    )
    rows = (
        suspects.select(
            "date",
            "window_start",
            "area_id",
            pl.lit("mapping_suspect").alias("kind"),
            pl.lit(RULES["mapping_suspect"]).alias("rule"),
            pl.lit("warning").alias("severity"),
            "meter_id",
            "customer_id",
            pl.lit("customer").alias("role"),
            "other_area_id",
            "score",
            ((pl.col("date") - pl.col("window_start")).dt.total_days() + 1).cast(pl.Int32).alias("days"),
            pl.concat_str(pl.lit('{"source":"outage_events",'), pl.col("evidence").str.slice(1)).alias("evidence"),
        )
        .join(diagnosis.select(key), on=key, how="anti")
        .join(area, on="area_id", how="left")
        .join(prior, on="area_id", how="left")
        .with_columns(
            (pl.col("_prior").fill_null(0) + pl.col("score").rank("ordinal", descending=True).over("area_id"))
            .cast(pl.Int32)
            .alias("rank")
        )
    )
    return pl.concat([diagnosis, LOSS_DIAGNOSIS.conform(rows).collect()], how="vertical_relaxed")
