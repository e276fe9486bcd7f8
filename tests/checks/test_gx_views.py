"""The Data Docs views: GX's page views on templates compiled once per process."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from meterlake.checks import runner

runner.import_gx()

from great_expectations.render.view import DefaultJinjaPageView  # noqa: E402

from meterlake.checks import gx_views  # noqa: E402

#: the render time a page adds to its links (``?d=20261207T221110.413801Z``)
STAMP = re.compile(r"\d{8}T\d{6}\.\d{6}Z")


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    gx_views.COMPILED.clear()
    yield
    gx_views.COMPILED.clear()


def test_the_site_names_the_views(tmp_path: Path) -> None:
    context = runner.open_context(tmp_path / "gx", tmp_path / "docs")
    site = dict(context.variables.data_docs_sites)[runner.SITE_NAME]
    assert site["site_index_builder"]["view"] == {"module_name": runner.VIEWS, "class_name": "IndexPageView"}
    for section in ("expectations", "validations"):
        assert site["site_section_builders"][section]["view"] == {"module_name": runner.VIEWS, "class_name": "PageView"}


def test_templates_compiled_once_are_loaded_by_every_later_view(fresh_cache: None) -> None:
    count = gx_views.compile_templates()
    assert count > 10 and len(gx_views.COMPILED) == count
    for view in (gx_views.PageView(), gx_views.IndexPageView()):

        def no_compile(*args: object, **kwargs: object) -> None:
            raise AssertionError("compiled again")

        view.env.compile = no_compile  # type: ignore[method-assign,assignment]
        view.env.get_template("page.j2")
        view.env.get_template("index_page.j2")


def test_a_view_compiles_what_the_cache_lacks(fresh_cache: None) -> None:
    gx_views.PageView().env.get_template("page.j2")
    assert len(gx_views.COMPILED) >= 1


def test_a_page_rendered_from_compiled_templates_is_gx_own(fresh_cache: None) -> None:
    from great_expectations.render.renderer import ExpectationSuitePageRenderer

    document = ExpectationSuitePageRenderer().render(runner.gate_suite())
    gx_views.compile_templates()
    ours, theirs = gx_views.PageView().render(document), DefaultJinjaPageView().render(document)
    assert len(ours) > 5_000
    # the pages stamp the time they were rendered into their links' URLs
    assert STAMP.sub("", ours) == STAMP.sub("", theirs)
