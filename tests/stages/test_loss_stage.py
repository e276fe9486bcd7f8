"""The loss stage on a hand-made lake: partitions written, months rebuilt from every day
the lake holds, reruns byte-identical, configuration from TOML."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from meterlake import pipeline
from meterlake.config import ConfigError, load
from meterlake.lake import Lake
from meterlake.schemas.area_loss_daily import AREA_LOSS_DAILY
from meterlake.schemas.area_loss_monthly import AREA_LOSS_MONTHLY
from meterlake.schemas.feeder_loss_daily import FEEDER_LOSS_DAILY
from meterlake.schemas.feeder_loss_monthly import FEEDER_LOSS_MONTHLY
from meterlake.schemas.loss_diagnosis import LOSS_DIAGNOSIS
from meterlake.schemas.loss_worklist_monthly import ACTIONS, LOSS_WORKLIST_MONTHLY
from meterlake.schemas.meter_daily import METER_DAILY
from meterlake.settings import Settings
from meterlake.stages import StageError
from meterlake.stages.loss import LossConfig
from meterlake.transforms import balance, loss
from meterlake.transforms.loss_diagnosis import DiagnosisRules

HELD = [dt.date(2026, 1, 29), dt.date(2026, 1, 30), dt.date(2026, 1, 31), dt.date(2026, 2, 1), dt.date(2026, 2, 2)]
JAN31, FEB1 = HELD[2], HELD[3]


def meter_day(date: dt.date, i: int) -> pl.DataFrame:
    """A feeder with a head, two areas (A: 4% loss, B: 12%) and a 10 kV customer.

    Day i of the fixture adds i kWh to A's customer so that days differ.
    """
    rows = [
        # meter_id, role, area_id, kwh
        ("H", "feeder_head", None, 500.0 + i),
        ("MA", "area_master", "A", 100.0 + i),
        ("MB", "area_master", "B", 200.0),
        ("CA", "customer", "A", 96.0 + i),
        ("CB", "customer", "B", 176.0),
        ("D", "customer", None, 180.0),
    ]
    n = len(rows)
    cols: dict[str, list[Any]] = {c: [None] * n for c in METER_DAILY.names}
    cols.update(
        date=[date] * n,
        meter_id=[r[0] for r in rows],
        role=[r[1] for r in rows],
        area_id=[r[2] for r in rows],
        kwh=[r[3] for r in rows],
        customer_id=[("U" + r[0]) if r[1] == "customer" else None for r in rows],
        feeder_id=["F1"] * n,
        multiplier=[1.0] * n,
        reverse_kwh=[0.0] * n,
        quality=["actual"] * n,
        pv_capacity_kw=[0.0 if r[1] == "customer" else None for r in rows],  # a v2 archive: no PV
    )
    return pl.DataFrame(cols, schema=METER_DAILY.schema)


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    lk = Lake(root)
    for i, d in enumerate(HELD):
        lk.write_partition(METER_DAILY, d, meter_day(d, i))
    return root


def run(lake: Path, dates, config_dir: Path | None = None, run_id: str = "t1"):
    settings = Settings(landing=lake.parent / "landing", lake=lake, config_dir=config_dir)
    return pipeline.run_stage(settings, "loss", dates, run_id, progress=lambda _m: None)


def digest(lake: Path) -> dict[str, str]:
    return {
        p.relative_to(lake).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((lake / "marts").rglob("*.parquet"))
    }


def test_writes_daily_for_the_dates_and_months_from_every_day_held(lake: Path):
    result = run(lake, [JAN31, FEB1])
    lk = Lake(lake)
    assert lk.partitions(AREA_LOSS_DAILY) == ["2026-01-31", "2026-02-01"]
    assert lk.partitions(FEEDER_LOSS_DAILY) == ["2026-01-31", "2026-02-01"]
    assert lk.partitions(AREA_LOSS_MONTHLY) == ["2026-01", "2026-02"]
    assert lk.partitions(FEEDER_LOSS_MONTHLY) == ["2026-01", "2026-02"]
    assert lk.partitions(LOSS_DIAGNOSIS) == ["2026-01-31", "2026-02-01"]

    # January from the 29th, 30th and 31st although the run was for the 31st only:
    # A's supply 100+101+102 = 303, sales 96+97+98 = 291
    jan = lk.scan(AREA_LOSS_MONTHLY, ["2026-01"]).collect()
    a = jan.filter(pl.col("area_id") == "A").select("days", "supply_kwh", "sales_kwh", "loss_kwh", "status").row(0)
    assert a == (3, 303.0, 291.0, 12.0, "normal")
    b = jan.filter(pl.col("area_id") == "B").select("loss_rate", "status").row(0)
    assert b == (pytest.approx(24 / 200), "high")
    # the feeder: head 500+i against 300+i masters and 180 direct: 20 kWh loss a day
    feb = lk.scan(FEEDER_LOSS_MONTHLY, ["2026-02"]).collect()
    assert feb.select("days", "supply_kwh", "sales_kwh", "loss_kwh").row(0) == (2, 1007.0, 967.0, 40.0)

    assert result.rows == {
        "area_loss_daily": 4,
        "feeder_loss_daily": 2,
        "area_loss_monthly": 4,
        "feeder_loss_monthly": 2,
        "loss_diagnosis": 0,
        "loss_worklist_monthly": 2,
    }
    assert result.details["status"]["area_loss_daily"] == {"high": 2, "normal": 2}
    # B is high in both months: one work item a month, the second its second month in a row
    work = lk.scan(LOSS_WORKLIST_MONTHLY).collect()
    assert work.select("month", "area_id", "issue", "consecutive_months", "action_en").rows() == [
        ("2026-01", "B", "high", 1, ACTIONS["high"][1]),
        ("2026-02", "B", "high", 2, ACTIONS["high"][1]),
    ]
    # at stake in January: loss 3 x 24 = 72 less 10% of 3 x 200 supply = 12 kWh
    assert work.filter(pl.col("month") == "2026-01")["kwh_at_stake"].item() == pytest.approx(12.0)


def test_daily_files_read_back_as_the_transform_computed_them(lake: Path):
    run(lake, [JAN31])
    # CONTRACT §3's way of reading a mart: a Hive glob with the date typed from the path
    back = pl.scan_parquet(f"{lake}/marts/area_loss_daily/**/*.parquet", hive_partitioning=True).collect()
    want = loss.area_loss_daily(meter_day(JAN31, 2))
    assert_frame_equal(back.select(AREA_LOSS_DAILY.names), want)


def test_rerun_writes_identical_files(lake: Path):
    run(lake, HELD, run_id="first")
    before = digest(lake)
    run(lake, HELD, run_id="second")
    assert digest(lake) == before
    ours = [k for k in before if not k.startswith("marts/meter_daily/")]
    assert len(ours) == 5 + 5 + 2 + 2 + 5 + 2  # daily x2, monthly x2, diagnosis, work list


def test_a_small_zone_reads_each_day_once_and_its_windows_from_memory(
    lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The windows of a small zone come from the days read for the daily figures: the
    same files as windows scanned from the lake, with one meter_daily scan fewer a pass."""
    import shutil

    from meterlake.stages import loss as stage

    scans: list[int] = []
    plain = Lake.scan

    def counted(self: Lake, table: Any, values: Any = None, key: Any = None) -> pl.LazyFrame:
        values = None if values is None else list(values)
        if table is METER_DAILY:
            scans.append(len(values or []))
        return plain(self, table, values, key)

    monkeypatch.setattr(Lake, "scan", counted)
    other = tmp_path / "scanned"
    shutil.copytree(lake, other)
    result = run(lake, HELD)
    in_memory = list(scans)
    scans.clear()
    monkeypatch.setattr(stage, "WINDOW_ROWS_IN_MEMORY", 0)
    run(other, HELD)
    assert digest(other) == digest(lake)
    windows = len(result.details["diagnosis"]["windows"])
    assert windows == len(HELD)
    # the same scans and the balance's days of each read (from memory where kept): 29 |
    # 30-31 | 1-2 (a month's first read is one day, the later ones as many as its rows
    # suggest); the windows read the member rows kept as the days were read, not meter_daily
    assert sorted(scans) == sorted([*in_memory, 1, 2, 2])
    assert sorted(p.parent.name for p in other.joinpath("_state", "diagnosis").glob("*/members.parquet")) == [
        f"date={d}" for d in HELD
    ]
    assert not lake.joinpath("_state", "diagnosis").exists()  # held in memory: nothing kept


