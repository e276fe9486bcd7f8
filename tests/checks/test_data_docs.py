"""Data Docs: readable offline, and no landing value can run as script in them.

A value that reaches a Data Docs page (an unexpected value, a row's index column) came
from a landing file someone else wrote; the pages must show it as text. And the pages
must render on an intranet without internet access: they load nothing from the network.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import polars as pl
import pytest

from meterlake import pipeline
from meterlake.checks.offline import REMOTE_ASSET, OfflineError, make_offline
from meterlake.lake import Lake
from meterlake.schemas._base import Table
from meterlake.schemas.area_loss_daily import AREA_LOSS_DAILY
from meterlake.schemas.collection_daily import COLLECTION_DAILY
from meterlake.schemas.feeder_loss_daily import FEEDER_LOSS_DAILY
from meterlake.schemas.meter_daily import METER_DAILY
from meterlake.settings import Settings
from meterlake.stages import StageError

D1 = dt.date(2026, 1, 1)
TABLES = (METER_DAILY, AREA_LOSS_DAILY, FEEDER_LOSS_DAILY, COLLECTION_DAILY)
#: numbers that make every row fail a row-level rule, so its index (area_id, feeder_id,
#: scope) is listed on the validation page: loss beyond the plausible band, collection
#: below target
FAILING = {"loss_rate": 5.0, "success_rate": 0.5, "target_rate": 0.98, "meters_total": 10, "meters_read": 5}


def payload(column: str) -> str:
    return f"<script>alert('{column}')</script>"


def hostile(table: Table, n: int = 3) -> pl.DataFrame:
    """Rows of ``table`` whose every text column holds a script tag naming the column."""
    out = {}
    for c in table.columns:
        if c.dtype == pl.String:
            out[c.name] = pl.Series(c.name, [payload(c.name)] * n, dtype=c.dtype)
        elif c.dtype == pl.Date:
            out[c.name] = pl.Series(c.name, [D1] * n, dtype=c.dtype)
        elif c.name in FAILING:
            out[c.name] = pl.Series(c.name, [FAILING[c.name]] * n).cast(c.dtype)
        else:
            out[c.name] = pl.Series(c.name, [None] * n, dtype=c.dtype)
    return pl.DataFrame(out)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("xss") / "lake"
    lake = Lake(root)
    for table in TABLES:
        lake.write_partition(table, D1, hostile(table))
    settings = Settings(lake=root, landing=root.parent / "landing")
    with pytest.raises(StageError):  # the codes are all wrong: a blocking failure, Data Docs built
        pipeline.run_stage(settings, "check", [D1], "xss")
    return lake.reports / "data_docs"


def pages(site: Path) -> list[Path]:
    found = sorted(site.rglob("*.html"))
    assert found, f"no Data Docs under {site}"
    return found


@pytest.mark.parametrize(
    "column",
    sorted({c.name for t in TABLES for c in t.columns if c.dtype == pl.String}),
)
def test_no_text_column_value_appears_unescaped(site: Path, column: str) -> None:
    raw = payload(column)
    leaked = [str(p.relative_to(site)) for p in pages(site) if raw in p.read_text(encoding="utf-8")]
    assert leaked == []


def test_hostile_values_do_reach_the_pages_escaped(site: Path) -> None:
    """The test above means something: the values are on the pages, as text."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in pages(site))
    escaped = re.findall(r"&lt;script&gt;alert\(&#(?:39|x27);(\w+)&#(?:39|x27);\)&lt;/script&gt;", text)
    assert {"area_id", "feeder_id", "scope"} <= set(escaped), sorted(set(escaped))


def test_no_page_loads_anything_from_the_network(site: Path) -> None:
    remote = [
        str(p.relative_to(site))
        for p in [*pages(site), *site.rglob("*.css")]
        if REMOTE_ASSET.search(p.read_text(encoding="utf-8"))
    ]
    assert remote == []


def test_pages_load_the_vendored_bootstrap_and_jquery(site: Path) -> None:
    index = (site / "index.html").read_text(encoding="utf-8")
    assert 'href="static/meterlake/bootstrap.min.css"' in index
    assert 'src="static/meterlake/jquery.min.js"' in index
    assert 'src="static/meterlake/bootstrap-table.min.js"' in index
    for name in ("bootstrap.min.css", "jquery.min.js", "bootstrap-table.min.js", "icons.css"):
        assert (site / "static" / "meterlake" / name).stat().st_size > 0
    nested = next(p for p in pages(site) if p.parent != site)
    depth = len(nested.relative_to(site).parents) - 1
    assert f'src="{"../" * depth}static/meterlake/jquery.min.js"' in nested.read_text(encoding="utf-8")


def test_an_unknown_remote_asset_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text(
        '<html><script src="https://cdn.example.org/x.js"></script></html>', encoding="utf-8"
    )
    with pytest.raises(OfflineError, match="still loads from the network"):
        make_offline(tmp_path)


def test_known_assets_are_rewritten_and_dropped(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    page = tmp_path / "a" / "p.html"
    page.write_text(
        '<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>\n'
        '<script src="https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js" integrity="sha384-x" '
        'crossorigin="anonymous"></script>\n'
        '<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>\n'
        '<a href="https://greatexpectations.io">Great Expectations</a>\n',
        encoding="utf-8",
    )
    assert make_offline(tmp_path) == [page]
    assert page.read_text(encoding="utf-8") == (
        '<link rel="stylesheet" href="../static/meterlake/bootstrap.min.css"/>\n'
        '<script src="../static/meterlake/bootstrap.min.js"></script>\n'
        "\n"
        '<a href="https://greatexpectations.io">Great Expectations</a>\n'
    )
