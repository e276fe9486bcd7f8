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