def test_reads_of_many_days_and_passes_of_many_windows_and_ranges_of_areas_write_what_one_at_a_time_does(
    lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from meterlake.stages import loss as stage

    # B's master filed at 50 (250/5) though its CT is 200/5: it reads 240 kWh of a true
    # 192, B's rate 0.267 every day, 0.083 with 40: a multiplier suspect in every
    # window of 3 days
    mb = pl.col("meter_id") == "MB"
    for d in HELD:
        day = Lake(lake).scan(METER_DAILY, [d]).collect()
        day = day.with_columns(
            kwh=pl.when(mb).then(240.0).otherwise(pl.col("kwh")),
            multiplier=pl.when(mb).then(50.0).otherwise(pl.col("multiplier")),
        )
        Lake(lake).write_partition(METER_DAILY, d, day)
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "loss.toml").write_text("[diagnosis]\nwindow_days = 3\nmin_days = 3\n", encoding="utf-8")
    run(lake, HELD, config_dir=conf)
    files = sorted(p for p in lake.rglob("*.parquet") if "_meta" not in p.parts)
    together = {p: p.read_bytes() for p in files}
    found = Lake(lake).scan(LOSS_DIAGNOSIS).collect()
    assert found.select("date", "meter_id", "kind").rows() == [(d, "MB", "multiplier_suspect") for d in HELD[2:]]
    calls: list[int] = []
    inner = stage.diagnose_windows
    monkeypatch.setattr(stage, "DAY_ROWS_PER_READ", 1)
    monkeypatch.setattr(stage, "WINDOW_ROWS_PER_PASS", 1)
    monkeypatch.setattr(stage, "DIAGNOSIS_ROWS_PER_RANGE", 1)  # each area's tests alone

    def counted(rows: Any, ends: list[dt.date], *a: Any, **k: Any) -> pl.DataFrame:
        calls.append(len(ends))
        return inner(rows, ends, *a, **k)

    monkeypatch.setattr(stage, "diagnose_windows", counted)
    run(lake, HELD, config_dir=conf, run_id="t2")
    assert calls == [1] * len(HELD)  # one window a pass
    assert sorted(p for p in lake.rglob("*.parquet") if "_meta" not in p.parts) == files
    assert all(p.read_bytes() == together[p] for p in files)


#: a three-day diagnosis window: the fixture's five days hold three windows' worth
WINDOW3 = "[diagnosis]\nwindow_days = 3\nmin_days = 3\n"


