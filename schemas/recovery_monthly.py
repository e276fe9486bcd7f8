"""recovery_monthly (v2): the recovery rate (电费回收率) per area, feeder and supply unit and month.

电费回收率 = collected / billed (实收/应收) over every customer of the scope:

* a post-paid customer's bill of month M (issued on the 1st of M+1) is collected by the
  part of it paid by the end of its due date (the 20th of M+1); payments after the
  due date and credits applied later do not count (receivables_monthly follows them);
* a prepay customer's month is collected except for the part still owed at the end of
  the month: ``collected = bill - min(bill, arrears at month end)``, arrears =
  max(0, -balance_yuan) on the last prepay_daily day of the month. A prepay customer
  with no computed balance counts in ``prepay_no_balance_customers`` and is left out of
  the rate.

Scopes (``scope``, ``scope_id``): ``area`` for customers of a transformer area; ``feeder``
for the customers of the feeder fed directly at 10 kV (no area; 专变用户); ``org`` for
every customer of a supply unit. The area and feeder rows of a unit partition its
customers, so they add up to its org row: sum one scope, never all rows. ``area_id`` is
the area of an area row and empty otherwise (the contract's minimal columns).
"""

import polars as pl

from ._base import Column, Table

SCOPES = ("area", "feeder", "org")

RECOVERY_MONTHLY = Table(
    name="recovery_monthly",
    zh="电费回收",
    description="one row per scope (area, direct-fed customers of a feeder, supply unit) and month: billed, collected by the due date, rate and target",
    columns=(
        Column("month", pl.String(), "calendar month YYYY-MM of consumption (partition key)", "账期"),
        Column("scope", pl.String(), "area, feeder (customers without an area) or org", "统计范围", codes=SCOPES),
        Column("scope_id", pl.String(), "the area, feeder or supply unit", "范围编号"),
        Column("area_id", pl.String(), "transformer area of an area row; empty for feeder and org rows", "台区编号"),
        Column("feeder_id", pl.String(), "the feeder of an area or feeder row", "线路编号"),
        Column("org_id", pl.String(), "supply unit", "供电单位编码"),
        Column("customers_billed", pl.Int32(), "customers with a bill in the month", "计费户数"),
        Column("billed_yuan", pl.Float64(), "Σ amount_yuan of the month's bills (应收电费)", "应收电费", unit="yuan"),
        Column("postpaid_customers", pl.Int32(), "post-paid customers with a bill", "后付费户数"),
        Column("postpaid_billed_yuan", pl.Float64(), "Σ bills of post-paid customers", "后付费应收", unit="yuan"),
        Column(
            "postpaid_collected_yuan",
            pl.Float64(),
            "Σ of post-paid bills paid by their due date",
            "后付费按期实收",
            unit="yuan",
        ),
        Column("due_date", pl.Date(), "due date of the month's post-paid bills", "缴费截止日"),
        Column(
            "postpaid_final",
            pl.Boolean(),
            "the lake holds payments through the due date (else the collected figure can still grow)",
            "已到期",
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
            "prepay customers below 0 at month end and post-paid customers with a bill unpaid at its due date",
            "欠费户数",
        ),
        Column(
            "arrears_yuan",
            pl.Float64(),
            "prepay -balance at month end plus post-paid unpaid at the due date",
            "欠费金额",
            unit="yuan",
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
            "post-paid collected by the due date + prepay collected (实收电费)",
            "实收电费",
            unit="yuan",
        ),
        Column(
            "recovery_rate",
            pl.Float64(),
            "collected_yuan / billed amount of the customers in the rate (电费回收率, 1 = 100%); empty when that is 0",
            "电费回收率",
            unit="1",
        ),
        Column("target_rate", pl.Float64(), "the configured target (config/receivables.toml)", "回收率目标", unit="1"),
        Column("below_target", pl.Boolean(), "recovery_rate below target_rate", "未达目标"),
    ),
    key=("scope", "scope_id", "month"),
    partition_by="month",
)
