"""The anomalies stage keeps the observer's daily summaries: a daily run summarises its own day only."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal
from stage_kit import count_calls

from meterlake import pipeline
from meterlake.lake import Lake
from meterlake.schemas.anomalies import ANOMALIES
from meterlake.schemas.curves import LANDING as CURVES
from meterlake.schemas.loss_diagnosis import LOSS_DIAGNOSIS
from meterlake.schemas.meter_daily import METER_DAILY
from meterlake.settings import Settings
from meterlake.stages import ObserverAhead, StageContext, StageResult, anomalies
from meterlake.stages.anomalies import OBSERVER_STATE, _DayFile
from meterlake.transforms.anomaly import ObserverRules

D0 = dt.date(2026, 3, 2)  # a Monday
DAYS = 16
CUSTOMERS = 10
THIEF = "C05"  # records 40 % on every other day from day 4


def _curves(i: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(true, recorded) kWh per slot of the area's customers on day ``i``."""
    h = (np.arange(96) + 0.5) / 4
    shape = 0.3 + np.exp(-0.5 * ((h - 19.5) / 1.6) ** 2) + 0.5 * np.exp(-0.5 * ((h - 7.5) / 1.0) ** 2)
    base = 6.0 + np.arange(CUSTOMERS)[:, None]
    true = base * shape[None, :] / shape.sum() * rng.lognormal(0.0, 0.1, (CUSTOMERS, 96))
    recorded = true.copy()
    if i >= 4 and i % 2 == 0:
        recorded[5] *= 0.4
    return true, recorded


def build(lake: Path) -> None:
    lk = Lake(lake)
    rng = np.random.default_rng(11)
    ids = [f"C{c:02d}" for c in range(CUSTOMERS)] + ["M"]
    for i in range(DAYS):
        d = D0 + dt.timedelta(days=i)
        true, recorded = _curves(i, rng)
        rows = np.vstack([recorded, true.sum(0, keepdims=True) / 0.97])
        n = len(ids)
        md: dict[str, Any] = {c: [None] * n for c in METER_DAILY.names}
        md.update(
            date=[d] * n,
            meter_id=ids,
            customer_id=ids,
            area_id=["A1"] * n,
            feeder_id=["F1"] * n,
            role=["customer"] * CUSTOMERS + ["area_master"],
            customer_class=["resident"] * n,
            tariff_id=["RES_TIER"] * n,
            multiplier=[1.0] * n,
            kwh=rows.sum(1).round(2),
            kwh_sharp=[0.0] * n,
            kwh_peak=[0.0] * n,
            kwh_flat=rows.sum(1).round(2),
            kwh_valley=[0.0] * n,
            reverse_kwh=[0.0] * n,
            quality=["actual"] * n,
            register_read=[True] * n,
        )
        lk.write_partition(METER_DAILY, d, pl.DataFrame(md, schema=METER_DAILY.schema, strict=False))
        cv: dict[str, Any] = {c: [None] * n for c in CURVES.clean.names}
        cv.update(meter_id=ids, data_date=[d] * n, **{f"p{s + 1}": rows[:, s].round(4) for s in range(96)})
        lk.write_partition(CURVES.clean, d, pl.DataFrame(cv, schema=CURVES.clean.schema, strict=False))
        lk.write_partition(LOSS_DIAGNOSIS, d, pl.DataFrame(schema=LOSS_DIAGNOSIS.schema))


def run(root: Path, dates: list[dt.date]) -> None:
    settings = Settings(landing=root / "landing", lake=root / "lake")
    pipeline.run_stage(settings, "anomalies", dates, "t1", progress=lambda _m: None)


def digest(lake: Path) -> dict[str, str]:
    return {
        p.relative_to(lake).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((lake / "marts").rglob("*.parquet"))
    }


