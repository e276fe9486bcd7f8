"""The loss stage: area and feeder line loss, daily and monthly, and its diagnosis.

Reads the ``meter_daily`` mart; writes (all Hive-partitioned under ``LAKE/marts/``)::

    area_loss_daily/date=YYYY-MM-DD       one file per date in `dates` the lake holds
    feeder_loss_daily/date=YYYY-MM-DD
    area_loss_monthly/month=YYYY-MM       every month the dates touch, rebuilt from all
    feeder_loss_monthly/month=YYYY-MM     the meter_daily days of that month the lake
                                          holds (month-to-date for the current month)
    loss_diagnosis/date=YYYY-MM-DD        one file per window end (see below)

Diagnosis windows: with ``cadence = "daily"`` (the default) a window of
``window_days`` days ends at each date of ``dates`` the lake holds; with
``cadence = "monthly"`` one window per touched month ends at the latest day of that
month the lake holds. A window uses the meter_daily days the lake holds inside it. A
diagnosis partition is written even when it finds nothing, so "diagnosed, nothing
found" differs from "not diagnosed".

A date in ``dates`` without a meter_daily partition gets no daily files (noted in the
result); nothing is deleted. A *pending* day, one whose meter_daily partition holds no
value at all (the newest freeze date: a day's kWh needs the next day's register, so
validate writes it all ``missing`` until that arrives), gets its daily files when asked
for (every area uncomputable) but is left out of the months and the diagnosis
windows, so that month-to-date figures run through the last day with data instead of
all reading uncomputable. Every file is a function of meter_daily and the
configuration only, so a rerun writes identical files.

Kept between runs (working files under ``LAKE/_state/``, never read by anything else):
the interval balance's day statistics (``balance/``) and each day's diagnosis member rows
(``diagnosis/``: the masters' and customers' values of the day, sorted by area, their
file's footer stamped with the identity of the meter_daily file they came from). A window
of a zone too large to hold reads its days' kept member rows, each range of areas a few
row groups of them, not meter_daily again for every range; a day whose meter_daily file
changed (a rerun, a late file) or whose kept file is missing or unreadable is kept again
from meter_daily. No setting enters them, so a changed setting reuses them. A
run's end removes the kept days older than the windows a daily run reads
(:meth:`~meterlake.lake.Lake.prune_dated_state`): a rerun of an older date keeps its
window's days again.

Thresholds come from ``config/loss.toml`` (:class:`LossConfig`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import Field, field_validator, model_validator

from .. import allocator
from ..lake import Lake, identity_stamp, kept_stamps
from ..schemas._base import Table
from ..schemas.area_loss_daily import AREA_LOSS_DAILY
from ..schemas.area_loss_monthly import AREA_LOSS_MONTHLY
from ..schemas.curves import LANDING as CURVES_LANDING
from ..schemas.feeder_loss_daily import FEEDER_LOSS_DAILY
from ..schemas.feeder_loss_monthly import FEEDER_LOSS_MONTHLY
from ..schemas.loss_diagnosis import KINDS, LOSS_DIAGNOSIS
from ..schemas.loss_worklist_monthly import LOSS_WORKLIST_MONTHLY
from ..schemas.meter_daily import METER_DAILY
from ..schemas.outage_mapping_suspects import OUTAGE_MAPPING_SUSPECTS
from ..transforms import balance, loss, outages
from ..transforms.dates import month_of, split_by_date
from ..transforms.frames import sort_distinct
from ..transforms.loss_diagnosis import DiagnosisRules, diagnose_windows, member_rows
from ..transforms.loss_worklist import DEFAULT_ORDER, DIAGNOSIS_COLUMNS, MONTHLY_COLUMNS, worklist
from ..transforms.strict import StrictModel
from . import StageContext, StageError, StageResult

CONFIG_NAME = "loss"


# -- configuration ----------------------------------------------------------------------


class AreaClassModel(StrictModel):
    name: str = Field(description="class name written to area_class (not 'default')", min_length=1)
    area_ids: list[str] = Field(default_factory=list, description="areas in the class, one by one")
    area_id_pattern: str | None = Field(
        None, description="regular expression an area_id must contain to be in the class"
    )
    min_actual_share: float | None = Field(
        None, ge=0.0, le=1.0, description="the class's collection threshold; unset = [area]"
    )
    negative_below: float | None = Field(None, description="the class's negative threshold; unset = [area]")
    high_above: float | None = Field(None, description="the class's high threshold; unset = [area]")
    min_coverage: float | None = Field(None, ge=0.0, le=1.0, description="the class's monthly coverage; unset = [area]")
    max_master_substituted_days: int | None = Field(
        None, ge=0, description="the class's substituted master days; unset = [area]"
    )
    economic_low: float | None = Field(None, description="the class's economic band, lower edge; unset = [area]")
    economic_high: float | None = Field(None, description="the class's economic band, upper edge; unset = [area]")

    @field_validator("name")
    @classmethod
    def _not_default(cls, v: str) -> str:
        if v == loss.DEFAULT_CLASS:
            raise ValueError(f"'{loss.DEFAULT_CLASS}' is the name of areas in no class; choose another")
        return v

    @field_validator("area_id_pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from exc
        return v

    @model_validator(mode="after")
    def _matches_something(self) -> AreaClassModel:
        if not self.area_ids and not self.area_id_pattern:
            raise ValueError(f"area class {self.name!r}: give area_ids or area_id_pattern")
        return self

    def area_class(self, base: loss.StatusRule) -> loss.AreaClass:
        def pick(name: str) -> Any:
            own = getattr(self, name)
            return getattr(base, name) if own is None else own

        rule = loss.StatusRule(**{name: pick(name) for name in loss.THRESHOLDS})
        return loss.AreaClass(self.name, rule, tuple(self.area_ids), self.area_id_pattern)


class BalanceModel(balance.BalanceRules):
    """The interval balance's rules, and whether and how often the stage fits it."""

    enabled: bool = Field(True, description="fit the interval energy balance of every area (needs the clean curves)")
    every_days: int = Field(
        7, ge=1, description="fit on window ends every this many days (and on the run's last), not every day"
    )
    on_last_date: bool = Field(
        True,
        description="fit on the run's last window end too: a daily run fits every day; false: a daily run fits "
        "on the every_days ends only, as a backfill does (each date's file the same either way)",
    )

    def rules(self) -> balance.BalanceRules:
        return balance.BalanceRules(**self.model_dump(include=set(balance.BalanceRules.model_fields)))


