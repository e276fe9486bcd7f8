"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# Property tests judge results, not speed: the project's machines are shared and noisy,
# so no per-example deadline and no too-slow health check (a test may still set its own).
settings.register_profile("meterlake", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "meterlake"))

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


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, str]]:
    """One S3 API server (moto) on a free loopback port for the session, and the environment
    variables that reach it; skips without moto. Each test module creates its own bucket."""
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_client(s3_server: dict[str, str]) -> Any:
    """A boto3 S3 client of the session's server."""
    boto3 = pytest.importorskip("boto3")
    return boto3.client(
        "s3",
        endpoint_url=s3_server["AWS_ENDPOINT_URL"],
        aws_access_key_id=s3_server["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=s3_server["AWS_SECRET_ACCESS_KEY"],
        region_name=s3_server["AWS_REGION"],
    )
