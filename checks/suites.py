"""Expectation suites, one per lake table: what the gate checks and how severe a failure is.

A table's suite starts from its contract in ``schemas/`` (the columns and types each
partition must carry, the key, coded columns, required columns; lineage for clean
tables; blocking findings for findings tables) and adds the table's own rules below
(identities such as loss = supply - sales, rates against their definition, shares
against configured thresholds). A table with no contract gets the checks every table
gets (readable, no card numbers in clear).

The rows of a table are reduced to one metrics row per partition in polars
(:mod:`meterlake.checks.metrics`); each :class:`Rule` bounds one metric, judged per
partition in polars (:mod:`meterlake.checks.judge`) and re-checked by Great
Expectations (:mod:`meterlake.checks.runner`). Small area-grain tables also get
:class:`RowRule` s whose findings list the offending rows.

Rule names are dotted ``<table>.<subject>.<check>``; a rule's ``severity`` is
``blocking`` (the run stops before anything is published) or ``warning`` (a note on
the run record); ``config/checks.toml [severity]`` overrides any of them by name.
Each rule cites the practice it follows in ``practice``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl

from meterlake.schemas._base import Table
from meterlake.schemas.landing import Landing

from .metrics import BASE_METRICS, FooterMetric, Metric, count, key_duplicates, not_in, nulls, num, share
from .thresholds import CheckThresholds, Severity

#: how a table is partitioned: by local date, by month, or by something else
#: (quarantine's dataset) whose partitions are all checked on every run
GRAINS = ("date", "month", "all")

#: the tables the gate expects to find (docs/architecture.md#validation); one that is absent from the
#: lake is skipped with a note. Any other table on disk is checked too.
EXPECTED_TABLES: tuple[tuple[str, str], ...] = (
    ("clean", "archive"),
    ("clean", "curves"),
    ("clean", "registers"),
    ("clean", "events"),
    ("clean", "purchases"),
    ("marts", "meter_daily"),
    ("marts", "collection_daily"),
    ("marts", "vee_findings"),
    ("marts", "area_loss_daily"),
    ("marts", "area_loss_monthly"),
    ("marts", "feeder_loss_daily"),
    ("marts", "loss_worklist_monthly"),
    ("marts", "anomalies"),
    ("marts", "bills_monthly"),
    ("marts", "prepay_daily"),
    ("marts", "receivables_monthly"),
    ("marts", "recovery_monthly"),
    ("marts", "customer_credit_monthly"),
    ("marts", "dunning_list"),
    ("marts", "outage_events"),
    ("marts", "reliability_monthly"),
    ("marts", "outage_plan_checks"),
    ("marts", "frequent_outage_customers"),
    ("marts", "quarantine"),
)

#: tables that must have a partition for every date (month) of a run, and how severe
#: a missing one is: a missing meter_daily day would read downstream as zero kWh
EVERY_PARTITION: dict[str, Severity] = {
    "meter_daily": "blocking",
    "collection_daily": "warning",
    "area_loss_daily": "warning",
    "feeder_loss_daily": "warning",
    "area_loss_monthly": "warning",
    "feeder_loss_monthly": "warning",
    "bills_monthly": "warning",
    "outage_events": "warning",
    "reliability_monthly": "warning",
    "loss_worklist_monthly": "warning",
}

CONTRACT = "CONTRACT.md"
VEE = "docs/domain.md#validation-checks"
GATE = "docs/architecture.md#validation: blocking expectations stop the run"


@dataclass(frozen=True)
class Rule:
    """A check on one column of the metrics frame: each partition's value must lie
    within [min_value, max_value] (inclusive; None = open)."""

    rule: str
    metric: str
    min_value: float | None = None
    max_value: float | None = None
    severity: Severity = "blocking"
    description: str = ""
    practice: str = ""

    @property
    def zero(self) -> bool:
        """A count of offending rows that must be 0."""
        return self.min_value is None and self.max_value == 0

    @property
    def expected(self) -> str:
        if self.min_value is None and self.max_value is not None:
            return f"at most {self.max_value:g}"
        if self.max_value is None and self.min_value is not None:
            return f"at least {self.min_value:g}"
        return f"between {self.min_value:g} and {self.max_value:g}"


@dataclass(frozen=True)
class RowRule:
    """A row-level check on a small table: values of ``column`` within bounds
    (``kind="between"``) or in ``value_set`` (``kind="in_set"``)."""

    rule: str
    column: str
    kind: str = "between"
    min_value: float | None = None
    max_value: float | None = None
    value_set: tuple[Any, ...] = ()
    severity: Severity = "warning"
    description: str = ""
    practice: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("between", "in_set"):
            raise ValueError(f"row rule {self.rule}: kind {self.kind!r} is not between or in_set")

    @property
    def expected(self) -> str:
        if self.kind == "in_set":
            return "one of " + ", ".join(map(str, self.value_set))
        return Rule(self.rule, self.column, self.min_value, self.max_value).expected


@dataclass(frozen=True)
class TableSuite:
    """Everything the gate knows about one table."""

    table: str
    layer: str
    partition_key: str
    grain: str
    description: str
    #: contract columns each partition file must carry (the partition key excluded)
    columns: Mapping[str, pl.DataType] = field(default_factory=dict)
    key: tuple[str, ...] = ()
    metrics: tuple[Metric, ...] = ()
    footer: tuple[FooterMetric, ...] = ()
    rules: tuple[Rule, ...] = ()
    #: every date (or month) of a run must have a partition
    every_partition: bool = False
    row_rules: tuple[RowRule, ...] = ()
    #: columns naming a row in row-level evidence (besides the partition)
    row_index: tuple[str, ...] = ()
    #: prepares the rows for the row-level rules (e.g. blanks uncomputable rates)
    row_view: Callable[[pl.LazyFrame], pl.LazyFrame] | None = None

    def __post_init__(self) -> None:
        if self.grain not in GRAINS:
            raise ValueError(f"suite {self.table}: grain {self.grain!r} is not one of {GRAINS}")
        names = set(BASE_METRICS) | {m.name for m in self.metrics} | {m.name for m in self.footer}
        for r in self.rules:
            if r.metric not in names:
                raise ValueError(
                    f"suite {self.table}: rule {r.rule} reads metric {r.metric!r}, which no metric computes"
                )

    @property
    def name(self) -> str:
        """The GX suite name."""
        return f"meterlake.{self.table}"

    def with_severities(self, overrides: Mapping[str, str]) -> TableSuite:
        """The suite with rule severities overridden by name (``off`` drops a rule)."""
        if not overrides:
            return self

        def fix(rules: tuple[Any, ...]) -> tuple[Any, ...]:
            out = []
            for r in rules:
                sev = overrides.get(r.rule, r.severity)
                if sev != "off":
                    out.append(replace(r, severity=sev))
            return tuple(out)

        return replace(self, rules=fix(self.rules), row_rules=fix(self.row_rules))


@dataclass(frozen=True)
class Extras:
    """A table's own rules, on top of what its contract gives."""

    metrics: tuple[Metric, ...] = ()
    rules: tuple[Rule, ...] = ()
    footer: tuple[FooterMetric, ...] = ()
    row_rules: tuple[RowRule, ...] = ()
    row_index: tuple[str, ...] = ()
    row_view: Callable[[pl.LazyFrame], pl.LazyFrame] | None = None
    #: columns the row view and row rules read
    row_needs: tuple[str, ...] = ()


