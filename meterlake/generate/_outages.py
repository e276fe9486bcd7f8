"""Supply interruptions: area faults, planned and temporary outages with their notices,
customer-only outages, momentary blips, lost POWER_ON/OFF events and a wrongly mapped
customer that follows another area's outages.

Decided once before the first day (:func:`make`, its own random stream so the other
injections do not move); each day the simulation calls :meth:`Outages.day`, which zeroes
the true load of the meters off supply (their curves show zero, the master meter too) and
returns their POWER_OFF/ON events. The notices go to ``LANDING/outage_plans/`` (one file
per notice date, delivered then; one plan revised by a later file), the truth to
``_truth/outages.csv`` (one row per injected outage with the cause, plan and deviations the
pipeline should find) and ``_truth/outage_plans.csv`` (the status of each plan).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from . import _topology as tp
from ._plan import EV

DAY_S = 86400
SLOT_S = 900
#: events of a meter are logged within this many seconds after the slot boundary
JITTER_S = 100


#: ``_truth/outages.csv``, one row per injected outage (and per misfiled customer it cuts off)
_TRUTH_SCHEMA: dict[str, Any] = {
    "outage_no": pl.Int64,
    "cause": pl.String,
    "level": pl.String,
    "momentary": pl.Boolean,
    "area_id": pl.String,
    "meter_id": pl.String,
    "start_time": pl.Datetime("us"),
    "end_time": pl.Datetime("us"),
    "plan_id": pl.String,
    "deviations": pl.String,
    "lost_on": pl.Int64,
    "lost_off": pl.Int64,
    "note": pl.String,
}


@dataclass
class Injected:
    """One injected outage."""

    no: int
    day: int
    kind: str  # fault | planned | temporary | customer | blip
    areas: list[int]  # area indices (empty for a customer-only outage)
    meters: list[int]  # customer meters (customer-only outage)
    s0: int  # start, seconds into the day
    s1: int  # end, seconds into the day
    plan_id: str | None = None
    deviations: str = ""
    lost_on: int = 0  # customers of the outage whose POWER_ON is lost
    lost_off: int = 0  # customers whose POWER_OFF is lost
    master_lost_on: bool = False
    note: str = ""


@dataclass
class PlanRow:
    plan_id: str
    kind: str
    feeder: int
    area: int | None  # None = the whole feeder
    day: int
    start_s: int
    end_s: int
    notice: dt.datetime
    status: str  # executed | not_executed
    deviations: str


@dataclass
class Outages:
    start: dt.date
    days: int
    injected: list[Injected] = field(default_factory=list)
    plans: list[PlanRow] = field(default_factory=list)
    #: (plan_id, new end seconds, delivered) of the one plan revised by a later delivery
    revision: tuple[str, int, dt.datetime] | None = None
    mapped_meter: int = -1
    mapped_area: int = -1
    #: customers the archive files under another area than the one feeding them
    misfiled: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    misfiled_area: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))

    # ---- each day -----------------------------------------------------------------------

    def day(
        self,
        k: int,
        topo: tp.Topology,
        phys_area: np.ndarray,
        cust: np.ndarray,
        off: np.ndarray,
        rng: np.random.Generator,
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Zero the load of the meters off supply on day ``k``; their POWER_OFF/ON events."""
        c = topo.n_cust
        order = np.argsort(phys_area, kind="stable")
        sorted_area = phys_area[order]
        ev: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        for inj in (i for i in self.injected if i.day == k):  # a handful a day
            a0, a1 = inj.s0 // SLOT_S, inj.s1 // SLOT_S
            if inj.areas:
                custs = np.concatenate(
                    [
                        order[np.searchsorted(sorted_area, a) : np.searchsorted(sorted_area, a, side="right")]
                        for a in inj.areas
                    ]
                )
                masters = np.array([c + a for a in inj.areas])
            else:
                custs, masters = np.array(inj.meters, dtype=np.int64), np.array([], dtype=np.int64)
            if inj.kind != "blip":  # a blip is shorter than a slot: the curves cannot show it
                cust[custs, a0:a1] = 0.0
                for a in inj.areas:
                    off[a, a0:a1] = True
            n = len(custs)
            lost_on = np.zeros(n, dtype=bool)
            lost_off = np.zeros(n, dtype=bool)
            pick = rng.permutation(n)
            lost_on[pick[: inj.lost_on]] = True
            lost_off[pick[inj.lost_on : inj.lost_on + inj.lost_off]] = True
            on_c = custs[~lost_on]
            off_c = custs[~lost_off]
            on_m = masters if not inj.master_lost_on else masters[:0]
            for idx, t0, code in (
                (np.concatenate([off_c, masters]), inj.s0, EV["POWER_OFF"]),
                (np.concatenate([on_c, on_m]), inj.s1, EV["POWER_ON"]),
            ):
                secs = t0 + rng.integers(0, JITTER_S if inj.kind != "blip" else 20, len(idx))
                ev.append((idx, secs, np.full(len(idx), code), np.full(len(idx), np.nan)))
        return ev

    # ---- files and truth ---------------------------------------------------------------------

    def at(self, day: int, secs: int) -> dt.datetime:
        return dt.datetime.combine(self.start, dt.time()) + dt.timedelta(days=day, seconds=int(secs))

    def plan_frame(self, topo: tp.Topology, plans: list[PlanRow], end_of: dict[str, int] | None = None) -> pl.DataFrame:
        end_of = end_of or {}
        return pl.DataFrame(
            {
                "plan_id": [p.plan_id for p in plans],
                "kind": [p.kind for p in plans],
                "feeder_id": [topo.feeder_code[p.feeder] for p in plans],
                "area_id": [None if p.area is None else topo.area_code[p.area] for p in plans],
                "planned_start": [self.at(p.day, p.start_s) for p in plans],
                "planned_end": [self.at(p.day, end_of.get(p.plan_id, p.end_s)) for p in plans],
                "notice_time": [p.notice for p in plans],
            },
            schema={
                "plan_id": pl.String,
                "kind": pl.String,
                "feeder_id": pl.String,
                "area_id": pl.String,
                "planned_start": pl.Datetime("us"),
                "planned_end": pl.Datetime("us"),
                "notice_time": pl.Datetime("us"),
            },
        )

    def deliveries(self, topo: tp.Topology) -> list[tuple[dt.date, pl.DataFrame, dt.datetime]]:
        """The notice files: (notice date, rows, delivered at)."""
        out = []
        by_day: dict[dt.date, list[PlanRow]] = {}
        for p in self.plans:
            by_day.setdefault(p.notice.date(), []).append(p)
        for d in sorted(by_day):
            rows = by_day[d]
            out.append((d, self.plan_frame(topo, rows), max(p.notice for p in rows) + dt.timedelta(minutes=5)))
        if self.revision is not None:
            pid, end_s, when = self.revision
            (p,) = [p for p in self.plans if p.plan_id == pid]
            out.append((when.date(), self.plan_frame(topo, [p], {pid: end_s}), when))
        return out

    def truth(self, topo: tp.Topology) -> tuple[pl.DataFrame, pl.DataFrame]:
        rows = []
        for i in self.injected:
            rows.append(
                {
                    "outage_no": i.no,
                    "cause": "fault" if i.kind in ("fault", "customer", "blip") else i.kind,
                    "level": "customer" if i.kind == "customer" else "area",
                    "momentary": i.kind == "blip",
                    "area_id": ";".join(topo.area_code[a] for a in i.areas) if i.areas else None,
                    "meter_id": ";".join(topo.meter_id[m] for m in i.meters) if i.meters else None,
                    "start_time": self.at(i.day, i.s0),
                    "end_time": self.at(i.day, i.s1),
                    "plan_id": i.plan_id,
                    "deviations": i.deviations,
                    "lost_on": i.lost_on + int(i.master_lost_on),
                    "lost_off": i.lost_off,
                    "note": i.note,
                }
            )
            # a misfiled customer fed from an outage's area goes off alone in its archive area
            for m in self.misfiled[np.isin(self.misfiled_area, i.areas)] if i.areas else []:
                rows.append(
                    rows[-1]
                    | {
                        "level": "customer",
                        "area_id": None,
                        "meter_id": topo.meter_id[int(m)],
                        "deviations": "",
                        "lost_on": 0,
                        "lost_off": 0,
                        "note": "customer filed under another area, off with the area feeding it",
                    }
                )
        # a schema, not inference: a big county's first hundred outages may all be unplanned
        outages = pl.DataFrame(rows, schema=_TRUTH_SCHEMA)
        plans = self.plan_frame(topo, self.plans, {self.revision[0]: self.revision[1]} if self.revision else None)
        plans = plans.with_columns(
            pl.Series("status", [p.status for p in self.plans]),
            pl.Series("deviations", [p.deviations for p in self.plans]),
        )
        return outages, plans

    def injection_rows(self, topo: tp.Topology) -> pl.DataFrame:
        """Rows for ``_truth/injections.csv`` (kind ``outage``), one per area outage."""
        rows = [
            (
                topo.area_code[a],
                self.start + dt.timedelta(days=i.day),
                f"{i.kind} power off {_hhmm(i.s0)} to {_hhmm(i.s1)}",
            )
            for i in self.injected
            for a in i.areas
            if i.kind != "blip"
        ]
        return pl.DataFrame(
            {
                "kind": ["outage"] * len(rows),
                "meter_id": [None] * len(rows),
                "customer_id": [None] * len(rows),
                "area_id": [r[0] for r in rows],
                "start_date": [r[1] for r in rows],
                "end_date": [r[1] for r in rows],
                "detail": [r[2] for r in rows],
            },
            schema={
                "kind": pl.String,
                "meter_id": pl.String,
                "customer_id": pl.String,
                "area_id": pl.String,
                "start_date": pl.Date,
                "end_date": pl.Date,
                "detail": pl.String,
            },
        )


