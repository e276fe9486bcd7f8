"""customer_credit_monthly: an explainable credit score, grade and tier per customer and month (用户信用评价).

The score starts at 100 and loses the points of each reason over the trailing window
(12 months by default, ending with the month): bills not paid in full by their due date,
the worst overdue days at a month end, the month ends in arrears, prepay days with a
computed balance below zero, and a theft confirmed by an inspection. Every point is a
column and a reason, like the anomaly score; weights and thresholds are in
config/receivables.toml. The tier (客户分级) follows the billed yuan of the window.
"""

import polars as pl

from ._base import Column, Table

GRADES = ("A", "B", "C", "D")
TIERS = ("platinum", "gold", "silver", "bronze")

CUSTOMER_CREDIT_MONTHLY = Table(
    name="customer_credit_monthly",
    zh="用户信用评价",
    description="one row per billed customer and month: credit score (0-100), grade A-D with its reasons, and tier",
    columns=(
        Column("month", pl.String(), "calendar month YYYY-MM, the window's last (partition key)", "评价月份"),
        Column("customer_id", pl.String(), "customer number", "用户编号", nullable=False),
        Column("prepay", pl.Int8(), "1 for an IC-card prepay customer (on the latest bill)", "费控标志"),
        Column(
            "credit_score", pl.Float64(), "100 minus the points of the reasons, clipped to 0-100", "信用分", unit="1"
        ),
        Column("credit_grade", pl.String(), "A (>= grade_a) ... D (below grade_c)", "信用等级", codes=GRADES),
        Column(
            "customer_tier",
            pl.String(),
            "platinum 铂金 / gold 金牌 / silver 银牌 / bronze 铜牌",
            "客户等级",
            codes=TIERS,
        ),
        Column("billed_12m_yuan", pl.Float64(), "Σ bills of the window (the tier's base)", "近12月电费", unit="yuan"),
        Column("bills_due", pl.Int32(), "post-paid bills due in the window", "到期账单数"),
        Column("bills_on_time", pl.Int32(), "of those, paid in full by their due date", "按期缴清数"),
        Column("on_time_share", pl.Float64(), "bills_on_time / bills_due (empty when none)", "按期缴费率", unit="1"),
        Column(
            "worst_overdue_days",
            pl.Int32(),
            "largest overdue_days at a month end of the window",
            "最长逾期天数",
            unit="d",
        ),
        Column("months_in_arrears", pl.Int32(), "month ends of the window with an overdue unpaid part", "欠费月数"),
        Column(
            "prepay_days_below_zero", pl.Int32(), "prepay days with a computed balance below 0", "透支天数", unit="d"
        ),
        Column(
            "theft_confirmed",
            pl.Boolean(),
            "an inspection of the window found theft (窃电) at one of its meters",
            "窃电查实",
        ),
        Column("late_points", pl.Float64(), "points for the late share", "逾期缴费扣分"),
        Column("overdue_points", pl.Float64(), "points for the worst overdue days", "最长逾期扣分"),
        Column("arrears_points", pl.Float64(), "points for the months in arrears", "欠费月数扣分"),
        Column("prepay_points", pl.Float64(), "points for prepay days below zero", "透支扣分"),
        Column("theft_points", pl.Float64(), "points for a confirmed theft", "窃电扣分"),
        Column("reasons", pl.String(), "the reasons with points, strongest first (English; 中文)", "扣分原因"),
    ),
    key=("customer_id", "month"),
    partition_by="month",
)
