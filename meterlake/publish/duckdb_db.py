"""The embedded reporting database: a DuckDB file of views over the lake.

``LAKE/../<lake name>.duckdb`` (or ``settings.reporting_db``) holds one VIEW per mart
in the ``main`` schema and one per clean table in the ``clean`` schema, each over
``read_parquet('<LAKE>/<layer>/<table>/**/*.parquet', hive_partitioning=true)``.
DBeaver, Superset (duckdb-engine) and the DuckDB CLI open it with no setup:

    duckdb lake.duckdb "SELECT * FROM area_loss_monthly WHERE status = 'high'"

The views hold no data: a query reads the Parquet files there are at that moment,
so new partitions show up without a rebuild, and DuckDB prunes partitions on the
partition column. Paths are absolute (DuckDB resolves relative paths against the
querying process's working directory, not the database file): move the lake and
the file is rebuilt by the next publish.

The file is rebuilt whole, into a temporary file beside it that then replaces it
with :func:`os.replace`, so a reader never sees a half-built file; and only when its
statements change (a table appears, a column is added, the lake moves, the contract
changes): the digest of the statements and the file's size and modification time are
kept in ``LAKE/_meta/publish/duckdb.json``, and a publish that would write the same
statements into the same untouched file leaves it alone (a daily run adds partitions,
which the views read without a rebuild).
Columns follow the table contract's order with its descriptions as comments; a
contract column missing from older files reads as NULL; a declared table with no
data yet is an empty view of the right types.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from ..lake import Lake
from ..schemas import Table
from . import registry

#: columns never exposed by a view, even if an undeclared file carries them
PERSONAL_COLUMNS = ("card_no",)

#: DuckDB schema of each lake layer
DB_SCHEMAS = {"marts": "main", "clean": "clean"}


@dataclass
class DuckDBSummary:
    path: Path
    #: "<schema>.<view>" -> "parquet" (over files) or "empty" (declared, no data yet)
    views: dict[str, str] = field(default_factory=dict)
    #: one-line notes (tables found in the lake that no schema module declares)
    notes: list[str] = field(default_factory=list)
    #: False when the file already held these views and was left alone
    rebuilt: bool = True


def default_path(lake_root: Path) -> Path:
    """``LAKE/../<lake name>.duckdb``: next to the lake, not inside it."""
    root = Path(lake_root).resolve()
    return root.parent / f"{root.name}.duckdb"


def duckdb_type(dtype: pl.DataType) -> str:
    """The DuckDB SQL type of a polars dtype."""
    simple = {
        pl.String: "VARCHAR",
        pl.Categorical: "VARCHAR",
        pl.Enum: "VARCHAR",
        pl.Boolean: "BOOLEAN",
        pl.Int8: "TINYINT",
        pl.Int16: "SMALLINT",
        pl.Int32: "INTEGER",
        pl.Int64: "BIGINT",
        pl.UInt8: "UTINYINT",
        pl.UInt16: "USMALLINT",
        pl.UInt32: "UINTEGER",
        pl.UInt64: "UBIGINT",
        pl.Float32: "FLOAT",
        pl.Float64: "DOUBLE",
        pl.Date: "DATE",
        pl.Time: "TIME",
        pl.Duration: "INTERVAL",
        pl.Binary: "BLOB",
    }
    base = dtype.base_type()
    if base in simple:
        return simple[base]
    if base is pl.Datetime:
        return "TIMESTAMPTZ" if getattr(dtype, "time_zone", None) else "TIMESTAMP"
    if base is pl.Decimal:
        return f"DECIMAL({dtype.precision or 38}, {dtype.scale or 0})"  # type: ignore[attr-defined]
    if base in (pl.List, pl.Array):
        return f"{duckdb_type(dtype.inner)}[]"  # type: ignore[attr-defined]
    if base is pl.Struct:
        inner = ", ".join(f"{quote(f.name)} {duckdb_type(f.dtype)}" for f in dtype.fields)  # type: ignore[attr-defined]
        return f"STRUCT({inner})"
    return "VARCHAR"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _comment(table: Table) -> str:
    zh = f"{table.zh}: " if table.zh else ""
    return f"{zh}{table.description}"


def _column_comment(table: Table, name: str) -> str:
    col = table.column(name)
    parts = [p for p in (col.zh, col.description, f"unit {col.unit}" if col.unit else "") if p]
    return " | ".join(parts)


def _has_files(directory: Path) -> bool:
    return directory.exists() and any(directory.rglob("*.parquet"))


def _parquet_source(directory: Path, table: Table | None) -> str:
    glob = literal(str(directory.resolve() / "**" / "*.parquet"))
    options = ["hive_partitioning = true", "union_by_name = true"]
    if table is not None and table.partition_by is not None and table.partition_by in table.schema:
        ptype = duckdb_type(table.schema[table.partition_by])
        options.append(f"hive_types = {{{literal(table.partition_by)}: {literal(ptype)}}}")
    return f"read_parquet({glob}, {', '.join(options)})"


def _view_sql(con: duckdb.DuckDBPyConnection, name: str, directory: Path, table: Table | None) -> tuple[str, str]:
    """The CREATE VIEW statement for one table, and its kind (parquet or empty)."""
    if not _has_files(directory):
        assert table is not None
        cols = ", ".join(f"CAST(NULL AS {duckdb_type(c.dtype)}) AS {quote(c.name)}" for c in table.columns)
        return f"CREATE VIEW {name} AS SELECT {cols} WHERE false", "empty"
    source = _parquet_source(directory, table)
    present = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
    if table is None:
        # card numbers are never published in clear (CONTRACT §1), whatever a file holds
        leaked = [c for c in present if c in PERSONAL_COLUMNS]
        exclude = f" EXCLUDE ({', '.join(map(quote, leaked))})" if leaked else ""
        return f"CREATE VIEW {name} AS SELECT *{exclude} FROM {source}", "parquet"
    select = [
        quote(c.name) if c.name in present else f"CAST(NULL AS {duckdb_type(c.dtype)}) AS {quote(c.name)}"
        for c in table.columns
    ]
    select += [quote(n) for n in present if n not in table.schema]  # documented extras
    return f"CREATE VIEW {name} AS SELECT {', '.join(select)} FROM {source}", "parquet"


def _stamp_path(lake: Lake) -> Path:
    return lake.meta / "publish" / "duckdb.json"


def _file_state(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _up_to_date(lake: Lake, path: Path, digest: str) -> bool:
    """Whether ``path`` is the file the last publish built from these statements, untouched since."""
    try:
        stamp = json.loads(_stamp_path(lake).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    state = _file_state(path)
    return state is not None and stamp == {"path": str(path.resolve()), "digest": digest, "file": state}


def _write_stamp(lake: Lake, path: Path, digest: str) -> None:
    stamp = _stamp_path(lake)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    tmp = stamp.with_name(f".{stamp.name}.{uuid.uuid4().hex}.tmp")
    body = {"path": str(path.resolve()), "digest": digest, "file": _file_state(path)}
    tmp.write_text(json.dumps(body), encoding="utf-8")
    os.replace(tmp, stamp)


def build_reporting_db(
    lake: Lake,
    path: Path | None = None,
    tables: list[Table] | None = None,
    progress: Callable[[str], None] | None = None,
) -> DuckDBSummary:
    """(Re)build the DuckDB reporting file for ``lake``; return what it holds.

    ``tables`` defaults to every declared table (:func:`registry.tables`); a folder
    under ``LAKE/marts`` or ``LAKE/clean`` that no contract declares gets a plain
    ``SELECT *`` view and a note.
    """
    path = Path(path) if path is not None else default_path(lake.root)
    declared = {(t.layer, t.name): t for t in (tables if tables is not None else registry.tables())}
    wanted: dict[tuple[str, str], Table | None] = {k: v for k, v in declared.items() if k[0] in DB_SCHEMAS}
    summary = DuckDBSummary(path=path)
    for layer in DB_SCHEMAS:
        base = lake.root / layer
        if base.exists():
            for d in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
                if (layer, d.name) not in wanted and _has_files(d):
                    wanted[(layer, d.name)] = None
                    summary.notes.append(
                        f"{layer}/{d.name}: no schema module declares this table; view has the files' columns"
                    )

    statements = [f"CREATE SCHEMA {quote(schema)}" for schema in sorted(set(DB_SCHEMAS.values()) - {"main"})]
    with duckdb.connect() as probe:  # reads the files' columns; an in-memory database
        for (layer, tname), table in sorted(wanted.items()):
            schema = DB_SCHEMAS[layer]
            name = f"{quote(schema)}.{quote(tname)}"
            sql, kind = _view_sql(probe, name, lake.root / layer / tname, table)
            statements.append(sql)
            if table is not None:
                statements.append(f"COMMENT ON VIEW {name} IS {literal(_comment(table))}")
                statements += [
                    f"COMMENT ON COLUMN {name}.{quote(col.name)} IS {literal(_column_comment(table, col.name))}"
                    for col in table.columns
                ]
            summary.views[f"{schema}.{tname}"] = kind
            if progress is not None:
                progress(f"duckdb: view {schema}.{tname} ({kind})")
    digest = hashlib.sha256("\n".join(statements).encode()).hexdigest()
    if _up_to_date(lake, path, digest):
        summary.rebuilt = False
        return summary

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        con = duckdb.connect(str(tmp))
        try:
            con.execute("BEGIN")  # one commit, not one fsync per statement (10x faster)
            for sql in statements:
                con.execute(sql)
            con.execute("COMMIT")
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}.wal").unlink(missing_ok=True)
    _write_stamp(lake, path, digest)
    return summary
