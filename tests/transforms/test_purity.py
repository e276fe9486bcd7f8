"""transforms/ is pure: it computes on frames and never reads or writes files or the network.

Like the DAG parse test, this reads the source (the AST of every module), so a stray
``open()`` or ``import requests`` fails here before it reaches a stage.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TRANSFORMS = Path(__file__).resolve().parents[2] / "transforms"
MODULES = sorted(TRANSFORMS.glob("*.py"))

#: third-party packages a transform may use: frames, arrays, validated config models,
#: and scikit-learn's in-memory classifier (threadpoolctl limits its OpenMP threads)
THIRD_PARTY = {"polars", "pyarrow", "numpy", "pydantic", "sklearn", "threadpoolctl"}
#: standard-library modules that compute only (no files, sockets, processes, environment)
STDLIB_PURE = {
    "__future__",
    "bisect",
    "collections",
    "contextlib",
    "csv",  # parses strings handed to it
    "dataclasses",
    "datetime",
    "decimal",
    "enum",
    "functools",
    "gzip",  # decompresses bytes handed to it (gzip.decompress)
    "hashlib",
    "hmac",
    "itertools",
    "json",
    "math",
    "operator",
    "re",
    "statistics",
    "string",
    "typing",
    "zlib",
}
#: names a transform may take from a standard-library module that also does I/O or starts
#: processes (``from io import BytesIO``: a file over bytes in memory; ``import io`` stays
#: refused; a thread pool computes beside the caller, a process pool stays refused)
STDLIB_PURE_NAMES = {"io.BytesIO", "concurrent.futures.Future", "concurrent.futures.ThreadPoolExecutor"}
#: standard-library modules whose names are judged one by one (STDLIB_PURE_NAMES)
BY_NAME = {"io", "concurrent.futures"}
#: the repository's own pure packages
OWN = {"meterlake.schemas", "meterlake.transforms"}
#: calls that touch files whatever they are called on
IO_CALLS = {"open", "exec", "eval", "__import__"}
IO_METHODS = {"read_text", "read_bytes", "write_text", "write_bytes", "mkdir", "unlink", "touch", "iterdir", "glob"}
IO_PREFIXES = ("scan_", "sink_", "write_")
#: polars readers that take a path (pl.read_csv is allowed: ingest parses bytes in memory with it)
IO_READERS = {"read_parquet", "read_ipc", "read_database", "read_excel", "read_delta", "read_avro", "read_json"}


def _imports(tree: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: another transforms module, or ..schemas
                found.append((node.lineno, "meterlake.transforms" if node.level == 1 else f"meterlake.{node.module}"))
            elif node.module in BY_NAME:  # judged name by name (see STDLIB_PURE_NAMES)
                found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module or ""))
    return found


def _allowed(module: str) -> bool:
    if module in STDLIB_PURE_NAMES:
        return True
    top = module.split(".")[0]
    return top in THIRD_PARTY or top in STDLIB_PURE or any(module == o or module.startswith(o + ".") for o in OWN)


def _io_calls(tree: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and (f.id in IO_CALLS or f.id == "Path"):
            found.append((node.lineno, f.id))
        elif isinstance(f, ast.Attribute):
            name = f.attr
            if name in IO_METHODS or name.startswith(IO_PREFIXES) or name in IO_READERS:
                found.append((node.lineno, name))
    return found


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in MODULES])
def test_imports_only_pure_modules(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = [f"{path.name}:{line} imports {mod}" for line, mod in _imports(tree) if not _allowed(mod)]
    assert bad == [], "transforms/ may import only polars, pyarrow, numpy, pydantic, sklearn, pure stdlib and schemas"


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in MODULES])
def test_calls_no_file_io(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = [f"{path.name}:{line} calls {name}()" for line, name in _io_calls(tree)]
    assert bad == [], "transforms/ reads and writes nothing: the stages do I/O through meterlake/lake.py"


@pytest.mark.parametrize(
    "source, problem",
    [
        pytest.param("import os\n", "imports os", id="os"),
        pytest.param("import io\n", "imports io", id="io"),
        pytest.param("from io import FileIO\n", "imports io.FileIO", id="io-file"),
        pytest.param("from pathlib import Path\n", "imports pathlib", id="pathlib"),
        pytest.param(
            "from concurrent.futures import ProcessPoolExecutor\n",
            "imports concurrent.futures.ProcessPoolExecutor",
            id="process-pool",
        ),
        pytest.param("import concurrent.futures\n", "imports concurrent.futures", id="concurrent"),
        pytest.param("import requests\n", "imports requests", id="network"),
        pytest.param("from meterlake import lake\n", "imports meterlake", id="lake"),
        pytest.param("from ..stages import ingest\n", "imports meterlake.stages", id="stage"),
        pytest.param("x = open('f').read()\n", "calls open()", id="open"),
        pytest.param("df.write_parquet('x')\n", "calls write_parquet()", id="write"),
        pytest.param("pl.scan_parquet('x')\n", "calls scan_parquet()", id="scan"),
        pytest.param("p.read_text()\n", "calls read_text()", id="read_text"),
    ],
)
def test_the_checks_catch_io(source: str, problem: str) -> None:
    tree = ast.parse(source)
    imports = [f"imports {m}" for _, m in _imports(tree) if not _allowed(m)]
    calls = [f"calls {n}()" for _, n in _io_calls(tree)]
    assert problem in imports + calls
