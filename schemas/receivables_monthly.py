"""receivables_monthly: each post-paid customer's account per calendar month (应收账款).

CONTRACT v2 §3. The ledger month M holds the bills issued in M (the previous month's
consumption: ``bill_month`` = M-1) and the payments dated in M. Arrears are every bill
issued so far minus every payment so far at the end of M (a credit, 预收, is negative).
A bill restated after it was first recorded (a late reading rebuilt it) changes
``billed_yuan`` and every later month's arrears; ``restated_yuan`` shows the change
against the amount first recorded.
"""

import polars as pl

from ._base import Column, Table

AGING = ("current", "1-30", "31-90", "91-180", ">180")

RECEIVABLES_MONTHLY = Table(
    name="receivables_monthly",
    zh="应收电费台账",
    description="one row per post-paid customer and ledger month: billed, paid, arrears, overdue days, aging, late fee",
    columns=(
        Column("month", pl.String(), "ledger calendar month YYYY-MM (partition key)", "账务月份"),
        Column("customer_id", pl.String(), "customer number", "用户编号", nullable=False),
        Column("customer_class", pl.String(), "class on the latest bill", "用电类别"),
        Column("area_id", pl.String(), "transformer area on the latest bill (empty: 10 kV customer)", "台区编号"),
        Column("feeder_id", pl.String(), "10 kV feeder (archive at the month's end)", "线路编号"),
        Column("org_id", pl.String(), "supply unit (archive at the month's end)", "供电单位编码"),
        Column(
            "billed_yuan",
            pl.Float64(),
            "bills issued in the month (the previous month's consumption)",
            "本月应收",
            unit="yuan",
        ),
        Column(
            "restated_yuan",
            pl.Float64(),
            "change of the month's bill since first recorded here (a restated bill); 0 when unchanged",
            "账单更正",
            unit="yuan",
        ),
        Column("paid_yuan", pl.Float64(), "payments net of reversals dated in the month", "本月实收", unit="yuan"),
        Column(
            "arrears_yuan",
            pl.Float64(),
            "all bills issued so far minus all payments so far, at month end; a credit is negative",
            "欠费余额",
            unit="yuan",
        ),
        Column("overdue_yuan", pl.Float64(), "unpaid part of the bills past due at month end", "逾期欠费", unit="yuan"),
        Column(
            "overdue_days",
            pl.Int32(),
            "days from the due date of the oldest bill with an unpaid part to the month's last day; 0 when none is past due",
            "逾期天数",
            unit="d",
        ),
        Column("aging", pl.String(), "aging bucket by overdue_days", "账龄", codes=AGING),
        Column(
            "late_fee_yuan",
            pl.Float64(),
            "late fee (违约金) accrued in the month; reported, never deducted from payments",
            "违约金",
            unit="yuan",
        ),
        Column(
            "held_credit_yuan",
            pl.Float64(),
            "payments so far naming a bill month with no bill in the lake: held as a credit",
            "暂存预收",
            unit="yuan",
        ),
    ),
    key=("customer_id", "month"),
    partition_by="month",
)
