"""The check stage: the gate over a small lake, the docs stage's Data Docs, and the stop before publish."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from stage_kit import count_calls

from meterlake import pipeline
from meterlake.checks.results import CHECK_RESULTS
from meterlake.lake import Lake
from meterlake.schemas._base import Table
from meterlake.schemas.area_loss_daily import AREA_LOSS_DAILY
from meterlake.schemas.meter_daily import METER_DAILY
from meterlake.schemas.quarantine import QUARANTINE
from meterlake.schemas.registers import LANDING as REGISTERS_LANDING
from meterlake.settings import Settings
from meterlake.stages import BlockingValidationError, StageContext, StageError, StageResult, check, docs

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
REGISTERS = REGISTERS_LANDING.clean


def _frame(table: Table, **columns: list) -> pl.DataFrame:
    """A frame of ``table`` with the given columns; required ones neutral, the rest empty."""
    n = len(next(iter(columns.values())))
    out = {}
    for c in table.columns:
        if c.name in columns:
            out[c.name] = pl.Series(c.name, columns[c.name], dtype=c.dtype)
        elif not c.nullable:
            value = c.codes[0] if c.codes else ("x" if c.dtype == pl.String else 0)
            out[c.name] = pl.Series(c.name, [value] * n, dtype=c.dtype)
        else:
            out[c.name] = pl.Series(c.name, [None] * n, dtype=c.dtype)
    return pl.DataFrame(out)


def meter_daily(day: dt.date, quality: list[str] | None = None, duplicate: bool = False) -> pl.DataFrame:
    quality = quality or ["actual"] * 3
    kwh = [None if q == "missing" else v for q, v in zip(quality, [400.0, 10.0, 20.0], strict=False)]
    frame = _frame(
        METER_DAILY,
        date=[day] * 3,
        meter_id=["A1", "C1", "C2"],
        customer_id=[None, "U1", "U2"],
        area_id=["A1"] * 3,
        role=["area_master", "customer", "customer"],
        multiplier=[40.0, 1.0, 1.0],
        kwh=kwh,
        reverse_kwh=[0.0] * 3,
        quality=quality,
    )
    return pl.concat([frame, frame.head(1)]) if duplicate else frame


def build_lake(root: Path) -> Lake:
    """Two good days: registers, meter_daily, area loss, and quarantine."""
    lake = Lake(root)
    for day in (D1, D2):
        lake.write_partition(METER_DAILY, day, meter_daily(day))
        lake.write_partition(
            REGISTERS,
            day,
            _frame(
                REGISTERS,
                meter_id=["A1", "C1"],
                freeze_date=[day] * 2,
                total_kwh=[10.0, 20.0],
                source_file=["registers/r.csv"] * 2,
                source_line=[2, 3],
            ),
        )
        lake.write_partition(
            AREA_LOSS_DAILY,
            day,
            _frame(
                AREA_LOSS_DAILY,
                date=[day],
                area_id=["A1"],
                master_kwh=[400.0],
                pv_export_kwh=[0.0],
                supply_kwh=[400.0],
                sales_kwh=[30.0 + 350.0],
                loss_kwh=[20.0],
                loss_rate=[0.05],
                status=["normal"],
            ),
        )
    lake.write_partition(
        QUARANTINE,
        "registers",
        _frame(
            QUARANTINE,
            dataset=["registers"],
            source_file=["registers/bad.csv"],
            line=[7],
            reason=["bad_number"],
        ),
    )
    # ingest writes quarantine as one file per landing file: a partition of several files
    lake.write_file(
        lake.table_dir(QUARANTINE) / "dataset=registers" / "file-0001.parquet",
        _frame(
            QUARANTINE, dataset=["registers"], source_file=["registers/cut.csv"], line=[None], reason=["truncated"]
        ).drop("dataset"),
    )
    return lake


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("template") / "lake"
    build_lake(root)
    # run once so that the copies start with GX's suites stored (as a daily lake would)
    check.run(_ctx(root, "warm-up"), [D1, D2])
    docs.run(_ctx(root, "warm-up"), [D1, D2])
    return root


@pytest.fixture
def lake(template: Path, tmp_path: Path) -> Lake:
    root = tmp_path / "lake"
    shutil.copytree(template, root)
    return Lake(root)


def _ctx(root: Path, run_id: str = "run-1") -> StageContext:
    return StageContext(settings=Settings(lake=root, landing=root.parent / "landing"), run_id=run_id)


def test_clean_run_passes_and_leaves_its_findings_for_the_docs_stage(lake: Lake) -> None:
    result = check.run(_ctx(lake.root), [D1, D2])
    assert isinstance(result, StageResult)
    details = result.details
    # the gate passed without Great Expectations: no page yet, the judged findings wait
    assert details["data_docs"] is None and details["data_docs_pages"] == []
    waiting = Path(details["data_docs_pending"])
    assert waiting == lake.meta / "data_docs_pending" / "run-1.parquet"
    judged = pl.read_parquet(waiting)
    assert judged.height == result.rows["check_results"]
    assert {"value", "min_value", "max_value", "check"} <= set(judged.columns)
    assert details["findings"]["blocking"] == details["findings"]["warnings"] == 0
    assert set(details["tables"]) == {
        "clean/registers",
        "marts/meter_daily",
        "marts/area_loss_daily",
        "marts/quarantine",
    }
    assert details["tables"]["marts/meter_daily"]["partitions"] == ["date=2026-01-01", "date=2026-01-02"]
    assert details["tables"]["marts/quarantine"] == {
        "partitions": ["dataset=registers"],
        "rows": 2,
        "rules": details["tables"]["marts/quarantine"]["rules"],
        "row_level": False,
    }


def test_the_docs_stage_renders_the_passed_gate_and_clears_it(lake: Lake) -> None:
    check.run(_ctx(lake.root), [D1, D2])
    result = docs.run(_ctx(lake.root), [D1, D2])
    details = result.details
    index = Path(details["data_docs"])
    assert index == lake.reports / "data_docs" / "index.html"
    assert index.is_file()
    pages = [Path(p) for p in details["data_docs_pages"]]
    # one validation page for the run: every finding of the 4 tables (and area loss's rows)
    assert len(pages) == 1
    assert all(p.is_file() and lake.reports in p.parents for p in pages)
    assert "run-1" in pages[0].as_posix()
    assert details["runs"] == ["run-1"]
    assert list((lake.meta / "data_docs_pending").iterdir()) == []
    # the pages load nothing from the network
    from meterlake.checks.offline import REMOTE_ASSET

    site = lake.reports / "data_docs"
    remote = [p for p in site.rglob("*.html") if REMOTE_ASSET.search(p.read_text(encoding="utf-8"))]
    assert remote == []
    # GX's own files stay in the lake, not in the repository
    assert (lake.meta / "gx").is_dir()
    assert not (Path.cwd() / "gx").exists()
    # nothing left: a second docs run says so and builds nothing
    again = docs.run(_ctx(lake.root, "run-2"), [D1])
    assert again.notes == ["no passed gate waiting for its Data Docs page"]
    assert again.details == {}


def test_the_docs_stage_renders_every_waiting_run_oldest_first(lake: Lake) -> None:
    import os

    check.run(_ctx(lake.root, "run-b"), [D1])
    check.run(_ctx(lake.root, "run-a"), [D2])
    waiting = lake.meta / "data_docs_pending"
    os.utime(waiting / "run-b.parquet", ns=(1_000_000_000, 1_000_000_000))  # run-b's gate came first
    result = docs.run(_ctx(lake.root, "run-c"), [D1])
    assert result.details["runs"] == ["run-b", "run-a"]
    assert len(result.details["data_docs_pages"]) == 2
    assert "rendered the Data Docs of 2 runs: run-b, run-a" in result.notes
    assert list(waiting.iterdir()) == []


CHECK_WITHOUT_GX = """
import datetime as dt, json, sys
from meterlake import pipeline
from meterlake.settings import Settings
s = Settings(lake=sys.argv[1], landing=sys.argv[1] + "-landing")
r = pipeline.run_stage(s, "check", [dt.date(2026, 1, 1), dt.date(2026, 1, 2)], "no-gx")
print(json.dumps({"gx": "great_expectations" in sys.modules, "pending": r.details["data_docs_pending"]}))
"""


def test_a_passing_gate_does_not_import_great_expectations(lake: Lake) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK_WITHOUT_GX, str(lake.root)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got == {"gx": False, "pending": str(lake.meta / "data_docs_pending" / "no-gx.parquet")}


def test_absent_tables_are_skipped_with_a_note(lake: Lake) -> None:
    notes = check.run(_ctx(lake.root), [D1]).notes
    assert "clean/curves: not in the lake, skipped" in notes
    assert "marts/bills_monthly: not in the lake, skipped" in notes
    assert not any("meter_daily" in n for n in notes)


def test_findings_are_written_with_their_contract(lake: Lake) -> None:
    result = check.run(_ctx(lake.root, "run-7"), [D1])
    path = Path(result.details["check_results"])
    assert path == lake.root / "_meta" / "check_results" / "run_id=run-7" / "part-0.parquet"
    found = pl.read_parquet(path)
    assert found.columns == [c for c in CHECK_RESULTS.names if c != "run_id"]
    assert found.height == result.rows["check_results"]
    assert found["success"].all()
    md = found.filter(pl.col("table") == "meter_daily", pl.col("rule") == "meter_daily.key.unique")
    assert_frame_equal(
        md.select("partition", "severity", "observed"),
        pl.DataFrame({"partition": ["date=2026-01-01"], "severity": ["blocking"], "observed": [0.0]}),
    )


def test_blocking_failure_raises_naming_expectation_table_and_partition(lake: Lake) -> None:
    lake.write_partition(METER_DAILY, D2, meter_daily(D2, duplicate=True))
    with pytest.raises(BlockingValidationError) as caught:
        check.run(_ctx(lake.root), [D1, D2])
    msg = str(caught.value)
    assert "\n" not in msg
    assert msg.startswith(
        "blocking expectation failed: meter_daily.key.unique (expect_column_values_to_be_between on key_duplicates: "
        "expected at most 0, found 1) in table marts/meter_daily, partition date=2026-01-02"
    )
    # the Data Docs of the failing run exist, and the message points at them
    index = lake.reports / "data_docs" / "index.html"
    assert msg.endswith(f"Data Docs: {index}")
    result = caught.value.result  # type: ignore[attr-defined]
    assert all(Path(p).is_file() for p in result.details["data_docs_pages"])
    assert result.details["failures"][0]["rule"] == "meter_daily.key.unique"


def test_a_missing_meter_daily_day_blocks(lake: Lake) -> None:
    d3 = dt.date(2026, 1, 3)
    with pytest.raises(BlockingValidationError, match=r"meter_daily\.partition\.present .* partition date=2026-01-03"):
        check.run(_ctx(lake.root), [D1, d3])


def test_a_corrupt_partition_blocks_as_unreadable(lake: Lake) -> None:
    (lake.root / "clean" / "registers" / "freeze_date=2026-01-02" / "part-0.parquet").write_bytes(b"not parquet")
    with pytest.raises(
        BlockingValidationError,
        match=r"registers\.partition\.readable .* table clean/registers, partition freeze_date=2026-01-02",
    ):
        check.run(_ctx(lake.root), [D2])


def test_a_partition_file_lacking_a_column_blocks(lake: Lake) -> None:
    # one of the quarantine files lacks `raw`: the partition does not meet its contract
    path = lake.table_dir(QUARANTINE) / "dataset=registers" / "file-0002.parquet"
    frame = _frame(QUARANTINE, dataset=["registers"], source_file=["registers/x.csv"], line=[3], reason=["field_count"])
    lake.write_file(path, frame.drop("dataset", "raw"))
    with pytest.raises(BlockingValidationError) as caught:
        check.run(_ctx(lake.root), [D1])
    assert str(caught.value).startswith(
        "blocking expectation failed: quarantine.schema.columns (expect_column_values_to_be_between on missing_columns: "
        "expected at most 0, found 1) in table marts/quarantine, partition dataset=registers"
    )


def test_warnings_do_not_raise_and_become_notes(lake: Lake) -> None:
    # 1 of 3 meter-days missing: above the 2 % warning threshold, nothing blocking
    lake.write_partition(METER_DAILY, D1, meter_daily(D1, quality=["actual", "actual", "missing"]))
    result = check.run(_ctx(lake.root), [D1])
    warnings = [n for n in result.notes if n.startswith("warning: ")]
    assert warnings == [
        "warning: meter_daily.quality.missing_share (expect_column_values_to_be_between on missing_share: "
        "expected at most 0.02, found 0.333333) in table marts/meter_daily, partition date=2026-01-01"
    ]
    assert result.details["findings"] == {"evaluated": result.rows["check_results"], "blocking": 0, "warnings": 1}


def test_severity_override_from_the_config_dir(lake: Lake, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    conf.joinpath("checks.toml").write_text('[severity]\n"meter_daily.key.unique" = "warning"\n', encoding="utf-8")
    lake.write_partition(METER_DAILY, D2, meter_daily(D2, duplicate=True))
    ctx = StageContext(settings=Settings(lake=lake.root, config_dir=conf), run_id="run-2")
    result = check.run(ctx, [D2])
    assert any(n.startswith("warning: meter_daily.key.unique") for n in result.notes)


@pytest.fixture
def fake_publish(monkeypatch: pytest.MonkeyPatch) -> list[list[dt.date]]:
    """A publish stage that records its calls instead of publishing."""
    calls: list[list[dt.date]] = []

    def run(ctx: StageContext, dates: list[dt.date]) -> StageResult:
        calls.append(dates)
        return StageResult(stage="publish")

    monkeypatch.setitem(pipeline.RUNNERS, "publish", run)
    return calls


def _record(lake: Lake) -> dict:
    (path,) = (lake.meta / "runs").glob("*.json")
    return json.loads(path.read_text(encoding="utf-8"))


def test_blocking_failure_stops_the_run_before_publish(lake: Lake, fake_publish: list) -> None:
    lake.write_partition(METER_DAILY, D1, meter_daily(D1, duplicate=True))
    settings = Settings(lake=lake.root, landing=lake.root.parent / "landing")
    with pytest.raises(BlockingValidationError, match=r"meter_daily\.key\.unique"):
        pipeline.run(settings, D1, D2, stages=["check", "publish"], run_id="blocked")
    assert fake_publish == []
    record = _record(lake)
    assert record["status"] == "failed"
    assert record["error"].startswith("blocking expectation failed: meter_daily.key.unique")
    assert (lake.reports / "data_docs" / "index.html").is_file()


def test_a_passing_run_publishes_and_links_the_data_docs(lake: Lake, fake_publish: list) -> None:
    settings = Settings(lake=lake.root, landing=lake.root.parent / "landing")
    record = pipeline.run(settings, D1, D2, stages=["check", "docs", "publish"], run_id="passed")
    assert fake_publish == [[D1, D2]]
    assert record["status"] == "ok"
    stages = _record(lake)["stages"]
    assert list(stages) == ["check", "docs", "publish"]
    docs_index = stages["docs"]["details"]["data_docs"]
    assert Path(docs_index).is_file() and docs_index.endswith("reports/data_docs/index.html")
    assert [Path(p).is_file() for p in stages["docs"]["details"]["data_docs_pages"]] == [True]


def test_a_gate_that_disagrees_with_gx_fails_the_docs_stage_in_one_line(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meterlake.checks import runner

    judge = runner.judge

    def lenient(inp):  # a verdict that lets a duplicate key through
        return judge(inp).with_columns(success=pl.lit(True))

    monkeypatch.setattr(runner, "judge", lenient)
    lake.write_partition(METER_DAILY, D2, meter_daily(D2, duplicate=True))
    check.run(_ctx(lake.root), [D2])  # the lenient verdict passes the gate
    with pytest.raises(StageError) as caught:
        docs.run(_ctx(lake.root), [D2])
    assert not isinstance(caught.value, BlockingValidationError)
    assert str(caught.value).startswith("docs: run run-1: Great Expectations and the gate disagree on 1 finding(s)")
    assert "meter_daily.key.unique" in str(caught.value)
    assert "\n" not in str(caught.value)
    # the findings stay waiting: the next docs run tries again
    assert (lake.meta / "data_docs_pending" / "run-1.parquet").is_file()


def _counted_inputs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tables whose input the check stage builds in this process."""
    return count_calls(monkeypatch, check, "build_input", lambda suite, *_a, **_k: suite.table)


