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

The run's accounting (rows read = clean + quarantined + duplicate, per dataset and
file) is computed from the manifest and the ledgers, so it holds across runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
from pydantic import BaseModel
from pydantic import Field as PydField

from ..lake import Lake
from ..landing import Refused, read_landing_file, scan_dataset
from ..schemas import LANDINGS, QUARANTINE, Landing
from ..transforms import dedup
from ..transforms.ingest import (
    QUARANTINE_SCHEMA,
    DateWindow,
    Parsed,
    ParseStats,
    empty_rows,
    mask_digit_runs,
    parse_landing_bytes,
)
from ..transforms.payments import check_payments
from . import StageContext, StageError, StageResult, log

TZ = ZoneInfo("Asia/Shanghai")
#: a Rust panic inside polars: a BaseException, not an Exception
_PANIC = pl.exceptions.PanicException
CONFIG_NAME = "ingest"

MANIFEST_SCHEMA = pl.Schema(
    {
        "file_id": pl.String(),  # sha256 of the file's bytes
        "dataset": pl.String(),
        "source_file": pl.String(),
        "size_bytes": pl.Int64(),
        "mtime_ns": pl.Int64(),
        "delivered_at": pl.Datetime("us"),
        "status": pl.String(),  # ingested | duplicate_file | unreadable
        "duplicate_of": pl.String(),
        "encoding": pl.String(),
        "rows_read": pl.Int64(),
        "rows_staged": pl.Int64(),
        "rows_quarantined": pl.Int64(),
        "dates": pl.List(pl.Date()),
        "problems": pl.List(pl.String()),
        "run_id": pl.String(),
    }
)

LEDGER_SCHEMA = pl.Schema(
    {
        "source_file": pl.String(),
        "clean": pl.Int64(),
        "duplicate": pl.Int64(),
        "superseded": pl.Int64(),
        "unknown_meter": pl.Int64(),
    }
)


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


def read_manifest(lake: Lake) -> pl.DataFrame:
    return _read_entries(lake.meta / "manifest.parquet")


def write_manifest(lake: Lake, manifest: pl.DataFrame) -> None:
    lake.write_file(lake.meta / "manifest.parquet", manifest.sort("dataset", "source_file", "file_id"))


# The plan of work: landing files staged but not yet committed to the manifest. A file
# counts as seen only once the partitions, quarantine and ledgers derived from it are
# written; until then it is in the plan, and a run killed midway replays the plan: its
# files' dates are rebuilt again (their parse is reused, not redone).
def plan_path(lake: Lake) -> Path:
    return lake.meta / "ingest_plan.parquet"


def read_plan(lake: Lake, manifest: pl.DataFrame) -> pl.DataFrame:
    """Entries staged by an earlier run that did not commit (and whose staged output survives)."""
    plan = _read_entries(plan_path(lake))
    if not plan.height:
        return plan
    committed = manifest.select("source_file", "size_bytes", "mtime_ns")
    plan = plan.join(committed, on=["source_file", "size_bytes", "mtime_ns"], how="anti", nulls_equal=True)
    staged_ok = [
        e["status"] != "ingested" or (lake.meta / "staged" / e["dataset"] / f"{e['file_id']}.parquet").exists()
        for e in plan.select("status", "dataset", "file_id").iter_rows(named=True)
    ]
    return plan.filter(pl.Series(staged_ok, dtype=pl.Boolean))


def _read_entries(path: Path) -> pl.DataFrame:
    if path.exists():
        return pl.read_parquet(path)
    return pl.DataFrame(schema=MANIFEST_SCHEMA)


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


def stage_file(
    ctx: StageContext, spec: Landing, rel: str, file_id: str, raw: bytes, when: dt.datetime, window: DateWindow
) -> Parsed:
    lake = ctx.lake
    parsed = parse_guarded(raw, spec, rel, window)
    rows = parsed.rows.with_columns(pl.lit(when, pl.Datetime("us")).alias("delivered_at"))
    if "card_no" in rows.columns:
        rows = tokenise_cards(rows, pii_key(ctx))
    lake.write_file(lake.meta / "staged" / spec.dataset / f"{file_id}.parquet", rows)
    qpath = quarantine_path(lake, spec.dataset, f"file-{file_id[:16]}")
    if parsed.quarantine.height:
        lake.write_file(qpath, parsed.quarantine.select(QUARANTINE.names[1:]))
    return parsed