# -- contracts ------------------------------------------------------------------------


def contract(name: str, layer: str) -> Table | None:
    """The table's contract from ``schemas/<name>.py``, or None when there is none."""
    if not name.isidentifier() or name.startswith("_"):
        return None
    try:
        module = importlib.import_module(f"meterlake.schemas.{name}")
    except ImportError:
        return None
    if layer == "clean":
        landing = getattr(module, "LANDING", None)
        if isinstance(landing, Landing) and landing.clean.name == name:
            return landing.clean
        return None
    for value in vars(module).values():
        if isinstance(value, Table) and value.name == name and value.layer == layer:
            return value
    return None


def grain_of(table: Table) -> str:
    part = table.partition_by
    if part is None:
        return "all"
    if table.schema.get(part) == pl.Date:
        return "date"
    return "month" if part == "month" else "all"


# -- rules every suite shares -----------------------------------------------------------


def base_rules(table: str, every_partition: Severity | None = None, schema: bool = True) -> list[Rule]:
    rules = [
        Rule(
            f"{table}.partition.readable",
            "unreadable",
            max_value=0,
            description="the partition file opens and its metrics evaluate",
            practice=GATE,
        ),
        Rule(
            f"{table}.pii.card_no",
            "pii_columns",
            max_value=0,
            description="no column holds a card number in clear",
            practice=f"{CONTRACT} §1 purchases.card_no: never published in clear in any mart",
        ),
    ]
    if schema:
        rules += [
            Rule(
                f"{table}.schema.columns",
                "missing_columns",
                max_value=0,
                description="the partition carries every column of its contract",
                practice=f"{CONTRACT} §3: each table has at least these columns",
            ),
            Rule(
                f"{table}.schema.types",
                "wrong_types",
                max_value=0,
                description="contract columns have their contract type (no numbers stored as text)",
                practice="every table written has a contract in schemas/ (docs/data_dictionary.md)",
            ),
        ]
    if every_partition is not None:
        rules.append(
            Rule(
                f"{table}.partition.present",
                "present",
                min_value=1,
                severity=every_partition,
                description="every date (month) of the run has a partition",
                practice="a missing partition must not read downstream as zero consumption",
            )
        )
    return rules


def contract_rules(table: Table) -> tuple[list[Metric], list[Rule]]:
    """Key, codes, required columns, lineage and blocking findings, from the contract."""
    t = table.name
    metrics: list[Metric] = []
    rules: list[Rule] = []
    cols = {c.name: c for c in table.columns}
    if table.key:
        key = tuple(table.key)
        metrics.append(
            Metric("key_duplicates", key_duplicates(key), f"rows beyond the first of each ({', '.join(key)})")
        )
        rules.append(
            Rule(
                f"{t}.key.unique",
                "key_duplicates",
                max_value=0,
                description=f"({', '.join(key)}) is unique",
                practice=f"{CONTRACT} §1 keys; {VEE} 1: duplicates",
            )
        )
    required = [c.name for c in table.columns if not c.nullable and c.name != table.partition_by]
    if required:
        metrics.append(Metric("required_nulls", nulls(required), f"rows with an empty {', '.join(required)}"))
        rules.append(
            Rule(
                f"{t}.required.not_null",
                "required_nulls",
                max_value=0,
                description=f"{', '.join(required)} never empty",
                practice=f"schemas/{t}.py: nullable=False columns",
            )
        )
    for c in table.columns:
        if c.codes:
            metrics.append(Metric(f"bad_{c.name}", not_in(c.name, c.codes), f"{c.name} outside its codes"))
            rules.append(
                Rule(
                    f"{t}.{c.name}.codes",
                    f"bad_{c.name}",
                    max_value=0,
                    description=f"{c.name} is one of {', '.join(c.codes[:8])}{' ...' if len(c.codes) > 8 else ''}",
                    practice=f"{CONTRACT}: coded values are the documented codes",
                )
            )
    if table.layer == "clean" and {"source_file", "source_line"} <= set(cols):
        metrics.append(
            Metric(
                "lineage_missing",
                nulls(["source_file", "source_line"]) + count(pl.col("source_line") < 1),
                "rows without their landing file and 1-based line",
            )
        )
        rules.append(
            Rule(
                f"{t}.lineage.present",
                "lineage_missing",
                max_value=0,
                description="every row names its landing file and 1-based line",
                practice=f"{CONTRACT} §1: nothing is dropped silently",
            )
        )
    sev = cols.get("severity")
    if sev is not None and "blocking" in sev.codes:
        metrics.append(
            Metric("blocking_findings", count(pl.col("severity") == "blocking"), "findings of severity blocking")
        )
        rules.append(
            Rule(
                f"{t}.findings.no_blocking",
                "blocking_findings",
                max_value=0,
                description="no finding of severity blocking (a day that cannot be trusted as a whole)",
                practice=f"schemas/{t}.py: a blocking finding stops the run before anything is published",
            )
        )
    return metrics, rules


# -- each table's own rules ---------------------------------------------------------------


