"""What the run report shows, read from the lake and summarised with polars.

:func:`load` is the only function here that touches the disk: it reads the marts'
partitions for the report's period (date partitions for the dates, month partitions
for the months they touch, everything for other keys such as quarantine's dataset).
The ``*_summary`` functions are pure: frames in, small frames out, each a few dozen
rows at most, which the HTML renderer lays out. A mart that is not in the lake yet
is simply absent from :attr:`ReportInputs.marts`; its section then says
"no data for this period".

Only the CONTRACT's minimal columns (CONTRACT §3) are relied on; richer columns
(loss_diagnosis findings, bill status...) are used when present.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ..checks.runner import pending
from ..lake import Lake, scan_alike
from ..publish import registry
from ..transforms import dates as dates_

#: the marts the report reads, and the partition key each is expected under
MARTS = (
    "collection_daily",
    "meter_daily",
    "area_loss_daily",
    "area_loss_monthly",
    "feeder_loss_daily",
    "feeder_loss_monthly",
    "loss_diagnosis",
    "loss_worklist_monthly",
    "anomalies",
    "bills_monthly",
    "prepay_daily",
    "recovery_monthly",
    "prepay_findings",
    "quarantine",
    # outages and reliability (meterlake.report.outages)
    "outage_events",
    "reliability_monthly",
    "outage_plan_checks",
    "frequent_outage_customers",
)

#: marts dated by when a list is drawn up, not by a day of data (a dunning list of the
#: 21st closes a month whose data ended earlier): they never decide the default period
LIST_DATED = ("dunning_list",)
#: columns read from meter_daily (the biggest mart: read only what the report needs)
METER_DAILY_COLUMNS = ("date", "quality")
#: columns read from findings marts (vee_findings has a row per meter, day and rule)
FINDINGS_COLUMNS = ("date", "rule", "severity")


@dataclass
class ReportInputs:
    lake: Path
    dates: list[dt.date]
    run_id: str | None = None
    #: mart name -> its rows for the period (only marts the lake holds)
    marts: dict[str, pl.DataFrame] = field(default_factory=dict)
    #: findings marts other than the ones above (names containing "findings" or "vee")
    findings: dict[str, pl.DataFrame] = field(default_factory=dict)
    #: the run record LAKE/_meta/runs/<run_id>.json, when there is one
    run: dict | None = None
    #: Data Docs index relative to LAKE/reports, when Great Expectations built them
    data_docs: str | None = None
    #: data dictionary relative to LAKE/reports, when published
    dictionary: str | None = None
    #: the check stage's results (LAKE/_meta/check_results) of the run, else of the latest
    check_results: pl.DataFrame | None = None

    @property
    def months(self) -> list[str]:
        return dates_.months_touched(self.dates)

    def get(self, name: str) -> pl.DataFrame | None:
        frame = self.marts.get(name)
        return frame if frame is not None and frame.height else None


# -- reading -----------------------------------------------------------------------
def _typed(key: str, value: str, declared: pl.DataType | None) -> pl.Expr:
    if (declared is not None and declared.base_type() is pl.Date) or (declared is None and key == "date"):
        return pl.lit(dt.date.fromisoformat(value))
    return pl.lit(value).cast(declared or pl.String())


def read_mart(
    lake: Lake, name: str, dates: list[dt.date] | None, columns: tuple[str, ...] | None = None
) -> pl.DataFrame | None:
    """The mart's partitions the dates touch (all for non-time keys); None if absent."""
    base = lake.root / "marts" / name
    if not base.is_dir():
        return None
    # a partition may hold several files (ingest writes quarantine one file per landing file)
    parts = sorted(p for p in base.iterdir() if p.is_dir() and "=" in p.name and any(p.glob("*.parquet")))
    if not parts:
        return None
    key = parts[0].name.split("=", 1)[0]
    table = registry.marts().get(name)
    declared = table.schema.get(key) if table is not None else None
    wanted: set[str] | None = None
    if dates is not None:
        if key == "date" or (declared is not None and declared.base_type() is pl.Date):
            wanted = {d.isoformat() for d in dates}
        elif key == "month":
            wanted = set(dates_.months_touched(dates))
    values = [(p, p.name.split("=", 1)[1]) for p in parts]
    held = [(value, f) for p, value in values if wanted is None or value in wanted for f in sorted(p.glob("*.parquet"))]
    is_date = (declared is not None and declared.base_type() is pl.Date) or (declared is None and key == "date")
    alike = scan_alike(held, key, pl.Date() if is_date else (declared or pl.String()), columns)
    if alike is not None:  # the files of one schema: one scan (the same rows, order and types)
        return alike.collect()
    frames = []
    for value, f in held:
        lf = pl.scan_parquet(f)
        if columns is not None:
            present = lf.collect_schema().names()
            lf = lf.select([c for c in columns if c in present and c != key])
        frames.append(lf.with_columns(_typed(key, value, declared).alias(key)))
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames, how="diagonal_relaxed").collect()