def parse_guarded(raw: bytes, spec: Landing, rel: str, window: DateWindow) -> Parsed:
    """Parse a file; should the parser itself fail, quarantine the whole file instead of crashing.

    The parser is fuzzed never to raise; this is the last line of defence (a bug found
    in production costs one file, not the run). A polars panic is a BaseException.
    """
    try:
        return parse_landing_bytes(raw, spec, rel, window)
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


def stage_new_files(
    ctx: StageContext, manifest: pl.DataFrame, window: DateWindow
) -> tuple[pl.DataFrame, dict[str, set[dt.date]], list[str], list[Refused]]:
    """Stage every landing file neither in the manifest nor in the plan.

    Returns the plan (entries replayed from a killed run, then the new ones), the dates
    touched per dataset, notes, and the entries refused or skipped."""
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
    # a resent file reads as many rows as its twin
    rows_of = dict(zip(ingested["file_id"], ingested["rows_read"], strict=True))
    touched: dict[str, set[dt.date]] = {d: set() for d in LANDINGS}
    for e in plan.filter(pl.col("status") == "ingested").iter_rows(named=True):
        touched[e["dataset"]].update(e["dates"])
    refused: list[Refused] = []
    pending = []
    for spec in LANDINGS.values():
        found, skipped = scan_dataset(ctx.landing, spec.dataset)
        refused += skipped
        pending += [(spec, c) for c in found if (c.rel, c.size, c.mtime_ns) not in known]
    for r in refused:
        notes.append(f"{r.rel}: {r.status}, {r.reason}")
    for n, (spec, cand) in enumerate(pending, 1):
        rel = cand.rel
        ctx.progress(f"ingest {rel} ({n}/{len(pending)} new files, {cand.size / 1e6:,.1f} MB)")
        try:
            raw = read_landing_file(cand.path)
        except OSError as exc:
            refused.append(Refused(rel, "refused", str(exc)))
            notes.append(f"{rel}: refused, {exc}")
            continue
        file_id = hashlib.sha256(raw).hexdigest()
        entry: dict[str, Any] = {
            "file_id": file_id,
            "dataset": spec.dataset,
            "source_file": rel,
            "size_bytes": cand.size,
            "mtime_ns": cand.mtime_ns,
            "delivered_at": delivered_at(cand.mtime_ns),
            "run_id": ctx.run_id,
            "problems": [],
            "dates": [],
        }
        if file_id in ids:
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
            parsed = stage_file(ctx, spec, rel, file_id, raw, entry["delivered_at"], window)
            s = parsed.stats
            dates = sorted(set(parsed.rows[spec.date_field].unique().drop_nulls().to_list()))
            entry |= {
                "status": "ingested",
                "encoding": s.encoding,
                "rows_read": s.rows_read,
                "rows_staged": s.rows_parsed,
                "rows_quarantined": s.rows_quarantined,
                "dates": dates,
                "problems": s.file_problems,
            }
            touched[spec.dataset].update(dates)
            for problem in s.file_problems:
                notes.append(f"{rel}: {problem}")
            ids[file_id] = rel
            rows_of[file_id] = s.rows_read
        plan = pl.concat([plan, pl.DataFrame([entry], schema=MANIFEST_SCHEMA)])
        lake.write_file(plan_path(lake), plan)
    return plan, touched, notes, refused


# --- step 2: rebuild partitions -----------------------------------------------------


