"""Contracts of the landing zone (CONTRACT.md §1): what upstream systems deliver.

Every landing dataset is described by a :class:`Landing`: its fields with their
Chinese header aliases and how each is parsed, its key, and the field that decides
the date partition. The typed, validated form of each dataset is its clean table,
declared beside it in ``schemas/<dataset>.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from ._base import Column, Table

#: how a landing field is parsed
KINDS = ("string", "date", "timestamp", "float", "int", "code")


@dataclass(frozen=True)
class Field:
    name: str
    zh: str
    kind: str
    description: str
    unit: str = ""
    #: the header must carry this column, else the whole file is quarantined
    required: bool = True
    #: an empty value quarantines the row
    not_null: bool = False
    codes: tuple[str, ...] = ()
    #: the value must be >= this (float/int kinds)
    minimum: float | None = None
    #: the value must be > this (float/int kinds)
    exclusive_minimum: float | None = None
    #: personal data: never written in clear (masked to the last 4 digits)
    personal: bool = False
    #: an empty field of a file whose header carries the column reads as this value; a
    #: file without the column leaves it empty, so "said nothing" differs from "said 0"
    empty_as: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"field {self.name}: kind {self.kind!r} is not one of {KINDS}")

    @property
    def dtype(self) -> pl.DataType:
        return {
            "string": pl.String(),
            "code": pl.String(),
            "date": pl.Date(),
            "timestamp": pl.Datetime("us"),
            "float": pl.Float64(),
            "int": pl.Int64(),
        }[self.kind]


@dataclass(frozen=True)
class Landing:
    dataset: str
    zh: str
    fields: tuple[Field, ...]
    key: tuple[str, ...]
    #: the field whose local date is the lake partition
    date_field: str
    clean: Table
    #: checks across the fields of a row (typed value per field -> condition, reason, detail)
    row_rules: Callable[[dict[str, pl.Expr]], list[tuple[pl.Expr, str, pl.Expr]]] | None = dataclasses.field(
        default=None, compare=False
    )
    #: the rows whose references the valid archive knows, and the others with _reason/_detail;
    #: None = rows are checked by meter_id
    split_known: Callable[[pl.DataFrame, pl.DataFrame], tuple[pl.DataFrame, pl.DataFrame]] | None = dataclasses.field(
        default=None, compare=False
    )
    #: the archive columns :attr:`split_known` reads (the rest of the archive is not read for it)
    split_known_columns: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def aliases(self) -> dict[str, str]:
        """Header text (canonical or Chinese, case-folded) -> canonical name."""
        out: dict[str, str] = {}
        for f in self.fields:
            out[f.name.casefold()] = f.name
            if f.zh:
                out[f.zh.casefold()] = f.name
        return out


#: lineage columns carried by every clean table
LINEAGE = (
    Column("source_file", pl.String(), "landing file the row came from, relative to LANDING", "来源文件"),
    Column("source_line", pl.Int64(), "1-based physical line in that file (the header is line 1)", "来源行号"),
    Column(
        "delivered_at",
        pl.Datetime("us"),
        "when the file was delivered (its modification time); the later delivery of a key wins",
        "送达时间",
    ),
)


def clean_table(
    dataset: str,
    zh: str,
    description: str,
    fields: tuple[Field, ...],
    key: tuple[str, ...],
    partition_by: str,
    extra: tuple[Column, ...] = (),
) -> Table:
    """The clean table of a landing dataset: the parsed fields plus lineage."""
    cols = []
    for f in fields:
        if f.personal:
            continue  # replaced by masked/tokenised columns in `extra`
        cols.append(Column(f.name, f.dtype, f.description, f.zh, f.unit, nullable=not f.not_null, codes=f.codes))
    if partition_by not in {c.name for c in cols}:
        cols.append(Column(partition_by, pl.Date(), "local date of the row (partition key)", "日期"))
    return Table(
        name=dataset,
        zh=zh,
        description=description,
        columns=tuple(cols) + extra + LINEAGE,
        key=key,
        partition_by=partition_by,
        layer="clean",
    )
