"""vee_findings: what the VEE checks found, one row per meter (or area), date and rule.

Quality findings are data (after OpenDSM/CalTRACK data-sufficiency
warnings): every row names a dotted ``rule``, a ``severity`` and carries JSON
``evidence``. The numbers the rule compared are also typed columns (``value`` against
``limit``) so analysts can filter without parsing JSON.

Severities (configurable per rule in ``config/vee.toml [severity]``):

* ``warning``: worth a look; the value is used as it is.
* ``error``: the value is suspect or was replaced by an estimate; the meter's data for
  the day should be reviewed before it is billed.
* ``blocking``: the day cannot be trusted as a whole; the ``check`` stage stops the run
  before anything is published.
"""

import polars as pl

from ._base import Column, Table

SEVERITIES = ("warning", "error", "blocking")

#: every rule the validate stage can write: its meaning and the practice it follows.
#: Rule names are stable codes: analysts and the check stage filter on them.
RULES: dict[str, str] = {
    # 1. structure (docs/domain.md#validation-checks, item 1) --------------------------------------
    "vee.structure.no_archive": "no archive snapshot is valid on the date although registers or curves exist for it: no meter can be placed (area-independent, meter_id empty)",
    "vee.structure.future_interval": "curve slots carry values although the file was delivered before those slots ended (value = number of such slots)",
    "vee.structure.future_register": "a register frozen at 00:00 of the date was delivered before that instant",
    # 2. completeness ----------------------------------------------------------------
    "vee.completeness.register_missing": "meter in service on the date, but no register frozen at 00:00 of the date arrived",
    "vee.completeness.curve_missing": "meter in service on the date, but no 96-point curve row arrived (while other meters' curves did)",
    "vee.completeness.curves_absent": "no curve row arrived for the date at all (collection not done yet, or a lost file): per-meter curve checks and estimation are skipped (meter_id empty)",
    "vee.completeness.curve_incomplete": "the curve row has fewer than 96 slots (value = slots read)",
    "vee.completeness.collection_below_target": "an area's (or a feeder's direct meters') collection success rate is below the configured target (meter_id empty)",
    # 3. clock and status ------------------------------------------------------------
    "vee.clock.fault": "the meter reported a clock fault (CLOCK_FAULT, 时钟超差) on the date (value = number of events)",
    # 4. negative / reverse ----------------------------------------------------------
    "vee.interval.negative": "curve slots below zero (value = the lowest); they are replaced by estimates",
    "vee.register.reverse_no_generation": "reverse energy on a customer meter whose history shows no export (no generation on record)",
    # 5. multiplier and register -----------------------------------------------------
    "vee.register.down": "the register went down by more than half its range allows for a rollover (示度下降): the day has no actual value",
    "vee.register.rollover": "the register rolled over at register_max; the difference was corrected (information)",
    "vee.register.runaway": "the day's kWh exceed what the meter's capacity allows in 24 h (飞走)",
    "vee.register.stopped": "the register did not move although the curve shows consumption (停走)",
    "vee.archive.multiplier_changed": "the meter's multiplier differs from the archive row valid on the day before",
    "vee.archive.multiplier_nonstandard": "the multiplier is not a product of standard CT and PT ratios",
    # 6. zero runs and flat lines ----------------------------------------------------
    "vee.interval.zero_run": "a run of consecutive zero slots at least as long as configured (value = run start slot)",
    "vee.interval.flat_line": "a run of identical non-zero slots at least as long as configured: a stuck meter (value = the repeated kWh)",
    # 7. spikes ----------------------------------------------------------------------
    "vee.interval.spike": "the highest slot exceeds the configured multiple of the third-highest slot",
    # 8. high / low against the meter's own history ----------------------------------
    "vee.usage.high": "the day's kWh are far above the meter's own recent average of actual days",
    "vee.usage.low": "the day's kWh are far below the meter's own recent average of actual days",
    # 9. sum checks ------------------------------------------------------------------
    "vee.sum.curve_register": "the 96 actual slots do not add up to the register difference of the day",
    "vee.sum.tou_total": "sharp + peak + flat + valley registers do not add up to the total register",
    # 10. capacity -------------------------------------------------------------------
    "vee.interval.capacity": "a slot's kWh x 4 (its mean kW) exceeds the meter's capacity",
    # estimates are validated again (docs/domain.md#vee) ------
    "vee.estimate.unestimated": "slots that needed an estimate but no method applied: left missing",
    "vee.estimate.scale": "estimated slots could not be scaled to the register difference, or the factor is outside the configured band",
    "vee.estimate.capacity": "an estimated slot's kWh x 4 exceeds the meter's capacity",
}

VEE_FINDINGS = Table(
    name="vee_findings",
    zh="VEE校验结果",
    description=(
        "what the VEE checks on curves, registers, archive and events found: one row per "
        "meter (or area) per date per rule, with severity and JSON evidence; raw data is "
        "never changed by a finding (changes are in interval_edits)"
    ),
    columns=(
        Column("date", pl.Date(), "local date the finding is about (partition key)", "日期"),
        Column("rule", pl.String(), "dotted rule name (see RULES)", "校验规则", nullable=False, codes=tuple(RULES)),
        Column("severity", pl.String(), "warning, error or blocking", "严重程度", nullable=False, codes=SEVERITIES),
        Column(
            "meter_id", pl.String(), "meter asset number; empty for an area- or day-level finding", "电能表资产编号"
        ),
        Column("area_id", pl.String(), "transformer area from the archive row valid on the date", "台区编号"),
        Column("feeder_id", pl.String(), "10 kV feeder from the archive row valid on the date", "线路编号"),
        Column(
            "slot",
            pl.Int16(),
            "first 15-minute slot concerned (1 = 00:00-00:15), empty for day-level rules",
            "时段序号",
        ),
        Column("value", pl.Float64(), "the measured quantity the rule tested (its unit is in the evidence)", "校验值"),
        Column("limit", pl.Float64(), "the threshold it was tested against", "阈值"),
        Column("evidence", pl.String(), "JSON object: the numbers and identifiers behind the finding", "证据"),
    ),
    key=("date", "rule", "meter_id", "area_id", "feeder_id"),
    partition_by="date",
)
