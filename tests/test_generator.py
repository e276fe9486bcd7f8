"""The synthetic landing zone: determinism, grid, reconciliation, physics, truth.

The landing files are read back here with a deliberately small reader (decode with the
manifest's encoding, drop the lines `_truth/files.csv` names as faulty, map the Chinese
headers through the landing contracts) so these tests do not depend on the ingest code.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import os
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from meterlake.generate import GenerateSummary, generate
from meterlake.generate._sim import technical_loss
from meterlake.schemas import LANDINGS, REQUIRED_DATASETS
from meterlake.schemas.curves import SLOTS

START = dt.date(2026, 3, 27)
DAYS = 8
UNIT = 10_000
LINE_FAULTS = {"field_count", "bad_number", "bad_date", "unknown_meter", "unknown_code", "negative_amount", "cutoff"}
METER_KINDS = {
    "theft_bypass",
    "theft_stopped",
    "theft_reversed",
    "multiplier_error",
    "wrong_area",
    "area_change",
    "missing_register",
    "missing_curve",
    "curve_gap",
    "rollover",
    "prepay_mismatch",
    "overdraft",
}


# --- a small independent reader ---------------------------------------------------------------


def _decode(root: Path, row: dict) -> str:
    raw = (root / row["file"]).read_bytes()
    if row["compression"] == "gzip":
        raw = gzip.decompress(raw)
    return raw.decode(row["encoding"])


def _to_date(col: str) -> pl.Expr:
    c = pl.col(col)
    return pl.coalesce(c.str.to_date("%Y-%m-%d", strict=False), c.str.to_date("%Y%m%d", strict=False))


def read_dataset(root: Path, dataset: str, manifest: pl.DataFrame, faults: pl.DataFrame) -> pl.DataFrame:
    """All rows of a dataset, faulty lines dropped, later deliveries first dropped on key repeats."""
    land = LANDINGS[dataset]
    frames = []
    for row in manifest.filter(pl.col.dataset == dataset).iter_rows(named=True):
        bad = set(faults.filter((pl.col.file == row["file"]) & pl.col.kind.is_in(LINE_FAULTS))["line"].to_list())
        lines = _decode(root, row).split("\n")
        kept = [ln for i, ln in enumerate(lines, start=1) if i not in bad and ln]
        header = [land.aliases.get(h.casefold(), h) for h in kept[0].split(",")]
        df = pl.read_csv(io.StringIO("\n".join(kept[1:])), has_header=False, new_columns=header, infer_schema=False)
        frames.append(
            df.select(land.names if dataset != "events" else [n for n in land.names if n in header]).with_columns(
                _delivered=pl.lit(row["delivered_at"]), _file=pl.lit(row["file"])
            )
        )
    df = pl.concat(frames, how="diagonal")
    dates = [f.name for f in land.fields if f.kind == "date"]
    df = df.with_columns(_to_date(c) for c in dates)  # a key is the date, whatever its format
    key = list(land.key)
    return df.sort("_delivered").unique(key, keep="last", maintain_order=True)


def _units(col: str) -> pl.Expr:
    return (pl.col(col).cast(pl.Float64) * UNIT).round(0).cast(pl.Int64)


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerateSummary]:
    out = tmp_path_factory.mktemp("gen") / "landing"
    messages: list[str] = []
    summary = generate(out, meters=1500, days=DAYS, start=START, seed=7, progress=messages.append)
    assert messages[0] == "topology" and messages[-1] == "truth"
    assert f"curves {(START + dt.timedelta(days=2)).isoformat()} (3/{DAYS})" in messages
    return out, summary


@pytest.fixture(scope="module")
def truth(landing: tuple[Path, GenerateSummary]) -> dict[str, pl.DataFrame]:
    root = landing[0] / "_truth"
    return {
        "injections": pl.read_csv(root / "injections.csv", infer_schema=False).with_columns(
            _to_date("start_date"), _to_date("end_date")
        ),
        "files": pl.read_csv(root / "files.csv", schema_overrides={"line": pl.Int64}, infer_schema=False),
        "manifest": pl.read_csv(root / "manifest.csv", infer_schema=False).with_columns(
            pl.col.delivered_at.str.to_datetime("%Y-%m-%d %H:%M:%S"), pl.col.rows.cast(pl.Int64)
        ),
        "meters": pl.read_csv(root / "meters.csv", infer_schema=False).with_columns(
            pl.col.multiplier.cast(pl.Float64),
            pl.col.archive_multiplier.cast(pl.Float64),
            pl.col.register_max.cast(pl.Float64),
        ),
        "outages": pl.read_csv(root / "outages.csv", infer_schema=False),
        "outage_plans": pl.read_csv(root / "outage_plans.csv", infer_schema=False),
        "loss": pl.read_csv(root / "loss_daily.csv", infer_schema=False).with_columns(
            _to_date("date"), pl.col("^.*_kwh$").cast(pl.Float64)
        ),
    }


@pytest.fixture(scope="module")
def data(landing: tuple[Path, GenerateSummary], truth: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    root = landing[0]
    out = {ds: read_dataset(root, ds, truth["manifest"], truth["files"]) for ds in REQUIRED_DATASETS}
    return out


def _injected(truth: dict[str, pl.DataFrame], kinds: set[str] = METER_KINDS) -> set[str]:
    return set(
        truth["injections"].filter(pl.col.kind.is_in(kinds) & pl.col.meter_id.is_not_null())["meter_id"].to_list()
    )


def _daily(data: dict[str, pl.DataFrame], truth: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Per meter and day: register difference (units, rollover undone) and Σ of the curve."""
    m = truth["meters"].select("meter_id", "register_max", "multiplier")
    reg = data["registers"].select(
        "meter_id", "freeze_date", _units("total_kwh").alias("t"), _units("reverse_kwh").alias("r")
    )
    nxt = reg.with_columns(pl.col.freeze_date - pl.duration(days=1)).rename({"t": "t1", "r": "r1"})
    d = (
        reg.join(nxt, on=["meter_id", "freeze_date"])
        .join(m, on="meter_id")
        .with_columns(rmax=(pl.col.register_max * UNIT).round(0).cast(pl.Int64))
        .with_columns(
            diff=pl.when(pl.col.t1 >= pl.col.t)
            .then(pl.col.t1 - pl.col.t)
            .otherwise(pl.col.t1 - pl.col.t + pl.col.rmax),
            rdiff=pl.col.r1 - pl.col.r,
        )
    )
    cur = data["curves"].select(
        "meter_id",
        pl.col.data_date.alias("freeze_date"),
        pl.sum_horizontal(_units(s) for s in SLOTS).alias("curve"),
        pl.all_horizontal(pl.col(s).is_not_null() for s in SLOTS).alias("complete"),
    )
    return d.join(cur, on=["meter_id", "freeze_date"], how="left").rename({"freeze_date": "date"})


