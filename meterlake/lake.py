"""The lake on disk: where each table lives and how partitions are written.

Layout under ``LAKE``::

    clean/<dataset>/<date_col>=YYYY-MM-DD/part-0.parquet   validated landing rows
    marts/<table>/<key>=<value>/part-0.parquet             analyst-facing marts
    _meta/manifest.parquet                                 landing files seen (content hash)
    _meta/staged/<dataset>/<file_id>.parquet               each landing file, parsed once (or a hard
                                                           link to the partition it alone made, its
                                                           other rows in rest/<file_id>.parquet)
    _meta/ledger/...                                       row accounting per file and partition
    _meta/runs/<run_id>.json                               one record per run
    _state/balance/date=YYYY-MM-DD/{areas,customers}.parquet  the interval balance's per-day statistics
    reports/                                               Data Docs and HTML reports

Every partition is exactly one Parquet file with a fixed name. It is written to a
staging file on the same filesystem and moved into place with :func:`os.replace`,
which is atomic on POSIX: a reader, or a run killed midway, sees either the old
file or the new one, never a half-written one. The partition key is kept out of
the file (it lives in the directory name), so Hive readers type it from the path
(``date=2026-01-01`` reads back as a date in polars and DuckDB).
"""

from __future__ import annotations

import datetime as dt
import errno
import filecmp
import io
import itertools
import json
import logging
import os
import shutil
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

import polars as pl

from . import faults
from .schemas import Table
from .transforms.frames import sort_if_needed

PART_FILE = "part-0.parquet"
#: zstd keeps county-day curves around a third of snappy's size at similar speed
COMPRESSION: Final = "zstd"
log = logging.getLogger(__name__)

ROW_GROUP_SIZE = 256_000
#: zstd level of the staged copies of landing files (``_meta/staged``), written and read
#: back by the same ingest: level 1 writes a county day's curves in 2/3 of the CPU of the
#: default level (2.1 s against 3.1 s) for 1.4x the bytes (147 MB against 107 MB)
STAGED_LEVEL: Final = 1
#: a frame with at least this many Float64 columns (a day's curves: 96 slots) is written
#: with its floats dictionary-encoded (pyarrow's writer; polars' writes floats plain): a
#: slot holds a few thousand distinct values a row group, so its column is ~12-bit indices
#: that zstd barely has to work on. A county day's curves: 88 MB instead of 113 MB, in
#: under half the CPU to write (0.8 s against 1.8-2.2 s) and to read back (0.25 s against 0.55 s).
#: A column whose values are too many for its dictionary page falls back to plain pages.
DICTIONARY_FLOATS: Final = 24
#: zstd level of such a file (unless the caller gives one): a fast level, as the indices
#: leave zstd little to find; a county day's curves 88 MB, 0.1 s less to write and 0.05 s
#: less to read back than at level 1 (85 MB)
DICTIONARY_LEVEL: Final = -1
#: ... and at least this many rows: a small day's curves (a few hundred meters) are written
#: by polars, 1.7 ms less a file than by pyarrow, and without loading pyarrow
DICTIONARY_ROWS: Final = 10_000
#: threads :meth:`Lake.write_partitions` writes on (they wait on the disk more than they compute)
WRITE_THREADS: Final = 4


