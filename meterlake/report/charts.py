"""Inline SVG charts for the HTML report: no JavaScript, no fonts, no network.

Each function takes a handful of already-aggregated values (a bar per area, a point
per day) and returns one ``<svg>`` element as text that scales with the page
(``viewBox`` + ``width:100%``). Every mark carries a ``<title>`` so hovering shows
the exact figure, and the chart an ``aria-label``. Values that are None are drawn
as gaps, never as zero (a missing day is not a day of zero).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

#: colour-blind-safe palette (Okabe-Ito), then greys
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#999999")
#: fixed colours for the status codes used across marts
STATUS_COLORS = {
    "normal": "#009E73",
    "ok": "#009E73",
    "actual": "#009E73",
    "high": "#D55E00",
    "arrears": "#D55E00",
    "missing": "#D55E00",
    "mismatch": "#CC79A7",
    "negative": "#0072B2",
    "estimated": "#E69F00",
    "low": "#E69F00",
    "uncomputable": "#999999",
    "exception": "#D55E00",
}
FONT = 'font-family="system-ui,sans-serif"'

Fmt = Callable[[float], str]


def number(v: float) -> str:
    """1,234.57"""
    return f"{v:,.2f}"


def percent(v: float) -> str:
    """0.1234 -> 12.34%"""
    return f"{v * 100:.2f}%"


def integer(v: float) -> str:
    return f"{v:,.0f}"


def _nice_ticks(lo: float, hi: float, n: int = 5, integer: bool = False) -> list[float]:
    """Round tick values covering [lo, hi] (whole numbers only when ``integer``: counts)."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0]
    if hi == lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if integer:
        step = max(1.0, math.ceil(step))
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 12))
    return ticks


def _svg(width: int, height: int, label: str, body: list[str]) -> str:
    return (
        f'<svg viewBox="0 0 {width} {height}" '
        f'style="width:100%;max-width:{width}px;height:auto" role="img" aria-label="{escape(label)}" {FONT}>'
        + "".join(body)
        + "</svg>"
    )


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    title: str,
    fmt: Fmt = number,
    colors: Sequence[str] | None = None,
    reference: float | None = None,
    reference_label: str = "",
    axis_min: float | None = None,
    width: int = 720,
) -> str:
    """Horizontal bars, one per label, values written at the bar's end.

    ``reference`` draws a dashed vertical line (a target or threshold). ``axis_min``
    starts the axis above zero (rates close to 100%: the differences are the point);
    the chart then says so under its title.
    """
    row_h, top, left, right = (
        22,
        (44 if axis_min is not None else 30),
        min(220, 12 + 7 * max((len(str(x)) for x in labels), default=4)),
        90,
    )
    height = top + row_h * max(len(labels), 1) + 28
    finite = [v for v in values if v is not None] + ([reference] if reference is not None else [])
    floor = 0.0 if axis_min is None else axis_min
    lo = min([floor, *finite])
    hi = max([floor, *finite])
    if hi == lo:
        hi = lo + 1.0
    ticks = _nice_ticks(lo, hi, integer=fmt is integer)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    plot_w = width - left - right

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * plot_w

    body = [f'<text x="{left}" y="18" font-size="14" font-weight="600">{escape(title)}</text>']
    if axis_min is not None:
        body.append(f'<text x="{left}" y="31" font-size="10" fill="#52606d">axis starts at {escape(fmt(lo))}</text>')
    for t in ticks:
        body.append(
            f'<line x1="{x(t):.1f}" y1="{top - 4}" x2="{x(t):.1f}" y2="{height - 24}" stroke="#e4e7eb"/>'
            f'<text x="{x(t):.1f}" y="{height - 8}" font-size="10" text-anchor="middle" fill="#52606d">{escape(fmt(t))}</text>'
        )
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        y = top + i * row_h
        color = colors[i % len(colors)] if colors else PALETTE[0]
        body.append(f'<text x="{left - 6}" y="{y + 15}" font-size="12" text-anchor="end">{escape(str(label))}</text>')
        if v is None:
            body.append(f'<text x="{x(floor) + 4:.1f}" y="{y + 15}" font-size="11" fill="#9aa5b1">no value</text>')
            continue
        x0, x1 = sorted((x(floor), x(v)))
        body.append(
            f'<rect x="{x0:.1f}" y="{y + 3}" width="{max(x1 - x0, 1):.1f}" height="{row_h - 6}" fill="{color}">'
            f"<title>{escape(str(label))}: {escape(fmt(v))}</title></rect>"
            f'<text x="{x1 + 4:.1f}" y="{y + 15}" font-size="11">{escape(fmt(v))}</text>'
        )
    if reference is not None:
        body.append(
            f'<line x1="{x(reference):.1f}" y1="{top - 6}" x2="{x(reference):.1f}" y2="{height - 24}" '
            f'stroke="#D55E00" stroke-dasharray="4 3" stroke-width="1.5"><title>{escape(reference_label)}</title></line>'
            f'<text x="{x(reference) + 3:.1f}" y="{top - 8}" font-size="10" fill="#D55E00">{escape(reference_label)}</text>'
        )
    return _svg(width, height, title, body)


