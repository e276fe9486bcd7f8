"""Where the PostgreSQL reporting database's DSN comes from (no driver imported here: a
publish without a DSN, the usual local run, never loads psycopg)."""

from __future__ import annotations

import os

from ..settings import Settings

#: the Airflow connection looked up under Airflow when no DSN is set
AIRFLOW_CONN_ID = "meterlake_reporting"
#: set by the Airflow task runner in every task's environment
AIRFLOW_TASK_ENV = "AIRFLOW_CTX_DAG_ID"


def resolve_dsn(settings: Settings | None = None) -> str | None:
    """The reporting database DSN, or None when PostgreSQL publishing is off.

    Order: ``settings.pg_dsn`` (which pydantic-settings fills from
    ``METERLAKE_PG_DSN``); then, inside an Airflow task only, the connection
    ``meterlake_reporting``. Airflow is imported lazily: outside Airflow it is
    never touched.
    """
    if settings is not None and settings.pg_dsn:
        return settings.pg_dsn
    if os.environ.get("METERLAKE_PG_DSN"):
        return os.environ["METERLAKE_PG_DSN"]
    if os.environ.get(AIRFLOW_TASK_ENV):
        from airflow.sdk import Connection
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = Connection.get(AIRFLOW_CONN_ID)
        except AirflowNotFoundException:
            return None
        uri = conn.get_uri()
        # Airflow writes postgres:// ; libpq takes both, keep the canonical scheme
        return "postgresql://" + uri.split("://", 1)[1] if uri.startswith("postgres://") else uri
    return None
