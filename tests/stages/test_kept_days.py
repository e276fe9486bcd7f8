"""The anomalies stage's kept prepared days: each meter_daily day prepared once (its own peer
medians, its outage days left out), kept with what it was made from, and prepared again
when that changes (a rebuilt day, a new outage file, other settings, a torn file)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from meterlake.lake import Lake
from meterlake.schemas.meter_daily import METER_DAILY
from meterlake.schemas.outage_meter_days import OUTAGE_METER_DAYS
from meterlake.stages import anomalies
from meterlake.transforms import anomaly

D0 = dt.date(2026, 3, 2)
SPAN = [D0 + dt.timedelta(days=i) for i in range(3)]
CFG = anomaly.AnomalyConfig()  # min_peers 5, min_peer_kwh 0.1, tou.min_day_kwh 1.0
OUTAGE_MIN = 60.0
METERS = ["m1", "m2", "m3", "m4", "m5"]


def meter_day(d: dt.date, kwh: list[float | None], quality: list[str] | None = None) -> pl.DataFrame:
    """Five residents of area A1: the day's kWh, half of it peak and half valley."""
    n = len(METERS)
    cols = {
        "date": [d] * n,
        "meter_id": METERS,
        "customer_id": [f"C{m}" for m in METERS],
        "area_id": ["A1"] * n,
        "feeder_id": ["F1"] * n,
        "role": ["customer"] * n,
        "customer_class": ["resident"] * n,
        "kwh": kwh,
        "kwh_sharp": [0.0] * n,
        "kwh_peak": [None if k is None else k / 2 for k in kwh],
        "kwh_flat": [0.0] * n,
        "kwh_valley": [None if k is None else k / 2 for k in kwh],
        "reverse_kwh": [0.0] * n,
        "quality": quality or ["actual"] * n,
    }
    return pl.DataFrame(
        {c: cols.get(c, [None] * n) for c in METER_DAILY.names}, schema=METER_DAILY.schema, strict=False
    )


def outages(d: dt.date, minutes: dict[str, float]) -> pl.DataFrame:
    n = len(minutes)
    cols = {"date": [d] * n, "meter_id": list(minutes), "outage_min": list(minutes.values())}
    return pl.DataFrame(
        {c: cols.get(c, [None] * n) for c in OUTAGE_METER_DAYS.names}, schema=OUTAGE_METER_DAYS.schema, strict=False
    )


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    lk = Lake(tmp_path / "lake")
    lk.write_partition(METER_DAILY, SPAN[0], meter_day(SPAN[0], [1.0, 2.0, 3.0, 4.0, 5.0]))
    # m3 not collected: four values, fewer than min_peers, so the class's median lake-wide
    lk.write_partition(
        METER_DAILY,
        SPAN[1],
        meter_day(SPAN[1], [2.0, 2.0, None, 2.0, 2.0], ["actual"] * 2 + ["missing"] + ["actual"] * 2),
    )
    lk.write_partition(METER_DAILY, SPAN[2], meter_day(SPAN[2], [10.0, 20.0, 30.0, 40.0, 50.0]))
    # m2 off supply 600 minutes on the third day (left out), m4 30 minutes (kept)
    lk.write_partition(OUTAGE_METER_DAYS, SPAN[2], outages(SPAN[2], {"m2": 600.0, "m4": 30.0}))
    return lk


def kept(lake: Lake, cfg: anomaly.AnomalyConfig = CFG, minutes: float = OUTAGE_MIN) -> anomalies._KeptDays:
    return anomalies._KeptDays(lake, SPAN, cfg, minutes, lambda _m: None)


def figures(lake: Lake, d: dt.date) -> dict[str, tuple[object, ...]]:
    """A kept day's rows: meter -> (v, ratio, sh_peak, sh_valley)."""
    day = pl.read_parquet(anomalies.kept_day_path(lake, d))
    return {r["meter_id"]: (r["v"], r["ratio"], r["sh_peak"], r["sh_valley"]) for r in day.iter_rows(named=True)}


def test_each_day_is_prepared_by_hand(lake: Lake) -> None:
    k = kept(lake)
    assert k.made == SPAN
    # day 1: the area's median of 1..5 is 3; each day half peak, half valley
    assert figures(lake, SPAN[0]) == {
        "m1": (1.0, 0.333333, 0.5, 0.5),
        "m2": (2.0, 0.666667, 0.5, 0.5),
        "m3": (3.0, 1.0, 0.5, 0.5),
        "m4": (4.0, 1.333333, 0.5, 0.5),
        "m5": (5.0, 1.666667, 0.5, 0.5),
    }
    # day 2: m3 has no value (no ratio, no split); the four 2 kWh give the class median 2
    assert figures(lake, SPAN[1]) == {
        "m1": (2.0, 1.0, 0.5, 0.5),
        "m2": (2.0, 1.0, 0.5, 0.5),
        "m3": (None, None, None, None),
        "m4": (2.0, 1.0, 0.5, 0.5),
        "m5": (2.0, 1.0, 0.5, 0.5),
    }
    # day 3: the median 30 taken with m2 (its day is left out after, not before)
    assert figures(lake, SPAN[2]) == {
        "m1": (10.0, 0.333333, 0.5, 0.5),
        "m3": (30.0, 1.0, 0.5, 0.5),
        "m4": (40.0, 1.333333, 0.5, 0.5),
        "m5": (50.0, 1.666667, 0.5, 0.5),
    }