def column_chart(
    labels: Sequence[str],
    series: dict[str, Sequence[float]],
    *,
    title: str,
    fmt: Fmt = integer,
    colors: dict[str, str] | None = None,
    width: int = 720,
    height: int = 260,
) -> str:
    """Vertical columns, stacked when ``series`` has several entries (a histogram, or
    counts by status per day). A legend names the series; long labels are tilted."""
    top, bottom, left, right = 40, 56, 56, 12
    n = max(len(labels), 1)
    totals = [sum(s[i] for s in series.values()) for i in range(len(labels))]
    ticks = _nice_ticks(0.0, max([*totals, 1.0]), integer=fmt is integer)
    hi = ticks[-1]
    plot_w, plot_h = width - left - right, height - top - bottom
    slot = plot_w / n

    def y(v: float) -> float:
        return top + plot_h - v / hi * plot_h

    body = [f'<text x="{left}" y="16" font-size="14" font-weight="600">{escape(title)}</text>']
    lx = left
    for k, name in enumerate(series):
        color = (colors or {}).get(name, PALETTE[k % len(PALETTE)])
        body.append(
            f'<rect x="{lx}" y="24" width="10" height="10" fill="{color}"/>'
            f'<text x="{lx + 14}" y="33" font-size="11">{escape(name)}</text>'
        )
        lx += 24 + 7 * len(name)
    for t in ticks:
        body.append(
            f'<line x1="{left}" y1="{y(t):.1f}" x2="{width - right}" y2="{y(t):.1f}" stroke="#e4e7eb"/>'
            f'<text x="{left - 4}" y="{y(t) + 3:.1f}" font-size="10" text-anchor="end" fill="#52606d">{escape(fmt(t))}</text>'
        )
    every = max(1, math.ceil(n / 16))  # at most ~16 axis labels
    # tilt the labels when they would not fit side by side (about 6 px per character)
    tilt = max((len(str(x)) for x in labels), default=0) * 6 > slot * every
    for i, label in enumerate(labels):
        x0 = left + i * slot + slot * 0.1
        base = 0.0
        for k, (name, vals) in enumerate(series.items()):
            v = vals[i]
            if v:
                color = (colors or {}).get(name, PALETTE[k % len(PALETTE)])
                body.append(
                    f'<rect x="{x0:.1f}" y="{y(base + v):.1f}" width="{slot * 0.8:.1f}" '
                    f'height="{y(base) - y(base + v):.1f}" fill="{color}">'
                    f"<title>{escape(str(label))} {escape(name)}: {escape(fmt(v))}</title></rect>"
                )
            base += v
        if i % every == 0:
            cx, cy = x0 + slot * 0.4, top + plot_h + 12
            if tilt:
                body.append(
                    f'<text x="{cx:.1f}" y="{cy}" font-size="10" text-anchor="end" '
                    f'transform="rotate(-35 {cx:.1f} {cy})">{escape(str(label))}</text>'
                )
            else:
                body.append(
                    f'<text x="{cx:.1f}" y="{cy + 2}" font-size="10" text-anchor="middle">{escape(str(label))}</text>'
                )
    return _svg(width, height, title, body)


def line_chart(
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    title: str,
    fmt: Fmt = number,
    reference: float | None = None,
    reference_label: str = "",
    colors: dict[str, str] | None = None,
    y_max: float | None = None,
    width: int = 1100,
    height: int = 260,
) -> str:
    """One line per series over the labels (dates); None values break the line.

    ``y_max`` caps the axis (a rate cannot exceed 100%)."""
    top, bottom, left, right = 40, 40, 64, 16
    finite = [v for s in series.values() for v in s if v is not None]
    if reference is not None:
        finite.append(reference)
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    pad = (hi - lo) * 0.1 or abs(hi) * 0.05 or 1.0
    top_value = hi + pad if y_max is None else min(hi + pad, y_max)
    ticks = [t for t in _nice_ticks(lo - pad, top_value) if y_max is None or t <= y_max + 1e-12]
    lo, hi = ticks[0], max(ticks[-1], top_value)
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(labels)

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n if n else 0)

    def y(v: float) -> float:
        return top + plot_h - (v - lo) / (hi - lo) * plot_h

    body = [f'<text x="{left}" y="16" font-size="14" font-weight="600">{escape(title)}</text>']
    for t in ticks:
        body.append(
            f'<line x1="{left}" y1="{y(t):.1f}" x2="{width - right}" y2="{y(t):.1f}" stroke="#e4e7eb"/>'
            f'<text x="{left - 4}" y="{y(t) + 3:.1f}" font-size="10" text-anchor="end" fill="#52606d">{escape(fmt(t))}</text>'
        )
    every = max(1, math.ceil(n / 12))
    for i, label in enumerate(labels):
        if i % every == 0:
            body.append(
                f'<text x="{x(i):.1f}" y="{top + plot_h + 14}" font-size="10" text-anchor="middle">{escape(str(label))}</text>'
            )
    lx = left
    for k, (name, vals) in enumerate(series.items()):
        color = (colors or {}).get(name, PALETTE[k % len(PALETTE)])
        body.append(
            f'<rect x="{lx}" y="24" width="10" height="10" fill="{color}"/>'
            f'<text x="{lx + 14}" y="33" font-size="11">{escape(name)}</text>'
        )
        lx += 24 + 7 * len(name)
        runs: list[list[tuple[int, float]]] = [[]]
        for i, v in enumerate(vals):
            if v is None:
                runs.append([])
            else:
                runs[-1].append((i, v))
        for run in runs:
            if len(run) > 1:
                pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in run)
                body.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
            for i, v in run:
                body.append(
                    f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{color}">'
                    f"<title>{escape(str(labels[i]))} {escape(name)}: {escape(fmt(v))}</title></circle>"
                )
    if reference is not None:
        body.append(
            f'<line x1="{left}" y1="{y(reference):.1f}" x2="{width - right}" y2="{y(reference):.1f}" '
            f'stroke="#D55E00" stroke-dasharray="5 4" stroke-width="1.5"><title>{escape(reference_label)}</title></line>'
            f'<text x="{width - right - 2}" y="{y(reference) - 4:.1f}" font-size="10" text-anchor="end" '
            f'fill="#D55E00">{escape(reference_label)}</text>'
        )
    return _svg(width, height, title, body)
