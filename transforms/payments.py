"""Rules a clean payments row must pass beyond its own fields (CONTRACT v2 §1 payments). Pure.

Applied when a payments date partition is rebuilt, after repeats are resolved. In order
of precedence, a row is quarantined when:

* ``bad_month``: ``bill_month`` is not ``YYYY-MM``;
* ``unknown_customer``: the customer is not in the archive snapshot valid on its date;
* ``prepay_customer``: every meter of the customer is IC-card prepay on its date
  (prepay customers pay by purchases, never against bills);
* ``reversal_unknown_ref``: a reversal names no payment of the same customer made at or
  before it, in any file delivered so far;
* ``reversal_repeated``: an earlier reversal (by time, then txn_id) already cancelled it.

A payment naming a month with no bill yet passes: the receivables hold it as a credit.
"""

from __future__ import annotations

import polars as pl

MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"


def reversal_verdicts(history: pl.DataFrame) -> pl.DataFrame:
    """Per reversal in ``history`` (every payments row resolved so far): txn_id, verdict (null = ok)."""
    pays = history.filter(pl.col("txn_type") == "payment").select(
        ref_txn_id="txn_id", ref_customer="customer_id", ref_at="paid_at"
    )
    rev = history.filter(pl.col("txn_type") == "reversal").join(pays, on="ref_txn_id", how="left")
    found = (
        pl.col("ref_customer").is_not_null()
        & (pl.col("ref_customer") == pl.col("customer_id"))
        & (pl.col("ref_at") <= pl.col("paid_at"))
    )
    rev = rev.with_columns(_found=found.fill_null(False))
    valid = (
        rev.filter(pl.col("_found"))
        .sort("paid_at", "txn_id")
        .with_columns(_n=pl.int_range(pl.len()).over("ref_txn_id") + 1)
    )
    return pl.concat(
        [
            rev.filter(~pl.col("_found")).select("txn_id", verdict=pl.lit("reversal_unknown_ref")),
            valid.select("txn_id", verdict=pl.when(pl.col("_n") > 1).then(pl.lit("reversal_repeated")).otherwise(None)),
        ]
    )


def check_payments(
    rows: pl.DataFrame, history: pl.DataFrame, customers: pl.DataFrame, verdicts: pl.DataFrame | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a day's resolved payments rows into clean rows and rejected rows (``reason``, ``detail`` added).

    ``customers``: customer_id, prepay (1 when every meter of the customer is prepay) of
    the archive valid on the day. ``verdicts``: :func:`reversal_verdicts` of ``history``
    when the caller has them (the same history judges every day of a run).
    """
    if verdicts is None:
        verdicts = reversal_verdicts(history)
    checked = (
        rows.join(customers.select("customer_id", _prepay="prepay", _known=pl.lit(True)), on="customer_id", how="left")
        .join(verdicts.rename({"verdict": "_rev"}), on="txn_id", how="left")
        .with_columns(
            reason=pl.when(pl.col("bill_month").is_not_null() & ~pl.col("bill_month").str.contains(MONTH_PATTERN))
            .then(pl.lit("bad_month"))
            .when(pl.col("_known").is_null())
            .then(pl.lit("unknown_customer"))
            .when(pl.col("_prepay") == 1)
            .then(pl.lit("prepay_customer"))
            .when(pl.col("txn_type") == "reversal")
            .then(pl.col("_rev"))
        )
    )
    detail = (
        pl.when(pl.col("reason") == "bad_month")
        .then(pl.format("bill_month: expected YYYY-MM, found '{}'", "bill_month"))
        .when(pl.col("reason") == "unknown_customer")
        .then(pl.format("customer_id '{}' is not in the archive snapshot valid on {}", "customer_id", "paid_date"))
        .when(pl.col("reason") == "prepay_customer")
        .then(
            pl.format(
                "customer_id '{}' is an IC-card prepay customer on {}: payments are for post-paid bills",
                "customer_id",
                "paid_date",
            )
        )
        .when(pl.col("reason") == "reversal_unknown_ref")
        .then(
            pl.format(
                "reversal of '{}': no payment of customer '{}' with that txn_id at or before {}",
                pl.col("ref_txn_id").fill_null("(empty)"),
                "customer_id",
                "paid_at",
            )
        )
        .when(pl.col("reason") == "reversal_repeated")
        .then(pl.format("reversal of '{}': an earlier reversal already cancelled that payment", "ref_txn_id"))
    )
    checked = checked.with_columns(detail=detail).drop("_prepay", "_known", "_rev")
    clean = checked.filter(pl.col("reason").is_null()).drop("reason", "detail")
    return clean, checked.filter(pl.col("reason").is_not_null())
