"""IC-card prepayment (IC卡预付费 / 费控): purchases, daily balances, findings, recovery.

Pure polars: frames in, frames out; nothing here opens a file.

* :func:`purchase_ledger`: each transaction with its effect on the balance. A purchase
  adds its amount on its date; a reversal (冲正) takes off the amount of the purchase
  it cancels, on the reversal's own date (CONTRACT §3); a second reversal of the same
  purchase takes off nothing.
* :func:`purchase_findings`: purchase-sequence gaps, repeats and reversals that do not
  fit, as findings with evidence (docs/domain.md#ic-card-prepayment: 购电次数 +1 per
  accepted purchase; a reversed purchase keeps its number and the next purchase reuses
  it, so the sequence is checked over the purchases that stand).
* :func:`prepay_balances`: prepay_daily (see :mod:`meterlake.schemas.prepay_daily` for
  how the balance is anchored on the meter's first reading and carried forward).
* :func:`prepay_collection`: what each prepay customer's month collected (recovery_monthly).
"""

from __future__ import annotations

import polars as pl
from pydantic import Field

from meterlake.schemas.prepay_daily import PREPAY_DAILY
from meterlake.schemas.prepay_findings import PREPAY_FINDINGS, RULES

from .strict import StrictModel

#: the clean purchases columns read here
PURCHASE_COLUMNS: tuple[str, ...] = (
    "txn_id",
    "txn_type",
    "ref_txn_id",
    "customer_id",
    "meter_id",
    "purchase_time",
    "amount_yuan",
    "purchase_seq",
    "purchase_date",
)


class PrepayRules(StrictModel):
    """The [prepay] section of config/billing.toml (CONTRACT §3 prepay_daily status)."""

    mismatch_tolerance_yuan: float = Field(
        1.0, ge=0, description="status mismatch when |meter balance - computed balance| exceeds this"
    )
    arrears_below_yuan: float = Field(0.0, description="status arrears when the computed balance is below this (欠费)")
    low_balance_yuan: float = Field(20.0, description="status low when the computed balance is below this")


def purchase_ledger(purchases: pl.LazyFrame) -> pl.LazyFrame:
    """One row per transaction with ``date`` and its ``effect_yuan`` on the balance.

    Adds ``reversed`` (a purchase cancelled by an effective reversal), and for
    reversals ``ref_found``, ``ref_amount_yuan``, ``ref_seq`` and ``duplicate`` (not
    the first reversal of its purchase, by time then txn_id).
    """
    tx = purchases.select(PURCHASE_COLUMNS).rename({"purchase_date": "date"})
    buys = tx.filter(pl.col("txn_type") == "purchase")
    refs = buys.select(
        ref_txn_id=pl.col("txn_id"),
        ref_amount_yuan=pl.col("amount_yuan"),
        ref_seq=pl.col("purchase_seq"),
        ref_found=pl.lit(True),
    )
    reversals = (
        tx.filter(pl.col("txn_type") == "reversal")
        .with_columns(
            duplicate=(pl.col("txn_id").cum_count().over("ref_txn_id", order_by=["purchase_time", "txn_id"]) > 1)
            & pl.col("ref_txn_id").is_not_null()
        )
        .join(refs, on="ref_txn_id", how="left")
        .with_columns(
            ref_found=pl.col("ref_found").fill_null(False),
            effect_yuan=pl.when(pl.col("duplicate"))
            .then(0.0)
            .otherwise(-pl.coalesce("ref_amount_yuan", "amount_yuan")),
        )
    )
    cancelled = reversals.filter(~pl.col("duplicate") & pl.col("ref_found")).select(
        txn_id=pl.col("ref_txn_id"), reversed=pl.lit(True)
    )
    buys = buys.join(cancelled, on="txn_id", how="left").with_columns(
        reversed=pl.col("reversed").fill_null(False), effect_yuan=pl.col("amount_yuan")
    )
    return pl.concat([buys, reversals], how="diagonal_relaxed")


