"""The reverse history's kept parts: a daily run reads its recent days, not the lake, and
the history is the whole one's, whatever the lake did since (reruns, late files, kills)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from stage_kit import count_calls

from meterlake.lake import Lake
from meterlake.schemas.meter_daily import METER_DAILY
from meterlake.stages import anomalies
from meterlake.transforms import anomaly

D0 = dt.date(2026, 1, 1)
CFG = anomaly.AnomalyConfig()  # moved_kwh 0.05, quiet_days 14


def day(i: int) -> dt.date:
    return D0 + dt.timedelta(days=i)


def meter_day(i: int, reverse: dict[str, float] | None = None, pv: dict[str, float] | None = None) -> pl.DataFrame:
    """Three customers' day ``i``: 5 kWh each, the reverse kWh and stated PV given."""
    meters = ["m1", "m2", "m3"]
    cols = {
        "date": [day(i)] * 3,
        "meter_id": meters,
        "role": ["customer"] * 3,
        "kwh": [5.0] * 3,
        "reverse_kwh": [(reverse or {}).get(m, 0.0) for m in meters],
        "quality": ["actual"] * 3,
        "pv_capacity_kw": [(pv or {}).get(m) for m in meters],
    }
    return pl.DataFrame(
        {c: cols.get(c, [None] * 3) for c in METER_DAILY.names}, schema=METER_DAILY.schema, strict=False
    )


def whole(lake: Lake, days: list[dt.date]) -> pl.DataFrame:
    """The history read from every day at once, as before the parts were kept."""
    return anomaly.reverse_history(lake.scan(METER_DAILY, days), CFG)


@pytest.fixture
def lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Lake:
    monkeypatch.setattr(anomalies, "REVERSE_RECENT_DAYS", 3)
    lk = Lake(tmp_path / "lake")
    for i in range(20):
        # m1's reverse register moves on day 17 (16 days after its first: no PV inferred);
        # m2 states 4 kW of PV on day 2 and moves on day 3
        lk.write_partition(
            METER_DAILY,
            day(i),
            meter_day(
                i,
                reverse={"m1": 0.6 if i == 17 else 0.0, "m2": 0.3 if i >= 3 else 0.0},
                pv={"m2": 4.0} if i == 2 else None,
            ),
        )
    return lk


def spans(calls: list[object]) -> list[tuple[int, int]]:
    return [(min(s), max(s)) for s in calls]  # type: ignore[call-overload]


def test_a_daily_run_reads_its_recent_days_and_the_settled_ones_it_adds(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = count_calls(
        monkeypatch,
        anomaly,
        "reverse_parts",
        lambda frame, cfg: tuple(d.day - 1 for d in frame.select("date").unique().collect()["date"]),
    )
    days = [day(i) for i in range(18)]  # the lake's days up to day 17
    got = anomalies.reverse_history(lake, CFG, days)
    assert spans(read) == [(0, 14), (15, 17)]
    assert got.equals(whole(lake, days))
    # days 0-14 settled (more than 3 days before day 17) and kept; 15-17 read as recent
    assert got.filter(pl.col("meter_id") == "m1").row(0) == ("m1", day(0), day(17), True)
    assert got.filter(pl.col("meter_id") == "m2").row(0) == ("m2", day(0), day(3), False)  # it states PV

    read.clear()
    days = [day(i) for i in range(20)]  # two days later: days 15-16 settle
    got = anomalies.reverse_history(lake, CFG, days)
    assert spans(read) == [(15, 16), (17, 19)]
    assert got.equals(whole(lake, days))
    footer = pl.read_parquet_metadata(lake.root / "_state" / "reverse" / "parts.parquet")
    assert list(json.loads(footer["days"])) == [day(i).isoformat() for i in range(17)]
    assert not (lake.root / "_state" / "reverse" / "stamps.json").exists()

    read.clear()
    assert anomalies.reverse_history(lake, CFG, days).equals(got)  # a rerun: nothing settles
    assert spans(read) == [(17, 19)]


def test_a_rebuilt_settled_day_has_the_whole_history_read_again(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    days = [day(i) for i in range(20)]
    anomalies.reverse_history(lake, CFG, days)
    # a late file rebuilds day 5: m3's reverse register moved that day
    lake.write_partition(METER_DAILY, day(5), meter_day(5, reverse={"m2": 0.3, "m3": 1.0}))
    read = count_calls(
        monkeypatch,
        anomaly,
        "reverse_parts",
        lambda frame, cfg: tuple(d.day - 1 for d in frame.select("date").unique().collect()["date"]),
    )
    got = anomalies.reverse_history(lake, CFG, days)
    assert spans(read) == [(0, 16), (17, 19)]  # the settled days again, whole, and the recent ones
    assert got.equals(whole(lake, days))
    assert got.filter(pl.col("meter_id") == "m3")["first_reverse"].item() == day(5)


@pytest.mark.parametrize("damage", ["unstamped", "garbled", "settings", "earlier"])
def test_kept_parts_that_do_not_hold_are_not_used(lake: Lake, monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    days = [day(i) for i in range(20)]
    anomalies.reverse_history(lake, CFG, days)
    cfg = CFG
    parts = lake.root / "_state" / "reverse" / "parts.parquet"
    if damage == "unstamped":  # parts of an earlier version: its stamps beside them, in a JSON file
        footer = pl.read_parquet_metadata(parts)
        lake.write_file(parts, pl.read_parquet(parts).head(1))
        (parts.parent / "stamps.json").write_text(json.dumps({"days": json.loads(footer["days"])}))
    elif damage == "garbled":  # a footer that says nothing readable
        lake.write_file(
            parts, pl.read_parquet(parts).head(1), metadata={"version": "2", "moved_kwh": "0.05", "days": "{"}
        )
    elif damage == "settings":  # another threshold of a moved register
        cfg = CFG.model_copy(update={"reverse": CFG.reverse.model_copy(update={"moved_kwh": 0.5})})
    else:  # a rerun of an earlier date: its history ends before the kept days do
        days = days[:10]
    expected = anomaly.reverse_history(lake.scan(METER_DAILY, days), cfg)
    assert anomalies.reverse_history(lake, cfg, days).equals(expected)
    assert not (parts.parent / "stamps.json").exists()
    if damage == "settings":  # m2's 0.3 kWh a day is below 0.5: never moved
        assert expected.filter(pl.col("meter_id") == "m2")["first_reverse"].item() is None


def test_no_days_and_no_settled_days_keep_nothing(lake: Lake) -> None:
    assert anomalies.reverse_history(lake, CFG, []).height == 0
    got = anomalies.reverse_history(lake, CFG, [day(0), day(1)])
    assert got.equals(whole(lake, [day(0), day(1)]))
    assert not (lake.root / "_state" / "reverse").exists()
