"""Paths and switches, from the environment (prefix ``METERLAKE_``) or the CLI.

Thresholds and tariffs are not settings: they live in versioned TOML files
(see :mod:`meterlake.config`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: a URL scheme (``s3://``, ``oss://``, ``hdfs://`` ...); ``Path`` folds ``//`` to ``/``.
#: Two letters at least, so a Windows drive (``C:/``) is a path.
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/")


def check_local_path(name: str, value: object) -> None:
    """Refuse an object-storage URL where a folder is expected.

    The lake is written with ``os.replace`` (atomic on a local or mounted POSIX
    filesystem); object stores have no such rename, so they are not supported yet.
    """
    match = _URL.match(str(value))
    if match:
        url = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]+):/+", r"\1://", str(value))  # as typed
        raise ValueError(
            f"{name} {url}: object storage ({match.group(1)}://) is not supported yet; "
            "mount the bucket and give its local path"
        )


def check_location(name: str, value: object) -> None:
    """Refuse a URL other than ``s3://`` where a folder or a bucket prefix is expected.

    Object stores are reached through the S3 API (AWS S3, MinIO, Huawei OBS, Alibaba OSS):
    ``s3://bucket/prefix`` with the endpoint in ``AWS_ENDPOINT_URL``.
    """
    match = _URL.match(str(value))
    if match and match.group(1).lower() != "s3":
        url = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]+):/+", r"\1://", str(value))  # as typed
        raise ValueError(
            f"{name} {url}: object storage is reached through its S3 API: give s3://bucket/prefix "
            "and the endpoint in AWS_ENDPOINT_URL, or mount the bucket and give its local path"
        )


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

    @field_validator("landing", "lake", "config_dir", "reporting_db", mode="before")
    @classmethod
    def _local(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None:
            check_local_path(str(info.field_name), value)
        return value
