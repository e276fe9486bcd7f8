"""Load shapes, seasons, tariffs and the meters' time-of-use programming.

Everything here is a small constant table (profiles x 96 slots, profiles x 12 months);
the simulation multiplies them into per-meter arrays.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from meterlake.transforms import metering

SLOTS = 96
#: slot centres in hours (slot 1 is 00:00-00:15, centre 00:07:30)
HOURS = (np.arange(SLOTS) + 0.5) / 4.0

# --- load profiles --------------------------------------------------------------------

PROFILES = (
    "res_urban",  # 0 城镇居民
    "res_rural",  # 1 乡村居民
    "com_office",  # 2 办公/机关
    "com_shop",  # 3 商铺/餐饮
    "ind_1shift",  # 4 单班制工业
    "ind_2shift",  # 5 两班制
    "ind_3shift",  # 6 三班制 (flat)
    "agr_pump",  # 7 农业排灌
)
P_RES_URBAN, P_RES_RURAL, P_COM_OFFICE, P_COM_SHOP, P_IND1, P_IND2, P_IND3, P_AGR = range(8)


def _bump(mu: float, sigma: float) -> np.ndarray:
    """A Gaussian bump centred at hour ``mu``, wrapped around midnight."""
    d = np.abs(HOURS - mu)
    d = np.minimum(d, 24.0 - d)
    return np.exp(-0.5 * (d / sigma) ** 2)


def _plateau(a: float, b: float, edge: float = 0.35) -> np.ndarray:
    """~1 between hours a and b (wrapping when a > b), smooth edges."""

    def sig(x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-x / edge))

    if a < b:
        return sig(HOURS - a) * sig(b - HOURS)
    return np.clip(sig(HOURS - a) + sig(b - HOURS), 0.0, 1.0)


def _norm(x: np.ndarray) -> np.ndarray:
    return x / x.sum()


def _shapes() -> np.ndarray:
    """(profile, daytype {0 weekday, 1 weekend}, slot) -> share of the day's energy."""
    s = np.zeros((len(PROFILES), 2, SLOTS))
    # residents: morning bump, lunch, evening peak 19-22 h; weekend later and flatter
    s[P_RES_URBAN, 0] = 0.30 + 0.45 * _bump(7.3, 0.8) + 0.30 * _bump(12.0, 1.0) + 1.35 * _bump(20.3, 1.7)
    s[P_RES_URBAN, 1] = 0.35 + 0.45 * _bump(9.0, 1.3) + 0.50 * _bump(12.3, 1.3) + 1.30 * _bump(20.0, 2.0)
    s[P_RES_RURAL, 0] = 0.28 + 0.55 * _bump(6.5, 0.8) + 0.60 * _bump(11.5, 0.9) + 1.15 * _bump(18.8, 1.5)
    s[P_RES_RURAL, 1] = 0.30 + 0.55 * _bump(7.0, 1.0) + 0.65 * _bump(11.7, 1.0) + 1.15 * _bump(19.0, 1.6)
    # commercial: offices 08:30-18:00, shops and restaurants 09:30-22:00
    s[P_COM_OFFICE, 0] = 0.18 + 1.0 * _plateau(8.5, 18.0) - 0.15 * _bump(12.5, 0.6)
    s[P_COM_OFFICE, 1] = 0.22 + 0.35 * _plateau(9.0, 17.0)
    s[P_COM_SHOP, 0] = 0.15 + 0.9 * _plateau(9.5, 22.0) + 0.35 * _bump(12.0, 0.8) + 0.45 * _bump(18.5, 1.0)
    s[P_COM_SHOP, 1] = 0.18 + 1.0 * _plateau(9.0, 22.5) + 0.35 * _bump(12.2, 0.9) + 0.5 * _bump(18.5, 1.2)
    # industrial: one shift 08-17 with a lunch dip, two shifts 06-22, three shifts flat
    one = 0.10 + 1.0 * _plateau(8.0, 17.0) - 0.45 * _bump(12.4, 0.45)
    s[P_IND1, 0] = s[P_IND1, 1] = one
    s[P_IND2, 0] = s[P_IND2, 1] = 0.14 + 1.0 * _plateau(6.0, 22.0) - 0.25 * _bump(14.0, 0.3)
    three = 0.92 + 0.08 * _plateau(8.0, 17.0) - 0.12 * (_bump(0.0, 0.25) + _bump(8.0, 0.25) + _bump(16.0, 0.25))
    s[P_IND3, 0] = s[P_IND3, 1] = three
    # agricultural pumping: daytime, plus night pumping on the valley price
    s[P_AGR, 0] = s[P_AGR, 1] = 0.04 + 0.8 * _plateau(7.0, 18.0) + 0.55 * _plateau(22.5, 5.5)
    return s / s.sum(axis=2, keepdims=True)


