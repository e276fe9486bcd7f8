"""The base of the project's configuration models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A configuration model that refuses keys it does not know (a misspelt setting is an
    error, not a silent default) and cannot be changed once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)
