"""collection_daily: collection success rate (采集成功率) and curve completeness per area and day.

CONTRACT §3: ``meters_total`` counts the area's master and customer meters in service
on the date (the archive row valid on the date), ``meters_read`` those whose register
frozen at 00:00 of the date arrived, ``success_rate = meters_read / meters_total``.

Meters with no transformer area (10 kV feeder heads and customers fed directly at
10 kV, 专变用户) are reported per feeder: one row with ``area_id`` empty and
``scope = 'feeder_direct'`` for each feeder that has such meters, counting the feeder
head and the direct customers. Rows of one date therefore add up to every meter in
service, and an area row is still keyed by ``area_id`` alone.
"""

import polars as pl

from ._base import Column, Table

SCOPES = ("area", "feeder_direct")

COLLECTION_DAILY = Table(
    name="collection_daily",
    zh="采集成功率日统计",
    description=(
        "per transformer area (and per feeder for meters outside any area) and local date: "
        "meters in service, meters whose daily frozen register arrived, the success rate, "
        "and how many curves arrived complete (96 slots)"
    ),
    columns=(
        Column("date", pl.Date(), "local date (partition key)", "日期"),
        Column("area_id", pl.String(), "transformer area; empty for a feeder_direct row", "台区编号"),
        Column(
            "feeder_id",
            pl.String(),
            "10 kV feeder: of the area's master meter (else the smallest of its meters' feeders), or the feeder of a feeder_direct row",
            "线路编号",
        ),
        Column(
            "scope",
            pl.String(),
            "area: master + customer meters of the area; feeder_direct: the feeder head and the 10 kV customers of the feeder (no area)",
            "统计范围",
            codes=SCOPES,
            nullable=False,
        ),
        Column(
            "meters_total",
            pl.Int32(),
            "meters in service on the date (archive row valid on the date)",
            "应采表数",
            nullable=False,
        ),
        Column(
            "meters_read",
            pl.Int32(),
            "of those, meters whose register frozen at 00:00 of the date arrived",
            "成功采集表数",
            nullable=False,
        ),
        Column(
            "success_rate", pl.Float64(), "meters_read / meters_total (采集成功率), a fraction", "采集成功率", unit="1"
        ),
        Column(
            "meters_unread_no_power",
            pl.Int32(),
            "of the meters not read, those without supply at 00:00 when registers freeze (outage_meter_days)",
            "停电未采表数",
        ),
        Column(
            "curves_complete",
            pl.Int32(),
            "meters whose 96-point curve arrived with all 96 slots",
            "曲线完整表数",
            nullable=False,
        ),
        Column(
            "curve_complete_rate", pl.Float64(), "curves_complete / meters_total, a fraction", "曲线完整率", unit="1"
        ),
        Column("curve_slots_read", pl.Int64(), "curve slots that arrived, over all meters of the row", "曲线采集点数"),
        Column(
            "curve_slot_rate",
            pl.Float64(),
            "curve_slots_read / (96 x meters_total), a fraction",
            "曲线点采集率",
            unit="1",
        ),
        Column(
            "target_rate",
            pl.Float64(),
            "the configured success-rate target (config/vee.toml collection.target_rate)",
            "采集成功率目标",
            unit="1",
        ),
        Column("below_target", pl.Boolean(), "success_rate < target_rate", "低于目标"),
    ),
    key=("date", "scope", "area_id", "feeder_id"),
    partition_by="date",
)