def test_daily_runs_read_the_kept_summaries_and_match_one_run(tmp_path: Path) -> None:
    last = [D0 + dt.timedelta(days=i) for i in (DAYS - 2, DAYS - 1)]
    for name in ("daily", "once"):
        (tmp_path / name / "landing").mkdir(parents=True)
        build(tmp_path / name / "lake")
    # day by day, as a scheduler runs it, and both dates in one run
    for d in last:
        run(tmp_path / "daily", [d])
    run(tmp_path / "once", last)
    daily, once = tmp_path / "daily" / "lake", tmp_path / "once" / "lake"
    assert digest(daily) == digest(once)
    kept = sorted(p.parent.name for p in daily.joinpath(*OBSERVER_STATE).rglob("customers.parquet"))
    assert kept == [f"date={D0 + dt.timedelta(days=i)}" for i in range(1, DAYS)]  # the 14-day windows of the two dates
    top = Lake(daily).scan(ANOMALIES, [last[-1]]).collect().sort("rank").row(0, named=True)
    assert top["meter_id"] == THIEF and top["observer_points"] > 0

    # an earlier day's summaries are read back, not summarised again: change what is kept
    # of a day of the window outside the run's dates and the thief's score moves
    state = next(daily.joinpath(*OBSERVER_STATE).glob(f"*/date={D0 + dt.timedelta(days=8)}"))
    kept_rows = pl.read_parquet(state / "customers.parquet")
    blocks = [c for c in kept_rows.columns if c.startswith("b")]
    Lake(daily).write_file(
        state / "customers.parquet",
        kept_rows.with_columns(
            *(pl.when(pl.col("meter_id") == THIEF).then(pl.col(b) / 0.4).otherwise(pl.col(b)) for b in blocks)
        ),
    )
    run(tmp_path / "daily", [last[-1]])
    again = Lake(daily).scan(ANOMALIES, [last[-1]]).collect().filter(pl.col("meter_id") == THIEF)
    assert again["observer_points"][0] != top["observer_points"]
    # a day of the run's dates is summarised afresh (its kept file is rewritten)
    run(tmp_path / "daily", [D0 + dt.timedelta(days=8)])
    assert pl.read_parquet(state / "customers.parquet").equals(kept_rows)


def test_a_kept_day_is_read_a_span_of_batches_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(anomalies, "STATE_ROW_GROUP", 3)  # the window copy's batches: rows 0-2, 3-5, 6-8, 9
    rows = pl.DataFrame(
        {
            "meter_id": [f"C{i:02d}" for i in range(10)],
            "area_id": ["A1"] * 10,
            "actual": [1.0] * 10,
            "b01": [float(i) for i in range(10)],
            "zero_run": list(range(10)),
        },
        schema_overrides={"zero_run": pl.Int16},
    )
    path = tmp_path / "customers.parquet"
    Lake(tmp_path).write_file(path, rows, row_group_size=3)  # groups of rows 0-2, 3-5, 6-8, 9
    kept = _DayFile(Lake(tmp_path), path, ["b01", "zero_run"])
    assert kept.keys().equals(rows.select("meter_id", "area_id", "actual"))
    for r0, r1 in [(0, 2), (2, 7), (7, 8), (8, 10)]:
        assert kept.read(r0, r1).equals(rows.slice(r0, r1 - r0).select("b01", "zero_run"))
    assert pq.ParquetFile(path).metadata.num_row_groups == 4
    assert kept._copy().num_record_batches == 4 and kept.starts.tolist() == [0, 3, 6, 9, 10]


def test_a_small_kept_day_reads_its_keys_once_and_a_large_one_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = pl.DataFrame({"meter_id": ["C1", "C2", "C3"], "area_id": ["A1"] * 3, "actual": [1.0, 0.5, 1.0]})
    path = tmp_path / "customers.parquet"
    Lake(tmp_path).write_file(path, rows)
    small = _DayFile(Lake(tmp_path), path, [])
    first = small.keys()
    assert first.equals(rows)
    assert small.keys() is first  # the next dates of the run ask again: no second read

    monkeypatch.setattr(anomalies, "KEEP_KEYS_ROWS", 2)  # three rows are now "large"
    large = _DayFile(Lake(tmp_path), path, [])
    first = large.keys()
    assert first.equals(rows)
    assert large.keys() is not first and large.kept_keys is None


def test_the_kept_customer_summaries_are_written_in_small_row_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "landing").mkdir()
    build(tmp_path / "lake")
    last = D0 + dt.timedelta(days=DAYS - 1)
    run(tmp_path, [last])
    whole = Lake(tmp_path / "lake").scan(ANOMALIES, [last]).collect()
    monkeypatch.setattr(anomalies, "STATE_ROW_GROUP", 4)
    run(tmp_path, [last])  # the run's date is summarised afresh, in groups of 4 rows
    kept = next((tmp_path / "lake").joinpath(*OBSERVER_STATE).glob(f"*/date={last}")) / "customers.parquet"
    meta = pq.ParquetFile(kept).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [4, 4, 2]  # 10 customers
    assert Lake(tmp_path / "lake").scan(ANOMALIES, [last]).collect().equals(whole)


