"""Post-paid payment records (缴费记录), CONTRACT v2 §1 ``payments``.

Customers with ``prepay = 0`` are billed monthly (``bills_monthly``) and pay
afterwards at a counter, through WeChat or Alipay, by bank transfer or by direct debit
(代扣, ``withholding``). A reversal (冲正) cancels the payment named in ``ref_txn_id``.
The folder is optional: a landing zone without ``payments/`` stays valid.
"""

from .landing import Field, Landing, clean_table

TXN_TYPES = ("payment", "reversal")
CHANNELS = ("counter", "wechat", "alipay", "bank", "pos", "online", "withholding")

FIELDS = (
    Field("txn_id", "交易流水号", "string", "unique per transaction", not_null=True),
    Field("txn_type", "交易类型", "code", "payment, or reversal (冲正) of ref_txn_id", codes=TXN_TYPES, not_null=True),
    Field("ref_txn_id", "原交易流水号", "string", "the cancelled payment, for reversals", required=False),
    Field("customer_id", "用户编号", "string", "customer number", not_null=True),
    Field("paid_at", "缴费时间", "timestamp", "local time of the transaction", not_null=True),
    Field("amount_yuan", "缴费金额", "float", "amount paid", unit="yuan", exclusive_minimum=0.0, not_null=True),
    Field(
        "bill_month",
        "电费年月",
        "string",
        "YYYY-MM of the bill it pays; empty = the oldest open bill first",
        required=False,
    ),
    Field("channel", "缴费渠道", "code", "payment channel (withholding = bank direct debit, 代扣)", codes=CHANNELS),
    Field("operator_id", "操作员", "string", "operator", required=False),
)

LANDING = Landing(
    dataset="payments",
    zh="缴费记录",
    fields=FIELDS,
    key=("txn_id",),
    date_field="paid_date",
    clean=clean_table(
        "payments",
        "缴费记录",
        "post-paid payments and their reversals, one row per transaction",
        FIELDS,
        ("txn_id",),
        "paid_date",
    ),
)