# --- tests -------------------------------------------------------------------------------------


def test_same_seed_same_bytes_and_mtimes(tmp_path: Path) -> None:
    def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
        return {
            p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    a = generate(tmp_path / "a", meters=300, days=2, start=dt.date(2026, 1, 1), seed=3)
    b = generate(tmp_path / "b", meters=300, days=2, start=dt.date(2026, 1, 1), seed=3)
    generate(tmp_path / "c", meters=300, days=2, start=dt.date(2026, 1, 1), seed=4)
    assert a.files == b.files and a.truth_counts == b.truth_counts
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")
    assert snapshot(tmp_path / "a") != snapshot(tmp_path / "c")


def test_refuses_a_folder_with_content_and_too_few_meters(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="new or empty"):
        generate(tmp_path / "x", meters=100, days=1, start=START)
    with pytest.raises(ValueError, match="at least 10"):
        generate(tmp_path / "y", meters=5, days=1, start=START)


@pytest.mark.parametrize("meters", [pytest.param(10, id="10-meters"), pytest.param(200, id="200-meters")])
def test_tiny_sizes_work(tmp_path: Path, meters: int) -> None:
    s = generate(tmp_path / "l", meters=meters, days=1, start=START)
    assert sum(s.meters_by_role.values()) == meters
    assert s.meters_by_role["feeder_head"] >= 1 and s.meters_by_role["area_master"] >= 1
    for kind in ("theft_bypass", "theft_stopped", "theft_reversed", "resent", "late", "cutoff"):
        assert s.truth_counts.get(kind, 0) >= 1, kind


def test_summary(landing: tuple[Path, GenerateSummary], truth: dict[str, pl.DataFrame]) -> None:
    root, s = landing
    assert s.meters == 1500 and sum(s.meters_by_role.values()) == 1500 and s.days == DAYS and s.start == START
    on_disk = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and "_truth" not in p.parts)
    assert sorted(s.files) == on_disk == sorted(truth["manifest"]["file"].to_list())
    assert all((root / f).is_file() for f in s.truth_files)
    counts = pl.concat([truth["injections"].select("kind"), truth["files"].select("kind")])["kind"].value_counts()
    assert dict(counts.iter_rows()) == s.truth_counts