def _archive(th: CheckThresholds) -> Extras:
    t, role = "archive", pl.col("role")
    return Extras(
        metrics=(
            Metric("multiplier_below_1", count(num("multiplier") < 1), "rows with multiplier < 1"),
            Metric("register_max_not_positive", count(num("register_max") <= 0), "rows with register_max <= 0"),
            Metric("prepay_not_flag", count(~pl.col("prepay").is_in([0, 1])), "prepay other than 0/1"),
            Metric(
                "customer_without_id",
                count((role == "customer") & pl.col("customer_id").is_null()),
                "customer meters without a customer number",
            ),
            Metric(
                "class_not_customer",
                count((role != "customer") & pl.col("customer_class").is_not_null()),
                "non-customer meters with a customer class",
            ),
            Metric(
                "master_without_area",
                count((role == "area_master") & pl.col("area_id").is_null()),
                "area master meters without an area",
            ),
        ),
        rules=(
            Rule(
                f"{t}.multiplier.at_least_1",
                "multiplier_below_1",
                max_value=0,
                description="multiplier (CT x PT) >= 1",
                practice=f"{CONTRACT} §1 archive.multiplier",
            ),
            Rule(
                f"{t}.register_max.positive",
                "register_max_not_positive",
                max_value=0,
                description="register_max > 0",
                practice=f"{CONTRACT} §1 archive.register_max",
            ),
            Rule(
                f"{t}.prepay.flag",
                "prepay_not_flag",
                max_value=0,
                description="prepay is 0 or 1",
                practice=f"{CONTRACT} §1 archive.prepay",
            ),
            Rule(
                f"{t}.customer_id.customer_role",
                "customer_without_id",
                max_value=0,
                severity="warning",
                description="customer meters carry a customer number",
                practice=f"{CONTRACT} §1: customer_id empty only for feeder_head and area_master meters",
            ),
            Rule(
                f"{t}.customer_class.customer_role",
                "class_not_customer",
                max_value=0,
                severity="warning",
                description="customer_class only on customer meters",
                practice=f"{CONTRACT} §1: customer_class empty unless role is customer",
            ),
            Rule(
                f"{t}.area_id.area_master",
                "master_without_area",
                max_value=0,
                severity="warning",
                description="area master meters name their area",
                practice="docs/domain.md#classes-of-an-area: 不可算 areas from archive errors",
            ),
        ),
    )


def _curves(th: CheckThresholds) -> Extras:
    from meterlake.schemas.curves import SLOTS

    t = "curves"
    return Extras(
        footer=(
            FooterMetric("slot_min", SLOTS, "min", "smallest slot value (Parquet statistics)"),
            FooterMetric("slot_null_share", SLOTS, "null_share", "share of slots not collected (Parquet statistics)"),
        ),
        rules=(
            Rule(
                f"{t}.slots.non_negative",
                "slot_min",
                min_value=0,
                severity="warning",
                description="no slot holds negative energy (VEE flags and replaces them)",
                practice=f"{VEE} 4: negative values",
            ),
            Rule(
                f"{t}.slots.completeness",
                "slot_null_share",
                max_value=th.curves.max_missing_slot_share,
                severity="warning",
                description="share of the day's 96-point slots not collected",
                practice=f"{VEE} 2: completeness, 96 slots per local day (Q/GDW 376.1 F97)",
            ),
        ),
    )


def _registers(th: CheckThresholds) -> Extras:
    t = "registers"
    regs = ["total_kwh", "sharp_kwh", "peak_kwh", "flat_kwh", "valley_kwh", "reverse_kwh"]
    tou_cols = ("sharp_kwh", "peak_kwh", "flat_kwh", "valley_kwh")
    tou = pl.sum_horizontal([num(c) for c in tou_cols])
    all_tou = pl.all_horizontal([pl.col(c).is_not_null() for c in (*tou_cols, "total_kwh")])
    return Extras(
        metrics=(
            Metric(
                "negative_registers",
                count(pl.any_horizontal([num(c) < 0 for c in regs]) | (num("purchase_count") < 0)),
                "rows with a negative register or purchase count",
            ),
            Metric(
                "total_null_share", share(pl.col("total_kwh").is_null()), "share of readings without a total register"
            ),
            Metric(
                "tou_sum_off",
                count(all_tou & ((tou - num("total_kwh")).abs() > th.registers.tou_sum_tolerance_kwh)),
                "readings whose TOU registers do not add up to the total",
            ),
        ),
        rules=(
            Rule(
                f"{t}.register.non_negative",
                "negative_registers",
                max_value=0,
                description="registers and purchase counts are >= 0 (ingest quarantines the rest)",
                practice=f"{CONTRACT} §1 registers; schemas/registers.py minimum 0",
            ),
            Rule(
                f"{t}.total_kwh.null_share",
                "total_null_share",
                max_value=th.registers.max_null_total_share,
                severity="warning",
                description="share of readings without a total register",
                practice=f"{VEE} 2: completeness",
            ),
            Rule(
                f"{t}.tou.sum",
                "tou_sum_off",
                max_value=0,
                severity="warning",
                description="sharp + peak + flat + valley = total within the rounding tolerance",
                practice=f"{VEE} 9: Σ 尖峰平谷 against the total register",
            ),
        ),
    )


def _events(th: CheckThresholds) -> Extras:
    return Extras(
        metrics=(
            Metric(
                "date_mismatch",
                count(pl.col("event_time").dt.date() != pl.col("event_date")),
                "events filed under another date than their time's",
            ),
        ),
        rules=(
            Rule(
                "events.event_date.matches_time",
                "date_mismatch",
                max_value=0,
                description="event_date is the local date of event_time",
                practice="schemas/_base.py: a date is a local calendar date",
            ),
        ),
    )


def _purchases(th: CheckThresholds) -> Extras:
    t = "purchases"
    return Extras(
        metrics=(
            Metric("amount_not_positive", count(num("amount_yuan") <= 0), "purchases of zero or negative yuan"),
            Metric("seq_negative", count(num("purchase_seq") < 0), "negative purchase sequence numbers"),
            Metric(
                "reversal_without_ref",
                count((pl.col("txn_type") == "reversal") & pl.col("ref_txn_id").is_null()),
                "reversals that name no transaction",
            ),
            Metric(
                "card_not_masked",
                count(pl.col("card_last4").str.len_chars() > 4),
                "card_last4 longer than 4 characters",
            ),
            Metric(
                "date_mismatch",
                count(pl.col("purchase_time").dt.date() != pl.col("purchase_date")),
                "purchases filed under another date than their time's",
            ),
        ),
        rules=(
            Rule(
                f"{t}.amount_yuan.positive",
                "amount_not_positive",
                max_value=0,
                description="amount_yuan > 0",
                practice=f"{CONTRACT} §1 purchases.amount_yuan",
            ),
            Rule(
                f"{t}.purchase_seq.non_negative",
                "seq_negative",
                max_value=0,
                description="purchase_seq >= 0",
                practice=f"{CONTRACT} §1 purchases.purchase_seq",
            ),
            Rule(
                f"{t}.reversal.names_ref",
                "reversal_without_ref",
                max_value=0,
                severity="warning",
                description="a reversal names the transaction it cancels",
                practice=f"{CONTRACT} §1: a reversal (冲正) cancels the transaction named in ref_txn_id",
            ),
            Rule(
                f"{t}.card.masked",
                "card_not_masked",
                max_value=0,
                description="at most the last 4 digits of a card number are kept",
                practice=f"{CONTRACT} §1 purchases.card_no (personal data)",
            ),
            Rule(
                f"{t}.purchase_date.matches_time",
                "date_mismatch",
                max_value=0,
                description="purchase_date is the local date of purchase_time",
                practice="schemas/_base.py: a date is a local calendar date",
            ),
        ),
    )


