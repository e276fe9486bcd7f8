"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os

import pytest

#: the project's machines and CI run PostgreSQL here with trust auth
DEFAULT_TEST_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def pg_dsn() -> str:
    """The test server's DSN (METERLAKE_TEST_PG_DSN); skip, saying why, when none answers."""
    psycopg = pytest.importorskip("psycopg")
    dsn = os.environ.get("METERLAKE_TEST_PG_DSN", DEFAULT_TEST_DSN)
    try:
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server answers at METERLAKE_TEST_PG_DSN={dsn!r}: {str(exc).strip()}")
    return dsn
