"""What each rule checks, in Chinese and English, for the Data Docs.

The English text is the rule's own ``description`` (checks/suites.py); the Chinese is
found here by the rule's kind, the part of its dotted name after the table
(``meter_daily.key.unique`` -> ``key.unique``), first as written, then by its last
word (``*.non_negative``). Column names stay as they are in both languages.
"""

from __future__ import annotations

import re

#: rule kind -> Chinese; ``{cols}`` is the English description's subject (the columns
#: before "is unique", "never empty", "is one of ..."), ``{values}`` the listed codes
ZH_BY_KIND: dict[str, str] = {
    "key.unique": "主键 {cols} 唯一，没有重复行",
    "required.not_null": "{cols} 不为空",
    "partition.readable": "分区文件可以打开，指标可以计算",
    "partition.present": "本次运行的每个日期（月份）都有分区",
    "pii.card_no": "任何列都不含明文卡号",
    "schema.columns": "分区包含合同规定的全部列",
    "schema.types": "各列为合同规定的类型（数字不以文本存储）",
    "lineage.present": "每行注明来源接入文件及行号（从 1 起）",
    "multiplier.at_least_1": "倍率（CT × PT）不小于 1",
    "register_max.positive": "电能表满码值大于 0",
    "prepay.flag": "费控标志为 0 或 1",
    "customer_id.customer_role": "用户电能表带有用户编号",
    "customer_class.customer_role": "用户类别只出现在用户电能表上",
    "area_id.area_master": "台区总表注明所属台区",
    "slots.non_negative": "96 点曲线没有负电量（VEE 标记并替换负值）",
    "slots.completeness": "当日 96 点曲线未采集点的比例",
    "register.non_negative": "示值与购电次数不小于 0（其余在接入时隔离）",
    "total_kwh.null_share": "缺少正向有功总示值的读数比例",
    "tou.sum": "尖 + 峰 + 平 + 谷 = 总，误差在舍入容差内",
    "event_date.matches_time": "event_date 是 event_time 的本地日期",
    "purchase_date.matches_time": "purchase_date 是 purchase_time 的本地日期",
    "reversal.names_ref": "冲正记录注明被冲正的交易",
    "card.masked": "卡号最多保留后四位",
    "quality.matches_value": "缺失日没有电量；实抄日和估算日都有电量",
    "quality.missing_share": "缺失的表-日比例",
    "quality.estimated_share": "估算的表-日比例",
    "kwh.plausible_max": "没有超过合理上限的日电量",
    "meters_read.within_total": "已抄表数 meters_read 在 0 与 meters_total 之间",
    "curves_complete.within_total": "曲线完整表数 curves_complete 在 0 与 meters_total 之间",
    "success_rate.definition": "采集成功率 success_rate = meters_read / meters_total，在 [0, 1] 内",
    "success_rate.overall_target": "当日总体采集成功率达到配置的目标值（target_rate）",
    "success_rate.area_target": "每个台区的采集成功率达到目标值（target_rate − success_rate ≤ 0）",
    "findings.no_blocking": "没有阻断级别的发现（整天数据不可信）",
    "loss_kwh.identity": "损失电量 loss_kwh = 供电量 supply_kwh − 售电量 sales_kwh（容差内）",
    "loss_rate.definition": "线损率 loss_rate = loss_kwh / supply_kwh（容差内）",
    "loss_rate.plausible": "可算线损率在合理范围内",
    "status.computable_has_rate": "合格、高损、负损的行都有线损率",
    "status.uncomputable_share": "不可算行的比例",
    "status.mismatch_share": "计算余额与表内余额不一致的用户-日比例",
    "supply_kwh.identity": "供电量 supply_kwh = 总表电量 master_kwh + 光伏上网 pv_export_kwh（容差内）",
    "sales_kwh.identity": "售电量 sales_kwh = 台区总表电量 + 专变直供用户电量（容差内）",
    "score.finite": "每个上榜电能表的得分都是有限数",
    "rank.unique": "每个日期每个名次只有一块电能表",
    "reasons.present": "每个上榜电能表都向稽查人员给出理由",
    "score.sum_of_points": "得分 score = 各项 *_points 之和",
    "tiers.sum": "阶梯电量 kwh_tier1 + kwh_tier2 + kwh_tier3 = kwh_total（容差内）",
    "amount_yuan.half_up": "电费 amount_yuan 是 amount_exact_yuan 四舍五入到分（误差不超过半分）",
    "amount_yuan.rounded": "电费 amount_yuan 精确到 0.01 元",
    "consumption_yuan.non_negative": "消费金额 consumption_yuan ≥ 0（电价为正时电量 ≥ 0）",
    "difference_yuan.identity": "差额 difference_yuan = 表内余额 meter_balance_yuan − 计算余额 balance_yuan",
    "dataset.known": "dataset 是已知的接入数据集",
    "line.positive": "行号从 1 起（表头为第 1 行），整个文件的问题行号为空",
    "recovery_rate.range": "电费回收率 recovery_rate 在 0 到 1 之间（实收不超过应收）",
    "area.customers": "台区停电影响该台区在运的全部用户",
    "rank.by_kwh_at_stake": "工单按涉及电量从大到小排序",
    "aging.bucket": "账龄 aging 按逾期天数 overdue_days 分为 current、1-30、31-90、91-180、>180",
    "credit_score.sum_of_points": "信用分 credit_score = 100 − 各扣分理由的分数（限于 0-100）：每一分都有理由",
    "overdue_yuan.within_arrears": "逾期金额 overdue_yuan ≤ max(欠费 arrears_yuan, 0)：逾期部分是欠费的一部分",
    "stop_notice.notice_period": "停电通知送达至少 3 天后才停电（供电营业规则）",
    "stop_notice.overdue": "只有逾期超过 30 天的电费才发停电通知",
    "unplanned.subset": "故障停电用户次数不超过停电用户总次数（customer_interruptions_unplanned ≤ customer_interruptions）",
    "back_charge.price": "追补电费 back_charge_yuan = 窃电量 × 用户电价（精确到 0.01 元）",
    "penalty.multiple": "违约使用电费 penalty_yuan = 倍数 × 追补电费（精确到 0.01 元，供电营业规则）",
}