def _meter_daily(th: CheckThresholds) -> Extras:
    t, md = "meter_daily", th.meter_daily
    q = pl.col("quality")
    tou_cols = ("kwh_sharp", "kwh_peak", "kwh_flat", "kwh_valley")
    tou = pl.sum_horizontal([num(c) for c in tou_cols])
    all_tou = pl.all_horizontal([pl.col(c).is_not_null() for c in (*tou_cols, "kwh")])
    scale = num("multiplier").fill_null(1.0)
    return Extras(
        metrics=(
            Metric("kwh_negative", count(num("kwh") < 0), "meter-days with negative kWh"),
            Metric("reverse_negative", count(num("reverse_kwh") < 0), "meter-days with negative reverse kWh"),
            Metric(
                "quality_value_off",
                count(
                    ((q == "missing") & pl.col("kwh").is_not_null())
                    | (q.is_in(["actual", "estimated"]) & pl.col("kwh").is_null())
                ),
                "meter-days whose quality flag disagrees with the presence of a value",
            ),
            Metric("missing_share", share(q == "missing"), "share of meter-days without a value"),
            Metric("estimated_share", share(q == "estimated"), "share of estimated meter-days"),
            Metric("kwh_max", num("kwh").max(), "largest meter-day kWh"),
            Metric(
                "tou_sum_off",
                count(all_tou & ((tou - num("kwh")).abs() > th.registers.tou_sum_tolerance_kwh * scale)),
                "meter-days whose TOU kWh do not add up to kwh",
            ),
        ),
        rules=(
            Rule(
                f"{t}.kwh.non_negative",
                "kwh_negative",
                max_value=0,
                description="daily kWh >= 0",
                practice=f"{CONTRACT} §1: a register going down is a fault and the day has no actual value",
            ),
            Rule(
                f"{t}.reverse_kwh.non_negative",
                "reverse_negative",
                max_value=0,
                description="daily reverse kWh >= 0",
                practice=f"{CONTRACT} §1 registers.reverse_kwh",
            ),
            Rule(
                f"{t}.quality.matches_value",
                "quality_value_off",
                max_value=0,
                description="missing days have no kWh; actual and estimated days have one",
                practice="docs/domain.md#vee: every value carries a quality flag",
            ),
            Rule(
                f"{t}.quality.missing_share",
                "missing_share",
                max_value=md.max_missing_share,
                severity="warning",
                description="share of missing meter-days",
                practice="docs/domain.md#collection-success-rate: targets 98-99.5 %",
            ),
            Rule(
                f"{t}.quality.estimated_share",
                "estimated_share",
                max_value=md.max_estimated_share,
                severity="warning",
                description="share of estimated meter-days",
                practice="docs/domain.md#billing-quality-gate: the estimated share of a bill",
            ),
            Rule(
                f"{t}.kwh.plausible_max",
                "kwh_max",
                max_value=md.max_kwh_per_day,
                severity="warning",
                description="no meter-day above the plausible maximum",
                practice=f"{VEE} 8 and 10: high against history and capacity",
            ),
            Rule(
                f"{t}.tou.sum",
                "tou_sum_off",
                max_value=0,
                severity="warning",
                description="kwh_sharp + kwh_peak + kwh_flat + kwh_valley = kwh within the rounding tolerance",
                practice=f"{VEE} 9: Σ 尖峰平谷 against the total register",
            ),
        ),
    )


def _collection_daily(th: CheckThresholds) -> Extras:
    t, a = "collection_daily", th.arithmetic
    read, total, rate = num("meters_read"), num("meters_total"), num("success_rate")
    return Extras(
        metrics=(
            Metric("read_off", count((read > total) | (read < 0)), "rows with meters_read outside 0..meters_total"),
            Metric(
                "rate_off",
                count(
                    ((total > 0) & ((rate - read / total).abs() > a.rate_tolerance))
                    | (rate < -a.rate_tolerance)
                    | (rate > 1 + a.rate_tolerance)
                ),
                "rows whose success_rate is not meters_read / meters_total",
            ),
            Metric(
                "curves_off",
                count((num("curves_complete") > total) | (num("curves_complete") < 0)),
                "rows with curves_complete outside 0..meters_total",
            ),
            Metric(
                "overall_shortfall",
                pl.when(total.sum() > 0).then(num("target_rate").max() - read.sum() / total.sum()),
                "the configured target minus the day's overall success rate (> 0: below target)",
            ),
        ),
        rules=(
            Rule(
                f"{t}.meters_read.within_total",
                "read_off",
                max_value=0,
                description="0 <= meters_read <= meters_total",
                practice=f"{CONTRACT} §3 collection_daily",
            ),
            Rule(
                f"{t}.success_rate.definition",
                "rate_off",
                max_value=0,
                description="success_rate = meters_read / meters_total, within [0, 1]",
                practice=f"{CONTRACT} §3: success_rate = meters_read / meters_total (采集成功率)",
            ),
            Rule(
                f"{t}.curves_complete.within_total",
                "curves_off",
                max_value=0,
                description="0 <= curves_complete <= meters_total",
                practice=f"{VEE} 2: completeness",
            ),
            Rule(
                f"{t}.success_rate.overall_target",
                "overall_shortfall",
                max_value=0,
                severity="warning",
                description="the day's overall 采集成功率 reaches the configured target (target_rate)",
                practice="docs/domain.md#collection-success-rate: targets commonly 98-99.5 %, configurable",
            ),
        ),
        row_rules=(
            RowRule(
                f"{t}.success_rate.area_target",
                "success_rate_shortfall",
                max_value=0,
                description="each area's 采集成功率 reaches its target (target_rate - success_rate <= 0)",
                practice="docs/domain.md#collection-success-rate: tracked per area and day",
            ),
        ),
        row_index=("scope", "area_id", "feeder_id"),
        row_view=lambda lf: lf.with_columns((num("target_rate") - num("success_rate")).alias("success_rate_shortfall")),
        row_needs=("scope", "area_id", "feeder_id", "target_rate", "success_rate"),
    )


def _blank_uncomputable(lf: pl.LazyFrame) -> pl.LazyFrame:
    return lf.with_columns(
        pl.when(pl.col("status") == "uncomputable").then(None).otherwise(num("loss_rate")).alias("loss_rate")
    )