def _results(lake: Lake, run_id: str) -> pl.DataFrame:
    return pl.read_parquet(lake.partition_path(CHECK_RESULTS, run_id))


def test_tables_judged_ahead_are_reused_where_their_files_are_unchanged(
    lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = Lake(tmp_path / "other")
    shutil.copytree(lake.root, other.root)
    alone = check.run(_ctx(other.root, "r1"), [D1, D2])  # the gate with nothing ahead
    ahead = tmp_path / "ahead.pickle"
    # the four tables on disk, each judged ahead
    assert check.check_ahead(_ctx(lake.root, "r1"), [D1, D2], ahead) == 4
    built = _counted_inputs(monkeypatch)
    asked: list[bool] = []

    def waited() -> Path:
        asked.append(True)
        return ahead

    ctx = _ctx(lake.root, "r1")
    ctx.checked_ahead = waited
    result = check.run(ctx, [D1, D2])
    assert asked == [True] and built == []  # nothing judged again
    assert result.notes == alone.notes and result.details["tables"] == alone.details["tables"]
    assert result.details["findings"] == alone.details["findings"]
    assert_frame_equal(_results(lake, "r1"), _results(other, "r1"))


def test_a_table_written_after_it_was_judged_ahead_is_judged_again(
    lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ahead = tmp_path / "ahead.pickle"
    check.check_ahead(_ctx(lake.root, "r1"), [D1, D2], ahead)
    # meter_daily of D1 rewritten after: 1 of 3 meter-days missing (a warning)
    lake.write_partition(METER_DAILY, D1, meter_daily(D1, quality=["actual", "actual", "missing"]))
    other = Lake(tmp_path / "other")
    shutil.copytree(lake.root, other.root)
    alone = check.run(_ctx(other.root, "r1"), [D1, D2])
    built = _counted_inputs(monkeypatch)
    ctx = _ctx(lake.root, "r1")
    ctx.checked_ahead = lambda: ahead
    result = check.run(ctx, [D1, D2])
    assert built == ["meter_daily"]  # the others reused
    assert result.details["findings"]["warnings"] == 1 and result.notes == alone.notes
    assert_frame_equal(_results(lake, "r1"), _results(other, "r1"))


@pytest.mark.parametrize(
    "ahead",
    [
        pytest.param(None, id="none-asked"),
        pytest.param("missing", id="helper-failed"),
        pytest.param("garbage", id="unreadable"),
    ],
)
def test_without_tables_judged_ahead_the_stage_judges_them(
    lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ahead: str | None
) -> None:
    (tmp_path / "garbage").write_bytes(b"not a pickle")
    built = _counted_inputs(monkeypatch)
    ctx = _ctx(lake.root, "r1")
    ctx.checked_ahead = None if ahead is None else (lambda: None if ahead == "missing" else tmp_path / ahead)
    check.run(ctx, [D1, D2])
    assert sorted(built) == ["area_loss_daily", "meter_daily", "quarantine", "registers"]


def test_the_tables_are_judged_on_two_threads_and_the_gate_is_the_one_of_one_thread(
    lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a warning in meter_daily of D1 (1 of 3 meter-days missing), so that a finding fails
    lake.write_partition(METER_DAILY, D1, meter_daily(D1, quality=["actual", "actual", "missing"]))
    other = Lake(tmp_path / "other")
    shutil.copytree(lake.root, other.root)
    monkeypatch.setattr(check, "TABLE_THREADS", 1)
    alone = check.run(_ctx(other.root, "r1"), [D1, D2])
    monkeypatch.setattr(check, "TABLE_THREADS", 2)
    threads = count_calls(monkeypatch, check, "build_input", lambda *_a, **_k: threading.current_thread().name)
    lines: list[str] = []
    ctx = _ctx(lake.root, "r1")
    ctx.progress = lines.append
    result = check.run(ctx, [D1, D2])
    # the four tables, each on one of the stage's threads
    assert len(threads) == 4 and {t.rsplit("_", 1)[0] for t in threads} == {"meterlake-check"}
    assert result.notes == alone.notes and result.details["tables"] == alone.details["tables"]
    assert list(result.details["tables"]) == list(alone.details["tables"])  # the gate's order
    assert result.details["findings"]["warnings"] == 1
    assert_frame_equal(_results(lake, "r1"), _results(other, "r1"))
    # the tables' progress lines in the gate's order, whatever thread ends first
    assert [ln.split()[1].rstrip(":") for ln in lines if ln.startswith("check ")] == list(result.details["tables"])


def test_a_failing_gate_waits_for_the_helpers_gx_context_before_its_page_and_a_passing_one_does_not(
    lake: Lake,
) -> None:
    waited: list[str] = []
    ctx = _ctx(lake.root, "r1")
    ctx.gx_ready = lambda: waited.append("ready")
    check.run(ctx, [D1, D2])  # passes: GX is not opened here
    assert waited == []
    lake.write_partition(METER_DAILY, D2, meter_daily(D2, duplicate=True))
    with pytest.raises(BlockingValidationError):
        check.run(ctx, [D1, D2])
    assert waited == ["ready"]
    assert (lake.reports / "data_docs" / "index.html").is_file()
