"""The HTML report: every section from the marts, nothing from the network.

Expected values are worked out by hand from tests/report/conftest.py (build_tiny_lake).
"""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from meterlake.lake import Lake
from meterlake.publish import ReportConfig
from meterlake.report import NO_DATA, build_report
from meterlake.report import data as d

SECTIONS = ("collection", "loss", "anomalies", "billing", "receivables", "quality")
CFG = ReportConfig()


class Page(HTMLParser):
    """Sections (id -> text and data-has-data), every src/href, the tags used."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, dict] = {}
        self.urls: list[str] = []
        self.tags: set[str] = set()
        self.styles: list[str] = []
        self._current: str | None = None
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        self.urls += [v for k, v in attrs if k in ("src", "href", "xlink:href", "srcset", "data", "poster") and v]
        if tag == "section" and "id" in a:
            self._current = a["id"]
            self.sections[a["id"]] = {"has_data": a.get("data-has-data"), "text": ""}
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        if tag == "section":
            self._current = None
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)
        if self._current:
            self.sections[self._current]["text"] += data + " "


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def assert_offline(page: Page, allowed: set[str]) -> None:
    """Nothing is loaded from the network: no script, no external stylesheet or font."""
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    for url in page.urls:
        assert not url.lower().startswith(("http://", "https://", "//", "ftp:")), url
        assert url.startswith("#") or url in allowed, url
    css = "".join(page.styles)
    assert "@import" not in css and "url(" not in css and "@font-face" not in css


def test_every_section_has_data_and_the_hand_computed_figures(tiny_lake: Lake) -> None:
    path = build_report(tiny_lake, config=CFG)
    assert path == tiny_lake.reports / "report-2026-01-01_2026-01-02.html"
    page = parse(path)
    assert [k for k in page.sections if k in SECTIONS] == list(SECTIONS)
    for key in SECTIONS:
        assert page.sections[key]["has_data"] == "true", key
        assert NO_DATA not in page.sections[key]["text"], key
    text = {k: " ".join(v["text"].split()) for k, v in page.sections.items()}

    # collection: (49 + 30 + 50 + 38) / (50 + 40 + 50 + 40) = 167 / 180
    assert "all areas: 92.78% over the period" in text["collection"]
    # A2: 68 / 80 = 85.00%, below the 98% target on both days; A1 99/100 = 99% is not listed
    assert "A2 68 80 85.00% 2 2" in text["collection"]
    assert "A1 99" not in text["collection"]

    # loss over computable area-days: supply 1000 + 500 + 1000, loss 50 + 100 + 40 -> 7.60%
    assert "supply 2,500.00 kWh, sales 2,310.00 kWh, loss 190.00 kWh, loss rate 7.60%" in text["loss"]
    # worst areas (monthly): A2 20% first, then A3 -5%; diagnosis from A2's latest window only
    assert (
        "A2 2026-01 F1 500.00 400.00 100.00 20.00% high theft_candidate m21 (0.83); mapping_suspect m22 (0.41)"
        in text["loss"]
    )
    assert "A3 2026-01 F1 300.00 315.00 -15.00 -5.00% negative" in text["loss"]
    assert "m29" not in text["loss"]
    assert text["loss"].index("A2 2026-01") < text["loss"].index("A3 2026-01")

    # anomalies: m21's best day is 2026-01-02 (0.95); two meters flagged on three meter-days
    assert "2 meters flagged on 3 meter-days" in text["anomalies"]
    assert "1 m21 c21 A2 2026-01-02 0.95 loss_correlation" in text["anomalies"]
    assert "2 m13 c13 A1 2026-01-02 0.50 zero_consumption" in text["anomalies"]

    # bills: 100.00 + 250.50 + 49.50 = 400.00 yuan, 180 + 450.5 + 60 = 690.50 kWh, one exception
    assert "2026-01 3 3 690.50 400.00 1" in text["billing"]
    # prepay on the last day: c21 in arrears at -12.50
    assert "c21 m21 A2 -12.50 -12.50 arrears" in text["billing"]
    assert "c22" not in text["billing"]
    # recovery: billed 350.50 + 49.50 (all prepay), collected 350.50 + 37.00, arrears 12.50 by one
    # customer; A2 recovered 37.00 / 49.50 = 74.75%
    assert "2026-01 400.00 400.00 387.50 12.50 1" in text["billing"]
    assert "A2 2026-01: 74.75%" in text["billing"]

    # receivables: A2 below the 100% target (v1 partitions: area rows); February's aging of the
    # two customers who owe; the dunning list of 02-28 with p3 first
    assert "A2 2026-01" in text["receivables"]
    assert "2026-02 1-30 1 80.00 80.00 0.64" in text["receivables"]
    assert "2026-02 31-90 1 300.00 300.00 9.50" in text["receivables"]
    assert "List of 2026-02-28: sms 1, stop_notice 1." in text["receivables"]
    assert "1 p3 300.00 39 D stop_notice" in text["receivables"]

    # quality: 4 of 6 meter-days actual; 3 quarantined rows; vee.interval.spike twice
    assert "Meter-days with an actual value: 66.67% of 6" in text["quality"]
    assert "(3 in the lake)" in text["quality"]
    assert "vee_findings vee.interval.spike warning 2" in text["quality"]
    assert_offline(page, {"data_docs/local_site/index.html"})
    assert "data_docs/local_site/index.html" in page.urls


def test_an_empty_lake_says_no_data_in_every_section(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    path = build_report(lake, config=CFG)
    page = parse(path)
    for key in SECTIONS:
        assert page.sections[key]["has_data"] == "false", key
        assert NO_DATA in page.sections[key]["text"], key
    assert_offline(page, set())


def test_a_gate_waiting_for_its_data_docs_links_the_index_the_docs_stage_will_write(tmp_path: Path) -> None:
    # a run renders the Data Docs beside publishing: on a new lake the index is not there yet
    lake = Lake(tmp_path / "lake")
    assert d.load(lake, dates=[]).data_docs is None
    waiting = lake.meta / "data_docs_pending"
    waiting.mkdir(parents=True)
    (waiting / ".run-1.parquet.tmp").write_bytes(b"")  # a file being written is not a gate waiting
    assert d.load(lake, dates=[]).data_docs is None
    (waiting / "run-1.parquet").write_bytes(b"")
    assert d.load(lake, dates=[]).data_docs == "data_docs/index.html"
    page = parse(build_report(lake, config=CFG))
    assert_offline(page, {"data_docs/index.html"})
    # an index already there is linked as it is
    other = lake.reports / "data_docs" / "local_site" / "index.html"
    other.parent.mkdir(parents=True)
    other.write_text("<html></html>", encoding="utf-8")
    assert d.load(lake, dates=[]).data_docs == "data_docs/local_site/index.html"


def test_a_period_without_rows_says_no_data(tiny_lake: Lake) -> None:
    page = parse(build_report(tiny_lake, dates=[dt.date(2025, 6, 1)], config=CFG))
    for key in ("collection", "loss", "anomalies", "billing"):
        assert NO_DATA in page.sections[key]["text"], key


def test_a_report_written_elsewhere_links_back_relatively(tiny_lake: Lake, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "r.html"
    page = parse(build_report(tiny_lake, out, config=CFG))
    assert "../lake/reports/data_docs/local_site/index.html" in page.urls
    assert_offline(page, {"../lake/reports/data_docs/local_site/index.html"})


def test_the_run_record_and_the_latest_month_by_default(demo_lake: Lake) -> None:
    path = build_report(demo_lake, run_id="demo-run", config=CFG)
    assert path.name == "report-demo-run.html"
    page = parse(path)
    for key in SECTIONS:
        assert page.sections[key]["has_data"] == "true", key
    assert "run" in page.sections and "12 files, 3 resent" in page.sections["run"]["text"]
    assert "2026-01-01 to 2026-01-31" in path.read_text(encoding="utf-8")
    assert page.tags >= {"svg", "rect", "polyline"}


def test_rebuilding_gives_the_same_file(tiny_lake: Lake) -> None:
    first = build_report(tiny_lake, config=CFG).read_bytes()
    assert build_report(tiny_lake, config=CFG).read_bytes() == first


def test_worst_areas_and_diagnosis_summaries() -> None:
    loss = pl.DataFrame(
        {
            "area_id": ["A", "B", "C", "D"],
            "loss_rate": [0.12, -0.30, 0.05, None],
            "status": ["high", "negative", "normal", "uncomputable"],
        }
    )
    diagnosis = pl.DataFrame(
        {
            "date": [dt.date(2026, 1, 2)] * 2 + [dt.date(2026, 1, 1)],
            "area_id": ["B", "B", "A"],
            "kind": ["mapping_suspect", "theft_candidate", "theft_candidate"],
            "meter_id": ["b1", "b2", "a1"],
            "score": [0.4, 0.9, 0.5],
        }
    )
    got = d.worst_areas(loss, diagnosis, top=5).select("area_id", "diagnosis")
    expected = pl.DataFrame(
        {
            "area_id": ["B", "A"],
            "diagnosis": ["theft_candidate b2 (0.9); mapping_suspect b1 (0.4)", "theft_candidate a1 (0.5)"],
        }
    )
    assert_frame_equal(got, expected)


def test_loss_by_day_is_a_ratio_of_sums_not_a_mean_of_rates() -> None:
    daily = pl.DataFrame(
        {
            "date": [dt.date(2026, 1, 1)] * 3,
            "supply_kwh": [100.0, 900.0, 50.0],
            "sales_kwh": [90.0, 891.0, 0.0],
            "loss_kwh": [10.0, 9.0, 50.0],
            "status": ["normal", "normal", "uncomputable"],
        }
    )
    # (10 + 9) / (100 + 900) = 1.9%, not the mean of 10% and 1%
    assert d.loss_by_day(daily)["loss_rate"].to_list() == [pytest.approx(0.019)]


def test_anomaly_reasons_from_indicator_points() -> None:
    frame = pl.DataFrame(
        {"meter_id": ["m1", "m2"], "reasons": ["x", "y"], "event_cover_points": [2.0, 0.0], "zero_points": [1.0, 3.0]}
    )
    got = d.anomaly_reason_counts(frame)
    assert_frame_equal(
        got,
        pl.DataFrame(
            {"reason": ["zero", "event_cover"], "count": [2, 1]}, schema={"reason": pl.String, "count": pl.UInt32}
        ),
    )


@given(st.lists(st.one_of(st.none(), st.just(float("nan")), st.floats(-1.0, 1.0)), max_size=60))
def test_histogram_counts_every_computable_rate_once_in_its_bin(rates: list[float | None]) -> None:
    edges = CFG.loss_rate_bins
    hist = d.loss_histogram(pl.Series(rates, dtype=pl.Float64), edges)
    finite = [r for r in rates if r is not None and r == r]
    assert hist["count"].sum() == len(finite)
    assert hist.height == len(edges) + 1
    by_hand = [0] * (len(edges) + 1)
    for r in finite:  # the bin of r is the number of edges at or below it
        by_hand[sum(1 for e in edges if e <= r)] += 1
    assert hist["count"].to_list() == by_hand


@pytest.mark.slow
def test_report_from_a_small_generated_run(tmp_path: Path) -> None:
    """Generate a landing zone, run the stages, publish, and check every section has data.

    The check stage (the GX gate) is left out: this test is about what the report
    shows from the marts, not whether the gate passes them.
    """
    from meterlake import pipeline
    from meterlake.generator import generate
    from meterlake.settings import Settings

    landing, lake = tmp_path / "landing", tmp_path / "lake"
    generate(landing, meters=300, days=7, start=dt.date(2026, 1, 1), seed=3)
    settings = Settings(landing=landing, lake=lake, config_dir=Path(__file__).resolve().parents[2] / "config")
    stages = [s for s in pipeline.STAGES if s != "check"]
    record = pipeline.run(settings, dt.date(2026, 1, 1), dt.date(2026, 1, 6), stages=stages)
    path = Path(record["stages"]["publish"]["details"]["report"])
    page = parse(path)
    for key in SECTIONS:
        assert page.sections[key]["has_data"] == "true", key
    assert_offline(page, {"data_dictionary.html"} | {u for u in page.urls if u.startswith("data_docs/")})


def test_without_a_computable_month_areas_are_ranked_on_their_computable_days(tiny_lake: Lake) -> None:
    from meterlake.schemas.area_loss_monthly import AREA_LOSS_MONTHLY

    uncomputable = pl.DataFrame(
        {
            "month": ["2026-01"] * 3,
            "area_id": ["A1", "A2", "A3"],
            "area_class": ["default"] * 3,
            "status": ["uncomputable"] * 3,
            "reason": ["customer_missing", "customer_missing,master_missing", "customer_missing"],
        }
    )
    missing = [c for c in AREA_LOSS_MONTHLY.names if c not in uncomputable.columns]
    tiny_lake.write_partition(
        AREA_LOSS_MONTHLY,
        "2026-01",
        uncomputable.with_columns(pl.lit(None).cast(AREA_LOSS_MONTHLY.schema[c]).alias(c) for c in missing),
    )
    text = " ".join(parse(build_report(tiny_lake, config=CFG)).sections["loss"]["text"].split())
    assert "Monthly area status (2026-01): 3 uncomputable (customer_missing: 3, master_missing: 1)" in text
    assert "Worst areas, by the period's computable days" in text
    # A2's one computable day: supply 500, sales 400, loss 100 -> 20%, high on 1 day
    assert "A2 500.00 400.00 100.00 20.00% high 1 0 theft_candidate m21 (0.83)" in text
    # A1: (50 + 40) / 2000 = 4.5%, normal on both days: not among the worst
    assert "A1 2,000.00" not in text