def _master_misfiled(lake: Path, days: list[dt.date], multiplier: float = 50.0) -> None:
    """B's master filed at ``multiplier`` though its CT is 200/5 (40): at 50 it reads 240
    kWh of a true 192 (B's rate (240 - 176) / 240 = 0.266667 every day, (192 - 176) / 192
    = 0.083333 at 40)."""
    mb = pl.col("meter_id") == "MB"
    for d in days:
        day = Lake(lake).scan(METER_DAILY, [d]).collect()
        day = day.with_columns(
            kwh=pl.when(mb).then(192.0 * multiplier / 40.0).otherwise(pl.col("kwh")),
            multiplier=pl.when(mb).then(multiplier).otherwise(pl.col("multiplier")),
        )
        Lake(lake).write_partition(METER_DAILY, d, day)


def _conf(tmp_path: Path, text: str, name: str = "conf") -> Path:
    conf = tmp_path / name
    conf.mkdir()
    (conf / "loss.toml").write_text(text, encoding="utf-8")
    return conf


def _kept(lake: Path) -> dict[str, tuple[int, int, int]]:
    """The kept member files by day, with their identities."""
    from meterlake.lake import file_identity

    folder = lake / "_state" / "diagnosis"
    return {p.parent.name: file_identity(p) for p in sorted(folder.glob("*/members.parquet"))}


@pytest.fixture
def too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    """Days not held in memory: the windows read the kept member rows."""
    from meterlake.stages import loss as stage

    monkeypatch.setattr(stage, "WINDOW_ROWS_IN_MEMORY", 0)


def test_kept_member_rows_by_hand_and_a_window_of_three_from_them(lake: Path, tmp_path: Path, too_large: None):
    _master_misfiled(lake, HELD)
    conf = _conf(tmp_path, WINDOW3)
    run(lake, HELD, config_dir=conf)
    assert list(_kept(lake)) == [f"date={d}" for d in HELD]
    # JAN31 is the fixture's third day (i = 2): A's master 102, its customer 98; the feeder
    # head and the customer without an area are no members; sorted by area, then meter
    day = pl.read_parquet(lake / "_state" / "diagnosis" / f"date={JAN31}" / "members.parquet")
    assert day.select("area_id", "meter_id", "role", "multiplier", "_kwh", "_rev", "_present").rows() == [
        ("A", "CA", "customer", 1.0, 98.0, 0.0, True),
        ("A", "MA", "area_master", 1.0, 102.0, 0.0, True),
        ("B", "CB", "customer", 1.0, 176.0, 0.0, True),
        ("B", "MB", "area_master", 50.0, 240.0, 0.0, True),
    ]
    found = Lake(lake).scan(LOSS_DIAGNOSIS, [FEB1]).collect().row(0, named=True)
    assert (found["meter_id"], found["kind"], found["days"]) == ("MB", "multiplier_suspect", 3)
    evidence = json.loads(found["evidence"])
    assert evidence["candidate_multiplier"] == 40.0
    assert evidence["loss_rate_before"] == 0.266667  # (240 - 176) / 240, each of the 3 days
    assert evidence["loss_rate_after"] == 0.083333  # (192 - 176) / 192
    assert evidence["meter_kwh"] == 720.0  # 3 x 240


def test_a_later_run_reads_the_kept_days_and_writes_what_meter_daily_gives(
    lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, too_large: None
):
    import shutil

    from meterlake.stages import loss as stage

    _master_misfiled(lake, HELD)
    conf = _conf(tmp_path, WINDOW3)
    fresh = tmp_path / "fresh"
    shutil.copytree(lake, fresh)
    run(lake, HELD[:-1], config_dir=conf)  # its months' days are kept, FEB2 among them
    before = _kept(lake)
    # the next morning's validate writes FEB2's meter_daily again (a new file)
    Lake(lake).write_partition(METER_DAILY, HELD[-1], Lake(lake).scan(METER_DAILY, [HELD[-1]]).collect())
    kept: list[list[dt.date]] = []
    inner = stage._keep_members

    def counted(lk: Lake, days: list[dt.date], rows: pl.LazyFrame) -> None:
        kept.append([d for d in days if not stage._members_kept(lk, d)])
        inner(lk, days, rows)

    monkeypatch.setattr(stage, "_keep_members", counted)
    run(lake, [HELD[-1]], config_dir=conf, run_id="t2")
    # the new day is kept again, the others are read as they were kept
    assert [d for days in kept for d in days] == [HELD[-1]]
    after = _kept(lake)
    assert [k for k in before if after[k] != before[k]] == [f"date={HELD[-1]}"]
    # the same files as a lake without kept days, every day read from meter_daily
    monkeypatch.setattr(stage, "WINDOW_ROWS_IN_MEMORY", 10**9)
    run(fresh, HELD, config_dir=conf)
    assert not (fresh / "_state" / "diagnosis").exists()
    assert digest(lake) == digest(fresh)


