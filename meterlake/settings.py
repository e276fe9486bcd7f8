"""Paths and switches, from the environment (prefix ``METERLAKE_``) or the CLI.

Thresholds and tariffs are not settings: they live in versioned TOML files
(see :mod:`meterlake.config`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="METERLAKE_", extra="ignore")

    landing: Path = Field(Path("landing"), description="landing root: one folder per dataset (CONTRACT §1)")
    lake: Path = Field(Path("lake"), description="lake root: clean tables, marts, run records")
    config_dir: Path | None = Field(
        None,
        description="folder of TOML files overriding the shipped defaults "
        "(same file names as config/ in the repository); unset = shipped defaults",
    )
    pii_key: str | None = Field(
        None,
        description="secret key for card-number tokens; unset = a random key created once "
        "in LAKE/_meta/pii.key (keep that file private)",
        repr=False,
    )
    reporting_db: Path | None = Field(None, description="DuckDB reporting file; unset = LAKE/../<lake name>.duckdb")
    pg_dsn: str | None = Field(
        None,
        description="PostgreSQL DSN of the production reporting database; unset = DuckDB only. "
        "Under Airflow prefer the connection `meterlake_reporting`.",
        repr=False,
    )
    progress: bool = Field(True, description="show progress bars on a terminal")
    lock_wait_s: float = Field(
        0.0,
        ge=0,
        description="seconds a run waits for another writer of the lake to finish; "
        "0 = fail at once with one line naming the holder",
    )
