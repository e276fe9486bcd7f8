"""Tariff configuration: the shipped defaults, validation errors, the price calendar."""

from __future__ import annotations

import copy
import datetime as dt
import math
import tomllib
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pydantic import ValidationError

from meterlake import config
from meterlake.transforms.tariffs import TariffBook, parse_window, price_calendar

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "config" / "tariffs.toml"


@pytest.fixture
def raw() -> dict:
    return tomllib.loads(SHIPPED.read_text(encoding="utf-8"))


@pytest.fixture
def book(raw: dict) -> TariffBook:
    return TariffBook.model_validate(raw)


def _version(raw: dict, tariff: str, i: int = 0) -> dict:
    return raw["tariffs"][tariff]["versions"][i]


# the shipped defaults (CONTRACT §2) -------------------------------------------


def test_shipped_file_loads_through_the_config_loader() -> None:
    book = config.load("tariffs", TariffBook, REPO / "config")
    assert sorted(book.tariffs) == ["AGR_FLAT", "COM_TOU", "RES_TIER", "RES_TIER_TOU"]


@pytest.mark.parametrize(
    ("tariff", "prices", "thresholds", "adders", "basis"),
    [
        pytest.param(
            "RES_TIER",
            dict.fromkeys(("sharp", "peak", "flat", "valley"), 0.538),
            [2760, 4800],
            [0, 0.05, 0.30],
            "annual",
            id="RES_TIER",
        ),
        pytest.param(
            "RES_TIER_TOU",
            {"sharp": 0.568, "peak": 0.568, "flat": 0.288, "valley": 0.288},
            [2760, 4800],
            [0, 0.05, 0.30],
            "annual",
            id="RES_TIER_TOU",
        ),
        pytest.param(
            "COM_TOU", {"sharp": 1.10, "peak": 0.90, "flat": 0.60, "valley": 0.30}, [], [0], "none", id="COM_TOU"
        ),
        pytest.param(
            "AGR_FLAT", dict.fromkeys(("sharp", "peak", "flat", "valley"), 0.50), [], [0], "none", id="AGR_FLAT"
        ),
    ],
)
def test_shipped_defaults_are_the_contract(book, tariff, prices, thresholds, adders, basis) -> None:
    v = book.version_on(tariff, dt.date(2026, 1, 15))
    assert v is not None
    assert v.register_prices() == prices
    assert v.tier_thresholds_kwh == thresholds
    assert v.tier_adders_yuan_per_kwh == adders
    assert v.tier_basis == basis


def test_residential_tier_prices_are_base_plus_adder(book) -> None:
    # CONTRACT §2: 0.538 / 0.588 / 0.838 yuan/kWh
    v = book.version_on("RES_TIER", dt.date(2026, 1, 1))
    got = [round(v.register_prices()["flat"] + a, 3) for a in v.tier_adders_yuan_per_kwh]
    assert got == [0.538, 0.588, 0.838]


# windows ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "ranges"),
    [
        pytest.param("00:00-24:00", [(0, 1440)], id="whole-day"),
        pytest.param("08:00-22:00", [(480, 1320)], id="day"),
        pytest.param("22:00-08:00", [(1320, 1440), (0, 480)], id="wraps-midnight"),
        pytest.param("22:00-00:00", [(1320, 1440)], id="to-midnight"),
        pytest.param("11:30-13:00", [(690, 780)], id="half-hour"),
    ],
)
def test_parse_window(window, ranges) -> None:
    assert parse_window(window) == ranges


@pytest.mark.parametrize(
    ("window", "message"),
    [
        pytest.param("8-22", "expected 'HH:MM-HH:MM'", id="format"),
        pytest.param("08:00-08:00", "start equals end", id="empty"),
        pytest.param("24:00-08:00", "24:00 only as an end", id="24-start"),
        pytest.param("08:61-09:00", "found 08:61", id="minutes"),
    ],
)
def test_parse_window_errors(window, message) -> None:
    with pytest.raises(ValueError, match=message):
        parse_window(window)


# validation errors ----------------------------------------------------------------