def _loss(th: CheckThresholds, table: str, entity: str, parts: tuple[str, str] | None) -> Extras:
    """Line loss marts; ``parts`` are the two columns supply (area) or sales (feeder) adds up."""
    a, lo = th.arithmetic, th.loss
    supply, sales, loss, rate = num("supply_kwh"), num("sales_kwh"), num("loss_kwh"), num("loss_rate")
    status = pl.col("status")
    metrics = [
        Metric(
            "loss_identity_off",
            count((supply - sales - loss).abs() > a.kwh_tolerance),
            "rows where loss_kwh is not supply_kwh - sales_kwh",
        ),
        Metric(
            "rate_definition_off",
            count(
                (supply > 0)
                & ((rate * supply - loss).abs() > a.kwh_tolerance)
                & ((rate - loss / supply).abs() > a.rate_tolerance)
            ),
            "rows where loss_rate is not loss_kwh / supply_kwh",
        ),
        Metric(
            "computable_without_rate",
            count((status != "uncomputable") & pl.col("loss_rate").is_null()),
            "rows with a status other than uncomputable but no loss rate",
        ),
        Metric("uncomputable_share", share(status == "uncomputable"), "share of uncomputable rows"),
    ]
    rules = [
        Rule(
            f"{table}.loss_kwh.identity",
            "loss_identity_off",
            max_value=0,
            description="loss_kwh = supply_kwh - sales_kwh within the tolerance",
            practice=f"{CONTRACT} §3: loss = supply - sales",
        ),
        Rule(
            f"{table}.loss_rate.definition",
            "rate_definition_off",
            max_value=0,
            description="loss_rate = loss_kwh / supply_kwh within the tolerance",
            practice=f"{CONTRACT} §3: loss_rate = loss / supply (同期线损)",
        ),
        Rule(
            f"{table}.status.computable_has_rate",
            "computable_without_rate",
            max_value=0,
            description="a normal, high or negative row has a loss rate",
            practice=f"{CONTRACT} §3: status from the loss rate unless uncomputable",
        ),
        Rule(
            f"{table}.status.uncomputable_share",
            "uncomputable_share",
            max_value=lo.max_uncomputable_share,
            severity="warning",
            description="share of uncomputable (不可算) rows",
            practice="docs/domain.md#classes-of-an-area: 不可算 (master meter missing, collection incomplete, archive errors)",
        ),
    ]
    if parts is not None:
        whole = "supply_kwh" if entity == "area_id" else "sales_kwh"
        x, y = parts
        metrics.append(
            Metric(
                "parts_identity_off",
                count((num(whole) - num(x) - num(y)).abs() > a.kwh_tolerance),
                f"rows where {whole} is not {x} + {y}",
            )
        )
        rules.append(
            Rule(
                f"{table}.{whole}.identity",
                "parts_identity_off",
                max_value=0,
                description=f"{whole} = {x} + {y} within the tolerance",
                practice=f"{CONTRACT} §3 area and feeder loss definitions",
            )
        )
    return Extras(
        metrics=tuple(metrics),
        rules=tuple(rules),
        row_rules=(
            RowRule(
                f"{table}.loss_rate.plausible",
                "loss_rate",
                min_value=-lo.implausible_loss_rate,
                max_value=lo.implausible_loss_rate,
                description="a computable loss rate lies within the plausible band",
                practice="docs/domain.md#causes-of-abnormal-loss: 户变关系错误 and 倍率错误 show as abnormal loss",
            ),
        ),
        row_index=(entity,),
        row_view=_blank_uncomputable,
        row_needs=(entity, "status", "loss_rate"),
    )


def _loss_worklist_monthly(th: CheckThresholds) -> Extras:
    t = "loss_worklist_monthly"
    return Extras(
        metrics=(
            Metric("rank_duplicates", key_duplicates(["month", "rank"]), "ranks given twice in a month"),
            Metric("stake_negative", count(num("kwh_at_stake") < 0), "work items with negative kWh at stake"),
            Metric(
                "rank_out_of_order",
                count(num("kwh_at_stake") > num("kwh_at_stake").shift(1).over("month", order_by="rank")),
                "work items with more kWh at stake than the one ranked above them",
            ),
            Metric(
                "run_below_one",
                count(num("consecutive_months") < 1),
                "work items whose run of months in their state is below 1",
            ),
        ),
        rules=(
            Rule(
                f"{t}.rank.unique",
                "rank_duplicates",
                max_value=0,
                description="one area per rank and month",
                practice="schemas/loss_worklist_monthly.py: ranked by kWh at stake, ties by area_id",
            ),
            Rule(
                f"{t}.kwh_at_stake.non_negative",
                "stake_negative",
                max_value=0,
                description="kWh at stake >= 0 (a high area is above its band, a negative one below it)",
                practice="schemas/loss_worklist_monthly.py: kWh at stake",
            ),
            Rule(
                f"{t}.rank.by_kwh_at_stake",
                "rank_out_of_order",
                max_value=0,
                description="rank follows kWh at stake, most first",
                practice="线损治理: the areas with the most energy at stake first",
            ),
            Rule(
                f"{t}.consecutive_months.at_least_1",
                "run_below_one",
                max_value=0,
                description="every work item counts its own month",
                practice="schemas/loss_worklist_monthly.py consecutive_months",
            ),
        ),
    )


def _anomalies(th: CheckThresholds) -> Extras:
    t = "anomalies"
    score = num("score")
    metrics = [
        Metric("score_not_finite", count(score.is_null() | ~score.is_finite()), "rows without a finite score"),
        Metric("rank_duplicates", key_duplicates(["date", "rank"]), "ranks given twice on a date"),
        Metric("reasons_missing", count(pl.col("reasons").is_null()), "rows without reasons"),
    ]
    rules = [
        Rule(
            f"{t}.score.finite",
            "score_not_finite",
            max_value=0,
            description="every listed meter has a finite score",
            practice=f"{CONTRACT} §3 anomalies.score",
        ),
        Rule(
            f"{t}.rank.unique",
            "rank_duplicates",
            max_value=0,
            description="one meter per rank and date",
            practice="schemas/anomalies.py: ties broken by meter_id",
        ),
        Rule(
            f"{t}.reasons.present",
            "reasons_missing",
            max_value=0,
            severity="warning",
            description="every listed meter gives its reasons to inspectors",
            practice="docs/domain.md#theft-screening: a ranked list with reasons for inspectors",
        ),
    ]
    table = contract(t, "marts")
    points = [c.name for c in table.columns if c.name.endswith("_points")] if table is not None else []
    if points:
        metrics.append(
            Metric(
                "score_sum_off",
                count((score - pl.sum_horizontal([num(c) for c in points])).abs() > 1e-6),
                "rows whose score is not the sum of their points",
            )
        )
        rules.append(
            Rule(
                f"{t}.score.sum_of_points",
                "score_sum_off",
                max_value=0,
                description="score = Σ *_points",
                practice="schemas/anomalies.py: score = Σ *_points",
            )
        )
    return Extras(metrics=tuple(metrics), rules=tuple(rules))


