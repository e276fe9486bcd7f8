"""The production reporting database: marts upserted into PostgreSQL per partition.

Each mart becomes a table ``<schema>.<mart>`` whose key is the contract's key plus
its partition column, declared as the PRIMARY KEY when every key column is
non-nullable and as ``UNIQUE NULLS NOT DISTINCT`` otherwise (PostgreSQL 15+: the
quarantine key has an empty line number for whole-file problems). One lake
partition is published in one transaction:

1. ``COPY`` the partition (CSV, streamed in chunks) into a temporary staging table;
2. ``DELETE`` the rows of that partition whose key is no longer in the lake;
3. ``INSERT ... SELECT FROM staging ON CONFLICT (key) DO UPDATE`` the rest, updating
   only rows whose values changed.

So a rerun never duplicates a row, a reader sees the old partition or the new one,
and a partition that vanished from the lake is emptied. This is the practice of
warehouse loaders without a MERGE: polars ``write_database`` has no upsert
(polars 2), and ``INSERT ... ON CONFLICT`` is PostgreSQL's idempotent upsert.

The DSN comes from ``settings.pg_dsn`` (env ``METERLAKE_PG_DSN``), or, only when
running inside an Airflow task, from the Airflow connection ``meterlake_reporting``.
No credential lives in the repository.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import polars as pl
import psycopg
from psycopg import sql

from ..lake import Lake
from ..schemas import Table
from ..transforms.dates import months_touched
from . import registry
from .dsn import AIRFLOW_CONN_ID, AIRFLOW_TASK_ENV, resolve_dsn
from .partitions import partition_dirs, read_partition, typed_value

__all__ = ["AIRFLOW_CONN_ID", "AIRFLOW_TASK_ENV", "PublishError", "publish", "resolve_dsn"]

#: how a missing value is written in the COPY stream (strings are always quoted, so a
#: literal backslash-N string stays a string)
NULL_TOKEN = r"\N"
#: the staging table of one partition (temporary, dropped at commit)
STAGE = "meterlake_stage"


class PublishError(RuntimeError):
    """A partition could not be published; the message names table, partition and cause."""


@dataclass
class TableLoad:
    table: str
    #: partition value -> rows now in PostgreSQL for it
    partitions: dict[str, int] = field(default_factory=dict)
    #: rows deleted because they left the lake
    deleted: int = 0


@dataclass
class PostgresSummary:
    schema: str
    tables: dict[str, TableLoad] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> dict[str, int]:
        return {name: sum(t.partitions.values()) for name, t in self.tables.items()}


# -- DDL -----------------------------------------------------------------------
def pg_type(dtype: pl.DataType) -> str:
    """The PostgreSQL type of a polars dtype (lists and structs become jsonb)."""
    simple = {
        pl.String: "text",
        pl.Categorical: "text",
        pl.Enum: "text",
        pl.Boolean: "boolean",
        pl.Int8: "smallint",
        pl.Int16: "smallint",
        pl.Int32: "integer",
        pl.Int64: "bigint",
        pl.UInt8: "smallint",
        pl.UInt16: "integer",
        pl.UInt32: "bigint",
        pl.UInt64: "numeric(20)",
        pl.Float32: "real",
        pl.Float64: "double precision",
        pl.Date: "date",
        pl.Time: "time",
        pl.Duration: "interval",
        pl.Binary: "bytea",
    }
    base = dtype.base_type()
    if base in simple:
        return simple[base]
    if base is pl.Datetime:
        return "timestamptz" if getattr(dtype, "time_zone", None) else "timestamp"
    if base is pl.Decimal:
        return f"numeric({dtype.precision or 38}, {dtype.scale or 0})"  # type: ignore[attr-defined]
    if base in (pl.List, pl.Array, pl.Struct):
        return "jsonb"
    return "text"


def key_columns(table: Table) -> list[str]:
    """The PostgreSQL key: the partition column, then the contract key."""
    cols = [table.partition_by] if table.partition_by else []
    return cols + [k for k in table.key if k not in cols]


def _nullable_key(table: Table) -> bool:
    return any(table.column(k).nullable for k in table.key if k != table.partition_by)


def create_sql(table: Table, schema: str) -> sql.Composed:
    """CREATE TABLE IF NOT EXISTS with the key constraint."""
    cols = [
        sql.SQL("{} {}{}").format(
            sql.Identifier(c.name),
            sql.SQL(pg_type(c.dtype)),
            sql.SQL(" NOT NULL") if c.name == table.partition_by else sql.SQL(""),
        )
        for c in table.columns
    ]
    if table.key:
        kind = "UNIQUE NULLS NOT DISTINCT" if _nullable_key(table) else "PRIMARY KEY"
        cols.append(
            sql.SQL("CONSTRAINT {} {} ({})").format(
                sql.Identifier(f"{table.name}_key"[:63]),
                sql.SQL(kind),
                sql.SQL(", ").join(map(sql.Identifier, key_columns(table))),
            )
        )
    return sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
        sql.Identifier(schema, table.name), sql.SQL(", ").join(cols)
    )


def comment_sql(table: Table, schema: str, columns: Iterable[str] | None = None) -> list[sql.Composed]:
    """COMMENT ON the table (when ``columns`` is None) and on its columns: 中文 | meaning | unit."""
    target = sql.Identifier(schema, table.name)
    out: list[sql.Composed] = []
    if columns is None:
        zh = f"{table.zh}: " if table.zh else ""
        out.append(sql.SQL("COMMENT ON TABLE {} IS {}").format(target, sql.Literal(zh + table.description)))
    for name in columns if columns is not None else table.names:
        c = table.column(name)
        text = " | ".join(p for p in (c.zh, c.description, f"unit {c.unit}" if c.unit else "") if p)
        out.append(sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(target, sql.Identifier(c.name), sql.Literal(text)))
    return out


def ensure_table(conn: psycopg.Connection, table: Table, schema: str) -> list[str]:
    """Create the table (with comments) or add the contract's new columns; return those added.

    An existing table is only altered when the contract gained columns, so a routine
    publish takes no exclusive lock that would stall analysts' queries.
    """
    target = sql.Identifier(schema, table.name)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        cur.execute("SELECT to_regclass(%s)", [f'"{schema}"."{table.name}"'])
        row = cur.fetchone()
        if row is None or row[0] is None:
            cur.execute(create_sql(table, schema))
            for stmt in comment_sql(table, schema):
                cur.execute(stmt)
            return []
        cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            [schema, table.name],
        )
        have = {r[0] for r in cur.fetchall()}
        added = [c for c in table.names if c not in have]
        for name in added:
            cur.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                    target, sql.Identifier(name), sql.SQL(pg_type(table.schema[name]))
                )
            )
        for stmt in comment_sql(table, schema, added):
            cur.execute(stmt)
        return added


# -- streaming a partition -----------------------------------------------------
def _copy_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """Lists and structs as JSON text (jsonb), everything else as is."""
    nested = [n for n, d in frame.schema.items() if d.base_type() in (pl.List, pl.Array, pl.Struct)]
    if not nested:
        return frame
    return frame.with_columns(
        pl.when(pl.col(n).is_null())
        .then(None)
        .otherwise(pl.struct(pl.col(n).alias("v")).struct.json_encode().str.strip_prefix('{"v":').str.strip_suffix("}"))
        .alias(n)
        for n in nested
    )


def _csv_chunks(frame: pl.DataFrame, chunk_rows: int) -> Iterable[bytes]:
    frame = _copy_frame(frame)
    for offset in range(0, frame.height, chunk_rows):  # a handful of chunks, not rows
        yield (
            frame.slice(offset, chunk_rows)
            .write_csv(include_header=False, null_value=NULL_TOKEN, quote_style="non_numeric")
            .encode("utf-8")
        )


def _match(table: Table, a: str, b: str) -> sql.Composable:
    """Key equality between aliases a and b that treats NULL = NULL and still hash-joins."""
    parts = []
    for k in table.key:
        if k == table.partition_by:
            continue
        ka, kb = sql.Identifier(a, k), sql.Identifier(b, k)
        if table.column(k).nullable:
            parts.append(sql.SQL("({a} IS NULL) = ({b} IS NULL)").format(a=ka, b=kb))
            parts.append(sql.SQL("coalesce({a}::text, '') = coalesce({b}::text, '')").format(a=ka, b=kb))
        else:
            parts.append(sql.SQL("{} = {}").format(ka, kb))
    return sql.SQL(" AND ").join(parts) if parts else sql.SQL("true")


def upsert_partition(
    conn: psycopg.Connection,
    lake: Lake,
    table: Table,
    value: str | None,
    schema: str,
    chunk_rows: int = 100_000,
) -> tuple[int, int]:
    """Publish one lake partition in one transaction; return (rows, rows deleted).

    ``value`` None publishes an unpartitioned table whole.
    """
    # identical rows (e.g. the same quarantined line from two ingest files) are one row
    frame = read_partition(lake, table, value).unique(maintain_order=True)
    keys = key_columns(table)
    where = f"{table.name}/{table.partition_by}={value}" if table.partition_by else table.name
    if table.key and frame.height:
        dup = frame.filter(pl.struct(keys).is_duplicated()).select(keys).head(3)
        if dup.height:
            raise PublishError(
                f"{where}: the key ({', '.join(keys)}) must be unique in a partition; found "
                f"repeated keys with different values, e.g. {dup.to_dicts()} "
                f"(under {lake.table_dir(table)})"
            )
    target = sql.Identifier(schema, table.name)
    stage = sql.Identifier(STAGE)
    names = sql.SQL(", ").join(map(sql.Identifier, table.names))
    in_partition = (
        sql.SQL("{} = {}").format(sql.Identifier(table.partition_by), sql.Placeholder())
        if table.partition_by
        else sql.SQL("true")
    )
    params = [typed_value(table, value)] if table.partition_by and value is not None else []
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(
                sql.SQL("CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(stage, target)
            )
            with cur.copy(
                sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, NULL {})").format(stage, names, sql.Literal(NULL_TOKEN))
            ) as copy:
                for chunk in _csv_chunks(frame, chunk_rows):
                    copy.write(chunk)
            cur.execute(sql.SQL("ANALYZE {}").format(stage))
            if table.key:
                cur.execute(
                    sql.SQL("DELETE FROM {t} AS t WHERE {p} AND NOT EXISTS (SELECT 1 FROM {s} AS s WHERE {m})").format(
                        t=target,
                        p=in_partition,
                        s=stage,
                        m=_match(table, "s", "t"),
                    ),
                    params,
                )
                deleted = cur.rowcount
                others = [c for c in table.names if c not in keys]
                if others:
                    action = sql.SQL("DO UPDATE SET {} WHERE ({}) IS DISTINCT FROM ({})").format(
                        sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in others),
                        sql.SQL(", ").join(sql.Identifier("t", c) for c in others),
                        sql.SQL(", ").join(sql.Identifier("excluded", c) for c in others),
                    )
                else:
                    action = sql.Composed([sql.SQL("DO NOTHING")])
                cur.execute(
                    sql.SQL("INSERT INTO {t} AS t ({n}) SELECT {n} FROM {s} ON CONFLICT ({k}) {a}").format(
                        t=target,
                        n=names,
                        s=stage,
                        k=sql.SQL(", ").join(map(sql.Identifier, keys)),
                        a=action,
                    )
                )
            else:  # no key to upsert on: replace the partition's rows
                cur.execute(sql.SQL("DELETE FROM {} WHERE {}").format(target, in_partition), params)
                deleted = max(cur.rowcount - frame.height, 0)
                cur.execute(sql.SQL("INSERT INTO {t} ({n}) SELECT {n} FROM {s}").format(t=target, n=names, s=stage))
    except psycopg.Error as exc:
        raise PublishError(f"{where} -> PostgreSQL {schema}.{table.name}: {type(exc).__name__}: {exc}".strip()) from exc
    return frame.height, deleted


# -- which partitions ----------------------------------------------------------
def partition_values(lake: Lake, table: Table, dates: Sequence[dt.date] | None) -> tuple[Sequence[str | None], bool]:
    """The partitions of ``table`` that ``dates`` touch, and whether that is all of them.

    Date partitions: the dates themselves (a date absent from the lake empties it in
    PostgreSQL); ``month`` partitions: the months the dates touch; any other key
    (e.g. quarantine's dataset): every partition present. ``dates`` None: every
    partition present.
    """
    key = table.partition_by
    if key is None:
        return [None], True
    present = list(partition_dirs(lake, table))
    dtype = table.schema[key] if key in table.schema else pl.String()
    if dates is None:
        return list(present), True
    if dtype.base_type() is pl.Date:
        return sorted({d.isoformat() for d in dates}), False
    if key == "month":
        return months_touched(dates), False
    return list(present), True


def _prune_absent(conn: psycopg.Connection, table: Table, schema: str, keep: Sequence[str | None]) -> int:
    """Delete PostgreSQL partitions the lake no longer has (when publishing all)."""
    if table.partition_by is None:
        return 0
    part = sql.Identifier(table.partition_by)
    typed = [typed_value(table, v) for v in keep if v is not None]
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            sql.SQL("DELETE FROM {} WHERE NOT ({} = ANY(%s))").format(sql.Identifier(schema, table.name), part),
            [typed],
        )
        return cur.rowcount


def publish(
    dsn: str,
    lake: Lake,
    dates: Sequence[dt.date] | None = None,
    tables: Iterable[Table] | None = None,
    schema: str = "meterlake",
    chunk_rows: int = 100_000,
    layers: Sequence[str] = ("marts",),
    progress: Callable[[str], None] | None = None,
) -> PostgresSummary:
    """Upsert the partitions ``dates`` touch (all, if None) of every mart into PostgreSQL.

    Tables default to every declared table of ``layers``; a declared table the lake
    does not hold yet still gets its (empty) table, so reports can be built on it.
    """
    chosen = list(tables) if tables is not None else [t for t in registry.tables() if t.layer in layers]
    summary = PostgresSummary(schema=schema)
    undeclared = sorted(
        d.name
        for layer in layers
        if (lake.root / layer).exists()
        for d in (lake.root / layer).iterdir()
        if d.is_dir() and not d.name.startswith((".", "_")) and d.name not in {t.name for t in chosen}
    )
    summary.notes += [
        f"{name}: in the lake but no schema module declares it; not sent to PostgreSQL" for name in undeclared
    ]
    try:
        conn = psycopg.connect(dsn, autocommit=True, application_name="meterlake-publish")
    except psycopg.Error as exc:
        raise PublishError(f"cannot connect to the reporting database: {exc}".strip()) from exc
    with conn:
        server = conn.info.server_version
        for table in chosen:
            if "card_no" in table.names:  # CONTRACT §1: never published in clear
                raise PublishError(f"{table.name}: has a card_no column; card numbers are never published")
            if _nullable_key(table) and server < 150000:
                raise PublishError(
                    f"{table.name}: its key ({', '.join(table.key)}) has nullable columns, which need "
                    f"UNIQUE NULLS NOT DISTINCT: PostgreSQL 15 or later expected, found {server // 10000}"
                )
            added = ensure_table(conn, table, schema)
            if added:
                summary.notes.append(f"{schema}.{table.name}: added column(s) {', '.join(added)}")
            load = TableLoad(table.name)
            values, complete = partition_values(lake, table, dates)
            for i, value in enumerate(values, start=1):
                rows, deleted = upsert_partition(conn, lake, table, value, schema, chunk_rows)
                load.partitions[str(value) if value is not None else ""] = rows
                load.deleted += deleted
                if progress is not None:
                    # "n/m" lets the progress reporter show the time left for this table
                    progress(f"postgres {table.name} {value or ''} ({i}/{len(values)} partitions, {rows:,} rows)")
            if complete:
                load.deleted += _prune_absent(conn, table, schema, values)
            summary.tables[table.name] = load
    return summary