def rebuild_partition(
    ctx: StageContext, spec: Landing, day: dt.date, manifest: pl.DataFrame, archive: pl.LazyFrame
) -> dict[str, int] | None:
    lake = ctx.lake
    files = manifest.filter(
        (pl.col("dataset") == spec.dataset) & (pl.col("status") == "ingested") & pl.col("dates").list.contains(day)
    )["file_id"].to_list()
    if not files:
        return None
    staged = pl.concat(
        [
            pl.scan_parquet(lake.meta / "staged" / spec.dataset / f"{f}.parquet").filter(pl.col(spec.date_field) == day)
            for f in files
        ],
        how="vertical_relaxed",
    ).collect()
    res = dedup.resolve(staged, list(spec.key))
    clean = res.clean
    unknown = clean.clear()
    if spec.dataset == "payments":  # keyed by customer, judged against earlier payments (transforms/payments.py)
        clean, unknown = check_payments(clean, payments_history(lake, manifest), customers_on(archive, day))
        unknown = unknown.rename({"reason": "_reason", "detail": "_detail"})
    elif spec.split_known is not None:  # rows that name feeders/areas rather than meters
        clean, unknown = spec.split_known(clean, dedup.archive_valid_on(archive, day).collect())
    elif spec.dataset != "archive":
        meters = dedup.archive_valid_on(archive, day).select("meter_id").collect()
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
    quarantined = pl.concat(
        [
            res.superseded.select(
                "source_file",
                pl.col("source_line").alias("line"),
                pl.lit("superseded").alias("reason"),
                pl.lit(f"a later delivery of the same key ({', '.join(spec.key)}) disagrees; the later row wins").alias(
                    "detail"
                ),
                dedup.reserialise(data_cols).alias("raw"),
            ),
            unknown.select(
                "source_file",
                pl.col("source_line").alias("line"),
                pl.col("_reason").alias("reason"),
                pl.col("_detail").alias("detail"),
                dedup.reserialise(data_cols).alias("raw"),
            ),
        ],
        how="vertical",
    ).sort("source_file", "line")
    lake.write_partition(spec.clean, day, clean)
    qpath = quarantine_path(lake, spec.dataset, f"date-{day.isoformat()}")
    if quarantined.height:
        lake.write_file(qpath, quarantined)
    else:
        qpath.unlink(missing_ok=True)
    ledger = (
        pl.concat(
            [
                clean.group_by("source_file").agg(pl.len().alias("clean")),
                res.duplicates.group_by("source_file").agg(pl.len().alias("duplicate")),
                res.superseded.group_by("source_file").agg(pl.len().alias("superseded")),
                unknown.group_by("source_file").agg(pl.len().alias("unknown_meter")),
            ],
            how="diagonal",
        )
        .group_by("source_file")
        .agg(pl.col(c).sum().cast(pl.Int64) for c in ("clean", "duplicate", "superseded", "unknown_meter"))
        .select(LEDGER_SCHEMA.names())
        .sort("source_file")
    )
    lake.write_file(lake.meta / "ledger" / spec.dataset / f"date={day.isoformat()}.parquet", ledger)
    return {
        "clean": clean.height,
        "duplicate": res.duplicates.height,
        "superseded": res.superseded.height,
        "unknown_meter": unknown.height,
    }


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


def customers_on(archive: pl.LazyFrame, day: dt.date) -> pl.DataFrame:
    """customer_id, prepay (1 when all its meters are prepay) of the archive valid on ``day``."""
    return (
        dedup.archive_valid_on(archive, day)
        .filter(pl.col("customer_id").is_not_null())
        .group_by("customer_id")
        .agg(prepay=pl.col("prepay").min())
        .collect()
    )


def consumption_days(lake: Lake, dataset: str, day: dt.date) -> list[dt.date]:
    """The days whose marts a rebuilt partition changes.

    A register frozen at 00:00 of F closes day F-1 (when the lake holds an earlier
    reading) and opens day F; day F can only be computed once the reading of F+1 is in
    the lake, so it is not passed on before.
    """
    if dataset != "registers":
        return [day]
    table = LANDINGS["registers"].clean
    held = lake.partitions(table)
    days = []
    if held and held[0] < day.isoformat():  # an earlier reading: day F-1 can be computed
        days.append(day - dt.timedelta(days=1))
    if lake.partition_path(table, day + dt.timedelta(days=1)).exists():
        days.append(day)
    return days


# --- accounting --------------------------------------------------------------------


def accounting(lake: Lake, manifest: pl.DataFrame) -> pl.DataFrame:
    """Per landing file: rows read = clean + quarantined + duplicate (all runs so far).

    A path delivered more than once (touched, or rewritten with new content) has one
    manifest entry per version; its rows carry the same ``source_file``, so the versions
    are added up per path. ``status`` is that of the latest version.
    """
    ledger_files = sorted((lake.meta / "ledger").glob("*/date=*.parquet"))
    if ledger_files:
        ledger = (
            pl.concat([pl.read_parquet(p) for p in ledger_files])
            .group_by("source_file")
            .agg(pl.col("clean", "duplicate", "superseded", "unknown_meter").sum())
        )
    else:
        ledger = pl.DataFrame(schema=LEDGER_SCHEMA)
    versions = (
        manifest.sort("delivered_at", "mtime_ns")
        .group_by("dataset", "source_file")
        .agg(
            pl.col("status").last(),
            pl.col("rows_read").sum().alias("read"),
            pl.col("rows_quarantined").sum(),
            # a resent file's rows were all duplicates of its twin's
            pl.col("rows_read").filter(pl.col("status") == "duplicate_file").sum().alias("resent"),
        )
    )
    return (
        versions.join(ledger, on="source_file", how="left")
        .with_columns(pl.col("clean", "duplicate", "superseded", "unknown_meter").fill_null(0))
        .select(
            "dataset",
            "source_file",
            "status",
            "read",
            "clean",
            (pl.col("rows_quarantined") + pl.col("superseded") + pl.col("unknown_meter")).alias("quarantined"),
            (pl.col("duplicate") + pl.col("resent")).alias("duplicate"),
        )
        .with_columns(
            (pl.col("read") - pl.col("clean") - pl.col("quarantined") - pl.col("duplicate")).alias("unaccounted")
        )
        .sort("dataset", "source_file")
    )


