"""The repository stands alone: it cites itself or public sources, never files outside it.

Code, docs, tests, Data Docs notes and the report point into the repository
(``docs/domain.md`` and its headings) or to a published source (DL/T 645-2007, CPUC VEE Rev 2.0 ...),
never to notes that only the authors had, nor to tracker issue numbers.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: outside references: the authors' private notes and tracker issue numbers
OUTSIDE = re.compile(r"DOMAIN\.md|ECOSYSTEM\.md|STYLE\.md|[Ii]ssue [0-9]+")
#: a pointer into the domain notes: docs/domain.md, hash, a heading anchor
DOMAIN_LINK = re.compile(r"docs/domain\.md#([a-z0-9-]+)")
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".sh", ".cfg", ".ini", ".yml", ".yaml", ".html", ".json", ""}


def repo_files() -> list[Path]:
    """The tracked files (every file under the repository outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
        paths = [REPO / p for p in out.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "demo", ".airflow", "build", "bench-data"}
        paths = [p for p in REPO.rglob("*") if not skip & set(p.relative_to(REPO).parts)]
    return [p for p in paths if p.is_file() and p.suffix in TEXT_SUFFIXES]


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return ""


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def test_no_reference_leaves_the_repository() -> None:
    found = [
        f"{p.relative_to(REPO)}:{n}: {line.strip()}"
        for p in repo_files()
        for n, line in enumerate(_text(p).splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert found == [], "cite docs/domain.md#... or a public source instead:\n" + "\n".join(found)


def test_every_domain_link_names_a_heading() -> None:
    headings = [line.lstrip("#") for line in _text(REPO / "docs" / "domain.md").splitlines() if line.startswith("#")]
    anchors = {github_anchor(h) for h in headings}
    broken = sorted(
        f"{p.relative_to(REPO)}: #{a}" for p in repo_files() for a in DOMAIN_LINK.findall(_text(p)) if a not in anchors
    )
    assert broken == [], f"links to headings docs/domain.md does not have (it has {sorted(anchors)})"


@pytest.mark.parametrize(
    "line, outside",
    [
        pytest.param("see DOMAIN" + ".md VEE item 9", True, id="domain-notes"),
        pytest.param("GX is slow (ECOSYSTEM" + ".md)", True, id="ecosystem-notes"),
        pytest.param("issue " + "3 point 4: blocking expectations", True, id="issue-number"),
        pytest.param("Issue " + "12 asks for it", True, id="issue-number-capital"),
        pytest.param("docs/domain.md#validation-checks item 9", False, id="into-the-repo"),
        pytest.param("GX #12096 renders some pages not at all", False, id="upstream-bug"),
    ],
)
def test_the_pattern(line: str, outside: bool) -> None:
    assert bool(OUTSIDE.search(line)) is outside


def test_the_anchor_rule() -> None:
    assert github_anchor(" IC-card prepayment") == "ic-card-prepayment"
    assert github_anchor(" A county in numbers") == "a-county-in-numbers"