@dataclass(frozen=True)
class Lake:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # where things live -------------------------------------------------------
    def table_dir(self, table: Table | str, layer: str | None = None) -> Path:
        if isinstance(table, Table):
            return self.root / table.layer / table.name
        return self.root / (layer or "marts") / table

    @property
    def meta(self) -> Path:
        return self.root / "_meta"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def staging(self) -> Path:
        return self.root / ".staging"

    def partition_path(self, table: Table, value: object, key: str | None = None) -> Path:
        key = key or table.partition_by
        if key is None:
            return self.table_dir(table) / PART_FILE
        return self.table_dir(table) / f"{key}={value}" / PART_FILE

    # writing ----------------------------------------------------------------
    def write_file(
        self,
        path: Path,
        frame: pl.DataFrame,
        level: int | None = None,
        row_group_size: int = ROW_GROUP_SIZE,
        compression: Literal["zstd", "lz4"] = COMPRESSION,
        metadata: Mapping[str, str] | None = None,
    ) -> Path:
        """Write one Parquet file atomically (stage, fsync, rename); ``level``: zstd's, else its default;
        ``row_group_size``: rows per row group (smaller for a file read back a part at a time);
        ``compression``: lz4 for a working file read back often (faster to read, a little larger);
        ``metadata``: key-value pairs kept in the file's footer (what a kept working file was
        made from: it is written with them in one rename, so the two cannot disagree).

        A frame without rows is written as the bytes polars gave the first time for its
        schema (the same bytes every time: no timestamps), not encoded again."""
        return self._atomic(path, _parquet_writer(frame, level, row_group_size, compression, metadata))

    def replace_if_changed(self, path: Path, frame: pl.DataFrame, before: Callable[[], object] | None = None) -> bool:
        """:meth:`write_file` of ``frame`` (default settings) unless the file it writes is, byte
        for byte, the file ``path`` already holds: then that file is left as it is (its
        :func:`file_identity` too) and False is returned. The new file is encoded in staging
        and compared whole: "unchanged" means the same bytes, not rows that compare equal.
        ``before`` is called once the file is known to change, before it replaces the old one
        (e.g. to record first that the later stages must rebuild what it feeds)."""
        changed = True

        def keep(tmp: Path) -> bool:
            nonlocal changed
            changed = not (path.is_file() and filecmp.cmp(tmp, path, shallow=False))
            if changed and before is not None:
                before()
            return not changed

        self._atomic(path, _parquet_writer(frame, None, ROW_GROUP_SIZE, COMPRESSION), keep_if=keep)
        return changed

    def link_file(self, src: Path, path: Path) -> bool:
        """Give the lake file ``src`` a second name ``path`` (a hard link), atomically.

        Lake files are never written in place (a new version is a new file renamed over
        the old), so the two names keep the same bytes until one is replaced. False,
        with nothing changed, where the filesystem has no hard links.
        """
        self.staging.mkdir(parents=True, exist_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.staging / f"{uuid.uuid4().hex}.tmp"
        try:
            try:
                os.link(src, tmp)
            except OSError as exc:
                if exc.errno in _NO_LINKS:
                    return False
                raise
            faults.before_replace(path)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def write_arrow(self, path: Path, frame: pl.DataFrame, batch_rows: int, metadata: Mapping[str, str]) -> Path:
        """Write one Arrow IPC file atomically: uncompressed, in record batches of ``batch_rows``
        rows (the last one shorter), ``metadata`` in its schema. A working file read back a
        batch at a time with no decoding (the observer's window copy of a kept day)."""
        import pyarrow as pa  # not every command that opens a lake needs pyarrow

        table = frame.to_arrow().combine_chunks().replace_schema_metadata(dict(metadata))

        def write(tmp: Path) -> None:
            with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
                for batch in table.to_batches(max_chunksize=batch_rows):
                    out.write_batch(batch)

        return self._atomic(path, write)

    def write_text(self, path: Path, text: str) -> Path:
        """Write one small text file (JSON records) atomically."""
        return self._atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def _atomic(
        self, path: Path, write: Callable[[Path], object], keep_if: Callable[[Path], bool] | None = None
    ) -> Path:
        """``write`` a staging file, then rename it over ``path`` (after an fsync); with
        ``keep_if``, ``path`` is left as it is where ``keep_if(staged file)`` says so."""
        self.staging.mkdir(parents=True, exist_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.staging / f"{uuid.uuid4().hex}.tmp"
        try:
            try:
                write(tmp)
            except Exception as exc:
                # polars reports a full disk as a Parquet error ("Invalid thrift: transport
                # error"): name the cause when the filesystem is out of space
                if _nearly_full(self.staging):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
                raise
            if keep_if is not None and keep_if(tmp):
                return path
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            faults.before_replace(path)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def clean_staging(self) -> int:
        """Remove what killed runs left in ``.staging`` (call only while holding the lake lock)."""
        if not self.staging.is_dir():
            return 0
        n = 0
        for p in self.staging.iterdir():
            if p.is_file() or p.is_symlink():
                p.unlink(missing_ok=True)
                n += 1
            elif p.is_dir():  # a stage's working folder (e.g. anomalies' ranges of meters)
                shutil.rmtree(p, ignore_errors=True)
                n += 1
        return n

    def prune_dated_state(self, parts: Sequence[str], days_read: int, margin: int | None = None) -> int:
        """Remove the kept working state of days no daily run reads again: the entries named
        ``date=YYYY-MM-DD`` (a folder or a file) anywhere under ``root/parts`` older than
        the ``days_read`` days up to the newest such entry and ``margin`` days before them
        (:data:`STATE_MARGIN_DAYS` unless given).

        Kept state is what a stage computed from a day's clean data to reuse it (a day's
        balance statistics, the observer's summaries); without this, it would grow with
        the lake (at a county, about as much a year as the clean data itself). A rerun of
        an older date computes what it needs again from the clean data, which stays. Each
        entry is first renamed into staging, so a run killed midway leaves no day half
        removed (staging is cleared at the next run's start). Returns how many were removed."""
        days = {p: d for p in self.root.joinpath(*parts).rglob("date=*") if (d := _state_day(p)) is not None}
        if not days:
            return 0
        kept = days_read + (STATE_MARGIN_DAYS if margin is None else margin)
        first = max(days.values()) - dt.timedelta(days=kept - 1)
        old = [p for p, d in days.items() if d < first]
        if old:
            self.staging.mkdir(parents=True, exist_ok=True)
        for p in old:
            gone = self.staging / f"pruned-{uuid.uuid4().hex}"
            p.rename(gone)
            if gone.is_dir():
                shutil.rmtree(gone)
            else:
                gone.unlink()
        return len(old)

    # pending dates: days whose marts must be rebuilt because ingest changed their inputs.
    # Ingest adds to them before it commits its files; a completed run removes the days it
    # rebuilt, so a run killed after ingest still has a later run rebuild every such day.
    @property
    def pending_path(self) -> Path:
        return self.meta / "pending_dates.json"

    def read_pending_dates(self) -> set[dt.date]:
        if not self.pending_path.exists():
            return set()
        return {dt.date.fromisoformat(d) for d in json.loads(self.pending_path.read_text(encoding="utf-8"))}

    def add_pending_dates(self, days: Iterable[dt.date]) -> None:
        held = self.read_pending_dates()
        new = set(days)
        if new <= held:
            return
        self.write_text(self.pending_path, json.dumps(sorted(d.isoformat() for d in held | new)))

    def clear_pending_dates(self, done: Iterable[dt.date]) -> None:
        held = self.read_pending_dates()
        if not held:
            return
        rest = held - set(done)
        if rest:
            self.write_text(self.pending_path, json.dumps(sorted(d.isoformat() for d in rest)))
        else:
            self.pending_path.unlink(missing_ok=True)

    def write_partition(
        self,
        table: Table,
        value: object,
        frame: pl.DataFrame,
        key: str | None = None,
        sort_by: Iterable[str] | None = None,
    ) -> Path:
        """Replace one partition of ``table`` with ``frame``, conformed to its contract.

        The partition column is dropped from the file (it is the directory name).
        Rows are sorted by the table key (or ``sort_by``) so that files are
        byte-identical across reruns and Parquet statistics prune on meter_id.
        """
        key = key or table.partition_by
        return self.write_file(self.partition_path(table, value, key), _partition_rows(table, frame, key, sort_by))

    def write_partition_if_changed(
        self, table: Table, value: object, frame: pl.DataFrame, before: Callable[[], object] | None = None
    ) -> bool:
        """:meth:`write_partition`, except that a partition whose new file is byte for byte the
        one it replaces is left as it is (:meth:`replace_if_changed`); whether it changed."""
        key = table.partition_by
        return self.replace_if_changed(self.partition_path(table, value), _partition_rows(table, frame, key), before)

    def write_partitions(
        self,
        table: Table,
        frames: Mapping[Any, pl.DataFrame],
        key: str | None = None,
        sort_by: Iterable[str] | None = None,
    ) -> list[Path]:
        """:meth:`write_partition` of each ``value: frame`` of ``frames``: the same files, for
        a run of many small partitions (a small run's 59 days) at a fraction of the cost.

        The frames are conformed to the contract in one query (their rows one after the
        other, then sliced apart again: a cast is row by row), not one query each; the
        files are sorted and written on a few threads at once, each waiting mostly for
        its ``fsync``: waited for together, the filesystem commits them in a few journal
        commits instead of one each (on this project's machine 1.6 ms a file one after
        the other, 0.1 ms together). Each file is replaced atomically, as ever; when one
        write fails, the others still run to their end (each whole or not written, as
        when a run stops between two writes), and the first error is raised.
        """
        key = key or table.partition_by
        if key is None:
            raise ValueError(f"{table.name} is not partitioned: write it with write_partition")
        order = list(sort_by) if sort_by is not None else [k for k in table.key if k != key]
        items = list(frames.items())
        conformed = self._conform_together(table, [f for _, f in items], key)
        paths = [self.partition_path(table, v, key) for v, _ in items]
        return self._write_sorted(list(zip(paths, conformed, strict=True)), order)

    def write_partitions_from(
        self,
        table: Table,
        frame: pl.DataFrame,
        values: Iterable[object],
        key: str | None = None,
        sort_by: Iterable[str] | None = None,
    ) -> dict[object, int]:
        """:meth:`write_partition` of each of ``values`` with its rows of one ``frame`` (an
        empty file for a value without rows); the rows written per value.

        The frame is conformed once for all of them (a backfill's dates cost one query,
        not one each) and the files are written as :meth:`write_partitions` writes them,
        each the bytes :meth:`write_partition` writes.
        """
        key = key or table.partition_by
        if key is None:
            raise ValueError(f"{table.name} is not partitioned: write it with write_partition")
        out = table.conform(frame).collect()
        order = list(sort_by) if sort_by is not None else [k for k in table.key if k != key]
        parts = {k[0]: part for k, part in out.partition_by(key, as_dict=True, maintain_order=True).items()}
        values = list(values)
        if stray := set(parts) - set(values):
            # never dropped without a word: a caller hands the rows of the values it names
            shown = ", ".join(sorted(map(str, stray))[:3])
            raise ValueError(f"{table.name}: rows of {key} {shown} outside the partitions to write")
        empty = out.clear().drop(key)
        rows = {value: empty if (part := parts.get(value)) is None else part.drop(key) for value in values}
        self._write_sorted([(self.partition_path(table, value, key), part) for value, part in rows.items()], order)
        return {value: part.height for value, part in rows.items()}

    def _write_sorted(self, jobs: list[tuple[Path, pl.DataFrame]], order: list[str]) -> list[Path]:
        """Each ``(path, frame)`` sorted by ``order`` and written atomically, on a few threads
        when there are several (see :meth:`write_partitions`)."""
        if len(jobs) <= 1:
            return [self.write_file(p, sort_if_needed(f, order)) for p, f in jobs]

        def write(path: Path, frame: pl.DataFrame) -> Path:
            return self.write_file(path, sort_if_needed(frame, order))

        with ThreadPoolExecutor(max_workers=WRITE_THREADS, thread_name_prefix="lake-partitions") as pool:
            futures = [pool.submit(write, p, f) for p, f in jobs]
            wait(futures)
        failed = [(path, exc) for (path, _), f in zip(jobs, futures, strict=True) if (exc := f.exception()) is not None]
        for path, exc in failed[1:]:  # the first is raised; the others are not lost
            log.warning("lake: %s not written: %s", path, exc)
        if failed:
            raise failed[0][1]
        return [f.result() for f in futures]

    @staticmethod
    def _conform_together(table: Table, frames: list[pl.DataFrame], key: str | None) -> list[pl.DataFrame]:
        """Each frame conformed to ``table`` without the partition column ``key``: in one
        query when they share a schema, else one each (as :meth:`write_partition`)."""

        def conform(frame: pl.DataFrame) -> pl.LazyFrame:
            out = table.conform(frame)
            return out.drop(key) if key is not None else out

        if len(frames) <= 1 or len({tuple(f.schema.items()) for f in frames}) > 1:
            return [conform(f).collect() for f in frames]
        whole = conform(pl.concat(frames, rechunk=False)).collect()
        starts = itertools.accumulate((f.height for f in frames), initial=0)
        return [whole.slice(at, f.height) for at, f in zip(starts, frames, strict=False)]

    def partitions(self, table: Table, key: str | None = None) -> list[str]:
        """The partition values present, sorted."""
        key = key or table.partition_by
        base = self.table_dir(table)
        if not base.exists():
            return []
        prefix = f"{key}="
        return sorted(
            p.name[len(prefix) :] for p in base.iterdir() if p.name.startswith(prefix) and (p / PART_FILE).exists()
        )

    # reading ----------------------------------------------------------------
    def scan(self, table: Table, values: Iterable[object] | None = None, key: str | None = None) -> pl.LazyFrame:
        """Lazily read a table (or some of its partitions) with the partition column typed.

        An absent table or partition reads as an empty frame of the right schema.
        """
        key = key or table.partition_by
        if key is None:
            path = self.partition_path(table, None)
            return pl.scan_parquet(path) if path.exists() else pl.LazyFrame(schema=table.schema)
        if values is None:
            values = self.partitions(table, key)
        dtype = table.schema[key] if key in table.schema else pl.String()
        held = [(v, path) for v in values if (path := self.partition_path(table, v, key)).exists()]
        if not held:
            return pl.LazyFrame(schema=table.schema)
        out = scan_alike(held, key, dtype)
        if out is None:
            frames = [pl.scan_parquet(path).with_columns(_typed_literal(v, dtype).alias(key)) for v, path in held]
            out = pl.concat(frames, how="diagonal_relaxed")
        # partitions written before a column was added read it as empty
        have = set(out.collect_schema().names())
        return out.select(pl.col(c) if c in have else pl.lit(None, table.schema[c]).alias(c) for c in table.names)


def _empty_parquet(
    schema: pl.Schema, compression: Literal["zstd", "lz4"], level: int | None, row_group_size: int
) -> bytes:
    """The Parquet bytes of a frame of ``schema`` without rows, as polars writes them (kept per schema)."""
    key = (tuple((name, repr(dtype)) for name, dtype in schema.items()), compression, level, row_group_size)
    data = _EMPTY_PARQUET.get(key)
    if data is None:
        buf = io.BytesIO()
        pl.DataFrame(schema=schema).write_parquet(
            buf, compression=compression, compression_level=level, statistics=True, row_group_size=row_group_size
        )
        data = _EMPTY_PARQUET[key] = buf.getvalue()
    return data


def _write_dictionary_floats(
    path: Path, frame: pl.DataFrame, compression: Literal["zstd", "lz4"], level: int | None, row_group_size: int
) -> None:
    """Write ``frame`` by pyarrow, every column dictionary-encoded where its values fit
    (see :data:`DICTIONARY_FLOATS`); it reads back as the same frame, -0.0 and NaN bits included."""
    import pyarrow as pa  # at first use: importing the lake loads no pyarrow
    import pyarrow.parquet as pq

    pq.write_table(
        frame.to_arrow(),
        path,
        compression=compression,
        compression_level=level,
        use_dictionary=True,
        row_group_size=row_group_size,
        write_statistics=True,
    )
    # the writer's buffers come from pyarrow's own allocator, which keeps what it freed for
    # reuse: handed back at once, they do not sit under the next stage's peak
    pa.default_memory_pool().release_unused()


#: :func:`_empty_parquet` by schema and settings (a small run writes hundreds of empty files alike)
_EMPTY_PARQUET: dict[tuple[object, ...], bytes] = {}


class WriteBehind:
    """Lake writes done on one thread of their own, in the order given, while the caller goes on.

    A job is a function writing some lake files (each write atomic, as ever). Jobs wait or
    run up to ``depth`` at a time and up to ``max_bytes`` of the frames they hold (the
    caller's estimate): :meth:`submit` waits for the oldest beyond that, so a run of small
    partitions is written while the next dataset is read. A job holding more than
    ``max_bytes`` alone (a county day's curves) is waited for at once: nothing is parsed
    beside it, and memory peaks as if it were written in line. A job that fails is raised by the next :meth:`submit` or
    :meth:`wait`, and the jobs after it are not run, as if the process had stopped there.
    Leaving the ``with`` block waits for every job; left by an exception, it runs no job
    not yet started. The caller waits (:meth:`wait`) before reading what the jobs write.

    ``threads`` > 1: jobs that write files of their own (no job reads or replaces another's)
    run up to that many at once, started in the order given, each job's writes in its
    order; their ``fsync``s are waited for together (a small run's ingest writes ~900
    files, ~3 ms each one after the other on this project's disk). A failing job is
    raised as ever and no job starts after it; those already started beside it end.

    ``beside``: a job over ``max_bytes`` that the caller's next work reads nothing of (a
    county day's curves, ~1.2 s of pyarrow's one-core write, while the small datasets are
    staged and rebuilt): not waited for at once and its frames not counted against the bound; one
    such job at a time (a second waits for the first). :meth:`wait_others` waits for every
    job but it, :meth:`wait_beside` for it alone, :meth:`wait` for all.
    """

    def __init__(self, depth: int = 64, max_bytes: int = 256 << 20, threads: int = 1) -> None:
        self.depth, self.max_bytes = max(1, depth), max_bytes
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="lake-writes")
        self._jobs: deque[tuple[Future[None], int]] = deque()
        self._bytes = 0
        self._stop = threading.Event()
        #: the job written beside the caller's next work (see ``beside``), while it runs
        self._beside: Future[None] | None = None

    def submit(self, job: Callable[[], object], nbytes: int = 0, beside: bool = False) -> None:
        """Hand ``job`` to the writing thread; ``nbytes``: about what its frames hold;
        ``beside``: see the class."""
        self._beside_failed()
        if beside and nbytes > self.max_bytes:
            if self._beside is not None:  # one such job's frames in memory at a time
                self._beside.result()
            self._beside = self._pool.submit(self._run, job)
            return
        while self._jobs and (len(self._jobs) >= self.depth or self._bytes + nbytes > self.max_bytes):
            self._oldest_done()
        self._jobs.append((self._pool.submit(self._run, job), nbytes))
        self._bytes += nbytes
        if nbytes > self.max_bytes:  # a county day's curves: written before anything else is read beside them
            self.wait()

    def _oldest_done(self) -> None:
        done, nbytes = self._jobs.popleft()
        self._bytes -= nbytes
        done.result()

    def _run(self, job: Callable[[], object]) -> None:
        if self._stop.is_set():  # an earlier job failed, or the caller gave up
            return
        try:
            job()
        except BaseException:
            self._stop.set()
            raise

    def _beside_failed(self) -> None:
        """Raise the failure of the job written beside, once it is done; forget it when it succeeded."""
        if self._beside is not None and self._beside.done():
            self.wait_beside()

    def writing_beside(self) -> bool:
        """Whether a job written beside (see the class) is still running."""
        return self._beside is not None and not self._beside.done()

    def wait_beside(self) -> None:
        """Return once the job written beside (see the class), if any, is done."""
        if self._beside is not None:
            done, self._beside = self._beside, None
            done.result()

    def wait_others(self) -> None:
        """Return once every job submitted but the one written beside is done (see the class)."""
        while self._jobs:
            self._oldest_done()
        self._beside_failed()

    def wait(self) -> None:
        """Return once every job submitted is done; raise the first that failed."""
        self.wait_others()
        self.wait_beside()

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is not None:
            self._stop.set()
        try:
            if kind is None:
                self.wait()
        finally:
            self._pool.shutdown(wait=True)


def write_now_or_behind(
    writes: WriteBehind | None,
    job: Callable[[], object],
    frames: Iterable[pl.DataFrame | None] = (),
    beside: bool = False,
) -> None:
    """Run ``job`` now (``writes`` None) or hand it to ``writes``; ``frames``: those it holds;
    ``beside``: see :class:`WriteBehind`."""
    if writes is None:
        job()
    else:
        writes.submit(job, sum(int(f.estimated_size()) for f in frames if f is not None), beside)


#: what ``os.link`` raises where a filesystem has no hard links (or not across these folders)
_NO_LINKS = frozenset({errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS})

#: free space below which a failed write is taken for a full disk
NEARLY_FULL_BYTES = 1 << 20


def _nearly_full(path: Path) -> bool:
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < NEARLY_FULL_BYTES


def _partition_rows(
    table: Table, frame: pl.DataFrame, key: str | None, sort_by: Iterable[str] | None = None
) -> pl.DataFrame:
    """A partition's file rows: ``frame`` conformed to the contract, without the partition
    column (it is the directory name), sorted by the table key (or ``sort_by``) so that files
    are byte-identical across reruns and Parquet statistics prune on meter_id.

    A frame already in the contract's columns and types (most are: the stages build them
    so) is not run through a query again (~1-2 ms a partition: a small day's run writes
    some 300)."""
    order = list(sort_by) if sort_by is not None else [k for k in table.key if k != key]
    if frame.schema == table.schema:
        return sort_if_needed(frame if key is None else frame.drop(key), order)
    out = table.conform(frame)
    if key is not None:
        out = out.drop(key)
    return sort_if_needed(out.collect(), order)


def _parquet_writer(
    frame: pl.DataFrame,
    level: int | None,
    row_group_size: int,
    compression: Literal["zstd", "lz4"],
    metadata: Mapping[str, str] | None = None,
) -> Callable[[Path], object]:
    """What writes ``frame`` to a path as :meth:`Lake.write_file` encodes it (not atomically)."""
    if not frame.height and metadata is None:
        data = _empty_parquet(frame.schema, compression, level, row_group_size)
        return lambda tmp: tmp.write_bytes(data)
    if (
        metadata is None
        and compression == "zstd"  # pyarrow's lz4 is Parquet's older, Hadoop-framed codec, not polars' LZ4_RAW
        and frame.height >= DICTIONARY_ROWS
        and sum(dtype == pl.Float64 for dtype in frame.schema.dtypes()) >= DICTIONARY_FLOATS
    ):
        dict_level = DICTIONARY_LEVEL if level is None else level
        return lambda tmp: _write_dictionary_floats(tmp, frame, compression, dict_level, row_group_size)
    return lambda tmp: frame.write_parquet(
        tmp,
        compression=compression,
        compression_level=level,
        statistics=True,
        row_group_size=row_group_size,
        metadata=None if metadata is None else dict(metadata),
    )


#: days of kept working state kept beyond those the newest date reads (:meth:`Lake.prune_dated_state`):
#: a late file or a rerun within the last month finds its days' state still there
STATE_MARGIN_DAYS: Final = 31


def _state_day(path: Path) -> dt.date | None:
    """The day of a kept state's entry ``date=YYYY-MM-DD[.suffix]``, or None for another name."""
    try:
        return dt.date.fromisoformat(path.name.removeprefix("date=")[:10])
    except ValueError:
        return None


#: what :func:`file_identity` gives for a file that is not there (a missing file's stamp)
NO_FILE: Final = (-1, -1, -1)


def file_identity(path: Path | str) -> tuple[int, int, int]:
    """A lake file's identity: inode, size and modification time (:data:`NO_FILE` where it
    is missing). A lake file is never written in place (a new version is a new file renamed
    over the old), so the same identity is the same content: what is computed from a file
    can be kept under its identity and reused until it changes."""
    try:
        st = os.stat(path)
    except OSError:
        return NO_FILE
    return st.st_ino, st.st_size, st.st_mtime_ns


def identity_stamp(path: Path | str) -> str:
    """:func:`file_identity` as one string, the form a kept working file's footer records
    it in (:func:`kept_stamps`)."""
    return " ".join(str(v) for v in file_identity(path))


def kept_stamps(path: Path | str, keys: Iterable[str]) -> dict[str, str] | None:
    """The ``keys`` a kept working file's Parquet footer records (:meth:`Lake.write_file`'s
    ``metadata``), None where the file is missing or unreadable.

    Kept working state says in its own footer what it was made from (the identities of the
    lake files it was computed from, :func:`identity_stamp`, the settings, a format
    version): the file and its stamps are written in one rename, so they cannot disagree
    after a killed run, and a reader compares them with what it would make the file from
    now. A key the footer lacks is left out, so a file of an older format never compares
    equal."""
    try:
        meta = pl.read_parquet_metadata(path)
    except (OSError, pl.exceptions.PolarsError):
        return None
    return {k: meta[k] for k in keys if k in meta}


#: the Parquet schemas of lake files read so far, by path and the file's identity
#: (:func:`file_identity`): a file of the same identity has the same schema
_SCHEMAS: dict[tuple[str, int, int, int], tuple[tuple[str, pl.DataType], ...]] = {}
_SCHEMAS_MAX = 50_000


def _file_schema(path: Path) -> tuple[tuple[str, pl.DataType], ...] | None:
    """The schema of the Parquet file ``path`` (cached by its identity); None where unreadable."""
    try:
        ident = (str(path), *file_identity(path))
        schema = _SCHEMAS.get(ident)
        if schema is None:
            schema = tuple(pl.read_parquet_schema(path).items())
            if len(_SCHEMAS) >= _SCHEMAS_MAX:
                _SCHEMAS.clear()
            _SCHEMAS[ident] = schema
    except Exception:  # an unreadable file: the scan of each file meets it
        return None
    return schema


def scan_alike(
    held: Sequence[tuple[object, Path]], key: str, dtype: pl.DataType, columns: Iterable[str] | None = None
) -> pl.LazyFrame | None:
    """Partition files of one schema (without ``key``) as one multi-file scan, ``key`` typed
    from each file's partition value: the rows, order and types of the scans of each file
    concatenated, at one query plan instead of one a file (a small run scans tables of 59
    daily files, ~5x less CPU). ``columns``: only those of them the files hold (in that
    order), then ``key``. None where the files' schemas differ (or one cannot be read):
    the caller concatenates them relaxed, one scan a file."""
    paths = [str(path) for _, path in held]
    if len(paths) < 2 or len(set(paths)) < len(paths) or any(c in p for p in paths for c in "*?["):
        return None  # one file, a file twice, or a name a scan would take for a pattern
    first = _file_schema(held[0][1])
    if first is None or any(name in (key, _PATH_COL) for name, _ in first):
        return None
    if any(_file_schema(path) != first for _, path in held[1:]):
        return None
    try:
        values = pl.Series([_typed_value(v, dtype) for v, _ in held]).cast(dtype)
    except Exception:  # values of mixed kinds: typed a file at a time
        return None
    picked = None
    if columns is not None:
        present = {name for name, _ in first}
        picked = [c for c in columns if c in present and c != key]
        if not picked:  # no column of the files: each file's scan reads no rows
            return None
    scan = pl.scan_parquet(paths, include_file_paths=_PATH_COL)
    if picked is not None:
        scan = scan.select(*picked, _PATH_COL)
    typed = pl.col(_PATH_COL).replace_strict(paths, values, return_dtype=dtype).alias(key)
    return scan.with_columns(typed).drop(_PATH_COL)


#: the column a multi-file scan names each row's file in (dropped at once)
_PATH_COL = "__meterlake_path"


def _typed_value(value: object, dtype: pl.DataType) -> object:
    """A partition value as the Python value of its column's type (a date's from its text)."""
    if dtype == pl.Date and isinstance(value, str):
        return dt.date.fromisoformat(value)
    return value


def _typed_literal(value: object, dtype: pl.DataType) -> pl.Expr:
    """The partition value of a path, typed like the column it stands for."""
    return pl.lit(_typed_value(value, dtype)).cast(dtype)