def daily_net_purchases(ledger: pl.LazyFrame) -> pl.LazyFrame:
    """Net purchases per customer, meter and date (reversals on their own date)."""
    return ledger.group_by("customer_id", "meter_id", "date").agg(
        purchases_yuan=pl.col("effect_yuan").sum(),
        txn_count=(pl.col("effect_yuan") != 0).sum().cast(pl.Int16),
    )


def _finding(rule: str, description: pl.Expr, evidence: list[pl.Expr]) -> list[pl.Expr]:
    severity, _ = RULES[rule]
    return [
        pl.col("date"),
        pl.lit(rule).alias("rule"),
        pl.lit(severity).alias("severity"),
        pl.col("customer_id"),
        pl.col("meter_id"),
        pl.col("txn_id"),
        description.alias("description"),
        pl.struct(evidence).struct.json_encode().alias("evidence"),
    ]


def purchase_findings(ledger: pl.LazyFrame) -> pl.LazyFrame:
    """Findings on the purchase sequence and on reversals (PREPAY_FINDINGS rows)."""
    # docs/domain.md#ic-card-prepayment: the purchase sequence (购电次数) rises by 1 per
    # accepted purchase; CONTRACT §1 purchases: a reversed purchase keeps its number and
    # the next purchase reuses it, so the check runs over the purchases that stand
    order = ["purchase_time", "txn_id"]
    standing = (
        ledger.filter((pl.col("txn_type") == "purchase") & ~pl.col("reversed") & pl.col("purchase_seq").is_not_null())
        .with_columns(
            prev_seq=pl.col("purchase_seq").shift(1).over("customer_id", order_by=order),
            prev_txn_id=pl.col("txn_id").shift(1).over("customer_id", order_by=order),
        )
        .filter(pl.col("prev_seq").is_not_null())
    )
    seq_evidence = [pl.col("purchase_seq"), pl.col("prev_seq"), pl.col("prev_txn_id")]
    step = pl.col("purchase_seq") - pl.col("prev_seq")
    gaps = standing.filter(step > 1).select(
        _finding(
            "prepay.purchase.seq_gap",
            pl.format(
                "purchase_seq {} follows {} ({}): expected {}",
                "purchase_seq",
                "prev_seq",
                "prev_txn_id",
                pl.col("prev_seq") + 1,
            ),
            seq_evidence,
        )
    )
    repeats = standing.filter(step == 0).select(
        _finding(
            "prepay.purchase.seq_repeat",
            pl.format(
                "purchase_seq {} repeats that of {}: expected {}", "purchase_seq", "prev_txn_id", pl.col("prev_seq") + 1
            ),
            seq_evidence,
        )
    )
    backwards = standing.filter(step < 0).select(
        _finding(
            "prepay.purchase.seq_backwards",
            pl.format("purchase_seq {} is below {} of {}", "purchase_seq", "prev_seq", "prev_txn_id"),
            seq_evidence,
        )
    )
    # CONTRACT §1: a reversal (冲正) cancels the transaction named in ref_txn_id
    rev = ledger.filter(pl.col("txn_type") == "reversal")
    unknown = rev.filter(~pl.col("ref_found") & ~pl.col("duplicate")).select(
        _finding(
            "prepay.reversal.unknown_ref",
            pl.format(
                "reversal of {}: no such purchase in the lake; {} yuan taken off",
                pl.col("ref_txn_id").fill_null("(empty)"),
                "amount_yuan",
            ),
            [pl.col("ref_txn_id"), pl.col("amount_yuan")],
        )
    )
    dup = rev.filter(pl.col("duplicate")).select(
        _finding(
            "prepay.reversal.duplicate",
            pl.format("second reversal of {}: ignored", "ref_txn_id"),
            [pl.col("ref_txn_id"), pl.col("amount_yuan")],
        )
    )
    differs = rev.filter(
        pl.col("ref_found") & ~pl.col("duplicate") & ((pl.col("amount_yuan") - pl.col("ref_amount_yuan")).abs() > 0.005)
    ).select(
        _finding(
            "prepay.reversal.amount_differs",
            pl.format(
                "reversal of {} for {} yuan; the purchase was {} yuan (taken off)",
                "ref_txn_id",
                "amount_yuan",
                "ref_amount_yuan",
            ),
            [pl.col("ref_txn_id"), pl.col("amount_yuan"), pl.col("ref_amount_yuan")],
        )
    )
    return PREPAY_FINDINGS.conform(pl.concat([gaps, repeats, backwards, unknown, dup, differs]))


