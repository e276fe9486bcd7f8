"""Theft and anomaly ranking (反窃电): indicators and an explainable score. Pure.

Frames in, frames out; nothing here opens a file. The anomalies stage
(``meterlake/stages/anomalies.py``) reads the lake and calls, per detection date ``day``:

1. :func:`prepare_days` once: the customer-meter days of ``meter_daily`` with the
   derived daily series (value present, ratio to the peer median, TOU shares);
   :func:`reverse_history` once: when each meter's reverse register first moved.
2. :func:`indicators`: one row per meter with every indicator's strength in [0, 1]
   (``s_<key>``), the date it points at (``d_<key>``) and its JSON evidence
   (``ev_<key>``), plus the raw figures the supervised model also learns from.
3. :func:`score`: points = weight x strength per indicator, score = Σ points,
   reasons in words strongest first, findings as JSON: the ``anomalies`` mart.

The indicators (keys of :data:`meterlake.schemas.anomalies.INDICATORS`), with the
practice each follows:

* ``event_*`` — tamper and wiring events (开表盖/开端钮盒, 失压/失流/断相, 恒定磁场,
  电表清零) in the look-back, stronger when consumption fell after them: the event
  records of DL/T 645-2007 meters and Q/GDW 376.1 terminals (ERC 9/10/12/14/27-30),
  which anti-theft screening follows up (docs/domain.md#theft-screening). Strength = ``alone`` +
  (1 - ``alone``) x ramp(fall after the event); the strongest event of its family.
* ``drop_own`` / ``drop_peer`` — a sudden sustained fall: the split of the window's
  daily series maximising Welch's t of mean(before) - mean(after) (a single
  change point, as in CUSUM screening), on the meter's own kWh and on its kWh over the
  median of its peers (same class and area; the class in the whole lake when the area
  has too few), which takes out weather and holidays. Strength = ramp(fall) x ramp(t).
* ``zero`` — a run of zero days up to the detection date on a meter that used energy
  before ("zero consumption on a live meter"; VEE zero-run check against history).
  ``flat`` — identical non-zero actual daily kWh for days (VEE flat-line check).
* ``reverse`` — reverse energy on a customer with no PV. The archive's
  ``pv_capacity_kw`` (CONTRACT v2) says which customers have PV; where it is empty (a
  v1 archive) no PV is inferred when the reverse register stood still for
  ``quiet_days`` after the meter's first day in the lake (:func:`reverse_history`); a
  PV customer exports from its first sunny day. A customer inferred to have PV still fires when its
  forward register stopped on the days its reverse one ran (``pv_reverse_only``):
  rooftop PV exports at midday, but the household still imports at night, so a day
  with reverse energy and no forward energy at all is reversed wiring either way
  (a large PV array may export far more than the house uses, so the share of reverse
  energy alone does not tell). Consequence: a meter wired in reverse from (nearly)
  the lake's first day that still shows some forward energy looks like PV here.
* ``tou`` — the TOU split (shares of sharp/peak/flat/valley) no longer matches the
  meter's history: the split of the window maximising the total-variation distance
  of the mean shares before and after, weighed by the Welch t of the share that moved.
* ``loss_*`` — the line-loss diagnosis of the window ending at the detection date
  (``loss_diagnosis``: theft_candidate, multiplier_suspect, mapping_suspect), its
  score through a ramp.
* ``model`` — supervised mode only: the probability of theft from a model trained on
  inspection outcomes (``transforms/supervised.py``); joins the score as one more reason.

The balance's share of the score, measured
------------------------------------------
The ``balance`` points are 2 x the finding's score, z / 12 clipped to 1 (z: the largest
of the balance's four robust t: steady, night, some days, and the step in what the
customer records; with ``[loss] balance_statistics = "sum"``, the shipped setting, the sum
of their positive parts, below); a weak finding (evidence from z 1.5 that the balance's listing rules
leave out, transforms/balance.py "Weak evidence") a quarter of that, at most 0.5. Other uses of the same findings were measured on the
two generated zones of 20,000 meters x 30 days (seeds 7 | 11), re-scoring the anomalies
of the 30 dates with only the balance points changed; ``meterlake evaluate``: partial
thieves in their area's top 5 and ROC AUC, blunt thieves in the top 5, the seven
injector kinds' top-5 hits together (multipliers and wrong areas do not read the
ranking)::

    balance points                             partial          blunt     injectors
    2 x min(z / 12, 1) (kept)                  38 | 43  0.836   176 | 171   91 | 91
    2 x min(z / 10, 1)                         39 | 44  0.836   175 | 170   91 | 91
    2 x min(z / 8, 1)                          40 | 45  0.835   173 | 169   91 | 91
    3 x min(z / 12, 1)                         40 | 45  0.835   173 | 167   89 | 90
    4 x min(z / 12, 1)                         40 | 48  0.836   171 | 162   89 | 88
    2 x ramp(z, 2 .. 12)                       38 | 42  0.836   178 | 174   91 | 91
    nothing below z 3                          38 | 43  0.778   176 | 171   91 | 91
    + 1 at the area's balance rank 1-3, z >= 4 39 | 47  0.836   172 | 164   90 | 91
    z with the previous window's, Stouffer     38 | 46  0.836   175 | 170   91 | 91

(AUC of seed 7; seed 11 moves alike.) Every rule that puts more partial thieves in
their area's top 5 takes about as many blunt thieves out of it: the top 5 of an area is
shared, and 37 | 36 of the 99 partial thieves are in areas with more than 5 thieves of
all kinds (ranked after every other thief of their area, at most 84 | 83 of them could
be in the top 5). Of the 99: 38 | 43 are hits, 12 | 9 are below 5 other thieves, 26 |
23 are below honest or merely badly collected meters, almost all of them by the
balance's own points (its z ranks them higher), and 23 | 24 score nothing (no balance
finding: 17 of them night-only on both seeds). The weight stays: what moves partial
thefts is the balance's statistic, not its share of the score (its night statistic read
against the area's own spread and on the night's share: partial AUC 0.836 -> 0.863 |
0.837 -> 0.876, top 5 38 -> 40 | 43 -> 48; module docstring of transforms/balance.py).

The four statistics summed
--------------------------
A partial theft often shows in two of the balance's statistics at once: a night bypass
in the night t and in the step of its night share, a steady share in the steady t and in
the step of its area share, a share on some days in the some-days t and the steady t. The
strength reads Σ t₊ over the four (the finding's score x Σ t₊ / max t₊, so a weak
finding stays a quarter and a finding running against the loss keeps its own strength);
the finding itself, its listing and its score in loss_diagnosis (and so theft cases) do
not change. Honest customers' statistics sum too, and the top 5 of an area is shared:
areas holding a reversed meter, whose only other evidence is its reverse energy (1.5
points before), lost it to honest customers that the balance lists there (the reversed
meter's unrecorded use is in the loss and has no curve to take it out). Reverse energy
on a customer without PV is a record, not an estimate: its weight is now 2.5, above the
2 that the balance's evidence alone can give. Measured on the three generated zones
(20,000 meters x 30 days; seeds 7 and 11 to choose, 13 held out): the four windows'
findings recomputed from the kept day states, their strengths set in the findings (the
shipped row: here, as the pipeline does it) and the 30 dates re-scored with only the
balance and reverse points changed (the first and shipped rows are ``meterlake
evaluate``'s figures); partial thefts' ROC AUC, area top-5 hits and hits with the other
thieves set apart, blunt thefts' AUC and hits::

    strength (reverse weight)              seed 7                 seed 11
                                           partial     blunt      partial     blunt
    largest t (1.5, before)                0.930 47 67 0.985 179  0.925 59 78 0.984 175
    largest t (2.5)                        0.930 47 67 0.985 179  0.925 59 78 0.984 175
    Σ t₊ (1.5)                             0.934 52 68 0.986 179  0.930 59 78 0.984 174
    Σ t₊ (2.5, shipped)                    0.933 52 68 0.985 180  0.930 59 78 0.984 175
    Σ t₊, weak findings from Σ 1.5 (2.5)   0.933 52 68 0.986 180  0.938 59 77 0.983 175
    max t + 0.5 x the rest (1.5)           0.934 48 68 0.986 178  0.929 59 78 0.984 173
    min(Σ t₊, max t + 1) (1.5)             0.933 47 67 0.985 179  0.930 58 78 0.984 173
    Σ (t − 0.5)₊ (1.5)                     0.933 49 67 0.986 179  0.928 60 78 0.986 172
    √Σ t₊² (1.5)                           0.933 48 69 0.986 179  0.927 59 77 0.984 173
    Σ t₊ of the month's windows so far,
      Stouffer (2.5)                       0.938 51 74 0.985 178  0.931 63 77 0.983 172
    max t of the month's windows so far,
      Stouffer (2.5)                       0.934 51 71 0.984 179  0.927 62 81 0.985 173
    z x unrecorded share / 0.3, in 0.7-1.3
      (1.5)                                0.930 49 66 0.985 178  0.923 57 74 0.986 175

The injectors keep their area hits in the shipped row (h5 of seed 11: AUC 0.934 ->
0.933; none moves by more than 0.001). Pipeline figures before -> after, all three seeds:
benchmarks/README.md (2026-12-07, w8-theft).

Determinism: every figure is rounded to 1e-6 before it is used for points, ties are
broken by meter_id and dates, and no step depends on row order after a group_by.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping, Sequence
from typing import Literal

import polars as pl
from pydantic import Field, model_validator

from meterlake.schemas._base import MissingColumnsError
from meterlake.schemas.anomalies import ANOMALIES, INDICATORS, RULES, points_column
from meterlake.schemas.loss_diagnosis import BALANCE_RULES
from meterlake.transforms import observer
from meterlake.transforms.dates import split_by_date

from .frames import sort_distinct
from .strict import StrictModel

#: the interval energy balance's theft rule, read by the ``balance`` indicator
BALANCE_RULE = BALANCE_RULES["theft_candidate"]

#: figures are rounded to this many decimals (determinism across engines)
DECIMALS = 6

#: the meter_daily columns the indicators read
DAY_COLUMNS: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "meter_id": pl.String(),
    "customer_id": pl.String(),
    "area_id": pl.String(),
    "feeder_id": pl.String(),
    "role": pl.String(),
    "customer_class": pl.String(),
    "kwh": pl.Float64(),
    "kwh_sharp": pl.Float64(),
    "kwh_peak": pl.Float64(),
    "kwh_flat": pl.Float64(),
    "kwh_valley": pl.Float64(),
    "reverse_kwh": pl.Float64(),
    "quality": pl.String(),
}

#: the events columns the indicators read
EVENT_COLUMNS: dict[str, pl.DataType] = {
    "meter_id": pl.String(),
    "event_time": pl.Datetime("us"),
    "event_code": pl.String(),
}

#: the loss_diagnosis columns the indicators read
DIAGNOSIS_COLUMNS: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "meter_id": pl.String(),
    "customer_id": pl.String(),
    "area_id": pl.String(),
    "kind": pl.String(),
    "score": pl.Float64(),
    "rank": pl.Int32(),
    "area_loss_rate": pl.Float64(),
    "other_area_id": pl.String(),
    "rule": pl.String(),
    "evidence": pl.String(),
}

#: event indicator key -> the event codes of its family
EVENT_FAMILIES: dict[str, tuple[str, ...]] = {
    "event_cover": ("COVER_OPEN", "TERMINAL_COVER_OPEN"),
    "event_wiring": ("VOLTAGE_LOSS", "CURRENT_LOSS", "PHASE_FAILURE"),
    "event_magnetic": ("MAGNETIC_INTERFERENCE",),
    "event_clear": ("METER_CLEAR",),
}

#: loss indicator key -> loss_diagnosis kind
LOSS_KINDS: dict[str, str] = {
    "loss_theft": "theft_candidate",
    "loss_multiplier": "multiplier_suspect",
    "loss_mapping": "mapping_suspect",
}

TOU_REGISTERS = ("sharp", "peak", "flat", "valley")
#: the columns of :func:`prepare_days`, a customer's day as the indicators read it
PREPARED_COLUMNS = (
    "date",
    "meter_id",
    "customer_id",
    "area_id",
    "feeder_id",
    "customer_class",
    "v",
    "rev",
    "actual",
    "peer_kwh",
    "ratio",
    *(f"sh_{r}" for r in TOU_REGISTERS),
)

#: what every indicator groups by: the detection date, then the meter (several dates are
#: computed together, each over its own look-back)
KEYS: list[str] = ["_detection_date", "meter_id"]

#: indicators computed from the data (the model's probability is added by `score`)
DATA_KEYS: tuple[str, ...] = tuple(k for k in INDICATORS if k != "model")

#: raw figures, besides the strengths, that the supervised model learns from
RAW_FEATURES: tuple[str, ...] = (
    "f_drop_own_fall",
    "f_drop_own_t",
    "f_drop_peer_fall",
    "f_drop_peer_t",
    "f_zero_days",
    "f_reverse_share",
    "f_tou_shift",
    "f_events",
    "f_observer_days",
    "f_observer_t",
)


class AnomalyInputError(ValueError):
    """An input frame breaks its contract in a way the ranking cannot work around."""


# -- configuration ---------------------------------------------------------------------


class Ramp(StrictModel):
    """Strength 0 at or below ``lo``, 1 at or above ``hi``, linear between."""

    lo: float = Field(description="value at and below which the strength is 0")
    hi: float = Field(description="value at and above which the strength is 1")

    @model_validator(mode="after")
    def _ordered(self) -> Ramp:
        if not self.hi > self.lo:
            raise ValueError(f"ramp: expected hi > lo, found lo={self.lo}, hi={self.hi}")
        return self

    def expr(self, x: pl.Expr) -> pl.Expr:
        return ((x - self.lo) / (self.hi - self.lo)).clip(0.0, 1.0)


class WindowRules(StrictModel):
    history_days: int = Field(90, ge=7, description="days of history, ending at the detection date, for change points")
    min_before_days: int = Field(14, ge=2, description="days with a value a change point needs before it")
    min_after_days: int = Field(
        7, ge=1, description="days with a value a change point needs after it, up to the detection date"
    )


class PeerRules(StrictModel):
    min_peers: int = Field(
        5,
        ge=1,
        description="customers of the class in the area with a value needed for an area peer median; else the class lake-wide",
    )
    min_peer_kwh: float = Field(0.1, ge=0, description="a peer median below this (kWh/day) gives no ratio")


class DropRules(StrictModel):
    min_baseline_kwh: float = Field(0.5, ge=0, description="mean kWh/day before the split needed to judge a fall")
    min_baseline_ratio: float = Field(
        0.05, ge=0, description="mean ratio to the peer median before the split needed to judge a fall"
    )
    fall: Ramp = Field(Ramp(lo=0.2, hi=0.6), description="relative fall 1 - after/before")
    t: Ramp = Field(Ramp(lo=3.0, hi=8.0), description="Welch t statistic of the fall")


class ZeroRules(StrictModel):
    zero_kwh: float = Field(0.01, ge=0, description="a day at or below this (kWh) is zero")
    live_kwh: float = Field(0.5, ge=0, description="mean kWh/day before the zero run that makes the meter live")
    days: Ramp = Field(
        Ramp(lo=2, hi=7), description="length of the zero run ending at the detection date (days with a value)"
    )


class FlatRules(StrictModel):
    tolerance_kwh: float = Field(0.001, ge=0, description="days within this of each other (kWh) are identical")
    days: Ramp = Field(Ramp(lo=4, hi=10), description="length of the run of identical non-zero actual days")


class ReverseRules(StrictModel):
    moved_kwh: float = Field(0.05, ge=0, description="reverse kWh in a day above which the reverse register moved")
    quiet_days: int = Field(
        14, ge=1, description="days the reverse register stood still after the meter's first lake day that infer no PV"
    )
    min_days: int = Field(2, ge=1, description="days with reverse energy needed to fire")
    share: Ramp = Field(
        Ramp(lo=0.1, hi=0.5),
        description="no PV inferred: reverse / (reverse + forward) energy since the reverse register first moved",
    )
    pv_reverse_only: Ramp = Field(
        Ramp(lo=0.5, hi=0.9),
        description="PV inferred: share of the days with reverse energy that have no forward energy (a PV customer still imports at night)",
    )


class TouRules(StrictModel):
    min_day_kwh: float = Field(1.0, ge=0, description="days below this (kWh over the TOU registers) carry no split")
    shift: Ramp = Field(
        Ramp(lo=0.1, hi=0.3), description="total-variation distance between the mean TOU shares before and after"
    )
    t: Ramp = Field(Ramp(lo=4.0, hi=10.0), description="Welch t of the share that moved most")


class EventRules(StrictModel):
    lookback_days: int = Field(56, ge=1, description="events in this many days up to the detection date count")
    before_days: int = Field(14, ge=1, description="days before an event whose mean kWh is the baseline")
    min_after_days: int = Field(3, ge=1, description="days with a value after the event needed to judge a fall")
    alone: float = Field(0.3, ge=0, le=1, description="strength of an event without a fall after it")
    fall: Ramp = Field(Ramp(lo=0.1, hi=0.5), description="relative fall after the event")


class LossRules(StrictModel):
    score: Ramp = Field(Ramp(lo=0.3, hi=0.8), description="loss_diagnosis score (in [0, 1])")
    balance_statistics: Literal["largest", "sum"] = Field(
        "largest",
        description="the balance's theft strength: its finding's score (the largest of its four robust t), or that "
        "score scaled to the sum of their positive parts",
    )


class Weights(StrictModel):
    """Points of each indicator at full strength (keys of schemas.anomalies.INDICATORS)."""

    event_cover: float = Field(1.0, ge=0, description=INDICATORS["event_cover"][2])
    event_wiring: float = Field(0.8, ge=0, description=INDICATORS["event_wiring"][2])
    event_magnetic: float = Field(1.2, ge=0, description=INDICATORS["event_magnetic"][2])
    event_clear: float = Field(0.8, ge=0, description=INDICATORS["event_clear"][2])
    drop_own: float = Field(1.0, ge=0, description=INDICATORS["drop_own"][2])
    drop_peer: float = Field(1.0, ge=0, description=INDICATORS["drop_peer"][2])
    zero: float = Field(1.0, ge=0, description=INDICATORS["zero"][2])
    flat: float = Field(0.5, ge=0, description=INDICATORS["flat"][2])
    reverse: float = Field(1.5, ge=0, description=INDICATORS["reverse"][2])
    tou: float = Field(0.5, ge=0, description=INDICATORS["tou"][2])
    loss_theft: float = Field(1.0, ge=0, description=INDICATORS["loss_theft"][2])
    loss_multiplier: float = Field(0.5, ge=0, description=INDICATORS["loss_multiplier"][2])
    loss_mapping: float = Field(0.3, ge=0, description=INDICATORS["loss_mapping"][2])
    balance: float = Field(2.0, ge=0, description=INDICATORS["balance"][2])
    observer: float = Field(4.0, ge=0, description=INDICATORS["observer"][2])
    model: float = Field(2.0, ge=0, description=INDICATORS["model"][2])


class SupervisedRules(StrictModel):
    enabled: bool = Field(True, description="train on inspection outcomes when there are enough")
    positive_outcomes: tuple[str, ...] = Field(("theft",), description="inspection outcomes that count as positive")
    min_positives: int = Field(10, ge=1, description="positive inspections needed before the detection date")
    min_negatives: int = Field(10, ge=1, description="negative inspections needed before the detection date")
    validation_share: float = Field(
        0.3, gt=0, lt=1, description="latest share of inspections (by date) that validates the model"
    )
    random_state: int = Field(0, description="random_state of the classifier (deterministic scores)")
    max_iter: int = Field(200, ge=1, description="boosting iterations")
    learning_rate: float = Field(0.05, gt=0, description="boosting learning rate")
    max_leaf_nodes: int = Field(15, ge=2, description="leaves per tree")
    min_samples_leaf: int = Field(5, ge=1, description="minimum samples per leaf")
    min_p: float = Field(
        0.1,
        ge=0,
        le=1,
        description="a probability below this gives no points (a boosted model never says exactly 0: without a "
        "floor every meter would carry a sliver of model points)",
    )


class OutputRules(StrictModel):
    min_score: float = Field(0.0, ge=0, description="write a meter for a date only when its score is above this")


class TheftCaseRules(StrictModel):
    min_score: float = Field(
        0.33, ge=0, le=1, description="a balance theft candidate scoring at least this becomes a theft case"
    )
    penalty_multiple: float = Field(
        3.0, ge=0, description="违约使用电费 as a multiple of 追补电费 (供电营业规则 art. 102: three times)"
    )
    min_observer: float = Field(
        0.9,
        ge=0,
        le=1,
        description="an observer strength (shape theft seen by the area master) of at least this becomes a theft case",
    )


class ObserverRules(StrictModel):
    """The area master as observer of shape thefts (``transforms/observer.py``; [observer])."""

    enabled: bool = Field(True, description="compute the observer indicator (needs the clean curves)")
    window_days: int = Field(14, ge=3, le=62, description="days of daily summaries, ending at the detection date")
    min_days: int = Field(7, ge=2, description="days with a curve a customer needs in the window")
    blocks: int = Field(24, ge=4, le=96, description="equal blocks of the day the summaries keep (a divisor of 96)")
    min_actual: float = Field(0.9, ge=0, le=1, description="share of a day's slots collected for the day to be judged")
    zero_kwh: float = Field(0.0, ge=0, description="a collected slot at or below this (kWh, primary) counts as zero")
    floor_kwh: float = Field(1e-3, gt=0, description="slots below this (kWh) count as this in the roughness")
    min_usual_cv: float = Field(
        0.1,
        ge=0,
        description="a usual day flatter than this (coefficient of variation) gives no flat or shape strength",
    )
    low: Ramp = Field(Ramp(lo=0.35, hi=0.7), description="1 - day kWh / usual day kWh")
    flat: Ramp = Field(Ramp(lo=0.5, hi=0.85), description="1 - the day's CV / the usual day's CV (over blocks)")
    zero_slots: Ramp = Field(Ramp(lo=8, hi=16), description="longest zero run beyond the usual one, in slots")
    rough: Ramp = Field(Ramp(lo=0.1, hi=0.3), description="median |Δ ln kWh| between slots beyond the usual one")
    reverse: Ramp = Field(
        Ramp(lo=0.3, hi=0.9),
        description="(correlation with the usual day reversed - with the usual day) / how far reversing moves the usual day",
    )
    min_reverse_gap: float = Field(
        0.05,
        gt=0,
        le=2,
        description="the reverse step is scaled by 1 - the usual day's correlation with itself reversed, at least this",
    )
    shape: Ramp = Field(Ramp(lo=0.4, hi=0.9), description="1 - correlation with the usual day")
    usual_top: float = Field(
        0.5,
        gt=0,
        le=1,
        description="the first usual day is the median of this share of the customer's days with the most energy "
        "(a thief recording less on most of its days does not set it)",
    )
    suspect_day: float = Field(
        0.5, ge=0, le=1, description="a day this strong is suspect (and not used for the usual day)"
    )
    day_types: list[list[int]] = Field(
        default_factory=lambda: [[0, 1, 2, 3, 4], [5, 6]],
        description="groups of weekdays (Monday = 0) with a usual day of their own (working days, weekend)",
    )
    min_type_days: int = Field(
        3, ge=1, description="days of a day type a customer needs for its own usual day (else the window's)"
    )
    min_usual_days: int = Field(
        3, ge=1, description="calm days needed to relearn the usual day without the suspect ones"
    )
    top_days: int = Field(3, ge=1, description="the day part is the mean of this many strongest day strengths")
    days: Ramp = Field(
        Ramp(lo=0.6, hi=1.0),
        description="the day part counts through this ramp (a few days somewhat unusual are every household's)",
    )
    max_fill_share: float = Field(
        0.002, ge=0, description="an area-day whose customers' filled kWh exceed this share of the master is not used"
    )
    min_spread_kwh: float = Field(1e-3, gt=0, description="floor of the area excess loss's spread (kWh per block)")
    t: Ramp = Field(Ramp(lo=0.5, hi=2.5), description="the area loss's confirmation t on the suspect days")
    floor: float = Field(
        0.75,
        ge=0,
        le=1,
        description="share of the day part kept when the area loss does not confirm (t at or below t.lo)",
    )
    min_strength: float = Field(0.3, ge=0, le=1, description="a strength below this counts as 0")
    screen: float = Field(
        0.0,
        ge=0,
        le=1,
        description="only a customer whose cheap look at its window (its three strongest days against references "
        "without medians) reaches this on average is judged, the others score 0; 0: every customer",
    )

    @model_validator(mode="after")
    def _day_types(self) -> ObserverRules:
        days = [w for group in self.day_types for w in group]
        if any(w not in range(7) for w in days) or len(days) != len(set(days)):
            raise ValueError(
                f"day_types: expected groups of weekdays 0-6 (Monday = 0), each at most once, found {self.day_types}"
            )
        return self


class AnomalyConfig(StrictModel):
    """config/anomaly.toml: thresholds, look-back windows and weights of the ranking."""

    window: WindowRules = Field(default_factory=WindowRules, description="change-point window")
    peers: PeerRules = Field(default_factory=PeerRules, description="peer groups")
    drop: DropRules = Field(default_factory=DropRules, description="sudden sustained drop (own and peer-relative)")
    zero: ZeroRules = Field(default_factory=ZeroRules, description="zero consumption on a live meter")
    flat: FlatRules = Field(default_factory=FlatRules, description="flat (stuck) daily consumption")
    reverse: ReverseRules = Field(default_factory=ReverseRules, description="reverse energy without PV")
    tou: TouRules = Field(default_factory=TouRules, description="TOU split shift")
    events: EventRules = Field(default_factory=EventRules, description="tamper and wiring events")
    loss: LossRules = Field(default_factory=LossRules, description="line-loss diagnosis")
    weights: Weights = Field(default_factory=Weights, description="points at full strength")
    supervised: SupervisedRules = Field(default_factory=SupervisedRules, description="supervised mode")
    output: OutputRules = Field(default_factory=OutputRules, description="what is written")
    theft_cases: TheftCaseRules = Field(default_factory=TheftCaseRules, description="theft cases (窃电案件)")
    observer: ObserverRules = Field(
        default_factory=ObserverRules, description="the area master as observer of shape thefts (false-data injection)"
    )

    @property
    def lookback_days(self) -> int:
        """Days of meter_daily before the detection date (inclusive) any indicator reads."""
        return max(self.window.history_days, self.events.lookback_days + self.events.before_days)


# -- inputs ----------------------------------------------------------------------------


def _require(frame: pl.LazyFrame, columns: Mapping[str, pl.DataType], table: str) -> pl.LazyFrame:
    present = frame.collect_schema().names()
    missing = [c for c in columns if c not in present]
    if missing:
        raise MissingColumnsError(table, missing, present, "anomaly ranking input")
    return frame.select(pl.col(c).cast(t) for c, t in columns.items())


def _r(x: pl.Expr) -> pl.Expr:
    return x.round(DECIMALS)


def _blank_null(c: str) -> pl.Expr:
    return pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c)


#: the meter_daily columns :func:`peer_medians` reads
PEER_COLUMNS: tuple[str, ...] = ("date", "area_id", "role", "customer_class", "kwh", "quality")

#: what a peer median is keyed by (:func:`peer_medians`)
PEER_KEYS: list[str] = ["date", "area_id", "customer_class"]


def _has_value() -> pl.Expr:
    return (pl.col("quality") != "missing") & pl.col("kwh").is_not_null()


def _peer_expr(area_peer: pl.Expr, area_n: pl.Expr, class_peer: pl.Expr, cfg: AnomalyConfig) -> pl.Expr:
    """The peer median of a customer-day: its area's (same class) when the area has
    ``peers.min_peers`` values that day, else its class's over the whole lake; rounded."""
    peer = (
        pl.when(pl.col("area_id").is_not_null() & (area_n >= cfg.peers.min_peers)).then(area_peer).otherwise(class_peer)
    )
    return _r(peer).alias("peer_kwh")