# --- the stage ---------------------------------------------------------------------


def run(ctx: StageContext, dates: list[dt.date]) -> StageResult:
    lake = ctx.lake
    if not ctx.landing.is_dir():
        raise StageError(f"landing folder {ctx.landing} does not exist")
    window = ctx.config(CONFIG_NAME, IngestConfig).window
    result = StageResult(stage="ingest")
    manifest = read_manifest(lake)
    plan, touched, notes, refused = stage_new_files(ctx, manifest, window)
    result.notes += notes
    seen = pl.concat([manifest, plan]).rechunk()  # filtered once per partition rebuilt

    # a new archive snapshot changes which meters are known from its date on
    if touched["archive"]:
        first = min(touched["archive"])
        for ds in LANDINGS:
            if ds == "archive":
                continue
            held = (
                seen.filter((pl.col("dataset") == ds) & (pl.col("status") == "ingested"))["dates"]
                .explode()
                .drop_nulls()
            )
            touched[ds].update(d for d in held.to_list() if d >= first)
    # a reversal is judged against every payment before it: a payments day rebuilds the later ones
    if touched.get("payments"):
        first = min(touched["payments"])
        held = manifest.filter((pl.col("dataset") == "payments") & (pl.col("status") == "ingested"))["dates"]
        touched["payments"].update(d for d in held.explode().drop_nulls().to_list() if d >= first)

    archive = lake.scan(LANDINGS["archive"].clean)
    requested = set(dates)
    rebuilt: set[dt.date] = set()
    counts: dict[str, dict[str, int]] = {}
    for ds, spec in LANDINGS.items():
        days = sorted(touched[ds] | requested)
        for i, day in enumerate(days, 1):
            ctx.progress(f"rebuild {ds} {day} ({i}/{len(days)})")
            c = rebuild_partition(ctx, spec, day, seen, archive)
            if c is None:
                continue
            if ds == "archive":
                archive = lake.scan(spec.clean)
            tot = counts.setdefault(
                ds, {"partitions": 0, "clean": 0, "duplicate": 0, "superseded": 0, "unknown_meter": 0}
            )
            tot["partitions"] += 1
            for k, v in c.items():
                tot[k] += v
            result.rows[f"clean.{ds}"] = result.rows.get(f"clean.{ds}", 0) + c["clean"]
            rebuilt.update(consumption_days(lake, ds, day))

    # days after the run's last date are left to the runs that cover them: data delivered early
    # (next month's payments, say) must not make the daily stages build days that have no readings
    if requested:
        rebuilt = {d for d in rebuilt if d <= max(requested)}

    # everything derived from the planned files is written: they count as seen now
    pending = lake.read_pending_dates()
    manifest = commit(ctx, manifest, plan, rebuilt - requested)

    acc = accounting(lake, manifest)
    this_run = manifest.filter(pl.col("run_id") == ctx.run_id)["source_file"]
    run_acc = acc.filter(pl.col("source_file").is_in(this_run.implode()))
    by_dataset = (
        run_acc.group_by("dataset")
        .agg(pl.col("read", "clean", "quarantined", "duplicate", "unaccounted").sum())
        .sort("dataset")
    )
    # days an earlier, unfinished run left for the later stages are rebuilt by this one
    result.dates = sorted((rebuilt | pending) - requested)
    result.details = {
        "files_new": int(this_run.len()),
        "accounting": by_dataset.to_dicts(),
        "files": run_acc.to_dicts(),
        "files_not_read": [{"source_file": r.rel, "status": r.status, "reason": r.reason} for r in refused],
        "partitions": counts,
    }
    bad = run_acc.filter(pl.col("unaccounted") != 0)
    if bad.height:
        result.notes.append(
            f"row accounting does not close for {bad.height} file(s): " + ", ".join(bad["source_file"].head(5))
        )
    return result