def unmatched_transactions(ledger: pl.LazyFrame, prepay_days: pl.LazyFrame) -> pl.LazyFrame:
    """Findings for transactions whose meter has no prepay meter_daily row on their date."""
    keys = prepay_days.select("customer_id", "meter_id", "date").unique()
    return PREPAY_FINDINGS.conform(
        ledger.filter(pl.col("effect_yuan") != 0)
        .join(keys, on=["customer_id", "meter_id", "date"], how="anti")
        .select(
            _finding(
                "prepay.purchase.no_meter_day",
                pl.format(
                    "{} of {} yuan on {} for meter {}: no prepay meter day; not in the balance",
                    "txn_type",
                    "effect_yuan",
                    "date",
                    "meter_id",
                ),
                [pl.col("txn_type"), pl.col("effect_yuan"), pl.col("date").cast(pl.String)],
            )
        )
    )


#: a meter's key in the windows and joins of :func:`prepay_balances`: two independent
#: 64-bit hashes of (customer_id, meter_id). Windows over integers run about three
#: times faster than over two strings at county scale; with 128 bits, two meters
#: sharing a key has a chance of about n^2 / 2^129 (1e-28 for a million meters).
_METER_KEY = ("_k0", "_k1")


def _with_meter_key(lf: pl.LazyFrame) -> pl.LazyFrame:
    pair = pl.struct("customer_id", "meter_id")
    return lf.with_columns(_k0=pair.hash(seed=0), _k1=pair.hash(seed=1))


