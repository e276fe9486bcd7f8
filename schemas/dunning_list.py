"""dunning_list: who to chase for payment and how (催费清单), the day after each due date and at month end.

A list of ``date`` L shows the accounts as they stood at the end of L-1 (payments through
the day before). Days overdue count from the due date of the oldest bill with an unpaid
part (above the settled-below tolerance) to L. The action is the first configured rule
that matches, from ``stop_notice`` down to ``sms``; a stop notice (停电通知书) only after
the days and amount set in config/receivables.toml, and the disconnection it announces
falls 3 to 7 days after it is served (供电营业规则 art. 67). ``rank`` 1 is the first to chase.
"""

import polars as pl

from ._base import Column, Table

ACTIONS = ("sms", "call", "visit", "stop_notice")

DUNNING_LIST = Table(
    name="dunning_list",
    zh="催费清单",
    description="one row per overdue post-paid customer and list date: arrears, days overdue, grade, action and reason",
    columns=(
        Column(
            "date",
            pl.Date(),
            "list date: the day after a due date, or the month's last day (partition key)",
            "清单日期",
        ),
        Column("rank", pl.Int32(), "1 = chase first (action, then credit score, then amount)", "排序"),
        Column("customer_id", pl.String(), "customer number", "用户编号", nullable=False),
        Column("customer_class", pl.String(), "class on the latest bill", "用电类别"),
        Column("area_id", pl.String(), "transformer area (empty: 10 kV customer)", "台区编号"),
        Column("feeder_id", pl.String(), "10 kV feeder", "线路编号"),
        Column("org_id", pl.String(), "supply unit", "供电单位编码"),
        Column(
            "arrears_yuan",
            pl.Float64(),
            "all bills issued minus all payments at the end of date - 1",
            "欠费余额",
            unit="yuan",
        ),
        Column("overdue_yuan", pl.Float64(), "unpaid part of the bills past due", "逾期欠费", unit="yuan"),
        Column("oldest_bill_month", pl.String(), "month of the oldest bill with an unpaid part", "最早欠费账期"),
        Column("days_overdue", pl.Int32(), "days from that bill's due date to the list date", "逾期天数", unit="d"),
        Column("credit_grade", pl.String(), "credit grade of the list's month (customer_credit_monthly)", "信用等级"),
        Column("credit_score", pl.Float64(), "credit score of the list's month", "信用分"),
        Column(
            "action", pl.String(), "sms 短信, call 电话, visit 上门, stop_notice 停电通知", "催费措施", codes=ACTIONS
        ),
        Column(
            "disconnect_not_before",
            pl.Date(),
            "stop notice: the earliest disconnection date (served + 3 days)",
            "最早停电日",
        ),
        Column(
            "disconnect_not_after",
            pl.Date(),
            "stop notice: the latest disconnection date of the notice (+ 7 days)",
            "最晚停电日",
        ),
        Column("reason_zh", pl.String(), "why, in Chinese", "原因"),
        Column("reason_en", pl.String(), "why, in English", "原因（英文）"),
    ),
    key=("date", "customer_id"),
    partition_by="date",
)