def test_file_layout_and_formats(landing: tuple[Path, GenerateSummary], truth: dict[str, pl.DataFrame]) -> None:
    root, _s = landing
    man = truth["manifest"]
    for row in man.iter_rows(named=True):
        name = row["file"]
        assert name.split("/")[0] == row["dataset"]
        assert name.endswith(".csv.gz") == (row["compression"] == "gzip")
        raw = (root / name).read_bytes()
        if row["compression"] == "gzip":
            raw = gzip.decompress(raw)
        assert raw.startswith(b"\xef\xbb\xbf") == (row["encoding"] == "utf-8-sig"), name
        text = raw.decode(row["encoding"])  # every file decodes with its stated encoding
        header = text.split("\n", 1)[0].split(",")
        aliases = LANDINGS[row["dataset"]].aliases
        extra = set((row["extra_columns"] or "").split(";")) - {""}
        assert {h for h in header if h.casefold() not in aliases} == extra, name
        if row["header"] == "zh":
            assert all(not h.isascii() or h in extra or h.startswith("点") for h in header)
        # the mtime is the delivery time (local = UTC+8)
        local = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=os.stat(root / name).st_mtime + 8 * 3600)
        assert local == row["delivered_at"], name
    # every variation is present
    assert set(man["encoding"]) == {"utf-8", "utf-8-sig", "gbk"}
    assert set(man["compression"]) == {"gzip", "none"}
    assert set(man["date_format"]) == {"YYYY-MM-DD", "YYYYMMDD", None}
    assert man.filter(pl.col.date_format.is_null())["dataset"].unique().sort().to_list() == [
        "events",
        "outage_plans",
        "payments",
        "purchases",
    ]
    assert set(man["column_order"]) == {"contract", "shuffled"}
    assert set(man["header"]) == {"canonical", "zh"}
    days = [START + dt.timedelta(days=k) for k in range(DAYS)]
    for ds in ("curves", "events", "purchases"):
        assert {d.isoformat() for d in days} <= set(man.filter(pl.col.dataset == ds)["last_date"])
    freezes = {(START + dt.timedelta(days=k)).isoformat() for k in range(DAYS + 1)}
    assert freezes == set(man.filter(pl.col.dataset == "registers")["last_date"])
    assert len(man.filter(pl.col.dataset == "archive")) == 2


def test_file_faults(landing: tuple[Path, GenerateSummary], truth: dict[str, pl.DataFrame]) -> None:
    root, _ = landing
    f, man = truth["files"], truth["manifest"]
    kinds = set(f["kind"])
    assert {"resent", "late", "overlap", "overlap_conflict", "cutoff", "extra_column"} | LINE_FAULTS <= kinds
    resent = f.filter(pl.col.kind == "resent").row(0, named=True)
    assert (root / resent["file"]).read_bytes() == (root / resent["other_file"]).read_bytes()
    late = f.filter(pl.col.kind == "late").row(0, named=True)
    delivered = man.filter(pl.col.file == late["file"])["delivered_at"][0]
    assert delivered.date() - dt.date.fromisoformat(late["date"]) >= dt.timedelta(days=3)
    assert late["date"].replace("-", "") not in late["file"]
    cut = f.filter(pl.col.kind == "cutoff").row(0, named=True)
    row = man.filter(pl.col.file == cut["file"]).row(0, named=True)
    text = _decode(root, row)
    assert not text.endswith("\n") and len(text.split("\n")) == cut["line"]
    assert len(text.split("\n")[-1].split(",")) < 98
    for bad in f.filter(pl.col.kind.is_in(LINE_FAULTS - {"cutoff"})).iter_rows(named=True):
        row = man.filter(pl.col.file == bad["file"]).row(0, named=True)
        line = _decode(root, row).split("\n")[bad["line"] - 1]
        assert bad["meter_id"] in line, bad
    # an overlap conflict: the two files disagree on the key, the later one is delivered later
    conf = f.filter(pl.col.kind == "overlap_conflict").row(0, named=True)
    d_early = man.filter(pl.col.file == conf["file"])["delivered_at"][0]
    d_late = man.filter(pl.col.file == conf["other_file"])["delivered_at"][0]
    assert d_late > d_early


