"""Thresholds of the quality gate, loaded from ``config/checks.toml``.

Every field is documented here and its default's source is cited in the TOML file.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["blocking", "warning"]
SeverityOverride = Literal["blocking", "warning", "off"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Gate(_Section):
    row_level_max_rows: int = Field(
        100_000, ge=0, description="row-level expectations run only on checked partitions of at most this many rows"
    )
    docs_validation_limit: int = Field(
        300, ge=1, description="validation results listed on the Data Docs index, newest first"
    )


class Arithmetic(_Section):
    kwh_tolerance: float = Field(
        0.02,
        ge=0,
        description="kWh tolerance of identities between stored columns (loss = supply - sales, tiers sum to total)",
    )
    rate_tolerance: float = Field(
        1e-4, ge=0, description="tolerance of a stored rate against its definition (loss / supply, read / total)"
    )
    yuan_tolerance: float = Field(
        0.01,
        ge=0,
        description="yuan tolerance of identities between stored amounts (difference = meter - computed balance)",
    )
    yuan_rounding_tolerance: float = Field(
        1e-6, ge=0, description="how far amount_yuan x 100 may be from an integer (bills are rounded to 0.01 yuan)"
    )


class MeterDaily(_Section):
    max_missing_share: float = Field(
        0.02, ge=0, le=1, description="warn when more than this share of a day's meter-days is missing"
    )
    max_estimated_share: float = Field(
        0.10, ge=0, le=1, description="warn when more than this share of a day's meter-days is estimated"
    )
    max_kwh_per_day: float = Field(
        300_000.0, gt=0, description="warn when one meter's primary-side kWh in one day exceeds this"
    )


class Registers(_Section):
    tou_sum_tolerance_kwh: float = Field(
        0.05, ge=0, description="allowed |sharp + peak + flat + valley - total| of one reading, meter side, kWh"
    )
    max_null_total_share: float = Field(
        0.02, ge=0, le=1, description="warn when more than this share of a day's readings has no total register"
    )


class Curves(_Section):
    max_missing_slot_share: float = Field(
        0.02, ge=0, le=1, description="warn when more than this share of a day's 96-point slots was not collected"
    )


class Loss(_Section):
    max_uncomputable_share: float = Field(
        0.20, ge=0, le=1, description="warn when more than this share of areas/feeders is uncomputable"
    )
    implausible_loss_rate: float = Field(
        1.0, gt=0, description="warn for a computable loss rate beyond plus or minus this"
    )


class Prepay(_Section):
    max_mismatch_share: float = Field(
        0.01, ge=0, le=1, description="warn when more than this share of prepay customer-days is `mismatch`"
    )


class CheckThresholds(_Section):
    """The whole of ``checks.toml``."""

    gate: Gate = Field(default_factory=Gate, description="how the gate runs")
    arithmetic: Arithmetic = Field(default_factory=Arithmetic, description="tolerances of stored identities")
    meter_daily: MeterDaily = Field(default_factory=MeterDaily, description="daily meter energy")
    registers: Registers = Field(default_factory=Registers, description="frozen register readings")
    curves: Curves = Field(default_factory=Curves, description="96-point curves")
    loss: Loss = Field(default_factory=Loss, description="line loss marts")
    prepay: Prepay = Field(default_factory=Prepay, description="prepayment balances")
    severity: dict[str, SeverityOverride] = Field(
        default_factory=dict,
        description="severity per dotted rule name, overriding the suite's: blocking, warning or off",
    )
