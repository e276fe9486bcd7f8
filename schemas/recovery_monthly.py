"""recovery_monthly: billed amount, prepay purchases, arrears and recovery per area and month (电费回收).

电费回收率 = collected / billed (实收/应收). The lake holds payments only for IC-card
prepayment customers (their purchases); post-paid customers' payments are not in any
landing dataset, so the rate is computed over prepay customers and post-paid bills are
reported beside it (``postpaid_billed_yuan``), never counted as collected.

For a prepay customer the month's bill is collected except for the part still owed at
the end of the month: ``collected = bill - min(bill, arrears at month end)``, where
arrears = max(0, -balance_yuan) on the customer's last prepay_daily day of the month
(summed over its meters). Arrears older than the month therefore do not lower this
month's rate twice. A prepay customer with no computed balance yet counts in
``prepay_no_balance_customers`` and is left out of the rate.
"""

import polars as pl

from ._base import Column, Table

RECOVERY_MONTHLY = Table(
    name="recovery_monthly",
    zh="台区电费回收",
    description="one row per transformer area and month: billed, prepay purchases, arrears and the recovery rate",
    columns=(
        Column("month", pl.String(), "calendar month YYYY-MM (partition key)", "账期"),
        Column("area_id", pl.String(), "transformer area (empty: customers fed directly at 10 kV)", "台区编号"),
        Column("customers_billed", pl.Int32(), "customers with a bill in the month", "计费户数"),
        Column("billed_yuan", pl.Float64(), "Σ amount_yuan of the month's bills (应收电费)", "应收电费", unit="yuan"),
        Column(
            "postpaid_billed_yuan",
            pl.Float64(),
            "Σ amount_yuan of post-paid customers (no payment data in the lake)",
            "后付费应收",
            unit="yuan",
        ),
        Column("prepay_customers", pl.Int32(), "prepay customers with a bill in the month", "费控户数"),
        Column("prepay_billed_yuan", pl.Float64(), "Σ amount_yuan of prepay customers", "费控应收", unit="yuan"),
        Column(
            "prepay_purchases_yuan",
            pl.Float64(),
            "Σ net purchases of prepay customers in the month",
            "购电金额",
            unit="yuan",
        ),
        Column(
            "arrears_customers",
            pl.Int32(),
            "prepay customers whose computed balance is below 0 at month end",
            "欠费户数",
        ),
        Column(
            "arrears_yuan", pl.Float64(), "Σ -balance_yuan of those customers at month end", "欠费金额", unit="yuan"
        ),
        Column(
            "prepay_no_balance_customers",
            pl.Int32(),
            "prepay customers without a computed balance at month end (left out of the rate)",
            "无余额户数",
        ),
        Column(
            "collected_yuan",
            pl.Float64(),
            "Σ over prepay customers with a balance of bill - min(bill, arrears) (实收电费)",
            "实收电费",
            unit="yuan",
        ),
        Column(
            "recovery_rate",
            pl.Float64(),
            "collected_yuan / billed amount of the prepay customers with a balance (电费回收率, 1 = 100%); empty when that is 0",
            "电费回收率",
            unit="1",
        ),
    ),
    key=("area_id", "month"),
    partition_by="month",
)
