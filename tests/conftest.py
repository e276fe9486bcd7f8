"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os

import pytest

#: the project's machines and CI run PostgreSQL here with trust auth
DEFAULT_TEST_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def pg_dsn() -> str:
    """The test server's DSN (METERLAKE_TEST_PG_DSN); when none answers, skip saying why,
    or fail when the environment variable ``CI`` is set (CI runs with a server)."""
    psycopg = pytest.importorskip("psycopg")
    dsn = os.environ.get("METERLAKE_TEST_PG_DSN", DEFAULT_TEST_DSN)
    try:
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        reason = f"no PostgreSQL server answers at METERLAKE_TEST_PG_DSN={dsn!r}: {str(exc).strip()}"
        if os.environ.get("CI"):  # CI provides the server: its absence is a failure, not a skip
            pytest.fail(f"CI is set and {reason}", pytrace=False)
        pytest.skip(reason)
    return dsn
