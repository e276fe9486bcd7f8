"""The end-of-run summary on the terminal: where the lake is and where every row went."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

MAX_NOTES = 12


def print_path(console: Console, label: str, path: object) -> None:
    """``label:`` then the path on a line of its own, never wrapped: a path must survive
    copy and paste from a narrow terminal (the terminal may fold it, the text stays one line)."""
    console.print(f"{label}:", highlight=False, markup=False)
    for one in path if isinstance(path, list | tuple) else [path]:
        console.print(f"  {one}", soft_wrap=True, highlight=False, markup=False)


def print_run_summary(record: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    console.print(f"[bold]run {record['run_id']}[/] {record['start']} .. {record['end']}: {record['status']}")
    print_path(console, "lake", record["lake"])
    ingest = record["stages"].get("ingest")
    if ingest:
        acc = ingest["details"].get("accounting", [])
        t = Table(title=f"row accounting ({ingest['details'].get('files_new', 0)} new landing files)")
        for col in ("dataset", "read", "clean", "quarantined", "duplicate", "unaccounted"):
            t.add_column(col, justify="left" if col == "dataset" else "right")
        for row in acc:
            t.add_row(
                row["dataset"],
                *(f"{row[c]:,}" for c in ("read", "clean", "quarantined", "duplicate", "unaccounted")),
            )
        if not acc:
            t.add_row("(no new files)", "0", "0", "0", "0", "0")
        console.print(t)
    t = Table(title="stages")
    t.add_column("stage")
    t.add_column("seconds", justify="right")
    t.add_column("rows written", justify="right")
    for name, res in record["stages"].items():
        t.add_row(name, f"{res['seconds']:.1f}", f"{sum(res['rows'].values()):,}")
    console.print(t)
    notes = [f"{name}: {n}" for name, res in record["stages"].items() for n in res["notes"]]
    for note in notes[:MAX_NOTES]:
        console.print(f"  - {note}", highlight=False)
    if len(notes) > MAX_NOTES:
        console.print(f"  ... and {len(notes) - MAX_NOTES} more notes in the run record")
    for res in record["stages"].values():
        for key in ("data_docs", "report", "reporting_db", "dictionary"):
            if key in res["details"]:
                print_path(console, key.replace("_", " "), res["details"][key])
    if "record_path" in record:
        print_path(console, "run record", record["record_path"])


def lake_status(lake: Path) -> dict[str, Any]:
    """What the lake holds, independent of any one run: the row accounting of every
    landing file ingested so far, the marts and their rows, and where the outputs are."""
    import polars as pl

    from .lake import Lake
    from .manifest import accounting, read_manifest

    lk = Lake(lake)
    acc = accounting(lk, read_manifest(lk))
    by_dataset = (
        acc.group_by("dataset")
        .agg(pl.len().alias("files"), pl.col("read", "clean", "quarantined", "duplicate", "unaccounted").sum())
        .sort("dataset")
    )
    marts = {}
    for layer in ("clean", "marts"):
        base = lk.root / layer
        for table in sorted(p for p in base.iterdir() if p.is_dir()) if base.exists() else []:
            files = sorted(table.rglob("*.parquet"))
            rows = sum(pl.scan_parquet(f).select(pl.len()).collect().item() for f in files)
            marts[f"{layer}/{table.name}"] = {"partitions": len({f.parent for f in files}), "rows": rows}
    reports = sorted(lk.reports.glob("report-*.html"), key=lambda p: p.stat().st_mtime)
    duckdb_file = lk.root.parent / f"{lk.root.name}.duckdb"
    return {
        "lake": str(lk.root.resolve()),
        "accounting": by_dataset.to_dicts(),
        "tables": marts,
        "report": str(reports[-1].resolve()) if reports else None,
        "data_docs": str((lk.reports / "data_docs" / "index.html").resolve())
        if (lk.reports / "data_docs" / "index.html").exists()
        else None,
        "reporting_db": str(duckdb_file.resolve()) if duckdb_file.exists() else None,
    }


def print_lake_status(status: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    print_path(console, "lake", status["lake"])
    t = Table(title="row accounting, every landing file ingested so far")
    for col in ("dataset", "files", "read", "clean", "quarantined", "duplicate", "unaccounted"):
        t.add_column(col, justify="left" if col == "dataset" else "right")
    for row in status["accounting"]:
        t.add_row(
            row["dataset"],
            *(f"{row[c]:,}" for c in ("files", "read", "clean", "quarantined", "duplicate", "unaccounted")),
        )
    console.print(t)
    t = Table(title="tables")
    t.add_column("table")
    t.add_column("partitions", justify="right")
    t.add_column("rows", justify="right")
    for name, info in status["tables"].items():
        t.add_row(name, f"{info['partitions']:,}", f"{info['rows']:,}")
    console.print(t)
    for key in ("reporting_db", "data_docs", "report"):
        print_path(console, key.replace("_", " "), status[key] or "(not built yet)")
