"""`make install` compiles the project's bytecode: a run started where Python writes none
(PYTHONDONTWRITEBYTECODE) then compiles none of its modules from source.

The folders it compiles are the Makefile's ``SOURCES``; each probe keeps its bytecode
under a temporary ``pycache_prefix``, so the test leaves the checkout as it was.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: the folders installed as the meterlake package (pyproject.toml's package-dir)
FOLDERS = ("meterlake", "transforms", "schemas", "checks", "config")

#: every stage's module imported, as a run of all stages does; the files of the project's
#: folders (not its virtualenv's: under the prefix, their bytecode is compiled too) compiled
#: from source meanwhile are printed
PROBE = """
import importlib, importlib.machinery, json, sys
root, folders = sys.argv[1], sys.argv[2].split(",")
compiled = []
to_code = importlib.machinery.SourceFileLoader.source_to_code
def source_to_code(self, data, path, *args, **kwargs):
    rel = str(path)[len(root) + 1 :]
    if str(path).startswith(root) and rel.split("/")[0] in folders:
        compiled.append(rel)
    return to_code(self, data, path, *args, **kwargs)
importlib.machinery.SourceFileLoader.source_to_code = source_to_code
from meterlake import pipeline
for stage in pipeline.STAGES:
    importlib.import_module(f"meterlake.stages.{stage}")
print(json.dumps(sorted(compiled)))
"""


def _sources() -> list[str]:
    found = re.search(r"^SOURCES := (.+)$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)
    assert found is not None
    return found[1].split()


def test_the_makefile_compiles_every_source_folder_the_package_installs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    folders = set(pyproject["tool"]["setuptools"]["package-dir"].values())
    assert folders == set(FOLDERS)
    assert sorted(_sources()) == sorted(FOLDERS)


def _compiled_from_source(prefix: Path) -> list[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-X", f"pycache_prefix={prefix}", "-c", PROBE, str(ROOT), ",".join(FOLDERS)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_with_the_bytecode_compiled_a_run_compiles_none_of_its_modules(tmp_path: Path) -> None:
    # without it, every module of the project the run imports is compiled from source
    before = _compiled_from_source(tmp_path / "none")
    assert "meterlake/pipeline.py" in before and "transforms/ingest.py" in before
    assert "meterlake/stages/publish.py" in before and "schemas/meter_daily.py" in before
    prefix = tmp_path / "compiled"
    subprocess.run(
        [sys.executable, "-X", f"pycache_prefix={prefix}", "-m", "compileall", "-q", *_sources()],
        check=True,
        cwd=ROOT,
        timeout=300,
    )
    assert _compiled_from_source(prefix) == []
