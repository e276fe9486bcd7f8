"""The anomalies stage: the theft and anomaly ranking, one partition per detection date.

Reads (all from the lake): ``meter_daily`` (the look-back of every date, a batch of dates
at a time; for a batch of more than ``CHUNK_ROWS`` meter-days, each day prepared once and
kept under ``_state/anomalies/days``, read back a range of meters at a time; and, for the PV inference, the history up to the last date as one row per meter: the
settled days' rows kept under ``_state/reverse``, the last few days read), the clean
``events`` table, the
``loss_diagnosis`` mart; and, when present, the inspection outcomes (稽查结果,
``schemas/inspections.py``): the clean ``inspections`` table ingest writes, or, in a
lake ingested before ingest knew the dataset, the landing folder
``LANDING/inspections/`` read directly. Writes::

    marts/anomalies/date=YYYY-MM-DD    one file per date of `dates` the lake holds
                                       meter_daily for: the meters scoring above
                                       output.min_score, ranked
    marts/theft_cases/date=YYYY-MM-DD  the cases worth an inspection, priced
    _state/observer/<settings>/date=YYYY-MM-DD/{customers,areas}.parquet
                                       the observer's summaries of a day's curves
                                       (one row per customer and area), kept so a
                                       daily run summarises only its own day
    _state/observer/<settings>/date=YYYY-MM-DD/customers.arrow
                                       the numbers of customers.parquet the window
                                       reads every date, undecoded (``_DayFile``);
                                       kept for the newest day's window only
    _state/reverse/parts.parquet       the reverse registers' history of the settled
                                       days, with what it was made from
                                       (:func:`reverse_history`)
    _state/anomalies/days/date=YYYY-MM-DD.parquet
                                       a meter_daily day's customer days prepared for
                                       the indicators, with what they were made from
                                       (:class:`_KeptDays`); the days of the newest
                                       look-back only

Every file is a function of the lake's inputs up to its date and the configuration
(``config/anomaly.toml``): the supervised model that scores date D is trained only on
inspections dated before D, so a rerun writes identical files. A partition is written
even when no meter scores, so "ranked, nothing found" differs from "not ranked".
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from .. import allocator
from ..lake import Lake, file_identity, identity_stamp, kept_stamps
from ..landing import read_landing_file, scan_dataset
from ..schemas.anomalies import ANOMALIES, INDICATORS
from ..schemas.curves import LANDING as CURVES
from ..schemas.events import LANDING as EVENTS
from ..schemas.inspections import LANDING as INSPECTIONS
from ..schemas.loss_diagnosis import LOSS_DIAGNOSIS
from ..schemas.meter_daily import METER_DAILY
from ..schemas.outage_meter_days import OUTAGE_METER_DAYS
from ..schemas.theft_cases import THEFT_CASES
from ..transforms import anomaly, observer, supervised
from ..transforms.dates import parse_dates
from ..transforms.frames import sort_distinct
from ..transforms.ingest import parse_landing_bytes
from ..transforms.outages import OutageConfig
from ..transforms.tariffs import TariffBook, price_calendar
from ..transforms.theft_cases import theft_cases_at
from . import StageContext, StageError, StageResult

CONFIG_NAME = "anomaly"

#: detection dates whose look-backs hold up to this many meter-days are computed together
BATCH_ROWS = 4_000_000
#: a batch whose look-backs hold more meter-days than this is computed a range of meters at a
#: time, each range holding about this many: the look-back's days are prepared a day at a time
#: and kept (:class:`_KeptDays`: a daily run prepares its own day, the others are read back), so
#: the stage holds one day and one range's look-back instead of every meter's (a county date of
#: 500,000 meters with 90 days of history: 45M meter-days)
CHUNK_ROWS = 1_000_000


def read_inspections(landing: Path) -> tuple[pl.DataFrame, list[str]]:
    """Inspection outcomes from ``LANDING/inspections/`` (CSV or CSV.gz), and notes.

    Rows that do not parse are left out and counted in the notes (ingest, once it
    takes this dataset over, quarantines them). A key delivered twice: the file
    delivered later (modification time, then name) wins.
    """
    folder = Path(landing) / INSPECTIONS.dataset
    empty = pl.DataFrame(schema={f.name: f.dtype for f in INSPECTIONS.fields})
    if not folder.is_dir():
        return empty, []
    # only regular landing files under the root: links and FIFOs are never opened
    found, _ = scan_dataset(Path(landing), INSPECTIONS.dataset)
    files = [c.path for c in sorted(found, key=lambda c: (c.mtime_ns, c.rel))]
    parts, bad = [], 0
    for order, path in enumerate(files):
        parsed = parse_landing_bytes(read_landing_file(path), INSPECTIONS, path.relative_to(landing).as_posix())
        bad += parsed.quarantine.height
        parts.append(parsed.rows.select(INSPECTIONS.names).with_columns(pl.lit(order).alias("_order")))
    if not parts:
        return empty, []
    rows = pl.concat(parts).sort("_order", maintain_order=True).drop("_order")
    notes = [f"inspections: {rows.height} rows from {len(files)} file(s)"]
    if bad:
        notes.append(f"inspections: {bad} row(s) or file problem(s) could not be used (not yet quarantined by ingest)")
    return rows, notes


def load_inspections(ctx: StageContext) -> tuple[pl.DataFrame, list[str]]:
    """Inspection outcomes: the lake's clean table when ingest wrote one, else the landing folder."""
    lake = ctx.lake
    if lake.partitions(INSPECTIONS.clean):
        rows = lake.scan(INSPECTIONS.clean).select(INSPECTIONS.names).collect()
        return rows, [f"inspections: {rows.height} rows from the clean table"]
    return read_inspections(ctx.landing)


def _theft_cases(
    ctx: StageContext,
    cfg: anomaly.AnomalyConfig,
    held: list[dt.date],
    todo: list[dt.date],
    diag_days: list[str],
    inspections: pl.DataFrame,
    observed: dict[dt.date, pl.DataFrame] | None = None,
) -> int:
    """Write a theft_cases partition for every date of ``todo``; the rows written.

    ``held``: the lake's meter_daily dates; ``inspections``: :func:`load_inspections`'s rows.
    The cases of every date are priced together (:func:`theft_cases_at`): the suspects'
    meter days and the dates' prices are read once for the run, the partitions written
    from one frame.
    """
    lake = ctx.lake
    diagnosis = (
        lake.scan(LOSS_DIAGNOSIS, diag_days).filter(pl.col("kind") == "theft_candidate").collect()
        if diag_days
        else pl.DataFrame(schema={c.name: c.dtype for c in LOSS_DIAGNOSIS.columns})
    )
    book = ctx.config("tariffs", TariffBook)
    # the suspects of every date (the balance's and the observer's) and the first day of their windows
    found = diagnosis.filter(pl.col("date").is_in(todo))
    seen = [o.select("meter_id", "window_start") for o in (observed or {}).values() if o is not None]
    suspects = pl.concat([found.select("meter_id", "window_start"), *seen])
    first: dt.date = min([todo[0], *suspects["window_start"].drop_nulls().unique().to_list()])
    meter_days = (
        lake.scan(METER_DAILY, [h for h in held if first <= h <= todo[-1]])
        .select("meter_id", "date", "tariff_id", "kwh", *(f"kwh_{r}" for r in ("sharp", "peak", "flat", "valley")))
        .filter(pl.col("meter_id").is_in(suspects["meter_id"].unique().implode()))
        .collect()
    )
    frames = theft_cases_at(
        found,
        meter_days,
        price_calendar(book, todo[0], todo[-1]),
        inspections,
        todo,
        cfg.theft_cases.min_score,
        cfg.theft_cases.penalty_multiple,
        observed,
    )
    cases = pl.concat([frames[day] for day in todo])
    lake.write_partitions_from(THEFT_CASES, cases, todo)
    return cases.height


