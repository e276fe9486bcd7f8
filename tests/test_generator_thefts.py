"""Partial thefts of the generator: what the meter records from the true use."""

from __future__ import annotations

import numpy as np

from meterlake.generate._thefts import NIGHT, PartialThefts


def test_recorded_share_by_mode_and_day() -> None:
    thefts = PartialThefts(
        idx=np.array([3, 5, 8]),
        mode=np.array([0, 1, 2]),  # constant, night only, some days
        share=np.array([0.6, 0.3, 0.5]),
        first_day=np.array([0, 0, 1]),
        days_on=np.array([[True, True], [True, True], [True, False]]),
    )
    true = np.ones((3, 96))
    day0 = thefts.recorded(0, true)
    assert np.allclose(day0[0], 0.6)  # every slot at 60%
    assert np.allclose(day0[1][NIGHT], 0.3) and np.allclose(day0[1][~NIGHT], 1.0)  # 22:00-06:00 only
    assert np.allclose(day0[2], 1.0)  # not started yet
    day1 = thefts.recorded(1, true)
    assert np.allclose(day1[2], 1.0)  # started, but an off day
    assert NIGHT.sum() == 32  # 8 hours of 15-minute slots


def test_the_six_attacks_by_hand() -> None:
    from meterlake.generate._thefts import Attacks

    n, days = 6, 2
    rows = np.tile(np.arange(1.0, 97.0), (n, 1))  # x_t = 1..96, mean 48.5
    attacks = Attacks(
        idx=np.arange(n),
        kind=np.arange(n),
        days_on=np.array([[True, False]] * n),
        day_kind=np.tile(np.arange(n)[:, None], (1, days)),
        alpha=np.full((n, days), 0.5),
        window=np.tile(np.array([10, 30]), (n, days, 1)),
        seed=1,
    )
    out = attacks.recorded(0, rows)
    assert np.allclose(out[0], 0.5 * rows[0])  # h1
    assert (out[1, 10:30] == 0).all() and np.allclose(out[1, :10], rows[1, :10])  # h2
    assert ((out[2] >= 0.1 * rows[2]) & (out[2] <= 0.8 * rows[2])).all()  # h3
    assert ((out[3] >= 0.1 * 48.5) & (out[3] <= 0.8 * 48.5)).all()  # h4
    assert np.allclose(out[4], 48.5)  # h5
    assert np.allclose(out[5], rows[5][::-1])  # h6
    assert np.allclose(attacks.recorded(1, rows), rows)  # an untampered day
