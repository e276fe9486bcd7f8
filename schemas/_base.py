"""The building blocks of every table contract.

Conventions, stated once for the whole project:

* Time is local China Standard Time (Asia/Shanghai, UTC+8, no DST). Timestamps are
  stored naive in local time; a *date* is a local calendar date.
* A 15-minute interval is labelled by its start: slot 1 is 00:00-00:15.
* Forward energy is consumption, reverse energy is export.
* kWh are primary side (after the CT x PT multiplier) unless the column name says
  ``_meter``; money is in yuan (``_yuan``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl


class MissingColumnsError(ValueError):
    """A frame or file lacks columns its contract requires."""

    def __init__(self, table: str, missing: list[str], present: list[str], where: str = "") -> None:
        self.table = table
        self.missing = missing
        self.present = present
        self.where = where
        at = f" in {where}" if where else ""
        super().__init__(
            f"{table}{at}: missing column(s) {', '.join(missing)}; "
            f"found {', '.join(present) if present else 'no columns'}"
        )


@dataclass(frozen=True)
class Column:
    """One column of a table: its type, unit and meaning in English and Chinese."""

    name: str
    dtype: pl.DataType
    description: str
    zh: str = ""
    unit: str = ""
    nullable: bool = True
    #: for coded columns, the allowed values
    codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    """A table contract: ordered columns, key, and Hive partitioning of the lake."""

    name: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    partition_by: str | None = None
    zh: str = ""
    #: `marts` are published to analysts; `clean` tables are the validated inputs
    layer: str = "marts"
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def schema(self) -> pl.Schema:
        return pl.Schema({c.name: c.dtype for c in self.columns})

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}; it has {', '.join(self.names)}")

    def conform(self, frame: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
        """Select the contract's columns in order, cast to their types.

        Raises :class:`MissingColumnsError` naming what is missing and what is there.
        Extra columns are dropped.
        """
        lf = frame.lazy()
        # a frame's names without its types: a lazy frame's schema converts every type to
        # Python, an enum with all its categories and a check that they are unique
        # (receivables' customer key: 30-45 ms each); the names of a projection that makes
        # every column a boolean are the same names, and booleans convert for nothing
        present = frame.columns if isinstance(frame, pl.DataFrame) else column_names(lf)
        missing = [n for n in self.names if n not in present]
        if missing:
            raise MissingColumnsError(self.name, missing, present)
        return lf.select(pl.col(c.name).cast(c.dtype) for c in self.columns)


def column_names(lf: pl.LazyFrame) -> list[str]:
    """``lf.collect_schema().names()`` without converting the column types to Python (an
    enum of 500k categories costs 30-45 ms each time: polars checks them for uniqueness)."""
    return lf.select(pl.all().is_null()).collect_schema().names()