SHAPES = _shapes()

#: day-type factors (weekday, Saturday, Sunday) on the day's energy
DAYTYPE_FACTOR = np.array(
    [
        [1.00, 1.08, 1.10],
        [1.00, 1.05, 1.07],
        [1.00, 0.45, 0.35],
        [1.00, 1.15, 1.20],
        [1.00, 0.70, 0.35],
        [1.00, 0.90, 0.70],
        [1.00, 0.98, 0.95],
        [1.00, 1.00, 1.00],
    ]
)

#: slot noise (sigma of a log-normal factor per slot): households are spiky
SLOT_SIGMA = np.array([0.40, 0.40, 0.15, 0.18, 0.10, 0.10, 0.06, 0.20])

#: seasonal factor by month (Jan..Dec): heating and air-conditioning for households
#: and commerce, the Spring Festival dip for industry, the irrigation season for pumps
MONTH_FACTOR = np.array(
    [
        [1.35, 1.30, 1.00, 0.85, 0.85, 1.00, 1.40, 1.45, 1.05, 0.85, 0.95, 1.25],
        [1.25, 1.35, 1.00, 0.90, 0.90, 1.00, 1.30, 1.35, 1.00, 0.90, 0.95, 1.15],
        [1.10, 0.90, 0.95, 0.95, 1.00, 1.15, 1.35, 1.40, 1.15, 0.95, 0.95, 1.05],
        [1.05, 1.00, 0.95, 0.95, 1.00, 1.10, 1.30, 1.35, 1.10, 0.95, 0.95, 1.00],
        [0.95, 0.75, 1.00, 1.02, 1.03, 1.03, 1.02, 1.02, 1.03, 1.03, 1.04, 1.05],
        [0.95, 0.75, 1.00, 1.02, 1.03, 1.03, 1.02, 1.02, 1.03, 1.03, 1.04, 1.05],
        [0.97, 0.85, 1.00, 1.01, 1.02, 1.02, 1.02, 1.02, 1.02, 1.02, 1.02, 1.03],
        [0.10, 0.10, 0.30, 0.80, 1.20, 1.50, 1.60, 1.50, 1.00, 0.50, 0.20, 0.10],
    ]
)


def season_factor(day: dt.date) -> np.ndarray:
    """Per-profile seasonal factor for a date, linear between mid-month values."""
    doy = day.timetuple().tm_yday - 1
    mids = np.array([dt.date(2001, m, 15).timetuple().tm_yday - 1 for m in range(1, 13)], dtype=float)
    # periodic interpolation over the year
    xs = np.concatenate([[mids[-1] - 365], mids, [mids[0] + 365]])
    out = np.empty(len(PROFILES))
    for p in range(len(PROFILES)):
        ys = np.concatenate([[MONTH_FACTOR[p, -1]], MONTH_FACTOR[p], [MONTH_FACTOR[p, 0]]])
        out[p] = np.interp(doy, xs, ys)
    return out


def daytype(day: dt.date) -> int:
    """0 weekday, 1 Saturday, 2 Sunday (public holidays are not modelled)."""
    wd = day.weekday()
    return 0 if wd < 5 else (1 if wd == 5 else 2)


def pv_shape(day: dt.date) -> np.ndarray:
    """Clear-sky PV yield per slot as a fraction of rated kW x 0.25 h (sunrise to sunset by season)."""
    doy = day.timetuple().tm_yday
    # day length ~ 10 h in winter, ~14 h in summer (about 30 deg N)
    half = 6.0 + 1.0 * np.sin(2 * np.pi * (doy - 80) / 365.0)
    noon = 12.3
    x = (HOURS - noon) / half
    clear = np.cos(np.clip(x, -1.0, 1.0) * np.pi / 2) ** 1.6
    peak = 0.78 + 0.12 * np.sin(2 * np.pi * (doy - 80) / 365.0)
    return clear * peak * 0.25


# --- tariffs and the meters' TOU programming ------------------------------------------

TARIFFS = ("RES_TIER", "RES_TIER_TOU", "COM_TOU", "AGR_FLAT")
T_RES, T_RES_TOU, T_COM, T_AGR = range(4)

