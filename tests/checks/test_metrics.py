"""The polars half of the gate: metrics per partition, schema and footer metrics."""

from __future__ import annotations

import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from meterlake.checks.metrics import (
    PARTITION,
    FooterMetric,
    Metric,
    count,
    footer_metrics,
    key_duplicates,
    not_in,
    partition_metrics,
    schema_metrics,
    share,
)


def test_partition_metrics_by_hand() -> None:
    frame = pl.LazyFrame(
        {
            PARTITION: ["date=2026-01-01"] * 4 + ["date=2026-01-02"] * 2,
            "meter_id": ["M1", "M2", "M2", None, "M1", "M2"],
            "quality": ["actual", "missing", "bogus", "actual", "actual", None],
            "kwh": [1.0, None, -2.0, 3.0, 4.0, 5.0],
        }
    )
    metrics = [
        Metric("dups", key_duplicates(["meter_id"]), ""),
        Metric("bad_quality", not_in("quality", ["actual", "estimated", "missing"]), ""),
        Metric("negative", count(pl.col("kwh") < 0), ""),
        Metric("missing_share", share(pl.col("quality") == "missing"), ""),
    ]
    got = partition_metrics(frame, metrics).collect().sort(PARTITION)
    # day 1: M2 twice -> 1 duplicate (the null key counts once as its own value);
    # "bogus" is the one bad code; -2.0 the one negative; 1 of 4 missing
    # day 2: no duplicate; a null quality is not a bad code; nothing missing
    want = pl.DataFrame(
        {
            PARTITION: ["date=2026-01-01", "date=2026-01-02"],
            "rows": [4, 2],
            "dups": [1, 0],
            "bad_quality": [1, 0],
            "negative": [1, 0],
            "missing_share": [0.25, 0.0],
        },
        schema_overrides={"rows": pl.Int64, "dups": pl.Int64, "bad_quality": pl.Int64, "negative": pl.Int64},
    )
    assert_frame_equal(got, want)


def test_schema_metrics_names_what_is_wrong() -> None:
    got = schema_metrics(
        {"meter_id": pl.String(), "kwh": pl.String(), "card_no": pl.String(), "extra": pl.Int64()},
        {"meter_id": pl.String(), "kwh": pl.Float64(), "quality": pl.String()},
    )
    assert got == {
        "missing_columns": 1,
        "wrong_types": 1,
        "pii_columns": 1,
        "missing_list": ["quality"],
        "wrong_list": ["kwh: expected number, found String"],
        "pii_list": ["card_no"],
    }


def test_integer_column_satisfies_a_float_contract() -> None:
    got = schema_metrics({"meters_total": pl.Int32()}, {"meters_total": pl.Float64()})
    assert got["wrong_types"] == 0


def test_footer_metric_kind_is_checked() -> None:
    with pytest.raises(ValueError, match="kind 'mean'"):
        FooterMetric("x", ("p1",), "mean", "")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["M1", "M2", "M3", "M4"]), min_size=0, max_size=30))
def test_key_duplicates_counts_rows_beyond_the_first(keys: list[str]) -> None:
    frame = pl.DataFrame({"meter_id": keys}, schema={"meter_id": pl.String})
    got = frame.select(key_duplicates(["meter_id"])).item()
    assert got == len(keys) - len(set(keys))


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(-5, 5, allow_nan=False)),
            st.one_of(st.none(), st.floats(-5, 5, allow_nan=False)),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_footer_metrics_agree_with_the_rows(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[float | None, float | None]]
) -> None:
    frame = pl.DataFrame(rows, schema={"p1": pl.Float64, "p2": pl.Float64}, orient="row")
    path = tmp_path_factory.mktemp("footer") / "part-0.parquet"
    # several row groups, as in a county-size file
    frame.write_parquet(path, statistics=True, row_group_size=7)
    specs = [
        FooterMetric("min", ("p1", "p2"), "min", ""),
        FooterMetric("nulls", ("p1", "p2", "p3"), "null_share", ""),  # p3 absent: all missing
    ]
    got = footer_metrics([pq.read_metadata(path)], specs)
    values = [v for r in rows for v in r if v is not None]
    assert got["min"] == (min(values) if values else None)
    n_null = sum(v is None for r in rows for v in r) + len(rows)
    assert got["nulls"] == pytest.approx(n_null / (3 * len(rows)))
