"""Tariffs (电价): typed models of ``config/tariffs.toml``, validated at load, and the
per-day price table the billing transforms join on.

Pure: nothing here opens a file. The stage loads the TOML through
:func:`meterlake.config.load` (``ctx.config("tariffs", TariffBook)``), which turns a
validation failure into a :class:`meterlake.config.ConfigError` naming the file and
the field, e.g. ``tariffs.RES_TIER_TOU.versions.0: Value error, periods 'peak' and
'valley' both cover 21:00-22:00``.

The pricing model (CONTRACT §2), one rule for every tariff: a kWh in TOU register
``r`` and tier ``t`` costs ``price(period of r) + adder(t)``.

* RES_TIER: one all-day period at 0.538 and adders 0 / 0.05 / 0.30 give the contract's
  0.538 / 0.588 / 0.838.
* RES_TIER_TOU: peak (sharp+peak registers) 0.568, valley (flat+valley) 0.288, same
  adders.
* COM_TOU: four periods, one register each; no tiers.
* AGR_FLAT: one period; no tiers.

>>> book = TariffBook.model_validate({"tariffs": {"FLAT": {"versions": [{
...     "effective_from": "2026-01-01", "tier_basis": "none",
...     "periods": [{"name": "all_day", "hours": ["00:00-24:00"],
...                  "registers": ["sharp", "peak", "flat", "valley"],
...                  "price_yuan_per_kwh": 0.5}]}]}}})
>>> book.tariffs["FLAT"].versions[0].register_prices()
{'sharp': 0.5, 'peak': 0.5, 'flat': 0.5, 'valley': 0.5}
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import re
from typing import Literal

import polars as pl
from pydantic import Field, field_validator, model_validator

from .strict import StrictModel

#: the meter's four time-of-use registers (正向有功尖/峰/平/谷), CONTRACT §1 registers
REGISTERS: tuple[str, ...] = ("sharp", "peak", "flat", "valley")
#: the bills_monthly contract has three tier columns (kwh_tier1..3)
MAX_TIERS = 3
MINUTES_PER_DAY = 24 * 60

_WINDOW = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


def _minute(hh: str, mm: str, window: str, is_end: bool) -> int:
    h, m = int(hh), int(mm)
    if m > 59 or h > 24 or (h == 24 and (m != 0 or not is_end)):
        raise ValueError(
            f"window {window!r}: expected HH:MM between 00:00 and 24:00 (24:00 only as an end), found {hh}:{mm}"
        )
    return h * 60 + m


def parse_window(window: str) -> list[tuple[int, int]]:
    """``"22:00-08:00"`` -> minute ranges ``[(1320, 1440), (0, 480)]`` (end exclusive).

    >>> parse_window("08:00-22:00")
    [(480, 1320)]
    >>> parse_window("22:00-08:00")
    [(1320, 1440), (0, 480)]
    """
    m = _WINDOW.match(window.strip())
    if not m:
        raise ValueError(f"window {window!r}: expected 'HH:MM-HH:MM' (e.g. '08:00-22:00')")
    start = _minute(m[1], m[2], window, is_end=False)
    end = _minute(m[3], m[4], window, is_end=True)
    if start == end:
        raise ValueError(f"window {window!r}: start equals end; write '00:00-24:00' for the whole day")
    if start < end:
        return [(start, end)]
    return [(start, MINUTES_PER_DAY)] + ([(0, end)] if end > 0 else [])


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


class TouPeriod(StrictModel):
    """One time-of-use period (时段) of a tariff version."""

    name: str = Field(description="period name, e.g. sharp/peak/flat/valley or all_day", min_length=1)
    hours: list[str] = Field(
        description="local clock windows 'HH:MM-HH:MM'; a window whose end is before its start wraps midnight",
        min_length=1,
    )
    registers: list[Literal["sharp", "peak", "flat", "valley"]] = Field(
        description="the meter TOU registers whose kWh this period prices (each register in exactly one period)",
        min_length=1,
    )
    price_yuan_per_kwh: float = Field(description="tier-1 price of the period, yuan/kWh", ge=0)

    @field_validator("hours")
    @classmethod
    def _windows_parse(cls, v: list[str]) -> list[str]:
        for w in v:
            parse_window(w)
        return v


class TariffVersion(StrictModel):
    """The prices of a tariff from one effective date (one 调价)."""

    effective_from: dt.date = Field(description="first local date this version applies")
    effective_to: dt.date | None = Field(
        None,
        description="last local date this version applies; empty = until the day before the next "
        "version, or open-ended for the last version",
    )
    tier_basis: Literal["annual", "monthly", "none"] = Field(
        description="阶梯 basis: kWh cumulated over the calendar year, the calendar month, or no tiers"
    )
    tier_thresholds_kwh: list[float] = Field(
        default_factory=list,
        description="upper bounds of tiers 1..n-1 in kWh of the basis period, strictly increasing "
        "(e.g. [2760, 4800]); empty when tier_basis is none",
    )
    tier_adders_yuan_per_kwh: list[float] = Field(
        default_factory=lambda: [0.0],
        description="added to the period price in tier 1..n (one more entry than thresholds), yuan/kWh",
    )
    periods: list[TouPeriod] = Field(description="TOU periods covering the 24 hours exactly once", min_length=1)

    @model_validator(mode="after")
    def _check(self) -> TariffVersion:
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise ValueError(f"effective_to {self.effective_to} is before effective_from {self.effective_from}")
        self._check_tiers()
        self._check_periods()
        return self

    def _check_tiers(self) -> None:
        th, ad = self.tier_thresholds_kwh, self.tier_adders_yuan_per_kwh
        if self.tier_basis == "none" and th:
            raise ValueError(f"tier_basis is 'none' but tier_thresholds_kwh is {th}; expected []")
        if self.tier_basis != "none" and not th:
            raise ValueError(
                f"tier_basis is {self.tier_basis!r} but tier_thresholds_kwh is empty; "
                "expected at least one threshold (or tier_basis = 'none')"
            )
        if len(th) + 1 > MAX_TIERS:
            raise ValueError(
                f"{len(th) + 1} tiers ({th}); at most {MAX_TIERS} are supported (bills_monthly has kwh_tier1..3)"
            )
        if any(not math.isfinite(t) or t <= 0 for t in th):
            raise ValueError(f"tier_thresholds_kwh must be positive and finite; found {th}")
        for lo, hi in itertools.pairwise(th):
            if hi <= lo:
                raise ValueError(
                    f"tier_thresholds_kwh out of order: expected strictly increasing, found {th} ({hi} after {lo})"
                )
        if len(ad) != len(th) + 1:
            raise ValueError(
                f"tier_adders_yuan_per_kwh has {len(ad)} entries ({ad}); expected one per tier: "
                f"{len(th) + 1} for thresholds {th}"
            )
        if any(not math.isfinite(a) for a in ad):
            raise ValueError(f"tier_adders_yuan_per_kwh must be finite; found {ad}")
        for p in self.periods:
            for i, a in enumerate(ad, start=1):
                if p.price_yuan_per_kwh + a < 0:
                    raise ValueError(
                        f"period {p.name!r} tier {i}: price {p.price_yuan_per_kwh} + adder {a} "
                        "is negative; expected a price >= 0"
                    )

    def _check_periods(self) -> None:
        names = [p.name for p in self.periods]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"period names repeat: {', '.join(dup)}")
        owner: list[str | None] = [None] * MINUTES_PER_DAY
        for p in self.periods:
            for w in p.hours:
                for a, b in parse_window(w):
                    for minute in range(a, b):  # at most 1440 steps: configuration, not data
                        if owner[minute] is not None and owner[minute] != p.name:
                            end = minute
                            while end < b and owner[end] == owner[minute]:
                                end += 1
                            raise ValueError(
                                f"periods {owner[minute]!r} and {p.name!r} overlap: both cover "
                                f"{_clock(minute)}-{_clock(end)}"
                            )
                        if owner[minute] == p.name:
                            raise ValueError(f"period {p.name!r} covers {_clock(minute)} twice (windows {p.hours})")
                        owner[minute] = p.name
        gaps = _runs([o is None for o in owner])
        if gaps:
            raise ValueError(
                "periods leave gaps in the day: no period covers "
                + ", ".join(f"{_clock(a)}-{_clock(b)}" for a, b in gaps)
                + "; expected the 24 hours covered exactly once"
            )
        seen: dict[str, str] = {}
        for p in self.periods:
            for r in p.registers:
                if r in seen:
                    raise ValueError(
                        f"register {r!r} is priced by both periods {seen[r]!r} and {p.name!r}; expected exactly one"
                    )
                seen[r] = p.name
        missing = [r for r in REGISTERS if r not in seen]
        if missing:
            raise ValueError(
                f"no period prices register(s) {', '.join(missing)}; expected each of "
                f"{', '.join(REGISTERS)} in exactly one period's registers"
            )

    def register_prices(self) -> dict[str, float]:
        """Tier-1 price of each TOU register (sharp, peak, flat, valley)."""
        return {r: p.price_yuan_per_kwh for p in self.periods for r in p.registers}


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    start = None
    for i, f in enumerate([*flags, False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            out.append((start, i))
            start = None
    return out


class Tariff(StrictModel):
    """A tariff (电价代码) and its dated versions."""

    name: str = Field("", description="what users call the tariff")
    versions: list[TariffVersion] = Field(description="price versions, oldest first, without overlap", min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> Tariff:
        for i, (a, b) in enumerate(zip(self.versions, self.versions[1:], strict=False)):
            if b.effective_from <= a.effective_from:
                raise ValueError(
                    f"versions out of order: versions[{i + 1}].effective_from {b.effective_from} "
                    f"is not after versions[{i}].effective_from {a.effective_from}"
                )
            if a.effective_to is not None and a.effective_to >= b.effective_from:
                raise ValueError(
                    f"versions overlap: versions[{i}] runs to {a.effective_to} but versions[{i + 1}] "
                    f"starts {b.effective_from}"
                )
        return self

    def spans(self) -> list[tuple[TariffVersion, dt.date, dt.date | None]]:
        """Each version with its first and last day (None = open-ended)."""
        out = []
        for i, v in enumerate(self.versions):
            last = v.effective_to
            if last is None and i + 1 < len(self.versions):
                last = self.versions[i + 1].effective_from - dt.timedelta(days=1)
            out.append((v, v.effective_from, last))
        return out


class TariffBook(StrictModel):
    """All tariffs, keyed by tariff_id (the archive's 电价代码)."""

    tariffs: dict[str, Tariff] = Field(description="tariffs keyed by tariff_id", min_length=1)

    @field_validator("tariffs")
    @classmethod
    def _ids(cls, v: dict[str, Tariff]) -> dict[str, Tariff]:
        bad = [k for k in v if not k.strip()]
        if bad:
            raise ValueError("a tariff_id is empty; expected a non-empty key")
        return v

    def version_on(self, tariff_id: str, day: dt.date) -> TariffVersion | None:
        tariff = self.tariffs.get(tariff_id)
        if tariff is None:
            return None
        for v, first, last in tariff.spans():
            if first <= day and (last is None or day <= last):
                return v
        return None


#: schema of :func:`price_calendar`
PRICE_CALENDAR_SCHEMA = pl.Schema(
    {
        "tariff_id": pl.String(),
        "date": pl.Date(),
        "tariff_effective_from": pl.Date(),
        "tier_basis": pl.String(),
        "tier1_upper_kwh": pl.Float64(),
        "tier2_upper_kwh": pl.Float64(),
        "adder_tier1_yuan_per_kwh": pl.Float64(),
        "adder_tier2_yuan_per_kwh": pl.Float64(),
        "adder_tier3_yuan_per_kwh": pl.Float64(),
        "price_sharp_yuan_per_kwh": pl.Float64(),
        "price_peak_yuan_per_kwh": pl.Float64(),
        "price_flat_yuan_per_kwh": pl.Float64(),
        "price_valley_yuan_per_kwh": pl.Float64(),
        "is_tou": pl.Boolean(),
    }
)


def price_calendar(book: TariffBook, first: dt.date, last: dt.date) -> pl.DataFrame:
    """One row per tariff and date in ``first..last`` on which a version applies.

    Thresholds beyond a tariff's last tier are +inf (no kWh reach that tier); the
    adder of an absent tier repeats the last one (never used). ``is_tou`` is true
    when the registers are priced differently (then missing TOU registers matter).
    The frame is small (tariffs x days): the billing transforms equi-join on it.
    """
    rows = []
    for tariff_id, tariff in sorted(book.tariffs.items()):  # a handful of tariffs and versions
        for v, start, end in tariff.spans():
            lo = max(start, first)
            hi = last if end is None else min(end, last)
            if hi < lo:
                continue
            th = list(v.tier_thresholds_kwh) + [math.inf] * (MAX_TIERS - 1 - len(v.tier_thresholds_kwh))
            ad = list(v.tier_adders_yuan_per_kwh)
            ad = ad + [ad[-1]] * (MAX_TIERS - len(ad))
            prices = v.register_prices()
            rows.append(
                {
                    "tariff_id": tariff_id,
                    "lo": lo,
                    "hi": hi,
                    "tariff_effective_from": v.effective_from,
                    "tier_basis": v.tier_basis,
                    "tier1_upper_kwh": th[0],
                    "tier2_upper_kwh": th[1],
                    "adder_tier1_yuan_per_kwh": ad[0],
                    "adder_tier2_yuan_per_kwh": ad[1],
                    "adder_tier3_yuan_per_kwh": ad[2],
                    **{f"price_{r}_yuan_per_kwh": prices[r] for r in REGISTERS},
                    "is_tou": len(set(prices.values())) > 1,
                }
            )
    if not rows:
        return pl.DataFrame(schema=PRICE_CALENDAR_SCHEMA)
    spans = pl.DataFrame(rows)
    return (
        spans.with_columns(date=pl.date_ranges("lo", "hi", interval="1d"))
        .explode("date")
        .select(PRICE_CALENDAR_SCHEMA.names())
        .cast(dict(PRICE_CALENDAR_SCHEMA))  # type: ignore[arg-type]
    )
