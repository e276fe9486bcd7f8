"""prepay_findings: quality findings on prepayment transactions (费控稽查).

Findings are data (after OpenDSM's sufficiency warnings): a dotted rule
name, a severity, a description and JSON evidence. The rules follow the prepayment
checks of docs/domain.md#ic-card-prepayment: the purchase sequence (购电次数) rises by 1 per accepted purchase;
a reversal (冲正) cancels exactly one earlier purchase.
"""

import polars as pl

from ._base import Column, Table

SEVERITIES = ("warning", "error", "blocking")

#: rule -> (severity, what it means)
RULES: dict[str, tuple[str, str]] = {
    "prepay.purchase.seq_gap": (
        "warning",
        "purchase_seq jumps by more than 1 from the customer's previous accepted purchase: purchases missing from the feed",
    ),
    "prepay.purchase.seq_repeat": (
        "error",
        "purchase_seq equals that of the customer's previous accepted purchase (a repeat not cancelled by a reversal)",
    ),
    "prepay.purchase.seq_backwards": (
        "error",
        "purchase_seq is below that of the customer's previous accepted purchase",
    ),
    "prepay.purchase.no_meter_day": (
        "warning",
        "a purchase or reversal for a meter and date without a prepay meter_daily row: left out of the computed balance",
    ),
    "prepay.reversal.unknown_ref": (
        "error",
        "a reversal names a ref_txn_id that is no purchase in the lake; its own amount is taken off",
    ),
    "prepay.reversal.duplicate": (
        "error",
        "a second reversal of an already reversed purchase: ignored",
    ),
    "prepay.reversal.amount_differs": (
        "warning",
        "a reversal's amount differs from the purchase it cancels; the purchase's amount is taken off",
    ),
}

PREPAY_FINDINGS = Table(
    name="prepay_findings",
    zh="费控稽查发现",
    description="one row per finding on a prepayment transaction, dated by the transaction's date",
    columns=(
        Column("date", pl.Date(), "local date of the transaction (partition key)", "日期"),
        Column("rule", pl.String(), "dotted rule name (RULES)", "规则", codes=tuple(RULES), nullable=False),
        Column("severity", pl.String(), "warning, error or blocking", "严重程度", codes=SEVERITIES, nullable=False),
        Column("customer_id", pl.String(), "customer number", "用户编号"),
        Column("meter_id", pl.String(), "meter asset number", "电能表资产编号"),
        Column("txn_id", pl.String(), "the transaction the finding is about", "交易流水号", nullable=False),
        Column("description", pl.String(), "what the rule found", "说明"),
        Column("evidence", pl.String(), "JSON object with the values the finding rests on", "证据"),
    ),
    key=("rule", "txn_id"),
    partition_by="date",
)