def test_windows_numbered_in_one_query_write_the_files_of_a_day_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meterlake.transforms import observer

    dates = [D0 + dt.timedelta(days=i) for i in range(DAYS - 4, DAYS)]
    for name in ("at_once", "daywise"):
        (tmp_path / name / "landing").mkdir(parents=True)
        build(tmp_path / name / "lake")
    run(tmp_path / "at_once", dates)
    monkeypatch.setattr(observer, "WINDOW_ROWS_AT_ONCE", 0)  # every window a day at a time
    run(tmp_path / "daywise", dates)
    at_once = digest(tmp_path / "at_once" / "lake")
    assert len([k for k in at_once if k.startswith("marts/anomalies/")]) == 4
    assert at_once == digest(tmp_path / "daywise" / "lake")
    top = Lake(tmp_path / "at_once" / "lake").scan(ANOMALIES, [dates[-1]]).collect().sort("rank").row(0, named=True)
    assert top["meter_id"] == THIEF and top["observer_points"] > 0


def test_the_compiled_prefilter_writes_what_judging_everyone_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    last = [D0 + dt.timedelta(days=i) for i in (DAYS - 2, DAYS - 1)]
    asked: list[int] = []
    real = anomalies.worth_judging

    def recording(blocks: np.ndarray, *args: Any) -> np.ndarray:
        keep = real(blocks, *args)
        asked.append(int(keep.sum()))
        return keep

    monkeypatch.setattr(anomalies, "worth_judging", recording)
    for name, least in (("everyone", 10**9), ("compiled", 1)):
        monkeypatch.setattr(anomalies, "KERNEL_MIN_CUSTOMERS", least)
        (tmp_path / name / "landing").mkdir(parents=True)
        build(tmp_path / name / "lake")
        run(tmp_path / name, last)
    assert digest(tmp_path / "everyone" / "lake") == digest(tmp_path / "compiled" / "lake")
    # judging everyone: the 10 customers of each date; the compiled day part keeps only the thief
    assert asked == [CUSTOMERS, CUSTOMERS, 1, 1]


def test_a_kept_days_arrays_come_from_its_window_copy_made_once_from_the_parquet_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow as pa

    rows = pl.DataFrame(
        {
            "meter_id": ["C1", "C2", "C3", "C4"],
            "area_id": ["A1"] * 4,
            "actual": [1.0, 0.75, 1.0, 0.5],
            "b01": [1.5, 2.5, 3.5, 4.5],
            "b02": [0.5, 0.25, 0.0, 1.0],
            "zero_run": [0, 3, 96, 1],
            "rough": [0.1, 0.2, 0.0, 0.4],
        },
        schema_overrides={"b01": pl.Float32, "b02": pl.Float32, "zero_run": pl.Int16, "rough": pl.Float32},
    )
    lake = Lake(tmp_path)
    path = tmp_path / "customers.parquet"
    lake.write_file(path, rows, row_group_size=2)
    columns = ["b01", "b02", "zero_run", "rough"]
    made = count_calls(monkeypatch, anomalies, "_write_copy", lambda _l, cpath, *_a: cpath.name)

    def spans(kept: _DayFile) -> None:
        blocks, run_, rough = kept.arrays(1, 3)
        assert blocks.tolist() == [[2.5, 0.25], [3.5, 0.0]] and blocks.dtype == np.float32
        assert run_.tolist() == [3, 96] and run_.dtype == np.int16
        assert rough.tolist() == pytest.approx([0.2, 0.0])
        again = kept.arrays(2, 4)
        assert again[0].tolist() == [[3.5, 0.0], [4.5, 1.0]] and again[1].tolist() == [96, 1]
        assert kept.actual().to_list() == [1.0, 0.75, 1.0, 0.5]

    # a day kept without a copy (an older version's): the copy is made from the Parquet file once
    spans(_DayFile(lake, path, columns))
    assert made == ["customers.parquet"]
    copy = pa.ipc.open_file(tmp_path / "customers.arrow")
    assert copy.schema.names == ["actual", *columns] and copy.num_record_batches == 1
    assert copy.get_batch(0).column(1).to_pylist() == [1.5, 2.5, 3.5, 4.5]  # stored as the numbers, undecoded
    spans(_DayFile(lake, path, columns))  # the next process reads the copy
    assert made == ["customers.parquet"]
    # the Parquet file written again (another version's run, or one stopped before the copy): its
    # copy names the file it was made from, so it is made again, not read
    lake.write_file(path, rows.with_columns(pl.col("b01") * 2), row_group_size=2)
    doubled = _DayFile(lake, path, columns)
    assert doubled.arrays(0, 4)[0][:, 0].tolist() == [3.0, 5.0, 7.0, 9.0]
    assert made == ["customers.parquet", "customers.parquet"]