#: by the last word of the kind, for rules of the same shape on any column
ZH_BY_LAST_WORD: dict[str, str] = {
    "codes": "{cols} 取值在代码表内：{values}",
    "unique": "{cols} 唯一",
    "not_null": "{cols} 不为空",
    "non_negative": "{col} 不小于 0",
    "positive": "{col} 大于 0",
    "at_least_1": "{col} 不小于 1",
    "range": "{col} 在允许范围内",
    "identity": "{col} 满足恒等式（容差内）",
    "definition": "{col} 按定义计算（容差内）",
    "sum": "{col} 各项之和等于合计（容差内）",
    "present": "{col} 存在",
    "matches_time": "{col} 是对应时间的本地日期",
}

_SUBJECT = re.compile(r"^\(?(?P<cols>[^()]+?)\)? (?:is unique|never empty|is one of (?P<values>.*))$")


def kind(rule: str) -> str:
    """``meter_daily.key.unique`` -> ``key.unique``."""
    return rule.split(".", 1)[1] if "." in rule else rule


def zh(rule: str, description: str) -> str:
    """The Chinese description of a rule; KeyError when none is known (a test lists them)."""
    k = kind(rule)
    last = k.rsplit(".", 1)[-1]
    template = ZH_BY_KIND.get(k) or ZH_BY_LAST_WORD.get(last)
    if template is None and last.endswith("_share"):
        template = "{col} 的比例不超过配置的上限"
    if template is None:
        raise KeyError(
            f"no Chinese description for rule {rule!r} ({description!r}): add its kind to checks/descriptions.py"
        )
    match = _SUBJECT.match(description)
    cols = match.group("cols") if match else k.split(".", 1)[0]
    values = (match.group("values") if match else None) or ""
    return template.format(cols=cols, col=k.split(".", 1)[0], values=values)


def title(rule: str, description: str) -> str:
    """The readable name Data Docs show: the rule, then English and Chinese."""
    return f"{rule}: {description} / {zh(rule, description)}"
