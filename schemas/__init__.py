"""Table contracts: the landing datasets, their clean tables and the lake marts.

One module per landing dataset and per lake table; the glossary and the data
dictionary are generated from these declarations.
"""

from . import archive, curves, events, inspections, outage_plans, payments, purchases, registers
from ._base import Column, MissingColumnsError, Table
from .landing import LINEAGE, Field, Landing

#: landing datasets in the order they are ingested (archive first: the others are
#: checked against the meters it knows)
LANDINGS: dict[str, Landing] = {
    m.LANDING.dataset: m.LANDING
    for m in (archive, curves, registers, events, purchases, inspections, outage_plans, payments)
}
#: datasets an upstream system must deliver; the others are optional folders
REQUIRED_DATASETS = ("archive", "curves", "registers", "events", "purchases")

__all__ = ["LANDINGS", "LINEAGE", "REQUIRED_DATASETS", "Column", "Field", "Landing", "MissingColumnsError", "Table"]

from .quarantine import QUARANTINE, REASONS  # noqa: E402

__all__ += ["QUARANTINE", "REASONS"]
