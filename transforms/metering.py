"""The CT/PT rating table (互感器额定变比): the one list of standard multipliers. Pure.

A meter behind instrument transformers records secondary energy; the archive's
multiplier (综合倍率) = CT ratio (rated primary / rated secondary current) x PT ratio.
Every part of the pipeline that asks "is this a standard multiplier" or "which
standard multiplier is nearest" reads this table: VEE's non-standard-multiplier check,
the loss diagnosis's neighbouring-ratio test, the interval energy balance's snapping
of an estimated multiplier, and the synthetic generator's choice of CTs.

Sources: rated primary currents of GB/T 20840.2-2014 / IEC 61869-2:2012 (the R10
series 10-12.5-15-20-25-30-40-50-60-75 A and their decimal multiples) plus the ratings
common on Chinese distribution transformers and 10 kV metering (80, 120, 160, 800,
1200, 1600 A); secondary 5 A (1 A CTs are read as the same ratio x 5); PT ratios 1
(0.4 kV, no PT), 10 kV/100 V and 35 kV/100 V.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

#: rated CT primary currents, A
CT_PRIMARY_A: tuple[float, ...] = (
    5, 10, 12.5, 15, 20, 25, 30, 40, 50, 60, 75, 80, 100, 120, 125, 150, 160, 200, 250, 300, 400, 500,
    600, 750, 800, 1000, 1200, 1250, 1500, 1600, 2000, 2500, 3000, 4000, 5000,
)  # fmt: skip
#: rated CT secondary current, A
CT_SECONDARY_A: float = 5.0
#: PT ratios: none (0.4 kV), 10 kV/100 V, 35 kV/100 V
PT_RATIOS: tuple[float, ...] = (1, 100, 350)


def standard_multipliers() -> tuple[float, ...]:
    """Every CT ratio x PT ratio (rounded to 6 decimals), and 1 for a direct-connected meter.

    >>> m = standard_multipliers(); (1.0 in m, 20.0 in m, 2000.0 in m, 21.0 in m)
    (True, True, True, False)
    """
    out = {1.0} | {round(c / CT_SECONDARY_A * p, 6) for c in CT_PRIMARY_A for p in PT_RATIOS}
    return tuple(sorted(out))


def ratings(primary_a: Iterable[float], what: str) -> tuple[float, ...]:
    """``primary_a`` checked against the table: a rating not in it is an error naming ``what``."""
    picked = tuple(float(a) for a in primary_a)
    odd = [a for a in picked if not any(math.isclose(a, c) for c in CT_PRIMARY_A)]
    if odd:
        raise ValueError(f"{what}: CT ratings {odd} A are not in the rating table (transforms/metering.py)")
    return picked
