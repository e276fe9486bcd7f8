"""Run mypy over the repository with the installed package layout.

``pyproject.toml`` installs the top-level folders under the ``meterlake`` namespace
(``transforms/`` is ``meterlake.transforms``, ``config/`` is ``meterlake.defaults`` ...).
An editable install maps them with an import hook, which static checkers cannot follow
(https://github.com/python/mypy/issues/13392), so this script gives mypy every file with
its installed module name. Options come from ``[tool.mypy]`` in ``pyproject.toml``.

    python scripts/typecheck.py            # what `make lint` runs
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from mypy.build import build
from mypy.errors import CompileError
from mypy.main import process_options
from mypy.modulefinder import BuildSource

ROOT = Path(__file__).resolve().parent.parent
#: folders checked besides the packages (scripts, DAG files, tests, benchmarks)
EXTRA = ("dags", "scripts", "benchmarks", "tests")


def package_dirs() -> dict[str, str]:
    """Folder -> installed package name, from ``[tool.setuptools] package-dir``."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {folder: package for package, folder in pyproject["tool"]["setuptools"]["package-dir"].items()}


def sources() -> list[BuildSource]:
    out: list[BuildSource] = []
    for folder, package in package_dirs().items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out.append(BuildSource(str(path), ".".join([package, *parts]), None, str(ROOT)))
    for folder in EXTRA:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if folder == "tests" and len(rel) == 1 and not rel[0].startswith(("test_", "conftest")):
                # a helper beside the tests, which they import by its own name (pytest puts
                # tests/ on sys.path): one name, or mypy finds the file twice
                module = rel[0]
            elif folder == "tests":  # tests.<mirror of the tree>, so [tool.mypy] overrides can name them
                module = ".".join(["tests", *rel])
            else:  # DAG files, scripts and benchmarks run with their own folder on sys.path
                module = ".".join(rel)
            out.append(BuildSource(str(path), module, None, str(ROOT / folder)))
    return out


def main() -> int:
    _, options = process_options(["--config-file", str(ROOT / "pyproject.toml")], require_targets=False)
    targets = sources()
    try:
        result = build(targets, options)
    except CompileError as exc:
        print("\n".join(exc.messages), file=sys.stderr)
        return 2
    for line in result.errors:
        print(line)
    n = sum(": error:" in line for line in result.errors)
    files = len({line.split(":", 1)[0] for line in result.errors if ": error:" in line})
    print(f"mypy: {n} errors in {files} files" if n else f"mypy: no issues in {len(targets)} files")
    return 1 if n else 0


if __name__ == "__main__":
    sys.exit(main())
