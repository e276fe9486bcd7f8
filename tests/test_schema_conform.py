"""A contract's conform on lazy frames: the names it checks and the error naming what is missing."""

from __future__ import annotations

import polars as pl
import pytest

from meterlake.schemas._base import Column, MissingColumnsError, Table, column_names

TABLE = Table(
    name="t",
    description="a test table",
    columns=(Column("customer_id", pl.String(), "customer", "用户"), Column("x", pl.Float64(), "x", "x")),
    key=("customer_id",),
)


def _frame() -> pl.LazyFrame:
    key = pl.Enum(["A", "B", "C"])
    return pl.LazyFrame(
        {
            "customer_id": pl.Series(["C", "A"], dtype=key),
            "tags": [["a"], []],
            "pair": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}],
            "x": [1.5, None],
            "none": [None, None],
        }
    )


def test_column_names_of_every_type_in_order() -> None:
    assert column_names(_frame()) == ["customer_id", "tags", "pair", "x", "none"]
    assert column_names(pl.LazyFrame()) == []


def test_conform_selects_and_casts_a_lazy_frame_with_an_enum_key() -> None:
    out = TABLE.conform(_frame()).collect()
    assert out.schema == pl.Schema({"customer_id": pl.String(), "x": pl.Float64()})
    assert out.rows() == [("C", 1.5), ("A", None)]


def test_conform_names_the_missing_columns_and_those_present() -> None:
    with pytest.raises(MissingColumnsError) as err:
        TABLE.conform(_frame().drop("x"))
    assert (err.value.missing, err.value.present) == (["x"], ["customer_id", "tags", "pair", "none"])
    assert str(err.value) == "t: missing column(s) x; found customer_id, tags, pair, none"
