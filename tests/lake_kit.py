"""A toy partitioned table the lake's tests share (scans and writes).

Not a test module (pytest collects ``test_*.py`` only); the tests of this folder import it
by name (pytest puts their folder on ``sys.path``).
"""

from __future__ import annotations

import polars as pl

from meterlake.schemas._base import Column, Table

#: a small table partitioned by date: the key sorts each file by meter_id
TOY_DAILY = Table(
    name="toy_daily",
    description="a toy table partitioned by date",
    columns=(
        Column("date", pl.Date(), "the day"),
        Column("meter_id", pl.String(), "the meter"),
        Column("kwh", pl.Float64(), "energy, kWh"),
    ),
    key=("meter_id", "date"),
    partition_by="date",
)
