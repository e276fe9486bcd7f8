"""Great Expectations' Data Docs views, with their page templates compiled once per process.

GX builds a new site builder, and with it a new Jinja environment per view, on every
``build_data_docs`` call, and compiles each page template it renders again (~0.1 s of
CPU a build, half the render of the gate's page). The views here are GX's own page and
index views whose environments share one in-memory bytecode cache
(:data:`COMPILED`), so a template is compiled once per process; the docs helper fills
it while it waits for the gate (:func:`compile_templates`), off the path from the gate
to the run's end. The pages are the same: the cache holds the code Jinja compiles from
each template's source, checked against that source on every load.

The site's configuration names these classes (:func:`meterlake.checks.runner.open_context`);
GX imports this module when it builds the site, after GX itself is imported.
"""

from __future__ import annotations

from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView
from jinja2 import BytecodeCache
from jinja2.bccache import Bucket


class _InMemory(BytecodeCache):
    """Compiled templates by Jinja's key (template name and file), for the life of the process."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)  # discarded by Jinja when the source changed

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()

    def clear(self) -> None:
        self._code.clear()

    def __len__(self) -> int:
        return len(self._code)


#: the process's compiled templates, shared by every view below
COMPILED = _InMemory()


class PageView(DefaultJinjaPageView):
    """GX's page view (suite and validation pages) on the shared compiled templates."""

    def __init__(self, custom_styles_directory: str | None = None, custom_views_directory: str | None = None) -> None:
        super().__init__(custom_styles_directory, custom_views_directory)
        self.env.bytecode_cache = COMPILED


class IndexPageView(DefaultJinjaIndexPageView):
    """GX's index page view on the shared compiled templates."""

    def __init__(self, custom_styles_directory: str | None = None, custom_views_directory: str | None = None) -> None:
        super().__init__(custom_styles_directory, custom_views_directory)
        self.env.bytecode_cache = COMPILED


def compile_templates() -> int:
    """Compile every page template of GX's views into :data:`COMPILED`; the number of templates."""
    env = PageView().env
    names = [name for name in env.list_templates() if name.endswith(".j2")]
    for name in names:
        env.get_template(name)
    return len(names)
