"""Thresholds and tariffs: versioned TOML files, validated into typed models.

The shipped defaults are in ``config/`` of the repository (installed as
``meterlake.defaults``). A user points ``METERLAKE_CONFIG_DIR`` at a folder of
their own; a file there replaces the shipped file of the same name, whole.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file is missing or does not validate."""


def config_text(name: str, config_dir: Path | None = None) -> tuple[str, str]:
    """The text of ``<name>.toml`` and where it came from (user folder first)."""
    if config_dir is not None:
        path = Path(config_dir) / f"{name}.toml"
        if path.exists():
            return path.read_text(encoding="utf-8"), str(path)
    ref = resources.files("meterlake.defaults") / f"{name}.toml"
    if not ref.is_file():
        raise ConfigError(f"no configuration file {name}.toml in {config_dir or 'the shipped defaults'}")
    return ref.read_text(encoding="utf-8"), f"meterlake.defaults/{name}.toml"


def load_raw(name: str, config_dir: Path | None = None) -> dict[str, Any]:
    text, where = config_text(name, config_dir)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from exc


def load(name: str, model: type[M], config_dir: Path | None = None) -> M:
    """Load ``<name>.toml`` into ``model``; errors name the file and the field."""
    raw = load_raw(name, config_dir)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        _, where = config_text(name, config_dir)
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{where}: {problems}") from exc