def test_a_kept_day_is_written_with_its_window_copy(tmp_path: Path) -> None:
    from meterlake.transforms import anomaly

    build(tmp_path / "lake")
    ctx = StageContext(Settings(landing=tmp_path / "landing", lake=tmp_path / "lake"), "t1", progress=lambda _m: None)
    rules = ctx.config(anomalies.CONFIG_NAME, anomaly.AnomalyConfig).observer
    day = D0 + dt.timedelta(days=DAYS - 1)
    anomalies._Observed(ctx, rules, [day])._summaries(day)
    folder = next((tmp_path / "lake").joinpath(*OBSERVER_STATE).glob(f"*/date={day}"))
    kept = pl.read_parquet(folder / "customers.parquet")
    copy = pl.read_ipc(folder / "customers.arrow")
    assert copy.columns == ["actual", *(f"b{i:02d}" for i in range(1, 25)), "zero_run", "rough"]
    assert copy.equals(kept.select(copy.columns)) and copy.height == CUSTOMERS
    assert anomalies._DayFile(Lake(tmp_path / "lake"), folder / "customers.parquet", copy.columns[1:])._copy()


def test_without_the_compiled_look_everyone_is_judged(monkeypatch: pytest.MonkeyPatch) -> None:
    from meterlake import observer_kernel

    def broken(*_args: Any) -> np.ndarray:
        raise RuntimeError("cannot cache function: no locator available")

    monkeypatch.setattr(observer_kernel, "worth_judging", broken)
    monkeypatch.setattr(anomalies, "KERNEL_MIN_CUSTOMERS", 1)
    monkeypatch.setattr(anomalies, "_KERNEL_FAILED", [])
    blocks = np.ones((3, 14, 24), dtype=np.float32)
    rules = ObserverRules()
    got = anomalies.worth_judging(blocks, np.zeros((3, 14)), np.zeros((3, 14)), np.zeros(14, dtype=np.int64), rules)
    assert got.tolist() == [True, True, True]
    assert anomalies._KERNEL_FAILED == ["RuntimeError: cannot cache function: no locator available"]
    # and it is not tried again in this process
    again = anomalies.worth_judging(
        blocks[:1], np.zeros((1, 14)), np.zeros((1, 14)), np.zeros(14, dtype=np.int64), rules
    )
    assert again.tolist() == [True]


def test_a_large_kept_day_gives_its_arrays_straight_from_its_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = pl.DataFrame(
        {
            "meter_id": [f"C{i:02d}" for i in range(10)],
            "area_id": ["A1"] * 10,
            "actual": [1.0] * 10,
            "b01": [float(i) for i in range(10)],
            "b02": [10.0 + i for i in range(10)],
            "zero_run": list(range(10)),
            "rough": [i / 8 for i in range(10)],
        },
        schema_overrides={"b01": pl.Float32, "b02": pl.Float32, "zero_run": pl.Int16, "rough": pl.Float32},
    )
    path = tmp_path / "customers.parquet"
    Lake(tmp_path).write_file(path, rows, row_group_size=3)
    monkeypatch.setattr(anomalies, "STATE_ROW_GROUP", 3)  # the copy's batches: rows 0-2, 3-5, 6-8, 9
    kept = _DayFile(Lake(tmp_path), path, ["b01", "b02", "zero_run", "rough"])
    for r0, r1 in [(0, 2), (2, 7), (7, 8), (8, 10)]:
        blocks, run_, rough = kept.arrays(r0, r1)
        assert blocks.dtype == np.float32 and blocks.tolist() == [[float(i), 10.0 + i] for i in range(r0, r1)]
        assert run_.dtype == np.int16 and run_.tolist() == list(range(r0, r1))
        assert rough.tolist() == [i / 8 for i in range(r0, r1)]
        assert min(kept.held_arrays) == r0 // 3  # the batches before the span are dropped


def test_kept_arrays_are_read_without_pandas(tmp_path: Path) -> None:
    import pyarrow as pa

    # numbers without nulls are viewed in place; a column with a null goes through
    # pyarrow's conversion (its null a NaN)
    viewed = anomalies._as_numpy(pa.array([1.5, 2.5, 4.0], type=pa.float32()).slice(1))
    assert viewed.dtype == np.float32 and viewed.tolist() == [2.5, 4.0]
    runs = anomalies._as_numpy(pa.array([3, 0, 7], type=pa.int16()))
    assert runs.dtype == np.int16 and runs.tolist() == [3, 0, 7]
    gaps = anomalies._as_numpy(pa.array([1.0, None], type=pa.float64()))
    assert gaps[0] == 1.0 and np.isnan(gaps[1])