def _overlap(raw):
    _version(raw, "RES_TIER_TOU")["periods"][1]["hours"] = ["21:00-08:00"]


def _gap(raw):
    _version(raw, "RES_TIER_TOU")["periods"][1]["hours"] = ["23:00-08:00"]


def _tiers_out_of_order(raw):
    _version(raw, "RES_TIER")["tier_thresholds_kwh"] = [4800.0, 2760.0]


def _adders_count(raw):
    _version(raw, "RES_TIER")["tier_adders_yuan_per_kwh"] = [0.0, 0.05]


def _register_twice(raw):
    _version(raw, "COM_TOU")["periods"][0]["registers"] = ["peak"]
    _version(raw, "COM_TOU")["periods"][1]["registers"] = ["flat"]
    _version(raw, "COM_TOU")["periods"][2]["registers"] = ["valley"]
    _version(raw, "COM_TOU")["periods"][3]["registers"] = ["peak"]


def _register_unpriced(raw):
    _version(raw, "AGR_FLAT")["periods"][0]["registers"] = ["sharp", "peak", "flat"]


def _basis_none_with_tiers(raw):
    _version(raw, "AGR_FLAT")["tier_thresholds_kwh"] = [100.0]
    _version(raw, "AGR_FLAT")["tier_adders_yuan_per_kwh"] = [0.0, 0.1]


def _four_tiers(raw):
    _version(raw, "RES_TIER")["tier_thresholds_kwh"] = [1000.0, 2760.0, 4800.0]
    _version(raw, "RES_TIER")["tier_adders_yuan_per_kwh"] = [0.0, 0.01, 0.05, 0.30]


def _negative_price(raw):
    _version(raw, "RES_TIER")["tier_adders_yuan_per_kwh"] = [-0.6, 0.05, 0.30]


def _versions_out_of_order(raw):
    v = copy.deepcopy(_version(raw, "AGR_FLAT"))
    v["effective_from"] = dt.date(2010, 1, 1)
    raw["tariffs"]["AGR_FLAT"]["versions"].append(v)


def _versions_overlap(raw):
    raw["tariffs"]["AGR_FLAT"]["versions"][0]["effective_to"] = dt.date(2026, 6, 30)
    v = copy.deepcopy(_version(raw, "AGR_FLAT"))
    v["effective_from"] = dt.date(2026, 6, 1)
    v.pop("effective_to")
    raw["tariffs"]["AGR_FLAT"]["versions"].append(v)


def _unknown_register(raw):
    _version(raw, "AGR_FLAT")["periods"][0]["registers"] = ["sharp", "peak", "flat", "vally"]


@pytest.mark.parametrize(
    ("mutate", "where", "message"),
    [
        pytest.param(
            _overlap,
            "RES_TIER_TOU.versions.0",
            "periods 'peak' and 'valley' overlap: both cover 21:00-22:00",
            id="overlapping-periods",
        ),
        pytest.param(_gap, "RES_TIER_TOU.versions.0", "no period covers 22:00-23:00", id="gap-in-the-day"),
        pytest.param(
            _tiers_out_of_order,
            "RES_TIER.versions.0",
            r"out of order: expected strictly increasing, found \[4800.0, 2760.0\]",
            id="tiers-out-of-order",
        ),
        pytest.param(_adders_count, "RES_TIER.versions.0", "expected one per tier: 3", id="adders-per-tier"),
        pytest.param(
            _register_twice,
            "COM_TOU.versions.0",
            "register 'peak' is priced by both periods 'sharp' and 'valley'",
            id="register-twice",
        ),
        pytest.param(
            _register_unpriced, "AGR_FLAT.versions.0", "no period prices register\\(s\\) valley", id="register-unpriced"
        ),
        pytest.param(
            _basis_none_with_tiers,
            "AGR_FLAT.versions.0",
            "tier_basis is 'none' but tier_thresholds_kwh",
            id="none-with-tiers",
        ),
        pytest.param(_four_tiers, "RES_TIER.versions.0", "at most 3 are supported", id="four-tiers"),
        pytest.param(_negative_price, "RES_TIER.versions.0", "is negative", id="negative-price"),
        pytest.param(_versions_out_of_order, "AGR_FLAT", "versions out of order", id="versions-out-of-order"),
        pytest.param(
            _versions_overlap,
            "AGR_FLAT",
            "versions overlap: versions\\[0\\] runs to 2026-06-30 but versions\\[1\\] starts 2026-06-01",
            id="versions-overlap",
        ),
        pytest.param(
            _unknown_register, "AGR_FLAT.versions.0.periods.0.registers.3", "Input should be", id="unknown-register"
        ),
    ],
)
def test_validation_errors_say_what_and_where(raw, mutate, where, message) -> None:
    mutate(raw)
    with pytest.raises(ValidationError, match=message) as info:
        TariffBook.model_validate(raw)
    assert f"tariffs.{where}" in str(info.value)