def default_dates(lake: Lake) -> list[dt.date]:
    """Without a run's dates: every date of the latest month the lake holds a date partition for."""
    found: set[dt.date] = set()
    marts = lake.root / "marts"
    if marts.is_dir():
        for table in marts.iterdir():
            if table.is_dir() and table.name not in LIST_DATED:
                for p in table.glob("date=*"):
                    try:
                        found.add(dt.date.fromisoformat(p.name[len("date=") :]))
                    except ValueError:
                        continue
    if not found:
        return []
    last = max(found)
    return sorted(d for d in found if dates_.month_key(d) == dates_.month_key(last))


#: where the docs stage renders the Data Docs index, under LAKE/reports
DATA_DOCS_INDEX = "data_docs/index.html"


def _find_data_docs(reports: Path, meta: Path | None = None) -> str | None:
    """The Great Expectations Data Docs index under LAKE/reports, relative to it.

    With none there yet, a passed gate whose findings wait for the docs stage (in
    ``meta``) will have its index at :data:`DATA_DOCS_INDEX`: a run renders it beside
    publishing, so the report links it before it is written.
    """
    found = _data_docs_index(reports)
    if found is None and meta is not None and bool(pending(meta)):
        return DATA_DOCS_INDEX
    return found


def _data_docs_index(reports: Path) -> str | None:
    if not reports.is_dir():
        return None
    candidates = sorted(
        (p for p in reports.rglob("index.html") if any("data_docs" in part for part in p.relative_to(reports).parts)),
        key=lambda p: (len(p.parts), str(p)),
    )
    return candidates[0].relative_to(reports).as_posix() if candidates else None


def load(lake: Lake, dates: list[dt.date] | None = None, run_id: str | None = None) -> ReportInputs:
    """Everything the report shows for ``dates`` (default: the latest month held)."""
    if dates is None:
        dates = default_dates(lake)
    inputs = ReportInputs(lake=lake.root, dates=sorted(set(dates)), run_id=run_id)
    for name in MARTS:
        cols = {"meter_daily": METER_DAILY_COLUMNS, "prepay_findings": FINDINGS_COLUMNS}.get(name)
        frame = read_mart(lake, name, None if name == "quarantine" else inputs.dates, cols)
        if frame is not None:
            inputs.marts[name] = frame
    marts_dir = lake.root / "marts"
    if marts_dir.is_dir():
        for d in sorted(marts_dir.iterdir()):
            if d.is_dir() and d.name not in MARTS and ("findings" in d.name or "vee" in d.name):
                frame = read_mart(lake, d.name, inputs.dates, FINDINGS_COLUMNS)
                if frame is not None:
                    inputs.findings[d.name] = frame
    if "prepay_findings" in inputs.marts:
        inputs.findings["prepay_findings"] = inputs.marts["prepay_findings"]
    if run_id:
        record = lake.meta / "runs" / f"{run_id}.json"
        if record.exists():
            inputs.run = json.loads(record.read_text(encoding="utf-8"))
    from .monthly import read_check_results  # the monthly sections' reader

    inputs.check_results = read_check_results(lake.root, run_id)
    inputs.data_docs = _find_data_docs(lake.reports, lake.meta)
    if (lake.reports / "data_dictionary.html").exists():
        inputs.dictionary = "data_dictionary.html"
    return inputs


# -- pure summaries ------------------------------------------------------------------
def collection_by_day(frame: pl.DataFrame) -> pl.DataFrame:
    """date, meters_total, meters_read, success_rate over all areas (Σ read / Σ total)."""
    return (
        frame.group_by("date")
        .agg(pl.col("meters_total").sum(), pl.col("meters_read").sum())
        .with_columns((pl.col("meters_read") / pl.col("meters_total")).alias("success_rate"))
        .sort("date")
    )


