"""Post-paid payments (缴费记录) of the synthetic landing zone, and their truth.

Each post-paid customer's month is priced the way the pipeline bills it (CONTRACT §2,
on the registers, with the archive's multiplier), so a customer who pays "the bill"
pays the amount the lake will bill. Behaviours (``_truth/payers.csv``):

* ``on_time``: pays in full between the 2nd and the 19th of the issue month, through
  WeChat, Alipay, direct debit (``withholding``, on the 5th) or at a counter;
* ``overpayer``: on time, rounding up to the next 50 yuan (the excess is a credit);
* ``late``: pays in full 1 to 25 days after the due date;
* ``chronic``: a chronic debtor (长期欠费): most months nothing, sometimes part of the
  arrears long after the due date;
* ``bank_10kv``: a customer fed directly at 10 kV: a bank transfer naming the bill
  month, usually on time.

Besides, some payments are reversed (冲正) a few days later and mostly paid again, and
a few name the wrong month (the next one, which has no bill yet: held as a credit).
Events are listed in ``_truth/payment_events.csv``. Payments run past the last
generated day to the end of the month in which the last bill falls due.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from meterlake.schemas.payments import CHANNELS

from . import _shapes as sh
from . import _topology as tp
from ._plan import money
from ._topology import UNIT

if TYPE_CHECKING:
    from ._sim import Generator

BEHAVIOURS = ("on_time", "overpayer", "late", "chronic", "bank_10kv")
B_ON, B_OVER, B_LATE, B_CHRONIC, B_BANK = range(5)
#: shares of the area customers (the 10 kV customers are all bank_10kv)
SHARES = {B_CHRONIC: 0.03, B_LATE: 0.12, B_OVER: 0.05}
#: channels of on-time payers (CHANNELS order: counter, wechat, alipay, bank, pos, online, withholding)
ON_TIME_CHANNEL_P = np.array([0.10, 0.38, 0.25, 0.0, 0.02, 0.05, 0.20])
REVERSAL_SHARE = 0.015
WRONG_MONTH_SHARE = 0.01
ISSUE_DAY, DUE_DAY = 1, 20


def _month_label(d: dt.date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def _next_month(d: dt.date, day: int) -> dt.date:
    return (d.replace(day=1) + dt.timedelta(days=32)).replace(day=day)


class Payments:
    """Prices each post-paid customer's days, closes monthly bills, then writes the payments."""

    def __init__(self, gen: Generator, seed: int) -> None:
        t = gen.topo
        self.start, self.days = gen.start, gen.days
        self.id_prefix = gen.id_prefix
        self.rng = np.random.default_rng([seed, 11])
        c = t.n_cust
        self.idx = np.flatnonzero(~t.prepay[:c])
        n = len(self.idx)
        direct = t.area[self.idx] < 0
        u = self.rng.random(n)
        b = np.full(n, B_ON)
        edge = 0.0
        for kind, share in SHARES.items():
            b[(u >= edge) & (u < edge + share)] = kind
            edge += share
        b[direct] = B_BANK
        self.behaviour = b
        self.mult = gen.plan.mult_archive[self.idx]
        self.ycum = np.zeros(n)
        self.cost = np.zeros(n)
        self.prev: tuple[np.ndarray, np.ndarray] | None = None
        #: (bill month's last day, amounts in cents)
        self.bills: list[tuple[dt.date, np.ndarray]] = []

    def accrue(self, k: int, registers: np.ndarray, displays: np.ndarray, tariff: np.ndarray) -> None:
        """Price day k-1 from the registers frozen at 00:00 of day k (as the pipeline bills it)."""
        i = self.idx
        now = (registers[i].copy(), displays[i].copy())
        if self.prev is None:
            self.prev = now
            return
        day = self.start + dt.timedelta(days=k - 1)
        if day.month == 1 and day.day == 1:
            self.ycum[:] = 0.0
        kwh = (now[0] - self.prev[0]) / UNIT * self.mult
        dreg = (now[1] - self.prev[1]) / UNIT * self.mult[:, None]
        self.prev = now
        cost = sh.day_cost(kwh, dreg, self.ycum, tariff[i])
        self.ycum += kwh
        self.cost += np.where(np.isfinite(cost), cost, 0.0)
        if (day + dt.timedelta(days=1)).month != day.month:  # the month's last day: its bill closes
            self.bills.append((day, np.floor(self.cost * 100 + 0.5).astype(np.int64)))
            self.cost[:] = 0.0

    # ---- payments ------------------------------------------------------------------------

    def simulate(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        """All payment rows (one frame, unsorted) and the events' truth."""
        r, b = self.rng, self.behaviour
        n = len(self.idx)
        if not self.bills:
            return _rows([]), _events([])
        horizon = _next_month(self.bills[-1][0], 1) + dt.timedelta(days=31)
        horizon = horizon.replace(day=1) - dt.timedelta(days=1)
        end = np.datetime64(horizon, "D")
        owed = np.zeros(n, dtype=np.int64)
        rows: list[dict[str, np.ndarray]] = []
        events: list[dict[str, object]] = []
        for last_day, cents in self.bills:
            month = _month_label(last_day)
            issue = _next_month(last_day, ISSUE_DAY)
            due = _next_month(last_day, DUE_DAY)
            owed += cents
            offset = np.zeros(n, dtype=np.int64)
            pay = np.zeros(n, dtype=np.int64)
            chan = r.choice(len(CHANNELS), n, p=ON_TIME_CHANNEL_P)
            on = np.isin(b, [B_ON, B_OVER])
            offset[on] = r.integers(1, DUE_DAY - 1, int(on.sum()))
            offset[on & (chan == CHANNELS.index("withholding"))] = 4
            pay[on] = owed[on]
            over = b == B_OVER
            pay[over] = -(-owed[over] // 5000) * 5000
            late = b == B_LATE
            offset[late] = (due - issue).days + r.integers(1, 26, int(late.sum()))
            pay[late] = owed[late]
            bank = b == B_BANK
            bank_late = bank & (r.random(n) < 0.1)
            offset[bank] = r.integers(9, DUE_DAY - 1, int(bank.sum()))
            offset[bank_late] = (due - issue).days + r.integers(5, 20, int(bank_late.sum()))
            pay[bank] = owed[bank]
            chan[bank] = CHANNELS.index("bank")
            chronic = (b == B_CHRONIC) & (r.random(n) < 0.3)
            offset[chronic] = (due - issue).days + r.integers(10, 40, int(chronic.sum()))
            pay[chronic] = np.floor(owed[chronic] * r.uniform(0.3, 0.9, int(chronic.sum())))
            chan[late | chronic] = r.choice([0, 1, 2, 5], int((late | chronic).sum()))
            when = np.datetime64(issue, "D") + offset.astype("timedelta64[D]")
            go = (pay > 0) & (when <= end)
            named = bank | (go & (chan == CHANNELS.index("counter")) & (r.random(n) < 0.5))
            wrong = go & named & ~bank & (r.random(n) < WRONG_MONTH_SHARE * 10)
            bill_month = np.where(named, month, "")
            bill_month[wrong] = _month_label(_next_month(last_day, 1) + dt.timedelta(days=40))
            g = np.flatnonzero(go)
            owed[g] -= pay[g]
            rows.append(
                {
                    "who": g,
                    "day": when[g],
                    "cents": pay[g],
                    "channel": chan[g],
                    "bill_month": bill_month[g],
                    "kind": np.zeros(len(g), dtype=np.int64),
                }
            )
            events.append({"who": g[wrong[g]], "kind": np.full(int(wrong[g].sum()), "wrong_month"), "month": month})
            events.append({"who": g[over[g]], "kind": np.full(int(over[g].sum()), "overpayment"), "month": month})
            # reversals (冲正) a few days later; most are paid again
            rev = g[(r.random(len(g)) < REVERSAL_SHARE)]
            rev_day = when[rev] + r.integers(0, 4, len(rev)).astype("timedelta64[D]")
            keep = rev_day <= end
            rev, rev_day = rev[keep], rev_day[keep]
            redo_day = rev_day + r.integers(0, 6, len(rev)).astype("timedelta64[D]")
            redo = (r.random(len(rev)) < 0.7) & (redo_day <= end)
            owed[rev[~redo]] += pay[rev[~redo]]
            rows.append(
                {
                    "who": rev,
                    "day": rev_day,
                    "cents": pay[rev],
                    "channel": chan[rev],
                    "bill_month": bill_month[rev],
                    "kind": np.ones(len(rev), dtype=np.int64),
                }
            )
            rows.append(
                {
                    "who": rev[redo],
                    "day": redo_day[redo],
                    "cents": pay[rev[redo]],
                    "channel": chan[rev[redo]],
                    "bill_month": bill_month[rev[redo]],
                    "kind": np.full(int(redo.sum()), 2, dtype=np.int64),
                }
            )
            events.append({"who": rev, "kind": np.full(len(rev), "reversal"), "month": month})
        return _rows(rows), _events(events)

    def write(self, gen: Generator) -> None:
        """One payments file per day, delivered the next morning."""
        t = gen.topo
        frame, self.events = self.simulate()
        if frame.is_empty():
            return
        frame = frame.with_columns(customer_id=t.customer_id.gather(self.idx[frame["who"].to_numpy()]))
        r = self.rng
        # payments in the morning, reversals in the afternoon, payments made again in the evening:
        # on one day they come in that order
        seconds = pl.Series(r.integers(0, 5 * 3600, frame.height))
        frame = frame.with_columns(
            paid_at=pl.col("day").cast(pl.Datetime("us"))
            + pl.duration(seconds=7 * 3600 + pl.col("kind") * 5 * 3600 + seconds)
        ).sort("day", "paid_at", "who", "kind")
        # reversals carry the txn_id of the payment they cancel: the payment row of the same
        # customer, bill and amount just before it
        frame = frame.with_columns(
            txn_id=pl.format(
                "P{}{}{}",
                pl.lit(self.id_prefix),
                pl.col("day").dt.strftime("%Y%m%d"),
                pl.int_range(pl.len()).over("day").cast(pl.String).str.zfill(7),
            ),
        )
        pays = frame.filter(pl.col("kind") == 0).select("who", "cents", "bill_month", "paid_at", ref_txn_id="txn_id")
        revs = (
            frame.filter(pl.col("kind") == 1)
            .sort("paid_at")
            .join_asof(
                pays.sort("paid_at"),
                on="paid_at",
                by=["who", "cents", "bill_month"],
                strategy="backward",
                check_sortedness=False,  # both sides sorted just above; polars cannot check within `by` groups
            )
            .select("txn_id", "ref_txn_id")
        )
        frame = frame.join(revs, on="txn_id", how="left")
        self.events = self.events.with_columns(
            customer_id=t.customer_id.gather(self.idx[self.events["who"].to_numpy()])
        )
        counter = pl.col("channel").is_in(["counter", "pos"])
        out = frame.select(
            "txn_id",
            txn_type=pl.when(pl.col("kind") == 1).then(pl.lit("reversal")).otherwise(pl.lit("payment")),
            ref_txn_id="ref_txn_id",
            customer_id="customer_id",
            paid_at="paid_at",
            amount_yuan=money(frame["cents"].to_numpy()),
            bill_month=pl.col("bill_month").replace("", None),
            channel="channel",
            operator_id=pl.when(counter).then(pl.format("CZ{}", (pl.col("who") % 40 + 1).cast(pl.String).str.zfill(3))),
            day="day",
        )
        for (day,), part in out.partition_by("day", as_dict=True, maintain_order=True).items():
            gen.write(
                f"payments/payments_{day:%Y%m%d}",
                "payments",
                part.drop("day"),
                gen.fmt("payments"),
                gen.at(day + dt.timedelta(days=1), 2),
                (day, day),
            )

    def truth(self, gen: Generator) -> dict[str, pl.DataFrame]:
        t = gen.topo
        payers = pl.DataFrame(
            {
                "customer_id": t.customer_id.gather(self.idx),
                "behaviour": np.array(BEHAVIOURS)[self.behaviour],
                "customer_class": np.array(tp.CLASSES)[t.cls[self.idx]],
                "fed_at_10kv": (t.area[self.idx] < 0).astype(np.int64),
            }
        ).sort("customer_id")
        events = getattr(self, "events", _events([]))
        events = events.with_columns(customer_id=t.customer_id.gather(self.idx[events["who"].to_numpy()]))
        return {
            "payers.csv": payers,
            "payment_events.csv": events.select("customer_id", "bill_month", "kind").sort(
                "bill_month", "customer_id", "kind"
            ),
        }


def _rows(parts: list[dict[str, np.ndarray]]) -> pl.DataFrame:
    schema = {
        "who": pl.Int64,
        "day": pl.Date,
        "cents": pl.Int64,
        "channel": pl.String,
        "bill_month": pl.String,
        "kind": pl.Int64,
    }
    if not parts:
        return pl.DataFrame(schema=schema)
    frames = [
        pl.DataFrame(
            {
                "who": p["who"].astype(np.int64),
                "day": pl.Series(np.asarray(p["day"], dtype="datetime64[D]")).cast(pl.Date),
                "cents": p["cents"].astype(np.int64),
                "channel": np.array(CHANNELS)[p["channel"].astype(np.int64)] if len(p["channel"]) else [],
                "bill_month": pl.Series(list(p["bill_month"]), dtype=pl.String),
                "kind": p["kind"].astype(np.int64),
            },
            schema=schema,
        )
        for p in parts
    ]
    return pl.concat(frames)


def _events(parts: list[dict[str, object]]) -> pl.DataFrame:
    schema = {"who": pl.Int64, "kind": pl.String, "bill_month": pl.String}
    if not parts:
        return pl.DataFrame(schema=schema)
    return pl.concat(
        [
            pl.DataFrame(
                {
                    "who": np.asarray(p["who"], dtype=np.int64),
                    "kind": pl.Series(list(p["kind"]), dtype=pl.String),  # type: ignore[call-overload]
                    "bill_month": [p["month"]] * len(p["who"]),  # type: ignore[arg-type]
                },
                schema=schema,
            )
            for p in parts
        ]
    )
