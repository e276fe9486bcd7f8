"""The quality gate: suites of rules per table, polars metrics and verdict, GX, the runner.

* :mod:`.suites`: what each table must satisfy (rules with dotted names and severities),
  built from the table's contract in ``schemas/`` plus the table's own rules;
* :mod:`.metrics`: the polars side, one metrics row per partition;
* :mod:`.inputs`: a table's partitions into the frames the rules judge;
* :mod:`.judge`: the verdict of every rule, in polars: one finding per table,
  partition and rule;
* :mod:`.runner`: GX (file context in ``LAKE/_meta/gx``, Data Docs in
  ``LAKE/reports/data_docs``), which re-checks the findings on one combined frame per
  run, and the gate;
* :mod:`.thresholds`: ``config/checks.toml``;
* :mod:`.results`: the contract of ``LAKE/_meta/check_results``.

The stage that runs it is :mod:`meterlake.stages.check`.
"""
