"""The grid the synthetic county sits on: feeders, transformer areas and meters.

Meters are kept in one internal order, ``[customers, area masters, feeder heads]``,
customers sorted by feeder then area (10 kV customers after their feeder's areas).
Meter ids are assigned increasing along that order, so a file written in internal
order is sorted by ``meter_id`` like a head-end export.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from . import _shapes as sh

ROLE_FEEDER, ROLE_MASTER, ROLE_CUSTOMER = 0, 1, 2
ROLES = ("feeder_head", "area_master", "customer")
CLASSES = ("resident", "commercial", "industrial", "agricultural")
C_RES, C_COM, C_IND, C_AGR = range(4)

#: 1e-4 kWh: every energy the meters count is an int64 number of these
UNIT = 10_000

MIN_METERS = 10


@dataclass
class Topology:
    n: int
    n_cust: int
    n_area: int
    n_feeder: int
    # per meter (length n), internal order
    role: np.ndarray  # int8
    feeder: np.ndarray  # int32
    area: np.ndarray  # int32, physical area at the start; -1 for feeder heads and 10 kV customers
    cls: np.ndarray  # int8, -1 unless customer
    profile: np.ndarray  # int8, -1 unless customer
    tariff: np.ndarray  # int8 index into TARIFFS, -1 for masters and feeder heads
    program: np.ndarray  # int8 TOU program (see _shapes.TOU_PROGRAM)
    mult: np.ndarray  # float64, the true CT x PT ratio
    reg_max: np.ndarray  # int64, register full scale in 1e-4 kWh
    decimals: np.ndarray  # int8, decimals the register shows (2, or 4 for feeder heads)
    prepay: np.ndarray  # bool
    pv_kw: np.ndarray  # float64, rooftop PV rating (0 = none)
    base_kwh: np.ndarray  # float64, typical primary kWh a day
    vacant: np.ndarray  # bool, an empty dwelling (near-zero use, legitimately)
    three_phase: np.ndarray  # bool
    meter_id: pl.Series  # String, 13 digits with leading zeros
    customer_id: pl.Series  # String, null unless customer
    # per area / feeder
    area_feeder: np.ndarray  # int32 (n_area)
    area_code: pl.Series  # String (n_area)
    feeder_code: pl.Series  # String (n_feeder)
    area_loss: np.ndarray  # technical loss as a share of area supply at the area's typical load
    feeder_loss: np.ndarray  # technical loss as a share of feeder supply
    area_iron: np.ndarray  # share of the area's technical loss at its typical load that is no-load (iron) loss

    @property
    def master_of_area(self) -> np.ndarray:
        return self.n_cust + np.arange(self.n_area)

    @property
    def head_of_feeder(self) -> np.ndarray:
        return self.n_cust + self.n_area + np.arange(self.n_feeder)


def _ids(start: int, rng: np.random.Generator, n: int, max_gap: int) -> np.ndarray:
    return start + np.cumsum(rng.integers(1, max_gap, n, dtype=np.int64))


def _zfill(values: np.ndarray, width: int, prefix: str = "") -> pl.Series:
    s = pl.Series(values.astype(np.int64)).cast(pl.String).str.zfill(width)
    return (prefix + s) if prefix else s


def _ct_multiplier(current_a: np.ndarray, ratings: np.ndarray, margin: float, minimum: int) -> np.ndarray:
    """The smallest standard CT rating carrying ``margin`` x the peak current, /5 A."""
    need = np.maximum(current_a * margin, minimum)
    idx = np.minimum(np.searchsorted(ratings, need), len(ratings) - 1)
    return ratings[idx] / 5.0


def build(meters: int, rng: np.random.Generator, org: int = 1) -> Topology:
    """The grid of one org unit. Unit k > 1 gets ids of its own (meters + (k-1)*10^11, customers
    + (k-1)*10^9, areas + (k-1)*10^8, feeders XL + 7 digits), so units never share an id."""
    if meters < MIN_METERS:
        raise ValueError(
            f"meters: expected at least {MIN_METERS} (a feeder head, an area master and customers), found {meters}"
        )
    n_area = max(2 if meters >= 70 else 1, round(meters / 140))
    n_direct = round(0.004 * meters) if meters >= 60 else 0
    n_feeder = max(1, round(n_area / 22))
    n_area = min(n_area, (meters - n_feeder - n_direct) // 2)
    n_feeder = min(n_feeder, n_area)
    n_area_cust = meters - n_feeder - n_area - n_direct
    n_cust = n_area_cust + n_direct

    # area sizes: 30-400 customers, scaled to the total
    raw = np.clip(np.exp(rng.normal(np.log(115.0), 0.55, n_area)), 30, 400)
    exact = raw * n_area_cust / raw.sum()
    sizes = np.floor(exact).astype(np.int64)
    short = n_area_cust - sizes.sum()
    sizes[np.argsort(-(exact - sizes), kind="stable")[:short]] += 1
    if (sizes < 1).any():  # only at tiny sizes
        sizes = np.full(n_area, n_area_cust // n_area)
        sizes[: n_area_cust - sizes.sum()] += 1

    # areas to feeders in contiguous blocks of random length
    if n_feeder > 1:
        cuts = np.sort(rng.choice(np.arange(1, n_area), n_feeder - 1, replace=False))
        per_feeder = np.diff(np.concatenate([[0], cuts, [n_area]]))
    else:
        per_feeder = np.array([n_area])
    area_feeder = np.repeat(np.arange(n_feeder), per_feeder).astype(np.int32)

    # customers: area customers then 10 kV customers, sorted by (feeder, area)
    c_area = np.concatenate([np.repeat(np.arange(n_area), sizes), np.full(n_direct, -1)]).astype(np.int32)
    c_feeder = np.concatenate([area_feeder[c_area[:n_area_cust]], rng.integers(0, n_feeder, n_direct)]).astype(np.int32)
    order = np.lexsort((np.where(c_area < 0, n_area, c_area), c_feeder))
    c_area, c_feeder = c_area[order], c_feeder[order]
    direct = c_area < 0

    # class mix of a county (docs/domain.md#a-county-in-numbers: 0.62 / 4.72 / 3.24 / 11.9 / 27.84 of 48万)
    mix = np.array([11.9, 27.84, 3.24, 4.72, 0.62])
    kind = rng.choice(5, n_cust, p=mix / mix.sum())
    kind[direct] = np.where(rng.random(direct.sum()) < 0.3, 2, 3)
    cls = np.array([C_RES, C_RES, C_COM, C_IND, C_AGR], dtype=np.int8)[kind]
    u = rng.random(n_cust)
    profile = np.select(
        [kind == 0, kind == 1, kind == 2, kind == 3, kind == 4],
        [
            np.full(n_cust, sh.P_RES_URBAN),
            np.full(n_cust, sh.P_RES_RURAL),
            np.where(u < 0.5, sh.P_COM_OFFICE, sh.P_COM_SHOP),
            np.where(u < 0.45, sh.P_IND1, np.where(u < 0.80, sh.P_IND2, sh.P_IND3)),
            np.full(n_cust, sh.P_AGR),
        ],
    ).astype(np.int8)
    profile[direct & (kind == 3)] = np.where(u[direct & (kind == 3)] < 0.4, sh.P_IND2, sh.P_IND3)

    # typical primary kWh a day: median and spread by profile; 10 kV customers are large
    median = np.array([6.5, 5.0, 70.0, 45.0, 220.0, 380.0, 650.0, 40.0])[profile]
    sigma = np.array([0.55, 0.6, 0.9, 0.9, 0.9, 0.9, 0.9, 0.8])[profile]
    lo = np.array([0.8, 0.8, 8.0, 8.0, 40.0, 40.0, 60.0, 5.0])[profile]
    hi = np.array([45.0, 45.0, 1200.0, 1200.0, 4000.0, 5000.0, 6000.0, 600.0])[profile]
    base = np.clip(np.exp(rng.normal(np.log(median), sigma)), lo, hi)
    base[direct] = np.clip(np.exp(rng.normal(np.log(np.where(cls[direct] == C_COM, 1500.0, 4000.0)), 0.8)), 300, 40000)
    vacant = (cls == C_RES) & (rng.random(n_cust) < 0.06)
    base[vacant] = rng.uniform(0.1, 0.8, vacant.sum())

    tariff = np.select(
        [cls == C_RES, cls == C_AGR], [np.where(rng.random(n_cust) < 0.35, sh.T_RES_TOU, sh.T_RES), sh.T_AGR], sh.T_COM
    ).astype(np.int8)
    program = np.select([tariff == sh.T_RES_TOU, (tariff == sh.T_RES) | (tariff == sh.T_AGR)], [1, 2], 0).astype(
        np.int8
    )

    # multipliers: households 1; larger LV customers behind a CT; 10 kV customers CT x PT
    peak_kw = base * 2.5 / 24.0
    mult = np.ones(n_cust)
    lv_ct = ~direct & (
        ((cls == C_COM) & (base > 120)) | ((cls == C_IND) & (base > 80)) | ((cls == C_AGR) & (base > 100))
    )
    mult[lv_ct] = _ct_multiplier(peak_kw[lv_ct] * 1.604, np.concatenate([sh.SMALL_CT_A, sh.LV_CT_A]), 1.25, 50)
    mult[direct] = _ct_multiplier(peak_kw[direct] * 0.0642, sh.HV_CT_A, 1.3, 10) * sh.PT_10KV

    prepay = ((cls == C_RES) & (rng.random(n_cust) < 0.30)) | (
        (cls == C_COM) & (mult == 1) & (rng.random(n_cust) < 0.20)
    )
    pv = (cls == C_RES) & ~vacant & ~prepay & ~direct & (rng.random(n_cust) < 0.04)
    pv_kw = np.where(pv, np.clip(np.exp(rng.normal(np.log(6.0), 0.35, n_cust)), 3, 20), 0.0)
    pv_c = ~direct & np.isin(cls, [C_COM, C_IND]) & ~prepay & (rng.random(n_cust) < 0.02)
    pv_kw[pv_c] = np.clip(np.exp(rng.normal(np.log(40.0), 0.5, pv_c.sum())), 10, 200)

    r = rng.random(n_cust)
    reg_max = np.where(
        (cls == C_RES) & (r < 0.08), 100000.0, np.where((cls == C_RES) & (r < 0.12), 99999.99, 1000000.0)
    )

    # area masters and feeder heads
    area_base = np.bincount(c_area[~direct], weights=base[~direct], minlength=n_area)
    m_base = area_base * 1.04
    m_mult = _ct_multiplier(m_base * 2.2 / 24.0 * 1.604, sh.LV_CT_A, 1.2, 100)
    f_base = (
        np.bincount(area_feeder, weights=m_base, minlength=n_feeder)
        + np.bincount(c_feeder[direct], weights=base[direct], minlength=n_feeder)
    ) * 1.04
    f_mult = _ct_multiplier(f_base * 2.0 / 24.0 * 0.0642, sh.HV_CT_A[sh.HV_CT_A >= 100], 1.3, 100) * sh.PT_10KV

    n = meters
    role = np.concatenate(
        [np.full(n_cust, ROLE_CUSTOMER), np.full(n_area, ROLE_MASTER), np.full(n_feeder, ROLE_FEEDER)]
    ).astype(np.int8)
    neg = lambda k, dt=np.int8: np.full(k, -1, dtype=dt)  # noqa: E731
    meter_int = np.concatenate(
        [
            _ids(1_000_000_000, rng, n_cust, 30),
            _ids(5_100_000_000, rng, n_area, 500),
            _ids(5_900_000_000, rng, n_feeder, 1000),
        ]
    )
    cust_int = _ids(300_000_000, rng, n_cust, 20)
    area_int = _ids(1_000_000, rng, n_area, 50)
    feeder_int = _ids(100, rng, n_feeder, 20)
    if org > 1:  # after every draw: unit 1 is the single-unit grid, id for id
        meter_int = meter_int + (org - 1) * 10**11
        cust_int = cust_int + (org - 1) * 10**9
        area_int = area_int + (org - 1) * 10**8
        feeder_int = feeder_int + (org - 1) * 10**5
    customer_id = pl.concat([_zfill(cust_int, 10), pl.Series([None] * (n - n_cust), dtype=pl.String)])
    return Topology(
        n=n,
        n_cust=n_cust,
        n_area=n_area,
        n_feeder=n_feeder,
        role=role,
        feeder=np.concatenate([c_feeder, area_feeder, np.arange(n_feeder)]).astype(np.int32),
        area=np.concatenate([c_area, np.arange(n_area), neg(n_feeder, np.int32)]).astype(np.int32),
        cls=np.concatenate([cls, neg(n_area + n_feeder)]),
        profile=np.concatenate([profile, neg(n_area + n_feeder)]),
        tariff=np.concatenate([tariff, neg(n_area + n_feeder)]),
        program=np.concatenate([program, np.zeros(n_area + n_feeder, dtype=np.int8)]),
        mult=np.concatenate([mult, m_mult, f_mult]),
        reg_max=np.round(np.concatenate([reg_max, np.full(n_area + n_feeder, 1000000.0)]) * UNIT).astype(np.int64),
        decimals=np.concatenate([np.full(n_cust + n_area, 2), np.full(n_feeder, 4)]).astype(np.int8),
        prepay=np.concatenate([prepay, np.zeros(n_area + n_feeder, dtype=bool)]),
        pv_kw=np.concatenate([pv_kw, np.zeros(n_area + n_feeder)]),
        base_kwh=np.concatenate([base, m_base, f_base]),
        vacant=np.concatenate([vacant, np.zeros(n_area + n_feeder, dtype=bool)]),
        three_phase=np.concatenate([cls != C_RES, np.ones(n_area + n_feeder, dtype=bool)]),
        meter_id=_zfill(meter_int, 13).alias("meter_id"),
        customer_id=customer_id.alias("customer_id"),
        area_feeder=area_feeder,
        area_code=_zfill(area_int, 10).alias("area_id"),
        feeder_code=_zfill(feeder_int, 5 if org == 1 else 7, "XL").alias("feeder_id"),
        area_loss=rng.uniform(0.02, 0.06, n_area),
        feeder_loss=rng.uniform(0.02, 0.05, n_feeder),
        area_iron=rng.uniform(0.2, 0.5, n_area),  # drawn last: every other draw is as before
    )
