"""Every table contract the project declares, found by importing ``meterlake.schemas``.

Each module in ``schemas/`` declares its table as a module-level :class:`Table`
constant (``METER_DAILY``, ``QUARANTINE``...); landing modules carry their clean
table as ``LANDING.clean``. :func:`tables` imports every module of the package and
collects them, so a new schema module appears in the data dictionary, the DuckDB
views and the PostgreSQL DDL without any edit here.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from ..schemas import Table
from ..schemas.landing import Landing

SCHEMA_PACKAGE = "meterlake.schemas"

#: order of the layers in listings: what analysts read first
LAYERS = ("marts", "clean")


class RegistryError(RuntimeError):
    """A schema module could not be imported, or two modules declare the same table."""


def schema_modules() -> list[ModuleType]:
    """Import and return every module of ``meterlake.schemas`` (private ones included)."""
    package = importlib.import_module(SCHEMA_PACKAGE)
    modules = [package]
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        name = f"{SCHEMA_PACKAGE}.{info.name}"
        try:
            modules.append(importlib.import_module(name))
        except Exception as exc:  # a broken contract must not be skipped silently
            raise RegistryError(
                f"schema module {name} ({package.__path__[0]}/{info.name}.py) does not import: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    return modules


def _declared(module: ModuleType) -> list[Table]:
    found: list[Table] = []
    for value in vars(module).values():
        if isinstance(value, Table):
            found.append(value)
        elif isinstance(value, Landing):
            found.append(value.clean)
    return found


def tables(layer: str | None = None) -> list[Table]:
    """All declared tables (optionally of one layer), marts first, then by name.

    The same object reached from several modules (``schemas/__init__`` re-exports
    some) counts once; two *different* tables with the same layer and name are a
    contract error.
    """
    seen: dict[tuple[str, str], tuple[Table, str]] = {}
    for module in schema_modules():
        for table in _declared(module):
            ident = (table.layer, table.name)
            if ident in seen:
                other, where = seen[ident]
                if other is not table and other != table:
                    raise RegistryError(
                        f"table {table.layer}/{table.name} is declared twice with different "
                        f"contracts: in {where} and in {module.__name__}"
                    )
                continue
            seen[ident] = (table, module.__name__)
    out = [t for t, _ in seen.values() if layer is None or t.layer == layer]
    rank = {name: i for i, name in enumerate(LAYERS)}
    return sorted(out, key=lambda t: (rank.get(t.layer, len(LAYERS)), t.layer, t.name))


def marts() -> dict[str, Table]:
    """The analyst-facing tables, by name."""
    return {t.name: t for t in tables("marts")}


def landings() -> list[Landing]:
    """The landing-zone contracts (input files), by dataset name."""
    found: dict[str, Landing] = {}
    for module in schema_modules():
        for value in vars(module).values():
            if isinstance(value, Landing):
                found.setdefault(value.dataset, value)
    return [found[k] for k in sorted(found)]