def test_a_range_reads_the_days_as_the_look_back_prepared_whole(lake: Lake) -> None:
    kept(lake)
    raw = lake.scan(METER_DAILY, SPAN).select(list(anomaly.DAY_COLUMNS))
    off = lake.scan(OUTAGE_METER_DAYS, SPAN).filter(pl.col("outage_min") >= OUTAGE_MIN).collect()
    whole = anomaly.without_outage_days(anomaly.prepare_days(raw, CFG), off, 0.0).select(anomalies.KEPT_DAYS_COLUMNS)
    k = kept(lake)
    assert k.made == []
    for lo, hi in [(None, None), (None, "m3"), ("m3", None), ("m2", "m4")]:
        part = k.days(lo, hi)
        assert part.equals(whole.filter(anomaly.in_range(lo, hi))), (lo, hi)
    assert k.days("m2", "m4")["meter_id"].to_list() == ["m2", "m2", "m3", "m3", "m3"]


def test_a_rebuilt_day_is_prepared_again_the_others_read_back(lake: Lake) -> None:
    kept(lake)
    # m3's day 2 delivered late: five values now, the area's median of 2, 2, 7, 2, 2 is 2
    lake.write_partition(METER_DAILY, SPAN[1], meter_day(SPAN[1], [2.0, 2.0, 7.0, 2.0, 2.0]))
    k = kept(lake)
    assert k.made == [SPAN[1]]
    assert figures(lake, SPAN[1])["m3"] == (7.0, 3.5, 0.5, 0.5)
    # the same file again (a rerun that wrote nothing new): nothing prepared
    assert kept(lake).made == []


def test_an_outage_file_written_or_changed_prepares_its_day_again(lake: Lake) -> None:
    kept(lake)
    lake.write_partition(OUTAGE_METER_DAYS, SPAN[0], outages(SPAN[0], {"m5": 90.0}))
    assert kept(lake).made == [SPAN[0]]
    assert set(figures(lake, SPAN[0])) == {"m1", "m2", "m3", "m4"}
    # m4's 30 minutes on day 3 become 120: left out too
    lake.write_partition(OUTAGE_METER_DAYS, SPAN[2], outages(SPAN[2], {"m2": 600.0, "m4": 120.0}))
    assert kept(lake).made == [SPAN[2]]
    assert set(figures(lake, SPAN[2])) == {"m1", "m3", "m5"}


@pytest.mark.parametrize(
    ("cfg", "minutes"),
    [
        (anomaly.AnomalyConfig.model_validate({"peers": {"min_peers": 6}}), OUTAGE_MIN),
        (anomaly.AnomalyConfig.model_validate({"tou": {"min_day_kwh": 1.5}}), OUTAGE_MIN),
        (CFG, 20.0),
    ],
)
def test_other_settings_prepare_every_day_again(lake: Lake, cfg: anomaly.AnomalyConfig, minutes: float) -> None:
    kept(lake)
    assert kept(lake, cfg, minutes).made == SPAN
    assert kept(lake, cfg, minutes).made == []
    assert kept(lake).made == SPAN  # and back


def test_changed_settings_change_the_figures(lake: Lake) -> None:
    kept(lake)
    kept(lake, anomaly.AnomalyConfig.model_validate({"tou": {"min_day_kwh": 1.5}}))
    assert figures(lake, SPAN[0])["m1"] == (1.0, 0.333333, None, None)  # 1 kWh: below the floor, no split
    kept(lake, CFG, 20.0)
    assert set(figures(lake, SPAN[2])) == {"m1", "m3", "m5"}  # m4's 30 minutes now leave it out


def test_a_torn_or_foreign_file_is_prepared_again(lake: Lake) -> None:
    kept(lake)
    path = anomalies.kept_day_path(lake, SPAN[2])
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # cut short
    assert kept(lake).made == [SPAN[2]]
    assert path.read_bytes() != good[: len(good) // 2]
    # a file of the same rows without the stamps (another version's, or written by hand)
    pl.read_parquet(path).write_parquet(path)
    assert kept(lake).made == [SPAN[2]]
    assert kept(lake).made == []


def test_the_days_before_the_newest_look_back_are_removed(lake: Lake) -> None:
    kept(lake)
    assert anomalies.prune_kept_days(lake, 2) == 1  # the newest is day 3: days 2 and 3 stay
    left = sorted(p.name for p in lake.root.joinpath(*anomalies.DAYS_STATE).iterdir())
    assert left == [f"date={d.isoformat()}.parquet" for d in SPAN[1:]]
    assert anomalies.prune_kept_days(lake, 2) == 0
    assert kept(lake).made == [SPAN[0]]  # a rerun of an earlier date prepares it again