def peer_medians(meter_daily: pl.DataFrame | pl.LazyFrame, cfg: AnomalyConfig) -> pl.DataFrame:
    """The peer median (``peer_kwh``) of every (date, area_id, customer_class) of ``meter_daily``'s
    customer days: what :func:`prepare_days` computes in line, as a table, so that the days can be
    prepared a range of meters at a time (``prepare_days(..., peers=...)``) with the medians of
    every meter. A peer group lies within a date: a caller may compute the table a date at a time.
    """
    lf = meter_daily.lazy()
    present = lf.collect_schema().names()
    missing = [c for c in PEER_COLUMNS if c not in present]
    if missing:
        raise MissingColumnsError("meter_daily", missing, present, "anomaly ranking input")
    v = (
        lf.filter(pl.col("role") == "customer")
        .select(
            pl.col("date").cast(pl.Date),
            _blank_null("area_id").cast(pl.String),
            pl.col("customer_class").cast(pl.String),
            pl.when(_has_value()).then(pl.col("kwh").cast(pl.Float64)).alias("v"),
        )
        .collect()
    )
    areas = v.group_by(PEER_KEYS).agg(pl.col("v").median().alias("_area"), pl.col("v").count().alias("_n"))
    classes = v.group_by("date", "customer_class").agg(pl.col("v").median().alias("_class"))
    return (
        areas.join(classes, on=["date", "customer_class"], how="left", nulls_equal=True)
        .select(*PEER_KEYS, _peer_expr(pl.col("_area"), pl.col("_n"), pl.col("_class"), cfg))
        .sort(PEER_KEYS, nulls_last=True)
    )


