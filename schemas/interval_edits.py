"""interval_edits: every curve slot the VEE changed, with the raw value beside the new one.

Raw and validated data are kept apart, as the commercial meter-data systems do
(Oracle Utilities MDM, Itron, Siemens EnergyIP): the raw 96-point curves stay
untouched in ``clean/curves``; this table lists only the slots that needed a
replacement, each with how (``method``) and why (``reason``). The validated curve of
a meter-day is the raw curve with these rows laid over it
(``meterlake.transforms.estimation.apply_edits``); a slot with no row here is an
actual value.

Values are meter side (before the multiplier), like the raw curves: the column names
end in ``_meter``.
"""

import polars as pl

from ._base import Column, Table

#: how a slot got its value
METHODS = {
    "linear_interpolation": "straight line between the actual slots on both sides of a gap of at most "
    "estimation.max_interpolation_slots (CPUC Direct Access VEE Rev 2.0 and VDN MeteringCode 2006: 2 h)",
    "like_day": "mean of the same slot on the nearest earlier days of the same type (workday, Saturday, "
    "Sunday/holiday) where that slot was actual (CPUC Rev 2.0 like-day method)",
    "outage_zero": "the slot lies wholly inside a supply interruption (outage_meter_days): zero supply, "
    "not a gap to estimate",
    "none": "no method applied (no like day with an actual value): the slot stays missing",
}

#: why a slot was replaced
REASONS = {
    "missing": "the slot was not collected (empty in the landing file, or the whole curve row is absent)",
    "negative": "the slot is below zero: forward energy cannot be negative (VEE check 4)",
}

QUALITIES = ("estimated", "missing")

INTERVAL_EDITS = Table(
    name="interval_edits",
    zh="曲线修补记录",
    description=(
        "one row per meter, date and 15-minute slot that VEE replaced: raw value, validated "
        "value, method, reason and the factor that scaled the day's estimates to its register "
        "difference; slots not listed are actual"
    ),
    columns=(
        Column("date", pl.Date(), "local date of the curve (partition key)", "日期"),
        Column("meter_id", pl.String(), "meter asset number", "电能表资产编号", nullable=False),
        Column("slot", pl.Int16(), "15-minute slot, 1 = 00:00-00:15 ... 96 = 23:45-24:00", "时段序号", nullable=False),
        Column(
            "raw_kwh_meter",
            pl.Float64(),
            "the value as collected, meter side; empty when not collected",
            "原始电量",
            unit="kWh",
        ),
        Column(
            "kwh_meter",
            pl.Float64(),
            "the validated value, meter side; empty when no method applied",
            "修补后电量",
            unit="kWh",
        ),
        Column(
            "quality",
            pl.String(),
            "estimated, or missing when no method applied",
            "数据质量",
            codes=QUALITIES,
            nullable=False,
        ),
        Column(
            "method",
            pl.String(),
            "linear_interpolation, like_day, outage_zero or none (see METHODS)",
            "修补方法",
            codes=tuple(METHODS),
            nullable=False,
        ),
        Column(
            "reason", pl.String(), "missing or negative (see REASONS)", "修补原因", codes=tuple(REASONS), nullable=False
        ),
        Column(
            "unscaled_kwh_meter",
            pl.Float64(),
            "the estimate before scaling to the register difference",
            "缩放前估算电量",
            unit="kWh",
        ),
        Column(
            "scale",
            pl.Float64(),
            "factor applied to the day's estimates so the day sums to its register difference; empty when the day was not scaled (no actual register difference, or scaling impossible)",
            "缩放系数",
            unit="1",
        ),
    ),
    key=("meter_id", "date", "slot"),
    partition_by="date",
)
