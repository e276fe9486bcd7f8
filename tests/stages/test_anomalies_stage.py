"""The anomalies stage on a small hand-made lake, and `meterlake evaluate` against a tiny truth."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from meterlake import pipeline
from meterlake.evaluate import EvaluationError, evaluate
from meterlake.lake import Lake
from meterlake.schemas.anomalies import ANOMALIES
from meterlake.schemas.archive import LANDING as ARCHIVE
from meterlake.schemas.events import LANDING as EVENTS
from meterlake.schemas.loss_diagnosis import LOSS_DIAGNOSIS
from meterlake.schemas.meter_daily import METER_DAILY
from meterlake.schemas.theft_cases import THEFT_CASES
from meterlake.settings import Settings

D0 = dt.date(2026, 1, 1)
DAYS = 40
METERS = [f"{i:04d}" for i in range(20)]
THIEF = "0003"  # metered share 0.3 from day 25, cover opened that morning
STOPPED = "0011"  # register stops on day 30
RUN = [D0 + dt.timedelta(days=d) for d in range(DAYS - 6, DAYS)]  # the last six days


def day(i: int) -> dt.date:
    return D0 + dt.timedelta(days=i)


def meter_daily(i: int, rng: np.random.Generator, base: np.ndarray) -> pl.DataFrame:
    kwh = base * rng.lognormal(0.0, 0.15, len(METERS))
    kwh = np.where(np.array(METERS) == THIEF, kwh * (0.3 if i >= 25 else 1.0), kwh)
    kwh = np.where(np.array(METERS) == STOPPED, kwh * (0.0 if i >= 30 else 1.0), kwh)
    n = len(METERS)
    cols = {
        "date": [day(i)] * n,
        "meter_id": METERS,
        "customer_id": ["C" + m for m in METERS],
        "area_id": ["A1"] * 10 + ["A2"] * 10,
        "feeder_id": ["F1"] * n,
        "role": ["customer"] * n,
        "customer_class": ["resident"] * n,
        "tariff_id": ["RES_TIER"] * n,
        "prepay": [0] * n,
        "multiplier": [1.0] * n,
        "kwh": np.round(kwh, 2),
        "kwh_sharp": [0.0] * n,
        "kwh_peak": np.round(kwh * 0.6, 2),
        "kwh_flat": [0.0] * n,
        "kwh_valley": np.round(kwh, 2) - np.round(kwh * 0.6, 2),
        "reverse_kwh": [0.0] * n,
        "quality": ["actual"] * n,
        "register_read": [True] * n,
    }
    return pl.DataFrame(
        {c: cols.get(c, [None] * n) for c in METER_DAILY.names}, schema=METER_DAILY.schema, strict=False
    )


def build_lake(lake: Path) -> None:
    lk = Lake(lake)
    rng = np.random.default_rng(7)
    base = rng.uniform(4.0, 12.0, len(METERS))
    for i in range(DAYS):
        lk.write_partition(METER_DAILY, day(i), meter_daily(i, rng, base))
    ev: dict[str, list[Any]] = {c: [None] for c in EVENTS.clean.names}
    ev.update(
        meter_id=[THIEF],
        event_time=[dt.datetime.combine(day(25), dt.time(9, 30))],
        event_code=["COVER_OPEN"],
        event_date=[day(25)],
        source_file=["events/e.csv"],
        source_line=[2],
        delivered_at=[dt.datetime(2026, 1, 27)],
    )
    lk.write_partition(EVENTS.clean, day(25), pl.DataFrame(ev, schema=EVENTS.clean.schema))
    for d in RUN:  # the loss stage wrote a diagnosis for each date; it found nothing
        lk.write_partition(LOSS_DIAGNOSIS, d, pl.DataFrame(schema=LOSS_DIAGNOSIS.schema))
    arch: dict[str, list[Any]] = {c: [None] * len(METERS) for c in ARCHIVE.clean.names}
    arch.update(snapshot_date=[D0] * len(METERS), meter_id=METERS, role=["customer"] * len(METERS))
    lk.write_partition(ARCHIVE.clean, D0, pl.DataFrame(arch, schema=ARCHIVE.clean.schema))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("anomalies")
    build_lake(root / "lake")
    (root / "landing").mkdir()
    return root


@pytest.fixture
def zone(built: Path, tmp_path: Path) -> tuple[Path, Path]:
    shutil.copytree(built / "lake", tmp_path / "lake")
    shutil.copytree(built / "landing", tmp_path / "landing")
    return tmp_path / "landing", tmp_path / "lake"


def run(landing: Path, lake: Path, dates: list[dt.date] = RUN, config_dir: Path | None = None):
    settings = Settings(landing=landing, lake=lake, config_dir=config_dir)
    return pipeline.run_stage(settings, "anomalies", dates, "t1", progress=lambda _m: None)


def digest(lake: Path) -> dict[str, str]:
    return {
        p.relative_to(lake).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((lake / "marts" / "anomalies").rglob("*.parquet"))
    }


def test_one_partition_per_date_thief_first_with_reasons(zone) -> None:
    landing, lake = zone
    res = run(landing, lake)
    assert Lake(lake).partitions(ANOMALIES) == [d.isoformat() for d in RUN]
    last = Lake(lake).scan(ANOMALIES, [RUN[-1]]).collect().sort("rank")
    assert set(last["meter_id"][:2]) == {THIEF, STOPPED}
    thief = last.filter(pl.col("meter_id") == THIEF).row(0, named=True)
    assert thief["event_cover_points"] > 0 and thief["drop_own_points"] > 0
    assert "COVER_OPEN on 2026-01-26" in thief["reasons"]
    assert thief["first_suspicious_date"] == day(25)
    stopped = last.filter(pl.col("meter_id") == STOPPED).row(0, named=True)
    assert stopped["zero_points"] > 0
    assert res.rows == {"anomalies": Lake(lake).scan(ANOMALIES).select(pl.len()).collect().item(), "theft_cases": 0}
    assert any("indicators fired" in n for n in res.notes)


def test_rerun_writes_identical_files(zone) -> None:
    landing, lake = zone
    run(landing, lake)
    first = digest(lake)
    run(landing, lake)
    assert digest(lake) == first
    # a date rebuilt alone is the same file as when built with the others
    run(landing, lake, [RUN[2]])
    assert digest(lake) == first


def test_dates_without_meter_daily_are_noted(zone) -> None:
    landing, lake = zone
    res = run(landing, lake, [day(DAYS), day(DAYS + 1)])
    assert res.rows == {"anomalies": 0}
    assert "no meter_daily partition for 2 date(s)" in res.notes[0]
    assert Lake(lake).partitions(ANOMALIES) == []


def write_inspections(landing: Path) -> None:
    """Inspected thieves and honest meters, dated before the run."""
    lines = ["meter_id,inspection_date,outcome"]
    for d in range(27, 33):
        lines.append(f"{THIEF},{day(d).isoformat()},theft")
        lines.append(f"{STOPPED},{day(d).isoformat()},theft")
        lines.append(f"{METERS[d - 20]},{day(d).isoformat()},normal")
        lines.append(f"{METERS[d - 14]},{day(d).isoformat()},normal")
    lines.append("0005,not-a-date,theft")
    folder = landing / "inspections"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "inspections_20260201.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_supervised_mode_with_inspections(zone, tmp_path: Path) -> None:
    landing, lake = zone
    write_inspections(landing)
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    shipped = (Path(__file__).parents[2] / "config" / "anomaly.toml").read_text(encoding="utf-8")
    config_dir.joinpath("anomaly.toml").write_text(
        shipped.replace("min_positives = 10", "min_positives = 4")
        .replace("min_negatives = 10", "min_negatives = 4")
        .replace("max_iter = 200", "max_iter = 30"),
        encoding="utf-8",
    )
    res = run(landing, lake, config_dir=config_dir)
    assert any(n.startswith("supervised: model on") for n in res.notes)
    assert any("1 row(s) or file problem(s) could not be used" in n for n in res.notes)
    last = Lake(lake).scan(ANOMALIES, [RUN[-1]]).collect()
    thief = last.filter(pl.col("meter_id") == THIEF).row(0, named=True)
    assert thief["model_p"] is not None and thief["model_points"] > 0
    assert "inspection model p=" in thief["reasons"]
    # the first run date has inspections only up to the day before it
    first = Lake(lake).scan(ANOMALIES, [RUN[0]]).collect()
    assert first["model_p"].is_not_null().any()


def test_inspections_are_read_once_a_run(zone, monkeypatch: pytest.MonkeyPatch) -> None:
    """The supervised model and the theft cases share one read of the inspection outcomes."""
    landing, lake = zone
    write_inspections(landing)
    from meterlake.stages import anomalies as stage

    calls: list[int] = []
    read = stage.read_inspections

    def counted(folder: Path) -> tuple[pl.DataFrame, list[str]]:
        calls.append(1)
        return read(folder)

    monkeypatch.setattr(stage, "read_inspections", counted)
    res = run(landing, lake)
    assert calls == [1]
    # a theft_cases file for every date of the run (this zone has no cases: its files are empty)
    assert Lake(lake).partitions(THEFT_CASES) == [d.isoformat() for d in RUN]
    assert res.rows[THEFT_CASES.name] == Lake(lake).scan(THEFT_CASES).collect().height


def test_supervised_mode_reads_the_clean_table(zone, tmp_path: Path) -> None:
    landing, lake = zone
    write_inspections(landing)
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    shipped = (Path(__file__).parents[2] / "config" / "anomaly.toml").read_text(encoding="utf-8")
    config_dir.joinpath("anomaly.toml").write_text(
        shipped.replace("min_positives = 10", "min_positives = 4")
        .replace("min_negatives = 10", "min_negatives = 4")
        .replace("max_iter = 200", "max_iter = 30"),
        encoding="utf-8",
    )
    # ingest has taken the dataset over: the clean table wins over the landing folder
    from meterlake.schemas.inspections import LANDING as INSPECTIONS
    from meterlake.transforms.ingest import parse_landing_bytes

    path = landing / "inspections" / "inspections_20260201.csv"
    rows = parse_landing_bytes(path.read_bytes(), INSPECTIONS, "inspections/inspections_20260201.csv").rows
    rows = rows.with_columns(pl.lit(dt.datetime(2026, 2, 1)).alias("delivered_at"))
    for (d,), part in rows.group_by("inspection_date"):
        Lake(lake).write_partition(INSPECTIONS.clean, d, part)
    path.unlink()
    res = run(landing, lake, [RUN[-1]], config_dir=config_dir)
    assert "inspections: 24 rows from the clean table" in res.notes
    assert any(n.startswith("supervised: model on") for n in res.notes)


def test_evaluate_against_a_tiny_truth(zone) -> None:
    landing, lake = zone
    with pytest.raises(EvaluationError, match="expected the ground truth"):
        evaluate(landing, lake)
    truth = landing / "_truth" / "injections.csv"
    truth.parent.mkdir()
    truth.write_text(
        "kind,meter_id,customer_id,area_id,start_date,end_date,detail\n"
        f"theft_bypass,{THIEF},C{THIEF},A1,2026-01-26,2026-02-09,from 09:30; metered share 0.3; events: COVER_OPEN\n"
        f"theft_stopped,{STOPPED},C{STOPPED},A2,2026-01-31,2026-02-09,from 00:00; events: none\n"
        "outage,,,A1,2026-01-05,2026-01-05,from 10:00 to 11:00\n"
        "benign_event,0007,C0007,A1,2026-01-10,2026-01-10,PHASE_FAILURE at 00:26\n",
        encoding="utf-8",
    )
    with pytest.raises(EvaluationError, match="expected anomalies partitions"):
        evaluate(landing, lake)
    run(landing, lake)
    report = evaluate(landing, lake)
    theft = report.row("theft")
    assert theft["positives"] == 2
    assert theft["recall@10"] == 1.0
    assert theft["precision@10"] == pytest.approx(0.2)
    assert theft["roc_auc"] == 1.0
    assert report.meters == 20
    text = report.render()
    assert text.splitlines()[1].split()[:4] == ["group", "positives", "precision@10", "recall@10"]
    assert text.splitlines()[2].startswith("theft ")
    assert "2 theft meters: precision@k for k > 2 is at most 2/k" in text
    assert report.rows["group"].to_list() == ["theft", "benign_event", "theft_bypass", "theft_stopped"]
    # both thieves above every other meter: the AUC with the other thieves set apart is 1 as well
    det = report.detection
    assert det is not None
    assert det.filter(pl.col("category") == "theft")["roc_auc_apart"].to_list() == [1.0]
    assert "roc_auc, thieves apart" in text
    last = evaluate(landing, lake, at="last")
    assert last.dates == [RUN[-1]]


def test_bad_config_names_the_file_and_field(zone, tmp_path: Path) -> None:
    landing, lake = zone
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    config_dir.joinpath("anomaly.toml").write_text("[drop]\nfall = { lo = 0.6, hi = 0.2 }\n", encoding="utf-8")
    from meterlake.stages import StageError

    with pytest.raises(StageError, match=r"anomaly.toml: drop.fall: .*expected hi > lo, found lo=0.6, hi=0.2"):
        run(landing, lake, config_dir=config_dir)


def test_ranges_of_meters_write_the_same_files(zone, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch computed a range of meters at a time (its look-back's days prepared one at a
    time and kept, read back by range) writes the files the whole batch writes: 20 meters x
    40 days cut into ranges of 2-3 meters, the two areas' peer medians (10 meters each) taken
    over every meter of a day. A second run reads the kept days back: the same files again."""
    from meterlake.stages import anomalies as stage

    landing, lake = zone
    run(landing, lake)
    whole = digest(lake)
    ranges: list[tuple[str | None, str | None]] = []
    made: list[list[dt.date]] = []
    real_days, real_init = stage._KeptDays.days, stage._KeptDays.__init__

    def days(self, lo, hi) -> pl.DataFrame:
        ranges.append((lo, hi))
        return real_days(self, lo, hi)

    def init(self, *args, **kwargs) -> None:
        real_init(self, *args, **kwargs)
        made.append(self.made)

    monkeypatch.setattr(stage, "CHUNK_ROWS", 100)
    monkeypatch.setattr(stage._KeptDays, "days", days)
    monkeypatch.setattr(stage._KeptDays, "__init__", init)
    shutil.rmtree(lake / "marts" / "anomalies")
    run(landing, lake)
    # the six dates in one batch: their look-backs' 4,400 meter-days over 100 rows a range,
    # at most one range a meter
    assert len(ranges) == len(METERS)
    assert digest(lake) == whole
    assert made == [[day(i) for i in range(DAYS)]]  # every day of the look-backs prepared once
    kept = sorted(p.name for p in (lake / "_state" / "anomalies" / "days").glob("*.parquet"))
    assert kept == [f"date={day(i).isoformat()}.parquet" for i in range(DAYS)]
    made.clear()
    shutil.rmtree(lake / "marts" / "anomalies")
    run(landing, lake)
    assert digest(lake) == whole
    assert made == [[]]  # nothing prepared again: every day read back