def test_topology(
    data: dict[str, pl.DataFrame], truth: dict[str, pl.DataFrame], landing: tuple[Path, GenerateSummary]
) -> None:
    arc = data["archive"].filter(pl.col.snapshot_date == START)
    assert arc.height == 1500 and arc["meter_id"].n_unique() == 1500
    assert arc["meter_id"].str.len_chars().unique().to_list() == [13]
    assert arc["meter_id"].str.starts_with("0").all()
    roles = dict(arc["role"].value_counts().iter_rows())
    assert roles == landing[1].meters_by_role
    heads = arc.filter(pl.col.role == "feeder_head")
    assert (
        heads["area_id"].is_null().all()
        and heads["customer_id"].is_null().all()
        and heads["feeder_id"].n_unique() == heads.height
    )
    masters = arc.filter(pl.col.role == "area_master")
    assert masters["area_id"].n_unique() == masters.height and masters["customer_id"].is_null().all()
    assert set(masters["multiplier"].cast(pl.Int64)) <= {20, 30, 40, 50, 60, 80, 100, 120, 150, 160, 200, 240, 300, 400}
    cust = arc.filter(pl.col.role == "customer")
    assert cust["customer_id"].is_not_null().all() and cust["customer_id"].n_unique() == cust.height
    assert cust["customer_class"].is_not_null().all()
    # every area has one master; sizes 30-400 customers (physically)
    m = truth["meters"].filter(pl.col.role == "customer", pl.col.area_id.is_not_null())
    sizes = m.group_by("area_id").len()["len"]
    assert sizes.min() >= 30 and sizes.max() <= 400
    assert set(m["area_id"]) == set(masters["area_id"])
    # 10 kV customers: no area, CT x PT multiplier, commercial or industrial
    direct = cust.filter(pl.col.area_id.is_null())
    assert direct.height >= 1
    assert (direct["multiplier"].cast(pl.Int64) >= 100).all()
    assert set(direct["customer_class"]) <= {"commercial", "industrial"}
    tariff = {
        "resident": {"RES_TIER", "RES_TIER_TOU"},
        "commercial": {"COM_TOU"},
        "industrial": {"COM_TOU"},
        "agricultural": {"AGR_FLAT"},
    }
    for cls, tariffs in tariff.items():
        assert set(cust.filter(pl.col.customer_class == cls)["tariff_id"]) <= tariffs
    assert (cust.filter(pl.col.prepay == "1")["multiplier"] == "1").all()
    share = cust["customer_class"].value_counts(normalize=True)
    res = share.filter(pl.col.customer_class == "resident")["proportion"][0]
    assert 0.75 < res < 0.90


def test_class_mix_at_county_scale() -> None:
    from meterlake.generate import _topology

    topo = _topology.build(100_000, np.random.default_rng(1))
    cls = topo.cls[topo.role == _topology.ROLE_CUSTOMER]
    share = np.bincount(cls, minlength=4) / len(cls)
    assert abs(share[0] - 0.82) < 0.01 and abs(share[1] - 0.07) < 0.01
    assert abs(share[2] - 0.10) < 0.01 and abs(share[3] - 0.013) < 0.003