#: where the observer keeps each day's summaries (one row per customer and per area), so a
#: daily run summarises its own day's curves only; the folder names the summary settings
OBSERVER_STATE = ("_state", "observer")


#: rows per row group of a day's kept customer summaries, and per record batch of its window
#: copy: the window reads them a chunk of customers at a time (``observer.CHUNK``), so a day
#: holds only the groups of its chunk. The Parquet file is written with lz4
STATE_ROW_GROUP = 16_384
#: a kept day of at most this many customers keeps its keys in memory while it is in the
#: window: every later date of the run asks for them again (a small zone's backfill paid
#: a file read per window day and date)
KEEP_KEYS_ROWS = 4 * STATE_ROW_GROUP
#: the detection date's own day of more than this many customers is held in memory for its
#: window while its files are written on a second thread (:meth:`_Observed._summaries`)
KEEP_ARRAYS_ROWS = STATE_ROW_GROUP


def _made_from(cpath: Path) -> str:
    """What names a kept day's Parquet file as written (size and modification time of its
    :func:`~meterlake.lake.file_identity`): its window copy records it, so a copy made from
    another version of the file is not read."""
    _, size, mtime = file_identity(cpath)
    return f"{size} {mtime}"


def _keep_customers(lake: Lake, cpath: Path, customers: pl.DataFrame, columns: list[str]) -> None:
    """Write a day's customer summaries: the Parquet file (the kept summaries), then its window
    copy (:class:`_DayFile`) naming it."""
    lake.write_file(cpath, customers, row_group_size=STATE_ROW_GROUP, compression="lz4")
    _write_copy(lake, cpath, customers, columns)


def _write_copy(lake: Lake, cpath: Path, customers: pl.DataFrame, columns: list[str]) -> None:
    lake.write_arrow(
        cpath.with_suffix(".arrow"),
        customers.select("actual", *columns),
        STATE_ROW_GROUP,
        {"parquet": _made_from(cpath), "rows": str(customers.height), "batch_rows": str(STATE_ROW_GROUP)},
    )


