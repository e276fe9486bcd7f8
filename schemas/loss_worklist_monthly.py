"""loss_worklist_monthly: the area-months that need work, ranked by the kWh at stake (线损治理工单).

One row per transformer area and month whose monthly loss (``area_loss_monthly``) is
``high``, ``negative`` or ``uncomputable``: what is wrong, how many months in a row it
has been so, who the line-loss diagnosis (``loss_diagnosis``) suspects, and what to do
first, in Chinese and English. This is the monthly list a supply office (供电所) works
from in its loss-reduction routine (线损治理: 高损/负损/不可算台区 治理).

kWh at stake (rank 1 = the most):

* ``high``: the loss above the band, ``loss_kwh - band_high x supply_kwh``;
* ``negative``: the sales the supply does not cover, ``band_low x supply_kwh - loss_kwh``;
* ``uncomputable``: the loss the area could hide unseen at its band's edge,
  ``band_high x supply_kwh`` (``sales_kwh`` when supply is unknown).

Suspects: the diagnosis rows of the month's latest window of the area, the strongest of
each kind first (rank 1 of every kind, then rank 2...), kinds in a configurable order
per state (multipliers, then mappings, then theft by default: one wrong ratio or
mapping explains the whole area's figure, a theft only part of it; theft only raises
loss, so a negative area is never a theft lead). The top suspect decides the action.
"""

import polars as pl

from ._base import Column, Table

ISSUES = ("high", "negative", "uncomputable")

#: the suggested first action: (中文, English) per top suspect kind, or per state /
#: uncomputable reason when no suspect is listed
ACTIONS: dict[str, tuple[str, str]] = {
    "theft_candidate": ("现场稽查窃电", "inspect for theft on site"),
    "multiplier_suspect": ("核对倍率", "check the multiplier (CT x PT ratio) in the archive and on site"),
    "mapping_suspect": ("核对户变关系", "check the customer-to-area mapping"),
    "high": ("现场排查线损（窃电、户变关系、倍率）", "investigate the area on site (theft, mapping, multipliers)"),
    "negative": ("核对倍率与户变关系", "check the multipliers and the customer-to-area mapping"),
    "master_missing": ("补抄总表", "read the master meter"),
    "archive_no_master": ("核对台区档案，补录总表", "correct the archive: file the area's master meter"),
    "archive_no_customers": ("核对台区档案，补录用户", "correct the archive: file the area's customers"),
    "customer_missing": ("补抄用户表", "read the customer meters without a value"),
    "zero_supply": ("检查总表计量", "check the master meter's metering"),
}

LOSS_WORKLIST_MONTHLY = Table(
    name="loss_worklist_monthly",
    zh="线损治理工单",
    description=(
        "one row per transformer area and month that needs work (high, negative or uncomputable loss): "
        "kWh at stake, months in that state, the diagnosis' top suspects and the first action (中/英)"
    ),
    columns=(
        Column("month", pl.String(), "YYYY-MM (partition key)", "月份"),
        Column("rank", pl.Int32(), "1 = the most kWh at stake in the month", "排名", nullable=False),
        Column("area_id", pl.String(), "transformer area", "台区编号", nullable=False),
        Column("feeder_id", pl.String(), "feeder of the area", "线路编号"),
        Column("area_class", pl.String(), "threshold class of the area", "台区分类"),
        Column("issue", pl.String(), "the monthly status: high, negative or uncomputable", "问题类型", codes=ISSUES),
        Column("reason", pl.String(), "uncomputable only: the reason codes of area_loss_monthly", "不可算原因"),
        Column("supply_kwh", pl.Float64(), "the month's supply", "供电量", unit="kWh"),
        Column("sales_kwh", pl.Float64(), "the month's sales", "售电量", unit="kWh"),
        Column("loss_kwh", pl.Float64(), "the month's loss", "损失电量", unit="kWh"),
        Column("loss_rate", pl.Float64(), "the month's loss rate", "线损率", unit="1"),
        Column("band_low", pl.Float64(), "the band's lower edge the area is judged by", "合理区间下限", unit="1"),
        Column("band_high", pl.Float64(), "the band's upper edge the area is judged by", "合理区间上限", unit="1"),
        Column(
            "kwh_at_stake", pl.Float64(), "kWh the problem puts in doubt (module docstring)", "涉及电量", unit="kWh"
        ),
        Column(
            "consecutive_months",
            pl.Int32(),
            "months in a row, up to this one, the area has had this status (1 = new this month)",
            "连续月数",
        ),
        Column("diagnosis_date", pl.Date(), "end of the diagnosis window the suspects come from", "诊断日期"),
        Column("suspect_kind", pl.String(), "kind of the top suspect (loss_diagnosis.kind)", "首要嫌疑类型"),
        Column("suspect_meter_id", pl.String(), "meter of the top suspect", "首要嫌疑表计"),
        Column("suspect_score", pl.Float64(), "score of the top suspect in [0, 1]", "嫌疑度", unit="1"),
        Column("suspect_evidence", pl.String(), "JSON evidence of the top suspect (loss_diagnosis.evidence)", "证据"),
        Column(
            "suspects",
            pl.String(),
            "JSON list of the top suspects in order: meter_id, kind, score, rank, other_area_id, evidence",
            "嫌疑清单",
        ),
        Column("action_zh", pl.String(), "suggested first action (ACTIONS)", "建议措施", nullable=False),
        Column("action_en", pl.String(), "the same in English", "建议措施(英文)", nullable=False),
    ),
    key=("area_id", "month"),
    partition_by="month",
)
