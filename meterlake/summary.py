"""The end-of-run summary on the terminal: where the lake is and where every row went."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

MAX_NOTES = 12


def print_run_summary(record: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    console.print(f"[bold]run {record['run_id']}[/] {record['start']} .. {record['end']}: {record['status']}")
    console.print(f"lake: {record['lake']}")
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
    for name, res in record["stages"].items():
        for key in ("data_docs", "report", "reporting_db", "dictionary"):
            if key in res["details"]:
                console.print(f"{key.replace('_', ' ')}: {res['details'][key]}")
    if "record_path" in record:
        console.print(f"run record: {record['record_path']}")
