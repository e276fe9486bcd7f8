"""The data dictionary is generated from schemas/ and the committed copy is current."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from meterlake import dictionary
from meterlake.publish import registry


def test_committed_dictionary_is_not_stale() -> None:
    committed = dictionary.DOCS_PATH.read_text(encoding="utf-8") if dictionary.DOCS_PATH.exists() else ""
    assert committed == dictionary.render_markdown(), (
        f"{dictionary.DOCS_PATH} is stale (a schema changed): regenerate it with "
        "`.venv/bin/python -m meterlake.dictionary` and commit it"
    )


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    out = tmp_path / "dd.md"
    out.write_text("old\n", encoding="utf-8")
    assert dictionary.main(["--out", str(out), "--check"]) == 1
    assert dictionary.main(["--out", str(out)]) == 0
    assert dictionary.main(["--out", str(out), "--check"]) == 0


@pytest.mark.parametrize("table", [pytest.param(t, id=f"{t.layer}.{t.name}") for t in registry.tables()])
def test_every_table_and_column_is_documented_with_its_chinese_name(table) -> None:
    text = dictionary.render_markdown()
    assert f"### {table.name}" in text
    section = text.split(f'<a id="{table.layer}-{table.name}"></a>', 1)[1].split("<a id=", 1)[0]
    for col in table.columns:
        row = f"| `{col.name}` | {col.zh.replace('|', chr(92) + '|')} | {dictionary.type_name(col.dtype)} |"
        assert row in section, f"{table.name}.{col.name} missing or wrong in the dictionary"


def test_the_loss_rate_reads_as_analysts_say_it() -> None:
    text = dictionary.render_markdown()
    assert "| `loss_rate` | 线损率 | float64 | 1 |" in text
    assert "| `kwh` | 日正向有功电量 | float64 | kWh |" in text


def test_code_lists_of_a_schema_module_are_included() -> None:
    text = dictionary.render_markdown()
    quarantine = text.split('<a id="marts-quarantine"></a>', 1)[1]
    assert "| `superseded` | a later delivery of the same key disagrees; the later row wins |" in quarantine


def test_type_names() -> None:
    assert dictionary.type_name(pl.Int16()) == "int16"
    assert dictionary.type_name(pl.List(pl.Date())) == "list[date]"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]


def test_published_copies_are_self_contained(tmp_path: Path) -> None:
    md, html = dictionary.write_dictionary(tmp_path / "reports")
    assert md.read_text(encoding="utf-8") == dictionary.render_markdown()
    parser = _Links()
    parser.feed(html.read_text(encoding="utf-8"))
    assert "script" not in parser.tags and "link" not in parser.tags
    assert all(u.startswith("#") for u in parser.urls), parser.urls
    assert "台区月线损" in html.read_text(encoding="utf-8")