def _theft_cases(th: CheckThresholds) -> Extras:
    t = "theft_cases"
    penalty = num("penalty_multiple") * num("back_charge_yuan")
    return Extras(
        metrics=(
            Metric("stolen_negative", count(num("stolen_kwh") < 0), "cases with negative stolen kWh"),
            Metric(
                "penalty_off",
                count((num("penalty_yuan") - penalty).abs() > 0.011),
                "cases whose penalty is not the multiple of the back charge",
            ),
            Metric(
                "back_charge_off",
                count((num("back_charge_yuan") - num("stolen_kwh") * num("price_yuan_per_kwh")).abs() > 0.011),
                "cases whose back charge is not stolen kWh x price",
            ),
            Metric("rank_duplicates", key_duplicates(["date", "area_id", "rank"]), "ranks given twice in an area"),
        ),
        rules=(
            Rule(
                f"{t}.stolen_kwh.non_negative",
                "stolen_negative",
                max_value=0,
                description="a case's stolen energy is positive",
                practice="schemas/theft_cases.py: the balance's unrecorded kWh",
            ),
            Rule(
                f"{t}.penalty.multiple",
                "penalty_off",
                max_value=0,
                description="违约使用电费 = penalty_multiple x 追补电费 (to 0.01 yuan)",
                practice="供电营业规则 art. 102",
            ),
            Rule(
                f"{t}.back_charge.price",
                "back_charge_off",
                max_value=0,
                description="追补电费 = stolen kWh x price (to 0.01 yuan)",
                practice="供电营业规则 art. 102",
            ),
            Rule(
                f"{t}.rank.unique",
                "rank_duplicates",
                max_value=0,
                description="one case per rank, area and date",
                practice="schemas/theft_cases.py: rank by stolen kWh within the area",
            ),
        ),
    )


def _bills_monthly(th: CheckThresholds) -> Extras:
    t, a = "bills_monthly", th.arithmetic
    kwh_cols = ["kwh_total", "kwh_sharp", "kwh_peak", "kwh_flat", "kwh_valley", "kwh_tier1", "kwh_tier2", "kwh_tier3"]
    amount = num("amount_yuan")
    tiers = pl.sum_horizontal([num(c) for c in ("kwh_tier1", "kwh_tier2", "kwh_tier3")])
    tou = pl.sum_horizontal([num(c) for c in ("kwh_sharp", "kwh_peak", "kwh_flat", "kwh_valley")])
    total = pl.col("kwh_total").is_not_null()
    return Extras(
        metrics=(
            Metric("amount_negative", count(amount < 0), "bills below 0 yuan"),
            Metric(
                "amount_unrounded",
                count(((amount * 100) - (amount * 100).round(0)).abs() > a.yuan_rounding_tolerance),
                "bills not rounded to 0.01 yuan",
            ),
            Metric(
                "amount_not_half_up",
                count((amount - num("amount_exact_yuan")).abs() > 0.005 + a.yuan_rounding_tolerance),
                "bills more than half a fen from their exact amount",
            ),
            Metric("kwh_negative", count(pl.any_horizontal([num(c) < 0 for c in kwh_cols])), "bills with negative kWh"),
            Metric(
                "tier_sum_off",
                count(total & ((tiers - num("kwh_total")).abs() > a.kwh_tolerance)),
                "bills whose tiers do not add up to kwh_total",
            ),
            Metric(
                "tou_sum_off",
                count(total & ((tou - num("kwh_total")).abs() > a.kwh_tolerance)),
                "bills whose TOU kWh do not add up to kwh_total",
            ),
        ),
        rules=(
            Rule(
                f"{t}.amount_yuan.non_negative",
                "amount_negative",
                max_value=0,
                description="amount_yuan >= 0",
                practice=f"{CONTRACT} §2 tariffs",
            ),
            Rule(
                f"{t}.amount_yuan.rounded",
                "amount_unrounded",
                max_value=0,
                description="amount_yuan is rounded to 0.01 yuan",
                practice=f"{CONTRACT} §2: a bill's total is rounded to 0.01 yuan, half up",
            ),
            Rule(
                f"{t}.amount_yuan.half_up",
                "amount_not_half_up",
                max_value=0,
                description="amount_yuan is amount_exact_yuan rounded (within half a fen)",
                practice=f"{CONTRACT} §2: amounts at full precision, the total rounded half up",
            ),
            Rule(
                f"{t}.kwh.non_negative",
                "kwh_negative",
                max_value=0,
                description="no negative kWh on a bill",
                practice=f"{CONTRACT} §2",
            ),
            Rule(
                f"{t}.tiers.sum",
                "tier_sum_off",
                max_value=0,
                description="kwh_tier1 + kwh_tier2 + kwh_tier3 = kwh_total within the tolerance",
                practice=f"{CONTRACT} §2: kWh are split across tiers",
            ),
            Rule(
                f"{t}.tou.sum",
                "tou_sum_off",
                max_value=0,
                description="kwh_sharp + kwh_peak + kwh_flat + kwh_valley = kwh_total within the tolerance",
                practice="schemas/bills_monthly.py: the four TOU kWh always sum to kwh_total",
            ),
        ),
    )


def _prepay_daily(th: CheckThresholds) -> Extras:
    t, a = "prepay_daily", th.arithmetic
    return Extras(
        metrics=(
            Metric(
                "consumption_negative",
                count(num("consumption_yuan") < 0),
                "customer-days with negative consumption cost",
            ),
            Metric(
                "difference_off",
                count(
                    (num("difference_yuan") - (num("meter_balance_yuan") - num("balance_yuan"))).abs()
                    > a.yuan_tolerance
                ),
                "rows where difference_yuan is not meter_balance_yuan - balance_yuan",
            ),
            Metric(
                "mismatch_share",
                share(pl.col("status") == "mismatch"),
                "share of customer-days whose balances disagree",
            ),
        ),
        rules=(
            Rule(
                f"{t}.consumption_yuan.non_negative",
                "consumption_negative",
                max_value=0,
                description="consumption_yuan >= 0 (kWh >= 0 at a positive price)",
                practice=f"{CONTRACT} §3 prepay_daily.consumption_yuan",
            ),
            Rule(
                f"{t}.difference_yuan.identity",
                "difference_off",
                max_value=0,
                description="difference_yuan = meter_balance_yuan - balance_yuan",
                practice="schemas/prepay_daily.py difference_yuan",
            ),
            Rule(
                f"{t}.status.mismatch_share",
                "mismatch_share",
                max_value=th.prepay.max_mismatch_share,
                severity="warning",
                description="share of customer-days whose computed and meter balances disagree",
                practice="docs/domain.md#ic-card-prepayment: consumption x price ≈ fall in balance",
            ),
        ),
    )