def test_config_error_names_the_file(raw, tmp_path) -> None:
    text = SHIPPED.read_text(encoding="utf-8").replace(
        'hours = ["22:00-08:00"]\nregisters = ["flat", "valley"]',
        'hours = ["23:00-08:00"]\nregisters = ["flat", "valley"]',
    )
    (tmp_path / "tariffs.toml").write_text(text, encoding="utf-8")
    with pytest.raises(config.ConfigError, match=r"tariffs\.toml: tariffs\.RES_TIER_TOU\.versions\.0: .*22:00-23:00"):
        config.load("tariffs", TariffBook, tmp_path)


# price calendar -------------------------------------------------------------------


def test_price_calendar_switches_version_on_its_effective_date(raw) -> None:
    new = copy.deepcopy(_version(raw, "AGR_FLAT"))
    new["effective_from"] = dt.date(2026, 1, 3)
    new["periods"][0]["price_yuan_per_kwh"] = 0.55
    raw["tariffs"] = {"AGR_FLAT": raw["tariffs"]["AGR_FLAT"]}
    raw["tariffs"]["AGR_FLAT"]["versions"].append(new)
    cal = price_calendar(TariffBook.model_validate(raw), dt.date(2026, 1, 1), dt.date(2026, 1, 4))
    got = cal.select("date", "tariff_effective_from", "price_flat_yuan_per_kwh", "tier1_upper_kwh").sort("date")
    expected = pl.DataFrame(
        {
            "date": [dt.date(2026, 1, d) for d in (1, 2, 3, 4)],
            "tariff_effective_from": [dt.date(2012, 7, 1)] * 2 + [dt.date(2026, 1, 3)] * 2,
            "price_flat_yuan_per_kwh": [0.50, 0.50, 0.55, 0.55],
            "tier1_upper_kwh": [math.inf] * 4,
        }
    )
    assert_frame_equal(got, expected)


def test_price_calendar_leaves_days_without_a_version_out(raw) -> None:
    raw["tariffs"] = {"AGR_FLAT": raw["tariffs"]["AGR_FLAT"]}
    raw["tariffs"]["AGR_FLAT"]["versions"][0]["effective_from"] = dt.date(2026, 1, 2)
    raw["tariffs"]["AGR_FLAT"]["versions"][0]["effective_to"] = dt.date(2026, 1, 3)
    cal = price_calendar(TariffBook.model_validate(raw), dt.date(2026, 1, 1), dt.date(2026, 1, 5))
    assert cal["date"].to_list() == [dt.date(2026, 1, 2), dt.date(2026, 1, 3)]


def test_price_calendar_tiers_and_tou_flags(book) -> None:
    cal = price_calendar(book, dt.date(2026, 1, 1), dt.date(2026, 1, 1)).sort("tariff_id")
    expected = pl.DataFrame(
        {
            "tariff_id": ["AGR_FLAT", "COM_TOU", "RES_TIER", "RES_TIER_TOU"],
            "tier1_upper_kwh": [math.inf, math.inf, 2760.0, 2760.0],
            "tier2_upper_kwh": [math.inf, math.inf, 4800.0, 4800.0],
            "adder_tier3_yuan_per_kwh": [0.0, 0.0, 0.30, 0.30],
            "is_tou": [False, True, False, True],
        }
    )
    assert_frame_equal(cal.select(expected.columns), expected)
