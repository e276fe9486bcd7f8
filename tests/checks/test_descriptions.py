"""Every rule has a readable name in English and Chinese."""

from __future__ import annotations

import pytest

from meterlake.checks.descriptions import title, zh
from meterlake.checks.suites import contract_suite
from meterlake.publish import registry


def all_rules() -> list[tuple[str, str]]:
    tables = [*registry.tables(), *(ld.clean for ld in registry.landings())]
    rules = {}
    for table in tables:
        suite = contract_suite(table)
        rules.update({r.rule: r.description for r in suite.rules})
        rules.update({r.rule: r.description for r in suite.row_rules})
    return sorted(rules.items())


def test_every_rule_of_every_contract_has_a_chinese_description() -> None:
    rules = all_rules()
    assert len(rules) > 100
    missing = []
    for rule, description in rules:
        try:
            text = zh(rule, description)
        except KeyError:
            missing.append(rule)
            continue
        assert any("\u4e00" <= ch <= "\u9fff" for ch in text), (rule, text)
    assert missing == []


@pytest.mark.parametrize(
    ("rule", "description", "expected"),
    [
        pytest.param(
            "curves.required.not_null",
            "meter_id never empty",
            "curves.required.not_null: meter_id never empty / meter_id 不为空",
            id="not-null",
        ),
        pytest.param(
            "meter_daily.key.unique",
            "(meter_id, date) is unique",
            "meter_daily.key.unique: (meter_id, date) is unique / 主键 meter_id, date 唯一，没有重复行",
            id="key",
        ),
        pytest.param(
            "archive.role.codes",
            "role is one of feeder_head, area_master, customer",
            "archive.role.codes: role is one of feeder_head, area_master, customer"
            " / role 取值在代码表内：feeder_head, area_master, customer",
            id="codes",
        ),
        pytest.param(
            "purchases.amount_yuan.positive",
            "amount_yuan > 0",
            "purchases.amount_yuan.positive: amount_yuan > 0 / amount_yuan 大于 0",
            id="positive",
        ),
    ],
)
def test_titles(rule: str, description: str, expected: str) -> None:
    assert title(rule, description) == expected


def test_an_unknown_kind_is_named() -> None:
    with pytest.raises(KeyError, match=r"no Chinese description for rule 'x\.odd\.thing'"):
        zh("x.odd.thing", "something odd")
