"""``meterlake generate``: the synthetic landing zone. See :mod:`meterlake.generate`."""

from meterlake.generate import GenerateSummary, generate

__all__ = ["GenerateSummary", "generate"]
