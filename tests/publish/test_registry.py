"""The registry finds every table contract in schemas/ without being told about it."""

from __future__ import annotations

import sys
import types

import polars as pl
import pytest

from meterlake.publish import registry
from meterlake.schemas import Column, Table
from meterlake.schemas.meter_daily import METER_DAILY
from meterlake.schemas.quarantine import QUARANTINE


def test_finds_marts_and_clean_tables() -> None:
    tables = registry.tables()
    marts = registry.marts()
    assert marts["meter_daily"] is METER_DAILY
    assert marts["quarantine"] is QUARANTINE
    assert {t.name for t in registry.tables("clean")} >= {"archive", "curves", "events", "purchases", "registers"}
    # marts first, then clean tables, each by name
    layers = [t.layer for t in tables]
    assert layers == sorted(layers, key=lambda layer: registry.LAYERS.index(layer))
    names = [t.name for t in tables if t.layer == "marts"]
    assert names == sorted(names)


def test_a_new_schema_module_appears_without_edits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A module found by pkgutil is imported and its Table collected."""
    module = types.ModuleType("meterlake.schemas.zz_probe")
    probe = Table("zz_probe", "probe", (Column("date", pl.Date(), "d"),), partition_by="date")
    module.ZZ = probe  # type: ignore[attr-defined]
    real = registry.schema_modules

    def with_probe():
        return [*real(), module]

    monkeypatch.setattr(registry, "schema_modules", with_probe)
    assert registry.marts()["zz_probe"] is probe


def test_two_different_contracts_with_one_name_are_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("meterlake.schemas.zz_clash")
    module.CLASH = Table("meter_daily", "another meter_daily", (Column("date", pl.Date(), "d"),))  # type: ignore[attr-defined]
    real = registry.schema_modules
    monkeypatch.setattr(registry, "schema_modules", lambda: [*real(), module])
    with pytest.raises(registry.RegistryError, match="meter_daily is declared twice with different contracts"):
        registry.tables()


def test_a_broken_schema_module_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import meterlake.schemas as package

    (tmp_path / "zz_broken.py").write_text("raise ValueError('half-written')\n", encoding="utf-8")
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "meterlake.schemas.zz_broken", raising=False)
    with pytest.raises(
        registry.RegistryError, match=r"schema module meterlake.schemas.zz_broken .* ValueError: half-written"
    ):
        registry.tables()


def test_no_published_table_has_a_card_number_column() -> None:
    for table in registry.tables():
        assert "card_no" not in table.names, f"{table.layer}/{table.name} would publish card numbers"
