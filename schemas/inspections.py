"""Inspection outcomes (稽查结果): an optional landing dataset of confirmed cases.

Utilities that send inspectors to meters the ranking flags (现场稽查) record what they
found. ``LANDING/inspections/`` holds those outcomes as CSV like the other datasets
(canonical or Chinese headers, UTF-8 or GBK, gzip allowed). When it is present, the
anomalies stage trains a supervised model on them (``transforms/supervised.py``);
when it is absent everything works unsupervised.

``outcome``: ``theft`` (窃电, confirmed), ``normal`` (正常: nothing found) or
``fault`` (故障: a meter or wiring fault, not theft). The theft model counts only
``theft`` as positive.
"""

from __future__ import annotations

from .landing import Field, Landing, clean_table

OUTCOMES = ("theft", "normal", "fault")

FIELDS = (
    Field("meter_id", "电能表资产编号", "string", "the inspected meter", not_null=True),
    Field("inspection_date", "稽查日期", "date", "local date of the on-site inspection", not_null=True),
    Field(
        "outcome",
        "稽查结果",
        "code",
        "theft (窃电 confirmed), normal (正常) or fault (故障, not theft)",
        codes=OUTCOMES,
        not_null=True,
    ),
)

LANDING = Landing(
    dataset="inspections",
    zh="稽查结果",
    fields=FIELDS,
    key=("meter_id", "inspection_date"),
    date_field="inspection_date",
    clean=clean_table(
        "inspections",
        "稽查结果",
        "on-site inspection outcomes, one row per meter and inspection date",
        FIELDS,
        ("meter_id", "inspection_date"),
        "inspection_date",
    ),
)
