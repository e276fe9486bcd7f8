"""The `meterlake` command: CONTRACT §4 exit codes and one-line reasons."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meterlake.cli import app
from meterlake.generate import generate

runner = CliRunner()


def test_run_on_a_missing_landing_folder_fails_with_one_line(tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        [
            "run",
            "--landing",
            str(tmp_path / "nope"),
            "--lake",
            str(tmp_path / "lake"),
            "--start",
            "2026-01-01",
            "--end",
            "2026-01-01",
        ],
    )
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [f"meterlake: landing folder {tmp_path / 'nope'} does not exist"]


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        pytest.param("2026-13-01", "2026-01-02", "expected a date YYYY-MM-DD, got '2026-13-01'", id="bad-date"),
        pytest.param(
            "2026-01-05", "2026-01-02", "end date 2026-01-02 is before start date 2026-01-05", id="reversed-range"
        ),
    ],
)
def test_run_rejects_bad_dates(tmp_path: Path, start: str, end: str, message: str) -> None:
    (tmp_path / "landing").mkdir()
    res = runner.invoke(
        app,
        [
            "run",
            "--landing",
            str(tmp_path / "landing"),
            "--lake",
            str(tmp_path / "lake"),
            "--start",
            start,
            "--end",
            end,
        ],
    )
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines()[-1] == f"meterlake: {message}"


def test_generate_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "mine.csv").write_text("x")
    res = runner.invoke(app, ["generate", "--out", str(tmp_path / "landing"), "--meters", "100", "--days", "1"])
    assert res.exit_code == 1
    assert "expected a new or empty folder" in res.stderr


@pytest.mark.slow
def test_run_with_quarantined_rows_exits_zero_and_reports_accounting(tmp_path: Path) -> None:
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    generate(landing, meters=120, days=3, start=dt.date(2026, 1, 1), seed=5)
    res = runner.invoke(
        app,
        [
            "run",
            "--landing",
            str(landing),
            "--lake",
            str(lake),
            "--start",
            "2026-01-01",
            "--end",
            "2026-01-02",
            "--stage",
            "ingest",
            "--stage",
            "validate",
        ],
    )
    assert res.exit_code == 0, res.stderr
    assert "row accounting" in res.stdout
    (record,) = (lake / "_meta" / "runs").glob("*.json")
    acc = json.loads(record.read_text())["stages"]["ingest"]["details"]["accounting"]
    assert sum(a["quarantined"] for a in acc) > 0  # the generator injects bad rows
    assert all(a["unaccounted"] == 0 for a in acc)
    res = runner.invoke(app, ["status", "--lake", str(lake)])
    assert res.exit_code == 0 and "clean/curves" in res.stdout


@pytest.mark.parametrize(
    ("option", "url"),
    [
        pytest.param("--lake", "gs://bucket/lake", id="gs-lake"),
        pytest.param("--landing", "oss://bucket/landing", id="oss-landing"),
    ],
)
def test_object_storage_other_than_s3_fails_with_one_line_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: str, url: str
) -> None:
    monkeypatch.chdir(tmp_path)
    paths = {"--landing": str(tmp_path / "landing"), "--lake": str(tmp_path / "lake"), option: url}
    (tmp_path / "landing").mkdir()
    args = ["run", *(x for kv in paths.items() for x in kv), "--start", "2026-01-01", "--end", "2026-01-01"]
    res = runner.invoke(app, args)
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [
        f"meterlake: {option} {url}: object storage is reached through its S3 API: give s3://bucket/prefix "
        "and the endpoint in AWS_ENDPOINT_URL, or mount the bucket and give its local path"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["landing"]  # no folder named s3: or oss:


def test_status_rejects_object_storage(tmp_path: Path) -> None:
    res = runner.invoke(app, ["status", "--lake", "s3://bucket/lake"])
    assert res.exit_code == 1
    assert "object storage (s3://) is not supported yet" in res.stderr