def test_a_kept_days_roster_mark_follows_its_meters_and_areas(tmp_path: Path) -> None:
    rows = pl.DataFrame(
        {"meter_id": ["C1", "C2", "C3"], "area_id": ["A1", "A1", "A2"], "actual": [1.0, 0.5, 1.0], "b01": [1.0] * 3}
    )
    lake = Lake(tmp_path)
    paths = [tmp_path / f"{name}.parquet" for name in ("day1", "day2", "moved", "renamed")]
    lake.write_file(paths[0], rows)
    lake.write_file(paths[1], rows.with_columns(pl.col("actual") * 0.5, pl.col("b01") + 2.0))  # other figures
    lake.write_file(paths[2], rows.with_columns(area_id=pl.Series(["A1", "A2", "A2"])))  # C2 moved
    lake.write_file(paths[3], rows.with_columns(meter_id=pl.Series(["C1", "C2", "C4"])))
    marks = [_DayFile(lake, p, ["b01"]).roster() for p in paths]
    assert marks[0] == marks[1]
    assert marks[2] != marks[0] and marks[3] != marks[0]
    assert _DayFile(lake, paths[1], ["b01"]).actual().to_list() == [0.5, 0.25, 0.5]


def _assert_same_lake(lake: Path, alone: Path) -> None:
    """The marts and the observer's kept state of ``lake`` are those of ``alone``."""
    assert digest(lake) == digest(alone)
    assert _state_digest(lake) == _state_digest(alone)


def _state_digest(lake: Path) -> dict[str, str]:
    return {
        p.relative_to(lake).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(lake.joinpath(*OBSERVER_STATE).rglob("*.parquet"))
    }


def _count_summaries(monkeypatch: pytest.MonkeyPatch) -> list[dt.date]:
    """The days the stage summarises in this process."""
    return count_calls(monkeypatch, anomalies.observer, "day_summaries", lambda _c, _m, day, *_a, **_k: day)


def _built_and_one_run(tmp_path: Path, other: str) -> list[dt.date]:
    """Two lakes built alike, ``alone`` and ``other``; the stage run on ``alone`` for the
    last two days, which are returned."""
    last = [D0 + dt.timedelta(days=i) for i in (DAYS - 2, DAYS - 1)]
    for name in ("alone", other):
        (tmp_path / name / "landing").mkdir(parents=True)
        build(tmp_path / name / "lake")
    run(tmp_path / "alone", last)
    return last


def test_summaries_written_ahead_are_the_stages_own_and_are_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    last = _built_and_one_run(tmp_path, "ahead")
    seen = _count_summaries(monkeypatch)
    settings = Settings(landing=tmp_path / "ahead" / "landing", lake=tmp_path / "ahead" / "lake")
    ctx = StageContext(settings=settings, run_id="t1")
    # the run's own dates only (the earlier days of their windows are left to the stage)
    assert anomalies.summarise_ahead(ctx, last) == last
    assert seen == last
    seen.clear()
    pipeline.run_stage(settings, "anomalies", last, "t1", progress=lambda _m: None, observed_ahead=last)
    # the windows hold days 1..15; the two written ahead are read back, not summarised again
    assert sorted(seen) == [D0 + dt.timedelta(days=i) for i in range(1, DAYS - 2)]
    alone, ahead = tmp_path / "alone" / "lake", tmp_path / "ahead" / "lake"
    assert digest(ahead) == digest(alone)
    assert _state_digest(ahead) == _state_digest(alone)


def test_nothing_is_written_ahead_for_a_date_whose_window_is_too_short(tmp_path: Path) -> None:
    (tmp_path / "landing").mkdir()
    build(tmp_path / "lake")
    ctx = StageContext(settings=Settings(landing=tmp_path / "landing", lake=tmp_path / "lake"), run_id="t")
    # D0 + 5: a window of days 0..5, 6 days with curves, fewer than the 7 a customer needs
    assert anomalies.summarise_ahead(ctx, [D0 + dt.timedelta(days=5)]) == []
    assert _state_digest(tmp_path / "lake") == {}


def _count_judgements(monkeypatch: pytest.MonkeyPatch) -> list[dt.date]:
    """The dates the observer judges in this process."""
    return count_calls(monkeypatch, anomalies.observer, "indicator_of_days", lambda _d, _a, day, *_r, **_k: day)


