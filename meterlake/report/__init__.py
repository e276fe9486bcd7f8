"""The HTML run report (``meterlake report --lake L``): self-contained, inline SVG charts.

:func:`build_report` reads the marts for a period and writes one HTML file under
``LAKE/reports/``; :mod:`.data` holds the summaries, :mod:`.charts` the SVG charts.
"""

from .html import NO_DATA, build_report, render, report_name

__all__ = ["NO_DATA", "build_report", "render", "report_name"]
