"""The quality gate: Great Expectations suites per table, polars metrics, the runner.

* :mod:`.suites`: what each table must satisfy (rules with dotted names and severities),
  built from the table's contract in ``schemas/`` plus the table's own rules;
* :mod:`.metrics`: the polars side, one metrics row per partition;
* :mod:`.inputs`: a table's partitions into the frames GX judges;
* :mod:`.runner`: GX itself (file context in ``LAKE/_meta/gx``, Data Docs in
  ``LAKE/reports/data_docs``) and the gate's verdict;
* :mod:`.thresholds`: ``config/checks.toml``;
* :mod:`.results`: the contract of ``LAKE/_meta/check_results``.

The stage that runs it is :mod:`meterlake.stages.check`.
"""
