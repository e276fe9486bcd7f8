"""Ingest: landing files -> clean tables, quarantine and the row accounting.

Two steps, both idempotent:

1. **Stage** every landing file not seen before (by content hash): parse it once into
   ``_meta/staged/<dataset>/<file_id>.parquet`` and its quarantine rows into the
   quarantine mart (``dataset=<d>/file-<file_id>.parquet``). A file whose content was
   already ingested under another name is a resent file: its rows count as duplicates.
   The manifest ``_meta/manifest.parquet`` records each file, its hash, delivery time,
   dates and counts.
2. **Rebuild** each date partition that new files touched (and every requested date)
   from all staged files holding that date: identical repeats are counted and dropped,
   disagreeing repeats go to quarantine (the later delivery wins), rows of meters not
   in the valid archive go to quarantine, and the clean partition is swapped in
   atomically. A ledger per partition records where each source file's rows went.

A run does both a dataset at a time (the archive first): its new files are staged, then
its partitions rebuilt. The rows of a new file of one day stay in memory until its day
is rebuilt, which writes its staged copy; when the file alone makes the partition, the
staged copy is the partition's file under a second name (a hard link) and the file's rows
the partition leaves out are written beside it (:func:`link_staged`), so a county day's
curves are compressed and written once, not twice, and never read back.

Files are written on threads of their own (:class:`~meterlake.lake.WriteBehind`, a few jobs
at once) while the next file is parsed or the next partition rebuilt: a partition, its
quarantine rows, its ledger and the staged copies of its day in one job, in the order they
were written before; no job writes another's files.
Everything a step reads (staged copies, the archive, the registers partitions present) is
written before that step starts, the staged copies and quarantine rows of the files a plan
names before the plan, and every file before the manifest records the files as seen.

The run's accounting (rows read = clean + quarantined + duplicate, per dataset and
file) is computed from the manifest and the ledgers, so it holds across runs.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import hashlib
import hmac
import io
import json
import os
import secrets
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast
from zoneinfo import ZoneInfo

import polars as pl
from pydantic import BaseModel
from pydantic import Field as PydField

from ..lake import STAGED_LEVEL, WRITE_THREADS, Lake, WriteBehind, write_now_or_behind
from ..landing import (
    Candidate,
    DigestingReader,
    Refused,
    file_digest,
    open_landing_file,
    read_landing_file,
    scan_dataset,
    unchanged,
)
from ..manifest import LEDGER_SCHEMA, MANIFEST_SCHEMA, accounting, read_entries, read_manifest, write_manifest
from ..schemas import LANDINGS, QUARANTINE, Landing
from ..shards import DEFAULT_ORG, SHARD_KEY, check_org, is_shard, shard_root, shards
from ..shards import MARKER as SHARD_MARKER
from ..transforms import dedup
from ..transforms.ingest import (
    QUARANTINE_SCHEMA,
    DateWindow,
    Parsed,
    ParseStats,
    empty_rows,
    mask_digit_runs,
    parse_landing_file,
)
from ..transforms.payments import check_payments, reversal_verdicts
from . import StageContext, StageError, StageResult, log

TZ = ZoneInfo("Asia/Shanghai")
#: a Rust panic inside polars: a BaseException, not an Exception
_PANIC = pl.exceptions.PanicException
CONFIG_NAME = "ingest"


# --- landing IO --------------------------------------------------------------------


class IngestConfig(BaseModel):
    """What landing rows are accepted at all (``config/ingest.toml``)."""

    class Dates(BaseModel):
        earliest: dt.date = PydField(description="first date a landing row may carry")
        latest: dt.date = PydField(description="last date a landing row may carry")

    dates: Dates = PydField(description="window of dates and timestamps; outside it a row is out_of_range")

    @property
    def window(self) -> DateWindow:
        return DateWindow(self.dates.earliest, self.dates.latest)


def delivered_at(mtime_ns: int) -> dt.datetime:
    """A file's modification time as naive local (Asia/Shanghai) time."""
    return dt.datetime.fromtimestamp(mtime_ns / 1e9, TZ).replace(
        tzinfo=None, microsecond=(mtime_ns // 1000) % 1_000_000
    )


def pii_key(ctx: StageContext) -> str:
    """The key for card-number tokens: from the environment, else a per-lake secret file.

    The file is created whole or not at all, readable by its owner only: the key is
    written to a private temporary file (``O_CREAT | O_EXCL``, mode 0600) and linked into
    place, which fails if another process got there first (then its key is used).
    """
    if ctx.settings.pii_key:
        return ctx.settings.pii_key
    path = ctx.lake.meta / "pii.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".pii.key.{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):  # another process created it first
                os.link(tmp, path)  # an atomic rename that never replaces an existing key
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_text(encoding="utf-8").strip()


def card_token(card_no: str, key: str) -> str:
    """HMAC-SHA256 of a card number under the key (RFC 2104), first 32 hex digits."""
    return hmac.new(key.encode(), card_no.encode(), hashlib.sha256).hexdigest()[:32]


def tokenise_cards(rows: pl.DataFrame, key: str) -> pl.DataFrame:
    """Replace card_no by its last 4 digits and its HMAC-SHA256 token.

    Each distinct card is hashed once (a day's purchases hold far fewer cards than rows).
    """
    card = pl.col("card_no")
    present = card.is_not_null() & (card != "")
    cards = rows.filter(present)["card_no"].unique()
    tokens = pl.Series([card_token(c, key) for c in cards], dtype=pl.String)
    return rows.with_columns(
        pl.when(present).then(card.str.slice(-4)).alias("card_last4"),
        pl.when(present).then(card.replace_strict(cards, tokens, default=None)).alias("card_token"),
    ).drop("card_no")


# --- the manifest ------------------------------------------------------------------


# The plan of work: landing files staged but not yet committed to the manifest. A file
# counts as seen only once the partitions, quarantine and ledgers derived from it are
# written; until then it is in the plan, and a run killed midway replays the plan: its
# files' dates are rebuilt again (their parse is reused, not redone).
def plan_path(lake: Lake) -> Path:
    return lake.meta / "ingest_plan.parquet"


def read_plan(lake: Lake, manifest: pl.DataFrame) -> pl.DataFrame:
    """Entries staged by an earlier run that did not commit (and whose staged output survives)."""
    plan = read_entries(plan_path(lake))
    if not plan.height:
        return plan
    committed = manifest.select("source_file", "size_bytes", "mtime_ns")
    plan = plan.join(committed, on=["source_file", "size_bytes", "mtime_ns"], how="anti", nulls_equal=True)
    staged_ok = [
        e["status"] != "ingested" or staged_path(lake, e["dataset"], e["file_id"]).exists()
        for e in plan.select("status", "dataset", "file_id").iter_rows(named=True)
    ]
    return plan.filter(pl.Series(staged_ok, dtype=pl.Boolean))


def commit(ctx: StageContext, manifest: pl.DataFrame, plan: pl.DataFrame, downstream: set[dt.date]) -> pl.DataFrame:
    """Record the planned files as seen: pending dates first, then the manifest, then drop the plan.

    Each step is one atomic file write, and each order of kill leaves a state the next
    run completes: the pending dates are a superset of what later stages must rebuild.
    """
    lake = ctx.lake
    lake.add_pending_dates(downstream)
    if plan.height:
        manifest = pl.concat([manifest, plan.with_columns(pl.lit(ctx.run_id).alias("run_id"))])
        write_manifest(lake, manifest)
    plan_path(lake).unlink(missing_ok=True)
    return manifest


# --- step 1: stage new files ---------------------------------------------------------


def stage_parsed(
    ctx: StageContext,
    spec: Landing,
    file_id: str,
    parsed: Parsed,
    when: dt.datetime,
    write: bool = True,
    writes: WriteBehind | None = None,
) -> pl.DataFrame:
    """Write a parsed file's quarantine rows to the quarantine mart and (``write``) its rows to
    its staged copy (now, or by ``writes``); return the rows as staged."""
    lake = ctx.lake
    rows = parsed.rows.with_columns(pl.lit(when, pl.Datetime("us")).alias("delivered_at"))
    if "card_no" in rows.columns:
        rows = tokenise_cards(rows, pii_key(ctx))
    qpath = quarantine_path(lake, spec.dataset, f"file-{file_id[:16]}")
    quarantined = parsed.quarantine.select(QUARANTINE.names[1:]) if parsed.quarantine.height else None

    def write_files() -> None:
        if write:
            write_staged(lake, spec.dataset, file_id, rows)
        if quarantined is not None:
            lake.write_file(qpath, quarantined)

    if write or quarantined is not None:
        write_now_or_behind(writes, write_files, (rows if write else None, quarantined))
    return rows


def staged_path(lake: Lake, dataset: str, file_id: str) -> Path:
    return lake.meta / "staged" / dataset / f"{file_id}.parquet"


def rest_path(lake: Lake, dataset: str, file_id: str) -> Path:
    """The rows of a linked staged copy that its partition does not hold (see :func:`link_staged`)."""
    return lake.meta / "staged" / dataset / "rest" / f"{file_id}.parquet"


def write_staged(lake: Lake, dataset: str, file_id: str, rows: pl.DataFrame) -> None:
    lake.write_file(staged_path(lake, dataset, file_id), rows, level=STAGED_LEVEL)


def read_staged(lake: Lake, spec: Landing, file_id: str, day: dt.date) -> pl.LazyFrame:
    """The staged rows of one file on ``day``, in the order they were staged.

    A linked staged copy (:func:`link_staged`, told by its lack of the date column) holds
    one day, ``day``: the clean rows as its partition was written, and the rest of its
    rows beside it; put together and in the staged order again (by the clean table's key,
    then line), they are the rows as staged.
    """
    path = staged_path(lake, spec.dataset, file_id)
    date = spec.date_field
    if date in pl.read_parquet_schema(path):
        return pl.scan_parquet(path).filter(pl.col(date) == day)
    rest = rest_path(lake, spec.dataset, file_id)
    names = list(pl.read_parquet_schema(rest))
    main = pl.scan_parquet(path).with_columns(pl.lit(day, pl.Date()).alias(date)).select(names)
    if not pl.scan_parquet(rest).select(pl.len()).collect().item():
        return main
    return pl.concat([main, pl.scan_parquet(rest)], how="vertical_relaxed").sort(
        [*spec.clean.key, "source_line"], nulls_last=True, maintain_order=True
    )


def link_staged(
    ctx: StageContext, spec: Landing, file_id: str, staged: pl.DataFrame, clean: pl.DataFrame, partition: Path
) -> bool:
    """Stage a one-day file that alone makes its partition as a second name of that partition.

    ``staged``: the file's rows as staged (all of ``partition``'s day); ``clean``: those
    rows the partition holds, as they came (a subset, in order, unchanged). The staged copy
    is then the partition's file, hard-linked (it lacks the date column, which tells it),
    and the rows the partition left out (unknown meters, repeats) are written beside it
    first: no second compressed copy of a county day's curves. False, with nothing
    written, where the rows do not fit or the filesystem has no hard links.
    """
    lake = ctx.lake
    date = spec.date_field
    want = {c: dtype for c, dtype in spec.clean.schema.items() if c != date}
    have = {c: dtype for c, dtype in staged.schema.items() if c != date}
    if spec.clean.partition_by != date or want != have or staged.schema.get(date) != pl.Date():
        return False
    if clean.height == staged.height:
        rest = staged.clear()
    else:
        rest = staged.filter(~pl.col("source_line").is_in(clean["source_line"].implode()))
        if clean.height + rest.height != staged.height:
            return False
    rpath = rest_path(lake, spec.dataset, file_id)
    lake.write_file(rpath, rest)
    if lake.link_file(partition, staged_path(lake, spec.dataset, file_id)):
        return True
    rpath.unlink(missing_ok=True)
    return False


def parse_guarded(fh: BinaryIO, spec: Landing, rel: str, window: DateWindow, ordered: bool = False) -> Parsed:
    """Parse an open file; should the parser itself fail, quarantine the whole file instead of crashing.

    The parser is fuzzed never to raise; this is the last line of defence (a bug found
    in production costs one file, not the run). A polars panic is a BaseException.
    ``ordered``: the rows come ordered by the clean table's key, as its partitions are
    written (the rebuild of a day one file delivers then copies nothing to sort it).
    """
    try:
        if ordered:
            return parse_landing_file(fh, spec, rel, window, order_by=spec.clean.key)
        return parse_landing_file(fh, spec, rel, window)
    except (Exception, _PANIC) as exc:  # any parser failure becomes a quarantine row
        log.debug("parser failed on %s", rel, exc_info=True)
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        detail = mask_digit_runs(f"the parser failed on this file ({type(exc).__name__}: {first})")
        q = pl.DataFrame(
            {"source_file": [rel], "line": [None], "reason": ["unreadable"], "detail": [detail], "raw": [""]},
            schema=QUARANTINE_SCHEMA,
        )
        return Parsed(empty_rows(spec), q, ParseStats(file_problems=[f"unreadable: {detail}"]))


def quarantine_path(lake: Lake, dataset: str, origin: str) -> Path:
    return lake.table_dir(QUARANTINE) / f"dataset={dataset}" / f"{origin}.parquet"


@dataclass
class Staging:
    """One run's staging so far: the plan, the dates touched, what is known of the files seen,
    and the new files still to stage."""

    plan: pl.DataFrame
    touched: dict[str, set[dt.date]]
    notes: list[str]
    refused: list[Refused]
    pending: list[tuple[Landing, Candidate]]
    ids: dict[str, str]  # file_id -> source_file of every ingested file
    rows_of: dict[str, int]  # file_id -> rows read (a resent file reads as many rows as its twin)
    done: int = 0
    #: sizes of the files ingested: a file of another size cannot hold the same bytes
    sizes: set[int] = field(default_factory=set)
    #: the notes on each pending file staged, by its place in ``pending`` (datasets are
    #: staged in another order than they are found: :data:`STAGE_ORDER`)
    file_notes: dict[int, list[str]] = field(default_factory=dict)
    #: bytes of the files read while a partition is written beside (see STAGE_ORDER)
    read_beside: int = 0

    def all_notes(self) -> list[str]:
        """The notes of the staging, the files' in the order the files were found."""
        return self.notes + [n for i in sorted(self.file_notes) for n in self.file_notes[i]]


def stage_new_files(
    ctx: StageContext, manifest: pl.DataFrame, window: DateWindow
) -> tuple[pl.DataFrame, dict[str, set[dt.date]], list[str], list[Refused]]:
    """Stage every landing file neither in the manifest nor in the plan.

    Returns the plan (entries replayed from a killed run, then the new ones), the dates
    touched per dataset, notes, and the entries refused or skipped."""
    st = begin_staging(ctx, manifest)
    stage_dataset(ctx, st, None, window)
    return st.plan, st.touched, st.all_notes(), st.refused


def begin_staging(ctx: StageContext, manifest: pl.DataFrame) -> Staging:
    """The plan replayed from a killed run, and the landing files neither in it nor in the manifest."""
    lake = ctx.lake
    plan = read_plan(lake, manifest)
    if plan.height:
        notes = [f"replaying {plan.height} landing file(s) staged by a run that did not finish"]
    else:
        notes = []
    seen = pl.concat([manifest, plan])
    known = {
        (r["source_file"], r["size_bytes"], r["mtime_ns"])
        for r in seen.select("source_file", "size_bytes", "mtime_ns").iter_rows(named=True)
    }
    ingested = seen.filter(pl.col("status") == "ingested")
    ids = dict(zip(ingested["file_id"], ingested["source_file"], strict=True))
    rows_of = dict(zip(ingested["file_id"], ingested["rows_read"], strict=True))
    touched: dict[str, set[dt.date]] = {d: set() for d in LANDINGS}
    for e in plan.filter(pl.col("status") == "ingested").iter_rows(named=True):
        touched[e["dataset"]].update(e["dates"])
    if is_shard(lake.root):  # a unit of a sharded lake: its files come from the split's inbox
        plan, touched = take_inbox(ctx, plan, seen, touched)
        return Staging(plan, touched, notes, [], [], ids, rows_of, sizes=set(ingested["size_bytes"].to_list()))
    refused: list[Refused] = []
    pending = []
    for spec in LANDINGS.values():
        found, skipped = scan_dataset(ctx.landing, spec.dataset)
        refused += skipped
        pending += [(spec, c) for c in found if (c.rel, c.size, c.mtime_ns) not in known]
    for r in refused:
        notes.append(f"{r.rel}: {r.status}, {r.reason}")
    return Staging(plan, touched, notes, refused, pending, ids, rows_of, sizes=set(ingested["size_bytes"].to_list()))


def stage_dataset(
    ctx: StageContext,
    st: Staging,
    dataset: str | None,
    window: DateWindow,
    held: dict[str, Held] | None = None,
    writes: WriteBehind | None = None,
) -> None:
    """Stage the pending files of ``dataset`` (None: of every dataset), adding them to the plan.

    ``held``: where to keep the rows of the new files of one day instead of writing their
    staged copies; the rebuild of that day writes them (or links them, see
    :func:`link_staged`) and reads them from memory. Until then such a file's plan entry
    has no staged copy: a run killed before replays it by parsing the file again. Past
    :data:`HELD_BYTES` a file is still held for its day's link, but its rows are written
    (its staged copy whole, read back by the rebuild) instead of kept in memory.
    ``writes``: where the staged copies and quarantine rows are written while the next
    file is read; they are all written before the plan names their files."""
    lake = ctx.lake
    refused = st.refused
    ids, rows_of = st.ids, st.rows_of
    entries: list[dict[str, Any]] = []
    for at, (spec, cand) in enumerate(st.pending):
        if dataset is not None and spec.dataset != dataset:
            continue
        st.done += 1
        rel = cand.rel
        notes = st.file_notes.setdefault(at, [])
        if writes is not None and writes.writing_beside():
            st.read_beside += cand.size
            if st.read_beside > BESIDE_READ_BYTES:
                writes.wait_beside()  # not read while a large partition is written beside (see STAGE_ORDER)
        else:
            st.read_beside = 0
        ctx.progress(f"ingest {rel} ({st.done}/{len(st.pending)} new files, {cand.size / 1e6:,.1f} MB)")
        try:
            entry, staged = _stage_candidate(ctx, spec, cand, window, ids, held, st.sizes, writes)
        except OSError as exc:
            refused.append(Refused(rel, "refused", str(exc)))
            notes.append(f"{rel}: refused, {exc}")
            continue
        file_id = entry["file_id"]
        if staged is None:
            lines = rows_of[file_id]
            entry |= {
                "status": "duplicate_file",
                "duplicate_of": ids[file_id],
                "rows_read": lines,
                "rows_staged": 0,
                "rows_quarantined": 0,
            }
            notes.append(f"{rel}: same content as {ids[file_id]}, its {lines:,} rows count as duplicates")
        else:
            s, dates = staged
            entry |= {
                "status": "ingested",
                "encoding": s.encoding,
                "rows_read": s.rows_read,
                "rows_staged": s.rows_parsed,
                "rows_quarantined": s.rows_quarantined,
                "dates": dates,
                "problems": s.file_problems,
            }
            st.touched[spec.dataset].update(dates)
            for problem in s.file_problems:
                notes.append(f"{rel}: {problem}")
            ids[file_id] = rel
            rows_of[file_id] = s.rows_read
            st.sizes.add(entry["size_bytes"])
        entries.append(entry)
    # the plan is written once for the files staged here: a run killed before parses them again
    # (their staged copies and quarantine rows come out the same), one killed after replays them
    if entries:
        if writes is not None:  # a planned file's staged copy is its parse (replayed, it is not parsed again)
            writes.wait_others()  # a partition written beside (curves) stages no file of this plan
        st.plan = pl.concat([st.plan, pl.DataFrame(entries, schema=MANIFEST_SCHEMA)])
        lake.write_file(plan_path(lake), st.plan)


#: a new file of one day held for the rebuild of that day: (dataset, its staged rows), the
#: rows None where they were written to its staged copy whole instead (:data:`HELD_BYTES`)
Held = tuple[str, pl.DataFrame | None]

#: the most the rows held in memory for their day's rebuild may take (estimated size): a
#: new file of one day whose rows would pass it has its staged copy written whole at once
#: and read back by the rebuild (which still links it to its partition). Without the bound a
#: backfill held every day's rows until the dataset's rebuilds began: a month of county
#: curves (31 files of ~0.4 GB) took the stage to 13 GB. A county day's file (~0.4 GB) is
#: held in memory as before
HELD_BYTES = 1 << 30


def held_bytes(held: dict[str, Held]) -> int:
    """The estimated size of the rows ``held`` keeps in memory."""
    return sum(int(rows.estimated_size()) for _, rows in held.values() if rows is not None)


def _rows_of(lake: Lake, spec: Landing, held: dict[str, Held], file_id: str, day: dt.date) -> pl.LazyFrame:
    """A file's staged rows on ``day``: from memory where held there, else from its staged copy."""
    rows = held[file_id][1] if file_id in held else None
    return rows.lazy() if rows is not None else read_staged(lake, spec, file_id, day)


def _stage_candidate(
    ctx: StageContext,
    spec: Landing,
    cand: Candidate,
    window: DateWindow,
    ids: dict[str, str],
    held: dict[str, Held] | None = None,
    sizes: set[int] | None = None,
    writes: WriteBehind | None = None,
) -> tuple[dict[str, Any], tuple[ParseStats, list[dt.date]] | None]:
    """Hash a landing file and, unless its content was ingested before (then None), stage it:
    its parse stats and the dates of its rows.

    The file is read from one open descriptor in blocks: a county file is never held whole.
    Where a file of its size was ingested (``sizes``; None: any size may be), it is hashed
    first and parsed only when its content is new; otherwise no ingested file can hold its
    bytes, and it is hashed as it is parsed (:class:`DigestingReader`), one pass. Written
    to meanwhile, it is refused (``OSError``). Its rows are let go here, before the next
    file is read, unless ``held`` keeps the rows of a file of one day for that day's
    rebuild (see :func:`stage_dataset`).
    """
    with open_landing_file(cand.path) as fh:
        before = os.fstat(fh.fileno())
        if sizes is None or before.st_size in sizes or cand.size in sizes:
            file_id = file_digest(fh)
            entry = _manifest_entry(file_id, spec.dataset, cand, ctx.run_id)
            if file_id in ids:
                return entry, None
            parsed = parse_guarded(fh, spec, cand.rel, window, ordered=True)
        else:
            with DigestingReader(fh, threaded=before.st_size > THREADED_DIGEST_BYTES) as reader:
                parsed = parse_guarded(cast(BinaryIO, reader), spec, cand.rel, window, ordered=True)
                file_id = reader.hexdigest()
            entry = _manifest_entry(file_id, spec.dataset, cand, ctx.run_id)
            if file_id in ids:  # not expected (its size is new): the parse is let go
                return entry, None
        unchanged(fh, before, cand.path)
    day = parsed.rows[spec.date_field]
    dates = sorted(set(day.unique().drop_nulls().to_list()))
    # payments are judged against every staged payment (payments_history): staged at once
    keep = held is not None and spec.dataset != "payments" and len(dates) == 1 and not day.null_count()
    # held rows past the bound are written now (the staged copy whole) and read back by the rebuild
    in_memory = keep and held is not None and held_bytes(held) + parsed.rows.estimated_size() <= HELD_BYTES
    rows = stage_parsed(ctx, spec, file_id, parsed, entry["delivered_at"], write=not in_memory, writes=writes)
    if held is not None and keep:
        held[file_id] = (spec.dataset, rows if in_memory else None)
    return entry, (parsed.stats, dates)


#: from this size a file is hashed on a second thread while it is parsed (a thread costs more
#: than hashing a small file)
THREADED_DIGEST_BYTES = 4 << 20


def take_inbox(
    ctx: StageContext, plan: pl.DataFrame, seen: pl.DataFrame, touched: dict[str, set[dt.date]]
) -> tuple[pl.DataFrame, dict[str, set[dt.date]]]:
    """Add the inbox entries not yet planned or committed to the plan (a unit of a sharded lake)."""
    lake = ctx.lake
    new = read_inbox(lake).join(
        seen.select("source_file", "size_bytes", "mtime_ns"),
        on=["source_file", "size_bytes", "mtime_ns"],
        how="anti",
        nulls_equal=True,
    )
    if not new.height:
        return plan, touched
    for e in new.filter(pl.col("status") == "ingested").iter_rows(named=True):
        touched[e["dataset"]].update(e["dates"])
    plan = pl.concat([plan, new.with_columns(pl.lit(ctx.run_id).alias("run_id"))])
    lake.write_file(plan_path(lake), plan)
    return plan, touched


# --- step 2: rebuild partitions -----------------------------------------------------


def rebuild_partition(
    ctx: StageContext,
    spec: Landing,
    day: dt.date,
    manifest: pl.DataFrame,
    archive: pl.LazyFrame,
    held: dict[str, Held] | None = None,
    by_day: dict[dt.date, list[str]] | None = None,
    meters_on: MetersOn | None = None,
    moved: pl.DataFrame | None = None,
    writes: WriteBehind | None = None,
    beside: bool = False,
) -> dict[str, int] | None:
    """Rebuild one date partition from every staged file holding the date.

    ``held``: rows of new one-day files not staged yet (see :func:`stage_new_files`): read
    from memory, and their staged copies written here, before the partition; a file that
    alone makes the partition is linked to it instead, after it (:func:`link_staged`).
    ``by_day``: :func:`files_by_day` of ``manifest`` for the dataset, when the caller has it;
    ``meters_on``: the meters of ``archive`` valid on a day, read once per snapshot.
    ``moved``: keys whose latest delivery lies in another date's partition
    (:func:`moved_keys`): their rows here are superseded.
    ``writes``: where the partition, its quarantine, its ledger and the staged copies are
    written (in that job, in the order they were written here) while the caller goes on;
    ``beside``: a job too large to wait behind may be written beside the caller's next
    work (:class:`~meterlake.lake.WriteBehind`), which reads none of its files.
    """
    lake = ctx.lake
    held = {} if held is None else held
    files = (by_day if by_day is not None else files_by_day(manifest, spec.dataset)).get(day, [])
    if not files:
        return None
    kept = held[files[0]][1] if len(files) == 1 and files[0] in held else None
    if kept is not None:
        staged = kept
    else:
        staged = pl.concat([_rows_of(lake, spec, held, f, day) for f in files], how="vertical_relaxed").collect()
    # a new file alone making the partition is linked to it; other new files are staged now
    # (those whose rows were not kept in memory are staged already)
    sole = files[0] if len(files) == 1 and files[0] in held and spec.dataset in LINKED else None
    sole_written = sole is not None and held[sole][1] is None
    to_stage: list[tuple[str, pl.DataFrame]] = []
    for f in [f for f in files if f in held and f != sole]:
        rows = held.pop(f)[1]
        if rows is not None:
            to_stage.append((f, rows))
    res = dedup.resolve(staged, list(spec.key))
    if moved is not None and moved.height:
        # a later delivery moved these keys to another date: every version here is superseded
        res = dedup.Resolved(
            res.clean.join(moved, on=list(spec.key), how="anti", maintain_order="left"),
            res.duplicates,
            pl.concat([res.superseded, res.clean.join(moved, on=list(spec.key), how="semi", maintain_order="left")]),
        )
    clean = res.clean
    unknown = clean.clear()
    if spec.dataset == "payments":  # keyed by customer, judged against earlier payments (transforms/payments.py)
        customers = (meters_on or MetersOn(archive)).customers(day)
        history = payments_history(lake, manifest)
        clean, unknown = check_payments(clean, history, customers, payments_verdicts(history))
        unknown = unknown.rename({"reason": "_reason", "detail": "_detail"})
    elif spec.split_known is not None:  # rows that name feeders/areas rather than meters
        valid = (meters_on or MetersOn(archive)).columns(day, spec.split_known_columns)
        clean, unknown = spec.split_known(clean, valid)
    elif spec.dataset != "archive":
        meters = (meters_on or MetersOn(archive)).on(day)
        clean, unknown = dedup.split_known_meters(clean, meters)
    if "_reason" not in unknown.columns:
        unknown = unknown.with_columns(
            pl.lit("unknown_meter").alias("_reason"),
            pl.format(
                "meter_id '{}' is not in the archive snapshot valid on {}", "meter_id", pl.lit(day.isoformat())
            ).alias("_detail"),
        )
    data_cols = [
        c for c in spec.clean.names if c not in ("source_file", "source_line", "delivered_at", spec.date_field)
    ]
    parts = []  # the rows quarantined here, each as a line rebuilt from its values (built only when there are any)
    if res.superseded.height:
        parts.append(
            res.superseded.select(
                "source_file",
                pl.col("source_line").alias("line"),
                pl.lit("superseded").alias("reason"),
                pl.lit(f"a later delivery of the same key ({', '.join(spec.key)}) disagrees; the later row wins").alias(
                    "detail"
                ),
                dedup.reserialise(data_cols).alias("raw"),
            )
        )
    if unknown.height:
        parts.append(
            unknown.select(
                "source_file",
                pl.col("source_line").alias("line"),
                pl.col("_reason").alias("reason"),
                pl.col("_detail").alias("detail"),
                dedup.reserialise(data_cols).alias("raw"),
            )
        )
    quarantined = pl.concat(parts, how="vertical").sort("source_file", "line") if parts else None
    if sole is not None:
        held.pop(sole)
    outcomes = {"clean": clean, "duplicate": res.duplicates, "superseded": res.superseded, "unknown_meter": unknown}

    def write_files() -> None:
        for f, rows in to_stage:
            write_staged(lake, spec.dataset, f, rows)
        partition = lake.write_partition(spec.clean, day, clean)
        if sole is not None and not link_staged(ctx, spec, sole, staged, clean, partition) and not sole_written:
            write_staged(lake, spec.dataset, sole, staged)
        qpath = quarantine_path(lake, spec.dataset, f"date-{day.isoformat()}")
        if quarantined is not None:
            lake.write_file(qpath, quarantined)
        else:
            qpath.unlink(missing_ok=True)
        ledger = ledger_of(outcomes)
        lake.write_file(lake.meta / "ledger" / spec.dataset / f"date={day.isoformat()}.parquet", ledger)

    write_now_or_behind(writes, write_files, (staged, clean, quarantined, *(rows for _, rows in to_stage)), beside)
    return {
        "clean": clean.height,
        "duplicate": res.duplicates.height,
        "superseded": res.superseded.height,
        "unknown_meter": unknown.height,
    }


#: datasets whose key holds no date (the partition is a date of the row): a later delivery may
#: move a key to another date, and the key's rows in other partitions are then superseded
MOVABLE = frozenset({"outage_plans"})


def moved_keys(
    lake: Lake, spec: Landing, by_day: dict[dt.date, list[str]], held: dict[str, Held]
) -> dict[dt.date, pl.DataFrame]:
    """Per partition date, the keys (of ``spec``) whose latest delivery, over every staged
    file, is in another date's partition. Read whole: only for the small :data:`MOVABLE`
    datasets."""
    key = list(spec.key)
    frames = [
        _rows_of(lake, spec, held, f, day).select(*key, *dedup.ORDER, pl.lit(day, pl.Date()).alias("_day"))
        for day, files in by_day.items()
        for f in files
    ]
    if not frames:
        return {}
    rows = pl.concat(frames, how="vertical_relaxed").collect()
    latest = rows.sort(dedup.ORDER).unique(key, keep="last").select(*key, pl.col("_day").alias("_latest"))
    stale = rows.join(latest, on=key).filter(pl.col("_day") != pl.col("_latest")).select("_day", *key).unique()
    return {d: part.drop("_day").sort(key) for (d,), part in stale.partition_by("_day", as_dict=True).items()}


def files_by_day(manifest: pl.DataFrame, dataset: str) -> dict[dt.date, list[str]]:
    """The ingested files of ``dataset`` holding each date, in manifest order (one pass, not a filter per day)."""
    rows = manifest.filter((pl.col("dataset") == dataset) & (pl.col("status") == "ingested"))
    out: dict[dt.date, list[str]] = {}
    for file_id, dates in zip(rows["file_id"].to_list(), rows["dates"].to_list(), strict=True):
        for day in dict.fromkeys(d for d in dates or () if d is not None):
            out.setdefault(day, []).append(file_id)
    return out


def ledger_of(outcomes: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Rows per source file in each outcome of a rebuild (LEDGER_SCHEMA, by source_file)."""
    counts: dict[str, dict[str, int]] = {}
    for outcome, frame in outcomes.items():
        if not frame.height:  # most outcomes of most partitions are empty
            continue
        # of the column alone: a frame's group_by makes a county day's parsed curves one chunk first (0.35 GB)
        for source_file, n in frame.get_column("source_file").value_counts().iter_rows():
            counts.setdefault(source_file, dict.fromkeys(LEDGER_SCHEMA.names()[1:], 0))[outcome] = n
    # by source_file as polars sorts it: a null first, then by UTF-8 bytes (code points)
    rows = [{"source_file": f, **c} for f, c in sorted(counts.items(), key=lambda fc: (fc[0] is not None, fc[0] or ""))]
    return pl.DataFrame(rows, schema=LEDGER_SCHEMA)


class MetersOn:
    """The meter_id (and the customers) of the archive rows valid on a day, read once per
    archive snapshot (a run of many days otherwise reads the archive for every partition
    it rebuilds)."""

    def __init__(self, archive: pl.LazyFrame) -> None:
        self.archive = archive
        self.snapshots: list[dt.date] | None = None
        self.read: dict[dt.date | None, pl.DataFrame] = {}
        self.customers_read: dict[dt.date | None, pl.DataFrame] = {}
        self.columns_read: dict[tuple[dt.date | None, tuple[str, ...]], pl.DataFrame] = {}

    def on(self, day: dt.date) -> pl.DataFrame:
        snapshot = self.snapshot(day)
        if snapshot not in self.read:
            # sorted, so that every dataset's rows are looked up in them by binary search
            # (:func:`~meterlake.transforms.dedup.split_known_meters`), not through a hash
            # table of the whole archive built for each
            valid = dedup.archive_valid_on(self.archive, day).select("meter_id")
            self.read[snapshot] = valid.sort("meter_id").collect()
        return self.read[snapshot]

    def columns(self, day: dt.date, names: tuple[str, ...]) -> pl.DataFrame:
        """The columns ``names`` (none: every column) of the archive rows valid on ``day``, read
        once per snapshot (a dataset keyed by feeder or area rebuilds a partition a day)."""
        key = (self.snapshot(day), names)
        if key not in self.columns_read:
            valid = dedup.archive_valid_on(self.archive, day)
            self.columns_read[key] = (valid.select(names) if names else valid).collect()
        return self.columns_read[key]

    def customers(self, day: dt.date) -> pl.DataFrame:
        """:func:`customers_on` the day, read once per snapshot (a payments partition each day)."""
        snapshot = self.snapshot(day)
        if snapshot not in self.customers_read:
            self.customers_read[snapshot] = customers_on(self.archive, day)
        return self.customers_read[snapshot]

    def snapshot(self, day: dt.date) -> dt.date | None:
        """The date of the archive snapshot valid on ``day`` (None: none is)."""
        if self.snapshots is None:  # the snapshot dates the rows carry (a partition may hold none)
            dates = self.archive.select(pl.col("snapshot_date").unique()).collect().to_series()
            self.snapshots = sorted(dates.drop_nulls().to_list())
        at = bisect.bisect_right(self.snapshots, day)
        return self.snapshots[at - 1] if at else None


#: datasets whose rebuild keeps a subset of the staged rows as they came (by key and meter):
#: a new file alone making a partition of one is staged as a link to it (:func:`link_staged`)
LINKED = frozenset({"archive", "curves", "registers", "events", "purchases", "inspections"})


def payments_history(lake: Lake, manifest: pl.DataFrame) -> pl.DataFrame:
    """Every staged payments row, repeats resolved: what a reversal may refer to."""
    files = manifest.filter((pl.col("dataset") == "payments") & (pl.col("status") == "ingested"))["file_id"]
    key = (str(lake.root), *sorted(files.to_list()))
    if _HISTORY.get("key") != key:
        cols = [
            "txn_id",
            "txn_type",
            "ref_txn_id",
            "customer_id",
            "paid_at",
            "source_file",
            "source_line",
            "delivered_at",
        ]
        staged = [pl.scan_parquet(lake.meta / "staged" / "payments" / f"{f}.parquet").select(cols) for f in key[1:]]
        rows = pl.concat(staged).collect() if staged else pl.DataFrame()
        _HISTORY["key"] = key
        _HISTORY["rows"] = dedup.resolve(rows, ["txn_id"]).clean if rows.height else rows
    history = _HISTORY["rows"]
    assert isinstance(history, pl.DataFrame)
    return history


#: payments_history of the last manifest seen (a rebuild of many days reads the staged files once)
_HISTORY: dict[str, object] = {}


def payments_verdicts(history: pl.DataFrame) -> pl.DataFrame:
    """:func:`reversal_verdicts` of ``history``, found once for the history :func:`payments_history` holds."""
    if _HISTORY.get("verdicts_of") is not history:
        _HISTORY["verdicts"] = reversal_verdicts(history)
        _HISTORY["verdicts_of"] = history
    verdicts = _HISTORY["verdicts"]
    assert isinstance(verdicts, pl.DataFrame)
    return verdicts


def customers_on(archive: pl.LazyFrame, day: dt.date) -> pl.DataFrame:
    """customer_id, prepay (1 when all its meters are prepay) of the archive valid on ``day``."""
    return (
        dedup.archive_valid_on(archive, day)
        .filter(pl.col("customer_id").is_not_null())
        .group_by("customer_id")
        .agg(prepay=pl.col("prepay").min())
        .collect()
    )


def consumption_days(lake: Lake, dataset: str, day: dt.date, present: Collection[str] | None = None) -> list[dt.date]:
    """The days whose marts a rebuilt partition changes.

    A register frozen at 00:00 of F closes day F-1 (when the lake holds an earlier
    reading) and opens day F; day F can only be computed once the reading of F+1 is in
    the lake, so it is not passed on before. ``present``: the registers partitions the
    lake holds (:meth:`Lake.partitions`) when the caller keeps count of them.
    """
    if dataset != "registers":
        return [day]
    if present is None:
        present = lake.partitions(LANDINGS["registers"].clean)
    days = []
    if present and min(present) < day.isoformat():  # an earlier reading: day F-1 can be computed
        days.append(day - dt.timedelta(days=1))
    if (day + dt.timedelta(days=1)).isoformat() in present:
        days.append(day)
    return days


# --- the stage ---------------------------------------------------------------------


#: the order datasets are staged and rebuilt in: the archive first (the others are judged
#: by the meters it knows), the registers last. A dataset's last partition may be written
#: beside the next datasets' work (:func:`rebuild_dataset`), while the files read meanwhile
#: stay within :data:`BESIDE_READ_BYTES`: so a county day's small datasets are staged and
#: rebuilt, and its first registers file parsed, beside the curves' write (~1.2 s of
#: pyarrow's one-core write, which the stage otherwise waited for with the other core idle),
#: and the other registers files (the resent one, the gzip file decoded whole) after it
STAGE_ORDER = ("archive", "curves", "events", "purchases", "inspections", "outage_plans", "payments", "registers")
#: the most bytes of landing files read while a partition is written beside (a file that
#: would pass it waits for the write). The curves' frame (~0.4 GB) is held until its write
#: ends: a county day's small datasets (1.6 MB) and first registers file (34 MB, ~65 MB of
#: rows) beside it took ingest's peak from 0.67-0.77 to 0.86-0.88 GB; every registers file
#: beside it (measured in an earlier round) to 0.97-0.99 GB, at the 1 GB line
BESIDE_READ_BYTES = 48 << 20


def run(ctx: StageContext, dates: list[dt.date]) -> StageResult:
    """Stage and rebuild each dataset in turn (the archive first), then commit its files and account for their rows.

    Each dataset is staged and then rebuilt (in :data:`STAGE_ORDER`), so that the rows of a
    new file of one day are held in memory (not written and read back) while no other file
    is read.
    """
    check_landing(ctx)
    window = ctx.config(CONFIG_NAME, IngestConfig).window
    manifest = read_manifest(ctx.lake)
    # files are written while the next is read or rebuilt (each job its own files: several at once)
    with WriteBehind(threads=WRITE_THREADS) as writes:
        st = begin_staging(ctx, manifest)
        rb = Rebuilds(ctx, set(dates), writes)
        for ds in STAGE_ORDER:
            spec = LANDINGS[ds]
            stage_dataset(ctx, st, ds, window, rb.kept, writes)
            seen = pl.concat([manifest, st.plan]).rechunk()  # filtered once per partition rebuilt
            widen_touched(st.touched, ds, seen, manifest)
            rebuild_dataset(rb, spec, st, seen)
    stage_left_over(ctx.lake, rb.kept)
    rebuilt = rb.rebuilt_for_this_run()
    # everything derived from the planned files is written: they count as seen now
    pending = ctx.lake.read_pending_dates()
    manifest = commit(ctx, manifest, st.plan, rebuilt - rb.requested)
    clear_inbox(ctx.lake, manifest)
    # days an earlier, unfinished run left for the later stages are rebuilt by this one
    return report(ctx, rb, st, manifest, sorted((rebuilt | pending) - rb.requested))


def check_landing(ctx: StageContext) -> None:
    if not ctx.landing.is_dir() and not is_shard(ctx.lake.root):
        raise StageError(f"landing folder {ctx.landing} does not exist")


@dataclass
class Rebuilds:
    """One run's partition rebuilds so far: the rows held for them, the archive they judge
    meters by, the days rebuilt and the rows per outcome."""

    ctx: StageContext
    requested: set[dt.date]
    #: where the partitions are written while the next is rebuilt (None: each at once)
    writes: WriteBehind | None = None
    kept: dict[str, Held] = field(default_factory=dict)
    rebuilt: set[dt.date] = field(default_factory=set)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    clean_rows: dict[str, int] = field(default_factory=dict)
    archive: pl.LazyFrame = field(init=False)
    meters_on: MetersOn = field(init=False)

    def __post_init__(self) -> None:
        self.read_archive()

    def read_archive(self) -> None:
        """The archive as the lake holds it now (again after an archive partition is rebuilt)."""
        self.wait()
        self.archive = self.ctx.lake.scan(LANDINGS["archive"].clean)
        self.meters_on = MetersOn(self.archive)

    def add(self, dataset: str, c: dict[str, int]) -> None:
        tot = self.counts.setdefault(
            dataset, {"partitions": 0, "clean": 0, "duplicate": 0, "superseded": 0, "unknown_meter": 0}
        )
        tot["partitions"] += 1
        for k, v in c.items():
            tot[k] += v
        self.clean_rows[dataset] = self.clean_rows.get(dataset, 0) + c["clean"]

    def wait(self, beside: bool = True) -> None:
        """Until every partition rebuilt so far is written (``beside`` False: but one written
        beside the next dataset's rebuild, see :func:`rebuild_dataset`)."""
        if self.writes is not None:
            if beside:
                self.writes.wait()
            else:
                self.writes.wait_others()

    def rebuilt_for_this_run(self) -> set[dt.date]:
        """The days rebuilt for the later stages, less those after the run's last date.

        Those are left to the runs that cover them: data delivered early (next month's
        payments, say) must not make the daily stages build days that have no readings."""
        if not self.requested:
            return set(self.rebuilt)
        last = max(self.requested)
        return {d for d in self.rebuilt if d <= last}


def widen_touched(touched: dict[str, set[dt.date]], ds: str, seen: pl.DataFrame, manifest: pl.DataFrame) -> None:
    """Add to ``ds``'s touched dates the days that new archive or payments files change.

    A new archive snapshot changes which meters are known from its date on; a reversal is
    judged against every payment before it, so a payments day rebuilds the later ones."""
    if ds != "archive" and touched["archive"]:
        first = min(touched["archive"])
        held = seen.filter((pl.col("dataset") == ds) & (pl.col("status") == "ingested"))["dates"].explode().drop_nulls()
        touched[ds].update(d for d in held.to_list() if d >= first)
    if ds == "payments" and touched["payments"]:
        first = min(touched["payments"])
        held = manifest.filter((pl.col("dataset") == "payments") & (pl.col("status") == "ingested"))["dates"]
        touched["payments"].update(d for d in held.explode().drop_nulls().to_list() if d >= first)


def rebuild_dataset(rb: Rebuilds, spec: Landing, st: Staging, seen: pl.DataFrame) -> None:
    """Rebuild the partitions of ``spec``'s dataset on the days touched and requested (those
    holding no staged rows are skipped).

    Each partition is written while the next is rebuilt: what a rebuild reads (staged
    copies, the archive) is written before it starts; the registers partitions present
    are counted here, not listed after each write. The last partition of a dataset other
    than the archive (which the later rebuilds read) may be written beside the next
    datasets' staging and rebuilds (a county day's curves: see :data:`STAGE_ORDER`)."""
    ctx, ds = rb.ctx, spec.dataset
    rb.wait(beside=False)
    by_day = files_by_day(seen, ds)
    moved = widen_by_moved_keys(ctx.lake, spec, by_day, rb.kept, st) if ds in MOVABLE else {}
    days = sorted(st.touched[ds] | rb.requested)
    present = set(ctx.lake.partitions(spec.clean)) if ds == "registers" else None
    for i, day in enumerate(days, 1):
        ctx.progress(f"rebuild {ds} {day} ({i}/{len(days)})")
        last = i == len(days) and ds != "archive"
        c = rebuild_partition(
            ctx, spec, day, seen, rb.archive, rb.kept, by_day, rb.meters_on, moved.get(day), rb.writes, last
        )
        if c is None:
            continue
        if ds == "archive":
            rb.read_archive()
        rb.add(ds, c)
        if present is not None:
            present.add(day.isoformat())
        rb.rebuilt.update(consumption_days(ctx.lake, ds, day, present))


def widen_by_moved_keys(
    lake: Lake, spec: Landing, by_day: dict[dt.date, list[str]], kept: dict[str, Held], st: Staging
) -> dict[dt.date, pl.DataFrame]:
    """:func:`moved_keys` of a :data:`MOVABLE` dataset; a partition whose key a new file moved
    elsewhere is added to the touched days (rebuilt without it)."""
    ds = spec.dataset
    moved = moved_keys(lake, spec, by_day, kept)
    new_files = set(st.plan.filter(pl.col("dataset") == ds)["file_id"].to_list())
    new_keys = pl.concat(
        [
            _rows_of(lake, spec, kept, f, d).select(*spec.key)
            for d, files in by_day.items()
            for f in files
            if f in new_files
        ]
        or [pl.LazyFrame(schema={k: pl.String() for k in spec.key})],
        how="vertical_relaxed",
    ).collect()
    st.touched[ds].update(d for d, keys in moved.items() if keys.join(new_keys, on=list(spec.key)).height)
    return moved


def stage_left_over(lake: Lake, kept: dict[str, Held]) -> None:
    """Every held file's day was rebuilt, which staged it; should one be left, it is staged now."""
    for file_id, (ds, rows) in kept.items():
        if rows is not None:  # None: staged whole already
            write_staged(lake, ds, file_id, rows)
    kept.clear()


def report(ctx: StageContext, rb: Rebuilds, st: Staging, manifest: pl.DataFrame, dates: list[dt.date]) -> StageResult:
    """The stage's result: the rows accounted per dataset and per file of this run, the
    files not read, the partitions rebuilt; a note where the accounting does not close."""
    result = StageResult(stage="ingest")
    # by dataset in LANDINGS' order, whatever the order they were rebuilt in (STAGE_ORDER)
    result.rows = {f"clean.{ds}": rb.clean_rows[ds] for ds in LANDINGS if ds in rb.clean_rows}
    result.notes += st.all_notes()
    acc = accounting(ctx.lake, manifest)
    this_run = manifest.filter(pl.col("run_id") == ctx.run_id)["source_file"]
    run_acc = acc.filter(pl.col("source_file").is_in(this_run.implode()))
    by_dataset = (
        run_acc.group_by("dataset")
        .agg(pl.col("read", "clean", "quarantined", "duplicate", "unaccounted").sum())
        .sort("dataset")
    )
    result.dates = dates
    result.details = {
        "files_new": int(this_run.len()),
        "accounting": by_dataset.to_dicts(),
        "files": run_acc.to_dicts(),
        "files_not_read": [{"source_file": r.rel, "status": r.status, "reason": r.reason} for r in st.refused],
        "partitions": {ds: rb.counts[ds] for ds in LANDINGS if ds in rb.counts},
    }
    bad = run_acc.filter(pl.col("unaccounted") != 0)
    if bad.height:
        result.notes.append(
            f"row accounting does not close for {bad.height} file(s): " + ", ".join(bad["source_file"].head(5))
        )
    return result


# --- the split: landing files -> the org units' inboxes (a sharded lake) ---------------
#
# A sharded lake (meterlake/shards.py) holds one sub-lake per org unit. The split parses
# each new landing file once, gives every row its unit (archive rows by their org_id,
# other rows by the unit the archive puts their meter, customer or feeder in) and
# writes each unit's part into that unit's sub-lake: the staged rows, and one manifest
# entry in ``_meta/inbox/``. The unit's own ingest takes its entries from the inbox
# instead of the landing zone, so units never write each other's files. Lines that do
# not parse, and rows of meters no archive names, go to the file's main unit (the one
# holding most of its rows, else the default unit), whose rebuild quarantines them
# like any unknown meter; each file's rows read = the sum of its units' rows read.

SPLIT_SCHEMA = pl.Schema(
    {
        "file_id": pl.String(),
        "dataset": pl.String(),
        "source_file": pl.String(),
        "size_bytes": pl.Int64(),
        "mtime_ns": pl.Int64(),
        "status": pl.String(),
        "org_id": pl.String(),
        "rows_read": pl.Int64(),
        "run_id": pl.String(),
    }
)

#: which id of a landing row names its unit, by dataset: (kind in the unit map, column)
ORG_KEYS: dict[str, tuple[str, str]] = {
    "curves": ("meter", "meter_id"),
    "registers": ("meter", "meter_id"),
    "events": ("meter", "meter_id"),
    "purchases": ("meter", "meter_id"),
    "inspections": ("meter", "meter_id"),
    "payments": ("customer", "customer_id"),
    "outage_plans": ("feeder", "feeder_id"),
}
ORGS_SCHEMA = pl.Schema({"kind": pl.String(), "id": pl.String(), "org_id": pl.String(), "snapshot_date": pl.Date()})


def split_manifest_path(lake: Lake) -> Path:
    return lake.meta / "split" / "manifest.parquet"


def org_map_path(lake: Lake) -> Path:
    return lake.meta / "split" / "orgs.parquet"


def inbox(lake: Lake) -> Path:
    return lake.meta / "inbox"


def archive_orgs(archive: pl.DataFrame) -> pl.DataFrame:
    """The unit of every meter, customer and feeder an archive file names (ORGS_SCHEMA).

    An empty or absent org_id is the default unit (CONTRACT: one default unit).
    """
    org = pl.col("org_id") if "org_id" in archive.columns else pl.lit(None, pl.String)
    rows = archive.with_columns(
        pl.when(org.str.strip_chars() != "").then(org.str.strip_chars()).otherwise(pl.lit(DEFAULT_ORG)).alias("org_id")
    )
    return pl.concat(
        [
            rows.select(pl.lit(kind).alias("kind"), pl.col(col).alias("id"), "org_id", "snapshot_date").filter(
                pl.col("id").is_not_null()
            )
            for kind, col in (("meter", "meter_id"), ("customer", "customer_id"), ("feeder", "feeder_id"))
        ]
    ).unique(["kind", "id", "snapshot_date"], keep="last", maintain_order=True)


def merge_org_map(held: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    """The unit map after a new archive file: the latest snapshot naming an id wins."""
    return (
        pl.concat([held, new.select(ORGS_SCHEMA.names())])
        .sort("snapshot_date", maintain_order=True)
        .unique(["kind", "id"], keep="last", maintain_order=True)
        .sort("kind", "id")
    )


def row_orgs(rows: pl.DataFrame, dataset: str, orgs: pl.DataFrame) -> pl.Series:
    """The unit of each landing row (null when no archive names its meter, customer or feeder)."""
    if dataset == "archive":
        return archive_orgs_per_row(rows)
    if dataset not in ORG_KEYS:
        return pl.Series("org_id", [None] * rows.height, dtype=pl.String)
    kind, col = ORG_KEYS[dataset]
    known = orgs.filter(pl.col("kind") == kind)
    return rows.select(
        pl.col(col).replace_strict(known["id"], known["org_id"], default=None, return_dtype=pl.String).alias("org_id")
    ).to_series()


def archive_orgs_per_row(rows: pl.DataFrame) -> pl.Series:
    org = pl.col("org_id") if "org_id" in rows.columns else pl.lit(None, pl.String)
    return rows.select(
        pl.when(org.str.strip_chars() != "").then(org.str.strip_chars()).otherwise(pl.lit(DEFAULT_ORG)).alias("org_id")
    ).to_series()


def shard_lake(root: Lake, org: str) -> Lake:
    """The sub-lake of ``org``, created with its marker on first use."""
    sub = Lake(shard_root(root.root, org))
    marker = sub.meta / SHARD_MARKER
    if not marker.exists():
        sub.write_text(marker, json.dumps({SHARD_KEY: org}))
    return sub


def _inbox_name(rel: str, size: int, mtime_ns: int) -> str:
    """One inbox entry per landing file version (the same name when a killed split redoes it)."""
    return hashlib.sha256(f"{rel}\0{size}\0{mtime_ns}".encode()).hexdigest()[:24] + ".parquet"


def split_file(
    ctx: StageContext,
    spec: Landing,
    rel: str,
    file_id: str,
    raw: bytes,
    entry: dict[str, Any],
    window: DateWindow,
    orgs: pl.DataFrame,
) -> tuple[list[dict[str, Any]], pl.DataFrame]:
    """Parse one landing file and hand each unit its part; return the units' entries and the rows."""
    lake = ctx.lake
    parsed = parse_guarded(io.BytesIO(raw), spec, rel, window)
    rows = parsed.rows.with_columns(pl.lit(entry["delivered_at"], pl.Datetime("us")).alias("delivered_at"))
    if "card_no" in rows.columns:
        rows = tokenise_cards(rows, pii_key(ctx))
    org = row_orgs(rows, spec.dataset, orgs)
    valid = org.map_elements(_valid_org, return_dtype=pl.Boolean, skip_nulls=True).fill_null(False)
    org = pl.select(pl.when(valid).then(org)).to_series()
    sizes = org.drop_nulls().value_counts(name="n").sort(["n", "org_id"], descending=[True, False])
    main = sizes["org_id"][0] if sizes.height else home_unit(rel, shards(lake.root))
    rows = rows.with_columns(org.fill_null(main).alias("_org"))
    s = parsed.stats
    parts = rows.partition_by("_org", as_dict=True, include_key=False)
    entries = []
    for unit in sorted({main, *(k[0] for k in parts)}):
        part = parts.get((unit,), rows.clear().drop("_org"))
        sub = shard_lake(lake, unit)
        sub.write_file(sub.meta / "staged" / spec.dataset / f"{file_id}.parquet", part, level=STAGED_LEVEL)
        own = unit == main
        if own and parsed.quarantine.height:
            sub.write_file(
                quarantine_path(sub, spec.dataset, f"file-{file_id[:16]}"),
                parsed.quarantine.select(QUARANTINE.names[1:]),
            )
        others = rows.height - part.height
        e = entry | {
            "status": "ingested",
            "encoding": s.encoding,
            # the main unit's rows read also hold the lines that did not parse
            "rows_read": s.rows_read - others if own else part.height,
            "rows_staged": part.height,
            "rows_quarantined": s.rows_quarantined if own else 0,
            "dates": sorted(set(part[spec.date_field].unique().drop_nulls().to_list())),
            "problems": s.file_problems if own else [],
            "org_id": unit,
        }
        entries.append(e)
    return entries, rows


def home_unit(rel: str, units: list[str]) -> str:
    """The unit of a file none of whose rows names one (empty, or all unknown meters): a folder
    of its path named after a unit, else the first unit, else the default unit.

    >>> home_unit("curves/ORG02/curves_20260101.csv", ["ORG01", "ORG02"])
    'ORG02'
    >>> home_unit("curves/curves_20260101.csv", ["ORG01", "ORG02"]), home_unit("curves/x.csv", [])
    ('ORG01', 'default')
    """
    folders = rel.split("/")[:-1]
    for unit in units:
        if unit in folders:
            return unit
    return units[0] if units else DEFAULT_ORG


def _valid_org(org: str) -> bool:
    try:
        check_org(org)
    except ValueError:
        return False
    return True


def _post(sub: Lake, entry: dict[str, Any]) -> None:
    """Leave one manifest entry in a unit's inbox."""
    frame = pl.DataFrame([{k: v for k, v in entry.items() if k != "org_id"}], schema=MANIFEST_SCHEMA)
    sub.write_file(inbox(sub) / _inbox_name(entry["source_file"], entry["size_bytes"], entry["mtime_ns"]), frame)


def split_landing(ctx: StageContext) -> StageResult:
    """Split every new landing file by org unit into the units' sub-lakes (the caller holds the split lock).

    Archive files go first: they say which unit each meter, customer and feeder is in.
    """
    lake = ctx.lake
    if not ctx.landing.is_dir():
        raise StageError(f"landing folder {ctx.landing} does not exist")
    window = ctx.config(CONFIG_NAME, IngestConfig).window
    result = StageResult(stage="split")
    mpath, opath = split_manifest_path(lake), org_map_path(lake)
    manifest = pl.read_parquet(mpath) if mpath.exists() else pl.DataFrame(schema=SPLIT_SCHEMA)
    orgs = pl.read_parquet(opath) if opath.exists() else pl.DataFrame(schema=ORGS_SCHEMA)
    known = {
        (r["source_file"], r["size_bytes"], r["mtime_ns"])
        for r in manifest.select("source_file", "size_bytes", "mtime_ns").iter_rows(named=True)
    }
    ingested = manifest.filter(pl.col("status") == "ingested")
    twins: dict[str, list[tuple[str, str, int]]] = {}
    for r in ingested.iter_rows(named=True):
        twins.setdefault(r["file_id"], []).append((r["org_id"], r["source_file"], r["rows_read"]))
    pending = []
    for spec in LANDINGS.values():  # the archive first
        found, skipped = scan_dataset(ctx.landing, spec.dataset)
        result.notes += [f"{r.rel}: {r.status}, {r.reason}" for r in skipped]
        pending += [(spec, c) for c in found if (c.rel, c.size, c.mtime_ns) not in known]
    new_rows = 0
    for n, (spec, cand) in enumerate(pending, 1):
        rel = cand.rel
        ctx.progress(f"split {rel} ({n}/{len(pending)} new files, {cand.size / 1e6:,.1f} MB)")
        try:
            raw = read_landing_file(cand.path)
        except OSError as exc:
            result.notes.append(f"{rel}: refused, {exc}")
            continue
        file_id = hashlib.sha256(raw).hexdigest()
        entry = _manifest_entry(file_id, spec.dataset, cand, ctx.run_id)
        if file_id in twins:
            entries = []
            parts = twins[file_id]
            if not any(lines for _, _, lines in parts):  # an empty file: the same bytes in every unit
                parts = [(home_unit(rel, shards(lake.root)), parts[0][1], 0)]
            for unit, twin, lines in parts:
                entries.append(
                    entry
                    | {
                        "status": "duplicate_file",
                        "duplicate_of": twin,
                        "rows_read": lines,
                        "rows_staged": 0,
                        "rows_quarantined": 0,
                        "org_id": unit,
                    }
                )
            result.notes.append(f"{rel}: same content as {twins[file_id][0][1]}, its rows count as duplicates")
        else:
            entries, rows = split_file(ctx, spec, rel, file_id, raw, entry, window, orgs)
            twins[file_id] = [(e["org_id"], rel, e["rows_read"]) for e in entries]
            if spec.dataset == "archive":
                orgs = merge_org_map(orgs, archive_orgs(rows))
                lake.write_file(opath, orgs)
            result.notes += [f"{rel}: {problem}" for e in entries for problem in e["problems"]]
        for e in entries:
            _post(shard_lake(lake, e["org_id"]), e)
        # the file counts as split once every unit has its part
        manifest = pl.concat([manifest, pl.DataFrame(entries, schema=SPLIT_SCHEMA)])
        lake.write_file(mpath, manifest)
        new_rows += sum(e["rows_read"] for e in entries)
    result.rows["split.rows_read"] = new_rows
    result.details = {
        "files_new": len(pending),
        "units": shards(lake.root),
        "files_by_unit": (
            manifest.filter(pl.col("run_id") == ctx.run_id)
            .group_by("org_id")
            .agg(pl.len().alias("files"))
            .sort("org_id")
            .to_dicts()
        ),
    }
    return result


def read_inbox(lake: Lake) -> pl.DataFrame:
    """The manifest entries the split left for this unit."""
    files = sorted(inbox(lake).glob("*.parquet")) if inbox(lake).is_dir() else []
    if not files:
        return pl.DataFrame(schema=MANIFEST_SCHEMA)
    return pl.concat([pl.read_parquet(p) for p in files], how="vertical_relaxed").sort("dataset", "source_file")


def clear_inbox(lake: Lake, manifest: pl.DataFrame) -> None:
    """Drop the inbox entries the unit's manifest now holds."""
    if not inbox(lake).is_dir():
        return
    held = {
        _inbox_name(r["source_file"], r["size_bytes"], r["mtime_ns"])
        for r in manifest.select("source_file", "size_bytes", "mtime_ns").iter_rows(named=True)
    }
    for p in inbox(lake).glob("*.parquet"):
        if p.name in held:
            p.unlink(missing_ok=True)


def _manifest_entry(file_id: str, dataset: str, cand: Candidate, run_id: str) -> dict[str, Any]:
    """A new landing file's manifest entry, before its rows are parsed."""
    return {
        "file_id": file_id,
        "dataset": dataset,
        "source_file": cand.rel,
        "size_bytes": cand.size,
        "mtime_ns": cand.mtime_ns,
        "delivered_at": delivered_at(cand.mtime_ns),
        "run_id": run_id,
        "problems": [],
        "dates": [],
    }
