"""The publish stage: DuckDB file, PostgreSQL when configured, dictionary and report."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import duckdb
import psycopg
import pytest

from meterlake import pipeline
from meterlake.lake import Lake
from meterlake.settings import Settings

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"
DATES = [dt.date(2026, 1, 1), dt.date(2026, 1, 2)]


@pytest.fixture(autouse=True)
def no_ambient_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METERLAKE_PG_DSN", raising=False)
    monkeypatch.delenv("AIRFLOW_CTX_DAG_ID", raising=False)


def test_publish_without_postgresql(lake: Lake) -> None:
    settings = Settings(lake=lake.root, config_dir=REPO_CONFIG)
    result = pipeline.run_stage(settings, "publish", DATES, "run-1")

    details = result.details
    assert details["duckdb"]["path"] == str(lake.root.parent / "lake.duckdb")
    assert "postgres" not in details
    assert any(n.startswith("PostgreSQL: no DSN configured") for n in result.notes)
    assert [Path(p).name for p in details["dictionary"]] == ["data_dictionary.md", "data_dictionary.html"]
    assert details["report"] == str(lake.reports / "report-run-1.html")
    for p in [details["duckdb"]["path"], details["report"], *details["dictionary"]]:
        assert Path(p).exists(), p
    with duckdb.connect(details["duckdb"]["path"], read_only=True) as con:
        assert con.execute("SELECT round(sum(kwh), 2) FROM meter_daily").fetchone() == (21.0,)


def test_rerun_gives_the_same_outputs(lake: Lake) -> None:
    settings = Settings(lake=lake.root, config_dir=REPO_CONFIG)
    first = pipeline.run_stage(settings, "publish", DATES, "run-1")
    report = Path(first.details["report"]).read_bytes()
    second = pipeline.run_stage(settings, "publish", DATES, "run-1")
    # the same views: the reporting file is left as it was
    assert (first.details["duckdb"].pop("rebuilt"), second.details["duckdb"].pop("rebuilt")) == (True, False)
    assert second.details == first.details
    assert Path(second.details["report"]).read_bytes() == report


def test_reporting_db_setting_moves_the_file(lake: Lake, tmp_path: Path) -> None:
    settings = Settings(lake=lake.root, config_dir=REPO_CONFIG, reporting_db=tmp_path / "bi" / "meters.duckdb")
    result = pipeline.run_stage(settings, "publish", DATES, "run-1")
    assert result.details["duckdb"]["path"] == str(tmp_path / "bi" / "meters.duckdb")


@pytest.mark.postgres
def test_publish_to_postgresql_twice(lake: Lake, pg_dsn: str, pg_schema: str, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    text = (
        (REPO_CONFIG / "publish.toml")
        .read_text(encoding="utf-8")
        .replace('schema = "meterlake"', f'schema = "{pg_schema}"')
    )
    (config / "publish.toml").write_text(text, encoding="utf-8")
    settings = Settings(lake=lake.root, config_dir=config, pg_dsn=pg_dsn)

    first = pipeline.run_stage(settings, "publish", DATES, "run-1")
    second = pipeline.run_stage(settings, "publish", DATES, "run-2")

    assert first.rows["postgres.meter_daily"] == second.rows["postgres.meter_daily"] == 5
    assert second.details["postgres"]["schema"] == pg_schema
    assert pg_dsn not in str(second.details) and pg_dsn not in " ".join(second.notes)
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute(
            f'SELECT count(*), count(DISTINCT (meter_id, date)), sum(kwh) FROM "{pg_schema}".meter_daily'
        ).fetchone()
    assert row is not None
    count, distinct, kwh = row
    assert (count, distinct, kwh) == (5, 5, 21.0)


def test_the_duckdb_file_is_built_beside_the_report_and_its_failure_is_raised_after_it(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meterlake.publish import duckdb_db

    main = threading.current_thread().name
    seen: list[str] = []

    def broken(*args: object, **kwargs: object) -> None:
        seen.append(threading.current_thread().name)
        raise duckdb.IOException("IO Error: Could not set lock on file lake.duckdb: Conflicting lock is held")

    monkeypatch.setattr(duckdb_db, "build_reporting_db", broken)
    settings = Settings(lake=lake.root, config_dir=REPO_CONFIG)
    with pytest.raises(duckdb.IOException, match="Conflicting lock"):
        pipeline.run_stage(settings, "publish", DATES, "run-1")
    assert len(seen) == 1 and seen[0] != main  # on a thread of its own
    # the steps beside it ran to their end: each output whole
    assert (lake.reports / "report-run-1.html").is_file()
    assert (lake.reports / "data_dictionary.md").is_file()
