"""Meter events (电能表事件)."""

import polars as pl

from ._base import Column
from .landing import Field, Landing, clean_table

EVENT_CODES = (
    "POWER_OFF",
    "POWER_ON",
    "COVER_OPEN",
    "TERMINAL_COVER_OPEN",
    "VOLTAGE_LOSS",
    "CURRENT_LOSS",
    "PHASE_FAILURE",
    "REVERSE_FLOW",
    "CLOCK_FAULT",
    "MAGNETIC_INTERFERENCE",
    "METER_CLEAR",
)

FIELDS = (
    Field("meter_id", "电能表资产编号", "string", "meter asset number", not_null=True),
    Field("event_time", "发生时间", "timestamp", "local time of the event", not_null=True),
    Field("event_code", "事件类型", "code", "event type", codes=EVENT_CODES, not_null=True),
    Field("value", "事件值", "float", "optional detail", required=False),
)

LANDING = Landing(
    dataset="events",
    zh="电能表事件",
    fields=FIELDS,
    key=("meter_id", "event_time", "event_code"),
    date_field="event_date",
    clean=clean_table(
        "events",
        "电能表事件",
        "meter events, one row per event",
        FIELDS,
        ("meter_id", "event_time", "event_code"),
        "event_date",
    ),
)
assert LANDING.clean.column("event_date").dtype == pl.Date
_ = Column