@pytest.mark.parametrize(
    ("first", "beside"),
    [
        pytest.param([], [], id="in-turn"),
        pytest.param([], ["billing"], id="anomalies-beside-billing"),
        # a run from an earlier stage starts the helper there, held until loss
        pytest.param(["outages"], ["billing"], id="held-from-outages"),
    ],
)
def test_a_run_of_small_days_has_its_docs_helper_summarise_and_judge_beside_loss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: list[str], beside: list[str]
) -> None:
    last = _built_and_one_run(tmp_path, "run")
    started: list[bool] = []

    class Seen(pipeline.DocsHelper):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            started.append(self.holding)  # as started: held or not

    monkeypatch.setattr(pipeline, "DocsHelper", Seen)

    def nothing(stage: str) -> pipeline.StageRun:  # neither loss nor publish is this test's
        def run(ctx: StageContext, dates: list[dt.date]) -> StageResult:
            return StageResult(stage=stage)

        return run

    for stage in (*first, "loss", "publish", *beside):
        monkeypatch.setitem(pipeline.RUNNERS, stage, nothing(stage))
    seen = _count_summaries(monkeypatch)
    judged = _count_judgements(monkeypatch)
    settings = Settings(landing=tmp_path / "run" / "landing", lake=tmp_path / "run" / "lake", progress=False)
    record = pipeline.run(
        settings, last[0], last[-1], stages=[*first, "loss", "anomalies", *beside, "docs", "publish"], run_id="r1"
    )
    assert started == [bool(first)]
    assert record["status"] == "ok"
    # with billing in the run, anomalies runs beside it on a thread of its own
    assert ("beside" in record["stages"]["anomalies"]["details"]) == bool(beside)
    # the helper process wrote the two dates' summaries, judged both dates (summarising the 13
    # earlier days of their windows there): this process neither summarised nor judged
    assert seen == [] and judged == []
    alone, ran = tmp_path / "alone" / "lake", tmp_path / "run" / "lake"
    assert digest(ran) == digest(alone)
    assert _state_digest(ran) == _state_digest(alone)
    assert not any(Lake(ran).staging.glob("observer-ahead-*"))  # the judged files removed


def test_dates_judged_ahead_are_the_stages_own_and_are_read_instead_of_judged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    last = _built_and_one_run(tmp_path, "ahead")
    short = D0 + dt.timedelta(days=5)  # a window of days 0..5: 6 days, fewer than the 7 a customer needs
    settings = Settings(landing=tmp_path / "ahead" / "landing", lake=tmp_path / "ahead" / "lake")
    ctx = StageContext(settings=settings, run_id="t1")
    folder = tmp_path / "judged"
    folder.mkdir()
    fresh = anomalies.summarise_ahead(ctx, last)
    judged = anomalies.judge_ahead(ctx, [short, *last], fresh, folder)
    assert judged[short] is None
    assert sorted(judged) == [short, *last] and all(judged[d] == folder / f"{d}.arrow" for d in last)
    # each file holds the indicator the stage computes for its date
    rules = ctx.config(anomalies.CONFIG_NAME, anomalies.anomaly.AnomalyConfig).observer
    for d in last:
        expected = anomalies._Observed(ctx, rules, [], ()).at(d)
        assert expected is not None and expected["meter_id"].to_list() == [THIEF]  # who the observer flags
        assert_frame_equal(pl.read_ipc(folder / f"{d}.arrow"), expected)
    # the stage given them reads them: it judges nothing, and writes what a run alone writes
    asked: list[bool] = []

    def ahead() -> ObserverAhead:
        asked.append(True)
        return ObserverAhead(summarised=frozenset(fresh), judged=judged)

    seen = _count_judgements(monkeypatch)
    pipeline.run_stage(settings, "anomalies", last, "t1", progress=lambda _m: None, observer_ahead=ahead)
    assert asked == [True] and seen == []
    _assert_same_lake(tmp_path / "ahead" / "lake", tmp_path / "alone" / "lake")


def test_the_look_backs_are_judged_before_the_stage_waits_for_the_observers_work_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meterlake.transforms import anomaly

    last = _built_and_one_run(tmp_path, "ahead")
    settings = Settings(landing=tmp_path / "ahead" / "landing", lake=tmp_path / "ahead" / "lake")
    ctx = StageContext(settings=settings, run_id="t1")
    folder = tmp_path / "judged"
    folder.mkdir()
    fresh = anomalies.summarise_ahead(ctx, last)
    judged = anomalies.judge_ahead(ctx, last, fresh, folder)
    events: list[str] = []

    def ahead() -> ObserverAhead:  # the helper's work, waited for
        events.append("waited")
        return ObserverAhead(summarised=frozenset(fresh), judged=judged)

    indicators_at = anomaly.indicators_at

    def recorded(*args: Any, **kwargs: Any) -> dict[dt.date, pl.DataFrame]:
        observed = (args[6] if len(args) > 6 else kwargs.get("observed")) or {}
        events.append("look-backs" + (" with the observer" if any(v is not None for v in observed.values()) else ""))
        return indicators_at(*args, **kwargs)

    monkeypatch.setattr(anomaly, "indicators_at", recorded)
    pipeline.run_stage(settings, "anomalies", last, "t1", progress=lambda _m: None, observer_ahead=ahead)
    # the two dates' look-backs in one pass, without the observer, then the wait for the helper
    assert events == ["look-backs", "waited"]
    # the observer's indicator joined in after: the marts and state of a run that judged it itself
    _assert_same_lake(tmp_path / "ahead" / "lake", tmp_path / "alone" / "lake")


