"""Line loss on hand-made meter_daily frames; every expected figure is worked out by hand
in the comments beside it (CONTRACT §3)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from meterlake.schemas._base import MissingColumnsError
from meterlake.schemas.area_loss_daily import AREA_LOSS_DAILY
from meterlake.schemas.area_loss_daily import REASONS as AREA_DAILY_REASONS
from meterlake.schemas.area_loss_monthly import AREA_LOSS_MONTHLY
from meterlake.schemas.area_loss_monthly import REASONS as AREA_MONTHLY_REASONS
from meterlake.schemas.feeder_loss_daily import FEEDER_LOSS_DAILY
from meterlake.schemas.feeder_loss_monthly import FEEDER_LOSS_MONTHLY
from meterlake.schemas.meter_daily import METER_DAILY
from meterlake.transforms import loss

D1, D2, D3, D4 = (dt.date(2026, 1, d) for d in (1, 2, 3, 4))


def day(
    date: dt.date,
    meter_id: str,
    role: str,
    area_id: str | None,
    kwh: float | None,
    *,
    reverse_kwh: float | None = 0.0,
    quality: str = "actual",
    feeder_id: str | None = "F1",
    multiplier: float = 1.0,
    method: str | None = None,
    pv_kw: float | None = 0.0,
) -> dict:
    """One meter_daily row (the columns loss does not read are left empty)."""
    row = dict.fromkeys(METER_DAILY.names)
    row.update(
        date=date,
        meter_id=meter_id,
        customer_id=f"U{meter_id}" if role == "customer" else None,
        area_id=area_id,
        feeder_id=feeder_id,
        role=role,
        multiplier=multiplier,
        kwh=None if quality == "missing" else kwh,
        reverse_kwh=None if quality == "missing" else reverse_kwh,
        quality=quality,
        pv_capacity_kw=pv_kw if role == "customer" else None,
        method=method or {"actual": "register", "estimated": "share_even", "missing": "none"}[quality],
    )
    return row


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=METER_DAILY.schema)


def area_row(**values) -> dict:
    base = dict.fromkeys(AREA_LOSS_DAILY.names)
    base.update(area_class="default", feeder_id="F1", customers_estimated=0, customers_missing=0)
    base.update(reverse_no_pv_kwh=0.0, pv_customers=0, pv_basis="archive", band_low=0.0, band_high=0.10)
    base.update(values)
    return base


def expect(table, rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=table.schema)


def pick(table: pl.DataFrame, **where) -> pl.DataFrame:
    return table.filter(*(pl.col(k) == v for k, v in where.items()))


# -- area ---------------------------------------------------------------------------


def test_pv_export_counts_as_supply():
    md = frame(
        [
            day(D1, "M1", "area_master", "A1", 100.0),
            day(D1, "C1", "customer", "A1", 60.0, reverse_kwh=8.0, pv_kw=5.0),  # rooftop PV
            day(D1, "C2", "customer", "A1", 47.0, reverse_kwh=None),  # no reverse register
            day(D1, "C3", "customer", "A1", 3.0, reverse_kwh=12.0, pv_kw=3.0),  # net exporter
        ]
    )
    # supply = 100 + 8 + 12 = 120; sales = 60 + 47 + 3 = 110; loss = 10; rate = 10/120.
    # Without the PV the area would read 100 - 110 = -10: negative.
    want = expect(
        AREA_LOSS_DAILY,
        [
            area_row(
                date=D1,
                area_id="A1",
                master_meter_id="M1",
                master_kwh=100.0,
                pv_export_kwh=20.0,
                pv_customers=2,
                supply_kwh=120.0,
                sales_kwh=110.0,
                loss_kwh=10.0,
                loss_rate=10 / 120,
                status="normal",
                master_quality="actual",
                customer_meters=3,
                customers_actual=3,
                actual_share=1.0,
            )
        ],
    )
    assert_frame_equal(loss.area_loss_daily(md), want)


def test_customer_moving_area_mid_month_counts_in_each_area_for_its_days():
    # X belongs to A on the 1st and 2nd and to B from the 3rd (the archive row valid on
    # each day, already resolved in meter_daily). Each master measures 5% more than its
    # customers use that day.
    rows = []
    for d in (D1, D2, D3, D4):
        x_area = "A" if d < D3 else "B"
        a_sales = 20.0 + (10.0 if x_area == "A" else 0.0)
        b_sales = 30.0 + (10.0 if x_area == "B" else 0.0)
        rows += [
            day(d, "MA", "area_master", "A", a_sales * 1.05),
            day(d, "MB", "area_master", "B", b_sales * 1.05),
            day(d, "CA", "customer", "A", 20.0),
            day(d, "CB", "customer", "B", 30.0),
            day(d, "X", "customer", x_area, 10.0),
        ]
    md = frame(rows)
    daily = loss.area_loss_daily(md)
    # A on the 2nd: supply 31.5, sales 30; on the 3rd: supply 21, sales 20
    assert pick(daily, area_id="A", date=D2).select("supply_kwh", "sales_kwh", "customer_meters").row(0) == (
        31.5,
        30.0,
        2,
    )
    assert pick(daily, area_id="A", date=D3).select("supply_kwh", "sales_kwh", "customer_meters").row(0) == (
        21.0,
        20.0,
        1,
    )
    assert pick(daily, area_id="B", date=D3).select("supply_kwh", "sales_kwh", "customer_meters").row(0) == (
        42.0,
        40.0,
        2,
    )

    monthly = loss.area_loss_monthly(md).select(
        "month", "area_id", "days", "supply_kwh", "sales_kwh", "loss_kwh", "loss_rate", "status"
    )
    # A: supply 31.5+31.5+21+21 = 105, sales 30+30+20+20 = 100, loss 5, rate 5/105
    # B: supply 31.5+31.5+42+42 = 147, sales 30+30+40+40 = 140, loss 7, rate 7/147
    want = pl.DataFrame(
        {
            "month": ["2026-01", "2026-01"],
            "area_id": ["A", "B"],
            "days": pl.Series([4, 4], dtype=pl.Int32),
            "supply_kwh": [105.0, 147.0],
            "sales_kwh": [100.0, 140.0],
            "loss_kwh": [5.0, 7.0],
            "loss_rate": [5 / 105, 7 / 147],
            "status": ["normal", "normal"],
        }
    )
    assert_frame_equal(monthly, want)


def test_rollover_day_is_consumption_not_a_fall():
    # X's register read 999990.00 at D1 00:00 and 10.00 at D2 00:00 on a 1000000 register:
    # a rollover (below half the range), so D1's consumption is 1000000 - 999990 + 10 = 20
    # kWh x multiplier 1, which meter_daily delivers with method register_rollover.
    md = frame(
        [
            day(D1, "M", "area_master", "A", 52.5),
            day(D1, "X", "customer", "A", 20.0, method="register_rollover"),
            day(D1, "Y", "customer", "A", 30.0),
        ]
    )
    got = loss.area_loss_daily(md).select("sales_kwh", "loss_kwh", "loss_rate", "status")
    # sales 50, loss 2.5, rate 2.5 / 52.5
    assert got.row(0) == (50.0, 2.5, 2.5 / 52.5, "normal")


def test_an_unresolved_rollover_is_an_error_naming_the_meter_and_day():
    md = frame(
        [
            day(D1, "M", "area_master", "A", 52.5),
            day(D1, "X", "customer", "A", -999980.0),  # 10 - 999990: a rollover left in
        ]
    )
    with pytest.raises(
        loss.LossInputError, match=r"expected kwh and reverse_kwh >= 0.*found 1 negative row.*X on 2026-01-01"
    ):
        loss.area_loss_daily(md)


def test_missing_master_reading_estimated_days_are_uncomputable_but_the_month_is_exact():
    # The master's register frozen at D2 00:00 never arrived: D1 and D2 share the
    # difference between the D1 and D3 readings (1000.0 -> 1095.0, multiplier 1) evenly,
    # 47.5 each, and are estimated. The true split was 40 / 55. D3 is actual (50).
    rows = [
        day(D1, "M", "area_master", "A", 47.5, quality="estimated"),
        day(D2, "M", "area_master", "A", 47.5, quality="estimated"),
        day(D3, "M", "area_master", "A", 50.0),
    ]
    for d, x in ((D1, 38.0), (D2, 52.0), (D3, 47.5)):
        rows.append(day(d, "X", "customer", "A", x))
    md = frame(rows)
    daily = loss.area_loss_daily(md).select("date", "master_kwh", "loss_kwh", "status", "reason", "master_quality")
    want = pl.DataFrame(
        {
            "date": [D1, D2, D3],
            "master_kwh": [47.5, 47.5, 50.0],
            "loss_kwh": [9.5, -4.5, 2.5],  # 47.5-38, 47.5-52, 50-47.5
            "status": ["uncomputable", "uncomputable", "normal"],
            "reason": ["master_estimated", "master_estimated", None],
            "master_quality": ["estimated", "estimated", "actual"],
        }
    )
    assert_frame_equal(daily, want)
    # month: supply 47.5+47.5+50 = 145 (= the register difference 1095-1000 + 50),
    # sales 38+52+47.5 = 137.5, loss 7.5, rate 7.5/145
    month = loss.area_loss_monthly(md).select(
        "supply_kwh",
        "sales_kwh",
        "loss_kwh",
        "loss_rate",
        "status",
        "reason",
        "days_uncomputable",
        "meter_days_estimated",
    )
    assert month.row(0) == (145.0, 137.5, 7.5, 7.5 / 145, "normal", None, 2, 2)


def test_master_day_without_value_is_substituted_in_the_month():
    md = frame(
        [
            day(D1, "M", "area_master", "A", 52.5),
            day(D2, "M", "area_master", "A", None, quality="missing"),
            day(D1, "X", "customer", "A", 50.0),
            day(D2, "X", "customer", "A", 50.0),
        ]
    )
    d2 = pick(loss.area_loss_daily(md), date=D2).select(
        "master_kwh", "supply_kwh", "sales_kwh", "loss_kwh", "loss_rate", "status", "reason", "master_quality"
    )
    assert d2.row(0) == (None, None, 50.0, None, None, "uncomputable", "master_missing", "missing")
    # month: the master's D2 takes its mean over its days with a value (52.5): supply
    # 52.5 + 52.5 = 105, sales 100, loss 5, rate 5/105; one substituted master day is
    # within the 2 allowed, and every customer day has a value (coverage 1)
    month = loss.area_loss_monthly(md).select(
        "supply_kwh",
        "sales_kwh",
        "loss_rate",
        "status",
        "reason",
        "substituted_kwh",
        "coverage",
        "master_substituted_days",
        "meter_days_missing",
    )
    assert month.row(0) == (105.0, 100.0, 5 / 105, "normal", None, 52.5, 1.0, 1, 1)


def test_master_without_any_value_in_the_month_is_uncomputable():
    md = frame(
        [
            day(D1, "M", "area_master", "A", None, quality="missing"),
            day(D1, "X", "customer", "A", 50.0),
        ]
    )
    month = loss.area_loss_monthly(md).select("master_kwh", "supply_kwh", "sales_kwh", "status", "reason")
    assert month.row(0) == (None, None, 50.0, "uncomputable", "master_missing")


def _january(master: dict[int, float | None], c2_last: float | None) -> pl.DataFrame:
    """31 days of an area: master M (kWh by day, None = no value), C1 50 kWh every day,
    C2 30 kWh on odd and 50 on even days up to the 30th and ``c2_last`` on the 31st."""
    rows = []
    for n in range(1, 32):
        d = dt.date(2026, 1, n)
        m = master.get(n, 98.0)
        rows.append(day(d, "M", "area_master", "A", m, quality="actual" if m is not None else "missing"))
        rows.append(day(d, "C1", "customer", "A", 50.0))
        c2 = (30.0 if n % 2 else 50.0) if n < 31 else c2_last
        rows.append(day(d, "C2", "customer", "A", c2, quality="actual" if c2 is not None else "missing"))
    return frame(rows)


MONTH_COLUMNS = (
    "master_kwh",
    "sales_kwh",
    "loss_kwh",
    "loss_rate",
    "status",
    "reason",
    "substituted_kwh",
    "coverage",
    "master_substituted_days",
)


def test_month_whose_last_day_lacks_its_closing_reading_is_substituted_then_rebuilt_exact():
    # C2's register frozen on 1 February has not arrived: its 31 January has no value.
    # Its mean over its 30 days with a value: (15 x 30 + 15 x 50) / 30 = 40 kWh.
    # supply = 31 x 98 = 3038; sales = 31 x 50 + (15 x 30 + 15 x 50) + 40 = 1550 + 1200 + 40 = 2790;
    # loss = 248; coverage = 61 / 62 customer meter-days = 0.98387 >= 0.98: computable.
    before = loss.area_loss_monthly(_january({}, None)).select(MONTH_COLUMNS)
    assert before.row(0) == (3038.0, 2790.0, 248.0, 248 / 3038, "normal", None, 40.0, 61 / 62, 0)
    # the reading arrives: 31 January is 44 kWh; the month rebuilt from the lake holds no
    # substitution: sales 1550 + 1200 + 44 = 2794, loss 244, coverage 1
    after = loss.area_loss_monthly(_january({}, 44.0)).select(MONTH_COLUMNS)
    assert after.row(0) == (3038.0, 2794.0, 244.0, 244 / 3038, "normal", None, 0.0, 1.0, 0)


@pytest.mark.parametrize(
    ("missing_days", "status", "reason", "master_kwh"),
    [
        # 2 days at the master's mean (98): 29 x 98 + 2 x 98 = 3038
        pytest.param((30, 31), "normal", None, 3038.0, id="2-substituted-master-days-computable"),
        pytest.param((29, 30, 31), "uncomputable", "master_missing", 3038.0, id="3-substituted-master-days"),
    ],
)
def test_master_meter_with_more_than_two_missing_days_is_uncomputable(missing_days, status, reason, master_kwh):
    md = _january(dict.fromkeys(missing_days), 40.0)
    month = loss.area_loss_monthly(md).select("master_kwh", "status", "reason", "master_substituted_days")
    assert month.row(0) == (master_kwh, status, reason, len(missing_days))


def test_coverage_below_98_percent_is_uncomputable_with_the_customer_reason():
    # C2 has no value on its last 2 days: coverage 60 / 62 = 0.9677 < 0.98
    md = _january({}, None).filter(~((pl.col("meter_id") == "C2") & (pl.col("date") == D1)))
    md = pl.concat([md, frame([day(D1, "C2", "customer", "A", None, quality="missing")])])
    month = loss.area_loss_monthly(md).select("status", "reason", "coverage")
    assert month.row(0) == ("uncomputable", "customer_missing", 60 / 62)


def test_pv_customer_and_reversed_wiring_customer_without_pv_in_one_area():
    # P has 5 kW of PV: exports 10 kWh (supply). R has no PV but its meter is wired in
    # reverse: forward 0, reverse 30 (its use), which is no supply. H is honest: 70.
    md = frame(
        [
            day(D1, "M", "area_master", "A", 100.0),
            day(D1, "P", "customer", "A", 20.0, reverse_kwh=10.0, pv_kw=5.0),
            day(D1, "R", "customer", "A", 0.0, reverse_kwh=30.0, pv_kw=0.0),
            day(D1, "H", "customer", "A", 70.0),
        ]
    )
    cols = ("pv_export_kwh", "reverse_no_pv_kwh", "supply_kwh", "sales_kwh", "loss_kwh", "loss_rate", "pv_basis")
    # supply = 100 + 10 = 110; sales = 20 + 0 + 70 = 90; loss 20; rate 20 / 110.
    # Counting R's reverse as PV would read supply 140, loss 50: the theft twice.
    assert loss.area_loss_daily(md).select(cols).row(0) == (10.0, 30.0, 110.0, 90.0, 20.0, 20 / 110, "archive")
    assert loss.area_loss_monthly(md).select(cols).row(0) == (10.0, 30.0, 110.0, 90.0, 20.0, 20 / 110, "archive")


def test_without_the_archive_column_pv_is_inferred_from_history_and_flagged():
    # a v1 archive: no pv_capacity_kw. P exported from its first day (PV); R's reverse
    # register stood still for 20 days, then ran (no PV: reversed wiring)
    history = []
    for n in range(1, 31):
        d = dt.date(2026, 1, n)
        history.append(day(d, "P", "customer", "A", 20.0, reverse_kwh=10.0, pv_kw=None))
        history.append(
            day(d, "R", "customer", "A", 30.0 if n <= 20 else 0.0, reverse_kwh=0.0 if n <= 20 else 30.0, pv_kw=None)
        )
    pv = loss.infer_pv(frame(history))
    assert pv.rows() == [("P", True), ("R", False)]
    md = frame(
        [
            day(D1, "M", "area_master", "A", 100.0),
            day(D1, "P", "customer", "A", 20.0, reverse_kwh=10.0, pv_kw=None),
            day(D1, "R", "customer", "A", 0.0, reverse_kwh=30.0, pv_kw=None),
        ]
    )
    got = loss.area_loss_daily(md, pv=pv).select("pv_export_kwh", "reverse_no_pv_kwh", "supply_kwh", "pv_basis")
    assert got.row(0) == (10.0, 30.0, 110.0, "inferred")


def test_area_with_its_own_target_band():
    # both areas lose 12%: A1 on the defaults (high above 10%), A2 with its own band
    # (-2% .. 15%, economic 4% .. 8%) is normal but outside its economic band
    rows = []
    for area in ("A1", "A2"):
        rows += [day(D1, f"M{area}", "area_master", area, 100.0), day(D1, f"C{area}", "customer", area, 88.0)]
    own = loss.AreaClass(
        "A2-own",
        loss.StatusRule(negative_below=-0.02, high_above=0.15, economic_low=0.04, economic_high=0.08),
        area_ids=("A2",),
    )
    rules = loss.LossRules(area_classes=(own,))
    cols = (
        "area_id",
        "area_class",
        "loss_rate",
        "status",
        "band_low",
        "band_high",
        "economic_high",
        "in_economic_band",
    )
    got = loss.area_loss_monthly(frame(rows), rules).select(cols)
    assert got.rows() == [
        ("A1", "default", 0.12, "high", 0.0, 0.10, None, None),
        ("A2", "A2-own", 0.12, "normal", -0.02, 0.15, 0.08, False),
    ]


def test_missing_customer_reading_daily_uncomputable_monthly_exact():
    # Y's register frozen at D2 00:00 is missing: readings 100.0 at D1 and 130.0 at D3
    # give 30 kWh over D1 and D2, shared evenly (15 + 15) and estimated. The true use was
    # 10 then 20. X uses 30 a day; the master measures 2.5 kWh of loss a day on top of
    # the true use: 42.5, 52.5, 52.5.
    rows = [
        day(D1, "M", "area_master", "A", 42.5),
        day(D2, "M", "area_master", "A", 52.5),
        day(D3, "M", "area_master", "A", 52.5),
        day(D1, "Y", "customer", "A", 15.0, quality="estimated"),
        day(D2, "Y", "customer", "A", 15.0, quality="estimated"),
        day(D3, "Y", "customer", "A", 20.0),
    ]
    rows += [day(d, "X", "customer", "A", 30.0) for d in (D1, D2, D3)]
    md = frame(rows)
    daily = loss.area_loss_daily(md).select(
        "date", "sales_kwh", "loss_kwh", "loss_rate", "status", "reason", "actual_share"
    )
    want = pl.DataFrame(
        {
            "date": [D1, D2, D3],
            "sales_kwh": [45.0, 45.0, 50.0],
            "loss_kwh": [-2.5, 7.5, 2.5],  # would read negative, then high, were they computable
            "loss_rate": [-2.5 / 42.5, 7.5 / 52.5, 2.5 / 52.5],
            "status": ["uncomputable", "uncomputable", "normal"],
            "reason": ["collection_incomplete", "collection_incomplete", None],
            "actual_share": [0.5, 0.5, 1.0],
        }
    )
    assert_frame_equal(daily, want)
    # month: supply 42.5+52.5+52.5 = 147.5; sales 45+45+50 = 140 (Y: 15+15+20 = 50,
    # its register difference); loss 7.5 = 3 x 2.5, exact; rate 7.5 / 147.5
    month = loss.area_loss_monthly(md).select("supply_kwh", "sales_kwh", "loss_kwh", "loss_rate", "status", "reason")
    assert month.row(0) == (147.5, 140.0, 7.5, 7.5 / 147.5, "normal", None)


@pytest.mark.parametrize(
    ("estimated", "status", "reason"),
    [
        pytest.param(1, "normal", None, id="49-of-50-actual-is-98pct-computable"),
        pytest.param(2, "uncomputable", "collection_incomplete", id="48-of-50-actual-is-96pct-uncomputable"),
    ],
)
def test_collection_threshold_is_fewer_than_98_percent(estimated, status, reason):
    rows = [day(D1, "M", "area_master", "A", 105.0)]
    rows += [
        day(D1, f"C{i:02d}", "customer", "A", 2.0, quality="estimated" if i < estimated else "actual")
        for i in range(50)
    ]
    got = loss.area_loss_daily(frame(rows)).select("status", "reason", "customers_estimated")
    assert got.row(0) == (status, reason, estimated)


@pytest.mark.parametrize(
    ("master", "sales", "status"),
    [
        pytest.param(99.0, 100.0, "negative", id="rate-below-0"),  # -1/99
        pytest.param(100.0, 100.0, "normal", id="rate-0-is-normal"),
        pytest.param(112.0, 100.0, "high", id="rate-above-0.10"),  # 12/112 = 0.107
        pytest.param(100.0, 90.0, "normal", id="rate-exactly-0.10-is-normal"),  # 10/100
    ],
)
def test_status_bands(master, sales, status):
    md = frame([day(D1, "M", "area_master", "A", master), day(D1, "X", "customer", "A", sales)])
    assert loss.area_loss_daily(md)["status"].to_list() == [status]


def test_area_class_thresholds_apply_to_their_areas_only():
    rules = loss.LossRules(
        area_classes=(
            loss.AreaClass("rural", loss.StatusRule(high_above=0.15), area_id_pattern="^R"),
            loss.AreaClass("listed", loss.StatusRule(negative_below=-0.05), area_ids=("A2",)),
        )
    )
    rows = []
    for area, master in (("R1", 112.0), ("A1", 112.0), ("A2", 97.0)):
        rows += [day(D1, f"M{area}", "area_master", area, master), day(D1, f"X{area}", "customer", area, 100.0)]
    got = loss.area_loss_daily(frame(rows), rules).select("area_id", "area_class", "status")
    # 12/112 = 0.107: high by default, normal under rural's 0.15; -3/97 = -0.031: negative
    # by default, normal under listed's -0.05
    want = pl.DataFrame(
        {
            "area_id": ["A1", "A2", "R1"],
            "area_class": ["default", "listed", "rural"],
            "status": ["high", "normal", "normal"],
        }
    )
    assert_frame_equal(got, want)


def test_archive_problems_and_zero_supply_are_uncomputable_with_reasons():
    md = frame(
        [
            day(D1, "X", "customer", "NOMASTER", 5.0),  # customers but no master in the archive
            day(D1, "M2", "area_master", "EMPTY", 5.0),  # a master and no customers
            day(D1, "M3", "area_master", "DARK", 0.0),  # outage all day
            day(D1, "Y", "customer", "DARK", 0.0),
        ]
    )
    got = loss.area_loss_daily(md).select("area_id", "status", "reason", "supply_kwh")
    want = pl.DataFrame(
        {
            "area_id": ["DARK", "EMPTY", "NOMASTER"],
            "status": ["uncomputable"] * 3,
            "reason": ["zero_supply", "archive_no_customers", "archive_no_master"],
            "supply_kwh": [0.0, 5.0, None],
        }
    )
    assert_frame_equal(got, want)
    assert {"zero_supply", "archive_no_customers", "archive_no_master"} <= set(AREA_DAILY_REASONS)


def test_missing_input_column_names_it():
    md = frame([day(D1, "M", "area_master", "A", 1.0)]).drop("quality")
    with pytest.raises(MissingColumnsError, match=r"missing column\(s\) quality; found date, meter_id"):
        loss.area_loss_daily(md)


# -- feeder -------------------------------------------------------------------------


def test_feeder_with_a_directly_fed_10kv_customer():
    md = frame(
        [
            day(D1, "H1", "feeder_head", None, 400.0, multiplier=2000.0),
            day(D1, "M1", "area_master", "A1", 100.0),
            day(D1, "C1", "customer", "A1", 96.0),  # area customers do not count on the feeder
            day(D1, "M2", "area_master", "A2", 150.0),
            day(D1, "C2", "customer", "A2", 144.0),
            day(D1, "D1", "customer", None, 120.0, multiplier=1000.0),  # 专变: no area
            day(D1, "D2", "customer", "", 10.0),  # an empty area_id is no area too
            day(D1, "H2", "feeder_head", None, 5.0, feeder_id="F2"),  # nothing downstream
        ]
    )
    # F1: supply 400; sales = 100 + 150 (masters) + 120 + 10 (direct) = 380; loss 20; rate 0.05
    want = expect(
        FEEDER_LOSS_DAILY,
        [
            {
                "date": D1,
                "feeder_id": "F1",
                "head_meter_id": "H1",
                "supply_kwh": 400.0,
                "area_masters_kwh": 250.0,
                "direct_customers_kwh": 130.0,
                "sales_kwh": 380.0,
                "loss_kwh": 20.0,
                "loss_rate": 0.05,
                "status": "normal",
                "reason": None,
                "head_quality": "actual",
                "area_masters": 2,
                "direct_customers": 2,
                "downstream_actual": 4,
                "downstream_estimated": 0,
                "downstream_missing": 0,
                "actual_share": 1.0,
            },
            {
                "date": D1,
                "feeder_id": "F2",
                "head_meter_id": "H2",
                "supply_kwh": 5.0,
                "area_masters_kwh": 0.0,
                "direct_customers_kwh": 0.0,
                "sales_kwh": 0.0,
                "loss_kwh": 5.0,
                "loss_rate": 1.0,
                "status": "uncomputable",
                "reason": "archive_no_downstream",
                "head_quality": "actual",
                "area_masters": 0,
                "direct_customers": 0,
                "downstream_actual": 0,
                "downstream_estimated": 0,
                "downstream_missing": 0,
                "actual_share": None,
            },
        ],
    )
    assert_frame_equal(loss.feeder_loss_daily(md), want)
    # the direct customers are in no area
    assert loss.area_loss_daily(md)["area_id"].to_list() == ["A1", "A2"]


def test_feeder_month_substitutes_a_missing_area_master_and_judges_coverage():
    rows = []
    for d, m2 in ((D1, 150.0), (D2, None)):
        rows += [
            day(d, "H1", "feeder_head", None, 400.0),
            day(d, "M1", "area_master", "A1", 100.0),
            day(d, "M2", "area_master", "A2", m2, quality="actual" if m2 else "missing"),
            day(d, "D1", "customer", None, 130.0),
        ]
    md = frame(rows)
    month = loss.feeder_loss_monthly(md)
    want = expect(
        FEEDER_LOSS_MONTHLY,
        [
            {
                "month": "2026-01",
                "feeder_id": "F1",
                "days": 2,
                "supply_kwh": 800.0,
                # 100 + 100 (M1) + 150 + 150 (M2, its D2 at its mean of 150), 130 + 130 direct
                "area_masters_kwh": 500.0,
                "direct_customers_kwh": 260.0,
                "sales_kwh": 760.0,
                "substituted_kwh": 150.0,
                # downstream meter-days 6, with a value 5
                "coverage": 5 / 6,
                "head_substituted_days": 0,
                "loss_kwh": 40.0,
                "loss_rate": 0.05,
                "status": "uncomputable",
                "reason": "downstream_missing",
                "days_uncomputable": 1,
                "meter_days_estimated": 0,
                "meter_days_missing": 1,
                "band_low": 0.0,
                "band_high": 0.10,
            }
        ],
    )
    assert_frame_equal(month, want)


# -- properties -----------------------------------------------------------------------

kwh = st.floats(min_value=0.0, max_value=5000.0, allow_nan=False).map(lambda x: round(x, 2))


@st.composite
def clean_area_month(draw):
    """An area with 1-5 customers over 1-5 days, every value present."""
    n_cust = draw(st.integers(1, 5))
    n_days = draw(st.integers(1, 5))
    rows = []
    for i in range(n_days):
        d = D1 + dt.timedelta(days=i)
        rows.append(day(d, "M", "area_master", "A", draw(kwh) + 1.0))
        for c in range(n_cust):
            q = draw(st.sampled_from(["actual", "estimated"]))
            rows.append(
                day(
                    d,
                    f"C{c}",
                    "customer",
                    "A",
                    draw(kwh),
                    reverse_kwh=draw(st.sampled_from([0.0, 1.5, 7.25])),
                    quality=q,
                )
            )
    return frame(rows)


@settings(max_examples=40, deadline=None)
@given(md=clean_area_month(), seed=st.integers(0, 2**16))
def test_properties_of_the_balance(md, seed):
    daily = loss.area_loss_daily(md)
    # loss = supply - sales and rate = loss / supply, day by day
    assert (daily["loss_kwh"] - (daily["supply_kwh"] - daily["sales_kwh"])).abs().max() < 1e-6
    assert (daily["loss_rate"] - daily["loss_kwh"] / daily["supply_kwh"]).abs().max() < 1e-9
    # the month is the sum of its days, never an average of rates
    month = loss.area_loss_monthly(md)
    assert month.height == 1
    assert abs(month["supply_kwh"][0] - daily["supply_kwh"].sum()) < 1e-6
    assert abs(month["sales_kwh"][0] - daily["sales_kwh"].sum()) < 1e-6
    assert month["status"][0] in AREA_LOSS_MONTHLY.column("status").codes
    assert month["reason"][0] is None or set(month["reason"][0].split(",")) <= set(AREA_MONTHLY_REASONS)
    # the order rows arrive in changes nothing
    shuffled = md.sample(fraction=1.0, shuffle=True, seed=seed)
    assert_frame_equal(loss.area_loss_daily(shuffled), daily)
    assert_frame_equal(loss.area_loss_monthly(shuffled), month)


@settings(max_examples=25, deadline=None)
@given(md=clean_area_month(), k=st.sampled_from([0.5, 2.0, 10.0]))
def test_rates_do_not_depend_on_the_unit(md, k):
    scaled = md.with_columns(pl.col("kwh") * k, pl.col("reverse_kwh") * k)
    a, b = loss.area_loss_monthly(md), loss.area_loss_monthly(scaled)
    assert abs(a["loss_rate"][0] - b["loss_rate"][0]) < 1e-6


@settings(max_examples=30, deadline=None)
@given(md=clean_area_month(), pick=st.integers(0, 10_000))
def test_a_customer_day_without_value_is_its_meters_mean_of_the_month(md, pick):
    # blank one customer meter-day: the month's sales become the clean month's sales less
    # that day's kWh plus the meter's mean over its other days (nothing when it has none)
    customers = md.filter(pl.col("role") == "customer").sort("meter_id", "date")
    row = customers.row(pick % customers.height, named=True)
    hit = (pl.col("meter_id") == row["meter_id"]) & (pl.col("date") == row["date"])
    gap = md.with_columns(
        pl.when(hit).then(None).otherwise(pl.col("kwh")).alias("kwh"),
        pl.when(hit).then(None).otherwise(pl.col("reverse_kwh")).alias("reverse_kwh"),
        pl.when(hit).then(pl.lit("missing")).otherwise(pl.col("quality")).alias("quality"),
    )
    others = customers.filter((pl.col("meter_id") == row["meter_id"]) & (pl.col("date") != row["date"]))["kwh"]
    mean = others.mean() if others.len() else 0.0
    clean, month = loss.area_loss_monthly(md).row(0, named=True), loss.area_loss_monthly(gap).row(0, named=True)
    assert month["sales_kwh"] == pytest.approx(clean["sales_kwh"] - row["kwh"] + mean, abs=1e-6)
    assert month["substituted_kwh"] == pytest.approx(mean, abs=1e-6)
    n = customers.height
    assert month["coverage"] == pytest.approx((n - 1) / n)
    assert clean["substituted_kwh"] == 0.0 and clean["coverage"] == 1.0
