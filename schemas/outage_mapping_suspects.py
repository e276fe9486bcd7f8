"""outage_mapping_suspects: customers whose outages follow another area's (户变关系核查).

A customer meter whose own interruptions start with at least ``mapping.min_coincidences``
area interruptions of another area, and which went off with none of its own area's, is
probably fed from that other area (config/outages.toml). The loss stage adds these to
``loss_diagnosis`` as ``mapping_suspect`` rows with the evidence and ``other_area_id``.
"""

import polars as pl

from ._base import Column, Table

OUTAGE_MAPPING_SUSPECTS = Table(
    name="outage_mapping_suspects",
    zh="停电户变关系疑点",
    description="customers whose interruptions coincide with another area's outages and not their own area's",
    columns=(
        Column("date", pl.Date(), "last day of the window (partition key)", "窗口截止日期"),
        Column("window_start", pl.Date(), "first day of the window", "窗口起始日期"),
        Column("area_id", pl.String(), "the customer's area in the archive", "台区编号", nullable=False),
        Column("meter_id", pl.String(), "the customer meter", "电能表资产编号", nullable=False),
        Column("customer_id", pl.String(), "its customer", "用户编号"),
        Column("other_area_id", pl.String(), "the area whose outages it follows", "疑似所属台区"),
        Column("coincidences", pl.Int64(), "its interruptions starting with the other area's", "同步停电次数"),
        Column("own_area_outages", pl.Int64(), "area interruptions of its own area in the window", "本台区停电次数"),
        Column("own_coincidences", pl.Int64(), "of those, the ones it went off with (0)", "随本台区停电次数"),
        Column("score", pl.Float64(), "coincidences / the other area's interruptions", "可疑度", unit="1"),
        Column("evidence", pl.String(), "JSON: the counts behind the score", "证据"),
    ),
    key=("date", "area_id", "meter_id"),
    partition_by="date",
)
