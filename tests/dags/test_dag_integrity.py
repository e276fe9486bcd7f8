"""The DAG files parse, declare what the issues ask for, and stay light.

Also the date convention of :mod:`meterlake_common` (dags/), on hand-computed dates.
Nothing here runs a task: the end-to-end runs are in test_dag_e2e.py.
"""

from __future__ import annotations

import ast
import datetime as dt
import doctest
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"

# Airflow reads its configuration once, at import: point it at a throwaway home (it
# writes airflow.cfg there) before anything imports airflow, unless something already did.
if "airflow" not in sys.modules:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="meterlake-airflow-home-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS)
# what Airflow's bundle DagBag does in the DAG processor and on workers: the DAG
# folder is importable, so the DAG files can share dags/meterlake_common.py
if str(DAGS) not in sys.path:
    sys.path.insert(0, str(DAGS))

import itertools  # noqa: E402

import meterlake_common as mc  # noqa: E402
from airflow.dag_processing.dagbag import DagBag  # noqa: E402
from airflow.sdk import Asset, CronTriggerTimetable  # noqa: E402
from airflow.sdk.exceptions import AirflowFailException  # noqa: E402

DAG_FILES = sorted(p for p in DAGS.glob("*.py"))
EXPECTED_DAGS = {"meterlake_ingest", "meterlake_marts", "meterlake_publish", "meterlake_monthly"}
#: the fan-out over org units of a sharded lake (dags/meterlake_province.py)
PROVINCE_DAGS = {"meterlake_province", "meterlake_province_monthly"}
#: modules no DAG file may load at parse time (they belong inside tasks)
HEAVY = ("polars", "pyarrow", "pandas", "numpy", "great_expectations", "duckdb", "meterlake")


@pytest.fixture(scope="module")
def bag() -> DagBag:
    with warnings.catch_warnings():
        # Airflow 3.3 reads dags/.airflowignore with pathspec's deprecated
        # "gitwildmatch" pattern class (airflow/_shared/module_loading/file_discovery.py);
        # the warning is Airflow's to fix, and the ignore file is still honoured.
        warnings.filterwarnings("ignore", message="GitWildMatchPattern", category=DeprecationWarning)
        return DagBag(dag_folder=str(DAGS))


# --- parsing ---------------------------------------------------------------------
def test_dag_folder_parses_without_import_errors(bag):
    assert bag.import_errors == {}


def test_dag_ids(bag):
    assert set(bag.dag_ids) == EXPECTED_DAGS | PROVINCE_DAGS


def test_each_file_parses_in_well_under_a_second(bag):
    # wall clock, so loose: a loaded machine stretches it; the CPU-time probe below is the strict one
    slow = {s.file: s.duration.total_seconds() for s in bag.dagbag_stats if s.duration.total_seconds() >= 1.0}
    assert slow == {}, f"DAG files slower than 1 s to parse: {slow}"


def test_dag_files_load_nothing_heavy_and_parse_fast():
    """In a fresh interpreter: the airflow.sdk import is the only real cost."""
    probe = f"""
import json, runpy, sys, time
sys.path.insert(0, {str(DAGS)!r})
import airflow.sdk  # what every DAG file pays anyway; not counted
out = {{}}
for path in {[str(p) for p in DAG_FILES]!r}:
    t0 = time.process_time()  # CPU time: other processes on the machine do not count
    runpy.run_path(path)
    out[path] = time.process_time() - t0
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({list(HEAVY)!r}))
print(json.dumps({{"seconds": out, "heavy": heavy}}))
"""
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert sum(report["seconds"].values()) < 1.0, report["seconds"]


