"""Data Docs that render without the internet.

Great Expectations' page templates load Bootstrap, jQuery, bootstrap-table, Font
Awesome, Vega and more from public CDNs, so on a utility intranet the index renders
blank. After every build, :func:`make_offline` rewrites the site's pages to load the
copies vendored in ``checks/static/vendor`` (copied into the site's
``static/meterlake/``), drops what the pages do not need, and points the stylesheet's
one remote image at GX's own local logo. A page that still names a remote asset after
that is an error: the site would not render offline.
"""

from __future__ import annotations

import os
import re
import shutil
from functools import partial
from pathlib import Path

VENDOR = Path(__file__).resolve().parent / "static" / "vendor"
#: where the vendored files go inside the Data Docs site
SITE_VENDOR = Path("static") / "meterlake"

#: remote asset -> vendored file, by the URL's last part (version pinned by the vendor copy)
VENDORED: dict[str, str] = {
    "bootstrap.min.css": "bootstrap.min.css",
    "bootstrap.min.js": "bootstrap.min.js",
    "jquery-3.7.1.min.js": "jquery.min.js",
    "popper.min.js": "popper.min.js",
    "bootstrap-table.min.css": "bootstrap-table.min.css",
    "bootstrap-table.min.js": "bootstrap-table.min.js",
    "bootstrap-table-filter-control.min.js": "bootstrap-table-filter-control.min.js",
    "bootstrap-table-filter-control.min.css": "bootstrap-table-filter-control.min.css",
    "bootstrap-table-filter-control.css": "bootstrap-table-filter-control.min.css",
    "bootstrap-datepicker.min.js": "bootstrap-datepicker.min.js",  # the index's run-time filter
    "bootstrap-datepicker.min.css": "bootstrap-datepicker.min.css",
    "all.min.css": "icons.css",  # Font Awesome: the five icons the pages use, as glyphs
}
#: remote assets the pages work without (charts of profiling pages, a dark theme)
DROPPED = ("vega@5", "vega-lite@5", "vega-embed@6", "bootstrap-prefers-dark.css")

_TAG = re.compile(
    r"<(?P<tag>link|script)\b(?P<attrs>[^>]*?)\b(?P<attr>href|src)=\"(?P<url>https?://[^\"]+)\"(?P<rest>[^>]*)>"
    r"(?:\s*</script>)?",
    re.IGNORECASE,
)
_SRI = re.compile(r"\s(?:integrity|crossorigin)=\"[^\"]*\"|\scrossorigin(?=[\s>])", re.IGNORECASE)
#: an asset a page would fetch: link href, script/img/source src, CSS url(...)
REMOTE_ASSET = re.compile(
    r"<(?:link|script|img|source|iframe)\b[^>]*\b(?:href|src)=\"https?://|url\(\s*['\"]?https?://", re.IGNORECASE
)
_REMOTE_LOGO = re.compile(r"url\('https://great-expectations-web-assets[^']*'\)")
#: GX's logo in the page header, from its web-assets bucket: GX's own local copy instead
_REMOTE_IMG = re.compile(r'src="https://great-expectations-web-assets[^"]*"')


class OfflineError(RuntimeError):
    """A Data Docs page still loads something from the network."""


def _local(match: re.Match[str], page: Path, site: Path) -> str:
    url = match.group("url")
    name = url.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
    if name in VENDORED:
        rel = os.path.relpath(site / SITE_VENDOR / VENDORED[name], page.parent).replace(os.sep, "/")
        # the same tag, the local copy named; a subresource-integrity hash is for CDNs
        return _SRI.sub("", match.group(0).replace(url, rel))
    if any(d in url for d in DROPPED):
        return ""
    return match.group(0)  # unknown: left for the check below to report


def make_offline(site: Path) -> list[Path]:
    """Rewrite the pages and stylesheets of the Data Docs site at ``site``; return the
    files changed. Raises :class:`OfflineError` naming a page and the asset it still
    loads from the network."""
    site = Path(site)
    target = site / SITE_VENDOR
    target.mkdir(parents=True, exist_ok=True)
    for f in VENDOR.iterdir():
        dest = target / f.name
        if f.is_file() and (not dest.exists() or dest.stat().st_size != f.stat().st_size):
            shutil.copyfile(f, dest)
    changed = []
    for path in sorted([*site.rglob("*.html"), *site.rglob("*.css")]):
        if SITE_VENDOR in path.relative_to(site).parents:
            continue
        text = path.read_text(encoding="utf-8")
        if "http://" not in text and "https://" not in text:
            continue
        new = _REMOTE_LOGO.sub("url('../images/logo-long-vector.svg')", text)
        if path.suffix == ".html":
            new = _TAG.sub(partial(_local, page=path, site=site), new)
            logo = os.path.relpath(site / "static" / "images" / "logo-long-vector.svg", path.parent)
            new = _REMOTE_IMG.sub(f'src="{logo.replace(os.sep, "/")}"', new)
        found = REMOTE_ASSET.search(new)
        if found:
            start = max(found.start() - 60, 0)
            raise OfflineError(
                f"Data Docs page {path} still loads from the network: ...{new[start : found.end() + 80]}... "
                "(vendor it in checks/static/vendor or add it to checks/offline.py)"
            )
        if new != text:
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(new, encoding="utf-8")
            tmp.replace(path)
            changed.append(path)
    return changed