def collection_unit(frame: pl.DataFrame) -> pl.Expr:
    """The area, or "feeder F (direct)" for rows of meters outside any area."""
    if "feeder_id" not in frame.columns:
        return pl.col("area_id").fill_null("(no area)")
    return pl.coalesce(pl.col("area_id"), pl.format("feeder {} (direct)", pl.col("feeder_id")))


def collection_worst_areas(frame: pl.DataFrame, target: float, top: int) -> pl.DataFrame:
    """Areas by their period success rate, worst first, with the days below target."""
    return (
        frame.with_columns(collection_unit(frame).alias("area_id"))
        .group_by("area_id")
        .agg(
            pl.col("meters_total").sum(),
            pl.col("meters_read").sum(),
            (pl.col("success_rate") < target).sum().alias("days_below_target"),
            pl.len().alias("days"),
        )
        .with_columns((pl.col("meters_read") / pl.col("meters_total")).alias("success_rate"))
        .filter(pl.col("success_rate") < target)
        .sort(["success_rate", "area_id"], nulls_last=True)
        .head(top)
    )


def status_counts(frame: pl.DataFrame, column: str = "status") -> pl.DataFrame:
    return frame.group_by(column).agg(pl.len().alias("count")).sort(column)


def loss_by_day(frame: pl.DataFrame) -> pl.DataFrame:
    """Daily loss rate over all computable areas: Σ loss / Σ supply (never a mean of rates)."""
    ok = frame.filter(pl.col("status") != "uncomputable")
    return (
        ok.group_by("date")
        .agg(pl.col("supply_kwh").sum(), pl.col("sales_kwh").sum(), pl.col("loss_kwh").sum(), pl.len().alias("areas"))
        .with_columns((pl.col("loss_kwh") / pl.col("supply_kwh")).alias("loss_rate"))
        .sort("date")
    )


def loss_histogram(rates: pl.Series, edges: list[float]) -> pl.DataFrame:
    """Counts of loss rates cut at ``edges``: ``< e0``, ``[e0, e1)``, ..., ``>= e_last``.

    Nulls and NaN (uncomputable) are left out. Labels are in percent.
    """
    edges = sorted(edges)
    pct = [f"{e * 100:g}" for e in edges]
    labels = [f"<{pct[0]}%"] + [f"{pct[i]}..{pct[i + 1]}%" for i in range(len(edges) - 1)] + [f"≥{pct[-1]}%"]
    values = pl.DataFrame({"rate": rates.cast(pl.Float64)}).filter(
        pl.col("rate").is_not_null() & pl.col("rate").is_not_nan()
    )
    # the bin of a rate is the number of edges at or below it (left-closed bins)
    counts = (
        values.select(pl.sum_horizontal([(pl.col("rate") >= e).cast(pl.Int64) for e in edges]).alias("bin"))
        .group_by("bin")
        .agg(pl.len().alias("count"))
    )
    return (
        pl.DataFrame({"bin": list(range(len(labels))), "label": labels}, schema={"bin": pl.Int64, "label": pl.String})
        .join(counts, on="bin", how="left")
        .with_columns(pl.col("count").fill_null(0).cast(pl.Int64))
        .sort("bin")
    )


def area_period_loss(daily: pl.DataFrame) -> pl.DataFrame:
    """Per area over the period's computable days: Σ supply, Σ sales, Σ loss and the rate."""
    return (
        daily.filter(pl.col("status") != "uncomputable")
        .group_by("area_id")
        .agg(pl.col("supply_kwh").sum(), pl.col("sales_kwh").sum(), pl.col("loss_kwh").sum(), pl.len().alias("days"))
        .with_columns((pl.col("loss_kwh") / pl.col("supply_kwh")).alias("loss_rate"))
        .sort("area_id")
    )


