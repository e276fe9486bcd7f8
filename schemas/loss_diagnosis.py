"""loss_diagnosis: why an area's loss is abnormal, as a ranked list analysts act on (线损诊断).

Each row is one finding about one meter for the window of ``window_days`` days ending
at ``date`` (the days the lake holds in it). Findings are data (a dotted rule
name, a severity and JSON evidence); the anomaly-ranking stage reads them by
(meter_id, date). ``score`` is in [0, 1], higher = more suspicious, comparable
within a kind; ``rank`` is 1 for the strongest finding of that kind in the area.

Kinds and the practice each follows:

* ``theft_candidate`` (窃电嫌疑): a customer whose daily net kWh (forward - reverse)
  falls as the area's daily loss rate rises, in an area whose loss is high or rising;
  score = -r x min(|b|, 1/|b|) with r the Pearson correlation of the two over the
  window and b the slope of the area's loss residual (loss - window rate x supply) on
  the customer's net kWh (-1 when every kWh off the meter reappears as loss). The
  practice of Chinese utilities' anti-theft screening (反窃电: correlate each
  customer's daily kWh with the area's daily line loss and inspect the strongest).
* ``multiplier_suspect`` (倍率错误): the master meter, or a large customer metered
  through a CT, of an area whose loss is high or negative over the window and out of
  band on almost every day, such that replacing its archive multiplier by a
  neighbouring standard CT x PT ratio brings the area's loss into the normal band;
  score = share of the window's days normal after the change minus before.
* ``mapping_suspect`` (户变关系错误): a customer whose daily net kWh moves with the loss
  residual of another area on its feeder (slope near 1) and against its own area's: a
  customer fed from area B but filed under A adds its kWh to B's loss and takes it
  from A's. The residual is the loss kWh less a least-squares line on the area's load,
  so weather moving every load does not count. score = (corr with the other area -
  corr with its own) / 2.

The interval energy balance (``rule`` ``loss.diagnosis.<kind>.balance``, see
``transforms/balance.py``) finds the same three kinds on the 96-point curves: per area
and day the loss curve and each customer's curve are cleared of the day's smooth terms,
and over the window each customer's coefficient is read against the area's. Theft:
score = the strongest of its steady, night and some-days robust t over 3 x min_t;
evidence holds the unrecorded kWh per day and share. Multiplier: the estimated true
multiplier snapped to the standard CT x PT table. Mapping: coefficient near -1 in the
booked area and near +1 in ``other_area_id``. Within an area and kind the balance's
findings rank first.
"""

import polars as pl

from ._base import Column, Table

KINDS = ("theft_candidate", "multiplier_suspect", "mapping_suspect")
RULES = {k: f"loss.diagnosis.{k}" for k in KINDS}
#: the rules of the same kinds found by the interval energy balance on the curves
BALANCE_RULES = {k: f"loss.diagnosis.{k}.balance" for k in KINDS}
SEVERITIES = ("warning", "error", "blocking")

LOSS_DIAGNOSIS = Table(
    name="loss_diagnosis",
    zh="线损诊断",
    description=(
        "findings that explain abnormal area loss over a window of days: theft candidates, "
        "multiplier suspects and customer-to-area mapping suspects, ranked within each area"
    ),
    columns=(
        Column("date", pl.Date(), "last day of the window (partition key)", "窗口截止日期"),
        Column("window_start", pl.Date(), "first day of the window", "窗口起始日期"),
        Column(
            "area_id",
            pl.String(),
            "the area the finding is about (the meter's area in the window)",
            "台区编号",
            nullable=False,
        ),
        Column(
            "kind",
            pl.String(),
            "theft_candidate, multiplier_suspect or mapping_suspect",
            "诊断类型",
            codes=KINDS,
            nullable=False,
        ),
        Column(
            "rule",
            pl.String(),
            "dotted rule name: loss.diagnosis.<kind> (daily diagnosis) or loss.diagnosis.<kind>.balance (interval energy balance)",
            "规则",
            nullable=False,
        ),
        Column(
            "severity",
            pl.String(),
            "warning (a lead for inspection; diagnosis never blocks)",
            "严重程度",
            codes=SEVERITIES,
            nullable=False,
        ),
        Column("meter_id", pl.String(), "the suspect meter", "电能表资产编号", nullable=False),
        Column("customer_id", pl.String(), "its customer (empty for an area master meter)", "用户编号"),
        Column("role", pl.String(), "area_master or customer", "计量点类型"),
        Column(
            "other_area_id",
            pl.String(),
            "mapping_suspect: the area whose loss the customer's kWh tracks",
            "疑似所属台区",
        ),
        Column(
            "score", pl.Float64(), "strength of the finding in [0, 1], higher = more suspicious", "可疑度", unit="1"
        ),
        Column("rank", pl.Int32(), "1 = strongest finding of this kind in this area for this window", "台区内排名"),
        Column(
            "area_status",
            pl.String(),
            "the area's status over the window (from the window's summed kWh)",
            "窗口线损状态",
        ),
        Column(
            "area_loss_rate",
            pl.Float64(),
            "the area's loss rate over the window (Σ loss / Σ supply)",
            "窗口线损率",
            unit="1",
        ),
        Column("days", pl.Int32(), "days of the window the finding rests on", "依据天数"),
        Column(
            "evidence",
            pl.String(),
            "JSON: the figures behind the score (correlations, multipliers, rates before and after)",
            "证据",
        ),
    ),
    key=("area_id", "kind", "meter_id", "date"),
    partition_by="date",
)