def prepare_days(
    meter_daily: pl.DataFrame | pl.LazyFrame, cfg: AnomalyConfig, peers: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Customer-meter days with the series the indicators read.

    Columns: date, meter_id, customer_id, area_id, feeder_id, customer_class,
    ``v`` (kWh when the day has a value: quality not ``missing``), ``rev`` (reverse
    kWh likewise), ``actual``, ``peer_kwh`` (median of the peers' values that day),
    ``ratio`` (v / peer_kwh) and ``sh_<register>`` (the register's share of the day's
    TOU kWh when they reach ``tou.min_day_kwh``). Sorted by meter_id, date.

    ``peers``: :func:`peer_medians` of the whole lake's days, when ``meter_daily`` holds only
    some of the meters (a range of them): their peer medians are then looked up there, the
    same figures as :func:`prepare_days` of every meter gives them. Without it the medians
    are those of the meters given.
    """
    lf = _require(meter_daily.lazy(), DAY_COLUMNS, "meter_daily")
    lf = lf.filter(pl.col("role") == "customer").with_columns(
        _blank_null("area_id"), _blank_null("customer_id"), _blank_null("feeder_id")
    )
    has = _has_value()
    if (lf.filter(has & (pl.col("kwh") < 0)).select(pl.len()).collect().item()) > 0:
        raise AnomalyInputError(
            "meter_daily: expected kwh >= 0 on days with a value (rollovers and registers going "
            "down are resolved upstream); found negative kWh"
        )
    tou = pl.sum_horizontal(*(pl.col(f"kwh_{r}") for r in TOU_REGISTERS))
    lf = lf.with_columns(
        pl.when(has).then(pl.col("kwh")).alias("v"),
        pl.when(pl.col("quality") != "missing").then(pl.col("reverse_kwh")).alias("rev"),
        (pl.col("quality") == "actual").alias("actual"),
        tou.alias("_tou"),
    )
    if peers is None:
        area_peer = pl.col("v").median().over(PEER_KEYS)
        area_n = pl.col("v").count().over(PEER_KEYS)
        class_peer = pl.col("v").median().over("date", "customer_class")
        lf = lf.with_columns(_peer_expr(area_peer, area_n, class_peer, cfg))
    else:
        lf = lf.join(
            peers.lazy().select(*PEER_KEYS, "peer_kwh"),
            on=PEER_KEYS,
            how="left",
            nulls_equal=True,
            maintain_order="left",
        )
    lf = lf.with_columns(
        pl.when(pl.col("peer_kwh") >= cfg.peers.min_peer_kwh).then(_r(pl.col("v") / pl.col("peer_kwh"))).alias("ratio"),
        *(
            pl.when(pl.col("v").is_not_null() & (pl.col("_tou") >= cfg.tou.min_day_kwh))
            .then(_r(pl.col(f"kwh_{r}").fill_null(0.0) / pl.col("_tou")))
            .alias(f"sh_{r}")
            for r in TOU_REGISTERS
        ),
    )
    return sort_distinct(lf.select(PREPARED_COLUMNS).collect(), ["meter_id", "date"])


#: the columns of a part of the reverse history (:func:`reverse_parts`)
REVERSE_PARTS = pl.Schema(
    {"meter_id": pl.String(), "first_seen": pl.Date(), "first_reverse": pl.Date(), "pv_kw": pl.Float64()}
)


def reverse_parts(meter_daily: pl.DataFrame | pl.LazyFrame, cfg: AnomalyConfig) -> pl.LazyFrame:
    """The reverse history of some days, before its verdict: per customer meter, its first
    day with a value (``first_seen``), the first day its reverse kWh exceeds
    ``reverse.moved_kwh`` (``first_reverse``) and the archive's ``pv_capacity_kw`` on its
    latest day that states it (``pv_kw``). Each is a first or a last over the days, so
    the parts of consecutive spans of days combine into the whole's
    (:func:`combine_reverse_parts`): a daily run adds its own days to those kept."""
    lf = meter_daily.lazy()
    present = lf.collect_schema().names()
    need = ("date", "meter_id", "role", "reverse_kwh", "kwh", "quality")
    missing = [c for c in need if c not in present]
    if missing:
        raise MissingColumnsError("meter_daily", missing, present, "anomaly ranking input")
    has = _has_value()
    moved = has & (pl.col("reverse_kwh") > cfg.reverse.moved_kwh)
    declared = pl.col("pv_capacity_kw") if "pv_capacity_kw" in present else pl.lit(None, pl.Float64)
    return (
        lf.filter(pl.col("role") == "customer")
        .with_columns(_pv_kw=declared)
        .group_by("meter_id")
        .agg(
            pl.col("date").filter(has).min().alias("first_seen"),
            pl.col("date").filter(moved).min().alias("first_reverse"),
            pl.col("_pv_kw").sort_by("date").drop_nulls().last().alias("pv_kw"),
        )
        .cast(REVERSE_PARTS)
    )


def combine_reverse_parts(earlier: pl.LazyFrame, later: pl.LazyFrame) -> pl.LazyFrame:
    """The parts of two spans of days, ``earlier`` wholly before ``later``, as the part of
    both: the earlier first days, the later stated PV capacity. One row per meter on each
    side, so a join (a fifth of the CPU of grouping the two sides' rows again)."""
    both = earlier.select(REVERSE_PARTS.names()).join(
        later.select(REVERSE_PARTS.names()), on="meter_id", how="full", coalesce=True, suffix="_later"
    )
    return both.select(
        "meter_id",
        pl.min_horizontal("first_seen", "first_seen_later").alias("first_seen"),
        pl.min_horizontal("first_reverse", "first_reverse_later").alias("first_reverse"),
        pl.coalesce("pv_kw_later", "pv_kw").alias("pv_kw"),
    )


def reverse_verdict(parts: pl.LazyFrame, cfg: AnomalyConfig, streaming: bool = False) -> pl.DataFrame:
    """:func:`reverse_history` from the parts of the whole history (:func:`reverse_parts`)."""
    verdict = (
        parts.with_columns(
            pl.when(pl.col("pv_kw").is_not_null())
            .then(pl.col("first_reverse").is_not_null() & (pl.col("pv_kw") <= 0))
            .otherwise(
                pl.col("first_reverse").is_not_null()
                & ((pl.col("first_reverse") - pl.col("first_seen")).dt.total_days() >= cfg.reverse.quiet_days)
            )
            .alias("no_pv")
        )
        .drop("pv_kw")
        .collect(engine="streaming" if streaming else "auto")
    )
    return sort_distinct(verdict, ["meter_id"])


def reverse_history(
    meter_daily: pl.DataFrame | pl.LazyFrame, cfg: AnomalyConfig, streaming: bool = False
) -> pl.DataFrame:
    """Per customer meter: its first day in the lake and the first day its reverse moved.

    Read over all the history given (the whole lake up to the last detection date):
    ``first_seen`` (first day with a value), ``first_reverse`` (first day whose
    reverse kWh exceeds ``reverse.moved_kwh``; null if never) and ``no_pv``: the
    archive's ``pv_capacity_kw`` is 0 on the meter's latest day that states it, or,
    where the archive never states it, the register stood still for
    ``reverse.quiet_days`` or more after ``first_seen``. ``streaming``: run the query on
    polars' streaming engine (the same rows; the history is not held whole at once).
    The stage keeps the parts of settled days (:func:`reverse_parts`) instead of reading
    the whole history every day.
    """
    return reverse_verdict(reverse_parts(meter_daily, cfg), cfg, streaming)


# -- indicators --------------------------------------------------------------------------


def _welch(m1: pl.Expr, m2: pl.Expr, v1: pl.Expr, v2: pl.Expr, k1: pl.Expr, k2: pl.Expr) -> pl.Expr:
    """Welch's t of m1 - m2; the standard error is floored at 1% of |m1| (constant segments)."""
    se = (v1.clip(0.0) / k1 + v2.clip(0.0) / k2).sqrt()
    floor = 0.01 * m1.abs() + 1e-9
    return (m1 - m2) / pl.max_horizontal(se, floor)


def _splittable(by: Sequence[str], w: WindowRules) -> pl.Expr:
    """Rows of the series (grouped by ``by``) long enough to hold a split: at least
    ``min_before_days + min_after_days`` values. Shorter series (a young lake, a new meter)
    can have no split, so they are dropped before the running sums rather than after."""
    return pl.len().over(list(by)) >= w.min_before_days + w.min_after_days


def change_point(window: pl.LazyFrame, col: str, cfg: AnomalyConfig, by: Sequence[str] = ("meter_id",)) -> pl.LazyFrame:
    """Per meter (per group of ``by``), the split of ``col``'s series with the largest Welch t of a fall.

    The days with a value are split into before (first ``k``) and after (the rest, up
    to the detection date), each at least ``min_before_days`` / ``min_after_days``
    long; returns meter_id, ``cp_date`` (first day after the split), ``before``,
    ``after`` (means), ``t`` and ``fall`` = 1 - after/before. Vectorised with
    cumulative sums: one pass over the window.
    """
    by = list(by)
    x = pl.col("x")
    w = cfg.window
    lf = (
        window.select(*by, "date", pl.col(col).alias("x"))
        .filter(x.is_not_null())
        .filter(_splittable(by, w))
        .sort(*by, "date")
        .with_columns(
            pl.int_range(1, pl.len() + 1).over(by).alias("k"),
            pl.len().over(by).alias("n"),
            x.cum_sum().over(by).alias("s"),
            (x * x).cum_sum().over(by).alias("q"),
            x.sum().over(by).alias("S"),
            (x * x).sum().over(by).alias("Q"),
            pl.col("date").shift(-1).over(by).alias("cp_date"),
        )
        .filter((pl.col("k") >= w.min_before_days) & (pl.col("n") - pl.col("k") >= w.min_after_days))
    )
    k1, k2 = pl.col("k"), pl.col("n") - pl.col("k")
    m1 = pl.col("s") / k1
    m2 = (pl.col("S") - pl.col("s")) / k2
    v1 = pl.col("q") / k1 - m1 * m1
    v2 = (pl.col("Q") - pl.col("q")) / k2 - m2 * m2
    lf = lf.with_columns(
        _r(m1).alias("before"),
        _r(m2).alias("after"),
        _r(_welch(m1, m2, v1, v2, k1, k2)).alias("t"),
        k1.alias("days_before"),
        k2.alias("days_after"),
    )
    return (
        lf.group_by(by)
        .agg(
            pl.col("cp_date", "before", "after", "t", "days_before", "days_after")
            .sort_by(["t", "date"], descending=[True, False])
            .first()
        )
        .with_columns(pl.when(pl.col("before") > 0).then(_r(1.0 - pl.col("after") / pl.col("before"))).alias("fall"))
    )


def _drop_indicator(window: pl.LazyFrame, key: str, col: str, floor: float, cfg: AnomalyConfig) -> pl.LazyFrame:
    d = cfg.drop
    cp = change_point(window, col, cfg, KEYS)
    ok = pl.col("before") >= floor
    strength = pl.when(ok).then(d.fall.expr(pl.col("fall")) * d.t.expr(pl.col("t"))).otherwise(0.0)
    return cp.select(
        *KEYS,
        _r(strength).alias(f"s_{key}"),
        pl.col("cp_date").alias(f"d_{key}"),
        pl.struct(
            since=pl.col("cp_date"),
            before=pl.col("before"),
            after=pl.col("after"),
            fall=pl.col("fall"),
            t=pl.col("t"),
            days_before=pl.col("days_before"),
            days_after=pl.col("days_after"),
        )
        .struct.json_encode()
        .alias(f"ev_{key}"),
        pl.when(ok).then(pl.col("fall")).otherwise(0.0).alias(f"f_{key}_fall"),
        pl.when(ok).then(pl.col("t")).otherwise(0.0).alias(f"f_{key}_t"),
        pl.col("before").alias(f"_{key}_before"),
        pl.col("after").alias(f"_{key}_after"),
    )


def _starts_group(step: int = 1) -> pl.Expr:
    """On a frame sorted by :data:`KEYS`: True where the row ``step`` rows away (1: the
    one before, -1: the one after) belongs to another group, or there is none."""
    other = pl.lit(False)
    for k in KEYS:
        other = other | (pl.col(k).shift(step) != pl.col(k))
    return other.fill_null(True)


def _leading(flag: pl.Expr) -> pl.Expr:
    """On a frame sorted by :data:`KEYS`: True on the rows of a group's leading run of
    ``flag`` (every row from the group's first one up to this one has it). The same as
    ``(~flag).cum_sum().over(KEYS) == 0``, counted over the whole frame in integers (no
    window per group: cheaper on many short series)."""
    breaks = (~flag).cast(pl.Int64)
    count = breaks.cum_sum()
    before = pl.when(_starts_group()).then(count - breaks).forward_fill()
    return count == before


def _zero_indicator(window: pl.LazyFrame, cfg: AnomalyConfig) -> pl.LazyFrame:
    z = cfg.zero
    is_zero = pl.col("v") <= z.zero_kwh
    lf = (
        window.select(*KEYS, "date", "v")
        .filter(pl.col("v").is_not_null())
        .sort([*KEYS, "date"], descending=[False, False, True])
        .with_columns(_leading(is_zero).alias("trail"))
        .group_by(KEYS)
        .agg(
            pl.col("trail").sum().alias("run_days"),
            pl.col("date").filter(pl.col("trail")).min().alias("run_start"),
            pl.col("v").filter(~pl.col("trail")).mean().alias("before"),
        )
    )
    live = pl.col("before").fill_null(0.0) >= z.live_kwh
    strength = pl.when(live).then(z.days.expr(pl.col("run_days").cast(pl.Float64))).otherwise(0.0)
    return lf.select(
        *KEYS,
        _r(strength).alias("s_zero"),
        pl.col("run_start").alias("d_zero"),
        pl.struct(since=pl.col("run_start"), days=pl.col("run_days"), before=_r(pl.col("before")))
        .struct.json_encode()
        .alias("ev_zero"),
        pl.when(live).then(pl.col("run_days")).otherwise(0).cast(pl.Float64).alias("f_zero_days"),
        _r(pl.col("before")).alias("_zero_before"),
        pl.col("run_days").alias("_zero_days"),
    )


def _flat_indicator(window: pl.LazyFrame, cfg: AnomalyConfig, ordered: bool = False) -> pl.LazyFrame:
    """The run of identical actual days up to the detection date. ``ordered``: ``window`` is
    sorted by :data:`KEYS` and date already: reversed, each group's days come latest first
    (the groups in reverse order), as the sort gives them. Nothing here is summed: the order
    of the groups cannot move a figure (the zero indicator's mean, summed, is left sorted)."""
    f = cfg.flat
    zero = cfg.zero.zero_kwh
    rows = window.select(*KEYS, "date", "v", "actual").filter(pl.col("v").is_not_null() & pl.col("actual"))
    lf = (
        (rows.reverse() if ordered else rows.sort([*KEYS, "date"], descending=[False, False, True]))
        .with_columns(
            pl.when(~_starts_group(-1)).then(pl.col("v").shift(-1)).alias("prev"),
            pl.when(~_starts_group(-1)).then(pl.col("date").shift(-1)).alias("prev_date"),
        )
        .with_columns(
            (((pl.col("v") - pl.col("prev")).abs() <= f.tolerance_kwh) & (pl.col("v") > zero))
            .fill_null(False)
            .alias("same")
        )
        .with_columns(_leading(pl.col("same")).alias("trail"))
        .group_by(KEYS)
        .agg(
            pl.col("trail").sum().alias("pairs"),
            pl.col("v").first().alias("value"),
            pl.col("prev_date").filter(pl.col("trail")).min().alias("since"),
        )
    )
    days = pl.when(pl.col("pairs") > 0).then(pl.col("pairs") + 1).otherwise(0)
    return lf.select(
        *KEYS,
        _r(f.days.expr(days.cast(pl.Float64))).alias("s_flat"),
        pl.col("since").alias("d_flat"),
        pl.struct(value=_r(pl.col("value")), days=days).struct.json_encode().alias("ev_flat"),
        _r(pl.col("value")).alias("_flat_value"),
        days.alias("_flat_days"),
    )


def _reverse_indicator(window: pl.LazyFrame, history: pl.DataFrame, cfg: AnomalyConfig) -> pl.LazyFrame:
    r = cfg.reverse
    lf = (
        window.select(*KEYS, "date", "v", "rev")
        .join(history.lazy().select("meter_id", "first_reverse", "no_pv"), on="meter_id", how="inner")
        .filter((pl.col("date") >= pl.col("first_reverse")) & pl.col("v").is_not_null())
        .group_by(KEYS)
        .agg(
            pl.col("first_reverse").first(),
            pl.col("no_pv").first(),
            pl.col("date").min().alias("since"),
            pl.col("rev").fill_null(0.0).sum().alias("rev_kwh"),
            pl.col("v").sum().alias("fwd_kwh"),
            (pl.col("rev") > r.moved_kwh).sum().alias("rev_days"),
            ((pl.col("rev") > r.moved_kwh) & (pl.col("v") <= cfg.zero.zero_kwh)).sum().alias("rev_only_days"),
        )
    )
    total = pl.col("rev_kwh") + pl.col("fwd_kwh")
    share = pl.when(total > 0).then(_r(pl.col("rev_kwh") / total)).otherwise(0.0)
    fires = pl.col("rev_days") >= r.min_days
    only = pl.when(pl.col("rev_days") > 0).then(_r(pl.col("rev_only_days") / pl.col("rev_days"))).otherwise(0.0)
    ramp = pl.when(pl.col("no_pv")).then(r.share.expr(share)).otherwise(r.pv_reverse_only.expr(only))
    return lf.select(
        *KEYS,
        _r(pl.when(fires).then(ramp).otherwise(0.0)).alias("s_reverse"),
        pl.col("since").alias("d_reverse"),
        pl.struct(
            since=pl.col("since"),
            first_reverse=pl.col("first_reverse"),
            pv_inferred=~pl.col("no_pv"),
            reverse_kwh=_r(pl.col("rev_kwh")),
            forward_kwh=_r(pl.col("fwd_kwh")),
            share=share,
            days=pl.col("rev_days"),
            days_no_forward=pl.col("rev_only_days"),
        )
        .struct.json_encode()
        .alias("ev_reverse"),
        pl.when(fires).then(share).otherwise(0.0).alias("f_reverse_share"),
        share.alias("_reverse_share"),
        pl.col("no_pv").alias("_reverse_no_pv"),
        pl.col("rev_days").alias("_reverse_days"),
        pl.col("rev_only_days").alias("_reverse_only_days"),
    )


def _tou_indicator(window: pl.LazyFrame, cfg: AnomalyConfig) -> pl.LazyFrame:
    w, t = cfg.window, cfg.tou
    shares = [f"sh_{r}" for r in TOU_REGISTERS]
    lf = (
        window.select(*KEYS, "date", *shares)
        .filter(pl.col(shares[0]).is_not_null())
        .filter(_splittable(KEYS, w))
        .sort(*KEYS, "date")
        .with_columns(
            pl.int_range(1, pl.len() + 1).over(KEYS).alias("k"),
            pl.len().over(KEYS).alias("n"),
            pl.col("date").shift(-1).over(KEYS).alias("cp_date"),
            *(pl.col(c).cum_sum().over(KEYS).alias(f"s_{c}") for c in shares),
            *((pl.col(c) ** 2).cum_sum().over(KEYS).alias(f"q_{c}") for c in shares),
            *(pl.col(c).sum().over(KEYS).alias(f"S_{c}") for c in shares),
            *((pl.col(c) ** 2).sum().over(KEYS).alias(f"Q_{c}") for c in shares),
        )
        .filter((pl.col("k") >= w.min_before_days) & (pl.col("n") - pl.col("k") >= w.min_after_days))
    )
    k1, k2 = pl.col("k"), pl.col("n") - pl.col("k")
    diffs, ts = [], []
    for c in shares:
        m1 = pl.col(f"s_{c}") / k1
        m2 = (pl.col(f"S_{c}") - pl.col(f"s_{c}")) / k2
        v1 = pl.col(f"q_{c}") / k1 - m1 * m1
        v2 = (pl.col(f"Q_{c}") - pl.col(f"q_{c}")) / k2 - m2 * m2
        diffs.append((m1 - m2).abs())
        se = (v1.clip(0.0) / k1 + v2.clip(0.0) / k2).sqrt()
        ts.append((m1 - m2).abs() / pl.max_horizontal(se, pl.lit(0.005)))
    lf = lf.with_columns(
        _r(0.5 * pl.sum_horizontal(*diffs)).alias("shift"),
        _r(pl.max_horizontal(*ts)).alias("t"),
        k2.alias("days_after"),
    )
    best = lf.group_by(KEYS).agg(
        pl.col("cp_date", "shift", "t", "days_after").sort_by(["shift", "date"], descending=[True, False]).first()
    )
    return best.select(
        *KEYS,
        _r(t.shift.expr(pl.col("shift")) * t.t.expr(pl.col("t"))).alias("s_tou"),
        pl.col("cp_date").alias("d_tou"),
        pl.struct(since=pl.col("cp_date"), shift=pl.col("shift"), t=pl.col("t"), days_after=pl.col("days_after"))
        .struct.json_encode()
        .alias("ev_tou"),
        pl.col("shift").alias("f_tou_shift"),
        pl.col("shift").alias("_tou_shift"),
    )


def _prepare_events(events: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    lf = _require(events.lazy(), EVENT_COLUMNS, "events")
    family = pl.lit(None, pl.String)
    for key, codes in EVENT_FAMILIES.items():
        family = pl.when(pl.col("event_code").is_in(codes)).then(pl.lit(key)).otherwise(family)
    return lf.with_columns(family.alias("family"), pl.col("event_time").dt.date().alias("event_date")).filter(
        pl.col("family").is_not_null()
    )


def _event_indicators(window: pl.LazyFrame, events: pl.DataFrame, cfg: AnomalyConfig) -> pl.LazyFrame:
    """``events``: :func:`_prepare_events` rows, each with the detection date (``KEYS[0]``)
    whose look-back holds it."""
    e = cfg.events
    ev = (
        events.lazy()
        .group_by(KEYS[0], "meter_id", "family", "event_date")
        .agg(pl.col("event_code").sort().first().alias("code"), pl.len().alias("n"))
    )
    vals = window.select(*KEYS, "date", "v").filter(pl.col("v").is_not_null())
    before_mask = (pl.col("date") < pl.col("event_date")) & (
        pl.col("date") >= pl.col("event_date") - pl.duration(days=e.before_days)
    )
    after_mask = pl.col("date") > pl.col("event_date")
    per_event = (
        ev.join(vals, on=KEYS, how="left")
        .group_by(*KEYS, "family", "event_date")
        .agg(
            pl.col("code").first(),
            pl.col("n").first(),
            pl.col("v").filter(before_mask).mean().alias("before"),
            pl.col("v").filter(after_mask).mean().alias("after"),
            pl.col("v").filter(after_mask).count().alias("days_after"),
        )
    )
    judged = (pl.col("before") >= cfg.drop.min_baseline_kwh) & (pl.col("days_after") >= e.min_after_days)
    fall = pl.when(judged).then(_r(1.0 - pl.col("after") / pl.col("before")))
    per_event = per_event.with_columns(
        _r(pl.col("before")).alias("before"),
        _r(pl.col("after")).alias("after"),
        fall.alias("fall"),
    ).with_columns(_r(e.alone + (1.0 - e.alone) * e.fall.expr(pl.col("fall").fill_null(-1.0))).alias("strength"))
    best = per_event.group_by(*KEYS, "family").agg(
        pl.col("event_date", "code", "before", "after", "fall", "strength")
        .sort_by(["strength", "event_date"], descending=[True, False])
        .first(),
        pl.col("n").sum().alias("events"),
    )
    best = best.with_columns(
        pl.struct(
            code=pl.col("code"),
            event_date=pl.col("event_date"),
            events=pl.col("events"),
            before=pl.col("before"),
            after=pl.col("after"),
            fall=pl.col("fall"),
        )
        .struct.json_encode()
        .alias("ev")
    )
    out = best.select(KEYS).unique()
    for key in EVENT_FAMILIES:
        fam = best.filter(pl.col("family") == key).select(
            *KEYS,
            pl.col("strength").alias(f"s_{key}"),
            pl.col("event_date").alias(f"d_{key}"),
            pl.col("ev").alias(f"ev_{key}"),
            pl.col("code").alias(f"_{key}_code"),
            pl.col("fall").alias(f"_{key}_fall"),
            pl.col("events").alias(f"_{key}_events"),
        )
        out = out.join(fam, on=KEYS, how="left")
    return out.with_columns(
        pl.sum_horizontal(*(pl.col(f"_{k}_events").fill_null(0) for k in EVENT_FAMILIES))
        .cast(pl.Float64)
        .alias("f_events")
    )


def _events_in_lookback(
    events: pl.DataFrame | pl.LazyFrame, dates: Sequence[dt.date], cfg: AnomalyConfig
) -> pl.DataFrame:
    """The tamper and wiring events in each detection date's look-back, keyed by that date."""
    ev = _prepare_events(events).collect()
    back = dt.timedelta(days=cfg.events.lookback_days - 1)
    return pl.concat(
        [ev.filter(pl.col("event_date").is_between(d - back, d)).with_columns(pl.lit(d).alias(KEYS[0])) for d in dates]
    )


def _prepare_diagnosis(diagnosis: pl.DataFrame | pl.LazyFrame, dates: Sequence[dt.date]) -> pl.LazyFrame:
    d = diagnosis.lazy()
    present = d.collect_schema().names()
    # rule and evidence are optional: without them every finding reads as the daily diagnosis's
    d = d.with_columns(pl.lit(None, pl.String).alias(c) for c in ("rule", "evidence") if c not in present)
    return (
        _require(d, DIAGNOSIS_COLUMNS, "loss_diagnosis")
        .filter(pl.col("date").is_in(list(dates)) & pl.col("kind").is_in(list(LOSS_KINDS.values())))
        .with_columns(pl.col("date").alias(KEYS[0]))
    )


#: the balance evidence's four robust t (transforms/balance.py): steady, night, some days, step
BALANCE_STATISTICS: tuple[str, ...] = ("t_stat", "night_t_stat", "days_t_stat", "step_t_stat")
_BALANCE_EVIDENCE = pl.Struct(
    {**dict.fromkeys(BALANCE_STATISTICS, pl.Float64()), "runs_against_the_loss": pl.Boolean()}
)


def _balance_strength(rules: LossRules) -> pl.Expr:
    """The balance finding's strength: its score, or that score times Σ t₊ / max t₊ of its four statistics.

    The finding's score is z / (3 x min_t) with z the largest of the four (a weak finding's a
    share of that): with ``sum`` it reads their positive parts summed instead, so evidence in
    two statistics (a share stolen at night shows in the night t and in the step) counts
    twice. A finding that runs against the loss keeps its score.
    """
    score = pl.col("score").clip(0.0, 1.0)
    if rules.balance_statistics == "largest":
        return score
    # the evidence's fields, decoded once into columns by _balance_indicator
    pos = [pl.col(f"_ev_{k}").fill_nan(0.0).fill_null(0.0).clip(lower_bound=0.0) for k in BALANCE_STATISTICS]
    largest, total = pl.max_horizontal(pos), pl.sum_horizontal(pos)
    against = pl.col("_ev_runs_against_the_loss").fill_null(False)
    return pl.when((largest > 0) & ~against).then(score * total / largest).otherwise(score).clip(0.0, 1.0)


def _balance_indicator(diagnosis: pl.LazyFrame, rules: LossRules) -> pl.LazyFrame:
    """``diagnosis``: :func:`_prepare_diagnosis` rows."""
    # the area's interval energy balance (loss.diagnosis.theft_candidate.balance): its
    # score is the strength (read with its four statistics summed, see _balance_strength)
    d = diagnosis.filter((pl.col("kind") == "theft_candidate") & (pl.col("rule") == BALANCE_RULE))
    ev = pl.col("evidence").fill_null("{}")
    best = (
        d.sort(*KEYS, "score", "area_id", descending=[False, False, True, False])
        .group_by(KEYS, maintain_order=True)
        .first()
    )
    if rules.balance_statistics == "sum":
        fields = pl.col("evidence").str.json_decode(_BALANCE_EVIDENCE).struct.unnest().name.prefix("_ev_")
        best = best.with_columns(fields)
    return best.select(
        *KEYS,
        _r(_balance_strength(rules)).alias("s_balance"),
        pl.col(KEYS[0]).alias("d_balance"),
        ev.alias("ev_balance"),
        ev.str.json_path_match("$.unrecorded_kwh_per_day").cast(pl.Float64).alias("_balance_kwh"),
        ev.str.json_path_match("$.unrecorded_share").cast(pl.Float64).alias("_balance_share"),
        pl.col("rank").alias("_balance_rank"),
    )


def _loss_indicators(diagnosis: pl.LazyFrame, cfg: AnomalyConfig) -> pl.LazyFrame:
    """``diagnosis``: :func:`_prepare_diagnosis` rows."""
    d = diagnosis.filter((pl.col("kind") != "theft_candidate") | (pl.col("rule").fill_null("") != BALANCE_RULE))
    best = d.group_by(*KEYS, "kind").agg(
        pl.col("score", "rank", "area_id", "area_loss_rate", "other_area_id")
        .sort_by(["score", "area_id"], descending=[True, False], nulls_last=True)
        .first()
    )
    out = d.select(KEYS).unique()
    for key, kind in LOSS_KINDS.items():
        k = best.filter(pl.col("kind") == kind).select(
            *KEYS,
            _r(cfg.loss.score.expr(pl.col("score").fill_null(0.0))).alias(f"s_{key}"),
            pl.col(KEYS[0]).alias(f"d_{key}"),
            pl.struct(
                kind=pl.col("kind"),
                score=_r(pl.col("score")),
                rank=pl.col("rank"),
                area_id=pl.col("area_id"),
                area_loss_rate=_r(pl.col("area_loss_rate")),
                other_area_id=pl.col("other_area_id"),
            )
            .struct.json_encode()
            .alias(f"ev_{key}"),
            _r(pl.col("score")).alias(f"_{key}_score"),
            _r(pl.col("area_loss_rate")).alias(f"_{key}_rate"),
            pl.col("other_area_id").alias(f"_{key}_other"),
        )
        out = out.join(k, on=KEYS, how="left")
    return out


def without_outage_days(days: pl.DataFrame, outage_days: pl.DataFrame, min_outage_min: float) -> pl.DataFrame:
    """``days`` less the meter-days with at least ``min_outage_min`` minutes without supply.

    ``outage_days``: ``meter_id, date, outage_min`` (the outages stage's outage_meter_days).
    A customer off supply is not a zero-consumption or sudden-drop suspect on those days:
    the days count as days without a value (the practice of 用电信息采集 anti-theft screens,
    which check the power-off events before flagging a zero or a drop).
    """
    off = outage_days.filter(pl.col("outage_min") >= min_outage_min).select("meter_id", "date")
    return days.join(off, on=["meter_id", "date"], how="anti", maintain_order="left")


def indicators(
    days: pl.DataFrame,
    events: pl.DataFrame | pl.LazyFrame,
    diagnosis: pl.DataFrame | pl.LazyFrame,
    history: pl.DataFrame,
    day: dt.date,
    cfg: AnomalyConfig,
    observed: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Every indicator at detection date ``day``: one row per meter, sorted by meter_id.

    ``days`` comes from :func:`prepare_days` and must cover the look-back
    (``cfg.lookback_days`` days up to ``day``); ``history`` from
    :func:`reverse_history`. ``events`` is the clean events table, ``diagnosis`` the
    loss_diagnosis mart (only its rows dated ``day`` are used).

    Meters: the customer meters with a day in the change-point window, plus any meter
    the line-loss diagnosis names on ``day``. Columns: identity (meter_id,
    customer_id, area_id, feeder_id, customer_class), and per indicator key ``s_<key>``
    (strength in [0, 1], 0 when it does not fire), ``d_<key>`` (the date it points
    at), ``ev_<key>`` (JSON evidence) and private ``_<key>_*`` figures for the
    reason text; plus the raw features :data:`RAW_FEATURES`. ``observed``: the
    ``observer`` indicator of ``day`` (:func:`meterlake.transforms.observer.indicator`),
    or None where no curves were summarised (it then gives no points).
    """
    return indicators_at(days, events, diagnosis, history, [day], cfg, {day: observed})[day]


def _meter_numbers(meter_id: pl.Series) -> pl.Series:
    """A number per meter id (UInt32, the same for every row of a meter): counted along
    ``meter_id`` when it is sorted (``prepare_days`` sorts it), else its dense rank."""
    if meter_id.is_sorted():
        return (meter_id != meter_id.shift(1)).fill_null(True).cast(pl.UInt32).cum_sum()
    return meter_id.rank("dense").cast(pl.UInt32)


def _sorted_by(frame: pl.DataFrame, columns: Sequence[str]) -> bool:
    """Whether ``frame``'s rows are in increasing order of ``columns`` (integer or date columns,
    compared in turn; no nulls, no two rows equal), checked in one pass: each row against the
    one before."""
    if frame.height < 2:
        return True
    later = pl.lit(False)
    for c in reversed(columns):
        step = pl.col(c).cast(pl.Int64).diff()  # dates and meter numbers as integers
        later = (step > 0) | ((step == 0) & later)
    nulls = pl.any_horizontal(pl.col(c).is_null() for c in columns).any()
    return bool(frame.select(later.slice(1).all() & ~nulls).item())


def _numbered(span: pl.DataFrame, more: pl.Series) -> pl.DataFrame:
    """meter_id -> ``_m``: the numbers of ``span`` (its column ``_m``), and new ones after
    them for the meter ids of ``more`` that ``span`` does not hold."""
    starts = (pl.col("_m") != pl.col("_m").shift(1)).fill_null(True)  # one row of each run of a number
    known = span.filter(starts).select("meter_id", "_m").unique("_m", maintain_order=True)
    top = int(known["_m"].max() or 0)  # type: ignore[arg-type]
    extra = (
        more.unique()
        .to_frame("meter_id")
        .join(known, on="meter_id", how="anti")
        .sort("meter_id")
        .with_row_index("_m", offset=top + 1)
        .select("meter_id", pl.col("_m").cast(pl.UInt32))
    )
    return pl.concat([known, extra])


def _renumbered(frame: pl.DataFrame, numbers: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its meter ids replaced by their numbers (rows of other meters dropped)."""
    return frame.join(numbers, on="meter_id").with_columns(pl.col("_m").alias("meter_id")).drop("_m")


def indicators_at(
    days: pl.DataFrame,
    events: pl.DataFrame | pl.LazyFrame,
    diagnosis: pl.DataFrame | pl.LazyFrame,
    history: pl.DataFrame,
    dates: Sequence[dt.date],
    cfg: AnomalyConfig,
    observed: Mapping[dt.date, pl.DataFrame | None] | None = None,
) -> dict[dt.date, pl.DataFrame]:
    """:func:`indicators` at each of ``dates``, computed together: date -> its frame.

    Each date's look-back is a slice of ``days`` keyed by that date, and every indicator
    groups by (detection date, meter) instead of meter: the same figures in one pass,
    without the fixed cost of planning and running each indicator once per date. The
    rows held are the sum of the dates' look-backs: :func:`date_batches` bounds them.
    ``observed``: date -> the observer indicator of that date (or None).
    """
    dates = sorted(set(dates))
    look = cfg.lookback_days - 1
    back = max(min(look, cfg.window.history_days - 1), 0)  # the change-point window within the look-back
    first = dates[0] - dt.timedelta(days=look)
    span = days.filter(pl.col("date").is_between(first, dates[-1]))
    # the look-backs carry a meter's number (``_m``) and its days' figures, not its id and
    # names: the window indicators group and sort by integers; a meter's id and names are
    # looked up once per (date, meter) at the end
    span = span.with_columns(_meter_numbers(span["meter_id"]).alias("_m"))
    events_in = _events_in_lookback(events, dates, cfg)
    numbers = _numbered(span, events_in["meter_id"])
    figures = ["date", "v", "rev", "actual", "ratio", *(f"sh_{r}" for r in TOU_REGISTERS)]
    coded = span.lazy().select(pl.col("_m").alias("meter_id"), *figures).with_row_index("_row")
    # each date's look-back, keyed by the date: only the change-point window is materialised
    all_days = pl.concat(
        [
            coded.filter(pl.col("date").is_between(d - dt.timedelta(days=look), d)).with_columns(
                pl.lit(d).alias(KEYS[0])
            )
            for d in dates
        ]
    )
    window = all_days.filter(pl.col("date") >= pl.col(KEYS[0]) - pl.duration(days=back)).collect()
    # ``days`` sorted by meter_id and date (prepare_days's order) gives a window sorted by
    # (date, meter number, day), which the flat indicator reads as it is (checked, not assumed)
    ordered = _sorted_by(window, [*KEYS, "date"])
    # a meter's names at a date: those of its last day in the window (in an ordered window,
    # the row before the next group's first)
    last = (
        window.filter(_starts_group(-1)).select(*KEYS, "_row")
        if ordered
        else window.group_by(KEYS).agg(pl.col("_row").sort_by("date").last())
    )
    meta = pl.concat(
        [
            last.select(KEYS[0], pl.col("meter_id").alias("_m")),
            span.select("meter_id", "customer_id", "area_id", "feeder_id", "customer_class")[last["_row"]],
        ],
        how="horizontal",
    ).select(*KEYS, "customer_id", "area_id", "feeder_id", "customer_class", "_m")
    window_lf = window.lazy()
    diag = _prepare_diagnosis(diagnosis, dates)
    diag_meta = (
        diag.group_by(KEYS)
        .agg(pl.col("customer_id", "area_id").sort_by(["score", "kind"], descending=[True, False]).first())
        .with_columns(pl.lit(None, pl.String).alias("feeder_id"), pl.lit(None, pl.String).alias("customer_class"))
        .join(numbers.lazy(), on="meter_id", how="left")
    )
    ids = pl.concat([meta.lazy(), diag_meta.join(meta.lazy(), on=KEYS, how="anti")], how="vertical_relaxed")
    seen = [f.with_columns(pl.lit(d).alias(KEYS[0])) for d in dates if (f := (observed or {}).get(d)) is not None]
    numbered = [  # keyed by the meter's number (in the column meter_id)
        _event_indicators(all_days, _renumbered(events_in, numbers), cfg),
        _drop_indicator(window_lf, "drop_own", "v", cfg.drop.min_baseline_kwh, cfg),
        _drop_indicator(window_lf, "drop_peer", "ratio", cfg.drop.min_baseline_ratio, cfg),
        _zero_indicator(window_lf, cfg),
        _flat_indicator(window_lf, cfg, ordered),
        _reverse_indicator(window_lf, _renumbered(history, numbers), cfg),
        _tou_indicator(window_lf, cfg),
    ]
    named = [  # keyed by the meter's id
        _loss_indicators(diag, cfg),
        _balance_indicator(diag, cfg.loss),
        (pl.concat(seen) if seen else observer.no_rows().with_columns(pl.lit(None, pl.Date).alias(KEYS[0]))).lazy(),
    ]
    collected = pl.collect_all([ids, *numbered, *named])
    # the (unique) keys sorted first and every join keeping their order: the wide frame
    # (~100 columns, 0.2 GB on a county day) comes out sorted instead of sorted again
    out = collected[0].sort(KEYS)
    by_number = [KEYS[0], "_m"]
    for p in collected[1 : 1 + len(numbered)]:
        out = out.join(p.rename({"meter_id": "_m"}), on=by_number, how="left", maintain_order="left")
    for p in collected[1 + len(numbered) :]:
        out = out.join(p, on=KEYS, how="left", maintain_order="left")
    out = out.drop("_m").with_columns(
        *(pl.col(f"s_{k}").fill_null(0.0) for k in DATA_KEYS),
        *(pl.col(f).fill_null(0.0) for f in RAW_FEATURES),
    )
    if len(dates) == 1:  # one date's rows are the frame: no copy of them
        found = {dates[0]: out.drop(KEYS[0])} if out.height else {}
    else:
        found = {
            key[0]: part.drop(KEYS[0])
            for key, part in out.partition_by(KEYS[0], as_dict=True, maintain_order=True).items()
        }
    empty = out.clear().drop(KEYS[0])
    return {d: found.get(d, empty) for d in dates}


def with_observed(
    found: Mapping[dt.date, pl.DataFrame], observed: Mapping[dt.date, pl.DataFrame | None]
) -> dict[dt.date, pl.DataFrame]:
    """:func:`indicators_at`'s frames of each date, computed without the observer (its
    ``observed`` None), with the date's observer indicator joined in as :func:`indicators_at`
    joins it (left on the meter, its columns where they were, missing scores and raw
    features 0): the same frames, so the look-backs' indicators need not wait for the
    observer."""
    cols = [c for c in observer.no_rows().columns if c != "meter_id"]
    zero = set(RAW_FEATURES) | {f"s_{k}" for k in DATA_KEYS}
    out = {}
    for d, frame in found.items():
        seen = observed.get(d)
        if seen is None:
            out[d] = frame
            continue
        joined = frame.drop(cols).join(seen.select("meter_id", *cols), on="meter_id", how="left", maintain_order="left")
        out[d] = joined.with_columns(pl.col(c).fill_null(0.0) for c in cols if c in zero).select(frame.columns)
    return out


def date_batches(
    days: pl.DataFrame, dates: Sequence[dt.date], cfg: AnomalyConfig, max_rows: int
) -> list[list[dt.date]]:
    """``dates`` in order, cut into runs whose look-backs hold at most ``max_rows`` rows of
    ``days`` together (a date whose look-back alone holds more is a run of its own)."""
    return batches_of_counts(dict(days.group_by("date").len().iter_rows()), dates, cfg, max_rows)


def lookback_rows(per_day: Mapping[dt.date, int], day: dt.date, cfg: AnomalyConfig) -> int:
    """The rows of ``day``'s look-back, from the rows of each day (``per_day``)."""
    look = dt.timedelta(days=cfg.lookback_days - 1)
    return sum(c for d, c in per_day.items() if day - look <= d <= day)


def batches_of_counts(
    per_day: Mapping[dt.date, int], dates: Sequence[dt.date], cfg: AnomalyConfig, max_rows: int
) -> list[list[dt.date]]:
    """:func:`date_batches` from the rows of each day (date -> rows)."""
    batches: list[list[dt.date]] = []
    rows = 0
    for d in sorted(set(dates)):
        n = lookback_rows(per_day, d, cfg)
        if not batches or rows + n > max_rows:
            batches.append([])
            rows = 0
        batches[-1].append(d)
        rows += n
    return batches


def meter_ranges(meter_ids: pl.Series, parts: int) -> list[tuple[str | None, str | None]]:
    """``parts`` ranges ``[lo, hi)`` of meter ids (None: unbounded) that cover every string
    and split the distinct ``meter_ids`` into runs of about equal size, in increasing order;
    one unbounded range when ``parts`` is 1 or less."""
    ids = meter_ids.drop_nulls().unique().sort()
    parts = max(1, min(parts, ids.len()))
    if parts == 1:
        return [(None, None)]
    cuts = [ids[(i * ids.len()) // parts] for i in range(1, parts)]
    bounds: list[str | None] = [None, *cuts, None]
    return list(itertools.pairwise(bounds))


def in_range(lo: str | None, hi: str | None, column: str = "meter_id") -> pl.Expr:
    """True on the rows whose ``column`` lies in ``[lo, hi)`` (:func:`meter_ranges`)."""
    keep = pl.lit(True)
    if lo is not None:
        keep = keep & (pl.col(column) >= lo)
    if hi is not None:
        keep = keep & (pl.col(column) < hi)
    return keep


# -- score -------------------------------------------------------------------------------


def _pct(x: pl.Expr) -> pl.Expr:
    return (x * 100).round(0).cast(pl.Int64)


def _reason_texts() -> dict[str, pl.Expr]:
    """Per indicator, its finding in words (without the points)."""

    def fmt(template: str, *args: pl.Expr) -> pl.Expr:
        return pl.format(template, *(a.cast(pl.String).fill_null("?") for a in args))

    texts: dict[str, pl.Expr] = {}
    for key in EVENT_FAMILIES:
        texts[key] = (
            pl.when(pl.col(f"_{key}_fall").is_not_null())
            .then(
                fmt(
                    "{} on {} ({} in window), kWh {}% after",
                    pl.col(f"_{key}_code"),
                    pl.col(f"d_{key}"),
                    pl.col(f"_{key}_events"),
                    -_pct(pl.col(f"_{key}_fall")),
                )
            )
            .otherwise(
                fmt("{} on {} ({} in window)", pl.col(f"_{key}_code"), pl.col(f"d_{key}"), pl.col(f"_{key}_events"))
            )
        )
    texts["drop_own"] = fmt(
        "kWh -{}% since {} ({} -> {} kWh/day)",
        _pct(pl.col("f_drop_own_fall")),
        pl.col("d_drop_own"),
        pl.col("_drop_own_before").round(2),
        pl.col("_drop_own_after").round(2),
    )
    texts["drop_peer"] = fmt(
        "kWh vs peer median -{}% since {} (ratio {} -> {})",
        _pct(pl.col("f_drop_peer_fall")),
        pl.col("d_drop_peer"),
        pl.col("_drop_peer_before").round(2),
        pl.col("_drop_peer_after").round(2),
    )
    texts["zero"] = fmt(
        "0 kWh for {} days since {} (was {} kWh/day)",
        pl.col("_zero_days"),
        pl.col("d_zero"),
        pl.col("_zero_before").round(2),
    )
    texts["flat"] = fmt(
        "{} kWh every day for {} days since {}", pl.col("_flat_value"), pl.col("_flat_days"), pl.col("d_flat")
    )
    texts["reverse"] = (
        pl.when(pl.col("_reverse_no_pv"))
        .then(
            fmt(
                "reverse energy {}% of the total since {}, none before (no PV inferred)",
                _pct(pl.col("_reverse_share")),
                pl.col("d_reverse"),
            )
        )
        .otherwise(
            fmt(
                "reverse energy on {} days since {}, {} of them with no forward energy at all (PV still imports at night)",
                pl.col("_reverse_days"),
                pl.col("d_reverse"),
                pl.col("_reverse_only_days"),
            )
        )
    )
    texts["tou"] = fmt("TOU split moved by {}% since {}", _pct(pl.col("_tou_shift")), pl.col("d_tou"))
    for key, kind in LOSS_KINDS.items():
        base = fmt(
            "line-loss diagnosis {} score {} (area loss {}%)",
            pl.lit(kind),
            pl.col(f"_{key}_score").round(2),
            (pl.col(f"_{key}_rate") * 100).round(1),
        )
        texts[key] = (
            pl.when(pl.col(f"_{key}_other").is_not_null())
            .then(pl.concat_str([base, pl.lit(", tracks area "), pl.col(f"_{key}_other")]))
            .otherwise(base)
            if key == "loss_mapping"
            else base
        )
    texts["balance"] = fmt(
        "area energy balance: {} kWh/day unrecorded ({}% of its use), rank {} in its area",
        pl.col("_balance_kwh").round(2),
        _pct(pl.col("_balance_share")),
        pl.col("_balance_rank"),
    )
    texts["observer"] = observer.reason_text()
    texts["model"] = fmt("inspection model p={}", pl.col("model_p").round(2))
    return texts


def score(
    ind: pl.DataFrame,
    day: dt.date,
    cfg: AnomalyConfig,
    model_p: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Points, score, reasons and findings from :func:`indicators`: the anomalies rows.

    ``model_p`` (meter_id, p): the supervised model's probability of theft, or None.
    Points are rounded to 1e-6 and the score is their sum, so ``score == Σ *_points``
    and every score decomposes into its reasons. Only meters scoring above
    ``output.min_score`` are returned, ranked 1.. by score then meter_id.
    """
    return score_at({day: ind}, cfg, {day: model_p})[day]


def score_at(
    inds: Mapping[dt.date, pl.DataFrame],
    cfg: AnomalyConfig,
    model_p: Mapping[dt.date, pl.DataFrame | None] | None = None,
) -> dict[dt.date, pl.DataFrame]:
    """:func:`score` of each date's indicators (date -> frame), in one pass: date -> its rows.

    ``model_p``: date -> the supervised model's (meter_id, p) at that date, or None.
    """
    dates = sorted(inds)
    day = pl.col(KEYS[0])
    probs = [
        p.lazy().select(pl.lit(d).alias(KEYS[0]), "meter_id", pl.col("p").cast(pl.Float64).alias("model_p"))
        for d in dates
        if (p := (model_p or {}).get(d)) is not None
    ]
    weights = cfg.weights.model_dump()
    frame = pl.concat([inds[d].lazy().with_columns(pl.lit(d).alias(KEYS[0])) for d in dates], how="vertical_relaxed")
    if probs:
        frame = frame.join(pl.concat(probs), on=KEYS, how="left")
    else:
        frame = frame.with_columns(pl.lit(None, pl.Float64).alias("model_p"))
    frame = frame.with_columns(
        _r(pl.when(pl.col("model_p") >= cfg.supervised.min_p).then(pl.col("model_p")).otherwise(0.0)).alias("s_model"),
        day.alias("d_model"),
        pl.struct(p=_r(pl.col("model_p"))).struct.json_encode().alias("ev_model"),
    )
    frame = frame.with_columns(
        _r(pl.lit(float(weights[k])) * pl.col(f"s_{k}")).alias(points_column(k)) for k in INDICATORS
    ).with_columns(_r(pl.sum_horizontal(*(pl.col(points_column(k)) for k in INDICATORS))).alias("score"))
    frame = frame.filter(pl.col("score") > cfg.output.min_score)

    # the meters that score (a few per area and date), in one chunk: the dates' frames arrive
    # in a chunk or two each, and the string work below costs ~6x as much over 100 chunks
    scored = frame.collect().rechunk()
    texts = _reason_texts()
    items = []  # one row per (scored meter, indicator with points): its reason and finding
    for i, (key, (rule, zh, _)) in enumerate(INDICATORS.items()):
        pts = pl.col(points_column(key))
        finding = pl.concat_str(
            [
                pl.lit(f'{{"rule":"{rule}","severity":"warning","points":'),
                pts.cast(pl.String),
                pl.lit(',"strength":'),
                pl.col(f"s_{key}").cast(pl.String),
                pl.lit(',"evidence":'),
                pl.col(f"ev_{key}").fill_null("{}"),
                pl.lit("}"),
            ]
        )
        reason = pl.concat_str(
            [
                pl.lit(f"{zh} {rule}: "),
                texts[key].fill_null(""),
                pl.lit(" (+"),
                pts.round(2).cast(pl.String),
                pl.lit(")"),
            ]
        )
        items.append(
            scored.filter(pts > 0).select(
                *KEYS,
                pts.alias("p"),
                pl.lit(i, pl.Int32).alias("i"),
                pl.lit(rule).alias("rule"),
                reason.alias("reason"),
                finding.alias("finding"),
                pl.col(f"d_{key}").alias("d"),
            )
        )
    # a meter's reasons by points (then the indicators' order), in one group-by over all of
    # them: a list per row sorted and joined row by row cost 0.19 s of CPU for the small run's
    # 1,773 scored meter-days (one chunk), this 0.05 s
    listed = (
        pl.concat(items, how="vertical_relaxed")
        .lazy()
        .sort(*KEYS, "p", "i", descending=[False, False, True, False])
        .group_by(KEYS, maintain_order=True)
        .agg(
            pl.col("reason").str.join("; ").alias("reasons"),
            pl.col("rule").first().alias("top_rule"),
            pl.len().cast(pl.Int16).alias("n_reasons"),
            pl.col("d").min().alias("first_suspicious_date"),
            pl.col("finding").str.join(",").alias("findings"),
        )
        .with_columns(pl.concat_str([pl.lit("["), pl.col("findings"), pl.lit("]")]).alias("findings"))
        .collect()
    )
    frame = (
        scored.join(listed, on=KEYS, how="left", maintain_order="left")
        .with_columns(  # a meter without any points: no reason
            pl.col("reasons").fill_null(""),
            pl.col("n_reasons").fill_null(0),
            pl.col("findings").fill_null("[]"),
            day.alias("date"),
        )
        .lazy()
    )
    out = frame.collect().sort([KEYS[0], "score", "meter_id"], descending=[False, True, False])
    out = out.with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over(KEYS[0]).alias("rank"))
    out = ANOMALIES.conform(out).collect().sort("date", "meter_id")
    return split_by_date(out, dates)


def detect(
    days: pl.DataFrame,
    events: pl.DataFrame | pl.LazyFrame,
    diagnosis: pl.DataFrame | pl.LazyFrame,
    history: pl.DataFrame,
    day: dt.date,
    cfg: AnomalyConfig,
    model_p: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The anomalies rows of detection date ``day`` (:func:`indicators` then :func:`score`)."""
    return score(indicators(days, events, diagnosis, history, day, cfg), day, cfg, model_p)


def feature_columns() -> list[str]:
    """The columns of :func:`indicators` the supervised model learns from."""
    return [f"s_{k}" for k in DATA_KEYS] + list(RAW_FEATURES)


__all__ = [
    "DATA_KEYS",
    "REVERSE_PARTS",
    "RULES",
    "AnomalyConfig",
    "AnomalyInputError",
    "batches_of_counts",
    "change_point",
    "combine_reverse_parts",
    "detect",
    "feature_columns",
    "in_range",
    "indicators",
    "indicators_at",
    "lookback_rows",
    "meter_ranges",
    "peer_medians",
    "prepare_days",
    "reverse_history",
    "reverse_parts",
    "reverse_verdict",
    "score",
    "score_at",
]