def test_the_dates_own_day_is_read_from_memory_while_its_file_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meterlake.transforms import anomaly, observer

    build(tmp_path / "lake")
    monkeypatch.setattr(anomalies, "KEEP_ARRAYS_ROWS", 4)  # ten customers are now a large day
    ctx = StageContext(Settings(landing=tmp_path / "landing", lake=tmp_path / "lake"), "t1", progress=lambda _m: None)
    rules = ctx.config(anomalies.CONFIG_NAME, anomaly.AnomalyConfig).observer
    day = D0 + dt.timedelta(days=DAYS - 1)
    seen = anomalies._Observed(ctx, rules, [day])
    fresh = seen.at(day)
    assert fresh is not None and fresh.height
    # the window's other days from their files, the date's own day never opened as a file
    assert day not in seen.files and day - dt.timedelta(days=1) in seen.files
    assert seen.writing is None  # the file written before the date's indicator is given
    kept = pl.read_parquet(seen._folder(day) / "customers.parquet")
    curves = Lake(tmp_path / "lake").scan(CURVES.clean, [day.isoformat()]).select("meter_id", *observer.SLOT_COLUMNS)
    members = Lake(tmp_path / "lake").scan(METER_DAILY, [day]).select(list(observer.MEMBER_COLUMNS))
    assert kept.equals(observer.day_summaries(curves, members, day, rules)[0])
    # the same date with every day read back from its file
    again = anomalies._Observed(ctx, rules, [])
    assert again.at(day).equals(fresh)  # type: ignore[union-attr]
    assert day in again.files


def test_a_small_days_own_summaries_are_written_at_once_and_kept_for_the_next_dates(tmp_path: Path) -> None:
    from meterlake.transforms import anomaly

    build(tmp_path / "lake")
    ctx = StageContext(Settings(landing=tmp_path / "landing", lake=tmp_path / "lake"), "t1", progress=lambda _m: None)
    rules = ctx.config(anomalies.CONFIG_NAME, anomaly.AnomalyConfig).observer
    day = D0 + dt.timedelta(days=DAYS - 2)
    seen = anomalies._Observed(ctx, rules, [day, day + dt.timedelta(days=1)])
    assert seen.at(day) is not None
    # ten customers: the day read as a kept file, its arrays held for the next date
    assert day in seen.files and list(seen.files[day].held_arrays) == [0]