def prepay_balances(
    priced: pl.LazyFrame,
    net: pl.LazyFrame,
    rules: PrepayRules,
    opening: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """prepay_daily rows from priced prepay meter-days and net purchases.

    ``priced``: :func:`meterlake.transforms.billing.price_days` rows of prepay meters
    (``prepay == 1``) with meter_daily's ``remaining_yuan``. ``net``:
    :func:`daily_net_purchases`; a purchase on a date without a row of its meter in
    ``priced`` is not in any balance (:func:`unmatched_transactions` reports it).

    ``opening``: prepay_daily rows of the day before the first day of ``priced`` (the
    checkpoint): a meter with a ``balance_yuan`` there carries it forward, keeping its
    anchor date. Without it (or for a meter not anchored there), the balance is
    anchored on the meter's first ``remaining_yuan`` in ``priced``, which must then
    hold every day from that reading on.
    """
    key = list(_METER_KEY)
    days = _with_meter_key(priced).join(
        _with_meter_key(net).select(*key, "date", "purchases_yuan", "txn_count"),
        on=[*key, "date"],
        how="left",
    )
    days = days.with_columns(
        purchases_yuan=pl.col("purchases_yuan").fill_null(0.0),
        txn_count=pl.col("txn_count").fill_null(0).cast(pl.Int16),
        consumption_yuan=pl.col("cost_yuan"),
        meter_balance_yuan=pl.col("remaining_yuan"),
    ).with_columns(
        # a day without a tariff adds no cost (its bill is an exception: no_tariff)
        flow=(pl.col("purchases_yuan") - pl.col("consumption_yuan").fill_null(0.0))
        .cum_sum()
        .over(key, order_by="date"),
    )
    # the meter's first reading in the window: its date, value and the flow up to it
    read = pl.col("remaining_yuan").is_not_null()
    first = pl.col("date").filter(read)
    anchors = days.group_by(key).agg(
        first_reading=first.min(),
        anchor_yuan=pl.col("remaining_yuan").filter(read).min_by(first),
        anchor_flow=pl.col("flow").filter(read).min_by(first),
    )
    days = days.join(anchors, on=key, how="left")
    if opening is not None:
        days = days.join(
            _with_meter_key(opening.filter(pl.col("balance_yuan").is_not_null())).select(
                *key,
                open_yuan=pl.col("balance_yuan"),
                open_anchor_date=pl.col("balance_anchor_date"),
            ),
            on=key,
            how="left",
        )
    else:
        days = days.with_columns(open_yuan=pl.lit(None, pl.Float64), open_anchor_date=pl.lit(None, pl.Date))
    days = (
        days.with_columns(
            balance_yuan=pl.when(pl.col("open_yuan").is_not_null())
            .then(pl.col("open_yuan") + pl.col("flow"))
            .when(pl.col("date") >= pl.col("first_reading"))
            .then(pl.col("anchor_yuan") + (pl.col("flow") - pl.col("anchor_flow"))),
        )
        .with_columns(
            balance_anchor_date=pl.when(pl.col("balance_yuan").is_not_null()).then(
                pl.coalesce("open_anchor_date", "first_reading")
            ),
            difference_yuan=pl.col("meter_balance_yuan") - pl.col("balance_yuan"),
        )
        .with_columns(
            status=pl.when(pl.col("balance_yuan").is_null())
            .then(None)
            .when(pl.col("difference_yuan").abs() > rules.mismatch_tolerance_yuan)
            .then(pl.lit("mismatch"))
            .when(pl.col("balance_yuan") < rules.arrears_below_yuan)
            .then(pl.lit("arrears"))
            .when(pl.col("balance_yuan") < rules.low_balance_yuan)
            .then(pl.lit("low"))
            .otherwise(pl.lit("ok"))
        )
    )
    return PREPAY_DAILY.conform(days)


def prepay_collection(bills: pl.LazyFrame, prepay_month: pl.LazyFrame, rules: PrepayRules) -> pl.LazyFrame:
    """Per customer billed in the month: its bill and, for prepay customers, what was collected.

    ``collected = bill - min(bill, arrears at month end)``; arrears = -balance_yuan on the
    customer's last prepay_daily day of the month (summed over its meters) when below
    ``arrears_below_yuan``. A customer is prepay when prepay_daily holds it in the month.
    Columns: customer_id, area_id, billed, is_prepay, has_balance, in_arrears, arrears,
    collected (null outside the rate), purchases, in_rate.
    """
    customers = bills.group_by("customer_id").agg(
        billed=pl.col("amount_yuan").sum().round(9),
        area_id=pl.col("area_id").get(pl.col("period_end").arg_max()),
    )
    month_end = prepay_month.filter(pl.col("date") == pl.col("date").max().over("customer_id", "meter_id"))
    balances = month_end.group_by("customer_id").agg(
        balance=pl.col("balance_yuan").sum().round(9),
        has_balance=pl.col("balance_yuan").is_not_null().all(),
    )
    purchases = prepay_month.group_by("customer_id").agg(purchases=pl.col("purchases_yuan").sum().round(9))
    return (
        customers.join(balances, on="customer_id", how="left")
        .join(purchases, on="customer_id", how="left")
        .with_columns(is_prepay=pl.col("has_balance").is_not_null(), has_balance=pl.col("has_balance").fill_null(False))
        .with_columns(
            in_arrears=pl.col("has_balance") & (pl.col("balance") < rules.arrears_below_yuan),
            in_rate=pl.col("is_prepay") & pl.col("has_balance"),
        )
        .with_columns(arrears=pl.when(pl.col("in_arrears")).then(-pl.col("balance")).otherwise(0.0))
        .with_columns(
            collected=pl.when(pl.col("in_rate")).then(
                pl.col("billed") - pl.min_horizontal(pl.col("billed"), pl.col("arrears").clip(lower_bound=0.0))
            )
        )
        .drop("balance")
    )