class _DayFile:
    """A day's kept customer summaries as the window reads them, a span of rows at a time (rows
    asked for in increasing order: the batches before the span asked for are dropped).

    The keys (meter_id, area_id) and the roster's mark come from the Parquet file; the numbers
    the window reads every date (actual, the blocks, zero_run, rough) from its **window copy**
    ``customers.arrow``: Arrow IPC, uncompressed, in record batches of :data:`STATE_ROW_GROUP`
    rows, read with no decoding (Parquet's lz4 and page decoding cost a county day ~0.06 s of
    CPU each of the 13 dates it is an earlier day of a window). The copy names the Parquet file
    it was made from (:func:`_made_from`); where it is missing or names another (a day kept by
    an older version, a write interrupted between the two files), it is made again from the
    Parquet file when first needed."""

    def __init__(self, lake: Lake, path: Path, columns: list[str]) -> None:
        self.lake, self.path = lake, path
        self.file = pq.ParquetFile(path)
        self.columns = columns
        self.copy: pa.ipc.RecordBatchFileReader | None = None
        self.starts = np.zeros(1, dtype=np.int64)  # each batch's first row, then the rows (:meth:`_copy`)
        self.held_arrays: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.kept_keys: pl.DataFrame | None = None

    def _copy(self) -> pa.ipc.RecordBatchFileReader:
        """The window copy, opened (made first where it is missing or was made from another file)."""
        if self.copy is None:
            cpath, made = self.path.with_suffix(".arrow"), _made_from(self.path)
            reader = _open_copy(cpath, made, ["actual", *self.columns])
            if reader is None:
                _write_copy(
                    self.lake, self.path, pl.read_parquet(self.path, columns=["actual", *self.columns]), self.columns
                )
                reader = _open_copy(cpath, made, ["actual", *self.columns])
                assert reader is not None, cpath
            meta = reader.schema.metadata
            rows, per = int(meta[b"rows"]), int(meta[b"batch_rows"])
            self.starts = np.r_[np.arange(0, rows, per), rows]
            self.copy = reader
        return self.copy

    def keys(self) -> pl.DataFrame:
        if self.kept_keys is not None:
            return self.kept_keys
        keys = pl.read_parquet(
            self.path, columns=["meter_id", "area_id", "actual"]
        )  # polars' reader: no pyarrow.compute
        if keys.height <= KEEP_KEYS_ROWS:  # a small day's keys are asked for again by the next dates
            self.kept_keys = keys
        return keys

    def roster(self) -> tuple[object, ...]:
        """The meter_id and area_id columns as stored (``observer.DayRows.roster``): their column
        chunks' bytes with the types, codec and counts that decode them; equal bytes decode to
        equal rows. Read straight from the file (~2.5 MB a county day), never decoded."""
        meta = self.file.metadata
        names = [meta.schema.column(j).name for j in range(meta.num_columns)]
        at = [names.index(c) for c in ("meter_id", "area_id")]
        mark: list[object] = [tuple(str(self.file.schema_arrow.field(names[j]).type) for j in at)]
        with open(self.path, "rb") as f:
            for g in range(meta.num_row_groups):
                group = meta.row_group(g)
                for j in at:
                    col = group.column(j)
                    start = col.dictionary_page_offset if col.has_dictionary_page else col.data_page_offset
                    f.seek(start)
                    mark += [(col.physical_type, col.compression, col.encodings, col.num_values, group.num_rows)]
                    mark.append(f.read(col.total_compressed_size))
        return tuple(mark)

    def actual(self) -> pl.Series:
        """Each row's share of slots collected (the copy's first column, memory-mapped: only its
        pages are read, and they are let go when it returns)."""
        self._copy()
        with pa.memory_map(str(self.path.with_suffix(".arrow"))) as source:
            mapped = pa.ipc.open_file(source)
            parts = [_as_numpy(mapped.get_batch(g).column(0)) for g in range(mapped.num_record_batches)]
            return pl.Series("actual", np.concatenate(parts) if parts else np.empty(0))

    def arrays(self, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows ``r0`` up to ``r1`` as arrays (``observer.DayRows.arrays``), each batch of the
        copy read into numpy once: the batches before the span asked for are dropped."""
        copy = self._copy()
        g0, g1 = self._batches(r0, r1)
        for g in [g for g in self.held_arrays if g < g0]:
            del self.held_arrays[g]
        for g in range(g0, g1 + 1):
            if g not in self.held_arrays:
                batch = copy.get_batch(g)
                n = batch.num_columns
                # the blocks as (rows, blocks), each block a column of the batch as read (a view,
                # :func:`_blocks_of`): ``observer`` places them a day's block at a time
                self.held_arrays[g] = (
                    _blocks_of([batch.column(j) for j in range(1, n - 2)]),
                    _as_numpy(batch.column(n - 2)),
                    _as_numpy(batch.column(n - 1)),
                )
        if g0 == g1:
            base = int(self.starts[g0])
            return tuple(a[r0 - base : r1 - base] for a in self.held_arrays[g0])  # type: ignore[return-value]
        # a span over batches: only its rows of each, copied once
        cuts = [
            (
                g,
                max(r0, int(self.starts[g])) - int(self.starts[g]),
                min(r1, int(self.starts[g + 1])) - int(self.starts[g]),
            )
            for g in range(g0, g1 + 1)
        ]
        blocks = np.concatenate([self.held_arrays[g][0][a:b].T for g, a, b in cuts], axis=1).T
        run, rough = (np.concatenate([self.held_arrays[g][i][a:b] for g, a, b in cuts]) for i in (1, 2))
        return blocks, run, rough

    def read(self, r0: int, r1: int) -> pl.DataFrame:
        """Rows ``r0`` up to ``r1`` as a frame of the columns (``observer.DayRows.read``)."""
        copy = self._copy()
        g0, g1 = self._batches(r0, r1)
        table = pa.Table.from_batches([copy.get_batch(g) for g in range(g0, g1 + 1)])
        span = pl.DataFrame(pl.from_arrow(table.select(self.columns)))
        return span.slice(r0 - int(self.starts[g0]), r1 - r0)

    def _batches(self, r0: int, r1: int) -> tuple[int, int]:
        """The first and last batch holding rows ``r0`` up to ``r1``."""
        g0, g1 = np.searchsorted(self.starts, [r0, r1 - 1], side="right") - 1
        return int(g0), int(g1)


def _open_copy(cpath: Path, made: str, names: list[str]) -> pa.ipc.RecordBatchFileReader | None:
    """A day's window copy, read from the file (a batch in memory while it is held, not mapped);
    ``None`` where it is missing, unreadable, made from another Parquet file or of other columns."""
    try:
        reader = pa.ipc.open_file(pa.OSFile(str(cpath)))
    except (OSError, pa.ArrowInvalid):
        return None
    meta = reader.schema.metadata or {}
    if meta.get(b"parquet") != made.encode() or b"batch_rows" not in meta or reader.schema.names != names:
        return None
    return reader


def _blocks_of(columns: list[pa.Array]) -> np.ndarray:
    """A window copy's batch's block columns as one (rows, blocks) array: the batch's own
    memory viewed where the columns lie at equal steps in one buffer (Arrow IPC writes a
    batch's buffers one after another, each padded alike: columns of one type without nulls
    do), else their columns stacked (a copy: ~0.1 s of CPU a county date, and its pages'
    faults). Either way block ``b`` of row ``r`` is ``[r, b]``; read only."""
    cols = [_as_numpy(c) for c in columns]
    first = cols[0] if cols else None
    if first is not None and len(cols) > 1 and all(c.dtype == first.dtype and len(c) == len(first) for c in cols):
        bufs = [c.buffers()[1] for c in columns]
        at = [c.__array_interface__["data"][0] for c in cols]
        step = at[1] - at[0]
        parent = bufs[0].parent if bufs[0] is not None else None
        if (
            parent is not None
            and step >= first.nbytes
            and step % first.itemsize == 0
            and all(b - a == step for a, b in itertools.pairwise(at))
            and all(b is not None and b.parent is not None and b.parent.address == parent.address for b in bufs)
            and parent.address <= at[0]
        ):
            # numpy checks the view lies within the buffer, and keeps the buffer alive
            return np.ndarray(
                (len(first), len(cols)),
                dtype=first.dtype,
                buffer=parent,
                offset=at[0] - parent.address,
                strides=(first.itemsize, step),
            )
    return np.stack(cols).T


#: the numpy types of the kept summaries' number columns (:func:`_as_numpy`)
_NUMPY_OF: dict[pa.DataType, np.dtype] = {
    pa.float32(): np.dtype(np.float32),
    pa.float64(): np.dtype(np.float64),
    pa.int16(): np.dtype(np.int16),
}


def _as_numpy(column: pa.Array) -> np.ndarray:
    """A column read from a kept day's copy as numpy: numbers without nulls are viewed in place
    from their buffer; anything else through pyarrow's conversion, which imports pandas
    (~0.4-0.8 s of CPU once per process: a stage that never needs it should not pay it)."""
    kind = _NUMPY_OF.get(column.type)
    if kind is not None and column.null_count == 0:
        return np.frombuffer(column.buffers()[1], dtype=kind, count=len(column), offset=column.offset * kind.itemsize)
    return np.asarray(column)


#: a chunk of at least this many customers (a whole ``observer.CHUNK``) is first looked at by
#: the compiled day part (``meterlake/observer_kernel.py``): judging a customer with numpy
#: costs 25-35 us, the compiled look ~4 us, loading numba and the cached kernel 0.4-0.65 s
#: once per process; a zone of fewer customers judges everyone and never loads numba, one of
#: 20,000 or more gains on its first date. A piece of a day's curves of at least this many
#: meters is summarised by the compiled summary (:func:`summarise_rows`) likewise
KERNEL_MIN_CUSTOMERS = 5_000


def worth_judging(
    blocks: np.ndarray, run: np.ndarray, rough: np.ndarray, tix: np.ndarray, rules: anomaly.ObserverRules
) -> np.ndarray:
    """The observer's prefilter (``observer.Prefilter``): the compiled day part for a chunk of
    :data:`KERNEL_MIN_CUSTOMERS` or more, everyone judged for a smaller one (numba is imported
    only when a chunk that large comes)."""
    everyone = np.ones(len(blocks), dtype=bool)
    if len(blocks) < KERNEL_MIN_CUSTOMERS or _KERNEL_FAILED:
        return everyone
    try:
        from .. import observer_kernel

        return observer_kernel.worth_judging(blocks, run, rough, tix, rules)
    except (ImportError, RuntimeError, OSError) as exc:
        # numba absent, or no writable folder for its cache (``NUMBA_CACHE_DIR``): judging
        # everyone writes the same outputs, only slower
        _KERNEL_FAILED.append(f"{type(exc).__name__}: {exc}")
        return everyone


def summarise_rows(
    x: np.ndarray, mult: np.ndarray, kwh: np.ndarray, nb: int, zero_kwh: float, floor_kwh: float
) -> dict[str, np.ndarray] | None:
    """The observer's compiled day summary (``observer.Summariser``) for a piece of at least
    :data:`KERNEL_MIN_CUSTOMERS` curves (one pass per row instead of a few dozen numpy passes
    over the piece; the same figures, bit for bit); ``None`` (numpy) for a smaller piece or
    where numba cannot load."""
    if len(x) < KERNEL_MIN_CUSTOMERS or _KERNEL_FAILED:
        return None
    try:
        from .. import observer_kernel

        return observer_kernel.summarise_rows(x, mult, kwh, nb, zero_kwh, floor_kwh)
    except (ImportError, RuntimeError, OSError) as exc:
        _KERNEL_FAILED.append(f"{type(exc).__name__}: {exc}")
        return None


#: why the compiled look could not be used in this process (then every customer is judged and
#: the days are summarised by numpy)
_KERNEL_FAILED: list[str] = []


def _held_day(d: dt.date, customers: pl.DataFrame, columns: list[str]) -> observer.DayRows:
    """A day's customer summaries held in memory as the window reads them (``observer.DayRows``):
    the blocks as the transposed view of their columns stacked, as :class:`_DayFile` gives them."""
    arrays: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def keys() -> pl.DataFrame:
        return customers.select("meter_id", "area_id", "actual")

    def read(r0: int, r1: int) -> pl.DataFrame:
        return customers.slice(r0, r1 - r0).select(columns)

    def span(r0: int, r1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not arrays:
            blocks = np.stack([customers[c].to_numpy() for c in columns[:-2]]).T
            arrays.append((blocks, customers["zero_run"].to_numpy(), customers["rough"].to_numpy()))
        return tuple(a[r0:r1] for a in arrays[0])  # type: ignore[return-value]

    def actual() -> pl.Series:
        return customers["actual"]

    return observer.DayRows(d, keys, read, span, None, actual)


class _Observed:
    """The observer indicator per detection date, from daily summaries of the curves.

    One day of curves is read at a time and summarised (``observer.day_summaries``); the
    summaries are kept in the lake (:data:`OBSERVER_STATE`): a day of this run's dates is
    summarised afresh, an earlier day is read back (summarised once if it has none). The
    window's customer summaries are read back from their files a chunk of customers at a
    time (``observer.indicator_of_days``); the areas' summaries of the window stay in
    memory, older ones are dropped as the dates move on.
    """

    def __init__(
        self, ctx: StageContext, rules: anomaly.ObserverRules, todo: list[dt.date], fresh: Iterable[dt.date] = ()
    ) -> None:
        self.lake, self.rules, self.progress = ctx.lake, rules, ctx.progress
        self.curve_days = set(self.lake.partitions(CURVES.clean))
        # the run's dates are summarised afresh, but those this run summarised already
        # (:func:`summarise_ahead`): their kept files are read back like an earlier day's
        self.todo = set(todo) - set(fresh)
        self.areas: dict[dt.date, pl.DataFrame] = {}
        self.files: dict[dt.date, _DayFile] = {}
        self.base = self.lake.root.joinpath(
            *OBSERVER_STATE, f"blocks={rules.blocks}_zero={rules.zero_kwh:g}_floor={rules.floor_kwh:g}"
        )
        self.columns = [*observer.block_names(rules.blocks), "zero_run", "rough"]
        self.writing: ThreadPoolExecutor | None = None
        self.written: Future[None] | None = None
        #: the date being judged ahead (:meth:`judge_soon`): its date, the thread, its indicator to come
        self.soon: tuple[dt.date, ThreadPoolExecutor, Future[pl.DataFrame | None]] | None = None

    def _folder(self, d: dt.date) -> Path:
        return self.base / f"date={d.isoformat()}"

    def _summaries(self, d: dt.date, held: dict[dt.date, pl.DataFrame] | None = None) -> pl.DataFrame:
        """The areas' summaries of ``d``; its customers' are in the kept file. With ``held``
        (the detection date's own day) and more than :data:`KEEP_ARRAYS_ROWS` customers, the
        customers' file is written on a second thread (:meth:`_written` waits for it) and their
        summaries are put in ``held``: the window reads that day from memory, not from the file
        being written."""
        cpath, apath = self._folder(d) / "customers.parquet", self._folder(d) / "areas.parquet"
        if d not in self.todo and cpath.exists() and apath.exists():
            return pl.read_parquet(apath)
        self.progress(f"anomalies: observer summaries {d}")
        curves = self.lake.scan(CURVES.clean, [d.isoformat()]).select("meter_id", *observer.SLOT_COLUMNS)
        members = self.lake.scan(METER_DAILY, [d]).select(list(observer.MEMBER_COLUMNS))
        customers, areas = observer.day_summaries(curves, members, d, self.rules, summarise_rows)
        self.files.pop(d, None)
        if held is None or customers.height <= KEEP_ARRAYS_ROWS:
            # a small day is written at once: the window then keeps its keys and arrays for the
            # next dates of the run, as any kept day's (a small zone's backfill)
            _keep_customers(self.lake, cpath, customers, self.columns)
        else:
            held[d] = customers
            self.writing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="observer-write")
            self.written = self.writing.submit(_keep_customers, self.lake, cpath, customers, self.columns)
        self.lake.write_file(apath, areas)
        return areas

    def _written(self) -> None:
        """Wait for the customers' file being written (:meth:`_summaries`), if any."""
        if self.writing is not None:
            try:
                if self.written is not None:
                    self.written.result()
            finally:
                self.writing.shutdown()
                self.writing, self.written = None, None

    def judge_soon(self, day: dt.date) -> None:
        """Start judging ``day`` on a thread (:meth:`at`'s work: its own day summarised, the window
        looked at and judged), so the stage reads its look-backs meanwhile: the observer (a
        steady county date ~6 s of CPU, mostly one core) then runs beside the reading, not after
        it. Only where :meth:`at` would summarise the day itself (a date of the run whose window
        holds enough days); the next call of :meth:`at` waits for it."""
        if not self.rules.enabled or self.soon is not None or day not in self.todo:
            return
        window = self.window(day)
        if len(window) < self.rules.min_days or day not in window:
            return
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="observer-soon")
        self.soon = (day, pool, pool.submit(self._at, day))

    def settle(self) -> None:
        """Wait for a date judged ahead and not asked for (the stage failed before it needed
        it), its outcome dropped: no thread of the stage still writes kept summaries once it
        has returned or raised."""
        if self.soon is not None:
            _, pool, judged = self.soon
            self.soon = None
            try:
                judged.exception()
            finally:
                pool.shutdown()
            self._written()

    def window(self, day: dt.date) -> list[dt.date]:
        """The days of ``day``'s window that hold curves, oldest first."""
        window = [day - dt.timedelta(days=i) for i in range(self.rules.window_days - 1, -1, -1)]
        return [d for d in window if d.isoformat() in self.curve_days]

    def at(self, day: dt.date) -> pl.DataFrame | None:
        """The observer indicator of ``day`` (None: the observer is off or the window too short);
        judged on a thread where :meth:`judge_soon` started it."""
        if self.soon is not None:
            soon, pool, judged = self.soon
            self.soon = None
            try:
                got = judged.result()
            finally:
                pool.shutdown()
            if soon == day:
                return got
        return self._at(day)

    def _at(self, day: dt.date) -> pl.DataFrame | None:
        if not self.rules.enabled:
            return None
        window = self.window(day)
        for d in [d for d in self.areas if d not in window]:
            del self.areas[d]
        for d in [d for d in self.files if d not in window]:
            del self.files[d]
        if len(window) < self.rules.min_days:  # no customer can have enough days: nothing to read
            return None
        held: dict[dt.date, pl.DataFrame] = {}
        try:
            for d in window:
                if d not in self.areas:
                    # the detection date's own day (summarised last: the window's newest) held in memory
                    self.areas[d] = self._summaries(d, held if d == day else None)
            days = []
            for d in window:
                if d in held:
                    days.append(_held_day(d, held[d], self.columns))
                    continue
                # a day's file stays open while it is in the window: the next dates read it again
                kept = self.files.get(d) or self.files.setdefault(
                    d, _DayFile(self.lake, self._folder(d) / "customers.parquet", self.columns)
                )
                days.append(observer.DayRows(d, kept.keys, kept.read, kept.arrays, kept.roster, kept.actual))
            return observer.indicator_of_days(
                days, pl.concat([self.areas[d] for d in window]), day, self.rules, prefilter=worth_judging
            )
        finally:
            self._written()


def _observer_soon(
    ctx: StageContext, cfg: anomaly.AnomalyConfig, held: list[dt.date], todo: list[dt.date]
) -> _Observed:
    """The stage's observer (:class:`_Observed`). Where the first batch of dates will read its
    look-backs in ranges of meters (more than :data:`CHUNK_ROWS` meter-days: a county) and no
    docs helper judges ahead, its first date is judged on a thread from the stage's start
    (:meth:`_Observed.judge_soon`): beside the reading of the inspections, the inputs and the
    look-back days, which need one core or less, instead of after them. A small zone's dates are
    judged where first needed, as before (its look-backs prepared whole: the observer's arrays
    are not held beside them)."""
    observed = _Observed(ctx, cfg.observer, todo, ctx.observed_ahead)
    if ctx.observer_ahead is not None or not cfg.observer.enabled:
        return observed
    reach = todo[0] - dt.timedelta(days=cfg.lookback_days - 1)
    try:  # the rows of the look-backs, from the days' footers (as _read_inputs counts them)
        per_day = {d: _rows(ctx.lake, d) for d in held if reach <= d <= todo[-1]}
    except (OSError, ValueError):
        return observed  # the stage's reading says what is wrong
    first = anomaly.batches_of_counts(per_day, todo, cfg, BATCH_ROWS)[0]
    if sum(anomaly.lookback_rows(per_day, d, cfg) for d in first) > CHUNK_ROWS:
        observed.judge_soon(first[0])
    return observed


def summarise_ahead(ctx: StageContext, dates: list[dt.date]) -> list[dt.date]:
    """Write the observer's day summaries that the stage, run for ``dates``, would write for
    its own dates (the days of a date's window holding curves, where the window holds
    enough of them: ``min_days``), as the stage writes them; the days written.

    It reads only the curves and meter_daily, so it can run beside the loss stage (the
    pipeline's docs helper does, on small days); the pipeline then hands the days to the
    stage (``StageContext.observed_ahead``), which reads them back.
    """
    rules = ctx.config(CONFIG_NAME, anomaly.AnomalyConfig).observer
    if not rules.enabled:
        return []
    todo = sorted(set(dates) & set(parse_dates(ctx.lake.partitions(METER_DAILY))))
    observed = _Observed(ctx, rules, todo)
    days: set[dt.date] = set()
    for day in todo:
        window = observed.window(day)
        if len(window) >= rules.min_days:
            days.update(d for d in window if d in observed.todo)
    for day in sorted(days):
        observed._summaries(day)
    return sorted(days)


def judge_ahead(
    ctx: StageContext, dates: list[dt.date], fresh: Iterable[dt.date], folder: Path
) -> dict[dt.date, Path | None]:
    """The observer indicator of each of ``dates`` that meter_daily holds, as the stage
    computes it (:meth:`_Observed.at`), each written to ``folder`` as an Arrow IPC file
    (``None``: the date's window holds too few days); ``fresh``: the days whose summaries
    this run wrote already (:func:`summarise_ahead`), read back.

    Like :func:`summarise_ahead` it reads only the curves, meter_daily and the observer's
    kept summaries (a day of a window before ``dates`` without one is summarised and kept,
    as the stage would), so the docs helper runs it beside the loss stage; the stage then
    reads the files instead of judging those dates (``StageContext.observer_ahead``). Where
    the compiled look fails to load, nothing is judged ahead: the stage judges, and notes it.
    """
    rules = ctx.config(CONFIG_NAME, anomaly.AnomalyConfig).observer
    if not rules.enabled:
        return {}
    todo = sorted(set(dates) & set(parse_dates(ctx.lake.partitions(METER_DAILY))))
    observed = _Observed(ctx, rules, todo, fresh)
    judged: dict[dt.date, Path | None] = {}
    for day in todo:
        frame = observed.at(day)
        if frame is None:
            judged[day] = None
            continue
        path = folder / f"{day.isoformat()}.arrow"
        frame.write_ipc(path, compression="uncompressed")
        judged[day] = path
    return {} if _KERNEL_FAILED else judged


def outage_min(ctx: StageContext) -> float:
    """Outage minutes that exempt a meter-day from the zero and drop screens (config/outages.toml)."""
    return ctx.config("outages", OutageConfig).quality.min_outage_min


@dataclass
class _Inputs:
    """What the ranking reads from the lake for the run's dates (and the model's dates);
    meter_daily's look-backs are read a batch of dates at a time (:meth:`_Indicators.compute`)."""

    #: the lake's meter_daily dates within the look-backs, and the rows each holds
    per_day: dict[dt.date, int]
    #: the customer-days to leave out (outages), over the look-backs
    outages: pl.DataFrame
    events: pl.DataFrame
    diagnosis: pl.DataFrame
    history: pl.DataFrame
    #: the loss_diagnosis partitions of those dates
    diag_days: list[str]


@dataclass
class _Supervision:
    """The inspection outcomes and the models trained on them (one per count of dates known)."""

    inspections: pl.DataFrame = field(default_factory=pl.DataFrame)
    #: dates with inspections the lake holds meter_daily for, before the run's last date
    model_dates: list[dt.date] = field(default_factory=list)
    models: dict[int, supervised.TheftModel | None] = field(default_factory=dict)
    #: the last model that scored a date
    used: supervised.TheftModel | None = None


@dataclass
class _Tally:
    """What the ranking wrote, for the notes and the run record."""

    written: int = 0
    fired: Counter[str] = field(default_factory=Counter)
    top: Counter[str] = field(default_factory=Counter)
    #: the observer's theft cases of each date
    observed_cases: dict[dt.date, pl.DataFrame] = field(default_factory=dict)


def _dates(lake: Lake, dates: list[dt.date], result: StageResult) -> tuple[list[dt.date], list[dt.date], list[dt.date]]:
    """The lake's meter_daily dates, the dates of ``dates`` it holds (ranked) and those it lacks (noted)."""
    held = sorted(parse_dates(lake.partitions(METER_DAILY)))
    todo = sorted(set(dates) & set(held))
    absent = sorted(set(dates) - set(held))
    if absent:
        result.notes.append(
            f"no meter_daily partition for {len(absent)} date(s) ({absent[0]} .. {absent[-1]}): no anomalies written for them"
        )
    return held, todo, absent


def _supervision(
    cfg: anomaly.AnomalyConfig, raw: pl.DataFrame, held: list[dt.date], todo: list[dt.date]
) -> _Supervision:
    """The inspection outcomes the supervised model learns from (``raw``: :func:`load_inspections`'s
    rows), and the dates they need indicators of."""
    if not cfg.supervised.enabled or not raw.height:
        return _Supervision()
    inspections = supervised.prepare_inspections(raw)
    lake_days = set(held)
    model_dates = sorted(d for d in set(inspections["inspection_date"].to_list()) if d in lake_days and d < todo[-1])
    return _Supervision(inspections, model_dates)


def _read_inputs(
    ctx: StageContext,
    cfg: anomaly.AnomalyConfig,
    held: list[dt.date],
    needed: list[dt.date],
    todo: list[dt.date],
    result: StageResult,
) -> _Inputs:
    """meter_daily over the look-back of ``needed`` (less the outage days) and the reverse
    history up to the last of them; the events of the look-back; the loss diagnosis of the dates."""
    lake = ctx.lake
    reach = needed[0] - dt.timedelta(days=cfg.lookback_days - 1)
    span = [h for h in held if reach <= h <= needed[-1]]
    try:
        per_day = {d: _rows(lake, d) for d in span}
        outages = lake.scan(OUTAGE_METER_DAYS, span).collect()
        off = outages.filter(pl.col("outage_min") >= outage_min(ctx))  # passed on with a minimum of 0
        history = reverse_history(lake, cfg, [h for h in held if h <= needed[-1]])
    except (anomaly.AnomalyInputError, ValueError) as exc:
        raise StageError(f"anomalies: {exc}") from exc
    event_days = [d for d in lake.partitions(EVENTS.clean) if reach.isoformat() <= d <= needed[-1].isoformat()]
    events = lake.scan(EVENTS.clean, event_days).select(list(anomaly.EVENT_COLUMNS)).collect()
    diag_days = [d for d in lake.partitions(LOSS_DIAGNOSIS) if dt.date.fromisoformat(d) in set(needed)]
    diagnosis = lake.scan(LOSS_DIAGNOSIS, diag_days).select(list(anomaly.DIAGNOSIS_COLUMNS)).collect()
    missing_diag = sorted(set(todo) - {dt.date.fromisoformat(d) for d in diag_days})
    if missing_diag:
        result.notes.append(
            f"no loss_diagnosis partition for {len(missing_diag)} date(s) ({missing_diag[0]} .. {missing_diag[-1]}): "
            "ranked without the line-loss indicators there"
        )
    return _Inputs(per_day, off, events, diagnosis, history, diag_days)


#: where the reverse history's parts of the settled days are kept (``parts.parquet``), its
#: footer stamped with the meter_daily files they were read from
REVERSE_STATE = ("_state", "reverse")
#: the last days of the history read on every run, not kept: late files rebuild recent days
#: (a rebuilt kept day has the whole history read again, once). A county's day costs ~0.2 s
REVERSE_RECENT_DAYS = 3
#: the version of what the kept parts hold (:func:`anomaly.reverse_parts`): another is read again
REVERSE_PARTS_VERSION = 2
#: the meter_daily columns the reverse history reads
HISTORY_COLUMNS = ("date", "meter_id", "role", "reverse_kwh", "kwh", "quality", "pv_capacity_kw")


def reverse_history(lake: Lake, cfg: anomaly.AnomalyConfig, days: list[dt.date]) -> pl.DataFrame:
    """:func:`anomaly.reverse_history` over the meter_daily ``days`` (the lake's history up to
    the last detection date), one row per meter, from the kept parts of the settled days
    (those more than :data:`REVERSE_RECENT_DAYS` before the last) and the recent days read.

    The kept parts grow by the days a run settles; they are read again whole when a kept
    day's file changed (a rerun or a late file rebuilt it), the settings changed, or the
    parts are missing or unreadable: the history is a first or a last per meter, which no
    day can be taken back out of. The parts' footer records the days they hold and the
    identity of each day's meter_daily file (:func:`~meterlake.lake.kept_stamps`). The rows
    are those of the whole history read at once, so a daily run reads its last few days of
    meter_daily, not the lake.
    """
    days = sorted(days)
    settled = [d for d in days if d <= days[-1] - dt.timedelta(days=REVERSE_RECENT_DAYS)] if days else []
    recent = days[len(settled) :]

    def parts(span: list[dt.date]) -> pl.LazyFrame:
        return anomaly.reverse_parts(lake.scan(METER_DAILY, span).select(HISTORY_COLUMNS), cfg)

    if not settled:
        return anomaly.reverse_verdict(parts(recent), cfg, streaming=True)
    path = lake.root.joinpath(*REVERSE_STATE, "parts.parquet")
    stamps = {d.isoformat(): identity_stamp(lake.partition_path(METER_DAILY, d)) for d in settled}
    kept = _kept_days(path, cfg, stamps)
    if kept == len(settled):
        whole = pl.scan_parquet(path)
    else:
        grown = parts(settled[kept:])
        if kept:
            grown = anomaly.combine_reverse_parts(pl.scan_parquet(path), grown)
        frame = sort_distinct(grown.collect(engine="streaming"), ["meter_id"])
        written = lake.write_file(path, frame, metadata=_reverse_stamps(cfg, stamps))
        path.with_name("stamps.json").unlink(missing_ok=True)  # where earlier versions kept the stamps
        whole = pl.scan_parquet(written)
    if recent:
        whole = anomaly.combine_reverse_parts(whole, parts(recent))
    return anomaly.reverse_verdict(whole, cfg, streaming=True)


def _reverse_stamps(cfg: anomaly.AnomalyConfig, days: dict[str, str]) -> dict[str, str]:
    """What the kept reverse parts are made from, as their footer records it: the format, the
    setting they depend on, and each settled day's meter_daily identity, in date order."""
    return {
        "version": str(REVERSE_PARTS_VERSION),
        "moved_kwh": json.dumps(cfg.reverse.moved_kwh),
        "days": json.dumps(days),
    }


def _kept_days(path: Path, cfg: anomaly.AnomalyConfig, stamps: dict[str, str]) -> int:
    """How many of the settled days (``stamps``, in order) the kept parts at ``path`` hold as
    they are now: 0 unless the kept days are the first of them, each file unchanged since."""
    state = kept_stamps(path, ("version", "moved_kwh", "days"))
    if not state or len(state) < 3:
        return 0
    now = _reverse_stamps(cfg, {})
    try:
        kept: dict[str, str] = json.loads(state["days"])
    except ValueError:
        return 0
    if (
        state["version"] != now["version"]
        or state["moved_kwh"] != now["moved_kwh"]
        or list(kept) != list(stamps)[: len(kept)]
        or any(stamps[d] != stamp for d, stamp in kept.items())
    ):
        return 0
    return len(kept)


def _rows(lake: Lake, day: dt.date) -> int:
    """The rows of ``day``'s meter_daily partition, from its Parquet footer."""
    return int(pq.read_metadata(lake.partition_path(METER_DAILY, day.isoformat())).num_rows)


#: where each meter_daily day's prepared customer days are kept (:class:`_KeptDays`), one
#: file per day
DAYS_STATE = ("_state", "anomalies", "days")
#: the version of what a kept day holds: a file of another is prepared again
KEPT_DAYS_VERSION = 1
#: rows per row group of a kept day (sorted by meter_id): a range of meters reads the groups
#: its bounds fall in (the groups' meter_id statistics), not the day
KEPT_DAYS_ROW_GROUP = 16_384
#: the columns of :func:`anomaly.prepare_days` a kept day holds (what the indicators read:
#: not the peer median itself, only the ratio to it)
KEPT_DAYS_COLUMNS = tuple(c for c in anomaly.PREPARED_COLUMNS if c != "peer_kwh")


def kept_days_settings(cfg: anomaly.AnomalyConfig, min_outage_min: float) -> str:
    """The settings a prepared day depends on (the peer groups, the TOU split's floor, the
    outage minutes that leave a day out), as a kept day's file records them."""
    return json.dumps(
        {
            "version": KEPT_DAYS_VERSION,
            "peers": cfg.peers.model_dump(),
            "tou_min_day_kwh": cfg.tou.min_day_kwh,
            "min_outage_min": min_outage_min,
        },
        sort_keys=True,
    )


class _KeptDays:
    """A look-back's meter_daily days prepared (:func:`anomaly.prepare_days`, less the outage
    days), each kept in the lake (:data:`DAYS_STATE`) and read back a range of meters at a time.

    A day's peer medians lie within the day, so a day prepared alone is the same rows as the
    day prepared among the look-back's others: each day is prepared once, when it is first
    in a look-back, and kept. The file records what it was made from in its footer: the
    :func:`~meterlake.lake.file_identity` of the day's meter_daily and outage_meter_days
    partitions and the settings (:func:`kept_days_settings`); a day whose file records
    anything else (a rerun or a late file rebuilt an input, the settings changed), or whose
    file is missing or unreadable, is prepared again. A daily run so prepares its own day and
    reads the others' numbers back, instead of reading every day of meter_daily, preparing it
    and setting it aside again each date."""

    def __init__(
        self,
        lake: Lake,
        span: list[dt.date],
        cfg: anomaly.AnomalyConfig,
        min_outage_min: float,
        progress: Callable[[str], None],
    ) -> None:
        self.paths = [kept_day_path(lake, d) for d in span]
        settings = kept_days_settings(cfg, min_outage_min)
        #: the days prepared here (the others were read back)
        self.made: list[dt.date] = []
        for d, path in zip(span, self.paths, strict=True):
            stamps = _day_stamps(lake, d, settings)
            if kept_stamps(path, stamps) == stamps:
                continue
            progress(f"anomalies: preparing meter_daily {d}")
            day = _prepared_day(lake, d, cfg, min_outage_min)
            lake.write_file(path, day, row_group_size=KEPT_DAYS_ROW_GROUP, compression="lz4", metadata=stamps)
            self.made.append(d)
            del day

    def days(self, lo: str | None, hi: str | None) -> pl.DataFrame:
        """The prepared days of the meters in ``[lo, hi)`` (:func:`anomaly.meter_ranges`), sorted
        by meter_id and date as :func:`anomaly.prepare_days` gives them."""
        keep = anomaly.in_range(lo, hi)
        frames = [pl.scan_parquet(p).filter(keep) for p in self.paths]
        # the days in date order, each sorted by meter_id: a stable sort by meter_id alone
        # orders them by meter_id then date (half the CPU of sorting by the two)
        return pl.concat(frames).collect().sort("meter_id", maintain_order=True)


def kept_day_path(lake: Lake, day: dt.date) -> Path:
    return lake.root.joinpath(*DAYS_STATE, f"date={day.isoformat()}.parquet")


def _day_stamps(lake: Lake, day: dt.date, settings: str) -> dict[str, str]:
    """What a prepared day is made from, as its kept file's footer records it."""
    return {
        "meter_daily": identity_stamp(lake.partition_path(METER_DAILY, day.isoformat())),
        "outage_meter_days": identity_stamp(lake.partition_path(OUTAGE_METER_DAYS, day.isoformat())),
        "settings": settings,
    }


def _prepared_day(lake: Lake, day: dt.date, cfg: anomaly.AnomalyConfig, min_outage_min: float) -> pl.DataFrame:
    """``day``'s customer days prepared (:func:`anomaly.prepare_days`, its own peer medians),
    less the meter-days off supply for at least ``min_outage_min`` minutes."""
    raw = lake.scan(METER_DAILY, [day]).select(list(anomaly.DAY_COLUMNS))
    off = lake.scan(OUTAGE_METER_DAYS, [day]).filter(pl.col("outage_min") >= min_outage_min).collect()
    prepared = anomaly.without_outage_days(anomaly.prepare_days(raw, cfg), off, 0.0)
    return prepared.select(KEPT_DAYS_COLUMNS)


def prune_kept_days(lake: Lake, lookback_days: int) -> int:
    """Remove the kept prepared days before the look-back of the newest kept day: no daily
    run reads them again (a rerun of an earlier date prepares the ones it needs again; each
    is a fraction of a second, so none is kept beyond the look-back). Returns how many were
    removed."""
    return lake.prune_dated_state(DAYS_STATE, lookback_days, margin=0)


class _Indicators:
    """The indicators of detection dates, computed a batch of dates at a time and kept
    until ranked (a model date's until the run ends: later models learn from it)."""

    def __init__(
        self,
        ctx: StageContext,
        cfg: anomaly.AnomalyConfig,
        inputs: _Inputs,
        todo: list[dt.date],
        observed: _Observed | None = None,
    ) -> None:
        self.ctx, self.cfg, self.inputs = ctx, cfg, inputs
        self.observed = observed if observed is not None else _Observed(ctx, cfg.observer, todo, ctx.observed_ahead)
        self.features: dict[dt.date, pl.DataFrame] = {}
        #: the observer's work done ahead, waited for where first needed (:meth:`_observed`)
        self.ahead = ctx.observer_ahead
        self.judged: dict[dt.date, Path | None] = {}

    def batches(self, dates: list[dt.date]) -> list[list[dt.date]]:
        """``dates`` in runs whose look-backs are bounded in rows (:data:`BATCH_ROWS`)."""
        return anomaly.batches_of_counts(self.inputs.per_day, dates, self.cfg, BATCH_ROWS)

    def compute(self, batch: list[dt.date]) -> None:
        """The indicators of the dates of ``batch`` not yet computed, in one pass of each
        indicator; a range of meters at a time when the look-backs hold more than
        :data:`CHUNK_ROWS` meter-days (the same rows: a meter's indicators read only its own
        days and the peer medians, which are computed over every meter of a day when the day
        is prepared and kept)."""
        batch = [d for d in batch if d not in self.features]
        if not batch:
            return
        i, cfg, lake = self.inputs, self.cfg, self.ctx.lake
        reach = batch[0] - dt.timedelta(days=cfg.lookback_days - 1)
        span = [d for d in i.per_day if reach <= d <= batch[-1]]
        # each date's look-back is held keyed by that date: the rows held are their sum
        rows = sum(anomaly.lookback_rows(i.per_day, d, cfg) for d in batch)
        parts = -(-rows // CHUNK_ROWS)
        try:
            if parts <= 1:
                self.ctx.progress(f"anomalies: reading meter_daily {span[0]} .. {span[-1]} ({len(span)} days)")
                days = self._prepared(lake.scan(METER_DAILY, span).select(list(anomaly.DAY_COLUMNS)))
                if self.ahead is not None:
                    # the observer's work is the docs helper's, in its own process: the
                    # look-backs' indicators are computed while it ends, and the dates'
                    # observer indicators joined in after (the same frames)
                    without = self._indicators(days, batch, dict.fromkeys(batch))
                    del days
                    self.features.update(anomaly.with_observed(without, self._observed(batch)))
                    return
                # the observer after the days are prepared: what it keeps is not held beside their preparation
                self.features.update(self._indicators(days, batch, self._observed(batch)))
                return
            ranges = anomaly.meter_ranges(
                lake.scan(METER_DAILY, [span[-1]]).select("meter_id").collect()["meter_id"], parts
            )
            self.ctx.progress(
                f"anomalies: meter_daily {span[0]} .. {span[-1]} ({len(span)} days) in {len(ranges)} ranges of meters"
            )
            if self.ahead is None:  # the observer's first date judged beside the look-backs' reading
                self.observed.judge_soon(batch[0])
            kept = _KeptDays(lake, span, cfg, outage_min(self.ctx), self.ctx.progress)
            # the ranges' indicators without the observer's, joined in after (the same rows):
            # the look-backs are read and judged while the observer's thread works
            unseen: dict[dt.date, pl.DataFrame | None] = dict.fromkeys(batch)
            found: dict[dt.date, list[pl.DataFrame]] = {d: [] for d in batch}
            for lo, hi in ranges:
                days = kept.days(lo, hi)
                part = self._indicators(days, batch, unseen, anomaly.in_range(lo, hi))
                del days
                for d in batch:
                    found[d].append(part[d])
            seen = self._observed(batch)
        except (anomaly.AnomalyInputError, ValueError) as exc:
            raise StageError(f"anomalies: {exc}") from exc
        self.features.update(anomaly.with_observed({d: pl.concat(found[d]) for d in batch}, seen))

    def _prepared(self, raw: pl.LazyFrame) -> pl.DataFrame:
        """The look-back's days prepared, their outage days left out."""
        return anomaly.without_outage_days(anomaly.prepare_days(raw, self.cfg), self.inputs.outages, 0.0)

    def _indicators(
        self,
        days: pl.DataFrame,
        batch: list[dt.date],
        seen: dict[dt.date, pl.DataFrame | None],
        keep: pl.Expr | None = None,
    ) -> dict[dt.date, pl.DataFrame]:
        """The indicators of ``batch`` from the prepared ``days``, the other inputs of the
        meters ``keep`` selects (all: None)."""
        i = self.inputs

        def kept(frame: pl.DataFrame) -> pl.DataFrame:
            return frame if keep is None else frame.filter(keep)

        seen = {d: None if f is None else kept(f) for d, f in seen.items()}
        return anomaly.indicators_at(days, kept(i.events), kept(i.diagnosis), kept(i.history), batch, self.cfg, seen)

    def _observed(self, batch: list[dt.date]) -> dict[dt.date, pl.DataFrame | None]:
        """The observer indicator of each date of ``batch``: read back where the run judged
        it ahead, else judged here."""
        if self.ahead is not None:
            ahead, self.ahead = self.ahead(), None
            self.observed.todo -= ahead.summarised
            self.judged = dict(ahead.judged)
        try:
            seen = {d: self._judged(d) if d in self.judged else self.observed.at(d) for d in batch}
        except observer.ObserverInputError as exc:
            raise StageError(f"anomalies: {exc}") from exc
        # the observer's arrays are numpy's (the C heap): handed back before the indicators'
        # queries (polars' own allocator) take their place
        allocator.trim()
        return seen

    def _judged(self, day: dt.date) -> pl.DataFrame | None:
        """The observer indicator of ``day`` judged ahead (:func:`judge_ahead`)."""
        path = self.judged[day]
        return None if path is None else pl.read_ipc(path.read_bytes())

    def drop_through(self, last: dt.date, keep: list[dt.date]) -> None:
        """Forget the dates up to ``last`` but those of ``keep``."""
        for d in [d for d in self.features if d <= last and d not in keep]:
            del self.features[d]


def _model_p(cfg: anomaly.AnomalyConfig, sup: _Supervision, ind: _Indicators, day: dt.date) -> pl.DataFrame | None:
    """The supervised model's probabilities at ``day``: trained on the inspections before
    ``day`` with the indicators at their own dates; None without a model."""
    if not sup.inspections.height:
        return None
    known = [d for d in sup.model_dates if d < day]
    if len(known) not in sup.models:
        for more in ind.batches([d for d in known if d not in ind.features]):
            ind.compute(more)
        rows = supervised.labelled_rows(sup.inspections, ind.features, cfg.supervised, before=day)
        sup.models[len(known)] = supervised.fit(rows, cfg.supervised)
    model = sup.models[len(known)]
    if model is None:
        return None
    sup.used = model
    return supervised.predict(model, ind.features[day])


def _rank(
    ctx: StageContext,
    cfg: anomaly.AnomalyConfig,
    inputs: _Inputs,
    todo: list[dt.date],
    sup: _Supervision,
    observed: _Observed | None = None,
) -> _Tally:
    """Score every date of ``todo`` and write its anomalies partition, a batch of dates at a time."""
    ind = _Indicators(ctx, cfg, inputs, todo, observed)
    tally = _Tally()
    done = 0
    for batch in ind.batches(todo):
        ctx.progress(f"anomalies: {batch[0]} .. {batch[-1]} ({done + len(batch)}/{len(todo)})")
        ind.compute(batch)
        model_p = {day: _model_p(cfg, sup, ind, day) for day in batch}
        if cfg.observer.enabled:
            for day in batch:
                tally.observed_cases[day] = observer.cases(ind.features[day], day, cfg.theft_cases.min_observer)
        scored = anomaly.score_at({d: ind.features[d] for d in batch}, cfg, model_p)
        # the batch's partitions and tallies from one frame: a query each, not one per date
        frame = pl.concat([scored[day] for day in batch])
        ctx.lake.write_partitions_from(ANOMALIES, frame, batch)
        tally.written += frame.height
        fired = frame.select((pl.col(f"{key}_points") > 0).sum().alias(key) for key in INDICATORS).row(0, named=True)
        tally.fired.update(fired)
        tops = frame.filter(pl.col("top_rule").is_not_null() & (pl.col("top_rule") != ""))["top_rule"].value_counts()
        tally.top.update(dict(tops.iter_rows()))
        done += len(batch)
        ind.drop_through(batch[-1], keep=sup.model_dates)
    return tally


def _report(
    result: StageResult, todo: list[dt.date], absent: list[dt.date], tally: _Tally, cases: int, sup: _Supervision
) -> None:
    """The rows written, the notes and the run record's details."""
    result.rows = {ANOMALIES.name: tally.written, THEFT_CASES.name: cases}
    result.notes.append(f"theft_cases: {cases} case(s) over {len(todo)} date(s)")
    result.notes.append(
        f"anomalies: {len(todo)} date(s), {tally.written} meter-days scored; indicators fired: "
        + ", ".join(f"{k} {tally.fired[k]}" for k in INDICATORS if tally.fired[k])
    )
    model = sup.used
    if sup.inspections.height:
        result.notes.append(
            "supervised: "
            + (model.describe() if model else "too few inspection outcomes before the dates: unsupervised")
        )
    result.details = {
        "dates": [d.isoformat() for d in todo],
        "fired": {k: tally.fired[k] for k in INDICATORS},
        "top_rule": dict(sorted(tally.top.items())),
        "supervised": None
        if model is None
        else {
            "rows": model.n_rows,
            "positives": model.n_positive,
            "cut_date": model.cut_date,
            "train": model.n_train,
            "validate": model.n_valid,
            "validation_auc": model.valid_auc,
        },
        "dates_without_meter_daily": [d.isoformat() for d in absent],
    }


def run(ctx: StageContext, dates: list[dt.date]) -> StageResult:
    cfg = ctx.config(CONFIG_NAME, anomaly.AnomalyConfig)
    result = StageResult(stage="anomalies")
    held, todo, absent = _dates(ctx.lake, dates, result)
    if not todo:
        result.rows = {ANOMALIES.name: 0}
        return result
    observed = _observer_soon(ctx, cfg, held, todo)
    try:
        raw, notes = load_inspections(ctx)  # read once: the model learns from them, the cases cite them
        if cfg.supervised.enabled:
            result.notes += notes
        sup = _supervision(cfg, raw, held, todo)
        inputs = _read_inputs(ctx, cfg, held, sorted(set(todo) | set(sup.model_dates)), todo, result)
        tally = _rank(ctx, cfg, inputs, todo, sup, observed)
    finally:
        observed.settle()
    if _KERNEL_FAILED:
        result.notes.append(f"observer: compiled look not available ({_KERNEL_FAILED[0]}): every customer judged")
    cases = _theft_cases(ctx, cfg, held, todo, inputs.diag_days, raw, tally.observed_cases)
    _report(result, todo, absent, tally, cases, sup)
    prune_window_copies(ctx.lake, cfg.observer.window_days)
    ctx.lake.prune_dated_state(OBSERVER_STATE, cfg.observer.window_days)
    prune_kept_days(ctx.lake, cfg.lookback_days)
    return result


def prune_window_copies(lake: Lake, window_days: int) -> int:
    """Remove the observer's window copies (``customers.arrow``) of the kept days outside the
    window of the newest kept day: the copies double what a kept day holds on disk (~50 MB
    a county day), and only the latest window reads them every date. A rerun of an earlier
    date makes the ones it needs again from the Parquet files (:class:`_DayFile`), which
    stay. Returns how many were removed."""
    removed = 0
    for base in lake.root.joinpath(*OBSERVER_STATE).glob("*"):
        days = sorted(base.glob("date=*"))
        if not days:
            continue
        newest = dt.date.fromisoformat(days[-1].name.removeprefix("date="))
        first = (newest - dt.timedelta(days=window_days - 1)).isoformat()
        for folder in days:
            copy = folder / "customers.arrow"
            if folder.name.removeprefix("date=") < first and copy.exists():
                copy.unlink()
                removed += 1
    return removed
