"""meter_daily: daily primary-side kWh per meter from the daily frozen registers (CONTRACT §1, §3).

Pure: lazy frames in, lazy frames out; nothing here opens a file.

The rule, from CONTRACT.md §1:

* consumption of day D = register(D+1) - register(D), times the multiplier of the archive
  row valid on D (the latest snapshot on or before D; a meter absent from a later snapshot
  left service on that snapshot's date);
* a difference below zero is a rollover (add ``register_max``) when that leaves a value
  from zero up to less than half the register's range (``rollover_fraction``); otherwise the register went down (a
  fault, 示度下降) and the day has no actual value;
* when a reading is missing, the days between the two readings that exist share their
  difference and are ``estimated``: in proportion to the days' curves when every one of
  them has a complete curve (all 96 slots collected) with a positive sum, otherwise evenly.
  Monthly sums therefore still equal the register differences. A gap longer than
  ``max_gap_days`` is not shared: its days are ``missing``.

Choices of ours, stated where the code makes them:

* TOU registers (sharp/peak/flat/valley) are shared with the same weights as the total;
  the reverse register is always shared evenly (export does not follow the forward curve).
* Every register column gets its own rollover test; a TOU or reverse register that went
  down leaves that column empty on the day while the total stays usable.
* Each day of a shared gap takes its own day's multiplier: a multiplier change inside a
  gap applies from the day the archive says.

Evaluation is lazy and vectorised: consecutive readings become *pairs* per meter
(:func:`reading_pairs`), each meter-day finds its pair with one as-of join
(:func:`register_days`), and :func:`meter_daily` turns pairs into kWh.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import polars as pl

#: register columns of the clean registers table, and the meter_daily column each feeds
REGISTERS: dict[str, str] = {
    "total_kwh": "kwh",
    "sharp_kwh": "kwh_sharp",
    "peak_kwh": "kwh_peak",
    "flat_kwh": "kwh_flat",
    "valley_kwh": "kwh_valley",
    "reverse_kwh": "reverse_kwh",
}
#: archive columns carried onto every meter-day
ARCHIVE_ATTRS = (
    "customer_id",
    "area_id",
    "feeder_id",
    "role",
    "customer_class",
    "tariff_id",
    "multiplier",
    "register_max",
    "prepay",
    "pv_capacity_kw",
)
#: archive columns a v1 archive may lack (CONTRACT v2 optional columns): read as empty
OPTIONAL_ATTRS: dict[str, pl.DataType] = {"pv_capacity_kw": pl.Float64()}
#: why a day has the value it has (column ``day_status`` of :func:`register_days`)
DAY_STATUS = {
    "actual": "both readings exist and the register moved forward",
    "rollover": "both readings exist; the register rolled over at register_max",
    "shared": "a reading is missing; the day shares the difference of the readings around the gap",
    "register_down": "the register went down by more than a rollover allows: no value",
    "gap_too_long": "the readings around the gap are more than max_gap_days apart: no value",
    "no_previous_reading": "no reading on or before the day (within the window read): no value",
    "no_next_reading": "no reading after the day (yet): no value",
}


def exact_sum(expr: pl.Expr) -> pl.Expr:
    """An order-independent sum of kWh: each value rounded to 1e-9 kWh and added as integers.

    The engine may add a group's values in any order (streaming, threads), and floating
    addition is not associative: the last bits, and so the files, would differ between
    reruns. Integers add exactly in any order (up to 9e9 kWh per sum).

    The total goes back to kWh by a multiplication by 1e-9, never a division by 1e9:
    polars divides a column of two rows or more by a constant as a multiplication by its
    reciprocal, and a single row (or a single group) by a true division, so a quotient's
    last bit would depend on how many meter-days a frame holds (a date alone, or a range
    of dates at once). The product is the same whatever the frame.
    """
    return (expr * 1e9).round().cast(pl.Int64).sum() * 1e-9


def in_service(archive: pl.LazyFrame, dates: Iterable[dt.date]) -> pl.LazyFrame:
    """Meters in service on each date, with the archive row valid on that date.

    A snapshot is a full archive: the meters in service on D are those of the latest
    snapshot dated on or before D (CONTRACT §1). A date before the first snapshot has no
    meters. Returns ``date, meter_id, snapshot_date`` and :data:`ARCHIVE_ATTRS`.
    """
    days = pl.DataFrame({"date": sorted(set(dates))}, schema={"date": pl.Date()})
    snaps = archive.select(pl.col("snapshot_date").unique()).collect().sort("snapshot_date")
    valid = days.join_asof(snaps, left_on="date", right_on="snapshot_date", strategy="backward")
    have = archive.collect_schema().names()
    archive = archive.with_columns(pl.lit(None, t).alias(c) for c, t in OPTIONAL_ATTRS.items() if c not in have)
    return (
        valid.lazy()
        .filter(pl.col("snapshot_date").is_not_null())
        .join(archive.select("snapshot_date", "meter_id", *ARCHIVE_ATTRS), on="snapshot_date", how="inner")
        .select("date", "meter_id", "snapshot_date", *ARCHIVE_ATTRS)
    )


def _readings(readings: pl.LazyFrame, by: Sequence[str] = ("meter_id",), empty: bool = False) -> pl.LazyFrame:
    """Readings in a fixed shape: ``by`` (the meter), ``freeze_date``, every register
    column (empty where the input lacks it) and ``remaining_yuan``; rows without a total
    are dropped (an empty total is not a reading) unless ``empty``."""
    names = readings.collect_schema().names()
    cols = [*REGISTERS, "remaining_yuan"]
    return (readings if empty else readings.filter(pl.col("total_kwh").is_not_null())).select(
        *by,
        "freeze_date",
        *((pl.col(c) if c in names else pl.lit(None)).cast(pl.Float64).alias(c) for c in cols),
    )


def _pair_columns(frm: str, to: str) -> list[pl.Expr]:
    return [
        *(pl.col(f"{c}{frm}").alias(f"{c}_from") for c in REGISTERS),
        *(pl.col(f"{c}{to}").alias(f"{c}_to") for c in REGISTERS),
        pl.col(f"remaining_yuan{to}").alias("remaining_yuan_to"),
    ]


def reading_pairs(readings: pl.LazyFrame, by: Sequence[str] = ("meter_id",)) -> pl.LazyFrame:
    """Each reading with the meter's next reading: one row per consecutive pair.

    ``readings`` holds clean register rows (``meter_id, freeze_date`` and the register
    columns that exist; ``remaining_yuan`` optional), at most one per meter and date (the
    clean table's key). Returns ``meter_id, from_date, to_date`` (empty for the last
    reading) and ``<register>_from`` / ``<register>_to`` for every register column, plus
    ``remaining_yuan_to``. ``by``: the columns that name one series of readings (the
    meter; :func:`window_pairs` adds the day that sees them).
    """
    r = _readings(readings, by).rename({"freeze_date": "from_date"})
    # the next reading of the same meter: shift over rows sorted by meter and date (a
    # window per meter costs one group per meter, far slower on a county)
    same = pl.all_horizontal([pl.col(b).shift(-1) == pl.col(b) for b in by])
    nxt = {c: pl.when(same).then(pl.col(c).shift(-1)) for c in ["from_date", *REGISTERS, "remaining_yuan"]}
    return r.sort(*by, "from_date").select(
        *by,
        "from_date",
        nxt["from_date"].alias("to_date"),
        *(pl.col(c).alias(f"{c}_from") for c in REGISTERS),
        *(nxt[c].alias(f"{c}_to") for c in REGISTERS),
        nxt["remaining_yuan"].alias("remaining_yuan_to"),
    )


def _next_day_pairs(svc: pl.DataFrame, r: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.DataFrame]:
    """The meter-days of ``svc`` with a total frozen on the day and on the next in ``r``
    (readings as :func:`_readings` gives them), paired; and the meter-days without."""
    return _split_next_day(_join_next_day(svc, r), svc.columns)


def _join_next_day(svc: pl.DataFrame, r: pl.LazyFrame) -> pl.DataFrame:
    """``svc`` with the row of ``r`` frozen on the day (the register columns as they are)
    and the one frozen the next day (suffix ``_next``), left joins.

    Only the readings frozen on a date of ``svc`` or the day after can match: the two
    equality joins hash those alone (the readings around a gap are many on a county day).
    """
    on = svc["date"].unique().implode()
    by_from = r.filter(pl.col("freeze_date").is_in(on)).rename({"freeze_date": "date"})
    by_to = (
        r.with_columns((pl.col("freeze_date") - pl.duration(days=1)).alias("date"))
        .filter(pl.col("date").is_in(on))
        .drop("freeze_date")
    )
    return (
        svc.lazy()
        .join(by_from, on=["meter_id", "date"], how="left")
        .join(by_to, on=["meter_id", "date"], how="left", suffix="_next")
        .collect()
    )


def _split_next_day(j: pl.DataFrame, columns: list[str]) -> tuple[pl.LazyFrame, pl.DataFrame]:
    """:func:`_next_day_pairs` from :func:`_join_next_day`'s frame (``columns``: the service's)."""
    both = pl.col("total_kwh").is_not_null() & pl.col("total_kwh_next").is_not_null()
    fast = (
        j.lazy()
        .filter(both)
        .select(
            *columns,
            pl.col("date").alias("from_date"),
            (pl.col("date") + pl.duration(days=1)).alias("to_date"),
            *_pair_columns("", "_next"),
        )
    )
    return fast, j.filter(~both).select(columns)


def next_day_rows(service: pl.DataFrame, core: pl.DataFrame) -> pl.DataFrame:
    """Each meter-day of ``service`` with its meter's register rows of ``core`` (every row
    frozen on a date of ``service`` or the day after) frozen on the day and the next day,
    rows without a total included, and ``_read`` / ``_read_next``: whether each exists.

    What :func:`lacking_days` and :func:`window_pairs` both read, joined once: pass it to
    them as ``joined``."""
    r = _readings(core.lazy(), empty=True).with_columns(pl.lit(True).alias("_read"))
    return _join_next_day(service, r)


def _pair_for_days(service: pl.LazyFrame, readings: pl.LazyFrame) -> pl.LazyFrame:
    """Each meter-day of ``service`` with the readings before and after it.

    Most meter-days have both readings (D and D+1): two equality joins find them. Only the
    meter-days lacking one go through :func:`reading_pairs` and an as-of join, over the
    readings of those meters alone.
    """
    svc = service.collect()
    fast, rest = _next_day_pairs(svc, _readings(readings))
    slow_svc = rest.lazy()
    pairs = reading_pairs(readings.join(slow_svc.select("meter_id").unique(), on="meter_id", how="semi"))
    slow = slow_svc.sort("date").join_asof(
        pairs.sort("from_date"),
        left_on="date",
        right_on="from_date",
        by="meter_id",
        strategy="backward",
        check_sortedness=False,
    )
    return pl.concat([fast, slow], how="diagonal_relaxed")


#: days the stage first looks for a missing reading on each side of a date, before the rest
#: of the ``max_gap_days`` window (most gaps are short)
STEP_DAYS = 7


def lacking_days(service: pl.DataFrame, core: pl.DataFrame, joined: pl.DataFrame | None = None) -> pl.DataFrame:
    """``meter_id, date`` of the meter-days of ``service`` without a register row (with or
    without a total) frozen on the day or on the next: ``core`` holds every row frozen on
    those dates. ``joined``: :func:`next_day_rows` of the two, when the caller has it (the
    same rows, read from it instead of two more joins)."""
    if joined is not None:
        return joined.filter(~(pl.col("_read").fill_null(False) & pl.col("_read_next").fill_null(False))).select(
            "meter_id", "date"
        )
    sv = service.lazy().select("meter_id", "date")
    have = core.lazy().select("meter_id", "freeze_date")
    days = service["date"].unique()
    if days.len() == 1:
        # one date: joined on the meter alone, cheaper than on meter and date
        day = days[0]
        parts = [
            sv.join(
                have.filter(pl.col("freeze_date") == day + dt.timedelta(days=off)).select("meter_id"),
                on="meter_id",
                how="anti",
            )
            for off in (0, 1)
        ]
    else:
        parts = [
            sv.join(
                have.select("meter_id", (pl.col("freeze_date") - pl.duration(days=off)).alias("date")),
                on=["meter_id", "date"],
                how="anti",
            )
            for off in (0, 1)
        ]
    return pl.concat(parts).unique().collect()


def window_steps(max_gap_days: int, step_days: int = STEP_DAYS) -> list[tuple[int, int]]:
    """The steps (first and last day back, or forward past the next day) in which a
    lacking meter-day's readings are looked up: a week, then the rest of the window."""
    s = min(step_days, max_gap_days)
    return [(1, s), (s + 1, max_gap_days)] if max_gap_days > s else [(1, s)]


