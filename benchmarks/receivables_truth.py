"""Credit grades and dunning positions against the generator's payment truth.

    python benchmarks/receivables_truth.py LANDING LAKE [MONTH]

Prints, for the credit month (default: the last), the confusion table of the truth's
payer behaviour (``_truth/payers.csv``) against credit_grade, and where each behaviour
sits on that month's last dunning list.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl


def main(landing: Path, lake: Path, month: str | None = None) -> None:
    pl.Config.set_tbl_rows(40)
    pl.Config.set_tbl_cols(12)
    truth = pl.read_csv(landing / "_truth" / "payers.csv", schema_overrides={"customer_id": pl.String})
    credit = pl.read_parquet(lake / "marts" / "customer_credit_monthly" / "**" / "*.parquet", hive_partitioning=True)
    month = month or str(credit["month"].max())
    graded = credit.filter(pl.col("month") == month).join(truth, on="customer_id", how="inner")
    table = (
        graded.group_by("behaviour", "credit_grade")
        .len()
        .pivot("credit_grade", index="behaviour", values="len", sort_columns=True)
        .fill_null(0)
        .sort("behaviour")
    )
    print(f"credit month {month}: truth behaviour x credit grade (post-paid customers)")
    print(table)
    dunning = pl.read_parquet(lake / "marts" / "dunning_list" / "**" / "*.parquet", hive_partitioning=True)
    day = dunning.filter(pl.col("date").dt.strftime("%Y-%m") <= month)["date"].max()
    listed = dunning.filter(pl.col("date") == day).join(truth, on="customer_id", how="left")
    print(f"dunning list of {day!s}: {listed.height} customers")
    print(
        listed.group_by("behaviour")
        .agg(
            n=pl.len(),
            best_rank=pl.col("rank").min(),
            median_rank=pl.col("rank").median(),
            worst_rank=pl.col("rank").max(),
            stop_notices=(pl.col("action") == "stop_notice").sum(),
        )
        .sort("best_rank")
    )
    chronic = truth.filter(pl.col("behaviour") == "chronic").height
    top = listed.sort("rank").head(chronic)
    print(f"chronic debtors in the top {chronic} of the list: {(top['behaviour'] == 'chronic').sum()} of {chronic}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
