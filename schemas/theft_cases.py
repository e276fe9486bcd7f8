"""theft_cases: the customers worth an inspection, with what they would owe (窃电案件).

One row per customer meter and detection date ``date`` whose area energy balance over
the window ``window_start .. date`` leaves an unrecorded share of its use at or above
the configured threshold (``loss_diagnosis`` theft candidates of rule
``loss.diagnosis.theft_candidate.balance``). The amounts follow 供电营业规则 (Rules
for Electricity Supply Business, 1996, art. 102): a customer found stealing pays the
stolen energy at its tariff (追补电费, ``back_charge_yuan``) and a penalty of three
times that (违约使用电费, ``penalty_yuan``; the multiple is configurable). The stolen
energy is the balance's estimate, priced at the tier-1 prices of the customer's
tariff on the detection date, weighted by the TOU split of its recorded energy in the
window (the unrecorded energy is taken to follow the recorded shape).

``inspection_outcome`` is the latest on-site outcome (稽查结果) of the meter dated on or
after the window's start, when the ``inspections`` dataset holds one: ``theft``
confirms the case (and feeds the supervised model), ``normal`` or ``fault`` clears it.
"""

import polars as pl

from ._base import Column, Table
from .inspections import OUTCOMES

THEFT_CASES = Table(
    name="theft_cases",
    zh="窃电案件",
    description=(
        "customers worth an inspection: window, estimated stolen kWh, back charge (追补电费) and "
        "penalty (违约使用电费) at the customer's tariff, evidence, and the inspection outcome once known"
    ),
    columns=(
        Column("date", pl.Date(), "detection date: last day of the balance window (partition key)", "检测日期"),
        Column("window_start", pl.Date(), "first day of the balance window", "窗口起始日期"),
        Column("area_id", pl.String(), "the transformer area whose balance found it", "台区编号", nullable=False),
        Column("meter_id", pl.String(), "the customer's meter", "电能表资产编号", nullable=False),
        Column("customer_id", pl.String(), "the customer", "用户编号"),
        Column("tariff_id", pl.String(), "the customer's tariff on the detection date", "电价代码"),
        Column("days", pl.Int32(), "days of the window the balance rests on", "依据天数"),
        Column(
            "recorded_kwh",
            pl.Float64(),
            "energy the meter recorded over the window, primary side",
            "窗口计量电量",
            unit="kWh",
        ),
        Column(
            "stolen_kwh",
            pl.Float64(),
            "estimated energy used but not recorded over the window",
            "窃电量",
            unit="kWh",
        ),
        Column(
            "unrecorded_share",
            pl.Float64(),
            "stolen / (stolen + recorded): the share of the use the meter missed",
            "未计量比例",
            unit="1",
        ),
        Column(
            "price_yuan_per_kwh",
            pl.Float64(),
            "tier-1 tariff price weighted by the TOU split of the recorded energy",
            "追补单价",
            unit="yuan/kWh",
        ),
        Column(
            "back_charge_yuan",
            pl.Float64(),
            "追补电费: stolen_kwh x price_yuan_per_kwh, to 0.01 yuan",
            "追补电费",
            unit="yuan",
        ),
        Column(
            "penalty_multiple",
            pl.Float64(),
            "违约使用电费 as a multiple of the back charge (3 by the rules)",
            "违约倍数",
        ),
        Column(
            "penalty_yuan",
            pl.Float64(),
            "违约使用电费: penalty_multiple x back_charge_yuan, to 0.01 yuan",
            "违约使用电费",
            unit="yuan",
        ),
        Column("score", pl.Float64(), "the balance's theft score in [0, 1]", "可疑度", unit="1"),
        Column("rank", pl.Int32(), "1 = the largest stolen kWh of the area on this date", "台区内排名"),
        Column("evidence", pl.String(), "JSON: the balance's coefficient, standard error, shares and kWh", "证据"),
        Column("evidence_text", pl.String(), "the evidence in words, for the inspection order", "证据说明"),
        Column("inspection_date", pl.Date(), "date of the latest inspection in or after the window", "稽查日期"),
        Column(
            "inspection_outcome",
            pl.String(),
            "theft, normal or fault; empty until inspected",
            "稽查结果",
            codes=OUTCOMES,
        ),
    ),
    key=("meter_id", "date"),
    partition_by="date",
)