def area_period_status(daily: pl.DataFrame) -> pl.DataFrame:
    """Per area over the period's computable days: the sums, the rate, and how many days
    were high or negative; ``status`` is the more frequent of the two abnormal daily
    statuses (high on a tie), ``normal`` when the area had neither.

    Used to rank areas when no computable monthly figure exists yet (month-to-date
    with a missing day makes the month uncomputable)."""
    return (
        area_period_loss(daily)
        .join(
            daily.group_by("area_id").agg(
                (pl.col("status") == "high").sum().alias("days_high"),
                (pl.col("status") == "negative").sum().alias("days_negative"),
            ),
            on="area_id",
            how="left",
        )
        .with_columns(
            pl.when((pl.col("days_high") > 0) & (pl.col("days_high") >= pl.col("days_negative")))
            .then(pl.lit("high"))
            .when(pl.col("days_negative") > 0)
            .then(pl.lit("negative"))
            .otherwise(pl.lit("normal"))
            .alias("status")
        )
        .sort("area_id")
    )


def monthly_status_line(monthly: pl.DataFrame) -> pl.DataFrame:
    """status, count, and for uncomputable months the reason codes with their counts."""
    counts = status_counts(monthly)
    if "reason" not in monthly.columns:
        return counts.with_columns(pl.lit(None, pl.String).alias("reasons"))
    reasons = (
        monthly.filter(pl.col("status") == "uncomputable")
        .select(pl.col("reason").str.split(",").alias("r"))
        .explode("r")
        .drop_nulls()
        .group_by("r")
        .agg(pl.len().alias("n"))
        .sort(["n", "r"], descending=[True, False])
        .select(pl.format("{}: {}", "r", "n").str.join(", ").alias("reasons"))
    )
    text = reasons["reasons"][0] if reasons.height else None
    return counts.with_columns(
        pl.when(pl.col("status") == "uncomputable").then(pl.lit(text)).otherwise(None).alias("reasons")
    )


def diagnosis_text(diagnosis: pl.DataFrame, per_area: int = 3) -> pl.DataFrame:
    """area_id -> the strongest findings as one line ("theft_candidate 0012 (0.83); ...").

    Uses the latest window (date) per area; falls back to any text column when the
    mart lacks kind/meter_id/score.
    """
    cols = diagnosis.columns
    if not {"area_id", "kind", "meter_id", "score"} <= set(cols):
        return pl.DataFrame(schema={"area_id": pl.String, "diagnosis": pl.String})
    d = diagnosis
    if "date" in cols:
        d = d.filter(pl.col("date") == pl.col("date").max().over("area_id"))
    label = pl.format("{} {} ({})", pl.col("kind"), pl.col("meter_id"), pl.col("score").round(2))
    return (
        d.with_columns(label.alias("text"))
        .group_by("area_id")
        .agg(
            pl.col("text")
            .sort_by(["score", "text"], descending=[True, False])
            .head(per_area)
            .str.join("; ")
            .alias("diagnosis")
        )
        .sort("area_id")
    )


def worst_areas(loss: pl.DataFrame, diagnosis: pl.DataFrame | None, top: int) -> pl.DataFrame:
    """High or negative loss areas, furthest from zero first, with their diagnosis."""
    worst = (
        loss.filter(pl.col("status").is_in(["high", "negative"]))
        .sort([pl.col("loss_rate").abs(), pl.col("area_id")], descending=[True, False], nulls_last=True)
        .head(top)
    )
    if diagnosis is not None and diagnosis.height:
        worst = worst.join(diagnosis_text(diagnosis), on="area_id", how="left", maintain_order="left")
    else:
        worst = worst.with_columns(pl.lit(None, pl.String).alias("diagnosis"))
    return worst


def _reasons_as_list(frame: pl.DataFrame) -> pl.Expr:
    dtype = frame.schema["reasons"]
    if dtype.base_type() in (pl.List, pl.Array):
        return pl.col("reasons").cast(pl.List(pl.String))
    return (
        pl.col("reasons")
        .cast(pl.String)
        .str.split(by=";")
        .list.eval(pl.element().str.split(",").explode())
        .list.eval(pl.element().str.strip_chars())
        .list.eval(pl.element().filter(pl.element() != ""))
    )


def top_anomalies(frame: pl.DataFrame, top: int) -> pl.DataFrame:
    """Each meter's highest-scoring day in the period, highest first, reasons as text."""
    best = (
        frame.sort(["score", "date"], descending=[True, True], nulls_last=True)
        .unique(subset=["meter_id"], keep="first", maintain_order=True)
        .head(top)
    )
    return best.with_columns(_reasons_as_list(best).list.join("; ").alias("reasons"))