def window_todo(lacking: pl.DataFrame, rows: pl.DataFrame, *, max_gap_days: int) -> pl.DataFrame:
    """Per lacking meter-day (``meter_id, date``), whether its first step found no row
    before it (``todo_before``) and none after its next day (``todo_after``): only then is
    the rest of the window looked up. ``rows``: the register rows of those meters over at
    least the first steps (a row with an empty total counts: it was read)."""
    first = window_steps(max_gap_days)[0][1]
    rel = (pl.col("freeze_date") - pl.col("date")).dt.total_days()
    return (
        lacking.lazy()
        .select("meter_id", "date")
        .join(rows.lazy().select("meter_id", "freeze_date"), on="meter_id", how="left")
        .group_by("meter_id", "date")
        .agg(
            (~rel.is_between(-first, -1).any()).alias("todo_before"),
            (~rel.is_between(2, 1 + first).any()).alias("todo_after"),
        )
        .collect()
    )


def window_pairs(
    service: pl.DataFrame,
    core: pl.DataFrame,
    around: pl.DataFrame,
    *,
    max_gap_days: int,
    lacking: pl.DataFrame | None = None,
    joined: pl.DataFrame | None = None,
) -> pl.LazyFrame:
    """Each meter-day of ``service`` (any number of dates) paired with its readings, as
    :func:`register_days` pairs them date by date over the readings the stage reads for
    that date: :func:`finish_days` turns the result into register days.

    A meter-day sees the rows frozen on the day and the next (``core``: every meter's rows
    frozen on a date of ``service`` or the day after). One without a row on either of them
    (:func:`lacking_days`) also sees its meter's rows of the :func:`window_steps` before and
    after: the first step on each side, and the rest of ``max_gap_days`` only when the
    first step held no row (``around``: at least those rows of the lacking meters, on
    dates outside ``core``). Among what it sees, the pair is the last reading with a total
    on or before the day and the next one, as :func:`register_days` finds it for one date
    at a time: a range of dates gives the pairs its dates give one by one. ``lacking``:
    :func:`lacking_days` of ``service``, when the caller has it; ``joined``: its
    :func:`next_day_rows` with ``core``, likewise.
    """
    svc = service
    if joined is None:
        fast, slow_svc = _next_day_pairs(svc, _readings(core.lazy()))
    else:
        fast, slow_svc = _split_next_day(joined, svc.columns)
    if not slow_svc.height:
        return pl.concat([fast, slow_svc.lazy()], how="diagonal_relaxed")
    slow_meters = slow_svc.select("meter_id").unique()
    rows = (
        pl.concat([core, around], how="diagonal_relaxed")
        .join(slow_meters, on="meter_id", how="semi")
        .unique(subset=["meter_id", "freeze_date"], keep="first", maintain_order=True)
    )
    lacking = lacking_days(slow_svc, core) if lacking is None else lacking
    todo = window_todo(lacking, rows, max_gap_days=max_gap_days)
    keys = (
        slow_svc.select("meter_id", "date")
        .join(todo, on=["meter_id", "date"], how="left")
        .with_columns(pl.col("todo_before").is_not_null().alias("_lacking"))
    )
    steps = window_steps(max_gap_days)
    rel = (pl.col("freeze_date") - pl.col("date")).dt.total_days()
    first = rel.is_between(-steps[0][1], -1) | rel.is_between(2, 1 + steps[0][1])
    seen = rel.is_in([0, 1]) | (pl.col("_lacking") & first)
    if len(steps) > 1:
        lo, hi = steps[1]
        seen = seen | (
            pl.col("_lacking")
            & (
                (pl.col("todo_before") & rel.is_between(-hi, -lo))
                | (pl.col("todo_after") & rel.is_between(1 + lo, 1 + hi))
            )
        )
    pairs = reading_pairs(
        keys.lazy()
        .join(rows.lazy(), on="meter_id", how="inner")
        .filter(seen)
        .drop("todo_before", "todo_after", "_lacking")
        .rename({"date": "_for"}),
        by=("meter_id", "_for"),
    )
    # the as-of join of register_days: the last pair starting on or before the day
    last = (
        pairs.filter(pl.col("from_date") <= pl.col("_for"))
        .unique(subset=["meter_id", "_for"], keep="last", maintain_order=True)
        .rename({"_for": "date"})
    )
    slow = slow_svc.lazy().join(last, on=["meter_id", "date"], how="left")
    return pl.concat([fast, slow], how="diagonal_relaxed")


