"""Interruptions, area grouping, plans and reliability on hand-computed cases."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from meterlake.schemas.curves import SLOTS
from meterlake.transforms import outages as o

CFG = o.OutageConfig()
D = dt.date(2026, 1, 5)


def t(hhmm: str, day: dt.date = D) -> dt.datetime:
    h, m = hhmm.split(":")[:2]
    s = int(hhmm.split(":")[2]) if hhmm.count(":") == 2 else 0
    return dt.datetime.combine(day, dt.time(int(h), int(m), s))


def service(day: dt.date = D) -> pl.DataFrame:
    """Feeder F1: area A1 (master M0, customers c1..c4), area A2 (master M9, customers d1, d2)."""
    rows = [("M0", None, "A1", "area_master")] + [(f"c{i}", f"C{i}", "A1", "customer") for i in range(1, 5)]
    rows += [("M9", None, "A2", "area_master"), ("d1", "D1", "A2", "customer"), ("d2", "D2", "A2", "customer")]
    return pl.DataFrame(
        {
            "date": [day] * len(rows),
            "meter_id": [r[0] for r in rows],
            "customer_id": [r[1] for r in rows],
            "area_id": [r[2] for r in rows],
            "feeder_id": ["F1"] * len(rows),
            "role": [r[3] for r in rows],
            "org_id": ["ORG01"] * len(rows),
        },
        schema_overrides={"customer_id": pl.String},
    )


def events(*rows: tuple[str, dt.datetime, str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"meter_id": [r[0] for r in rows], "event_time": [r[1] for r in rows], "event_code": [r[2] for r in rows]},
        schema={"meter_id": pl.String, "event_time": pl.Datetime("us"), "event_code": pl.String},
    )


def curve(meter: str, zero_slots: range, day: dt.date = D, kwh: float = 0.1) -> pl.DataFrame:
    """A curve with ``kwh`` in every slot but the (1-based) ``zero_slots``."""
    vals = {s: [0.0 if i + 1 in zero_slots else kwh] for i, s in enumerate(SLOTS)}
    return pl.DataFrame({"meter_id": [meter], "date": [day], **vals})


NO_CURVES = curve("none", range(0)).clear()


def interruptions(ev: pl.DataFrame, curves: pl.DataFrame = NO_CURVES) -> pl.DataFrame:
    power = o.power_events(ev)
    evidence = o.supply_evidence(ev.lazy(), curves.lazy(), o.needs_evidence(power))
    return o.meter_interruptions(power, evidence, CFG)


def outage_events(ev: pl.DataFrame, plans: pl.DataFrame | None = None, curves: pl.DataFrame = NO_CURVES):
    intr = interruptions(ev, curves)
    grouped, members = o.group_interruptions(intr, service(), CFG)
    return o.match_plans(grouped, plans if plans is not None else no_plans(), CFG), members


def no_plans() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "plan_id": pl.String,
            "kind": pl.String,
            "feeder_id": pl.String,
            "area_id": pl.String,
            "planned_start": pl.Datetime("us"),
            "planned_end": pl.Datetime("us"),
            "notice_time": pl.Datetime("us"),
        }
    )


def plan(pid: str, kind: str, area: str | None, start: dt.datetime, end: dt.datetime, notice: dt.datetime):
    return pl.DataFrame([(pid, kind, "F1", area, start, end, notice)], schema=no_plans().schema, orient="row")


# --- meter interruptions -----------------------------------------------------------------------


def test_pairs_off_with_next_on_whatever_the_delivery_order_and_drops_repeats() -> None:
    got = interruptions(
        events(
            ("c1", t("11:00"), "POWER_ON"),
            ("c1", t("10:00"), "POWER_OFF"),
            ("c1", t("10:00"), "POWER_OFF"),  # the same event delivered twice
            ("c1", t("10:20"), "POWER_OFF"),  # the meter repeats its state: no supply seen between
            ("c1", t("11:05"), "POWER_ON"),  # a repeated ON
        )
    )
    expected = pl.DataFrame(
        {
            "meter_id": ["c1"],
            "start_time": [t("10:00")],
            "end_time": [t("11:00")],
            "start_source": ["event"],
            "end_source": ["event"],
            "duration_min": [60.0],
            "momentary": [False],
        },
        schema=o.INTERRUPTION_SCHEMA,
    )
    assert_frame_equal(got, expected)


def test_a_missing_power_on_is_closed_by_the_first_curve_slot_with_energy() -> None:
    # off at 10:07 (slot 41 = 10:00-10:15 still has energy), slots 42..44 empty, 45 (11:00) has energy
    got = interruptions(events(("c1", t("10:07"), "POWER_OFF")), curve("c1", range(42, 45)))
    assert got.select("start_time", "end_time", "end_source", "duration_min").row(0) == (
        t("10:07"),
        t("11:00"),
        "curve",
        53.0,
    )


def test_a_missing_power_off_opens_at_the_last_slot_with_energy() -> None:
    # slots 41..44 (10:00-11:00) without energy, the ON at 11:02
    got = interruptions(events(("c1", t("11:02"), "POWER_ON")), curve("c1", range(41, 45)))
    assert got.select("start_time", "end_time", "start_source", "duration_min").row(0) == (
        t("10:00"),
        t("11:02"),
        "curve",
        62.0,
    )


def test_a_missing_power_on_is_closed_by_a_later_event() -> None:
    got = interruptions(events(("c1", t("10:00"), "POWER_OFF"), ("c1", t("12:30"), "CLOCK_FAULT")))
    assert got.select("end_time", "end_source").row(0) == (t("12:30"), "event")


def test_an_off_with_no_sign_of_supply_after_it_stays_open() -> None:
    got = interruptions(events(("c1", t("23:00"), "POWER_OFF")))
    assert got.select("end_time", "end_source", "momentary").row(0) == (None, "open", False)


def test_a_momentary_blip_is_set_apart() -> None:
    got = interruptions(events(("c2", t("10:00:00"), "POWER_OFF"), ("c2", t("10:02:30"), "POWER_ON")))
    assert got.select("duration_min", "momentary").row(0) == (2.5, True)


# --- area and customer interruptions -------------------------------------------------------------


def test_an_area_outage_seen_by_the_master_meter_takes_in_its_customers() -> None:
    ev, members = outage_events(
        events(
            ("M0", t("10:00"), "POWER_OFF"),
            ("M0", t("11:00"), "POWER_ON"),
            ("c1", t("10:01"), "POWER_OFF"),
            ("c1", t("11:00"), "POWER_ON"),
        )
    )
    assert ev.select(
        "outage_id", "level", "source", "area_id", "duration_min", "customers_affected", "meters_off", "cause"
    ).rows() == [("A-A1-20260105100000", "area", "master", "A1", 60.0, 4, 2, "fault")]
    assert sorted(members["meter_id"]) == ["M0", "c1"]


@pytest.mark.parametrize(
    ("off", "level"),
    [
        pytest.param(["c1", "c2", "c3"], "area", id="three-of-four-customers"),
        pytest.param(["c1", "c2"], "area", id="half-of-the-customers"),
        pytest.param(["c1"], "customer", id="one-customer"),
    ],
)
def test_an_outage_seen_only_by_customers_is_an_area_one_when_half_go_off_together(off: list[str], level: str) -> None:
    rows = []
    for i, m in enumerate(off):
        rows += [(m, t(f"10:0{2 * i}"), "POWER_OFF"), (m, t(f"10:4{i}"), "POWER_ON")]
    ev, _ = outage_events(events(*rows))
    assert ev["level"].to_list() == [level] * (1 if level == "area" else len(off))
    if level == "area":
        assert ev.select("source", "start_time", "end_time", "customers_affected", "meters_off").row(0) == (
            "customers",
            t("10:00"),
            t(f"10:4{len(off) - 1}"),
            4,
            len(off),
        )


def test_customers_going_off_more_than_five_minutes_apart_are_not_together() -> None:
    ev, _ = outage_events(
        events(
            ("c1", t("10:00"), "POWER_OFF"),
            ("c1", t("10:30"), "POWER_ON"),
            ("c2", t("10:06"), "POWER_OFF"),
            ("c2", t("10:30"), "POWER_ON"),
        )
    )
    assert ev["level"].to_list() == ["customer", "customer"]


# --- plans ------------------------------------------------------------------------------------


def test_a_planned_outage_with_late_notice_that_overran() -> None:
    p = plan("P1", "planned", "A1", t("10:00"), t("11:00"), t("10:00", D - dt.timedelta(days=3)))
    ev, _ = outage_events(events(("M0", t("10:00"), "POWER_OFF"), ("M0", t("11:30"), "POWER_ON")), p)
    assert ev.select("cause", "plan_id", "deviations").row(0) == ("planned", "P1", "late_notice,overrun")
    checks = o.plan_checks(p, ev, service(), dt.datetime(2026, 1, 6), CFG)
    assert checks.select(
        "status",
        "notice_lead_hours",
        "notice_ok",
        "planned_min",
        "actual_min",
        "started_early",
        "overran",
        "customers_in_scope",
        "customers_affected",
        "deviations",
    ).row(0) == ("executed", 72.0, False, 60.0, 90.0, False, True, 4, 4, "late_notice,overrun")


def test_an_outage_without_a_plan_is_a_fault_and_a_plan_without_an_outage_was_not_executed() -> None:
    p = plan("P2", "temporary", None, t("14:00"), t("15:00"), t("08:00", D - dt.timedelta(days=2)))
    ev, _ = outage_events(events(("M0", t("10:00"), "POWER_OFF"), ("M0", t("11:00"), "POWER_ON")), p)
    assert ev.select("cause", "plan_id", "deviations").row(0) == ("fault", None, "")
    checks = o.plan_checks(p, ev, service(), dt.datetime(2026, 1, 6), CFG)
    assert checks.select("status", "notice_ok", "customers_in_scope", "deviations").row(0) == (
        "not_executed",
        True,
        6,
        "not_executed",
    )
    pending = o.plan_checks(p, ev, service(), dt.datetime(2026, 1, 5, 12), CFG)
    assert pending["status"].to_list() == ["pending"]


def test_an_outage_wider_than_its_plan() -> None:
    notice = t("09:00", D - dt.timedelta(days=8))
    p = plan("P3", "planned", "A1", t("10:00"), t("12:00"), notice)
    ev, _ = outage_events(
        events(
            ("M0", t("10:00"), "POWER_OFF"),
            ("M0", t("12:00"), "POWER_ON"),
            ("M9", t("10:00"), "POWER_OFF"),
            ("M9", t("12:00"), "POWER_ON"),
        ),
        p,
    )
    assert ev.select("area_id", "cause", "deviations").rows() == [
        ("A1", "planned", ""),
        ("A2", "planned", "outside_plan_scope"),
    ]
    checks = o.plan_checks(p, ev, service(), dt.datetime(2026, 1, 6), CFG)
    assert checks.select("customers_in_scope", "customers_affected", "wider_than_plan", "deviations").row(0) == (
        4,
        6,
        True,
        "wider_than_plan",
    )


# --- reliability --------------------------------------------------------------------------------


def test_saifi_saidi_rs1_of_a_small_area_by_hand() -> None:
    # January: 31 days = 744 h. Area A1 (4 customers): a 1 h area fault, a 2 h planned area
    # outage, a 30 min fault of customer c1 alone, a momentary blip (not counted).
    p = plan("P1", "planned", "A1", t("14:00"), t("16:00"), t("09:00", D - dt.timedelta(days=10)))
    ev, _ = outage_events(
        events(
            ("M0", t("08:00"), "POWER_OFF"),
            ("M0", t("09:00"), "POWER_ON"),
            ("M0", t("14:00"), "POWER_OFF"),
            ("M0", t("16:00"), "POWER_ON"),
            ("c1", t("18:00"), "POWER_OFF"),
            ("c1", t("18:30"), "POWER_ON"),
            ("c2", t("20:00"), "POWER_OFF"),
            ("c2", t("20:01"), "POWER_ON"),
        ),
        p,
    )
    affected = o.affected_customers(ev, service())
    served = service(dt.date(2026, 1, 31)).filter(pl.col("role") == "customer")
    got = o.reliability(affected, served, "2026-01").filter(pl.col("scope_id") == "A1")
    # customer interruptions 4 + 4 + 1 = 9; customer-hours 4x1 + 4x2 + 0.5 = 12.5
    assert got.select("customers_served", "customer_interruptions", "customer_hours", "saifi", "saidi_hours").row(
        0
    ) == (
        4,
        9,
        12.5,
        2.25,
        3.125,
    )
    assert got["rs1"][0] == pytest.approx(1 - 3.125 / 744, abs=1e-12)
    # faults only: 4 + 1 = 5 interruptions, 4.5 customer-hours
    assert got.select("customer_interruptions_unplanned", "saifi_unplanned", "saidi_unplanned_hours").row(0) == (
        5,
        1.25,
        1.125,
    )
    feeder = o.reliability(affected, served, "2026-01").filter(pl.col("scope") == "feeder")
    assert feeder.select("scope_id", "customers_served", "customer_interruptions", "saidi_hours").row(0) == (
        "F1",
        6,
        9,
        12.5 / 6,
    )


def test_frequent_outage_customers_over_twelve_months() -> None:
    cfg = o.OutageConfig.model_validate({"frequent": {"months": 12, "max_interruptions": 2}})
    affected = pl.DataFrame(
        {
            "outage_id": ["a", "b", "c", "d", "e"],
            "customer_id": ["C1", "C1", "C1", "C2", "C1"],
            "meter_id": ["c1", "c1", "c1", "c2", "c1"],
            "area_id": ["A1"] * 5,
            "feeder_id": ["F1"] * 5,
            "org_id": ["ORG01"] * 5,
            "start_time": [
                dt.datetime(2025, 1, 31),  # outside the 12 months Feb 2025 - Jan 2026
                dt.datetime(2025, 2, 1),
                dt.datetime(2025, 8, 1),
                dt.datetime(2025, 8, 1),
                dt.datetime(2026, 1, 31, 23),
            ],
            "hours": [1.0, 2.0, 0.5, 1.0, 1.0],
            "cause": ["fault", "fault", "planned", "fault", "fault"],
        }
    )
    got = o.frequent_customers(affected, "2026-01", cfg)
    assert got.select(
        "customer_id", "window_start", "interruptions", "fault_interruptions", "interruption_hours"
    ).rows() == [("C1", dt.date(2025, 2, 1), 3, 2, 3.5)]


def test_meter_days_cover_the_area_and_the_slots_wholly_inside() -> None:
    ev, members = outage_events(events(("M0", t("10:07"), "POWER_OFF"), ("M0", t("11:00"), "POWER_ON")))
    got = o.meter_days(ev, members, service())
    # every meter of A1 (master + 4 customers), 53 min, slots 42..44 wholly inside
    assert got.height == 5
    assert got.select("outage_min", "first_slot", "last_slot", "off_at_midnight").unique().rows() == [
        (53.0, 42, 44, False)
    ]


def test_a_customer_following_another_areas_outages_is_a_mapping_suspect() -> None:
    rows = []
    for h in ("08", "12", "16"):  # three outages of A2; c4 (filed under A1) goes off with each
        rows += [("M9", t(f"{h}:00"), "POWER_OFF"), ("M9", t(f"{h}:30"), "POWER_ON")]
        rows += [("c4", t(f"{h}:01"), "POWER_OFF"), ("c4", t(f"{h}:30"), "POWER_ON")]
    rows += [("M0", t("20:00"), "POWER_OFF"), ("M0", t("21:00"), "POWER_ON")]  # A1's own outage: c4 stays on
    ev, members = outage_events(events(*rows))
    got = o.mapping_suspects(ev, members, service(), D, CFG)
    assert got.select("meter_id", "area_id", "other_area_id", "coincidences", "own_area_outages", "score").rows() == [
        ("c4", "A1", "A2", 3, 1, 1.0)
    ]


def test_mapping_suspects_of_several_window_ends_in_one_pass() -> None:
    """The same outages (three of A2 that c4 follows, on D) seen from three window ends: D and
    D+30 hold them in their 31 days, D+31 does not."""
    rows = []
    for h in ("08", "12", "16"):
        rows += [("M9", t(f"{h}:00"), "POWER_OFF"), ("M9", t(f"{h}:30"), "POWER_ON")]
        rows += [("c4", t(f"{h}:01"), "POWER_OFF"), ("c4", t(f"{h}:30"), "POWER_ON")]
    ev, members = outage_events(events(*rows))
    ends = [D, D + dt.timedelta(days=30), D + dt.timedelta(days=31)]
    customers = pl.concat([service(e) for e in ends]).filter(pl.col("role") == "customer")
    got = o.mapping_suspects_at(ev, members, customers, ends, CFG)
    assert got.select(
        "date", "meter_id", "other_area_id", "coincidences", "own_area_outages", "window_start"
    ).rows() == [
        (D, "c4", "A2", 3, 0, D - dt.timedelta(days=30)),
        (D + dt.timedelta(days=30), "c4", "A2", 3, 0, D),
    ]
    # each end's rows are those it gives alone
    for end in ends[:2]:
        alone = o.mapping_suspects(ev, members, service(end), end, CFG)
        assert_frame_equal(got.filter(pl.col("date") == end).drop("date"), alone)
    assert got["evidence"].to_list()[1].endswith(f'"window_start":"{D.isoformat()}"}}')


def test_mapping_suspects_from_outages_join_the_loss_diagnosis() -> None:
    from meterlake.schemas.loss_diagnosis import LOSS_DIAGNOSIS

    suspects = pl.DataFrame(
        {
            "date": [D],
            "window_start": [D - dt.timedelta(days=30)],
            "area_id": ["A1"],
            "meter_id": ["c4"],
            "customer_id": ["C4"],
            "other_area_id": ["A2"],
            "coincidences": [3],
            "own_area_outages": [1],
            "own_coincidences": [0],
            "score": [1.0],
            "evidence": ['{"other_area_outages":3}'],
        }
    )
    empty = pl.DataFrame(schema=LOSS_DIAGNOSIS.schema)
    got = o.with_mapping_suspects(empty, suspects)
    assert got.select("area_id", "kind", "rule", "meter_id", "other_area_id", "rank", "days", "evidence").rows() == [
        (
            "A1",
            "mapping_suspect",
            "loss.diagnosis.mapping_suspect",
            "c4",
            "A2",
            1,
            31,
            '{"source":"outage_events","other_area_outages":3}',
        )
    ]
    # a meter the balance already names keeps its row
    assert o.with_mapping_suspects(got, suspects).height == 1


def test_only_meters_whose_lost_event_no_neighbour_saw_need_their_curves() -> None:
    power = o.power_events(
        events(
            ("M0", t("10:00"), "POWER_OFF"),
            ("M0", t("11:00"), "POWER_ON"),
            ("c1", t("10:01"), "POWER_OFF"),  # lost its ON: the master's events cover it
            ("c2", t("15:00"), "POWER_OFF"),  # lost its ON, alone in its area at 15:00
        )
    )
    assert o.lone_meters(power, service(), CFG).to_list() == ["c2"]