def anomaly_reason_counts(frame: pl.DataFrame, top: int = 12) -> pl.DataFrame:
    """How many flagged meter-days each indicator contributed to (reason, count).

    From the per-indicator ``*_points`` columns when the mart has them (a day counts
    for every indicator that gave it points), else from the reasons text split on
    ``;`` and ``,``.
    """
    points = [c for c in frame.columns if c.endswith("_points")]
    if points and frame.select(pl.any_horizontal(pl.col(points).is_not_null()).any()).item():
        counts = frame.select((pl.col(c) > 0).sum().alias(c.removesuffix("_points")) for c in points)
        long = counts.unpivot(variable_name="reason", value_name="count").with_columns(pl.col("count").cast(pl.UInt32))
        return long.filter(pl.col("count") > 0).sort(["count", "reason"], descending=[True, False]).head(top)
    return (
        frame.select(_reasons_as_list(frame).alias("reason"))
        .explode("reason")
        .drop_nulls()
        .group_by("reason")
        .agg(pl.len().alias("count"))
        .sort(["count", "reason"], descending=[True, False])
        .head(top)
    )


def bills_by_month(bills: pl.DataFrame) -> pl.DataFrame:
    aggs = [
        pl.len().alias("bills"),
        pl.col("customer_id").n_unique().alias("customers"),
        pl.col("kwh_total").sum(),
        pl.col("amount_yuan").sum(),
    ]
    if "status" in bills.columns:
        aggs.append((pl.col("status") != "ok").sum().alias("exceptions"))
    return bills.group_by("month").agg(aggs).sort("month")


def bills_by_tariff(bills: pl.DataFrame) -> pl.DataFrame:
    return (
        bills.group_by("tariff_id")
        .agg(pl.col("kwh_total").sum(), pl.col("amount_yuan").sum(), pl.len().alias("bills"))
        .sort("tariff_id", nulls_last=True)
    )


def prepay_last_day(prepay: pl.DataFrame) -> pl.DataFrame:
    """The prepay rows of the period's last date."""
    return prepay.filter(pl.col("date") == pl.col("date").max())


def lowest_balances(prepay: pl.DataFrame, top: int) -> pl.DataFrame:
    last = prepay_last_day(prepay)
    return (
        last.filter(pl.col("status").is_in(["arrears", "low", "mismatch"]))
        .sort(["balance_yuan", "customer_id"], nulls_last=True)
        .head(top)
    )


def recovery_by_month(recovery: pl.DataFrame) -> pl.DataFrame:
    """Company totals per month: the org rows (area and feeder rows split the same customers)."""
    if "scope" in recovery.columns and recovery["scope"].is_not_null().any():
        recovery = recovery.filter(pl.col("scope") == "org")
    cols = set(recovery.columns)
    wanted = ("billed_yuan", "prepay_billed_yuan", "collected_yuan", "arrears_yuan", "arrears_customers")
    aggs = [pl.col(c).sum() for c in wanted if c in cols]
    return recovery.group_by("month").agg(aggs).sort("month")


def quality_by_day(meter_daily: pl.DataFrame) -> pl.DataFrame:
    """date, actual, estimated, missing meter-day counts."""
    return (
        meter_daily.group_by("date", "quality")
        .agg(pl.len().alias("n"))
        .pivot(on="quality", index="date", values="n", on_columns=["actual", "estimated", "missing"])
        .with_columns(pl.col("actual", "estimated", "missing").fill_null(0))
        .sort("date")
    )


def quarantine_counts(quarantine: pl.DataFrame, top: int) -> pl.DataFrame:
    return (
        quarantine.group_by("dataset", "reason")
        .agg(pl.len().alias("rows"))
        .sort(["rows", "dataset", "reason"], descending=[True, False, False])
        .head(top)
    )


def findings_counts(findings: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """mart, rule, severity, findings, over every findings mart of the period."""
    frames = [
        f.group_by("rule", "severity").agg(pl.len().alias("findings")).with_columns(pl.lit(name).alias("mart"))
        for name, f in sorted(findings.items())
        if {"rule", "severity"} <= set(f.columns) and f.height
    ]
    if not frames:
        return pl.DataFrame(schema={"mart": pl.String, "rule": pl.String, "severity": pl.String, "findings": pl.UInt32})
    return (
        pl.concat(frames, how="vertical_relaxed")
        .select("mart", "rule", "severity", "findings")
        .sort(["findings", "mart", "rule"], descending=[True, False, False])
    )
