"""anomalies: the theft and anomaly ranking inspectors work from (反窃电嫌疑排名).

One row per meter and detection date ``date``: what the data up to and including
that date says about the meter. ``score`` is the sum of the ``*_points`` columns,
each the points one indicator gives (its weight in ``config/anomaly.toml`` times its
strength in [0, 1]); ``reasons`` says the same in words, strongest first, and
``findings`` holds each indicator's rule, points and JSON evidence (findings
are data). So every score decomposes into its reasons, exactly.

Only meters with a score above ``output.min_score`` are written; a meter absent from
a date's partition scored 0 that day. Customer meters are scored on all indicators;
an area master meter appears only when the line-loss diagnosis names it.

Conventions: points and score are dimensionless ("points"); kWh are primary side.
"""

import polars as pl

from ._base import Column, Table

#: indicator key -> (dotted rule, 中文, what it measures). The key names the points column.
INDICATORS: dict[str, tuple[str, str, str]] = {
    "event_cover": (
        "anomaly.event.cover_open",
        "开表盖/开端钮盒后电量下降",
        "a cover or terminal-cover open event (COVER_OPEN, TERMINAL_COVER_OPEN), more so when consumption fell after it",
    ),
    "event_wiring": (
        "anomaly.event.wiring",
        "失压/失流/断相后电量下降",
        "a voltage loss, current loss or phase failure event, more so when consumption fell after it",
    ),
    "event_magnetic": (
        "anomaly.event.magnetic",
        "恒定磁场干扰后电量下降",
        "a constant magnetic field interference event, more so when consumption fell after it",
    ),
    "event_clear": (
        "anomaly.event.meter_clear",
        "电表清零后电量下降",
        "a meter clear event, more so when consumption fell after it",
    ),
    "drop_own": (
        "anomaly.consumption.drop_own",
        "电量较自身历史突降",
        "a sudden, sustained fall of daily kWh against the meter's own history (best change point in the window)",
    ),
    "drop_peer": (
        "anomaly.consumption.drop_peer",
        "电量较同类用户突降",
        "a sudden, sustained fall of daily kWh relative to the median of its peers (same class and area)",
    ),
    "zero": (
        "anomaly.consumption.zero",
        "在运表零电量",
        "a run of zero-kWh days up to the detection date on a meter that used energy before",
    ),
    "flat": (
        "anomaly.consumption.flat",
        "日电量恒定不变",
        "a run of identical non-zero actual daily kWh up to the detection date (a stuck meter)",
    ),
    "reverse": (
        "anomaly.consumption.reverse_no_pv",
        "无光伏用户反向电量",
        "reverse energy on a customer inferred to have no PV (its reverse register stood still before)",
    ),
    "tou": (
        "anomaly.consumption.tou_shift",
        "分时电量比例突变",
        "the split of kWh over the sharp/peak/flat/valley registers no longer matches the meter's history",
    ),
    "loss_theft": (
        "anomaly.loss.theft_candidate",
        "电量与台区线损负相关",
        "line-loss diagnosis: daily kWh falls as the area's loss rate rises (loss_diagnosis theft_candidate)",
    ),
    "loss_multiplier": (
        "anomaly.loss.multiplier_suspect",
        "倍率疑似错误",
        "line-loss diagnosis: a standard CT x PT ratio would bring the area's loss into band (multiplier_suspect)",
    ),
    "loss_mapping": (
        "anomaly.loss.mapping_suspect",
        "户变关系疑似错误",
        "line-loss diagnosis: kWh tracks another area's loss better than its own (mapping_suspect)",
    ),
    "balance": (
        "anomaly.loss.balance",
        "台区电量平衡未计量电量",
        "interval energy balance of the area: the strength of the evidence that the customer's meter "
        "does not record part of its use (loss_diagnosis theft_candidate by "
        "loss.diagnosis.theft_candidate.balance; its score, a robust t over 3 x min_t)",
    ),
    "observer": (
        "anomaly.loss.observer",
        "总表观测曲线篡改",
        "the area master meter as observer: days on which the customer's recorded curve departs from its usual "
        "day (less energy, flat, a zero window, noisy slots, reversed) and the area's loss rises by what it hides",
    ),
    "model": (
        "anomaly.model.theft_probability",
        "稽查模型窃电概率",
        "supervised model trained on inspection outcomes (稽查结果): probability of theft",
    ),
}

RULES: dict[str, str] = {k: v[0] for k, v in INDICATORS.items()}


def points_column(key: str) -> str:
    """The column holding the points of indicator ``key``."""
    return f"{key}_points"


POINTS_COLUMNS: tuple[str, ...] = tuple(points_column(k) for k in INDICATORS)

ANOMALIES = Table(
    name="anomalies",
    zh="窃电及异常嫌疑",
    description=(
        "theft and anomaly ranking: one row per suspicious meter and detection date, with a "
        "score that is the sum of its indicators' points, reasons in words and JSON findings"
    ),
    columns=(
        Column(
            "date",
            pl.Date(),
            "detection date: the score uses data up to and including this date (partition key)",
            "检测日期",
        ),
        Column("meter_id", pl.String(), "meter asset number", "电能表资产编号", nullable=False),
        Column("customer_id", pl.String(), "customer number (empty for an area master meter)", "用户编号"),
        Column("area_id", pl.String(), "transformer area on the detection date", "台区编号"),
        Column("feeder_id", pl.String(), "10 kV feeder on the detection date", "线路编号"),
        Column("customer_class", pl.String(), "resident, commercial, industrial or agricultural", "用电类别"),
        Column(
            "score",
            pl.Float64(),
            "suspicion score = Σ *_points; higher = more suspicious",
            "嫌疑分值",
            unit="points",
            nullable=False,
        ),
        Column("rank", pl.Int32(), "1 = highest score on this date (ties broken by meter_id)", "排名", nullable=False),
        Column(
            "reasons",
            pl.String(),
            "the indicators that gave points, strongest first, in words, with their points",
            "嫌疑原因",
        ),
        Column("top_rule", pl.String(), "dotted rule of the indicator that gave the most points", "主要规则"),
        Column("n_reasons", pl.Int16(), "number of indicators that gave points", "原因数"),
        Column(
            "first_suspicious_date",
            pl.Date(),
            "earliest date any contributing indicator points at (a change point, an event)",
            "疑似起始日期",
        ),
        Column(
            "model_p",
            pl.Float64(),
            "supervised mode: the model's probability of theft; empty without inspection outcomes",
            "模型窃电概率",
            unit="1",
        ),
        *(
            Column(points_column(k), pl.Float64(), f"points from {rule}: {what}", zh, unit="points", nullable=False)
            for k, (rule, zh, what) in INDICATORS.items()
        ),
        Column(
            "findings",
            pl.String(),
            'JSON list, strongest first: {"rule", "severity", "points", "strength", "evidence"} per indicator that gave points',
            "发现明细",
        ),
    ),
    key=("meter_id", "date"),
    partition_by="date",
)
