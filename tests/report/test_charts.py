"""Inline SVG charts: well-formed, one mark per value, gaps for missing values."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from meterlake.report import charts


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # raises on malformed markup


def titles(root: ET.Element, tag: str) -> list[str]:
    return [el.findtext("title") or "" for el in root.iter(tag) if el.find("title") is not None]


def test_bar_chart_has_one_bar_per_value_with_its_figure() -> None:
    root = parse(charts.bar_chart(["A1", "A2", "A3"], [0.05, None, -0.02], title="rates", fmt=charts.percent))
    assert titles(root, "rect") == ["A1: 5.00%", "A3: -2.00%"]
    assert "no value" in "".join(root.itertext())
    assert root.get("role") == "img" and root.get("aria-label") == "rates"


def test_bar_chart_reference_and_axis_floor() -> None:
    root = parse(
        charts.bar_chart(
            ["x"], [0.97], title="t", fmt=charts.percent, reference=1.0, reference_label="100%", axis_min=0.9
        )
    )
    assert titles(root, "line") == ["100%"]
    assert "axis starts at 90.00%" in "".join(root.itertext())


def test_line_chart_breaks_at_missing_values() -> None:
    root = parse(charts.line_chart(["d1", "d2", "d3", "d4", "d5"], {"rate": [0.1, 0.2, None, 0.3, 0.4]}, title="t"))
    assert len(list(root.iter("polyline"))) == 2
    assert len(titles(root, "circle")) == 4


def test_column_chart_stacks_series() -> None:
    root = parse(
        charts.column_chart(
            ["d1", "d2"], {"actual": [3.0, 4.0], "missing": [1.0, 0.0]}, title="q", colors=charts.STATUS_COLORS
        )
    )
    assert titles(root, "rect") == ["d1 actual: 3", "d1 missing: 1", "d2 actual: 4"]


def test_text_is_escaped() -> None:
    root = parse(charts.bar_chart(['<b>&"x"'], [1.0], title="a < b"))
    assert '<b>&"x"' in "".join(root.itertext())


def test_no_network_reference() -> None:
    svg = charts.line_chart(["a"], {"s": [1.0]}, title="t") + charts.bar_chart(["a"], [1.0], title="t")
    assert "http" not in svg and "href" not in svg


@pytest.mark.parametrize(
    ("lo", "hi"),
    [pytest.param(0.0, 1.0, id="unit"), pytest.param(-0.07, 0.31, id="rates"), pytest.param(5.0, 5.0, id="flat")],
)
def test_ticks_cover_the_range(lo: float, hi: float) -> None:
    ticks = charts._nice_ticks(lo, hi)
    assert ticks[0] <= lo and ticks[-1] >= hi
    assert ticks == sorted(ticks)