def test_second_snapshot_moves_customers(data: dict[str, pl.DataFrame], truth: dict[str, pl.DataFrame]) -> None:
    arc = data["archive"]
    snap2 = START + dt.timedelta(days=DAYS // 2)
    assert set(arc["snapshot_date"]) == {START, snap2}
    moves = truth["injections"].filter(pl.col.kind == "area_change")
    assert moves.height >= 2 and (moves["start_date"] == snap2).all()
    a = arc.filter(pl.col.snapshot_date == START).select("meter_id", a1="area_id")
    b = arc.filter(pl.col.snapshot_date == snap2).select("meter_id", a2="area_id")
    changed = a.join(b, on="meter_id").filter(pl.col.a1 != pl.col.a2)
    assert set(changed["meter_id"]) == set(moves["meter_id"])
    assert_frame_equal(
        changed.select("meter_id", area_id="a2").sort("meter_id"), moves.select("meter_id", "area_id").sort("meter_id")
    )


def test_curves_sum_to_register_differences(data: dict[str, pl.DataFrame], truth: dict[str, pl.DataFrame]) -> None:
    daily = _daily(data, truth)
    # overlap conflicts included: the later delivery (kept by the reader) holds the true values
    ok = daily.filter(pl.col.complete)
    assert ok.height > 0.9 * 1500 * DAYS
    bad = ok.filter(pl.col("curve") != pl.col.diff)
    assert bad.height == 0, bad.head()
    # exactly as written, decimals and all: 2 decimals on registers (4 on feeder heads)
    reg = data["registers"]
    assert (
        reg["total_kwh"].str.contains(r"^\d+\.\d{2}$").sum() + reg["total_kwh"].str.contains(r"^\d+\.\d{4}$").sum()
        == reg.height
    )
    # TOU registers sum to the total (the rollover meters excepted)
    rolled = _injected(truth, {"rollover"})
    tou = reg.filter(~pl.col.meter_id.is_in(rolled)).select(
        _units("total_kwh").alias("t"),
        pl.sum_horizontal(_units(c) for c in ("sharp_kwh", "peak_kwh", "flat_kwh", "valley_kwh")).alias("s"),
    )
    assert (tou["t"] == tou["s"]).all()


def test_magnitudes(data: dict[str, pl.DataFrame], truth: dict[str, pl.DataFrame]) -> None:
    daily = _daily(data, truth).join(
        truth["meters"].select("meter_id", "role", "customer_class", "area_id", "vacant", "pv_kw"), on="meter_id"
    )
    clean = daily.filter(~pl.col.meter_id.is_in(_injected(truth)), pl.col.vacant == "0").with_columns(
        kwh=pl.col.diff / UNIT * pl.col.multiplier
    )
    med = clean.group_by("customer_class").agg(pl.col.kwh.median()).drop_nulls()
    by_class = dict(med.iter_rows())
    assert 3 <= by_class["resident"] <= 15
    assert 20 <= by_class["commercial"] <= 300
    assert 100 <= by_class["industrial"] <= 5000
    # PV households push energy back at midday: their reverse register rises
    pv = clean.filter(pl.col.pv_kw.cast(pl.Float64) > 0)
    assert pv.height and (pv["rdiff"] > 0).mean() > 0.8
    others = clean.filter(pl.col.pv_kw.cast(pl.Float64) == 0, pl.col.role == "customer")
    assert (others["rdiff"] == 0).all()


def test_area_and_feeder_physics(data: dict[str, pl.DataFrame], truth: dict[str, pl.DataFrame]) -> None:
    daily = _daily(data, truth).join(
        truth["meters"].select("meter_id", "role", "area_id", "area_id_end", "feeder_id"), on="meter_id"
    )
    prim = daily.with_columns(kwh=pl.col.diff / UNIT * pl.col.multiplier, rev=pl.col.rdiff / UNIT * pl.col.multiplier)
    loss = truth["loss"]
    # the master measures supply - PV export (the true quantities), to its register's rounding
    master = prim.filter(pl.col.role == "area_master").join(
        loss.filter(pl.col.level == "area").select(
            area_id="id", date="date", supply="supply_kwh", export="export_kwh", sales="sales_kwh"
        ),
        on=["area_id", "date"],
    )
    err = (master["kwh"] - master["rev"] - (master["supply"] - master["export"])).abs() - master["multiplier"] * 0.011
    assert master.height > 0 and (err <= 0).all()
    # no-load loss plus load loss: 2-6% at an area's typical load, a little more on heavy days
    rate = (master["supply"] - master["sales"]) / master["supply"]
    assert rate.min() >= 0.015 and rate.max() <= 0.09
    # the load loss grows with the square of the flow: an area's loss share is higher on
    # its heavier days (a weekday against a Sunday) in most areas
    by_area = (
        master.with_columns(rate=(pl.col.supply - pl.col.sales) / pl.col.supply)
        .group_by("area_id")
        .agg(r=pl.corr("supply", "rate"), n=pl.len())
        .filter(pl.col.n >= 3, pl.col.r.is_not_nan())
    )
    assert by_area.height > 0 and (by_area["r"] > 0).mean() > 0.8
    # in areas without theft or moves, on days every customer was read, the metered
    # customers (true multipliers, physical areas) and the master close with 2-6% loss
    inj = truth["injections"]
    bad_areas = set(inj.filter(pl.col.kind.str.starts_with("theft_") | (pl.col.kind == "area_change"))["area_id"])
    bad_areas |= set(truth["meters"].filter(pl.col.area_id != pl.col.area_id_end)["area_id"])
    size = (
        truth["meters"]
        .filter(pl.col.role == "customer", pl.col.area_id.is_not_null())
        .group_by("area_id")
        .agg(size=pl.len())
    )
    cust = (
        prim.filter(pl.col.role == "customer", pl.col.area_id.is_not_null())
        .group_by("area_id", "date")
        .agg(fwd=pl.col.kwh.sum(), rev=pl.col.rev.sum(), n=pl.len(), tol=(pl.col.multiplier * 0.01).sum())
        .join(size, on="area_id")
        .filter(pl.col.n == pl.col.size)
    )
    check = (
        master.filter(~pl.col.area_id.is_in(bad_areas))
        .select("area_id", "date", "supply", "sales", m="kwh")
        .join(cust, on=["area_id", "date"])
    )
    assert check.height > 0
    assert ((check["fwd"] - check["sales"]).abs() <= check["tol"]).all()  # registers floor to 0.01
    rel = (check["m"] + check["rev"] - check["fwd"]) / (check["m"] + check["rev"])
    assert rel.min() > 0.015 and rel.max() < 0.09
    # feeder head = Σ masters (net) + Σ 10 kV customers + feeder loss
    f = loss.filter(pl.col.level == "feeder")
    heads = prim.filter(pl.col.role == "feeder_head").join(
        f.select(feeder_id="id", date="date", supply="supply_kwh", sales="sales_kwh"), on=["feeder_id", "date"]
    )
    assert heads.height and ((heads["kwh"] - heads["supply"]).abs() <= heads["multiplier"] * 0.00011).all()
    frate = (heads["supply"] - heads["sales"]) / heads["supply"]
    assert frate.min() >= 0.019 and frate.max() <= 0.051


def test_thefts_show_in_the_readings(data: dict[str, pl.DataFrame], truth: dict[str, pl.DataFrame]) -> None:
    daily = _daily(data, truth)
    inj = truth["injections"]
    for kind in ("theft_bypass", "theft_stopped", "theft_reversed"):
        t = inj.filter(pl.col.kind == kind)
        assert t.height >= 2
        after = daily.join(t.select("meter_id", "start_date"), on="meter_id").filter(pl.col.date > pl.col.start_date)
        if kind == "theft_stopped":
            assert (after["diff"] == 0).all()
        if kind == "theft_reversed":
            assert (after["diff"] == 0).all() and (after["rdiff"] > 0).all()
        if kind == "theft_bypass":
            before = daily.join(t.select("meter_id", "start_date"), on="meter_id").filter(
                pl.col.date < pl.col.start_date
            )
            if before.height and after.height:
                assert after["diff"].mean() < 0.8 * before["diff"].mean()
    # some thefts come with tamper events on their start date
    ev = data["events"].with_columns(pl.col.event_time.str.to_datetime("%Y-%m-%d %H:%M:%S"))
    thefts = inj.filter(
        pl.col.kind.is_in(["theft_bypass", "theft_stopped", "theft_reversed"]),
        ~pl.col.detail.str.ends_with("events: none"),
    )
    hits = thefts.join(ev, on="meter_id").filter(pl.col.event_time.dt.date() == pl.col.start_date)
    assert hits["meter_id"].n_unique() >= 0.8 * thefts.height
    assert set(hits["event_code"]) <= {
        "COVER_OPEN",
        "TERMINAL_COVER_OPEN",
        "MAGNETIC_INTERFERENCE",
        "VOLTAGE_LOSS",
        "CURRENT_LOSS",
        "REVERSE_FLOW",
    }


def test_events(data: dict[str, pl.DataFrame], truth: dict[str, pl.DataFrame]) -> None:
    ev = data["events"]
    codes = set(LANDINGS["events"].field("event_code").codes)
    assert set(ev["event_code"]) <= codes
    offs, ons = (ev.filter(pl.col.event_code == c).height for c in ("POWER_OFF", "POWER_ON"))
    outages = truth["injections"].filter(pl.col.kind == "outage")
    # every interruption logs an OFF and an ON, but for the events the truth says were lost
    lost = truth["outages"].select(pl.col("lost_on").cast(pl.Int64).sum(), pl.col("lost_off").cast(pl.Int64).sum())
    lost_on, lost_off = lost.row(0)
    assert outages.height >= 1 and offs > 0 and lost_on > 0
    assert offs + lost_off == ons + lost_on


def test_outage_truth_and_notices(landing: tuple[Path, GenerateSummary], truth: dict[str, pl.DataFrame]) -> None:
    o, plans = truth["outages"], truth["outage_plans"]
    assert {"fault", "planned", "temporary"} <= set(o["cause"])
    assert {"area", "customer"} <= set(o["level"]) and "true" in set(o["momentary"])
    assert {"executed", "not_executed"} == set(plans["status"])
    devs = ",".join(plans["deviations"].fill_null("").to_list())
    for d in ("late_notice", "overrun", "early_start", "wider_than_plan", "not_executed"):
        assert d in devs
    # the notices are delivered when published, one plan re-sent with a later end
    files = truth["manifest"].filter(pl.col.dataset == "outage_plans")
    rows = read_dataset(landing[0], "outage_plans", truth["manifest"], truth["files"])
    assert rows.height == plans.height and files.height >= 2
    # the later delivery of the revised plan wins: the rows hold the ends the truth holds
    ends = rows.sort("plan_id").select("plan_id", "planned_end").rows()
    assert ends == plans.sort("plan_id").select("plan_id", "planned_end").rows()


def test_purchases(data: dict[str, pl.DataFrame], truth: dict[str, pl.DataFrame]) -> None:
    p = data["purchases"].with_columns(pl.col.purchase_seq.cast(pl.Int64), pl.col.amount_yuan.cast(pl.Float64))
    assert set(p["channel"]) <= set(LANDINGS["purchases"].field("channel").codes)
    assert (p["amount_yuan"] > 0).all()
    assert p["card_no"].str.len_chars().is_between(16, 19).all() and p["card_no"].str.contains(r"^\d+$").all()
    rev = p.filter(pl.col.txn_type == "reversal")
    orig = p.filter(pl.col.txn_type == "purchase").select(
        ref_txn_id="txn_id", seq0="purchase_seq", amt0="amount_yuan", c0="customer_id"
    )
    if rev.height:
        j = rev.join(orig, on="ref_txn_id")
        assert j.height == rev.height
        assert (
            (j["purchase_seq"] == j["seq0"]).all()
            and (j["amount_yuan"] == j["amt0"]).all()
            and (j["customer_id"] == j["c0"]).all()
        )
    # accepted purchases number 1, 2, 3, ... per customer (a reversed one's number is reused)
    reversed_ids = set(rev["ref_txn_id"])
    acc = p.filter(pl.col.txn_type == "purchase", ~pl.col.txn_id.is_in(reversed_ids)).sort("purchase_time", "txn_id")
    steps = (
        acc.group_by("customer_id")
        .agg(pl.col.purchase_seq.diff().drop_nulls().alias("d"))
        .explode("d")["d"]
        .drop_nulls()
    )
    assert (steps == 1).all()


def test_prepay_balances(data: dict[str, pl.DataFrame], truth: dict[str, pl.DataFrame]) -> None:
    """remaining(D+1) = remaining(D) + purchases(D) - cost(D) at the tariff, except where injected."""
    meters = truth["meters"].filter(pl.col.prepay == "1").select("meter_id", "tariff_id")
    reg = (
        data["registers"]
        .join(meters, on="meter_id")
        .select(
            "meter_id",
            "tariff_id",
            "freeze_date",
            pl.col.remaining_yuan.cast(pl.Float64),
            *[(pl.col(f"{c}_kwh").cast(pl.Float64)).alias(c) for c in ("total", "sharp", "peak", "flat", "valley")],
        )
    )
    nxt = reg.select(
        "meter_id",
        freeze_date=pl.col.freeze_date - pl.duration(days=1),
        b1="remaining_yuan",
        **{f"{c}1": c for c in ("total", "sharp", "peak", "flat", "valley")},
    )
    p = data["purchases"].with_columns(
        pl.col.amount_yuan.cast(pl.Float64), date=pl.col.purchase_time.str.slice(0, 10).str.to_date()
    )
    net = p.group_by("meter_id", "date").agg(
        pl.when(pl.col.txn_type == "purchase")
        .then(pl.col.amount_yuan)
        .otherwise(-pl.col.amount_yuan)
        .sum()
        .alias("paid")
    )
    d = reg.join(nxt, on=["meter_id", "freeze_date"]).join(
        net, left_on=["meter_id", "freeze_date"], right_on=["meter_id", "date"], how="left"
    )
    d = (
        d.with_columns(
            pl.col.paid.fill_null(0.0),
            kwh=pl.col.total1 - pl.col.total,
            pk=(pl.col.sharp1 + pl.col.peak1) - (pl.col.sharp + pl.col.peak),
            vl=(pl.col.flat1 + pl.col.valley1) - (pl.col.flat + pl.col.valley),
        )
        .with_columns(
            cost=pl.when(pl.col.tariff_id == "RES_TIER")
            .then(pl.col.kwh * 0.538)
            .when(pl.col.tariff_id == "RES_TIER_TOU")
            .then(pl.col.pk * 0.568 + pl.col.vl * 0.288)
            .otherwise(
                (pl.col.sharp1 - pl.col.sharp) * 1.10
                + (pl.col.peak1 - pl.col.peak) * 0.90
                + (pl.col.flat1 - pl.col.flat) * 0.60
                + (pl.col.valley1 - pl.col.valley) * 0.30
            )
        )
        .with_columns(gap=(pl.col.b1 - (pl.col.remaining_yuan + pl.col.paid - pl.col.cost)).abs())
    )
    mism = truth["injections"].filter(pl.col.kind == "prepay_mismatch")
    clean = d.filter(~pl.col.meter_id.is_in(set(mism["meter_id"])))
    assert clean.height > 100 and clean["gap"].max() < 0.015
    # a purchase not loaded shows as a gap of its amount on its day
    nl = mism.filter(pl.col.detail.str.contains("never loaded")).select("meter_id", freeze_date="start_date")
    hit = d.join(nl, on=["meter_id", "freeze_date"])
    assert hit.height >= 1 and (hit["gap"] > 1).all()
    od = truth["injections"].filter(pl.col.kind == "overdraft")
    assert od.height >= 1
    low = reg.join(od.select("meter_id", freeze_date="start_date"), on=["meter_id", "freeze_date"])
    assert (low["remaining_yuan"] < 0).all()


def test_truth_lists_every_kind(truth: dict[str, pl.DataFrame]) -> None:
    inj = truth["injections"]
    assert inj.columns == ["kind", "meter_id", "customer_id", "area_id", "start_date", "end_date", "detail"]
    expected = METER_KINDS | {"outage", "benign_event"}
    assert expected <= set(inj["kind"])
    assert truth["files"].columns == ["kind", "file", "line", "other_file", "meter_id", "date", "detail"]
    # multiplier errors: the archive states another standard ratio than the true one
    merr = truth["meters"].filter(pl.col.multiplier != pl.col.archive_multiplier)
    assert set(merr["meter_id"]) == set(inj.filter(pl.col.kind == "multiplier_error")["meter_id"])
    wrong = truth["meters"].filter(pl.col.archive_area_id != pl.col.area_id)
    assert set(wrong["meter_id"]) == set(inj.filter(pl.col.kind == "wrong_area")["meter_id"])


def test_missing_reads_are_missing(data: dict[str, pl.DataFrame], truth: dict[str, pl.DataFrame]) -> None:
    inj = truth["injections"]
    for kind, ds, col in (("missing_register", "registers", "freeze_date"), ("missing_curve", "curves", "data_date")):
        miss = inj.filter(pl.col.kind == kind).select("meter_id", pl.col.start_date.alias(col))
        assert miss.height > 0
        assert data[ds].join(miss, on=["meter_id", col]).height == 0
    gaps = inj.filter(pl.col.kind == "curve_gap").select("meter_id", data_date="start_date")
    rows = data["curves"].join(gaps, on=["meter_id", "data_date"])
    assert rows.height > 0
    assert rows.select(pl.any_horizontal(pl.col(s).is_null() for s in SLOTS).all()).item()


def test_speed_20k_meters_two_days(tmp_path: Path) -> None:
    # 500k x 1 day must stay under 2 minutes on 2 cores; this is the small-scale guard
    t0 = time.perf_counter()
    s = generate(tmp_path / "l", meters=20_000, days=2, start=START)
    assert s.meters == 20_000
    assert time.perf_counter() - t0 < 30


def test_false_data_injection_one_attacker_per_area_on_its_tampered_days(
    data: dict[str, pl.DataFrame], truth: dict[str, pl.DataFrame]
) -> None:
    inj = truth["injections"].filter(pl.col.kind.str.contains(r"^theft_(h[1-6]|mix)$"))
    assert inj.height >= 7  # at least one of each attack type
    assert inj["area_id"].n_unique() == inj.height  # at most one attacker per area
    days = inj.select(
        "meter_id",
        "kind",
        pl.col.detail.str.extract(r"tampered days (.*)$").str.split(",").cast(pl.List(pl.Int64)).alias("days"),
    ).explode("days")
    slots = [f"p{i}" for i in range(1, 97)]
    curves = (
        data["curves"]
        .select("meter_id", "data_date", *(pl.col(s).cast(pl.Float64) for s in slots))
        .with_columns(((pl.col.data_date - pl.lit(START)).dt.total_days() + 1).alias("day"))
    )
    seen = days.join(curves, left_on=["meter_id", "days"], right_on=["meter_id", "day"])
    assert seen.height > 0
    # h5 records the day's mean in every slot: flat up to the 0.0001 kWh the file writes (and the
    # remainder the day's register difference puts into one slot)
    flat = seen.filter(pl.col.kind == "theft_h5").select(
        pl.concat_list(slots).list.eval(pl.element().round(4)).list.unique().list.len().alias("values")
    )
    assert flat.height and (flat["values"] <= 3).all()
    # h2 records nothing for at least 4 hours (16 slots) in a row
    zeros = seen.filter(pl.col.kind == "theft_h2").select(
        pl.concat_list(slots)
        .list.eval(
            (pl.element() == 0)
            .cast(pl.Int32)
            .rle()
            .struct.field("len")
            .filter((pl.element() == 0).rle().struct.field("value"))
            .max()
        )
        .list.first()
        .alias("run")
    )
    assert zeros.height and (zeros["run"] >= 16).all()


def test_technical_loss_is_no_load_plus_load_loss() -> None:
    # 4% of supply at a typical 10 kWh a slot: 10 x 0.04 / 0.96 = 0.416667 kWh, a quarter
    # of it no-load; the load loss scales with (flow / 10)^2; nothing while off supply
    flow = np.array([[0.0, 10.0, 20.0, 20.0]])
    off = np.array([[False, False, False, True]])
    got = technical_loss(flow, np.array([0.04]), np.array([0.25]), np.array([10.0]), off)
    at_typical = 10 * 0.04 / 0.96
    want = [0.25 * at_typical, at_typical, 0.25 * at_typical + 0.75 * at_typical * 4, 0.0]
    np.testing.assert_allclose(got[0], want, rtol=1e-12)
    # at the typical flow the loss is the stated share of the supply (flow + loss)
    assert got[0, 1] / (10 + got[0, 1]) == pytest.approx(0.04)


def test_outage_truth_of_a_big_county_with_its_first_plan_late() -> None:
    """The truth table has a fixed schema: a plan id first seen after a hundred unplanned outages is kept."""
    import datetime as dt
    from types import SimpleNamespace

    from meterlake.generate._outages import Injected, Outages

    topo = SimpleNamespace(area_code=["TA1", "TA2"], meter_id=["M1"], feeder_code=["F1"])
    out = Outages(start=dt.date(2026, 3, 1), days=15)
    out.injected = [Injected(no=n, day=0, kind="fault", areas=[0], meters=[], s0=3600, s1=7200) for n in range(1, 151)]
    out.injected.append(
        Injected(no=151, day=14, kind="planned", areas=[1], meters=[], s0=0, s1=60, plan_id="TD202603001")
    )
    outages, plans = out.truth(topo)  # type: ignore[arg-type]
    assert outages.height == 151 and plans.height == 0
    assert outages["plan_id"].null_count() == 150
    last = outages.row(150, named=True)
    assert last["plan_id"] == "TD202603001" and last["area_id"] == "TA2" and last["cause"] == "planned"
    assert last["end_time"] == dt.datetime(2026, 3, 15, 0, 1)
