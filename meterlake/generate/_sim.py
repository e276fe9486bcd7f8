"""The simulation: true loads, what the meters count, and the files of every day.

Energy bookkeeping is exact. Every meter counts integer units of 1e-4 kWh on its meter
side (primary kWh / true multiplier). A register shows its count floored to its
decimals (0.01 kWh; 0.0001 for feeder heads) modulo ``register_max``. The day's 96
curve values are the day's register difference split in proportion to the true slot
energy (floored, the remainder on the day's largest slot), so Σ p1..p96 of day D equals
register(D+1) - register(D) exactly as written. The TOU registers are the cumulative
slot units of their periods, floored, the program's remainder register taking the
rest, so Σ sharp..valley equals total_kwh exactly as written (a register that rolls
over breaks this, as on a real meter: each register rolls on its own).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from meterlake.schemas import LANDINGS
from meterlake.schemas.curves import SLOTS as SLOT_NAMES
from meterlake.schemas.events import EVENT_CODES
from meterlake.schemas.purchases import CHANNELS
from meterlake.transforms import dates

from . import _files as fl
from . import _outages
from . import _shapes as sh
from . import _topology as tp
from ._payments import Payments
from ._plan import EV, Plan, gather_code, hhmm, make_plan, money, reading, text, truth_rows
from ._thefts import plan_attacks, plan_partial
from ._topology import UNIT

DAY_S = 86400
EVENT_ZH = dict(
    zip(
        EVENT_CODES,
        (
            "停电",
            "上电",
            "开表盖",
            "开端钮盒",
            "失压",
            "失流",
            "断相",
            "潮流反向",
            "时钟故障",
            "恒定磁场干扰",
            "电表清零",
        ),
        strict=True,
    )
)
#: the unknown extra column of one events file: the head-end's description of the event
REMARK = "备注"
#: a code no meter reports, for the `unknown_code` bad row
UNKNOWN_EVENT_CODE = "ERC37"
#: the supply unit (供电单位) every generated meter belongs to
DEFAULT_ORG = "ORG01"


def org_name(k: int) -> str:
    """The org_id of the k-th generated unit (1-based).

    >>> org_name(1), org_name(12)
    ('ORG01', 'ORG12')
    """
    return f"ORG{k:02d}"


#: a meter id no archive holds, for the `unknown_meter` bad row (a range no meter uses)
UNKNOWN_METER_PREFIX = "0004"
#: share of a dataset's files delivered gzip-compressed
GZIP_SHARE = {
    "outage_plans": 0.0,
    "archive": 0.0,
    "curves": 0.5,
    "registers": 0.25,
    "events": 0.1,
    "purchases": 0.1,
    "payments": 0.1,
}
#: benign events on three-phase meters (false leads for the theft screen), with weights
NOISE_CODES = np.array(
    [EV["CLOCK_FAULT"], EV["PHASE_FAILURE"], EV["VOLTAGE_LOSS"], EV["CURRENT_LOSS"], EV["COVER_OPEN"]]
)
NOISE_P = np.array([0.35, 0.25, 0.2, 0.15, 0.05])
#: channel mix (CHANNELS order: counter, wechat, alipay, bank, pos, online)
CHANNEL_P = np.array([0.15, 0.35, 0.25, 0.10, 0.05, 0.10])
RES_AMOUNTS = np.array([50, 100, 100, 200, 200, 300, 500])
COM_AMOUNTS = np.array([200, 500, 1000, 2000])


def _set_fields(**values: str) -> Callable[[list[str], list[str]], str]:
    def make(fields: list[str], names: list[str]) -> str:
        out = list(fields)
        for name, value in values.items():
            if name in names:
                out[names.index(name)] = value
        return ",".join(out)

    return make


def _extra_field(fields: list[str], names: list[str]) -> str:
    return ",".join([*fields, ""])


def technical_loss(
    flow: np.ndarray, share: np.ndarray, iron: np.ndarray, typical: np.ndarray, off: np.ndarray
) -> np.ndarray:
    """Technical loss of each area and slot (kWh): no-load (iron) loss plus load (copper) loss.

    ``flow`` (areas, slots): the energy through the transformer (customers' use less PV
    export); ``share``: the loss as a share of supply when the flow is ``typical`` (kWh
    per slot); ``iron``: the no-load part of that loss. The no-load loss of the
    transformer core (and the meters' own consumption) is the same in every energised
    slot; the load loss of windings and lines grows with the square of the current, so
    with the square of the flow at a steady voltage (DL/T 686). A slot whose area is
    ``off`` supply has neither.
    """
    at_typical = (share / (1.0 - share) * typical)[:, None]  # the loss at the typical flow, kWh per slot
    load_loss = (1.0 - iron[:, None]) * at_typical * (flow / typical[:, None]) ** 2
    return np.where(off, 0.0, iron[:, None] * at_typical + load_loss)


class Generator:
    """One run of ``meterlake generate``: state between days and the files written."""

    def __init__(
        self,
        out: Path,
        meters: int,
        days: int,
        start: dt.date,
        seed: int,
        say: Callable[[str], None],
        org: int = 1,
    ) -> None:
        self.out, self.days, self.start, self.seed, self.say = out, days, start, seed, say
        self.org_id = org_name(org)
        #: transaction and plan ids of unit k > 1 start with k (two digits): units never share one
        self.id_prefix = "" if org == 1 else f"{org:02d}"
        rng = np.random.default_rng(seed)
        r_topo, r_inj, self.r_load, self.r_pay, self.r_evt, self.r_files, self.r_miss, self.r_rows = rng.spawn(8)
        say("topology")
        self.topo = tp.build(meters, r_topo, org)
        self.plan: Plan = make_plan(self.topo, days, start, r_inj)
        self.partial = plan_partial(self.topo, self.plan, days, start, seed)
        self.attacks = plan_attacks(self.topo, self.plan, self.partial.idx, days, start, seed)
        self.truth: list[pl.DataFrame] = self.plan.truth
        self.faults: list[dict[str, object]] = []
        self.outages = _outages.make(self.topo, self.plan.archive_area, days, start, seed, self.id_prefix)
        self.r_out = np.random.default_rng([seed, 0x0FF])
        self.truth.append(self.outages.injection_rows(self.topo))
        self.written: list[fl.Written] = []
        self.loss_rows: list[pl.DataFrame] = []
        self.stash: dict[str, tuple[pl.DataFrame, dict[str, object]]] = {}
        self._init_state()
        self.payments = Payments(self, seed)

    # ---- state -------------------------------------------------------------------------

    def _init_state(self) -> None:
        t, p, r = self.topo, self.plan, self.r_load
        n, c = t.n, t.n_cust
        self.q = np.where(t.decimals == 4, 1, 100).astype(np.int64)
        season = sh.season_factor(self.start)
        cum = r.uniform(100, 3000, n) * t.base_kwh * r.uniform(0.6, 1.0, n) / t.mult * UNIT
        ro = p.rollover_idx
        if len(ro):
            # a reading a fraction of a day's use below a multiple of register_max,
            # on a day inside the window
            day_units = t.base_kwh[ro] * season[t.profile[ro]] / t.mult[ro] * UNIT
            cross = r.integers(0, self.days, len(ro)) + r.uniform(0.3, 0.7, len(ro))
            cum[ro] = t.reg_max[ro] * r.integers(1, 3, len(ro)) - day_units * cross
        self.cum = cum
        self.R = (np.floor(cum / self.q) * self.q).astype(np.int64)
        share = np.array([[0.08, 0.42, 0.12, 0.38], [0.0, 0.62, 0.0, 0.38], [0.0, 0.0, 1.0, 0.0]])[t.program]
        share = share * r.uniform(0.85, 1.15, (n, 4))
        share /= share.sum(1, keepdims=True)
        tou = np.floor(self.R[:, None] * share).astype(np.int64)
        tou[np.arange(n), sh.TOU_REMAINDER[t.program]] += self.R - tou.sum(1)
        self.tou = tou
        self.rev = np.where(t.pv_kw > 0, r.uniform(30, 1500, n) * t.pv_kw * 2.5 / t.mult * UNIT, 0.0)
        self.prev_shown: np.ndarray | None = None

        # physical topology (customers only; moves change it on the second snapshot's date)
        self.phys_area = t.area[:c].copy()
        a = t.area[:c]
        self.runs = np.flatnonzero(np.concatenate([[True], a[1:] != a[:-1]]))
        self.run_area = a[self.runs]
        self.pv = np.flatnonzero(t.pv_kw[:c] > 0)
        self.direct = np.flatnonzero(a < 0)
        self.onehot = np.stack([np.eye(4)[sh.TOU_PROGRAM[k]] for k in range(3)])  # (program, slot, register)
        self.noise_pool = np.flatnonzero(t.three_phase & ~np.isin(np.arange(n), p.theft_idx))

        # prepayment: balances, purchase counts, the year's kWh for the tiers
        self.p_idx = np.flatnonzero(t.prepay)
        pi = self.p_idx
        npp = len(pi)
        com = t.cls[pi] == tp.C_COM
        rp = self.r_pay
        self.bal = rp.uniform(20, 300, npp) * np.where(com, 5, 1)
        self.thr = rp.uniform(15, 60, npp) * np.where(com, 4, 1)
        self.p_count = rp.integers(3, 80, npp)  # the meter's accepted purchases
        self.p_seq = self.p_count.copy()  # the business system's sequence
        self.ycum = np.zeros(npp)
        self.p_od = np.isin(pi, p.overdraft_idx)
        self.od_limit = rp.uniform(10, 40, npp)
        day_cost = t.base_kwh[pi] * season[t.profile[pi]] * 0.6
        self.bal[self.p_od] = day_cost[self.p_od] * rp.uniform(0.3, 0.8, int(self.p_od.sum()))
        where = np.searchsorted(pi, p.mismatch_idx)
        self.p_mm = np.full(npp, -1)
        self.p_mm[where] = p.mismatch_day
        self.p_mm_kind = np.zeros(npp, dtype=np.int64)
        self.p_mm_kind[where] = p.mismatch_kind
        length = rp.integers(6, 10, npp)  # card numbers of 16-19 digits
        pre = rp.integers(10 ** (length - 1), 10**length)
        self.card = pl.Series(pre).cast(pl.String) + pl.Series(rp.integers(0, 10**10, npp)).cast(pl.String).str.zfill(
            10
        )
        self.operators = pl.Series([f"CZ{k:03d}" for k in range(1, 41)])
        self.credit = np.zeros(npp)
        self.loaded = np.zeros(npp, dtype=np.int64)
        self.prev_disp: np.ndarray | None = None
        self.prev_R: np.ndarray | None = None
        self.neg_seen = np.zeros(npp, dtype=bool)

    # ---- formats, deliveries, faults --------------------------------------------------------

    def fmt(self, dataset: str, **force: object) -> fl.FileFormat:
        """A random file format (always the same draws, so forcing a field changes nothing else)."""
        r = self.r_files
        u = r.random(5)
        names = LANDINGS[dataset].names
        perm = tuple(names[i] for i in r.permutation(len(names)))
        enc = "gbk" if u[0] < 0.25 else ("utf-8-sig" if u[0] < 0.40 else "utf-8")
        kw: dict[str, object] = {
            "encoding": enc,
            "header": "zh" if enc == "gbk" or u[1] < 0.1 else "canonical",
            "gzip": bool(u[2] < GZIP_SHARE[dataset]),
            "date_format": "%Y%m%d" if u[3] < 0.35 else "%Y-%m-%d",
            "order": perm if u[4] < 0.25 else (),
        }
        if force.pop("shuffle", False):
            kw["order"] = perm
        kw.update(force)
        if kw["encoding"] == "gbk":  # GBK exports carry the Chinese headers
            kw["header"] = "zh"
        return fl.FileFormat(**kw)  # type: ignore[arg-type]

    def at(self, day: dt.date, hour: int, spread_min: int = 90) -> dt.datetime:
        r = self.r_files
        return dt.datetime.combine(day, dt.time(hour)) + dt.timedelta(
            minutes=int(r.integers(0, spread_min)), seconds=int(r.integers(0, 60))
        )

    def write(
        self,
        rel: str,
        dataset: str,
        frame: pl.DataFrame,
        fmt: fl.FileFormat,
        delivered: dt.datetime,
        dates: tuple[dt.date, dt.date],
        **kw: Any,
    ) -> fl.Written:
        w = fl.write(
            self.out,
            rel + fmt.suffix,
            dataset,
            frame,
            fmt,
            delivered,
            (dates[0].isoformat(), dates[1].isoformat()),
            **kw,
        )
        self.written.append(w)
        for e in w.edits:
            self.fault(e.reason, w.path, line=e.line, meter_id=e.meter_id, date=e.date, detail=e.detail)
        if w.cutoff_line:
            self.fault(
                "cutoff",
                w.path,
                line=w.cutoff_line,
                meter_id=w.cutoff_meter,
                date=dates[1].isoformat(),
                detail="last row cut mid-row, no trailing newline",
            )
        for col in w.extra_columns:
            self.fault("extra_column", w.path, detail=f"column {col!r} is not in the contract")
        return w

    def fault(
        self,
        kind: str,
        file: str,
        line: int | None = None,
        other: str = "",
        meter_id: str = "",
        date: str = "",
        detail: str = "",
    ) -> None:
        self.faults.append(
            {
                "kind": kind,
                "file": file,
                "line": line,
                "other_file": other,
                "meter_id": meter_id,
                "date": date,
                "detail": detail,
            }
        )

    def edit_rows(self, height: int, skip: int, k: int) -> list[int]:
        """k distinct data rows near the top of a file, after its first ``skip`` rows."""
        span = max(1, min(40, (height - skip) // 4))
        return sorted(int(x) for x in skip + self.r_rows.choice(span, min(k, span), replace=False))

    def overlap_rows(self, height: int, skip: int, avoid: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Rows to repeat in the next file (not edited, not the last row), and the conflicting few."""
        cand = np.setdiff1d(np.arange(skip, max(skip, height - 1)), avoid)
        if (cand >= height // 2).sum() >= 3:
            cand = cand[cand >= height // 2]
        n_rep = min(len(cand), max(3, min(2000, height // 200)))
        chosen = np.sort(self.r_rows.choice(cand, n_rep, replace=False))
        n_conf = min(len(chosen) - 1, max(2, min(50, height // 5000)))
        conf = np.sort(self.r_rows.choice(chosen, max(n_conf, 0), replace=False))
        return chosen, conf

    def finish_overlap(self, dataset: str, frame: pl.DataFrame) -> tuple[pl.DataFrame, int, dict[str, object] | None]:
        """Prepend the rows the previous file of ``dataset`` left to repeat."""
        if dataset not in self.stash:
            return frame, 0, None
        rows, info = self.stash.pop(dataset)
        return pl.concat([rows, frame], how="vertical_relaxed"), rows.height, info

    def record_overlap(self, info: dict[str, object] | None, winner: fl.Written) -> None:
        if info is None:
            return
        loser = str(info["file"])
        self.fault(
            "overlap",
            loser,
            other=winner.path,
            date=str(info["date"]),
            detail=f"{info['repeated']} rows of {info['date']} repeated in the later file, {len(info['meters'])} of them with other values here (the later delivery holds the true values)",  # type: ignore[arg-type]
        )
        for m, here, there in zip(info["meters"], info["here"], info["there"], strict=True):  # type: ignore[call-overload]
            self.fault(
                "overlap_conflict",
                loser,
                other=winner.path,
                meter_id=m,
                date=str(info["date"]),
                detail=f"{info['column']} {here} here, {there} in the later file",
            )

    # ---- archive -------------------------------------------------------------------------------

    def archive(self, snap: dt.date, area: np.ndarray, fmt: fl.FileFormat, delivered: dt.datetime) -> None:
        t = self.topo
        self.say(f"archive {snap.isoformat()}")
        role = np.array(tp.ROLES)[t.role]
        cls = pl.Series(np.array((*tp.CLASSES, ""))[t.cls]).replace("", None)
        tariff = pl.Series(np.array((*sh.TARIFFS, ""))[t.tariff]).replace("", None)
        whole = t.reg_max % UNIT == 0
        rmax = pl.select(
            pl.when(pl.lit(pl.Series(whole)))
            .then(pl.lit(pl.Series(t.reg_max // UNIT)).cast(pl.String))
            .otherwise(pl.lit(reading(t.reg_max, np.zeros(t.n, dtype=bool))))
        ).to_series()
        frame = pl.DataFrame(
            {
                "snapshot_date": pl.repeat(snap, t.n, eager=True),
                "meter_id": t.meter_id,
                "customer_id": t.customer_id,
                "area_id": gather_code(t.area_code, area),
                "feeder_id": t.feeder_code.gather(t.feeder),
                "role": role,
                "customer_class": cls,
                "tariff_id": tariff,
                "multiplier": pl.Series(self.plan.mult_archive.astype(np.int64)).cast(pl.String),
                "register_max": rmax,
                "prepay": t.prepay.astype(np.int64),
                # contract v2: installed PV (empty = none) and the owning supply unit
                "pv_capacity_kw": pl.Series(np.round(t.pv_kw, 1)).cast(pl.String).replace("0.0", None),
                "org_id": pl.repeat(self.org_id, t.n, eager=True),
            }
        )
        self.write(f"archive/archive_{snap:%Y%m%d}", "archive", frame, fmt, delivered, (snap, snap))

    # ---- registers ------------------------------------------------------------------------------

    def displays(self) -> np.ndarray:
        """Unwrapped TOU register displays (n, 4) in units; each row sums to R."""
        t = self.topo
        disp = (self.tou // self.q[:, None]) * self.q[:, None]
        rows, rem = np.arange(t.n), sh.TOU_REMAINDER[t.program]
        disp[rows, rem] = 0
        disp[rows, rem] = self.R - disp.sum(1)
        return disp

    def settle_prepay(self, k: int, disp: np.ndarray) -> None:
        """The meters deduct day k-1 at the tariff (CONTRACT §2) and add the purchases loaded."""
        t, pi = self.topo, self.p_idx
        if self.prev_disp is None or not len(pi):
            return
        day = self.start + dt.timedelta(days=k - 1)
        if day.month == 1 and day.day == 1:
            self.ycum[:] = 0.0
        mult = t.mult[pi]
        kwh = (self.R[pi] - self.prev_R) / UNIT * mult
        dreg = (disp[pi] - self.prev_disp) / UNIT * mult[:, None]
        cost = sh.day_cost(kwh, dreg, self.ycum, t.tariff[pi])
        cost = np.where((self.p_mm_kind == 1) & (self.p_mm >= 0) & (k - 1 >= self.p_mm), cost * 1.25, cost)
        self.ycum += kwh
        self.bal = self.bal + self.credit - cost
        self.p_count = self.p_count + self.loaded
        self.credit[:] = 0.0
        self.loaded[:] = 0

    def registers(self, k: int, missing: np.ndarray) -> None:
        t, freeze = self.topo, self.start + dt.timedelta(days=k)
        self.say(f"registers {freeze.isoformat()} ({k + 1}/{self.days + 1})")
        disp = self.displays()
        self.settle_prepay(k, disp)
        self.payments.accrue(k, self.R, disp, t.tariff)
        pi = self.p_idx
        shown = self.R % t.reg_max
        cents = np.floor(self.bal * 100 + 0.5).astype(np.int64)
        self._record_readings(k, shown, cents)
        self.prev_disp, self.prev_R = disp[pi].copy(), self.R[pi].copy()

        rows = np.flatnonzero(~missing)
        four = t.decimals[rows] == 4
        dsh = disp[rows] % t.reg_max[rows, None]
        rev = (np.floor(self.rev[rows] / self.q[rows]) * self.q[rows]).astype(np.int64) % t.reg_max[rows]
        is_p = pl.Series(t.prepay[rows])
        pc = np.zeros(t.n, dtype=np.int64)
        pc[pi] = cents
        pn = np.zeros(t.n, dtype=np.int64)
        pn[pi] = self.p_count
        frame = pl.DataFrame(
            {
                "meter_id": t.meter_id.gather(rows),
                "freeze_date": pl.repeat(freeze, len(rows), eager=True),
                "total_kwh": reading(shown[rows], four),
                "sharp_kwh": reading(dsh[:, 0], four),
                "peak_kwh": reading(dsh[:, 1], four),
                "flat_kwh": reading(dsh[:, 2], four),
                "valley_kwh": reading(dsh[:, 3], four),
                "reverse_kwh": reading(rev, four),
                "remaining_yuan": pl.select(pl.when(pl.lit(is_p)).then(pl.lit(money(pc[rows])))).to_series(),
                "purchase_count": pl.select(pl.when(pl.lit(is_p)).then(pl.lit(pl.Series(pn[rows])))).to_series(),
            }
        )
        frame, skip, info = self.finish_overlap("registers", frame)
        edits: list[fl.LineEdit] = []
        if k == 0:
            r1, r2 = self.edit_rows(frame.height, skip, 2)
            edits = [
                fl.LineEdit(r1, False, _extra_field, "field_count", detail="one field too many"),
                fl.LineEdit(r2, False, _set_fields(total_kwh="ERR"), "bad_number", detail="total_kwh is 'ERR'"),
            ]
            for e in edits:
                e.meter_id, e.date = frame["meter_id"][e.row], freeze.isoformat()
        if k == self.days - 1:
            frame = self._stash_registers(frame, skip, freeze, [e.row for e in edits])

        name = f"registers/registers_{freeze:%Y%m%d}"
        if k == 0:
            fmt = self.fmt(
                "registers", encoding="utf-8-sig", header="canonical", gzip=False, date_format="%Y-%m-%d", shuffle=True
            )
            delivered = self.at(freeze, 3)
        elif k == 1:  # delivered three days late, named after the day it arrived
            late = freeze + dt.timedelta(days=3)
            name = f"registers/registers_{late:%Y%m%d}_01"
            fmt = self.fmt("registers", encoding="utf-8", header="canonical", gzip=True, date_format="%Y%m%d")
            delivered = self.at(late, 10)
        else:
            fmt, delivered = self.fmt("registers"), self.at(freeze, 3)
        if "registers" in self.stash:
            self.stash["registers"][1]["file"] = name + fmt.suffix
        w = self.write(
            name,
            "registers",
            frame,
            fmt,
            delivered,
            (freeze - dt.timedelta(days=1) if skip else freeze, freeze),
            edits=edits,
        )
        self.record_overlap(info, w)
        if k == 1:
            self.fault(
                "late",
                w.path,
                date=freeze.isoformat(),
                detail=f"registers frozen on {freeze.isoformat()} delivered {delivered:%Y-%m-%d %H:%M:%S} (due {freeze.isoformat()} ~03:00)",
            )
        if k == 0:  # the same file delivered again under another name
            again = delivered + dt.timedelta(hours=6, minutes=7)
            copy = fl.copy(self.out, w, f"{name}_{again:%H%M}{fmt.suffix}", again)
            self.written.append(copy)
            self.fault(
                "resent", copy.path, other=w.path, date=freeze.isoformat(), detail="identical bytes delivered again"
            )
            for e in w.edits:  # the copy carries the same bad lines
                self.fault(e.reason, copy.path, line=e.line, meter_id=e.meter_id, date=e.date, detail=e.detail)

    def _record_readings(self, k: int, shown: np.ndarray, cents: np.ndarray) -> None:
        """Truth that the readings themselves show: rollovers and prepay overdrafts."""
        t, pi = self.topo, self.p_idx
        freeze = self.start + dt.timedelta(days=k)
        if self.prev_shown is not None:
            w = np.flatnonzero(shown < self.prev_shown)
            if len(w):
                four = t.decimals[w] == 4
                detail = (
                    pl.DataFrame(
                        {
                            "a": reading(self.prev_shown[w], four),
                            "b": reading(shown[w], four),
                            "m": reading(t.reg_max[w], np.zeros(len(w), dtype=bool)),
                        }
                    )
                    .select(
                        pl.format(
                            "total_kwh {} -> {} on {} (register_max {})",
                            pl.col.a,
                            pl.col.b,
                            pl.lit(freeze.isoformat()),
                            pl.col.m,
                        )
                    )
                    .to_series()
                )
                self.truth.append(truth_rows(t, "rollover", self.start, w, k - 1, k - 1, detail))
        self.prev_shown = shown
        neg = (cents < 0) & ~self.neg_seen
        if neg.any():
            self.neg_seen |= neg
            j = np.flatnonzero(neg)
            why = np.where(
                self.p_od[j], "injected: no purchase until past the overdraft limit", "natural: bought too late"
            )
            detail = (
                pl.DataFrame({"b": money(cents[j]), "w": why})
                .select(pl.format("remaining_yuan {} ({})", pl.col.b, pl.col.w))
                .to_series()
            )
            self.truth.append(truth_rows(t, "overdraft", self.start, pi[j], k, k, detail))

    def _stash_registers(self, frame: pl.DataFrame, skip: int, freeze: dt.date, avoid: list[int]) -> pl.DataFrame:
        chosen, conf = self.overlap_rows(frame.height, skip, avoid)
        true_rows = frame[chosen]
        old = frame["total_kwh"][conf]
        bump = np.floor(self.r_rows.uniform(1, 500, len(conf)) * 100).astype(np.int64)
        wrong_cents = np.floor(old.cast(pl.Float64).to_numpy() * 100 + 0.5).astype(np.int64) + bump
        wrong = money(wrong_cents)
        info: dict[str, object] = {
            "date": freeze.isoformat(),
            "repeated": len(chosen),
            "column": "total_kwh",
            "meters": frame["meter_id"][conf].to_list(),
            "here": wrong.to_list(),
            "there": old.to_list(),
        }
        self.stash["registers"] = (true_rows, info)
        return frame.with_columns(frame["total_kwh"].scatter(conf, wrong))

    # ---- one day ----------------------------------------------------------------------------------

    def _missing(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Readings not collected for freeze k and curve k: random meters, whole areas
        whose concentrator was offline, and (on the second freeze) one area master."""
        t, r, c = self.topo, self.r_miss, self.topo.n_cust
        n = t.n
        reg = (r.random(n) < 0.004) & (t.role != tp.ROLE_FEEDER)
        cur = (r.random(n) < 0.006) & (t.role != tp.ROLE_FEEDER)
        n_conc = int(r.poisson(0.002 * t.n_area))
        if k == 1 and n_conc == 0 and t.n_area >= 2:
            n_conc = 1
        areas = np.sort(r.choice(t.n_area, min(n_conc, t.n_area), replace=False))
        conc = np.zeros(n, dtype=bool)
        conc[:c] = np.isin(self.phys_area, areas)
        master = np.zeros(n, dtype=bool)
        if k == 1:
            master[c + int(r.integers(0, t.n_area))] = True
        reg |= conc | master
        cur |= conc
        if k >= self.days:
            cur[:] = False
        start = self.start
        why = np.where(conc, "concentrator offline", np.where(master, "area master not collected", "not collected"))
        for kind, mask in (("missing_register", reg), ("missing_curve", cur)):
            idx = np.flatnonzero(mask)
            if len(idx):
                self.truth.append(
                    truth_rows(
                        t,
                        kind,
                        start,
                        idx,
                        k,
                        k,
                        text(why[idx].tolist(), len(idx)),
                        area=np.concatenate([self.phys_area, t.area[c:]])[idx],
                    )
                )
        return reg, cur, conc

    def day(self, k: int, cur_missing: np.ndarray) -> None:
        t, day = self.topo, self.start + dt.timedelta(days=k)
        n, c, na, nf = t.n, t.n_cust, t.n_area, t.n_feeder
        self.say(f"curves {day.isoformat()} ({k + 1}/{self.days})")
        r = self.r_load
        prof = t.profile[:c]
        dtype = sh.daytype(day)
        season = sh.season_factor(day)

        # true customer load, primary kWh per slot
        m = np.empty((n, sh.SLOTS))
        cust = m[:c]
        np.take(sh.SHAPES[:, 1 if dtype else 0, :], prof, axis=0, out=cust)
        weather = 1.0 + 0.05 * r.standard_normal()
        daily = (
            t.base_kwh[:c]
            * season[prof]
            * sh.DAYTYPE_FACTOR[prof, dtype]
            * np.where(prof <= sh.P_COM_SHOP, weather, 1.0)
        )
        daily *= np.exp(r.normal(-0.0072, 0.12, c))
        cust *= daily[:, None]
        sig = sh.SLOT_SIGMA[prof].astype(np.float32)
        noise = r.standard_normal((c, sh.SLOTS), dtype=np.float32)
        noise *= sig[:, None]
        noise -= (sig * sig / 2)[:, None]
        np.exp(noise, out=noise)
        cust *= noise
        del noise

        # supply interruptions (see _outages): no load on the meters off, their POWER_OFF/ON events
        off = np.zeros((na, sh.SLOTS), dtype=bool)
        ev: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = self.outages.day(
            k, t, self.phys_area, cust, off, self.r_out
        )

        # rooftop PV: export when generation exceeds the household's own load
        pv = self.pv
        cloud = r.beta(3.0, 1.2, nf)
        gen = t.pv_kw[pv][:, None] * sh.pv_shape(day)[None, :] * cloud[t.feeder[pv]][:, None]
        gen *= ~off[self.phys_area[pv]]
        load = cust[pv]
        export = np.maximum(gen - load, 0.0)
        cust[pv] = np.maximum(load - gen, 0.0)

        # area masters see every customer's true load, minus export, plus technical loss
        sums = np.add.reduceat(cust, self.runs, axis=0)
        area_fwd = np.zeros((na, sh.SLOTS))
        ok = self.run_area >= 0
        area_fwd[self.run_area[ok]] = sums[ok]
        del sums
        mv = self.plan.move_idx
        if len(mv) and k >= self.plan.move_day:
            np.subtract.at(area_fwd, t.area[mv], cust[mv])
            np.add.at(area_fwd, self.phys_area[mv], cust[mv])
        area_exp = np.zeros((na, sh.SLOTS))
        np.add.at(area_exp, self.phys_area[pv], export)
        master_net = area_fwd - area_exp
        master_net += technical_loss(master_net, t.area_loss, t.area_iron, t.base_kwh[c : c + na] / sh.SLOTS, off)
        feeder_net = np.zeros((nf, sh.SLOTS))
        np.add.at(feeder_net, t.area_feeder, master_net)
        np.add.at(feeder_net, t.feeder[self.direct], cust[self.direct])
        feeder_fwd = np.maximum(feeder_net, 0.0) / (1.0 - t.feeder_loss[:, None])
        self._loss_truth(day, area_fwd, area_exp, master_net, feeder_net, feeder_fwd)

        # theft: the meter counts less than the customer uses
        ti, kind = self.plan.theft_idx, self.plan.theft_kind
        rev_day = np.zeros(n)
        rev_day[pv] = export.sum(1)
        if len(ti):
            slot = np.arange(sh.SLOTS)[None, :]
            tday = self.plan.theft_day[:, None]
            active = (tday < k) | ((tday == k) & (slot >= self.plan.theft_slot[:, None]))
            rows = cust[ti]
            cust[ti] = np.where(active, rows * self.plan.theft_factor[:, None], rows)
            rev_day[ti] += np.where(active & (kind == 3)[:, None], rows, 0.0).sum(1)
            ev += self._theft_events(k)
        if len(self.partial.idx):  # partial thefts: the meter records a share of the use
            cust[self.partial.idx] = self.partial.recorded(k, cust[self.partial.idx])
        if len(self.attacks.idx):  # false-data injection h1-h6 on some days
            cust[self.attacks.idx] = self.attacks.recorded(k, cust[self.attacks.idx])
        m[c : c + na] = np.maximum(master_net, 0.0)
        rev_day[c : c + na] = np.maximum(-master_net, 0.0).sum(1)
        m[c + na :] = feeder_fwd
        ev += self._noise_events()

        # what the meters count, on their side of the CT/PT
        m *= (UNIT / t.mult)[:, None]
        day_units = m.sum(1)
        cum = self.cum + day_units
        R = (np.floor(cum / self.q) * self.q).astype(np.int64)
        d = R - self.R
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(day_units > 0, d / day_units, 0.0)
        # a meter's interval energy is the difference of its (resolution-limited) running
        # count at the slot ends: each slot is off by less than one unit and the day sums
        # to the register increment, with no day's rounding piled into one slot
        m *= ratio[:, None]
        np.cumsum(m, axis=1, out=m)
        np.floor(m, out=m)
        m[:, -1] = d
        np.subtract(m[:, 1:], m[:, :-1], out=m[:, 1:])
        per = np.matmul(m, self.onehot)  # (program, meter, register)
        self.tou += per[t.program, np.arange(n)].astype(np.int64)
        self.cum, self.R = cum, R
        self.rev += rev_day / t.mult * UNIT

        self._curves_file(k, day, m, cur_missing)
        self._events_file(k, day, ev)
        self._purchases_file(k, day)

    def _loss_truth(
        self,
        day: dt.date,
        area_fwd: np.ndarray,
        area_exp: np.ndarray,
        master_net: np.ndarray,
        feeder_net: np.ndarray,
        feeder_fwd: np.ndarray,
    ) -> None:
        t = self.topo
        sales = area_fwd.sum(1)
        exp = area_exp.sum(1)
        net = master_net.sum(1)
        f_sales = feeder_net.sum(1)
        f_supply = feeder_fwd.sum(1)
        self.loss_rows.append(
            pl.DataFrame(
                {
                    "level": text("area", t.n_area),
                    "id": t.area_code,
                    "date": pl.repeat(day, t.n_area, eager=True),
                    "supply_kwh": net + exp,
                    "sales_kwh": sales,
                    "export_kwh": exp,
                    "technical_loss_kwh": net + exp - sales,
                }
            )
        )
        self.loss_rows.append(
            pl.DataFrame(
                {
                    "level": text("feeder", t.n_feeder),
                    "id": t.feeder_code,
                    "date": pl.repeat(day, t.n_feeder, eager=True),
                    "supply_kwh": f_supply,
                    "sales_kwh": f_sales,
                    "export_kwh": np.zeros(t.n_feeder),
                    "technical_loss_kwh": f_supply - f_sales,
                }
            )
        )

    def _theft_events(self, k: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        p, re = self.plan, self.r_evt
        now = (p.theft_day == k) & p.theft_has_event
        idx = np.flatnonzero(now)
        if not len(idx):
            return []
        at = p.theft_slot[idx] * 900
        code = p.theft_code[idx]
        value = np.select(
            [code == EV["VOLTAGE_LOSS"], code == EV["CURRENT_LOSS"]],
            [np.round(re.uniform(0, 40, len(idx)), 1), np.round(re.uniform(0, 0.05, len(idx)), 3)],
            np.nan,
        )
        out = [(p.theft_idx[idx], np.maximum(at - re.integers(60, 1200, len(idx)), 0), code, value)]
        rf = idx[p.theft_kind[idx] == 3]
        if len(rf):
            out.append(
                (
                    p.theft_idx[rf],
                    p.theft_slot[rf] * 900 + re.integers(60, 600, len(rf)),
                    np.full(len(rf), EV["REVERSE_FLOW"]),
                    np.full(len(rf), np.nan),
                )
            )
        return out

    def _noise_events(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        re, pool = self.r_evt, self.noise_pool
        k = min(len(pool), max(2, round(0.0003 * self.topo.n)))
        idx = np.sort(re.choice(pool, k, replace=False))
        code = re.choice(NOISE_CODES, k, p=NOISE_P)
        value = np.select(
            [
                code == EV["CLOCK_FAULT"],
                code == EV["VOLTAGE_LOSS"],
                code == EV["CURRENT_LOSS"],
                code == EV["PHASE_FAILURE"],
            ],
            [
                re.integers(300, 900, k).astype(float),
                np.round(re.uniform(30, 150, k), 1),
                np.round(re.uniform(0, 0.05, k), 3),
                re.integers(1, 4, k).astype(float),
            ],
            np.nan,
        )
        return [(idx, re.integers(0, DAY_S, k), code, value)]

    # ---- the day's files ------------------------------------------------------------------------

    def _curves_file(self, k: int, day: dt.date, m: np.ndarray, missing: np.ndarray) -> None:
        t = self.topo
        keep = np.flatnonzero(~missing)
        vals = np.empty((sh.SLOTS, len(keep)))
        np.divide(m[keep].T, UNIT, out=vals)
        # collection gaps inside a day: a run of empty slots
        rg = self.r_miss
        gap = np.flatnonzero(rg.random(len(keep)) < 0.003)
        if not len(gap) and len(keep):
            gap = np.array([int(rg.integers(0, len(keep)))])
        g0 = rg.integers(0, 90, len(gap))
        g1 = g0 + rg.integers(1, 13, len(gap))
        mask = (np.arange(sh.SLOTS)[:, None] >= g0[None, :]) & (np.arange(sh.SLOTS)[:, None] < g1[None, :])
        vals[:, gap] = np.where(mask, np.nan, vals[:, gap])
        if len(gap):
            detail = (
                pl.DataFrame({"a": g0 + 1, "b": g1, "x": hhmm(g0 * 900), "y": hhmm(g1 * 900)})
                .select(pl.format("slots p{}..p{} empty ({}-{})", pl.col.a, pl.col.b, pl.col.x, pl.col.y))
                .to_series()
            )
            self.truth.append(
                truth_rows(t, "curve_gap", self.start, keep[gap], k, k, detail, area=self._area_now(keep[gap]))
            )
        cols = {"meter_id": t.meter_id.gather(keep), "data_date": pl.repeat(day, len(keep), eager=True)}
        for i, name in enumerate(SLOT_NAMES):
            cols[name] = pl.Series(name, vals[i], nan_to_null=True)
        del vals
        frame = pl.DataFrame(cols)
        del cols
        frame, skip, info = self.finish_overlap("curves", frame)
        last = k == self.days - 1
        edits: list[fl.LineEdit] = []
        if k == 0:
            r1, r2 = self.edit_rows(frame.height, skip, 2)
            bad_date = f"{day.year}-02-30"
            unknown = UNKNOWN_METER_PREFIX + f"{int(self.r_rows.integers(0, 10**9)):09d}"
            edits = [
                fl.LineEdit(
                    r1,
                    False,
                    _set_fields(data_date=bad_date),
                    "bad_date",
                    frame["meter_id"][r1],
                    day.isoformat(),
                    f"data_date is {bad_date!r}",
                ),
                fl.LineEdit(
                    r2,
                    True,
                    _set_fields(meter_id=unknown),
                    "unknown_meter",
                    unknown,
                    day.isoformat(),
                    "meter id not in any archive",
                ),
            ]
        if k == self.days - 2:
            frame = self._stash_curves(frame, skip, day, [e.row for e in edits])
        base = f"curves/curves_{day:%Y%m%d}"
        delivered = self.at(day + dt.timedelta(days=1), 4)
        if k == 0:
            fmt = self.fmt("curves", encoding="utf-8", header="canonical", gzip=False, date_format="%Y-%m-%d", order=())
        elif last:
            fmt = self.fmt("curves", gzip=False)
        else:
            fmt = self.fmt("curves")
        dates = (day - dt.timedelta(days=1) if skip else day, day)
        if self.days >= 5 and k == 2:  # a day delivered in two parts
            half = frame.height // 2
            self.write(base + "_1", "curves", frame[:half], fmt, delivered, dates)
            w = self.write(base + "_2", "curves", frame[half:], fmt, delivered + dt.timedelta(minutes=3), dates)
        else:
            if "curves" in self.stash:
                self.stash["curves"][1]["file"] = base + fmt.suffix
            w = self.write(base, "curves", frame, fmt, delivered, dates, edits=edits, cutoff=last)
        self.record_overlap(info, w)

    def _stash_curves(self, frame: pl.DataFrame, skip: int, day: dt.date, avoid: list[int]) -> pl.DataFrame:
        chosen, conf = self.overlap_rows(frame.height, skip, avoid)
        col = "p73"  # 18:00-18:15
        true_rows = frame[chosen]
        old = frame[col][conf]
        wrong = (old.fill_null(0.0) + np.round(self.r_rows.uniform(0.5, 5.0, len(conf)), 4)).round(4)
        info: dict[str, object] = {
            "date": day.isoformat(),
            "repeated": len(chosen),
            "column": col,
            "meters": frame["meter_id"][conf].to_list(),
            "here": [f"{v:.4f}" for v in wrong.to_list()],
            "there": ["" if v is None else f"{v:.4f}" for v in old.to_list()],
        }
        self.stash["curves"] = (true_rows, info)
        return frame.with_columns(frame[col].scatter(conf, wrong))

    def _area_now(self, idx: np.ndarray) -> np.ndarray:
        t = self.topo
        return np.where(idx < t.n_cust, self.phys_area[np.minimum(idx, t.n_cust - 1)], t.area[idx])

    def _events_file(
        self, k: int, day: dt.date, ev: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    ) -> None:
        t = self.topo
        idx = np.concatenate([e[0] for e in ev]).astype(np.int64)
        secs = np.concatenate([e[1] for e in ev]).astype(np.int64)
        code = np.concatenate([e[2] for e in ev]).astype(np.int64)
        value = np.concatenate([e[3] for e in ev]).astype(float)
        o = np.lexsort((code, idx, secs))
        idx, secs, code, value = idx[o], secs[o], code[o], value[o]
        frame = pl.DataFrame(
            {
                "meter_id": t.meter_id.gather(idx),
                "event_time": pl.Series(
                    (np.datetime64(day, "s") + secs.astype("timedelta64[s]")).astype("datetime64[us]")
                ),
                "event_code": np.array(EVENT_CODES)[code],
                "value": pl.Series(value, nan_to_null=True).cast(pl.String),
            }
        )
        benign = np.isin(idx, self.noise_pool) & ~np.isin(code, [EV["POWER_OFF"], EV["POWER_ON"]])
        if benign.any():
            j = np.flatnonzero(benign)
            detail = (
                pl.DataFrame(
                    {
                        "c": np.array(EVENT_CODES)[code[j]],
                        "h": hhmm(secs[j]),
                        "v": frame["value"].gather(j).fill_null(""),
                    }
                )
                .select(pl.format("{} at {} value {}", pl.col.c, pl.col.h, pl.col.v))
                .to_series()
            )
            self.truth.append(
                truth_rows(t, "benign_event", self.start, idx[j], k, k, detail, area=self._area_now(idx[j]))
            )
        edits: list[fl.LineEdit] = []
        if k == 0:
            frame = frame.with_columns(pl.col.event_code.replace_strict(EVENT_ZH, return_dtype=pl.String).alias(REMARK))
            (r1,) = self.edit_rows(frame.height, 0, 1)
            edits = [
                fl.LineEdit(
                    r1,
                    True,
                    _set_fields(event_code=UNKNOWN_EVENT_CODE, **{REMARK: "未知事件"}),
                    "unknown_code",
                    frame["meter_id"][r1],
                    day.isoformat(),
                    f"event_code {UNKNOWN_EVENT_CODE!r}",
                )
            ]
            fmt = self.fmt("events", encoding="gbk", gzip=False)
        else:
            fmt = self.fmt("events")
        self.write(
            f"events/events_{day:%Y%m%d}",
            "events",
            frame,
            fmt,
            self.at(day + dt.timedelta(days=1), 5),
            (day, day),
            edits=edits,
        )

    def _purchases_file(self, k: int, day: dt.date) -> None:
        t, rp, pi = self.topo, self.r_pay, self.p_idx
        npp = len(pi)
        u = rp.random(npp)
        buy = ((self.bal < self.thr) & (u < 0.6)) | (u > 0.992)
        od = self.p_od
        buy[od] = (self.bal[od] < -self.od_limit[od]) & (u[od] < 0.6)
        not_loaded = (self.p_mm == k) & (self.p_mm_kind == 0)
        buy |= not_loaded
        if k == 0 and npp and not buy.any():
            buy[int(np.argmin(self.bal))] = True
        b = np.flatnonzero(buy)
        nb = len(b)
        com = t.cls[pi[b]] == tp.C_COM
        amount = np.where(com, rp.choice(COM_AMOUNTS, nb), rp.choice(RES_AMOUNTS, nb)).astype(float)
        when = rp.integers(7 * 3600, 22 * 3600, nb)
        channel = rp.choice(len(CHANNELS), nb, p=CHANNEL_P)
        reversed_ = (rp.random(nb) < 0.03) & ~not_loaded[b]
        redo = reversed_ & (rp.random(nb) < 0.7)
        seq = self.p_seq[b] + 1
        accepted = ~reversed_ | redo
        self.p_seq[b] += accepted
        loaded = accepted & ~not_loaded[b]
        self.credit[b] += np.where(loaded, amount, 0.0)
        self.loaded[b] += loaded
        rv = np.flatnonzero(reversed_)
        rd = np.flatnonzero(redo)
        rev_at = when[rv] + rp.integers(60, 1800, len(rv))
        redo_at = np.minimum(rev_at[np.isin(rv, rd)] + rp.integers(300, 3600, len(rd)), DAY_S - 1)
        # rows: purchases, reversals, re-done purchases
        who = np.concatenate([b, b[rv], b[rd]])
        at = np.concatenate([when, rev_at, redo_at])
        typ = np.concatenate(
            [np.zeros(nb, dtype=np.int64), np.ones(len(rv), dtype=np.int64), np.zeros(len(rd), dtype=np.int64)]
        )
        amt = np.concatenate([amount, amount[rv], amount[rd]])
        sq = np.concatenate([seq, seq[rv], seq[rd]])
        ch = np.concatenate([channel, channel[rv], channel[rd]])
        ref = np.concatenate([np.full(nb, -1), rv, np.full(len(rd), -1)])
        o = np.lexsort((np.arange(len(at)), at))
        pos = np.empty(len(at), dtype=np.int64)
        pos[o] = np.arange(len(at))
        txn = (
            (f"{self.id_prefix}{day:%Y%m%d}" + pl.Series(pos + 1).cast(pl.String).str.zfill(8))
            if len(at)
            else pl.Series([], dtype=pl.String)
        )
        ref_txn = gather_code(txn, np.where(ref >= 0, ref, -1)) if len(at) else pl.Series([], dtype=pl.String)
        counter = np.isin(ch, [CHANNELS.index("counter"), CHANNELS.index("pos")])
        operator = gather_code(self.operators, np.where(counter, rp.integers(0, len(self.operators), len(at)), -1))
        frame = pl.DataFrame(
            {
                "txn_id": txn,
                "txn_type": np.array(["purchase", "reversal"])[typ],
                "ref_txn_id": ref_txn,
                "customer_id": t.customer_id.gather(pi[who]),
                "meter_id": t.meter_id.gather(pi[who]),
                "card_no": self.card.gather(who),
                "purchase_time": pl.Series(
                    (np.datetime64(day, "s") + at.astype("timedelta64[s]")).astype("datetime64[us]")
                ),
                "amount_yuan": money(np.round(amt * 100).astype(np.int64)),
                "purchase_seq": sq,
                "channel": np.array(CHANNELS)[ch],
                "operator_id": operator,
            },
            schema_overrides={"txn_type": pl.String, "channel": pl.String},
        )[o]
        nl = b[not_loaded[b]]
        if len(nl):
            j = np.flatnonzero(not_loaded[b])
            detail = (
                pl.DataFrame({"t": txn.gather(j), "a": money(np.round(amount[j] * 100).astype(np.int64))})
                .select(
                    pl.format(
                        "purchase {} of {} yuan never loaded into the meter (balance and purchase_count lag from here)",
                        pl.col.t,
                        pl.col.a,
                    )
                )
                .to_series()
            )
            self.truth.append(truth_rows(t, "prepay_mismatch", self.start, pi[nl], k, self.days - 1, detail))
        edits: list[fl.LineEdit] = []
        if k == 0 and frame.height:
            (r1,) = self.edit_rows(frame.height, 0, 1)
            bad_txn = f"{self.id_prefix}{day:%Y%m%d}9{int(self.r_rows.integers(0, 10**7)):07d}"
            edits = [
                fl.LineEdit(
                    r1,
                    True,
                    _set_fields(txn_id=bad_txn, amount_yuan="-100.00"),
                    "negative_amount",
                    frame["meter_id"][r1],
                    day.isoformat(),
                    f"txn {bad_txn} amount_yuan -100.00",
                )
            ]
            fmt = self.fmt("purchases", encoding="utf-8", header="canonical", gzip=False)
        else:
            fmt = self.fmt("purchases")
        self.write(
            f"purchases/purchases_{day:%Y%m%d}",
            "purchases",
            frame,
            fmt,
            self.at(day + dt.timedelta(days=1), 1),
            (day, day),
            edits=edits,
        )

    # ---- the run ----------------------------------------------------------------------------------

    def run(self) -> None:
        p, days = self.plan, self.days
        snap_fmt = self.fmt("archive", encoding="gbk", date_format="%Y%m%d", order=())
        self.archive(self.start, p.archive_area, snap_fmt, self.at(self.start - dt.timedelta(days=1), 23, 50))
        self._outage_plans_files()
        for k in range(days + 1):
            if k == p.move_day:
                self.phys_area[p.move_idx] = p.move_to
                area2 = p.archive_area.copy()
                area2[p.move_idx] = p.move_to
                snap = self.start + dt.timedelta(days=k)
                fmt = self.fmt("archive", encoding="utf-8-sig", header="canonical", gzip=True, date_format="%Y-%m-%d")
                self.archive(snap, area2, fmt, self.at(snap - dt.timedelta(days=1), 23, 50))
            reg_missing, cur_missing, _ = self._missing(k)
            self.registers(k, reg_missing)
            if k < days:
                self.day(k, cur_missing)
        self.payments.write(self)

    def _outage_plans_files(self) -> None:
        """The outage notices, one file per notice date, delivered when published."""
        plain = fl.FileFormat(encoding="utf-8", header="canonical", gzip=False, date_format="%Y-%m-%d", order=())
        for _day, frame, delivered in self.outages.deliveries(self.topo):
            when = frame["planned_start"].dt.date()
            self.write(
                f"outage_plans/plans_{delivered:%Y%m%d%H%M}",
                "outage_plans",
                frame,
                plain,
                delivered,
                dates.span(frame.select(when.alias("d")), "d"),
            )

    # ---- ground truth ------------------------------------------------------------------------------

    def finish(self) -> tuple[list[str], dict[str, int]]:
        """Write ``_truth/`` and return its files and the count of each truth kind."""
        t, p = self.topo, self.plan
        self.say("truth")
        root = self.out / "_truth"
        root.mkdir(parents=True, exist_ok=True)
        inj = pl.concat(self.truth, how="vertical_relaxed").sort(
            ["kind", "start_date", "meter_id", "area_id"], nulls_last=True, maintain_order=True
        )
        faults = (
            pl.DataFrame(
                self.faults,
                schema={
                    "kind": pl.String,
                    "file": pl.String,
                    "line": pl.Int64,
                    "other_file": pl.String,
                    "meter_id": pl.String,
                    "date": pl.String,
                    "detail": pl.String,
                },
                orient="row",
            )
            if self.faults
            else pl.DataFrame(
                schema={
                    "kind": pl.String,
                    "file": pl.String,
                    "line": pl.Int64,
                    "other_file": pl.String,
                    "meter_id": pl.String,
                    "date": pl.String,
                    "detail": pl.String,
                }
            )
        )
        faults = faults.with_columns(
            pl.col.other_file.replace("", None), pl.col.meter_id.replace("", None), pl.col.date.replace("", None)
        )
        written = sorted(self.written, key=lambda w: (w.delivered, w.path))
        manifest = pl.DataFrame(
            {
                "file": [w.path for w in written],
                "dataset": [w.dataset for w in written],
                "encoding": [w.fmt.encoding for w in written],
                "compression": ["gzip" if w.fmt.gzip else "none" for w in written],
                "header": [w.fmt.header for w in written],
                "date_format": [
                    None
                    if not any(f.kind == "date" for f in LANDINGS[w.dataset].fields)
                    else "YYYYMMDD"
                    if w.fmt.date_format == "%Y%m%d"
                    else "YYYY-MM-DD"
                    for w in written
                ],
                "column_order": ["shuffled" if w.fmt.order else "contract" for w in written],
                "delivered_at": [w.delivered for w in written],
                "rows": [w.rows for w in written],
                "first_date": [w.dates[0] for w in written],
                "last_date": [w.dates[1] for w in written],
                "extra_columns": [";".join(w.extra_columns) for w in written],
            },
            schema_overrides={"delivered_at": pl.Datetime("us")},
        ).with_columns(pl.col.extra_columns.replace("", None))
        end_area = np.concatenate([self.phys_area, t.area[t.n_cust :]])
        whole = t.reg_max % UNIT == 0
        meters = pl.DataFrame(
            {
                "meter_id": t.meter_id,
                "customer_id": t.customer_id,
                "role": np.array(tp.ROLES)[t.role],
                "customer_class": pl.Series(np.array((*tp.CLASSES, ""))[t.cls]).replace("", None),
                "profile": pl.Series(np.array((*sh.PROFILES, ""))[t.profile]).replace("", None),
                "tariff_id": pl.Series(np.array((*sh.TARIFFS, ""))[t.tariff]).replace("", None),
                "feeder_id": t.feeder_code.gather(t.feeder),
                "area_id": gather_code(t.area_code, t.area),
                "area_id_end": gather_code(t.area_code, end_area),
                "archive_area_id": gather_code(t.area_code, p.archive_area),
                "multiplier": t.mult,
                "archive_multiplier": p.mult_archive,
                "register_max": np.where(whole, t.reg_max // UNIT, t.reg_max / UNIT).astype(float),
                "prepay": t.prepay.astype(np.int64),
                "pv_kw": np.round(t.pv_kw, 2),
                "vacant": t.vacant.astype(np.int64),
                "typical_kwh_per_day": np.round(t.base_kwh, 3),
            }
        )
        loss = pl.concat(self.loss_rows).with_columns(pl.col(pl.Float64).round(4))
        outage_truth, plan_truth = self.outages.truth(t)
        files = {
            "injections.csv": inj,
            "files.csv": faults,
            "manifest.csv": manifest,
            "meters.csv": meters,
            "loss_daily.csv": loss,
            **self.payments.truth(self),
            "outages.csv": outage_truth,
            "outage_plans.csv": plan_truth,
        }
        stamp = max(w.delivered for w in self.written) + dt.timedelta(hours=1)
        names = []
        for name, frame in files.items():
            path = root / name
            frame.write_csv(path, date_format="%Y-%m-%d", datetime_format=fl.TIMESTAMP_FORMAT, null_value="")
            fl.set_mtime(path, stamp)
            names.append(f"_truth/{name}")
        counts = {str(k): int(v) for k, v in inj["kind"].value_counts().sort("kind").iter_rows()}
        for k, v in faults["kind"].value_counts().sort("kind").iter_rows():
            counts[str(k)] = counts.get(str(k), 0) + int(v)
        return names, dict(sorted(counts.items()))

    def summary(self, truth_files: list[str], counts: dict[str, int]) -> GenerateSummary:
        t = self.topo
        written = sorted(self.written, key=lambda w: (w.delivered, w.path))
        return GenerateSummary(
            out=self.out,
            meters=t.n,
            meters_by_role={r: int((t.role == i).sum()) for i, r in enumerate(tp.ROLES)},
            days=self.days,
            start=self.start,
            seed=self.seed,
            files=[w.path for w in written],
            truth_files=truth_files,
            truth_counts=counts,
        )


@dataclass
class GenerateSummary:
    """What :func:`meterlake.generate.generate` wrote."""

    out: Path
    meters: int
    #: feeder_head / area_master / customer -> count
    meters_by_role: dict[str, int]
    days: int
    start: dt.date
    seed: int
    #: landing files relative to ``out`` (POSIX separators), in delivery order
    files: list[str]
    #: ground-truth files relative to ``out``
    truth_files: list[str] = field(default_factory=list)
    #: truth kind -> rows of that kind in _truth/injections.csv and _truth/files.csv
    truth_counts: dict[str, int] = field(default_factory=dict)