def _recovery_monthly(th: CheckThresholds) -> Extras:
    rate, tol = num("recovery_rate"), th.arithmetic.rate_tolerance
    return Extras(
        # a rate of exactly 1 computed in floating point can come out as 1.0000000000000002
        metrics=(Metric("rate_off", count((rate < -tol) | (rate > 1 + tol)), "recovery rates outside [0, 1]"),),
        rules=(
            Rule(
                "recovery_monthly.recovery_rate.range",
                "rate_off",
                max_value=0,
                description="0 <= recovery_rate <= 1 (collected never exceeds billed)",
                practice="schemas/recovery_monthly.py: collected by the due date <= billed, customer by customer",
            ),
        ),
    )


def _receivables_monthly(th: CheckThresholds) -> Extras:
    t, days, tol = "receivables_monthly", num("overdue_days"), th.arithmetic.yuan_tolerance
    bucket = (
        pl.when(days <= 0)
        .then(pl.lit("current"))
        .when(days <= 30)
        .then(pl.lit("1-30"))
        .when(days <= 90)
        .then(pl.lit("31-90"))
        .when(days <= 180)
        .then(pl.lit("91-180"))
        .otherwise(pl.lit(">180"))
    )
    return Extras(
        metrics=(
            Metric("aging_off", count(pl.col("aging") != bucket), "rows whose aging is not the bucket of overdue_days"),
            Metric("fee_negative", count(num("late_fee_yuan") < 0), "rows with a negative late fee"),
            Metric(
                "overdue_above_arrears",
                count(num("overdue_yuan") > num("arrears_yuan").clip(lower_bound=0.0) + tol),
                "rows whose overdue part exceeds the arrears",
            ),
        ),
        rules=(
            Rule(
                f"{t}.aging.bucket",
                "aging_off",
                max_value=0,
                description="aging is current, 1-30, 31-90, 91-180 or >180 by overdue_days",
                practice=f"{CONTRACT} §3 receivables_monthly.aging",
            ),
            Rule(
                f"{t}.late_fee_yuan.non_negative",
                "fee_negative",
                max_value=0,
                description="late_fee_yuan >= 0",
                practice="供电营业规则 art. 98: 违约金 accrues on unpaid bills",
            ),
            Rule(
                f"{t}.overdue_yuan.within_arrears",
                "overdue_above_arrears",
                max_value=0,
                description="overdue_yuan <= max(arrears_yuan, 0): the past-due part is part of what is owed",
                practice="schemas/receivables_monthly.py: FIFO settlement",
            ),
        ),
    )


def _customer_credit_monthly(th: CheckThresholds) -> Extras:
    t, tol = "customer_credit_monthly", th.arithmetic.rate_tolerance
    points = pl.sum_horizontal(
        num(c) for c in ("late_points", "overdue_points", "arrears_points", "prepay_points", "theft_points")
    )
    score = num("credit_score")
    return Extras(
        metrics=(
            Metric("score_off", count((score < 0) | (score > 100)), "scores outside 0-100"),
            Metric(
                "score_not_points",
                count(((100.0 - points).clip(0.0, 100.0) - score).abs() > 0.05 + tol),
                "scores that are not 100 minus the reasons' points",
            ),
        ),
        rules=(
            Rule(
                f"{t}.credit_score.range",
                "score_off",
                max_value=0,
                description="0 <= credit_score <= 100",
                practice=f"{CONTRACT} §3 customer_credit_monthly.credit_score",
            ),
            Rule(
                f"{t}.credit_score.sum_of_points",
                "score_not_points",
                max_value=0,
                description="credit_score = 100 - the points of its reasons (clipped to 0-100): every point explained",
                practice="schemas/customer_credit_monthly.py",
            ),
        ),
    )


def _dunning_list(th: CheckThresholds) -> Extras:
    t = "dunning_list"
    stop = pl.col("action") == "stop_notice"
    notice = (pl.col("disconnect_not_before") - pl.col("date")).dt.total_days()
    return Extras(
        metrics=(
            Metric("early_stop", count(stop & (num("days_overdue") <= 30)), "stop notices 30 days overdue or less"),
            Metric(
                "short_notice",
                count(stop & (notice.is_null() | (notice < 3))),
                "stop notices without 3 days between serving and disconnection",
            ),
            Metric("rank_duplicates", key_duplicates(("rank",)), "ranks given twice"),
        ),
        rules=(
            Rule(
                f"{t}.stop_notice.overdue",
                "early_stop",
                max_value=0,
                description="a stop notice only for a bill more than 30 days overdue",
                practice="供电营业规则 art. 66: stopping supply for arrears only after the payment period has passed",
            ),
            Rule(
                f"{t}.stop_notice.notice_period",
                "short_notice",
                max_value=0,
                description="disconnection at least 3 days after the stop notice",
                practice="供电营业规则 art. 67: the notice is served 3 to 7 days before supply is stopped",
            ),
            Rule(
                f"{t}.rank.unique",
                "rank_duplicates",
                max_value=0,
                description="each rank once per list",
                practice="schemas/dunning_list.py rank",
            ),
        ),
    )


def _outage_events(th: CheckThresholds) -> Extras:
    dur = num("duration_min")
    return Extras(
        metrics=(
            Metric("negative_duration", count(dur < 0), "interruptions ending before they start"),
            Metric(
                "area_without_customers",
                count((pl.col("level") == "area") & (num("customers_affected") <= 0) & ~pl.col("momentary")),
                "area interruptions that interrupt no customer",
            ),
        ),
        rules=(
            Rule(
                "outage_events.duration.non_negative",
                "negative_duration",
                max_value=0,
                description="end_time >= start_time",
                practice="DL/T 836: an interruption runs from loss of supply to its restoration",
            ),
            Rule(
                "outage_events.area.customers",
                "area_without_customers",
                max_value=0,
                description="an area interruption interrupts the area's customers in service",
                practice="DL/T 836: an area interruption counts every customer the area feeds",
            ),
        ),
    )