def _module_imports(path: Path) -> set[str]:
    """Top-level names a file imports at module level (not inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in DAG_FILES])
def test_module_level_imports_are_airflow_sdk_stdlib_or_siblings(path):
    siblings = {p.stem for p in DAG_FILES}
    allowed = set(sys.stdlib_module_names) | siblings
    bad = {
        name
        for name in _module_imports(path)
        if name.split(".")[0] not in allowed and not (name == "airflow.sdk" or name.startswith("airflow.sdk."))
    }
    assert bad == set(), f"{path.name} imports at module level: {sorted(bad)}"


# --- schedules and shape ---------------------------------------------------------
@pytest.mark.parametrize(
    ("dag_id", "cron"),
    [
        pytest.param("meterlake_ingest", "0 6 * * *", id="ingest-daily-06:00"),
        pytest.param("meterlake_monthly", "0 8 2 * *", id="monthly-2nd-08:00"),
    ],
)
def test_cron_dags_run_in_shanghai_time(bag, dag_id, cron):
    dag = bag.dags[dag_id]
    assert isinstance(dag.timetable, CronTriggerTimetable)
    assert dag.timetable.expression == cron
    assert dag.timetable.timezone == "Asia/Shanghai"
    assert dag.catchup is False


@pytest.mark.parametrize(
    ("dag_id", "asset_uri"),
    [
        pytest.param("meterlake_marts", "meterlake://lake/clean", id="marts-on-clean"),
        pytest.param("meterlake_publish", "meterlake://lake/checked", id="publish-on-checked"),
    ],
)
def test_downstream_dags_schedule_on_assets(bag, dag_id, asset_uri):
    condition = bag.dags[dag_id].timetable.asset_condition
    assert [a.uri for a in condition.objects] == [asset_uri]


@pytest.mark.parametrize(
    ("dag_id", "upstream"),
    [
        pytest.param("meterlake_ingest", {"plan": set(), "ingest": {"plan"}}, id="ingest"),
        pytest.param(
            "meterlake_marts",
            {
                "plan": set(),
                "outages": {"plan"},
                "validate": {"outages"},
                "loss": {"validate"},
                "anomalies": {"loss"},
                "billing": {"loss"},
                "receivables": {"billing"},
                "check": {"anomalies", "receivables"},
                "docs": {"check"},
            },
            id="marts",
        ),
        pytest.param("meterlake_publish", {"plan": set(), "publish": {"plan"}}, id="publish"),
        pytest.param(
            "meterlake_monthly",
            {
                "plan": set(),
                "loss": {"plan"},
                "billing": {"loss"},
                "receivables": {"billing"},
                "check": {"loss", "receivables"},
                "docs": {"check"},
            },
            id="monthly",
        ),
    ],
)
def test_tasks_and_dependencies(bag, dag_id, upstream):
    dag = bag.dags[dag_id]
    assert {t.task_id: set(t.upstream_task_ids) for t in dag.tasks} == upstream


@pytest.mark.parametrize(
    ("dag_id", "outlets"),
    [
        pytest.param("meterlake_ingest", {"ingest": "meterlake://lake/clean"}, id="ingest"),
        pytest.param(
            "meterlake_marts",
            {
                "outages": "meterlake://lake/marts/outage_events",
                "validate": "meterlake://lake/marts/meter_daily",
                "loss": "meterlake://lake/marts/loss",
                "anomalies": "meterlake://lake/marts/anomalies",
                "billing": "meterlake://lake/marts/billing",
                "receivables": "meterlake://lake/marts/receivables",
                "check": "meterlake://lake/checked",
                "docs": "meterlake://lake/reports/data_docs",
            },
            id="marts",
        ),
        pytest.param("meterlake_publish", {"publish": "meterlake://lake/published"}, id="publish"),
        pytest.param(
            "meterlake_monthly",
            {
                "loss": "meterlake://lake/marts/loss",
                "billing": "meterlake://lake/marts/billing",
                "receivables": "meterlake://lake/marts/receivables",
                "check": "meterlake://lake/checked",
                "docs": "meterlake://lake/reports/data_docs",
            },
            id="monthly",
        ),
    ],
)
def test_stage_tasks_emit_their_assets(bag, dag_id, outlets):
    dag = bag.dags[dag_id]
    found = {t.task_id: [o.uri for o in t.outlets] for t in dag.tasks if t.outlets}
    assert found == {task: [uri] for task, uri in outlets.items()}


def test_publish_is_reached_only_through_the_check_gate(bag):
    """The only producers of the asset publishing waits on are check tasks."""
    producers = {
        (dag.dag_id, t.task_id)
        for dag in bag.dags.values()
        for t in dag.tasks
        if any(isinstance(o, Asset) and o.uri == "meterlake://lake/checked" for o in t.outlets)
    }
    assert producers == {("meterlake_marts", "check"), ("meterlake_monthly", "check")}
    for dag_id in ("meterlake_marts", "meterlake_monthly"):
        assert bag.dags[dag_id].get_task("check").retries == 0


@pytest.mark.parametrize(
    ("dag_id", "paused"),
    [
        pytest.param("meterlake_ingest", True, id="ingest-waits-for-an-operator"),
        pytest.param("meterlake_monthly", True, id="monthly-waits-for-an-operator"),
        pytest.param("meterlake_marts", False, id="marts-flows"),
        pytest.param("meterlake_publish", False, id="publish-flows"),
    ],
)
def test_schedules_start_paused_and_consumers_do_not(bag, dag_id, paused):
    """A fresh deployment runs nothing on its own; asset events still flow through."""
    assert bag.dags[dag_id].is_paused_upon_creation is paused


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_runs_are_serial_and_overridable(bag, dag_id):
    dag = bag.dags[dag_id]
    assert dag.max_active_runs == 1
    assert {"landing", "lake"} <= set(dag.params)
    expected = {"month"} if dag_id == "meterlake_monthly" else {"start", "end"}
    assert expected <= set(dag.params)
    assert dict(dag.params)["lake"] is None
    assert "meterlake" in dag.tags


# --- the date convention ---------------------------------------------------------
@pytest.mark.parametrize(
    ("logical", "expected"),
    [
        # the 06:00 Asia/Shanghai tick of 9 Jan is 22:00 UTC on 8 Jan
        pytest.param(dt.datetime(2026, 1, 8, 22, 0, tzinfo=dt.UTC), dt.date(2026, 1, 8), id="cron-tick"),
        # `airflow dags test X 2026-01-09` with the UTC default: 08:00 local on the 9th
        pytest.param(dt.datetime(2026, 1, 9, 0, 0, tzinfo=dt.UTC), dt.date(2026, 1, 8), id="utc-midnight"),
        # 23:59 UTC on 9 Jan is already 07:59 on the 10th in Shanghai
        pytest.param(dt.datetime(2026, 1, 9, 23, 59, tzinfo=dt.UTC), dt.date(2026, 1, 9), id="utc-late"),
        pytest.param(
            dt.datetime(2026, 3, 1, 0, 0, tzinfo=mc.LOCAL),
            dt.date(2026, 2, 28),
            id="month-turn-local",
        ),
        pytest.param(dt.datetime(2024, 3, 1, 6, 0, tzinfo=mc.LOCAL), dt.date(2024, 2, 29), id="leap-day"),
    ],
)
def test_a_run_processes_the_local_day_before_its_logical_date(logical, expected):
    assert mc.data_date(logical) == expected


def test_a_naive_logical_date_is_refused():
    with pytest.raises(AirflowFailException, match="timezone-aware"):
        mc.data_date(dt.datetime(2026, 1, 9))


@pytest.mark.parametrize(
    ("logical", "month"),
    [
        pytest.param(dt.datetime(2026, 2, 2, 8, 0, tzinfo=mc.LOCAL), "2026-01", id="feb-closes-jan"),
        pytest.param(dt.datetime(2026, 1, 2, 8, 0, tzinfo=mc.LOCAL), "2025-12", id="year-turn"),
        # 23:00 UTC on 31 Jan is 07:00 on 1 Feb local: January is the previous month
        pytest.param(dt.datetime(2026, 1, 31, 23, 0, tzinfo=dt.UTC), "2026-01", id="utc-evening"),
    ],
)
def test_monthly_run_closes_the_previous_local_month(logical, month):
    assert mc.previous_month(logical) == month


@pytest.mark.parametrize(
    ("month", "first", "last", "days"),
    [
        pytest.param("2026-01", "2026-01-01", "2026-01-31", 31, id="jan"),
        pytest.param("2026-02", "2026-02-01", "2026-02-28", 28, id="feb"),
        pytest.param("2024-02", "2024-02-01", "2024-02-29", 29, id="feb-leap"),
        pytest.param("2026-12", "2026-12-01", "2026-12-31", 31, id="dec"),
    ],
)
def test_month_dates(month, first, last, days):
    dates = mc.month_dates(month)
    assert (dates[0].isoformat(), dates[-1].isoformat(), len(dates)) == (first, last, days)


def test_month_dates_names_a_bad_month():
    with pytest.raises(AirflowFailException, match=r"param month: expected YYYY-MM, found '2026-13'"):
        mc.month_dates("2026-13")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param(
            {"start": "2026-01-30", "end": "2026-02-01"},
            ["2026-01-30", "2026-01-31", "2026-02-01"],
            id="range",
        ),
        pytest.param({"start": "2026-01-05", "end": None}, ["2026-01-05"], id="start-only"),
        pytest.param({"start": None, "end": "2026-01-05"}, ["2026-01-05"], id="end-only"),
        pytest.param({"start": None, "end": None}, None, id="neither"),
    ],
)
def test_param_dates(params, expected):
    got = mc.param_dates(params)
    assert (None if got is None else [d.isoformat() for d in got]) == expected


@pytest.mark.parametrize(
    ("params", "message"),
    [
        pytest.param(
            {"start": "2026-01-08", "end": "2026-01-01"},
            "params: expected end >= start, found start=2026-01-08 end=2026-01-01",
            id="reversed",
        ),
        pytest.param(
            {"start": "08/01/2026", "end": None},
            "param start: expected a date YYYY-MM-DD, found '08/01/2026'",
            id="not-iso",
        ),
    ],
)
def test_param_dates_errors_say_expected_and_found(params, message):
    with pytest.raises(AirflowFailException) as err:
        mc.param_dates(params)
    assert str(err.value) == message


@given(
    start=st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31)),
    span=st.integers(min_value=0, max_value=400),
)
def test_param_dates_is_the_whole_inclusive_range(start, span):
    end = start + dt.timedelta(days=span)
    dates = mc.param_dates({"start": start.isoformat(), "end": end.isoformat()})
    assert len(dates) == span + 1
    assert (dates[0], dates[-1]) == (start, end)
    assert all((b - a).days == 1 for a, b in itertools.pairwise(dates))


def test_safe_run_id_keeps_only_file_name_characters():
    assert mc.safe_run_id("asset_triggered__2026-01-09T06:00:01.5+08:00_ab/c") == (
        "asset_triggered__2026-01-09T060001.5-0800_abc"
    )


# --- the plan a task hands on ----------------------------------------------------
def _event(**extra):
    return SimpleNamespace(extra=extra)


def _context(params=None, events=None, logical_date=None, run_id="manual__x"):
    base = {"start": None, "end": None, "landing": None, "lake": None}
    return {
        "params": {**base, **(params or {})},
        "triggering_asset_events": events or {},
        "logical_date": logical_date,
        "dag_run": SimpleNamespace(run_after=dt.datetime(2026, 1, 9, 22, 0, tzinfo=dt.UTC)),
        "run_id": run_id,
        "dag": SimpleNamespace(dag_id="meterlake_marts"),
    }


@pytest.fixture
def paths(tmp_path):
    return {"landing": str(tmp_path / "landing"), "lake": str(tmp_path / "lake")}


def test_plan_from_logical_date(paths):
    plan = mc.plan_daily(
        _context(
            params=paths,
            logical_date=dt.datetime(2026, 1, 8, 22, 0, tzinfo=dt.UTC),
            run_id="scheduled__a:b",
        )
    )
    assert plan == {"dates": ["2026-01-08"], **paths, "run_id": "scheduled__ab"}


def test_plan_without_logical_date_uses_the_trigger_time(paths):
    # run_after 22:00 UTC on 9 Jan = 06:00 on the 10th in Shanghai -> data date 9 Jan
    assert mc.plan_daily(_context(params=paths))["dates"] == ["2026-01-09"]


def test_plan_unites_the_dates_of_the_triggering_events(tmp_path):
    lake = str(tmp_path / "lake")
    events = {
        "clean": [
            _event(dates=["2026-01-08"], lake=lake, landing=str(tmp_path / "in"), run_id="r1"),
            _event(
                dates=["2026-01-09", "2026-01-03"],
                lake=lake,
                landing=str(tmp_path / "in"),
                run_id="r1",
            ),
        ]
    }
    plan = mc.plan_daily(_context(events=events, logical_date=dt.datetime(2026, 5, 1, tzinfo=dt.UTC)))
    assert plan == {
        "dates": ["2026-01-03", "2026-01-08", "2026-01-09"],
        "landing": str(tmp_path / "in"),
        "lake": lake,
        "run_id": "r1",
    }


def test_plan_params_win_over_events(paths):
    events = {"clean": [_event(dates=["2026-01-08"], lake="/elsewhere", run_id="r1")]}
    plan = mc.plan_daily(_context(params={"start": "2026-01-01", "end": "2026-01-02", **paths}, events=events))
    assert plan["dates"] == ["2026-01-01", "2026-01-02"]
    assert plan["lake"] == paths["lake"]


def test_plan_keeps_its_own_run_id_when_events_come_from_several_runs(paths):
    events = {
        "clean": [
            _event(dates=["2026-01-08"], run_id="r1"),
            _event(dates=["2026-01-09"], run_id="r2"),
        ]
    }
    assert mc.plan_daily(_context(params=paths, events=events, run_id="mine"))["run_id"] == "mine"


def test_plan_refuses_events_naming_two_lakes(tmp_path):
    events = {
        "clean": [
            _event(dates=["2026-01-08"], lake=str(tmp_path / "a")),
            _event(dates=["2026-01-09"], lake=str(tmp_path / "b")),
        ]
    }
    with pytest.raises(AirflowFailException, match=r"expected one lake path, found \[.*/a', .*/b'\]"):
        mc.plan_daily(_context(events=events, params={"landing": str(tmp_path)}))


def test_plan_paths_default_to_the_worker_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("METERLAKE_LANDING", str(tmp_path / "from-env-landing"))
    monkeypatch.setenv("METERLAKE_LAKE", str(tmp_path / "from-env-lake"))
    plan = mc.plan_daily(_context(logical_date=dt.datetime(2026, 1, 8, 22, 0, tzinfo=dt.UTC)))
    assert (plan["landing"], plan["lake"]) == (
        str(tmp_path / "from-env-landing"),
        str(tmp_path / "from-env-lake"),
    )


def test_monthly_plan_is_every_day_of_the_month(paths):
    ctx = _context(params={**paths, "month": "2024-02"})
    plan = mc.plan_monthly(ctx)
    assert (plan["month"], plan["dates"][0], plan["dates"][-1], len(plan["dates"])) == (
        "2024-02",
        "2024-02-01",
        "2024-02-29",
        29,
    )


def test_merge_unites_branch_dates_and_refuses_two_lakes():
    a = {
        "dates": ["2026-01-02", "2026-01-01"],
        "lake": "/l",
        "landing": "/in",
        "run_id": "r",
        "rows": {"x": 1},
    }
    b = {"dates": ["2026-01-03"], "lake": "/l", "landing": "/in", "run_id": "r", "rows": {"y": 2}}
    assert mc.merge(a, b) == {
        "dates": ["2026-01-01", "2026-01-02", "2026-01-03"],
        "lake": "/l",
        "landing": "/in",
        "run_id": "r",
    }
    with pytest.raises(AirflowFailException, match="branches disagree on lake: expected '/l', found '/m'"):
        mc.merge(a, {**b, "lake": "/m"})


def test_event_extra_and_plans_are_small_json():
    done = {
        "dates": [d.isoformat() for d in mc.month_dates("2026-01")],
        "lake": "/lake",
        "landing": "/landing",
        "run_id": "r",
        "stage": "loss",
        "rows": {"area_loss_daily": 31 * 400, "area_loss_monthly": 400},
        "seconds": 1.5,
    }
    extra = mc.event_extra(done)
    assert set(extra) == {"dates", "lake", "landing", "run_id", "stage", "rows"}
    assert len(json.dumps(extra)) < 2048


def test_doctests_of_meterlake_common():
    result = doctest.testmod(mc, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8
    assert result.failed == 0


# --- timeouts and failure alerts -------------------------------------------------
def test_every_task_has_a_timeout_and_the_failure_alert(bag):
    import meterlake_alerts

    tasks = [(dag.dag_id, t) for dag in bag.dags.values() for t in dag.tasks]
    assert tasks
    for dag_id, t in tasks:
        assert t.execution_timeout == dt.timedelta(minutes=240), (dag_id, t.task_id)
        callbacks = t.on_failure_callback if isinstance(t.on_failure_callback, list) else [t.on_failure_callback]
        assert meterlake_alerts.notify_failure in callbacks, (dag_id, t.task_id)


@pytest.mark.parametrize(
    ("raw", "minutes"),
    [pytest.param("90", 90, id="minutes"), pytest.param("7.5", 7.5, id="fraction")],
)
def test_task_timeout_from_the_environment(raw: str, minutes: float) -> None:
    assert mc.task_timeout({"METERLAKE_TASK_TIMEOUT_MINUTES": raw}) == dt.timedelta(minutes=minutes)


@pytest.mark.parametrize("raw", ["0", "-5", "four hours"])
def test_a_bad_task_timeout_names_the_variable(raw: str) -> None:
    with pytest.raises(ValueError, match="METERLAKE_TASK_TIMEOUT_MINUTES: expected a positive number"):
        mc.task_timeout({"METERLAKE_TASK_TIMEOUT_MINUTES": raw})


def test_dingtalk_signature_matches_openssl() -> None:
    import meterlake_alerts

    # printf '1700000000000\nSECtest' | openssl dgst -sha256 -hmac SECtest -binary | base64
    sign = "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D"
    url = meterlake_alerts.signed_url("https://oapi.dingtalk.com/robot/send?access_token=x", "SECtest", 1700000000000)
    assert url == f"https://oapi.dingtalk.com/robot/send?access_token=x&timestamp=1700000000000&sign={sign}"
    assert meterlake_alerts.signed_url("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", None) == (
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"
    )


def test_alert_message_names_task_run_and_reason() -> None:
    import meterlake_alerts

    ti = SimpleNamespace(dag_id="meterlake_marts", task_id="check", try_number=1, log_url="http://af/log")
    context = {"ti": ti, "run_id": "manual__2026", "exception": ValueError("blocking expectation\nfailed")}
    assert meterlake_alerts.message(context) == (
        "meterlake: meterlake_marts.check failed (run manual__2026, try 1): blocking expectation failed\n"
        "log: http://af/log"
    )


def test_alert_without_a_target_only_logs(monkeypatch, caplog) -> None:
    import meterlake_alerts

    monkeypatch.delenv("METERLAKE_ALERT_WEBHOOK", raising=False)
    monkeypatch.delenv("METERLAKE_ALERT_EMAIL", raising=False)
    monkeypatch.setattr(meterlake_alerts, "post_text", lambda *a: pytest.fail("nothing to post to"))
    ti = SimpleNamespace(dag_id="d", task_id="t", try_number=2, log_url=None)
    meterlake_alerts.notify_failure({"ti": ti, "run_id": "r", "exception": RuntimeError("x")})
    assert "meterlake: d.t failed (run r, try 2): x" in caplog.text


# --- the fan-out over org units -----------------------------------------------------
@pytest.mark.parametrize("dag_id", sorted(PROVINCE_DAGS))
def test_province_dags_map_one_task_per_unit(bag, dag_id):
    dag = bag.dags[dag_id]
    assert {t.task_id: set(t.upstream_task_ids) for t in dag.tasks} == {
        "plan": set(),
        "split": {"plan"},
        "unit": {"split"},
        "record": {"plan", "split", "unit"},
    }
    unit = dag.get_task("unit")
    # mapped over the units the split returns (never over meters), in the shard pool, retried alone
    assert unit.is_mapped and unit.pool == "meterlake_shards" and unit.retries == 2
    record = dag.get_task("record")
    # the record runs whatever happened to the units, and is not retried
    assert record.trigger_rule == "all_done" and record.retries == 0
    assert dag.max_active_runs == 1 and dag.is_paused_upon_creation is True
    assert {"landing", "lake", "orgs"} <= set(dag.params)
    assert dag.timetable.timezone == "Asia/Shanghai"
    assert dag.timetable.expression == ("0 8 2 * *" if dag_id.endswith("monthly") else "0 6 * * *")


def test_plan_paths_keep_object_store_prefixes(monkeypatch):
    monkeypatch.setenv("METERLAKE_LAKE", "s3://meters/prov/lake")
    paths = mc._paths({"landing": "s3://meters/prov/landing", "lake": None})
    assert paths == {"landing": "s3://meters/prov/landing", "lake": "s3://meters/prov/lake"}