class DiagnosisModel(DiagnosisRules):
    """The diagnosis's rules, its cadence, and the interval balance."""

    cadence: Literal["daily", "monthly"] = Field(
        "daily", description="a window ending at each run date, or one per touched month ending at its latest day"
    )
    balance: BalanceModel = Field(
        default_factory=BalanceModel, description="the interval energy balance (台区电量平衡) on the curves"
    )

    def rules(self) -> DiagnosisRules:
        return DiagnosisRules(**self.model_dump(include=set(DiagnosisRules.model_fields)))


class WorklistModel(StrictModel):
    suspects: int = Field(3, ge=1, le=20, description="top suspects listed per area-month")
    order_high: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ORDER["high"]),
        description="suspect kinds of a high-loss area, first listed first",
    )
    order_negative: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ORDER["negative"]),
        description="suspect kinds of a negative-loss area, first listed first",
    )
    months_back: int = Field(
        24, ge=1, description="months of area_loss_monthly read to count consecutive months in a state"
    )

    @field_validator("order_high", "order_negative")
    @classmethod
    def _kinds(cls, v: list[str]) -> list[str]:
        unknown = [k for k in v if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown kind(s) {', '.join(unknown)}; expected some of {', '.join(KINDS)}")
        return v

    def order(self) -> dict[str, tuple[str, ...]]:
        return {
            "high": tuple(self.order_high),
            "negative": tuple(self.order_negative),
            "uncomputable": tuple(self.order_high),
        }


class LossConfig(StrictModel):
    """config/loss.toml."""

    area: loss.StatusRule = Field(default_factory=loss.StatusRule, description="status thresholds of transformer areas")
    feeder: loss.StatusRule = Field(default_factory=loss.StatusRule, description="status thresholds of 10 kV feeders")
    area_class: list[AreaClassModel] = Field(
        default_factory=list, description="areas with thresholds of their own, first match wins"
    )
    diagnosis: DiagnosisModel = Field(default_factory=DiagnosisModel, description="loss diagnosis")
    pv: loss.PvInference = Field(
        default_factory=loss.PvInference, description="PV inference where the archive has no pv_capacity_kw"
    )
    worklist: WorklistModel = Field(default_factory=WorklistModel, description="loss_worklist_monthly")

    @model_validator(mode="after")
    def _unique_classes(self) -> LossConfig:
        names = [c.name for c in self.area_class]
        dup = sorted(n for n, k in Counter(names).items() if k > 1)
        if dup:
            raise ValueError(f"area_class names must be unique; repeated: {', '.join(dup)}")
        return self

    def rules(self) -> loss.LossRules:
        return loss.LossRules(
            area=self.area,
            feeder=self.feeder,
            area_classes=tuple(c.area_class(self.area) for c in self.area_class),
            pv=self.pv,
        )

    def diagnosis_rules(self) -> DiagnosisRules:
        return self.diagnosis.rules()


# -- the stage --------------------------------------------------------------------------


def window_ends(dates: list[dt.date], held: set[dt.date], cadence: str) -> list[dt.date]:
    """The diagnosis window ends for a run over ``dates``.

    >>> d = [dt.date(2026, 1, 30), dt.date(2026, 2, 1)]
    >>> held = {dt.date(2026, 1, 30), dt.date(2026, 1, 31), dt.date(2026, 2, 1)}
    >>> window_ends(d, held, "daily")
    [datetime.date(2026, 1, 30), datetime.date(2026, 2, 1)]
    >>> window_ends(d, held, "monthly")
    [datetime.date(2026, 1, 31), datetime.date(2026, 2, 1)]
    """
    if cadence == "daily":
        return sorted(d for d in set(dates) if d in held)
    months = {month_of(d) for d in dates}
    return sorted(max(h for h in held if month_of(h) == m) for m in months if any(month_of(h) == m for h in held))


#: meter_daily rows of a run held in memory for the diagnosis windows (about 40 MB: not a
#: county day, whose peak it would raise); beyond that a window is scanned from the lake by
#: each pass of the diagnosis
WINDOW_ROWS_IN_MEMORY = 300_000


def _count(frame: pl.DataFrame, col: str) -> dict[str, int]:
    """Rows per value of ``col`` (a Python count: a written file's few values, no query)."""
    return dict(sorted(Counter(frame[col].to_list()).items(), key=lambda kv: (kv[0] is not None, kv[0] or "")))


#: where the interval balance keeps each day's sufficient statistics (small: one row per
#: area and per customer), so a window fit sums days instead of holding their curves
BALANCE_STATE = ("_state", "balance")
#: rows per row group of a day's kept customer states (sorted by area): a window read a range
#: of areas at a time reads the groups holding each range, not the whole file
STATE_ROW_GROUP = 16_384


def _state_files(lake: Lake, day: dt.date) -> tuple[Path, Path]:
    base = lake.root.joinpath(*BALANCE_STATE, f"date={day.isoformat()}")
    return base / "areas.parquet", base / "customers.parquet"


#: where the diagnosis keeps each day's member rows (:func:`member_rows`: the masters' and
#: customers' values, sorted by area): a window reads its kept days, each range of areas a
#: few row groups of them, instead of reading meter_daily again for every range and pass
DIAGNOSIS_STATE = ("_state", "diagnosis")
#: the kept member rows' format: a day kept in another is kept again
DIAGNOSIS_STATE_VERSION = 2


def _member_path(lake: Lake, day: dt.date) -> Path:
    return lake.root.joinpath(*DIAGNOSIS_STATE, f"date={day.isoformat()}", "members.parquet")


def _member_stamps(lake: Lake, day: dt.date) -> dict[str, str]:
    """What ``day``'s kept member rows are made from, as their file's footer records it: the
    format and the identity of the day's meter_daily file. No setting enters the member rows
    (:func:`member_rows`), so none is stamped."""
    return {
        "version": str(DIAGNOSIS_STATE_VERSION),
        "meter_daily": identity_stamp(lake.partition_path(METER_DAILY, day.isoformat())),
    }


def _members_kept(lake: Lake, day: dt.date) -> bool:
    """Whether ``day``'s kept member rows are those of its meter_daily file as it is now: a
    rerun of the day (or a late file) rebuilds meter_daily under a new identity, and the rows
    are computed again (:func:`~meterlake.lake.kept_stamps`)."""
    now = _member_stamps(lake, day)
    return kept_stamps(_member_path(lake, day), now) == now


def _keep_members(lake: Lake, days: list[dt.date], prepared: pl.LazyFrame) -> None:
    """Keep the member rows of those of ``days`` not kept as they are now, from their
    :func:`~meterlake.transforms.loss.prepare`'d meter_daily rows ``prepared`` (one query)."""
    want = [d for d in days if not _members_kept(lake, d)]
    if not want:
        return
    frame = member_rows(prepared.filter(pl.col("date").is_in(want))).collect()
    for day, rows in split_by_date(frame, want).items():
        path = _member_path(lake, day)
        # sorted by area, in row groups: a range of areas reads the groups that hold it;
        # lz4, as the balance's kept days (read back by every window holding the day)
        lake.write_file(
            path,
            sort_distinct(rows, ["area_id", "meter_id"]),
            row_group_size=STATE_ROW_GROUP,
            compression="lz4",
            metadata=_member_stamps(lake, day),
        )
        path.with_name("stamp.json").unlink(missing_ok=True)  # where earlier versions kept the stamp


def _curves(lake: Lake, days: list[dt.date]) -> pl.LazyFrame:
    held = set(lake.partitions(CURVES_LANDING.clean))
    want = [d for d in days if d.isoformat() in held]
    if not want:
        return pl.LazyFrame(
            schema={"meter_id": pl.String, "data_date": pl.Date, **dict.fromkeys(balance.SLOT_COLUMNS, pl.Float64)}
        )
    return lake.scan(CURVES_LANDING.clean, want).select("meter_id", "data_date", *balance.SLOT_COLUMNS)


#: threads fitting a day's ranges of areas at once (:data:`~meterlake.transforms.balance.RangeMap`),
#: each holding one range's arrays (~30 MB at CHUNK_ROWS); 1: one after another, in the
#: stage's thread
FIT_THREADS = min(2, allocator.cpus())


def _fitted_on(pool: ThreadPoolExecutor) -> balance.RangeMap:
    """A :data:`~meterlake.transforms.balance.RangeMap` fitting on ``pool``'s threads.

    Each thread allocates its ranges' arrays from a C heap (glibc arena) of its own,
    which keeps what they freed; once the day's ranges are fitted that is handed back
    (:func:`~meterlake.allocator.trim`), before the day's frames are built on top of it."""

    def fit_ranges(fit: Callable[[tuple[int, int]], Any], ranges: Sequence[tuple[int, int]]) -> Iterator[Any]:
        yield from pool.map(fit, ranges)
        allocator.trim()

    return fit_ranges


def _balance_days(
    lake: Lake, rules: balance.BalanceRules, days: list[dt.date], rows: pl.LazyFrame | None = None
) -> None:
    """Compute and keep the balance statistics of ``days`` (each from that day's curves and
    meter_daily only), read at once. ``rows``: the days' meter_daily rows where the caller
    holds them (else read from the lake); the caller bounds how many days it hands."""
    if not days:
        return
    members = (lake.scan(METER_DAILY, days) if rows is None else rows).select(list(balance.MEMBER_COLUMNS))
    try:
        with ThreadPoolExecutor(max_workers=FIT_THREADS, thread_name_prefix="balance-fit") as pool:
            fit_ranges = _fitted_on(pool) if FIT_THREADS > 1 else map
            states = balance.day_states(_curves(lake, days), members, days, rules, fit_ranges=fit_ranges)
    except balance.BalanceInputError as exc:
        when = f"{days[0]}" if len(days) == 1 else f"{days[0]} .. {days[-1]}"
        raise StageError(f"loss: energy balance {when}: {exc}") from exc
    for day, (areas, customers) in zip(days, states, strict=True):
        a, c = _state_files(lake, day)
        # working files, read back by every window holding the day: lz4 (a county day's
        # customers: about half the CPU of zstd to write and to read, 12 % larger)
        lake.write_file(a, areas.drop("date"), compression="lz4")
        lake.write_file(c, customers.drop("date"), row_group_size=STATE_ROW_GROUP, compression="lz4")


#: customer-days of a balance window's days fitted at once: a larger window is read and
#: fitted a range of whole areas at a time (with the step statistic's days before it, a
#: few columns of them). The fit holds about 1.4 kB a customer-day (its frames, the
#: eliminated sums, three passes): a range about 0.2 GB (the 50,000-meter zone's
#: 14-day window, 0.69M customer-days: 5 ranges)
WINDOW_RANGE_ROWS = 150_000


def _area_ranges(files: list[Path], rows: int) -> list[tuple[str, str]]:
    """(first, last) area of ranges of whole areas holding about ``rows`` rows of ``files``
    (customer states) together, a range ending at the first area after every ``rows``
    rows (an area holding more is a range of its own). Reads the files' area_id only."""
    if not files:
        return []
    scans = [pl.scan_parquet(f).select("area_id") for f in files]
    counts = pl.concat(scans).group_by("area_id").len().sort("area_id").collect()
    if not counts.height:
        return []
    # the ranges the balance's day statistics cut a day's rows into, on the window's counts
    starts = np.r_[0, np.cumsum(counts["len"].to_numpy())[:-1]]
    first = balance.range_firsts(starts, rows)
    last = np.r_[first[1:] - 1, counts.height - 1]
    ids = counts["area_id"]
    return list(zip(ids.gather(first).to_list(), ids.gather(last).to_list(), strict=True))


def _customer_states(lake: Lake, earlier: list[dt.date], days: list[dt.date], rows: pl.Expr) -> pl.DataFrame:
    """The kept customer states of ``days`` and, for the step statistic, what the
    customers recorded on the ``earlier`` days, of the ``rows`` asked for."""
    step = ["area_id", "meter_id", "kwh", "night_kwh", "night_slots"]
    frames = []
    for d in earlier:
        scan = pl.scan_parquet(_state_files(lake, d)[1])
        names = scan.collect_schema().names()  # states kept before night_slots lack it
        frames.append(scan.select(c for c in step if c in names).filter(rows).with_columns(date=pl.lit(d)))
    frames += [pl.scan_parquet(_state_files(lake, d)[1]).filter(rows).with_columns(date=pl.lit(d)) for d in days]
    # states kept before the cross products lack them
    return pl.concat(frames, how="diagonal_relaxed").collect()


def _with_balance(
    ctx: StageContext,
    cfg: LossConfig,
    end: dt.date,
    frame: pl.DataFrame,
    theft_max_per_area: int,
    days: list[dt.date],
    held: set[dt.date],
) -> pl.DataFrame:
    """The window's diagnosis with the interval energy balance's findings merged in.

    ``days``: the days of the window with meter values; ``held``: every day meter_daily
    holds. Each day's statistics come from the lake's balance state (computed here for a
    day that has none yet); the step statistic reads the customers' states of its
    ``step_days`` before the window too, computed likewise where missing, so a window's
    findings do not depend on which runs came before. The customers' states are read and
    fitted a range of whole areas at a time (about :data:`WINDOW_RANGE_ROWS` of the
    window's customer-days): an area's figures are a function of its own rows only, so
    the findings are the whole window's, and the fit holds one range, not the window.
    """
    rules = cfg.diagnosis.balance.rules()
    start = end - dt.timedelta(days=rules.window_days - 1)
    lake = ctx.lake
    days = [d for d in days if start <= d <= end]
    if len(days) < rules.min_days:
        return frame
    ctx.progress(f"loss: energy balance (window {start} .. {end}, {len(days)} days)")
    # the step statistic reads the customers' recorded days further back, where meter_daily holds them
    step_start = end - dt.timedelta(days=max(rules.step_days, rules.window_days) - 1)
    earlier = sorted(d for d in held if step_start <= d < start)
    # a day before this run's dates, not yet kept (one at a time: their sizes are not known)
    for day in [*earlier, *days]:
        if not _state_files(lake, day)[1].exists():
            _balance_days(lake, rules, [day])
    areas = pl.concat(
        [pl.read_parquet(_state_files(lake, d)[0]).with_columns(date=pl.lit(d)) for d in days],
        how="diagonal_relaxed",  # states kept before ll_linear lack it
    )
    # a range of whole areas at a time: an area's figures are a function of its own rows,
    # so the ranges' figures are the whole window's, and a range's rows are all it holds
    parts = []
    for lo, hi in _area_ranges([_state_files(lake, d)[1] for d in days], WINDOW_RANGE_ROWS):
        inside = pl.col("area_id").is_between(pl.lit(lo), pl.lit(hi))
        parts.append(
            balance.balance_window(areas.filter(inside), _customer_states(lake, earlier, days, inside), end, rules)
        )
    if not parts:  # no customer kept: the empty coefficients
        parts.append(balance.balance_window(areas.clear(), pl.DataFrame(), end, rules))
    coef = sort_distinct(pl.concat(parts, how="diagonal_relaxed"), ["area_id", "meter_id"])
    cands = balance.mapping_candidates(coef, rules)
    curves = _curves(lake, days).filter(pl.col("meter_id").is_in(cands["meter_id"].implode()))
    maps = balance.mapping_tests(cands, curves, areas, rules)
    found = balance.findings(coef, maps, start, end, rules)
    return balance.merge_diagnosis(frame, found, start, end, theft_max_per_area, rules.weak_weight)


def _pv_inference(lake: Lake, held: set[dt.date], months: list[str], rules: loss.LossRules) -> pl.DataFrame | None:
    """PV inferred from history for the customers whose archive rows leave PV empty (a v1
    archive), or None when every customer of the touched months has it from the archive."""
    days = sorted(h for h in held if month_of(h) in months)
    if not days:
        return None
    undeclared = (
        lake.scan(METER_DAILY, days)
        .filter((pl.col("role") == "customer") & pl.col("pv_capacity_kw").is_null())
        .select("meter_id")
        .unique()
        .collect()
    )
    if not undeclared.height:
        return None
    history = lake.scan(METER_DAILY, sorted(h for h in held if h <= days[-1])).filter(
        pl.col("meter_id").is_in(undeclared["meter_id"].implode())
    )
    return loss.infer_pv(
        history.select("date", "meter_id", "role", "kwh", "reverse_kwh", "quality", "pv_capacity_kw"), rules.pv
    )


#: meter_daily rows read in one query for the daily figures (and counted against
#: WINDOW_ROWS_IN_MEMORY): a small zone's month is read at once, a county day alone
DAY_ROWS_PER_READ = 100_000
#: meter-days of the diagnosis windows diagnosed in one pass (each meter-day counted once
#: per window holding it: a small zone's 59 daily windows, about 0.4M, are one pass and
#: ~0.1 GB); a window larger than this (a county's) is diagnosed alone
WINDOW_ROWS_PER_PASS = 500_000
#: meter-days of a pass whose tests run at once: a larger pass (a window of a zone above
#: ~8,000 meters) is tested one range of whole areas at a time (the mapping test's pairs
#: of a 50,000-meter window held at once took 1.8 GB)
DIAGNOSIS_ROWS_PER_RANGE = 500000


@dataclass
class _Days:
    """Days of meter_daily read and balanced in one query: their rows (prepared), the
    area balances of each day, and which days hold no value yet."""

    days: list[dt.date]
    meters: pl.LazyFrame
    areas: dict[dt.date, pl.DataFrame]
    pending: set[dt.date]


@dataclass
class _LossRun:
    """What the stage's steps share: its settings, the days it has read, what it wrote."""

    ctx: StageContext
    cfg: LossConfig
    dates: list[dt.date]
    rules: loss.LossRules = field(init=False)
    diag: DiagnosisRules = field(init=False)
    held: set[dt.date] = field(init=False)
    todo: set[dt.date] = field(init=False)
    months: list[str] = field(init=False)
    pv: pl.DataFrame | None = None
    result: StageResult = field(default_factory=lambda: StageResult(stage="loss"))
    written: Counter[str] = field(default_factory=Counter)
    status: dict[str, Counter[str]] = field(
        default_factory=lambda: {
            t: Counter() for t in ("area_loss_daily", "feeder_loss_daily", "area_loss_monthly", "feeder_loss_monthly")
        }
    )
    found: Counter[str] = field(default_factory=Counter)
    issues: Counter[str] = field(default_factory=Counter)
    substituted: Counter[str] = field(default_factory=Counter)
    #: area balances per day, computed once and shared by the months and the windows
    balances: dict[dt.date, pl.DataFrame] = field(default_factory=dict)
    #: days meter_daily holds with no value at all yet (left out of months and windows)
    pending: set[dt.date] = field(default_factory=set)
    #: meter_daily rows read, by day (to size the reads and the diagnosis passes)
    day_rows: dict[dt.date, int] = field(default_factory=dict)
    #: meter_daily days read for the daily figures, kept while they total at most
    #: WINDOW_ROWS_IN_MEMORY rows: a window made of them is not read again
    kept: dict[dt.date, pl.DataFrame] = field(default_factory=dict)
    ends: list[dt.date] = field(default_factory=list)
    absent: list[dt.date] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rules, self.diag = self.cfg.rules(), self.cfg.diagnosis_rules()
        self.held = {dt.date.fromisoformat(p) for p in self.ctx.lake.partitions(METER_DAILY)}
        self.todo = {d for d in self.dates if d in self.held}
        self.months = sorted({month_of(d) for d in self.dates})

    @property
    def lake(self) -> Lake:
        return self.ctx.lake

    def scan(self, days: list[dt.date]) -> pl.LazyFrame:
        return self.lake.scan(METER_DAILY, days).select(list(loss.INPUT_COLUMNS))

    def write(self, table: Table, value: object, frame: pl.DataFrame, sort_by: list[str] | None = None) -> None:
        self.lake.write_partition(table, value, frame, sort_by=sort_by)
        self.tally(table, frame)

    def write_days(
        self, table: Table, days: list[dt.date], frame: pl.DataFrame, sort_by: list[str] | None = None
    ) -> None:
        """A partition per day of ``days`` from ``frame`` (their rows), conformed in one query."""
        self.lake.write_partitions_from(table, frame, days, sort_by=sort_by)
        self.tally(table, frame)

    def tally(self, table: Table, frame: pl.DataFrame) -> None:
        self.written[table.name] += frame.height
        if "status" in frame.columns:
            self.status[table.name].update(_count(frame, "status"))

    def read(self, days: list[dt.date]) -> Iterator[_Days]:
        """``days`` of meter_daily, checked and balanced, read a few at a time (as many
        as DAY_ROWS_PER_READ rows hold, judged by the days read so far)."""
        i = 0
        while i < len(days):
            seen = list(self.day_rows.values())
            per_day = max(seen) if seen else DAY_ROWS_PER_READ
            n = max(1, DAY_ROWS_PER_READ // max(per_day, 1))
            part = days[i : i + n]
            i += n
            frame = self.scan(part).collect()
            counts = frame.group_by("date").len()
            self.day_rows.update(dict(zip(counts["date"].to_list(), counts["len"].to_list(), strict=True)))
            meters = loss.prepare(frame, self.pv)
            if frame.height + sum(f.height for f in self.kept.values()) <= WINDOW_ROWS_IN_MEMORY:
                self.kept.update(frame.partition_by("date", as_dict=True, include_key=True, maintain_order=True))
                self.kept = {k[0] if isinstance(k, tuple) else k: v for k, v in self.kept.items()}
            else:  # the windows read these days' member rows from the lake: kept once
                _keep_members(self.lake, part, meters)
            loss.check_input(meters)
            areas = loss.area_days(meters, self.rules).collect()
            present = meters.group_by("date").agg(pl.col("_present").any()).collect()
            with_values = set(present.filter(pl.col("_present"))["date"].to_list())
            out = _Days(part, meters, split_by_date(areas, part), {d for d in part if d not in with_values})
            del frame, meters  # held by `out` only: the caller lets the rows go
            yield out

    def window_rows(self, days: list[dt.date]) -> tuple[pl.LazyFrame, bool]:
        """The windows' rows, and whether they are member rows (:func:`member_rows`): the
        meter_daily rows from memory when every day is held (a small zone's backfill reads
        each day once, not once per window), else the days' kept member rows (kept here
        from memory or meter_daily for a day not kept as its file is now)."""
        if not days:
            return self.scan(days), False
        if all(d in self.kept for d in days):
            return pl.concat([self.kept[d] for d in days]).lazy(), False
        for d in days:
            if not _members_kept(self.lake, d):
                rows = self.kept[d].lazy() if d in self.kept else self.scan([d])
                _keep_members(self.lake, [d], loss.prepare(rows, self.pv))
        return pl.scan_parquet([_member_path(self.lake, d) for d in days]), True


def run(ctx: StageContext, dates: list[dt.date]) -> StageResult:
    r = _LossRun(ctx, ctx.config(CONFIG_NAME, LossConfig), dates)
    _inputs(r)
    try:
        for month in r.months:
            _month(r, month)
        _diagnosis(r)
    except loss.LossInputError as exc:
        raise StageError(f"loss: {exc}") from exc
    for month in r.months:
        _worklist(r, month)
    b = r.cfg.diagnosis.balance
    r.ctx.lake.prune_dated_state(BALANCE_STATE, max(b.window_days, b.step_days))
    r.ctx.lake.prune_dated_state(DIAGNOSIS_STATE, r.diag.window_days)
    return _summary(r)


def _inputs(r: _LossRun) -> None:
    """The dates meter_daily lacks, and PV inferred where the archive does not say."""
    r.absent = sorted(set(r.dates) - r.held)
    if r.absent:
        r.result.notes.append(
            f"no meter_daily partition for {len(r.absent)} date(s) ({r.absent[0]} .. {r.absent[-1]}): "
            "no daily loss written for them"
        )
    r.pv = _pv_inference(r.lake, r.held, r.months, r.rules)
    if r.pv is not None:
        r.result.notes.append(
            f"PV inferred from history for {r.pv.height} customer meter(s) without pv_capacity_kw in the archive "
            f"({int(r.pv['pv_inferred'].sum())} with PV): pv_basis = inferred"
        )


def _month(r: _LossRun, month: str) -> None:
    """Each day of the month once: the daily files of the run's dates, the day balances
    and value gaps the month is rolled up from, and the interval balance's day statistics;
    then the month's files."""
    days = sorted(h for h in r.held if month_of(h) == month)
    if not days:
        r.result.notes.append(f"no meter_daily partition in {month}: no monthly loss written")
        return
    area_parts, feeder_parts, gap_parts = [], [], []
    for i, part in enumerate(r.read(days)):
        r.ctx.progress(f"loss: {month} days {part.days[0]} .. {part.days[-1]} (read {i + 1})")
        feeders = loss.feeder_days(part.meters, r.rules).collect()
        gaps = loss.value_gaps(part.meters).collect()
        del part.meters  # the days' meter rows, let go before the balance reads their curves
        todo = [d for d in part.days if d in r.todo]
        if todo:  # the run's daily files of these days, each table in one query
            r.write_days(AREA_LOSS_DAILY, todo, loss.area_daily_table(pl.concat([part.areas[d] for d in todo])))
            r.write_days(FEEDER_LOSS_DAILY, todo, loss.feeder_daily_table(feeders.filter(pl.col("date").is_in(todo))))
        by_day = split_by_date(feeders, part.days)
        balanced = []
        for day in part.days:
            area_day, feeder_day = part.areas[day], by_day[day]
            if day in part.pending:
                # the newest freeze date: a day's kWh needs the next day's reading, so
                # validate writes it with every value missing until that arrives
                r.pending.add(day)
                continue
            r.balances[day] = area_day
            area_parts.append(area_day)
            feeder_parts.append(feeder_day)
            balanced.append(day)
        gap_parts.append(gaps.filter(pl.col("date").is_in(balanced)))
        if r.cfg.diagnosis.balance.enabled:
            # the interval balance's statistics of the days, kept for the windows: the
            # days of one read at once (their meter_daily rows from memory where kept)
            todo = [d for d in balanced if d in r.todo]
            rows = pl.concat([r.kept[d] for d in todo]).lazy() if todo and all(d in r.kept for d in todo) else None
            _balance_days(r.lake, r.cfg.diagnosis.balance.rules(), todo, rows)
    if not area_parts:
        r.result.notes.append(f"no meter value yet in {month}: no monthly loss written")
        return
    subs = _substitutes(r.lake, [d for d in days if d in r.balances], pl.concat(gap_parts), r.pv)
    r.write(AREA_LOSS_MONTHLY, month, loss.area_months(pl.concat(area_parts), subs, r.rules))
    r.write(FEEDER_LOSS_MONTHLY, month, loss.feeder_months(pl.concat(feeder_parts), subs, r.rules))
    r.substituted[month] = int(subs.height)


def _diagnosis(r: _LossRun) -> None:
    """One diagnosis per window end, several windows in one pass, each merged with the
    interval balance's findings where due and with the outage mapping suspects."""
    r.ends = window_ends(r.dates, r.held, r.cfg.diagnosis.cadence)
    span = dt.timedelta(days=r.diag.window_days - 1)

    def days_of(end: dt.date) -> list[dt.date]:
        return sorted(h for h in r.held if end - span <= h <= end)

    # days before the touched months: balanced once here
    early = sorted({d for e in r.ends for d in days_of(e)} - set(r.balances) - r.pending)
    for part in r.read(early):
        r.pending |= part.pending
        r.balances.update({d: a for d, a in part.areas.items() if d not in part.pending})

    def size(end: dt.date) -> int:
        mean = sum(r.day_rows.values()) / max(len(r.day_rows), 1)
        return sum(r.day_rows.get(d, int(mean)) for d in days_of(end) if d in r.balances)

    # the outage mapping suspects of every window end, read in one query
    suspects = split_by_date(r.lake.scan(OUTAGE_MAPPING_SUSPECTS, r.ends).collect(), r.ends)
    for batch in _passes(r.ends, size, WINDOW_ROWS_PER_PASS):
        days = sorted({d for e in batch for d in days_of(e) if d in r.balances})
        r.ctx.progress(f"loss: diagnosis of {len(batch)} window(s) ending {batch[0]} .. {batch[-1]}")
        rows, prepared = r.window_rows(days)
        frames = diagnose_windows(
            rows,
            batch,
            r.rules,
            r.diag,
            days=pl.concat([r.balances[d] for d in days]) if days else None,
            rows_per_range=DIAGNOSIS_ROWS_PER_RANGE,
            prepared=prepared,
        ).partition_by("date", as_dict=True, maintain_order=True)
        found = []
        for end in batch:
            frame = frames.get((end,), None)
            if frame is None:
                frame = LOSS_DIAGNOSIS.conform(pl.LazyFrame(schema=LOSS_DIAGNOSIS.schema)).collect()
            window = [d for d in days_of(end) if d in r.balances]
            fit = r.cfg.diagnosis.balance
            last = fit.on_last_date and end == r.ends[-1]
            if fit.enabled and (last or end.toordinal() % fit.every_days == 0):
                frame = _with_balance(r.ctx, r.cfg, end, frame, r.diag.theft.max_per_area, window, r.held)
            found.append(LOSS_DIAGNOSIS.conform(outages.with_mapping_suspects(frame, suspects[end])))
        # the pass's partitions in one query (each end's rows dated that end)
        frame = pl.concat(found).collect()
        r.lake.write_partitions_from(LOSS_DIAGNOSIS, frame, batch, sort_by=["area_id", "kind", "rank"])
        r.written[LOSS_DIAGNOSIS.name] += frame.height
        r.found.update(_count(frame, "kind"))


def _passes(ends: list[dt.date], size: Callable[[dt.date], int], budget: int) -> Iterator[list[dt.date]]:
    """``ends`` in runs whose sizes total at most ``budget`` (a window above it alone).

    >>> list(_passes([1, 2, 3, 4], lambda e: 10 * e, 30))
    [[1, 2], [3], [4]]
    """
    batch: list[dt.date] = []
    total = 0
    for end in ends:
        n = size(end)
        if batch and total + n > budget:
            yield batch
            batch, total = [], 0
        batch.append(end)
        total += n
    if batch:
        yield batch


def _worklist(r: _LossRun, month: str) -> None:
    """The month's work list, from the months and the diagnosis in the lake."""
    if month not in set(r.lake.partitions(AREA_LOSS_MONTHLY)):
        return
    frame = month_worklist(r.lake, month, r.cfg.worklist)
    r.write(LOSS_WORKLIST_MONTHLY, month, frame, sort_by=["rank"])
    r.issues.update(_count(frame, "issue"))


def _summary(r: _LossRun) -> StageResult:
    """The stage's notes and details."""
    result = r.result
    if r.pending:
        result.notes.append(
            f"{len(r.pending)} day(s) with no meter value yet left out of months and windows: "
            + ", ".join(d.isoformat() for d in sorted(r.pending))
        )
    for month, n in sorted(r.substituted.items()):
        if n:
            result.notes.append(f"{month}: {n} meter-day(s) without a value substituted with their meter's mean")
    result.rows = dict(r.written)
    for table, counts in r.status.items():
        if counts:
            n = sum(counts.values())
            result.notes.append(f"{table}: {n} rows; " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if r.ends:
        result.notes.append(
            f"loss_diagnosis: {len(r.ends)} window(s); " + ", ".join(f"{k} {r.found.get(k, 0)}" for k in KINDS)
        )
    if r.issues:
        result.notes.append(
            "loss_worklist_monthly: " + ", ".join(f"{k} {v}" for k, v in sorted(r.issues.items())) + " area-month(s)"
        )
    result.details = {
        "status": {t: dict(sorted(c.items())) for t, c in r.status.items()},
        "diagnosis": {"windows": [e.isoformat() for e in r.ends], "found": {k: r.found.get(k, 0) for k in KINDS}},
        "worklist": dict(sorted(r.issues.items())),
        "substituted_meter_days": dict(sorted(r.substituted.items())),
        "pv_inferred_meters": 0 if r.pv is None else r.pv.height,
        "dates_without_meter_daily": [d.isoformat() for d in r.absent],
        "pending_days": [d.isoformat() for d in sorted(r.pending)],
    }
    return result


def _substitutes(lake: Lake, days: list[dt.date], gaps: pl.DataFrame, pv: pl.DataFrame | None) -> pl.DataFrame:
    """The month's gaps with their substitutes: the meters' means over the month's days,
    read for the meters with gaps only."""
    if not gaps.height:
        return loss.substitutes(gaps, loss.meter_means(pl.DataFrame(schema=dict(loss.INPUT_COLUMNS)))).collect()
    rows = (
        lake.scan(METER_DAILY, days)
        .select(list(loss.INPUT_COLUMNS))
        .filter(pl.col("meter_id").is_in(gaps["meter_id"].unique().implode()))
    )
    return loss.substitutes(gaps, loss.meter_means(rows.collect())).collect()


def month_worklist(lake: Lake, month: str, cfg: WorklistModel) -> pl.DataFrame:
    """loss_worklist_monthly of ``month`` from the lake's area_loss_monthly (``months_back``
    months) and the month's loss_diagnosis partitions."""
    earlier = sorted(m for m in lake.partitions(AREA_LOSS_MONTHLY) if m <= month)[-cfg.months_back :]
    monthly = lake.scan(AREA_LOSS_MONTHLY, earlier).select([c for c in MONTHLY_COLUMNS if c != "month"] + ["month"])
    diag_days = [d for d in lake.partitions(LOSS_DIAGNOSIS) if d[:7] == month]
    diagnosis = lake.scan(LOSS_DIAGNOSIS, diag_days).select(DIAGNOSIS_COLUMNS).collect()
    return worklist(monthly.collect(), diagnosis, month, suspects=cfg.suspects, order=cfg.order())