def _hhmm(secs: int) -> str:
    return f"{secs // 3600:02d}:{secs % 3600 // 60:02d}"


# --- the plan of outages -----------------------------------------------------------------------


def make(
    topo: tp.Topology, archive_area: np.ndarray, days: int, start: dt.date, seed: int, prefix: str = ""
) -> Outages:
    """Decide every outage of the run (deterministic in ``seed``)."""
    rng = np.random.default_rng([seed, 0x0DA6E])
    out = Outages(start=start, days=days)
    na, c = topo.n_area, topo.n_cust
    phys = topo.area[:c]
    # outages keep to areas that have customers, one per area and day
    areas = np.flatnonzero(np.bincount(phys[phys >= 0], minlength=na) > 0)
    busy: set[tuple[int, int]] = set()

    def free_area(k: int, pool: np.ndarray | None = None) -> int:
        pool = areas if pool is None else pool
        for a in rng.permutation(pool):
            if (k, int(a)) not in busy and (k - 1, int(a)) not in busy and (k + 1, int(a)) not in busy:
                busy.add((k, int(a)))
                return int(a)
        return -1

    def slot_time(lo_h: int, hi_h: int) -> int:
        return int(rng.integers(lo_h * 4, hi_h * 4)) * SLOT_S

    def add(inj: Injected) -> Injected:
        inj.no = len(out.injected) + 1
        out.injected.append(inj)
        return inj

    # the wrongly mapped customer: filed under one area, fed from another that has faults
    wrong = np.flatnonzero((archive_area[:c] != phys) & (phys >= 0) & (archive_area[:c] >= 0))
    out.misfiled, out.misfiled_area = wrong, phys[wrong]
    # other outages keep off the areas feeding misfiled customers (but the one made for it)
    areas = areas[~np.isin(areas, out.misfiled_area)]
    if len(wrong) and days >= 3:
        out.mapped_meter = int(wrong[0])
        out.mapped_area = int(phys[wrong[0]])
        for k in (1, days // 2 + 1):
            if (k, out.mapped_area) not in busy:
                busy.add((k, out.mapped_area))
                s0 = slot_time(8, 16)
                add(
                    Injected(
                        0,
                        k,
                        "fault",
                        [out.mapped_area],
                        [],
                        s0 + 20,
                        s0 + SLOT_S * int(rng.integers(3, 8)) + 20,
                        note=f"feeds customer {topo.meter_id[out.mapped_meter]} filed under another area",
                    )
                )

    # area faults: about 1.5 % of the areas a day, 15 min to 2.5 h; some lose events
    for k in range(days):
        for _ in range(int(rng.binomial(len(areas), 0.015))):
            a = free_area(k)
            if a < 0:
                continue
            s0 = slot_time(0, 22)
            inj = add(Injected(0, k, "fault", [a], [], s0 + 10, s0 + SLOT_S * int(rng.integers(1, 11)) + 10))
            if inj.no % 3 == 0:
                inj.lost_on = 2
                inj.note = "2 customers lost their POWER_ON"
            elif inj.no % 3 == 1:
                inj.lost_off = 1
                inj.note = "1 customer lost its POWER_OFF"

    # planned and temporary outages with their notices
    feeder_of = topo.area_feeder

    def plan(
        kind: str,
        k: int,
        a: int,
        lead_h: float,
        overrun_s: int = 0,
        early_s: int = 0,
        wider: int = -1,
        run: bool = True,
    ) -> None:
        s0 = slot_time(8, 14)
        s1 = s0 + SLOT_S * int(rng.integers(8, 17))
        pid = f"TD{prefix}{start:%Y%m}{len(out.plans) + 1:03d}"
        notice = out.at(k, s0) - dt.timedelta(hours=lead_h)
        need = 168 if kind == "planned" else 24
        devs = []
        if lead_h < need:
            devs.append("late_notice")
        if early_s > 15 * 60:
            devs.append("early_start")
        if overrun_s > 15 * 60:
            devs.append("overrun")
        if not run:
            out.plans.append(
                PlanRow(pid, kind, int(feeder_of[a]), a, k, s0, s1, notice, "not_executed", "not_executed")
            )
            return
        if wider >= 0:
            devs_plan = [*devs, "wider_than_plan"]
        else:
            devs_plan = devs
        out.plans.append(PlanRow(pid, kind, int(feeder_of[a]), a, k, s0, s1, notice, "executed", ",".join(devs_plan)))
        a_s0, a_s1 = s0 - early_s + 30, s1 + overrun_s + 30
        add(Injected(0, k, kind, [a], [], a_s0, a_s1, plan_id=pid, deviations=",".join(devs)))
        if wider >= 0:
            add(
                Injected(
                    0,
                    k,
                    kind,
                    [wider],
                    [],
                    a_s0,
                    a_s1,
                    plan_id=pid,
                    deviations=",".join(["outside_plan_scope", *devs]),
                    note="outside the plan's area",
                )
            )

    def day_of(frac: float) -> int:
        return min(days - 1, max(1, int(days * frac)))

    schedule = [
        ("planned", day_of(0.15), 24 * 9.0, 0, 0, False),  # on time
        ("planned", day_of(0.30), 24 * 3.0, 0, 0, False),  # notified late
        ("planned", day_of(0.45), 24 * 10.0, 60 * 60, 0, False),  # overran by an hour
        ("planned", day_of(0.60), 24 * 2.0, 45 * 60, 0, False),  # late notice and overran
        ("planned", day_of(0.70), 24 * 8.0, 0, 30 * 60, False),  # started 30 min early
        ("temporary", day_of(0.35), 36.0, 0, 0, False),  # on time
        ("temporary", day_of(0.55), 6.0, 0, 0, False),  # notified 6 h ahead
    ]
    for kind, k, lead, over, early, _ in schedule:
        a = free_area(k)
        if a >= 0:
            plan(kind, k, a, lead, over, early)
    # one plan never executed, one outage wider than its plan (a second area of the feeder)
    k = day_of(0.8)
    a = free_area(k)
    if a >= 0:
        plan("planned", k, a, 24 * 8.0, run=False)
    k = day_of(0.9)
    a = free_area(k)
    if a >= 0:
        same = areas[(feeder_of[areas] == feeder_of[a]) & (areas != a)]
        b = free_area(k, same) if len(same) else -1
        if b >= 0:
            plan("planned", k, a, 24 * 7.5, wider=b)
    # a revision: the first executed plan is re-sent two days before with a later end
    first = next((p for p in out.plans if p.status == "executed" and p.plan_id), None)
    if first is not None:
        revised_end = first.end_s + 2 * SLOT_S
        for inj in out.injected:
            if inj.plan_id == first.plan_id:
                inj.s1 = revised_end + 30
        first.end_s = first.end_s  # the first delivery keeps its end
        out.revision = (first.plan_id, revised_end, out.at(first.day, first.start_s) - dt.timedelta(days=2))

    # customer-only outages and blips keep off the days of plans (one feeder may hold them all)
    plan_days = {p.day for p in out.plans}
    open_days = np.array([k for k in range(days) if k not in plan_days] or [0])
    # customer-only outages (a blown service fuse): one customer, 1-3 h
    custs = np.flatnonzero((phys >= 0) & ~topo.vacant[:c] & (np.arange(c) != out.mapped_meter))
    for _ in range(max(2, days // 6)):
        k = int(rng.choice(open_days))
        m = int(rng.choice(custs))
        if (k, int(phys[m])) in busy:
            continue
        s0 = slot_time(6, 20)
        inj = add(Injected(0, k, "customer", [], [m], s0 + 40, s0 + SLOT_S * int(rng.integers(4, 13)) + 40))
        if sum(i.kind == "customer" for i in out.injected) == 1:
            inj.lost_on = 1  # closed by the first curve slot with energy
            inj.note = "its POWER_ON was lost"
    # momentary blips (a recloser): a whole area off for one or two minutes
    for _ in range(max(2, days // 8)):
        k = int(rng.choice(open_days))
        a = free_area(k)
        if a >= 0:
            s0 = slot_time(0, 23) + 300
            add(Injected(0, k, "blip", [a], [], s0, s0 + int(rng.integers(30, 150))))
    # one area fault whose master meter lost its POWER_ON (closed by its curve)
    faults = [i for i in out.injected if i.kind == "fault" and i.lost_on == 0 and not i.note]
    if faults:
        faults[0].master_lost_on = True
        faults[0].note = "the master meter lost its POWER_ON"
    out.injected.sort(key=lambda i: (i.day, i.s0))
    return out
