"""check_payments with the reversal verdicts handed in (found once for a run's history) or found itself."""

from __future__ import annotations

import datetime as dt

import polars as pl

from meterlake.transforms.payments import check_payments, reversal_verdicts

T = dt.datetime(2026, 1, 5, 10)


def history() -> pl.DataFrame:
    # P1 paid by C1; R1 reverses it; R2 reverses it again; R3 names a payment nobody made
    return pl.DataFrame(
        {
            "txn_id": ["P1", "R1", "R2", "R3"],
            "txn_type": ["payment", "reversal", "reversal", "reversal"],
            "ref_txn_id": [None, "P1", "P1", "P9"],
            "customer_id": ["C1", "C1", "C1", "C1"],
            "paid_at": [T, T + dt.timedelta(hours=1), T + dt.timedelta(hours=2), T + dt.timedelta(hours=3)],
        }
    )


def test_the_verdicts_given_judge_as_those_found() -> None:
    rows = history().with_columns(
        bill_month=pl.lit("2026-01"), paid_date=pl.col("paid_at").dt.date(), source_line=pl.int_range(1, 5)
    )
    customers = pl.DataFrame({"customer_id": ["C1"], "prepay": [0]})
    verdicts = reversal_verdicts(history())
    assert dict(verdicts.rows()) == {"R1": None, "R2": "reversal_repeated", "R3": "reversal_unknown_ref"}
    found = check_payments(rows, history(), customers)
    given = check_payments(rows, history(), customers, verdicts)
    assert found[0].equals(given[0]) and found[1].equals(given[1])
    assert given[0]["txn_id"].to_list() == ["P1", "R1"]
    assert given[1]["reason"].to_list() == ["reversal_repeated", "reversal_unknown_ref"]
