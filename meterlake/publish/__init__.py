"""Publishing the lake: reporting databases (DuckDB, PostgreSQL) and their settings.

* :mod:`.registry` finds every table contract in ``schemas/``;
* :mod:`.duckdb_db` builds the embedded DuckDB file of views over the lake;
* :mod:`.postgres` upserts mart partitions into a PostgreSQL reporting database
  (:mod:`.dsn` says where its DSN comes from, without importing its driver).

Thresholds and sizes are in ``config/publish.toml`` (model :class:`PublishConfig`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from .. import config

CONFIG_NAME = "publish"


class PostgresConfig(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    schema_name: str = Field(
        "meterlake",
        alias="schema",
        description="PostgreSQL schema that receives one table per mart (created if absent)",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
    )
    copy_chunk_rows: int = Field(
        100_000,
        gt=0,
        description="rows per CSV chunk streamed through COPY (bounds the memory of one chunk)",
    )
    layers: list[str] = Field(
        ["marts"],
        description="lake layers published to PostgreSQL (marts only by default; 'clean' adds the "
        "validated landing tables)",
    )


class ReportConfig(BaseModel):
    collection_target: float = Field(
        0.98,
        ge=0,
        le=1,
        description="采集成功率 target drawn on the collection chart; utilities commonly aim at 98-99.5% (docs/domain.md#collection-success-rate)",
    )
    top_areas: int = Field(10, gt=0, description="worst areas listed with their loss diagnosis")
    top_anomalies: int = Field(20, gt=0, description="highest-scoring anomalies listed with reasons")
    top_arrears: int = Field(10, gt=0, description="prepay customers listed with the lowest balances")
    top_quarantine_reasons: int = Field(12, gt=0, description="quarantine (dataset, reason) pairs charted")
    loss_rate_bins: list[float] = Field(
        [-0.10, -0.05, -0.01, 0.0, 0.02, 0.04, 0.06, 0.08, 0.10, 0.15, 0.20, 0.30],
        min_length=2,
        description="bin edges of the area loss-rate histogram (fractions); values outside fall in "
        "the first or last bar. Edges follow the bands in docs/domain.md#classes-of-an-area: <=-1% negative, 0-4% economic, "
        "6% and 10% high-loss lines used by different provinces",
    )


class PublishConfig(BaseModel):
    postgres: PostgresConfig = Field(default_factory=PostgresConfig, description="PostgreSQL upserts")
    report: ReportConfig = Field(default_factory=ReportConfig, description="the HTML run report")


def load_config(config_dir: Path | None = None) -> PublishConfig:
    """``publish.toml`` from ``config_dir`` (if it has one) or the shipped defaults."""
    return config.load(CONFIG_NAME, PublishConfig, config_dir)