def test_the_observers_arrays_are_handed_back_before_the_indicators(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meterlake import allocator

    (tmp_path / "landing").mkdir()
    build(tmp_path / "lake")
    order: list[str] = []
    count_calls(monkeypatch, allocator, "trim", lambda: order.append("trim"))
    count_calls(monkeypatch, anomalies.anomaly, "indicators_at", lambda *_a, **_k: order.append("indicators"))
    last = D0 + dt.timedelta(days=DAYS - 1)
    run(tmp_path, [last])
    # the observer's trim before the date's indicators, the stage's own at its end
    assert order == ["trim", "indicators", "trim"]


def test_window_copies_outside_the_newest_window_are_removed(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    base = lake.root.joinpath(*OBSERVER_STATE, "blocks=24_zero=0_floor=0.001")
    for i in range(1, 21):  # kept days 2026-03-01 .. 2026-03-20, each with its copy
        folder = base / f"date={dt.date(2026, 3, i).isoformat()}"
        folder.mkdir(parents=True)
        (folder / "customers.parquet").write_bytes(b"p")
        (folder / "customers.arrow").write_bytes(b"a")
    # a 14-day window of the newest day, 03-20, begins on 03-07: six copies go, the Parquet files stay
    assert anomalies.prune_window_copies(lake, 14) == 6
    left = sorted(p.parent.name for p in base.glob("date=*/customers.arrow"))
    assert left == [f"date=2026-03-{i:02d}" for i in range(7, 21)]
    assert len(list(base.glob("date=*/customers.parquet"))) == 20
    assert anomalies.prune_window_copies(lake, 14) == 0


def test_a_window_copys_blocks_are_viewed_in_the_batch_read(tmp_path: Path) -> None:
    """A batch read from a window copy gives its block columns as one (rows, blocks) array over
    the batch's memory (no copy); a batch held otherwise, its columns stacked: the same values."""
    import pyarrow as pa

    frame = pl.DataFrame(
        {
            "actual": [1.0, 1.0, 0.5],
            "b01": np.array([1.0, 2.0, 3.0], dtype=np.float32),
            "b02": np.array([4.0, 5.0, 6.0], dtype=np.float32),
            "b03": np.array([7.0, 8.0, 9.0], dtype=np.float32),
        }
    )
    path = tmp_path / "copy.arrow"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, frame.to_arrow().schema) as writer:
        writer.write_table(frame.to_arrow())
    batch = pa.ipc.open_file(pa.OSFile(str(path))).get_batch(0)
    view = anomalies._blocks_of([batch.column(j) for j in range(1, 4)])
    assert view.tolist() == [[1.0, 4.0, 7.0], [2.0, 5.0, 8.0], [3.0, 6.0, 9.0]]
    assert not view.flags.owndata and not view.flags.writeable  # the batch's own memory, read only
    del batch
    assert view[2].tolist() == [3.0, 6.0, 9.0]  # the view keeps the batch's memory alive
    # columns of two types, or with a null: stacked
    mixed = [pa.array([1.0, 2.0], pa.float32()), pa.array([3.0, 4.0], pa.float64())]
    assert anomalies._blocks_of(mixed).tolist() == [[1.0, 3.0], [2.0, 4.0]]
    gap = [pa.array([1.0, 2.0], pa.float32()), pa.array([3.0, None], pa.float32())]
    assert np.array_equal(anomalies._blocks_of(gap), [[1.0, 3.0], [2.0, np.nan]], equal_nan=True)


def test_the_first_date_is_judged_beside_the_look_backs_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the look-backs are read in ranges of meters, the first date is judged on a thread
    meanwhile (its window's days summarised there); the stage writes what it writes otherwise."""
    import threading

    last = _built_and_one_run(tmp_path, "soon")
    where: dict[dt.date, str] = {}

    def noted(_c: object, _m: object, day: dt.date, *_a: object, **_k: object) -> dt.date:
        where[day] = threading.current_thread().name
        return day

    count_calls(monkeypatch, anomalies.observer, "day_summaries", noted)
    judged: list[str] = []
    count_calls(
        monkeypatch,
        anomalies.observer,
        "indicator_of_days",
        lambda *_a, **_k: judged.append(threading.current_thread().name),
    )
    monkeypatch.setattr(anomalies, "CHUNK_ROWS", 40)  # the look-backs in ranges of meters
    monkeypatch.setattr(anomalies, "KEEP_ARRAYS_ROWS", 4)  # ten customers are now a large day
    run(tmp_path / "soon", last)
    first = [last[0] - dt.timedelta(days=i) for i in range(14)]  # the first date's window
    assert all(where[d].startswith("observer-soon") for d in first)
    assert where[last[1]] == threading.main_thread().name  # the next date's own day, as before
    assert judged[0].startswith("observer-soon") and judged[1:] == [threading.main_thread().name]
    _assert_same_lake(tmp_path / "soon" / "lake", tmp_path / "alone" / "lake")


def test_a_stage_that_fails_waits_for_the_date_judged_on_its_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first date judged from the stage's start: a stage failing before it needs the
    indicator returns only once the thread has ended (nothing of the stage writes after it)."""
    import threading

    from meterlake.stages import StageError

    (tmp_path / "landing").mkdir()
    build(tmp_path / "lake")
    monkeypatch.setattr(anomalies, "CHUNK_ROWS", 40)  # the look-backs in ranges of meters
    started = threading.Event()

    def failing(*_a: object, **_k: object) -> None:
        started.wait(10)  # the observer's thread has begun
        raise StageError("anomalies: the inputs could not be read")

    def noted(*_a: object, **_k: object) -> None:
        started.set()

    count_calls(monkeypatch, anomalies.observer, "day_summaries", noted)
    monkeypatch.setattr(anomalies, "_read_inputs", failing)
    day = D0 + dt.timedelta(days=DAYS - 1)
    with pytest.raises(StageError, match="could not be read"):
        run(tmp_path, [day])
    assert not [t for t in threading.enumerate() if t.name.startswith("observer-soon")]
    kept = next((tmp_path / "lake").joinpath(*OBSERVER_STATE).glob(f"*/date={day}"))
    assert (kept / "customers.parquet").exists() and (kept / "areas.parquet").exists()
