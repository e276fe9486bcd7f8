"""Publish: reporting databases, data dictionary and the run's HTML report.

1. rebuild the DuckDB reporting file (views over the lake; atomic swap) when its
   views change (new partitions need none: the views read the files there are), on
   a thread of its own beside the steps after it (none of them reads it);
2. upsert the partitions the dates touch into PostgreSQL, when a DSN is configured
   (``METERLAKE_PG_DSN`` / ``settings.pg_dsn``, or the Airflow connection
   ``meterlake_reporting`` inside an Airflow task);
3. write the data dictionary beside the lake (``LAKE/reports/data_dictionary.*``);
4. build the HTML report of the dates (``LAKE/reports/report-<run id>.html``).

Every step replaces its output whole or per partition, so a rerun leaves the same
state. Details carry paths and counts only (never the DSN).
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

from .. import dictionary
from ..publish import PublishConfig, duckdb_db
from ..publish.dsn import AIRFLOW_CONN_ID, resolve_dsn
from ..report import build_report
from . import StageContext, StageError, StageResult


def run(ctx: StageContext, dates: list[dt.date]) -> StageResult:
    cfg = ctx.config("publish", PublishConfig)
    lake = ctx.lake
    result = StageResult(stage="publish")

    db_path = ctx.settings.reporting_db or duckdb_db.default_path(lake.root)
    ctx.progress(f"publish: DuckDB views -> {db_path}")
    # the DuckDB file is built on a thread of its own (DuckDB reads every file's footer
    # without Python's lock) while PostgreSQL, the dictionary and the report are done here:
    # none of them reads it. A failure of either side is raised once both have ended, and
    # what the other side did stands: a failed DuckDB build follows a PostgreSQL upsert that
    # committed (the dates stay pending, and the upsert is idempotent on the next run).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish-duckdb") as pool:
        building = pool.submit(duckdb_db.build_reporting_db, lake, db_path)
        rest = publish_rest(ctx, cfg, dates)
        db = building.result()
    result.details["duckdb"] = {
        "path": str(db.path),
        "views": len(db.views),
        "empty_views": sorted(k for k, v in db.views.items() if v == "empty"),
        "rebuilt": db.rebuilt,
    }
    result.notes.append(f"DuckDB: {len(db.views)} views in {db.path}" + ("" if db.rebuilt else " (unchanged)"))
    result.notes += db.notes + rest.notes
    result.rows.update(rest.rows)
    result.details.update(rest.details)
    return result


def publish_rest(ctx: StageContext, cfg: PublishConfig, dates: list[dt.date]) -> StageResult:
    """PostgreSQL (when configured), the data dictionary and the HTML report."""
    lake = ctx.lake
    result = StageResult(stage="publish")
    dsn = resolve_dsn(ctx.settings)
    if dsn is None:
        result.notes.append(
            f"PostgreSQL: no DSN configured (METERLAKE_PG_DSN or Airflow connection {AIRFLOW_CONN_ID}); skipped"
        )
    else:
        from ..publish import postgres  # its driver (psycopg) only where there is a database

        try:
            pg = postgres.publish(
                dsn,
                lake,
                dates,
                schema=cfg.postgres.schema_name,
                chunk_rows=cfg.postgres.copy_chunk_rows,
                layers=cfg.postgres.layers,
                progress=ctx.progress,
            )
        except postgres.PublishError as exc:
            raise StageError(f"publish to PostgreSQL failed: {exc}") from exc
        result.rows.update({f"postgres.{name}": n for name, n in pg.rows.items()})
        result.details["postgres"] = {
            "schema": pg.schema,
            "tables": {
                name: {"partitions": len(t.partitions), "rows": sum(t.partitions.values()), "deleted": t.deleted}
                for name, t in pg.tables.items()
            },
        }
        result.notes.append(
            f"PostgreSQL: {sum(pg.rows.values()):,} rows in {len(pg.tables)} tables of schema {pg.schema}"
        )
        result.notes += pg.notes

    ctx.progress("publish: data dictionary")
    paths = dictionary.write_dictionary(lake.reports)
    result.details["dictionary"] = [str(p) for p in paths]

    ctx.progress("publish: HTML report")
    report = build_report(lake, dates=dates, run_id=ctx.run_id, config=cfg.report)
    result.details["report"] = str(report)
    result.notes.append(f"report: {report}")
    return result