def _reliability_monthly(th: CheckThresholds) -> Extras:
    tol = th.arithmetic.rate_tolerance
    rs1, rs1u = num("rs1"), num("rs1_unplanned")
    return Extras(
        metrics=(
            Metric("rs1_off", count((rs1 < -tol) | (rs1 > 1 + tol) | (rs1u < rs1 - tol)), "RS-1 outside [0, 1]"),
            Metric(
                "faults_over_all",
                count(num("customer_interruptions_unplanned") > num("customer_interruptions")),
                "fault interruptions above all interruptions",
            ),
        ),
        rules=(
            Rule(
                "reliability_monthly.rs1.range",
                "rs1_off",
                max_value=0,
                description="0 <= rs1 <= rs1_unplanned <= 1",
                practice="DL/T 836: RS-1 = 1 - SAIDI / period hours; leaving outages out cannot lower it",
            ),
            Rule(
                "reliability_monthly.unplanned.subset",
                "faults_over_all",
                max_value=0,
                description="customer_interruptions_unplanned <= customer_interruptions",
                practice="faults are a part of all interruptions",
            ),
        ),
    )


def _quarantine(th: CheckThresholds) -> Extras:
    from meterlake.schemas import LANDINGS

    datasets = sorted({*LANDINGS, "inspections"})
    return Extras(
        metrics=(
            Metric("line_not_positive", count(num("line") < 1), "rows whose line is below 1"),
            Metric("unknown_dataset", count(~pl.col("dataset").is_in(datasets)), "rows of an unknown dataset"),
        ),
        rules=(
            Rule(
                "quarantine.line.positive",
                "line_not_positive",
                max_value=0,
                description="line is 1-based (the header is line 1) or empty for a whole file",
                practice=f"{CONTRACT} §3 quarantine.line",
            ),
            Rule(
                "quarantine.dataset.known",
                "unknown_dataset",
                max_value=0,
                severity="warning",
                description="dataset is a landing dataset",
                practice=f"{CONTRACT} §1 landing zone",
            ),
        ),
    )


_EXTRAS: dict[str, Callable[[CheckThresholds], Extras]] = {
    "archive": _archive,
    "curves": _curves,
    "registers": _registers,
    "events": _events,
    "purchases": _purchases,
    "meter_daily": _meter_daily,
    "collection_daily": _collection_daily,
    "area_loss_daily": lambda th: _loss(th, "area_loss_daily", "area_id", ("master_kwh", "pv_export_kwh")),
    "area_loss_monthly": lambda th: _loss(th, "area_loss_monthly", "area_id", ("master_kwh", "pv_export_kwh")),
    "feeder_loss_daily": lambda th: _loss(
        th, "feeder_loss_daily", "feeder_id", ("area_masters_kwh", "direct_customers_kwh")
    ),
    "feeder_loss_monthly": lambda th: _loss(
        th, "feeder_loss_monthly", "feeder_id", ("area_masters_kwh", "direct_customers_kwh")
    ),
    "loss_worklist_monthly": _loss_worklist_monthly,
    "anomalies": _anomalies,
    "theft_cases": _theft_cases,
    "bills_monthly": _bills_monthly,
    "prepay_daily": _prepay_daily,
    "recovery_monthly": _recovery_monthly,
    "receivables_monthly": _receivables_monthly,
    "customer_credit_monthly": _customer_credit_monthly,
    "dunning_list": _dunning_list,
    "outage_events": _outage_events,
    "reliability_monthly": _reliability_monthly,
    "quarantine": _quarantine,
}


# -- assembling suites ------------------------------------------------------------------


def contract_suite(table: Table, thresholds: CheckThresholds | None = None) -> TableSuite:
    """The suite of a table with a contract: contract rules plus the table's own.

    A rule of the table's own whose columns the contract lacks is left out (the
    contract changed under it), so a renamed column cannot make the gate fail on
    its own code.
    """
    th = thresholds or CheckThresholds()
    part = table.partition_by or ""
    columns = {c.name: c.dtype for c in table.columns if c.name != part}
    available = set(columns) | ({part} if part else set())
    metrics, rules = contract_rules(table)
    extras = _EXTRAS.get(table.name, lambda _: Extras())(th)
    usable = {m.name for m in extras.metrics if set(m.expr.meta.root_names()) <= available}
    usable |= {m.name for m in extras.footer if set(m.columns) & set(columns)}
    metrics += [m for m in extras.metrics if m.name in usable]
    rules += [r for r in extras.rules if r.metric in usable]
    row_ok = set(extras.row_needs) <= available
    every = EVERY_PARTITION.get(table.name)
    return TableSuite(
        table=table.name,
        layer=table.layer,
        partition_key=part,
        grain=grain_of(table),
        description=table.description,
        columns=columns,
        key=tuple(table.key),
        metrics=tuple(metrics),
        footer=tuple(m for m in extras.footer if m.name in usable),
        rules=tuple(base_rules(table.name, every) + rules),
        every_partition=every is not None,
        row_rules=extras.row_rules if row_ok else (),
        row_index=extras.row_index if row_ok else (),
        row_view=extras.row_view if row_ok else None,
    )


def generic_suite(table: str, layer: str, partition_key: str, grain: str) -> TableSuite:
    """The suite of a table without a contract: it must be readable and must not hold
    card numbers; its row counts are recorded."""
    return TableSuite(
        table=table,
        layer=layer,
        partition_key=partition_key,
        grain=grain,
        description=f"{layer}/{table}: no contract in schemas/; only the checks every table gets",
        rules=tuple(base_rules(table, schema=False)),
    )


def suite_for(name: str, layer: str, thresholds: CheckThresholds | None = None) -> TableSuite | None:
    """The suite of ``layer/name`` from its contract (None without one), severities applied."""
    th = thresholds or CheckThresholds()
    table = contract(name, layer)
    if table is None:
        return None
    return contract_suite(table, th).with_severities(th.severity)


def build_suites(thresholds: CheckThresholds | None = None) -> dict[str, TableSuite]:
    """The suites of the expected tables that have a contract, with the thresholds and
    severity overrides applied. An override naming an unknown rule of one of these
    tables is an error (a typo would silently keep the old severity)."""
    th = thresholds or CheckThresholds()
    suites: dict[str, TableSuite] = {}
    for layer, name in EXPECTED_TABLES:
        table = contract(name, layer)
        if table is not None:
            suites[name] = contract_suite(table, th)
    known = {r.rule for s in suites.values() for r in s.rules} | {r.rule for s in suites.values() for r in s.row_rules}
    unknown = sorted(r for r in th.severity if r.split(".", 1)[0] in suites and r not in known)
    if unknown:
        raise ValueError(
            f"checks.toml [severity]: unknown rule(s) {', '.join(unknown)}; "
            "expected a rule named in checks/suites.py (see LAKE/_meta/check_results for the rules run)"
        )
    return {name: s.with_severities(th.severity) for name, s in suites.items()}