def test_a_rebuilt_meter_daily_day_a_torn_state_and_changed_settings(
    lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, too_large: None
):
    import shutil

    from meterlake.stages import loss as stage

    conf = _conf(tmp_path, WINDOW3)
    run(lake, HELD, config_dir=conf)
    first = _kept(lake)

    def same_as_fresh(config: Path) -> None:
        fresh = tmp_path / f"fresh-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(lake, fresh)
        shutil.rmtree(fresh / "_state" / "diagnosis")
        shutil.rmtree(fresh / "marts" / LOSS_DIAGNOSIS.name)
        run(fresh, HELD, config_dir=config)
        assert digest(lake) == digest(fresh)

    # a rerun rebuilt JAN30's meter_daily (B's master misfiled from then on): the day is kept
    # again, and FEB1's window (JAN30 .. FEB1) finds the fault on its three days
    _master_misfiled(lake, HELD[1:])
    run(lake, [FEB1], config_dir=conf, run_id="t2")
    now = _kept(lake)
    assert [k for k in first if now[k] != first[k]] == [f"date={d}" for d in HELD[1:]]
    found = Lake(lake).scan(LOSS_DIAGNOSIS, [FEB1]).collect()
    assert found.select("meter_id", "kind", "days").rows() == [("MB", "multiplier_suspect", 3)]
    run(lake, HELD, config_dir=conf, run_id="t3")
    same_as_fresh(conf)

    # a kept file without the stamps in its footer (an earlier version's, its stamp beside
    # it in stamp.json), and one that is not Parquet (cut off): each day is kept again from
    # meter_daily, not read as it is, and the earlier version's stamp file goes
    folder = lake / "_state" / "diagnosis"
    good = (folder / f"date={JAN31}" / "members.parquet").read_bytes()
    Lake(lake).write_file(folder / f"date={JAN31}" / "members.parquet", pl.DataFrame({"area_id": ["Z"]}))
    (folder / f"date={JAN31}" / "stamp.json").write_text("{}", encoding="utf-8")
    (folder / f"date={FEB1}" / "members.parquet").write_bytes(good[: len(good) // 2])
    assert not stage._members_kept(Lake(lake), JAN31) and not stage._members_kept(Lake(lake), FEB1)
    run(lake, HELD, config_dir=conf, run_id="t4")
    assert (folder / f"date={JAN31}" / "members.parquet").read_bytes() == good
    assert not (folder / f"date={JAN31}" / "stamp.json").exists()
    assert stage._members_kept(Lake(lake), JAN31) and stage._members_kept(Lake(lake), FEB1)
    same_as_fresh(conf)

    # changed settings (thresholds, the window): nothing of them is kept, so the kept days
    # are read as they are and the files are those of a lake without them
    kept = _kept(lake)
    other = _conf(tmp_path, "[area]\nhigh_above = 0.2\n\n[diagnosis]\nwindow_days = 4\nmin_days = 3\n", "other")
    run(lake, HELD, config_dir=other, run_id="t5")
    assert _kept(lake) == kept
    same_as_fresh(other)


def test_a_daily_run_fits_the_balance_on_its_date_unless_told_weekly_ends_only(
    lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from meterlake.stages import loss as stage

    fitted: list[dt.date] = []

    def counted(ctx: Any, cfg: Any, end: dt.date, frame: pl.DataFrame, *a: Any) -> pl.DataFrame:
        fitted.append(end)
        return frame

    monkeypatch.setattr(stage, "_with_balance", counted)
    weekly = [d for d in HELD if d.toordinal() % 7 == 0]
    assert weekly == [dt.date(2026, 2, 1)]  # 739,648 = 7 x 105,664
    for d in HELD:
        run(lake, [d], run_id=f"d{d}")
    assert fitted == HELD  # each daily run's date is its last window end
    fitted.clear()
    conf = _conf(tmp_path, "[diagnosis.balance]\non_last_date = false\n")
    for d in HELD:
        run(lake, [d], config_dir=conf, run_id=f"w{d}")
    assert fitted == weekly
    fitted.clear()
    run(lake, HELD, config_dir=conf, run_id="backfill")  # a backfill fits the same ends
    assert fitted == weekly


def test_a_date_without_meter_daily_is_noted_not_written(lake: Path):
    result = run(lake, [dt.date(2026, 2, 3)])
    assert "no meter_daily partition for 1 date(s) (2026-02-03 .. 2026-02-03)" in result.notes[0]
    assert Lake(lake).partitions(AREA_LOSS_DAILY) == []
    # its month is still rebuilt from the days the lake holds
    assert Lake(lake).partitions(AREA_LOSS_MONTHLY) == ["2026-02"]


def test_thresholds_and_cadence_from_a_user_config(lake: Path, tmp_path: Path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "loss.toml").write_text(
        '[area]\nhigh_above = 0.03\n\n[[area_class]]\nname = "lenient"\narea_ids = ["B"]\nhigh_above = 0.15\n\n'
        '[diagnosis]\ncadence = "monthly"\n',
        encoding="utf-8",
    )
    run(lake, [JAN31, FEB1], config_dir=conf)
    daily = Lake(lake).scan(AREA_LOSS_DAILY, [JAN31]).collect()
    # A: 4 / 102 = 0.039 > 0.03 -> high; B: 0.12 <= its class's 0.15 -> normal
    assert daily.select("area_id", "area_class", "status").rows() == [
        ("A", "default", "high"),
        ("B", "lenient", "normal"),
    ]
    # monthly cadence: one window per month, ending at the month's latest day held
    assert Lake(lake).partitions(LOSS_DIAGNOSIS) == ["2026-01-31", "2026-02-02"]


def test_shipped_config_matches_the_code_defaults():
    cfg = load("loss", LossConfig)
    assert cfg.rules() == loss.LossRules()
    assert cfg.diagnosis_rules() == DiagnosisRules()
    assert cfg.diagnosis.cadence == "daily"


def test_the_balance_settings_reach_its_rules(tmp_path: Path):
    shipped = load("loss", LossConfig).diagnosis
    # every setting the shipped file names is the code's default
    assert shipped.balance.rules() == balance.BalanceRules()
    (tmp_path / "loss.toml").write_text(
        "[diagnosis.balance]\nnight_spread_floor = 0.8\nclean_passes = 1\ndays_t_cap = 2.5\n", encoding="utf-8"
    )
    custom = load("loss", LossConfig, config_dir=tmp_path).diagnosis
    rules = custom.balance.rules()
    assert (rules.night_spread_floor, rules.clean_passes, rules.days_t_cap) == (0.8, 1, 2.5)


def test_each_setting_is_read_once_into_the_transforms_models(tmp_path: Path):
    # the stage's settings are the transforms' models: one key of each concern reaches
    # the rules the transforms read, the rest keep the models' defaults
    (tmp_path / "loss.toml").write_text(
        "[feeder]\nhigh_above = 0.08\n[pv]\nquiet_days = 3\n"
        "[diagnosis]\nmin_days = 12\n[diagnosis.theft]\nmax_per_area = 5\n"
        "[diagnosis.multiplier]\nneighbours = 2\n[diagnosis.mapping]\nmin_corr = 0.7\n"
        "[diagnosis.balance]\nevery_days = 3\nmin_slots = 40\n",
        encoding="utf-8",
    )
    cfg = load("loss", LossConfig, config_dir=tmp_path)
    rules, diag = cfg.rules(), cfg.diagnosis_rules()
    assert (rules.feeder.high_above, rules.area.high_above, rules.pv.quiet_days) == (0.08, 0.10, 3)
    assert type(diag) is DiagnosisRules
    assert (diag.min_days, diag.theft.max_per_area, diag.multiplier.neighbours, diag.mapping.min_corr) == (
        12,
        5,
        2,
        0.7,
    )
    assert (diag.window_days, diag.theft.min_score, diag.mapping.max_own_corr) == (30, 0.4, -0.4)
    bal = cfg.diagnosis.balance.rules()
    assert type(bal) is balance.BalanceRules and cfg.diagnosis.balance.every_days == 3
    assert (bal.min_slots, bal.window_days) == (40, 14)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "[area]\nhigh_above = -0.5\n", "negative_below (0.0) must not exceed high_above (-0.5)", id="bands-crossed"
        ),
        pytest.param(
            "[area]\nmin_actual_share = 98\n",
            "area.min_actual_share: Input should be less than or equal to 1",
            id="share-not-fraction",
        ),
        pytest.param('[[area_class]]\nname = "x"\n', "give area_ids or area_id_pattern", id="class-matches-nothing"),
        pytest.param('[diagnosis]\ncadence = "weekly"\n', "diagnosis.cadence", id="unknown-cadence"),
        pytest.param("[area]\nhigh = 0.1\n", "area.high: Extra inputs are not permitted", id="misspelt-key"),
    ],
)
def test_config_errors_name_the_file_and_field(tmp_path: Path, text: str, message: str):
    (tmp_path / "loss.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"loss\.toml") as err:
        load("loss", LossConfig, tmp_path)
    assert message in str(err.value)


def test_negative_energy_stops_the_stage_with_one_line(lake: Path):
    bad = meter_day(FEB1, 3).with_columns(
        pl.when(pl.col("meter_id") == "CA").then(-5.0).otherwise(pl.col("kwh")).alias("kwh")
    )
    Lake(lake).write_partition(METER_DAILY, FEB1, bad)
    with pytest.raises(StageError, match=r"^loss: meter_daily: expected kwh .* CA on 2026-02-01") as err:
        run(lake, [FEB1])
    assert "\n" not in str(err.value)


def test_a_pending_day_is_written_but_left_out_of_the_month(lake: Path):
    # validate writes the newest freeze date with every value missing (its kWh needs the
    # next day's register): the daily file says so, the month runs through Feb 2
    feb3 = dt.date(2026, 2, 3)
    pending = meter_day(feb3, 5).with_columns(
        pl.lit(None, pl.Float64).alias("kwh"),
        pl.lit(None, pl.Float64).alias("reverse_kwh"),
        pl.lit("missing").alias("quality"),
    )
    Lake(lake).write_partition(METER_DAILY, feb3, pending)
    result = run(lake, [feb3])
    daily = Lake(lake).scan(AREA_LOSS_DAILY, [feb3]).collect()
    assert daily.select("area_id", "status", "reason").rows() == [
        ("A", "uncomputable", "master_missing,customer_missing,collection_incomplete"),
        ("B", "uncomputable", "master_missing,customer_missing,collection_incomplete"),
    ]
    feb = Lake(lake).scan(AREA_LOSS_MONTHLY, ["2026-02"]).collect()
    assert feb.select("area_id", "days", "status").rows() == [("A", 2, "normal"), ("B", 2, "high")]
    assert any("left out of months and windows: 2026-02-03" in n for n in result.notes)
    assert result.details["pending_days"] == ["2026-02-03"]


def test_a_late_closing_reading_rebuilds_the_month_without_substitution(lake: Path):
    # CA's register frozen on 1 February is late: validate writes its 31 January without a
    # value. CA's mean over its other January days: (96 + 97) / 2 = 96.5 kWh.
    lk = Lake(lake)
    late = meter_day(JAN31, 2).with_columns(
        pl.when(pl.col("meter_id") == "CA").then(None).otherwise(pl.col("kwh")).alias("kwh"),
        pl.when(pl.col("meter_id") == "CA").then(pl.lit("missing")).otherwise(pl.col("quality")).alias("quality"),
    )
    lk.write_partition(METER_DAILY, JAN31, late)
    run(lake, [JAN31])
    cols = ("sales_kwh", "substituted_kwh", "coverage", "status")
    jan = lk.scan(AREA_LOSS_MONTHLY, ["2026-01"]).collect().filter(pl.col("area_id") == "A")
    # sales 96 + 97 + 96.5 = 289.5; one of 3 customer meter-days substituted: coverage 2/3
    assert jan.select(cols).row(0) == (289.5, 96.5, 2 / 3, "uncomputable")
    # the reading arrives: validate rewrites 31 January (98 kWh) and the run for that date
    # rebuilds January from the lake: the real figures, nothing substituted
    lk.write_partition(METER_DAILY, JAN31, meter_day(JAN31, 2))
    run(lake, [JAN31])
    jan = lk.scan(AREA_LOSS_MONTHLY, ["2026-01"]).collect().filter(pl.col("area_id") == "A")
    assert jan.select(cols).row(0) == (291.0, 0.0, 1.0, "normal")


def test_a_v1_archive_infers_pv_from_history_and_says_so(lake: Path):
    # no pv_capacity_kw anywhere (a v1 archive): CA exports from its first day, so it is
    # taken to have PV; its 2 kWh of export a day count as A's supply
    lk = Lake(lake)
    for i, d in enumerate(HELD):
        day = meter_day(d, i).with_columns(
            pl.when(pl.col("meter_id") == "CA").then(2.0).otherwise(0.0).alias("reverse_kwh"),
            pl.lit(None, pl.Float64).alias("pv_capacity_kw"),
        )
        lk.write_partition(METER_DAILY, d, day)
    result = run(lake, [JAN31])
    jan = lk.scan(AREA_LOSS_MONTHLY, ["2026-01"]).collect().filter(pl.col("area_id") == "A")
    assert jan.select("pv_export_kwh", "supply_kwh", "pv_basis").row(0) == (6.0, 309.0, "inferred")
    # CA, CB and the directly fed D: the customers the archive says nothing of
    assert result.details["pv_inferred_meters"] == 3


def _evening_loads(rng: Any, n_days: int) -> dict[str, Any]:
    """The true 96-slot loads of 12 customers c0..c11 over ``n_days``: one evening-peaked
    shape, each customer's own size (5-15 kWh a day) and lognormal slot noise."""
    import numpy as np

    h = (np.arange(96) + 0.5) / 4
    shape = 0.3 + np.exp(-0.5 * ((h - 20) / 1.7) ** 2)
    shape /= shape.sum()
    return {f"c{i}": rng.uniform(5, 15) * shape[None, :] * rng.lognormal(0, 0.4, (n_days, 96)) for i in range(12)}


def _five_thief_areas(rng: Any, n_days: int) -> dict[str, tuple[str, Any, dict[str, Any]]]:
    """Areas A..E of :func:`_evening_loads`' 12 customers each, for :func:`_balance_areas`:
    customer c0 of each records 40 % of its use, the master sees the true use and 3 % of
    technical loss."""
    import numpy as np

    areas = {}
    for a in "ABCDE":
        true = {f"{a}{m}": v for m, v in _evening_loads(rng, n_days).items()}
        rec = {m: (0.4 * v if m == f"{a}c0" else v) for m, v in true.items()}
        areas[a] = (f"{a}M", np.sum(list(true.values()), axis=0) * 1.03, rec)
    return areas


def _balance_zone(root: Path, days: list[dt.date], master: Any, rec: dict[str, Any]) -> Lake:
    """A lake of one area "A": master meter M's curve ``master[k]`` and customers' recorded
    curves ``rec[m][k]`` on each of ``days``, with their meter_daily rows."""
    return _balance_areas(root, days, {"A": ("M", master, rec)})


def _balance_areas(root: Path, days: list[dt.date], areas: dict[str, tuple[str, Any, dict[str, Any]]]) -> Lake:
    """A lake of areas {area: (master meter, its curves, {customer: recorded curves})}:
    on each of ``days`` (k) the curves ``[k]`` and their meter_daily rows."""
    from meterlake.schemas.curves import LANDING as CURVES

    lk = Lake(root)
    for k, d in enumerate(days):
        series: dict[str, Any] = {}
        area, role, customer = [], [], []
        for a, (m, master, rec) in areas.items():
            series |= {m: master[k], **{c: v[k] for c, v in rec.items()}}
            area += [a] * (len(rec) + 1)
            role += ["area_master"] + ["customer"] * len(rec)
            customer += [None] + ["U" + c for c in rec]
        lk.write_partition(
            CURVES.clean,
            d,
            pl.DataFrame(
                {"meter_id": list(series), "data_date": [d] * len(series)}
                | {f"p{s + 1}": [float(v[s]) for v in series.values()] for s in range(96)}
                | {
                    "source_file": ["f"] * len(series),
                    "source_line": [1] * len(series),
                    "delivered_at": [None] * len(series),
                }
            ),
        )
        n = len(series)
        cols: dict[str, list[Any]] = {c: [None] * n for c in METER_DAILY.names}
        cols.update(
            date=[d] * n,
            meter_id=list(series),
            role=role,
            area_id=area,
            kwh=[float(v.sum()) for v in series.values()],
            customer_id=customer,
            feeder_id=["F1"] * n,
            multiplier=[1.0] * n,
            reverse_kwh=[0.0] * n,
            quality=["actual"] * n,
            pv_capacity_kw=[None if r == "area_master" else 0.0 for r in role],
        )
        lk.write_partition(METER_DAILY, d, pl.DataFrame(cols, schema=METER_DAILY.schema))
    return lk


def test_the_balance_keeps_each_day_and_a_window_reads_the_kept_days(tmp_path: Path):
    """Seven days of curves in an area of 12 households, c0 recording 40% of its use.

    The stage keeps each run date's statistics under LAKE/_state/balance/; a later run
    for the last date alone fits the window from the kept days (left as they were) and
    names c0 with the unrecorded kWh the curves imply.
    """
    import numpy as np
    import pyarrow.parquet as pq

    from meterlake.schemas.curves import LANDING as CURVES
    from meterlake.stages.loss import _state_files

    days = [dt.date(2026, 3, 1) + dt.timedelta(days=k) for k in range(7)]
    true = _evening_loads(np.random.default_rng(3), len(days))
    rec = {m: (0.4 * v if m == "c0" else v) for m, v in true.items()}
    master = np.sum(list(true.values()), axis=0) * 1.03  # 3% technical loss on the true load
    lk = _balance_zone(tmp_path / "lake", days, master, rec)
    run(lk.root, days[:-1])
    kept = {d: _state_files(lk, d)[1].stat().st_mtime_ns for d in days[:-1]}
    assert all(_state_files(lk, d)[0].exists() for d in days[:-1])
    # the days of a read are balanced at once, each as that day alone gives it, and kept
    # lz4 (working files every window reads back)
    for d in days[:-1]:
        alone = balance.day_state(
            lk.scan(CURVES.clean, [d]), lk.scan(METER_DAILY, [d]), d, LossConfig().diagnosis.balance.rules()
        )
        for path, want in zip(_state_files(lk, d), alone, strict=True):
            assert_frame_equal(pl.read_parquet(path), want.drop("date"), check_exact=True)
            assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "LZ4"
    assert not _state_files(lk, days[-1])[1].exists()
    run(lk.root, days[-1:], run_id="t2")
    assert {d: _state_files(lk, d)[1].stat().st_mtime_ns for d in days[:-1]} == kept
    diag = lk.scan(LOSS_DIAGNOSIS, [days[-1]]).collect()
    balance_rows = diag.filter(pl.col("rule") == "loss.diagnosis.theft_candidate.balance")
    weak = balance_rows["evidence"].str.json_path_match("$.weak") == "true"
    theft = balance_rows.filter(~weak)
    assert theft["meter_id"].to_list() == ["c0"]
    # the weak evidence of the others (config weak_weight 0.25): at most a quarter of a full score
    assert (balance_rows.filter(weak)["score"] <= 0.25).all()
    # recorded 40%: 1.5 times the recorded kWh went unrecorded
    stolen = 0.6 * true["c0"].sum()
    assert json.loads(theft["evidence"][0])["unrecorded_kwh"] == pytest.approx(stolen, rel=0.02)


def test_counts_per_value_by_hand():
    from meterlake.stages.loss import _count

    frame = pl.DataFrame({"status": ["high", None, "normal", "high", "negative"]}, schema={"status": pl.String})
    # sorted by value, an empty one first
    assert list(_count(frame, "status").items()) == [(None, 1), ("high", 2), ("negative", 1), ("normal", 1)]
    assert _count(frame.clear(), "status") == {}


def test_a_window_run_alone_reads_the_step_days_before_it_as_a_backfill_does(tmp_path: Path):
    """Twenty days of an area of 12 households; c0 records all its use, then 40% from day 12.

    The step statistic reads the customers' days up to ``step_days`` before the window's
    end. A run of the last date alone on a lake whose earlier days were never balanced
    computes their states first, and so writes the diagnosis a run of all twenty days
    writes: the findings do not depend on which runs came before.
    """
    import shutil

    import numpy as np

    from meterlake.stages.loss import _state_files

    days = [dt.date(2026, 3, 1) + dt.timedelta(days=k) for k in range(20)]
    true = _evening_loads(np.random.default_rng(5), len(days))
    share = np.where(np.arange(20) >= 12, 0.4, 1.0)[:, None]
    rec = {m: (share * v if m == "c0" else v) for m, v in true.items()}
    master = np.sum(list(true.values()), axis=0) * 1.03
    whole = _balance_zone(tmp_path / "whole", days, master, rec)
    shutil.copytree(whole.root, tmp_path / "alone")
    alone = Lake(tmp_path / "alone")
    run(whole.root, days)
    window_start = days[-1] - dt.timedelta(days=13)
    earlier = [d for d in days if d < window_start]
    assert earlier and all(_state_files(whole, d)[1].exists() for d in earlier)
    run(alone.root, days[-1:], run_id="t2")
    # the earlier days, never run in this lake, were balanced for the step statistic
    assert all(_state_files(alone, d)[1].exists() for d in earlier)
    got = alone.scan(LOSS_DIAGNOSIS, [days[-1]]).collect()
    want = whole.scan(LOSS_DIAGNOSIS, [days[-1]]).collect()
    listed = (pl.col("rule") == "loss.diagnosis.theft_candidate.balance") & (
        pl.col("evidence").str.json_path_match("$.weak") == "false"
    )
    assert got.filter(listed)["meter_id"].to_list() == ["c0"]
    assert_frame_equal(got, want)


def test_a_window_fitted_a_range_of_areas_at_a_time_writes_what_the_whole_window_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Five areas of 12 households over 16 days, a customer recording 40 % in each: a
    window read and fitted one area at a time (WINDOW_RANGE_ROWS of 1) or two at a time
    writes the files the whole window at once writes, byte for byte."""
    import shutil

    import numpy as np
    import pyarrow.parquet as pq

    from meterlake.stages import loss as stage

    days = [dt.date(2026, 3, 1) + dt.timedelta(days=k) for k in range(16)]
    rng = np.random.default_rng(8)
    areas = _five_thief_areas(rng, len(days))
    whole = _balance_areas(tmp_path / "whole", days, areas)
    for name in ("one", "two"):
        shutil.copytree(whole.root, tmp_path / name)
    ranges: list[list[tuple[str, str]]] = []
    inner = stage._area_ranges

    def counted(files: list[Path], rows: int) -> list[tuple[str, str]]:
        ranges.append(inner(files, rows))
        return ranges[-1]

    monkeypatch.setattr(stage, "_area_ranges", counted)
    run(whole.root, days)
    assert ranges == [[("A", "E")]] * 3  # windows ending 03-07, 03-14 (every 7 days) and 03-16: one range
    # ranges count the window's customer-days: 14 days x 12 customers = 168 an area
    ranges.clear()
    monkeypatch.setattr(stage, "WINDOW_RANGE_ROWS", 1)
    monkeypatch.setattr(stage, "STATE_ROW_GROUP", 7)  # a range reads parts of a day's file
    run(tmp_path / "one", days)
    assert ranges[-1] == [(a, a) for a in "ABCDE"]
    assert pq.ParquetFile(stage._state_files(Lake(tmp_path / "one"), days[0])[1]).metadata.num_row_groups == 9  # 60 / 7
    ranges.clear()
    monkeypatch.setattr(stage, "WINDOW_RANGE_ROWS", 2 * 12 * 14)
    run(tmp_path / "two", days)
    assert ranges[-1] == [("A", "B"), ("C", "D"), ("E", "E")]
    found = Lake(whole.root).scan(LOSS_DIAGNOSIS, [days[-1]]).collect()
    listed = (pl.col("rule") == "loss.diagnosis.theft_candidate.balance") & (
        pl.col("evidence").str.json_path_match("$.weak") == "false"
    )
    assert sorted(found.filter(listed)["meter_id"]) == [f"{a}c0" for a in "ABCDE"]
    assert digest(tmp_path / "one") == digest(whole.root) == digest(tmp_path / "two")


def test_a_days_ranges_fitted_on_the_stages_two_threads_keep_and_write_what_one_thread_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Five areas of 12 households over 8 days, each day's areas fitted one a range (13
    rows): on the stage's two threads the ranges are fitted there, and the kept day
    statistics and every file written are those of one thread, byte for byte."""
    import shutil
    import threading

    import numpy as np

    from meterlake.stages import loss as stage

    days = [dt.date(2026, 3, 1) + dt.timedelta(days=k) for k in range(8)]
    rng = np.random.default_rng(9)
    areas = _five_thief_areas(rng, len(days))
    one = _balance_areas(tmp_path / "one", days, areas)
    shutil.copytree(one.root, tmp_path / "two")
    threads: list[str] = []
    inner = stage.balance.day_states

    def by_area(curves: Any, members: Any, on: Any, rules: Any, fit_ranges: Any = map) -> Any:
        def fit(rows: Any) -> Any:
            threads.append(threading.current_thread().name)
            return rows

        return inner(curves, members, on, rules, 13, lambda f, ranges: fit_ranges(lambda r: f(fit(r)), ranges))

    monkeypatch.setattr(stage.balance, "day_states", by_area)
    monkeypatch.setattr(stage, "FIT_THREADS", 1)
    run(one.root, days)
    assert set(threads) == {"MainThread"} and len(threads) == 5 * len(days)  # a range an area, each day
    threads.clear()
    monkeypatch.setattr(stage, "FIT_THREADS", 2)
    run(tmp_path / "two", days)
    assert len(threads) == 5 * len(days) and {t.rsplit("_", 1)[0] for t in threads} == {"balance-fit"}
    for d in days:
        for mine, theirs in zip(stage._state_files(one, d), stage._state_files(Lake(tmp_path / "two"), d), strict=True):
            assert mine.read_bytes() == theirs.read_bytes()
    assert digest(tmp_path / "two") == digest(one.root)


def test_kept_balance_days_older_than_the_windows_read_are_removed(tmp_path: Path, monkeypatch):
    """With windows of 3 days (and the step's 3) and no margin, a run over seven days keeps
    the state of the last three only: the newest date's windows read no other."""
    import numpy as np

    import meterlake.lake as lake_module
    from meterlake.stages.loss import _state_files

    monkeypatch.setattr(lake_module, "STATE_MARGIN_DAYS", 0)
    days = [dt.date(2026, 3, 1) + dt.timedelta(days=k) for k in range(7)]
    true = _evening_loads(np.random.default_rng(3), len(days))
    lk = _balance_zone(tmp_path / "lake", days, np.sum(list(true.values()), axis=0) * 1.03, true)
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "loss.toml").write_text("[diagnosis.balance]\nwindow_days = 3\nstep_days = 3\n", encoding="utf-8")
    run(lk.root, days, config_dir=conf)
    kept = [d for d in days if _state_files(lk, d)[0].parent.exists()]
    assert kept == days[-3:]
    assert not list(lk.staging.glob("pruned-*"))  # nothing left half removed


def test_kept_member_rows_older_than_the_window_are_removed(
    lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, too_large: None
):
    """Windows of 3 days and no margin: a run over the five days keeps the last three days'
    member rows only; a rerun of the first date keeps its window's days again (from
    meter_daily) and writes what the first run did."""
    import meterlake.lake as lake_module

    monkeypatch.setattr(lake_module, "STATE_MARGIN_DAYS", 0)
    conf = _conf(tmp_path, WINDOW3)
    run(lake, HELD, config_dir=conf)
    assert list(_kept(lake)) == [f"date={d}" for d in HELD[-3:]]
    before = digest(lake)
    run(lake, [HELD[2]], config_dir=conf, run_id="t2")
    assert digest(lake) == before
    assert list(_kept(lake)) == [f"date={d}" for d in HELD[-3:]]
