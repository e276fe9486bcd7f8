"""IC-card prepayment purchase records (IC卡购电记录)."""

import polars as pl

from ._base import Column
from .landing import Field, Landing, clean_table

TXN_TYPES = ("purchase", "reversal")
CHANNELS = ("counter", "wechat", "alipay", "bank", "pos", "online")

FIELDS = (
    Field("txn_id", "交易流水号", "string", "unique per transaction", not_null=True),
    Field("txn_type", "交易类型", "code", "purchase, or reversal (冲正) of ref_txn_id", codes=TXN_TYPES, not_null=True),
    Field("ref_txn_id", "原交易流水号", "string", "the cancelled transaction, for reversals", required=False),
    Field("customer_id", "用户编号", "string", "customer number", not_null=True),
    Field("meter_id", "电能表资产编号", "string", "meter asset number", not_null=True),
    Field("card_no", "卡号", "string", "IC card number (personal data)", personal=True, required=False),
    Field("purchase_time", "购电时间", "timestamp", "local time of the transaction", not_null=True),
    Field("amount_yuan", "购电金额", "float", "amount paid", unit="yuan", exclusive_minimum=0.0, not_null=True),
    Field("purchase_seq", "购电次数", "int", "the customer's purchase sequence number", minimum=0),
    Field("channel", "缴费渠道", "code", "payment channel", codes=CHANNELS),
    Field("operator_id", "操作员", "string", "operator", required=False),
)

PII = (
    Column("card_last4", pl.String(), "last 4 digits of the IC card number (the rest is never stored)", "卡号后四位"),
    Column(
        "card_token",
        pl.String(),
        "HMAC-SHA256 of the card number under a secret key (first 32 hex digits): links a card's purchases without revealing it",
        "卡号令牌",
    ),
)

LANDING = Landing(
    dataset="purchases",
    zh="IC卡购电记录",
    fields=FIELDS,
    key=("txn_id",),
    date_field="purchase_date",
    clean=clean_table(
        "purchases",
        "IC卡购电记录",
        "prepayment transactions, one row per transaction",
        FIELDS,
        ("txn_id",),
        "purchase_date",
        extra=PII,
    ),
)