#: TOU registers in file order
TOU = ("sharp", "peak", "flat", "valley")


def _slots(*windows: tuple[float, float]) -> np.ndarray:
    m = np.zeros(SLOTS, dtype=bool)
    start = np.arange(SLOTS) / 4.0
    for a, b in windows:
        m |= (start >= a) & (start < b)
    return m


def _tou_programs() -> np.ndarray:
    """(program, slot) -> register index 0..3 (sharp, peak, flat, valley).

    Program 0 is the commercial four-period schedule of ``config/tariffs.toml``
    (COM_TOU: sharp 19-21, peak 08-11 13-19 21-22, flat 11-13, valley 22-08), also used by
    area masters and feeder heads; program 1 the residential peak 08-22 / valley 22-08
    (RES_TIER_TOU); program 2 a single-rate meter counting everything on ``flat``.
    """
    prog = np.full((3, SLOTS), 3, dtype=np.int64)
    prog[0, _slots((8, 11), (13, 19), (21, 22))] = 1
    prog[0, _slots((19, 21))] = 0
    prog[0, _slots((11, 13))] = 2
    prog[1, _slots((8, 22))] = 1
    prog[2, :] = 2
    return prog


TOU_PROGRAM = _tou_programs()
#: the register that takes the rounding remainder, per program
TOU_REMAINDER = np.array([3, 3, 2])

#: tariff prices the prepayment meters deduct with (CONTRACT §2 defaults)
TIER_THRESHOLDS_KWH = (2760.0, 4800.0)
TIER_ADDERS = np.array([0.0, 0.05, 0.30])
RES_TIER_PRICE = 0.538
RES_TOU_PEAK, RES_TOU_VALLEY = 0.568, 0.288
COM_TOU_PRICES = np.array([1.10, 0.90, 0.60, 0.30])
AGR_PRICE = 0.50

# --- current transformer ratios -----------------------------------------------------

#: low-voltage CT primary ratings (A, secondary 5 A) the generator fits: multiplier = rating / 5;
#: drawn from the pipeline's one rating table (an entry outside it fails at import)
LV_CT_A = np.array(
    metering.ratings([100, 150, 200, 250, 300, 400, 500, 600, 750, 800, 1000, 1200, 1500, 2000], "generator LV CTs")
)
#: small LV CTs of commercial customers
SMALL_CT_A = np.array(metering.ratings([50, 75], "generator small LV CTs"))
#: 10 kV CT primary ratings (A); PT 10000/100 multiplies by 100
HV_CT_A = np.array(
    metering.ratings([10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300, 400, 600, 800], "generator HV CTs")
)
PT_10KV = 100
if PT_10KV not in metering.PT_RATIOS:
    raise ValueError(f"generator PT ratio {PT_10KV} is not in the rating table (transforms/metering.py)")


def day_cost(kwh: np.ndarray, dreg: np.ndarray, ycum: np.ndarray, tariff: np.ndarray) -> np.ndarray:
    """Each customer's cost (yuan) of one day at the shipped tariffs, as the pipeline bills it.

    ``kwh`` the day's primary kWh, ``dreg`` its four TOU register changes (sharp, peak, flat,
    valley; primary kWh), ``ycum`` the calendar-year kWh before the day, ``tariff`` the tariff codes.
    Annual tiers split the day's kWh by where the year's cumulative use stands; RES_TIER_TOU splits
    each tier portion between peak and valley in the day's proportion.
    """
    t1_kwh, t2_kwh = TIER_THRESHOLDS_KWH
    tier1 = np.clip(t1_kwh - ycum, 0, kwh)
    tier2 = np.clip(np.minimum(t2_kwh, ycum + kwh) - np.maximum(t1_kwh, ycum), 0, None)
    tiers = np.stack([tier1, tier2, kwh - tier1 - tier2], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        peak = np.where(kwh > 0, (dreg[:, 0] + dreg[:, 1]) / kwh, 0.0)[:, None]
    res = tiers @ (RES_TIER_PRICE + TIER_ADDERS)
    res_tou = (tiers * (peak * (RES_TOU_PEAK + TIER_ADDERS) + (1 - peak) * (RES_TOU_VALLEY + TIER_ADDERS))).sum(1)
    com = dreg @ COM_TOU_PRICES
    cost: np.ndarray = np.select(
        [tariff == T_RES, tariff == T_RES_TOU, tariff == T_COM], [res, res_tou, com], kwh * AGR_PRICE
    )
    return cost
