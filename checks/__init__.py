"""The quality gate: suites of rules per table, polars metrics and verdict, GX, the runner.

* :mod:`.suites`: what each table must satisfy (rules with dotted names and severities),
  built from the table's contract in ``schemas/`` plus the table's own rules;
* :mod:`.metrics`: the polars side, one metrics row per partition;
* :mod:`.inputs`: a table's partitions into the frames the rules judge;
* :mod:`.judge`: the verdict of every rule, in polars: one finding per table,
  partition and rule;
* :mod:`.runner`: the gate's verdict (no GX), and GX (file context in
  ``LAKE/_meta/gx``, Data Docs in ``LAKE/reports/data_docs``), which re-checks the
  findings on one combined frame per run and renders their page;
* :mod:`.thresholds`: ``config/checks.toml``;
* :mod:`.results`: the contract of ``LAKE/_meta/check_results``.

The stages that run it are :mod:`meterlake.stages.check` (the verdict) and
:mod:`meterlake.stages.docs` (GX and the Data Docs of a passed gate).
"""