def _difference(col: str, register_max: pl.Expr, rollover_fraction: float) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(difference after rollover correction, rolled over?, went down?) of one register."""
    d = pl.col(f"{col}_to") - pl.col(f"{col}_from")
    # a reading above the register's range (an impossible value) cannot roll over: the
    # corrected difference would still be negative, so the day is a register that went down
    rolled = (d < 0) & ((d + register_max) >= 0) & ((d + register_max) < register_max * rollover_fraction)
    down = (d < 0) & ~rolled
    value = pl.when(rolled).then(d + register_max).when(down).then(None).otherwise(d)
    return value, rolled, down


#: the columns of a reading pair that :func:`register_days` leaves out (besides the dates)
PAIR_COLUMNS = [
    *(f"{c}_{s}" for c in REGISTERS if c != "total_kwh" for s in ("from", "to")),
    "remaining_yuan_to",
]


def register_days(
    service: pl.LazyFrame,
    readings: pl.LazyFrame,
    *,
    max_gap_days: int,
    rollover_fraction: float = 0.5,
) -> pl.LazyFrame:
    """Attach to every meter-day of ``service`` the pair of readings around it.

    ``service`` comes from :func:`in_service` (at least ``date, meter_id, register_max``);
    ``readings`` are clean register rows (one per meter and freeze date). The result has every column of ``service`` plus
    ``reading_from, reading_to`` (the readings used), ``total_kwh_from, total_kwh_to``
    (their total registers), ``gap_days``, ``day_status`` (see :data:`DAY_STATUS`),
    ``rolled_over`` (the total register rolled over between them), ``register_read``
    (the reading frozen on the date arrived), ``delta_<register>_meter`` for every
    register (meter side, after rollover; empty when the register went down) and
    ``remaining_yuan`` (frozen at 00:00 of the next day).

    A day's pair is found only among the readings given: a caller reading a window must
    include, for each day it wants, the readings up to ``max_gap_days`` on either side.
    """
    return finish_days(
        _pair_for_days(service, readings), max_gap_days=max_gap_days, rollover_fraction=rollover_fraction
    )


def finish_days(
    j: pl.LazyFrame, *, max_gap_days: int, rollover_fraction: float = 0.5, keep_pairs: bool = False
) -> pl.LazyFrame:
    """:func:`register_days` from meter-days already paired with their readings (the
    columns of :func:`reading_pairs` beside those of the service): the differences, the
    status and the working columns, one row at a time. ``keep_pairs`` keeps
    :data:`PAIR_COLUMNS` (the readings of the pair), which can pair another day of the
    same gap."""
    rmax = pl.col("register_max").cast(pl.Float64)
    deltas: dict[str, pl.Expr] = {}
    rolled_total = down_total = pl.lit(False)  # set from total_kwh below
    for col in REGISTERS:
        value, rolled, down = _difference(col, rmax, rollover_fraction)
        deltas[f"delta_{col}_meter"] = value
        if col == "total_kwh":
            rolled_total, down_total = rolled, down
    gap = (pl.col("to_date") - pl.col("from_date")).dt.total_days()
    status = (
        pl.when(pl.col("from_date").is_null())
        .then(pl.lit("no_previous_reading"))
        .when(pl.col("to_date").is_null())
        .then(pl.lit("no_next_reading"))
        .when(gap > max_gap_days)
        .then(pl.lit("gap_too_long"))
        .when(down_total)
        .then(pl.lit("register_down"))
        .when(gap > 1)
        .then(pl.lit("shared"))
        .when(rolled_total)
        .then(pl.lit("rollover"))
        .otherwise(pl.lit("actual"))
    )
    return j.with_columns(
        *(v.alias(k) for k, v in deltas.items()),
        pl.col("from_date").alias("reading_from"),
        pl.col("to_date").alias("reading_to"),
        gap.cast(pl.Int32).alias("gap_days"),
        status.alias("day_status"),
        (rolled_total & (gap <= max_gap_days)).fill_null(False).alias("rolled_over"),
        (pl.col("from_date") == pl.col("date")).fill_null(False).alias("register_read"),
        pl.when(pl.col("to_date") == pl.col("date") + pl.duration(days=1))
        .then(pl.col("remaining_yuan_to"))
        .alias("remaining_yuan"),
    ).drop("from_date", "to_date", *([] if keep_pairs else PAIR_COLUMNS))


def curve_weights(days: pl.LazyFrame, curve_days: pl.LazyFrame) -> pl.LazyFrame:
    """Per shared gap, whether its days can be weighted by their curves, and the curve total.

    ``days`` comes from :func:`register_days`; ``curve_days`` has ``meter_id, date,
    curve_slots_read, curve_kwh_meter`` (validated sum of the day's 96 slots, meter side,
    empty unless all 96 have a value). A gap is weighted by curve when every day between
    its readings has all 96 slots collected and the curves add up to more than zero.
    Returns ``meter_id, reading_from, curve_gap_days, curve_gap_kwh_meter``.
    """
    gaps = days.filter(pl.col("day_status") == "shared").select("meter_id", "reading_from", "reading_to").unique()
    matched = (
        curve_days.select("meter_id", "date", "curve_slots_read", "curve_kwh_meter")
        .join(gaps.select("meter_id").unique(), on="meter_id", how="semi")
        .sort("date")
        .join_asof(
            gaps.sort("reading_from"),
            left_on="date",
            right_on="reading_from",
            by="meter_id",
            strategy="backward",
            check_sortedness=False,
        )
        .filter(pl.col("date") < pl.col("reading_to"))
    )
    complete = (pl.col("curve_slots_read") == 96) & pl.col("curve_kwh_meter").is_not_null()
    return matched.group_by("meter_id", "reading_from").agg(
        complete.sum().cast(pl.Int32).alias("curve_gap_days"),
        exact_sum(pl.col("curve_kwh_meter").filter(complete)).alias("curve_gap_kwh_meter"),
    )


def meter_daily(days: pl.LazyFrame, curve_days: pl.LazyFrame) -> pl.LazyFrame:
    """The meter_daily rows (schemas.meter_daily.METER_DAILY) of the meter-days in ``days``.

    ``days``: from :func:`register_days`. ``curve_days``: ``meter_id, date,
    curve_slots_read, curve_kwh_meter`` for the dates of ``days`` (the day's curve columns)
    and for every day inside a shared gap (the weights); days it lacks count as
    incomplete. The result keeps the working columns of ``days`` (``day_status``,
    ``reading_from``, ``reading_to``, ``delta_*``); ``Table.conform`` drops them on write.
    """
    w = curve_weights(days, curve_days)
    cd = curve_days.select("meter_id", "date", "curve_slots_read", "curve_kwh_meter")
    j = days.join(cd, on=["meter_id", "date"], how="left").join(w, on=["meter_id", "reading_from"], how="left")
    status = pl.col("day_status")
    gap = pl.col("gap_days").cast(pl.Float64)
    by_curve = (
        (status == "shared") & (pl.col("curve_gap_days") == pl.col("gap_days")) & (pl.col("curve_gap_kwh_meter") > 0)
    )
    has_value = status.is_in(["actual", "rollover", "shared"])
    weight = (
        pl.when(~has_value)
        .then(None)
        .when(status != "shared")
        .then(1.0)
        .when(by_curve)
        .then(pl.col("curve_kwh_meter") / pl.col("curve_gap_kwh_meter"))
        .otherwise(1.0 / gap)
    )
    even = pl.when(~has_value).then(None).when(status != "shared").then(1.0).otherwise(1.0 / gap)
    mult = pl.col("multiplier").cast(pl.Float64)
    values = {
        out: pl.col(f"delta_{col}_meter") * (even if col == "reverse_kwh" else weight) * mult
        for col, out in REGISTERS.items()
    }
    return j.with_columns(
        *(v.alias(k) for k, v in values.items()),
        pl.when(status.is_in(["actual", "rollover"]))
        .then(pl.lit("actual"))
        .when(status == "shared")
        .then(pl.lit("estimated"))
        .otherwise(pl.lit("missing"))
        .alias("quality"),
        pl.when(status == "actual")
        .then(pl.lit("register"))
        .when(status == "rollover")
        .then(pl.lit("register_rollover"))
        .when(by_curve)
        .then(pl.lit("share_by_curve"))
        .when(status == "shared")
        .then(pl.lit("share_even"))
        .otherwise(pl.lit("none"))
        .alias("method"),
        (pl.col("curve_kwh_meter") * mult).alias("curve_kwh"),
        pl.col("curve_slots_read").fill_null(0).cast(pl.Int16),
        pl.col("prepay").cast(pl.Int8),
    )


def collection_daily(
    days: pl.LazyFrame, curve_slots: pl.LazyFrame, *, target_rate: float, outages: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """采集成功率 and curve completeness per area (or feeder, for meters outside areas) and date.

    ``days``: meter-days in service with ``date, meter_id, area_id, feeder_id, role,
    register_read`` (from :func:`register_days`). ``curve_slots``: ``meter_id, date,
    curve_slots_read`` (slots collected; a meter without a curve row counts 0).
    Rows follow schemas.collection_daily.COLLECTION_DAILY: an area row counts the area's
    master and customer meters; meters with no area (feeder heads, 10 kV customers) are
    counted per feeder in a ``feeder_direct`` row. ``outages``: ``meter_id, date,
    off_at_midnight`` (outage_meter_days): an unread meter without supply at 00:00, when
    registers freeze, is counted in ``meters_unread_no_power``.
    """
    j = days.select("date", "meter_id", "area_id", "feeder_id", "role", "register_read").join(
        curve_slots.select("meter_id", "date", "curve_slots_read"), on=["meter_id", "date"], how="left"
    )
    if outages is None:
        j = j.with_columns(pl.lit(False).alias("_no_power"))
    else:
        off = outages.filter("off_at_midnight").select("meter_id", "date", pl.lit(True).alias("_no_power"))
        j = j.join(off.unique(["meter_id", "date"]), on=["meter_id", "date"], how="left").with_columns(
            pl.col("_no_power").fill_null(False)
        )
    scope = pl.when(pl.col("area_id").is_not_null()).then(pl.lit("area")).otherwise(pl.lit("feeder_direct"))
    slots = pl.col("curve_slots_read").fill_null(0)
    g = (
        j.with_columns(
            scope.alias("scope"),
            pl.when(pl.col("area_id").is_null()).then(pl.col("feeder_id")).alias("_feeder_key"),
        )
        .group_by("date", "scope", "area_id", "_feeder_key")
        .agg(
            pl.len().cast(pl.Int32).alias("meters_total"),
            pl.col("register_read").sum().cast(pl.Int32).alias("meters_read"),
            (~pl.col("register_read").fill_null(False) & pl.col("_no_power"))
            .sum()
            .cast(pl.Int32)
            .alias("meters_unread_no_power"),
            (slots == 96).sum().cast(pl.Int32).alias("curves_complete"),
            slots.sum().cast(pl.Int64).alias("curve_slots_read"),
            pl.col("feeder_id").filter(pl.col("role") == "area_master").min().alias("_master_feeder"),
            pl.col("feeder_id").min().alias("_min_feeder"),
        )
    )
    total = pl.col("meters_total").cast(pl.Float64)
    return g.with_columns(
        pl.coalesce("_feeder_key", "_master_feeder", "_min_feeder").alias("feeder_id"),
        (pl.col("meters_read") / total).alias("success_rate"),
        (pl.col("curves_complete") / total).alias("curve_complete_rate"),
        (pl.col("curve_slots_read") / (96.0 * total)).alias("curve_slot_rate"),
        pl.lit(target_rate, pl.Float64).alias("target_rate"),
        ((pl.col("meters_read") / total) < target_rate).alias("below_target"),
    ).drop("_feeder_key", "_master_feeder", "_min_feeder")
