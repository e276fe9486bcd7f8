"""Run the suites with Great Expectations and turn the results into a gate.

GX judges small frames only: each table's per-partition metrics frame (see
:mod:`meterlake.checks.metrics`) and, for small area-grain tables, their rows. Its
file context lives in the lake (``LAKE/_meta/gx``), never in the repository, so the
validation history and the Data Docs (``LAKE/reports/data_docs``) travel with the data.

GX is imported inside functions: its import takes seconds, and DAG files and the CLI
must stay quick to load. Analytics are switched off before the import.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import polars as pl

from .descriptions import title, zh
from .metrics import PARTITION
from .offline import make_offline
from .results import CHECK_RESULTS
from .suites import RowRule, Rule, TableSuite

SITE_NAME = "meterlake"
DATASOURCE = "meterlake"
#: offending rows kept as evidence per rule and partition
EVIDENCE_ROWS = 20


@dataclass
class SuiteInput:
    """What one table brings to the gate."""

    suite: TableSuite
    #: one row per partition: ``partition`` plus every metric the rules read
    metrics: pl.DataFrame
    #: rows for the row-level rules (``partition``, ``row_index`` and checked columns), or None
    rows: pl.DataFrame | None = None
    #: per partition, JSON-able evidence beyond the metric (missing columns, errors)
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class CheckReport:
    """The gate's verdict: findings as data, and where people can read them."""

    findings: pl.DataFrame
    data_docs_index: Path | None
    validation_pages: list[Path]
    #: pages GX should have rendered but did not (GX #12096 renders some silently not at all)
    missing_pages: list[str]

    @property
    def failures(self) -> pl.DataFrame:
        return self.findings.filter(~pl.col("success"))

    @property
    def blocking(self) -> pl.DataFrame:
        return self.failures.filter(pl.col("severity") == "blocking")

    @property
    def warnings(self) -> pl.DataFrame:
        return self.failures.filter(pl.col("severity") == "warning")

    @property
    def passed(self) -> bool:
        return self.blocking.height == 0


# -- the GX context -------------------------------------------------------------------


def _import_gx() -> Any:
    # GX starts an analytics thread and phones home unless told not to (before import).
    os.environ["GX_ANALYTICS_ENABLED"] = "False"
    import great_expectations as gx

    return gx


def preload() -> threading.Thread:
    """Start importing GX in a background thread and return it.

    The import takes seconds; polars releases the GIL while it computes the metrics,
    so the two overlap. An import error is not lost: the real import in
    :func:`run_checks` raises it again.
    """

    def _load() -> None:
        with contextlib.suppress(Exception):
            _import_gx()

    thread = threading.Thread(target=_load, name="meterlake-gx-import", daemon=True)
    thread.start()
    return thread


def open_context(gx_root: Path, docs_dir: Path, docs_validation_limit: int = 300) -> Any:
    """The file context under ``gx_root``, its one Data Docs site writing to ``docs_dir``."""
    gx = _import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    gx_root = Path(gx_root)
    gx_root.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(gx_root))
    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(Path(docs_dir).resolve()),
        },
        "site_index_builder": {
            "class_name": "DefaultSiteIndexBuilder",
            "validation_results_limit": docs_validation_limit,
        },
    }
    changed = False
    if dict(context.variables.data_docs_sites or {}) != {SITE_NAME: site}:
        context.variables.data_docs_sites = {SITE_NAME: site}
        changed = True
    bars = context.variables.progress_bars
    if isinstance(bars, dict):  # read back from great_expectations.yml
        bars = ProgressBarsConfig(**bars)
    if bars is None or bars.globally or bars.metric_calculations:
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        changed = True
    if context.variables.analytics_enabled is not False:
        context.variables.analytics_enabled = False
        changed = True
    # GX re-reads and YAML-parses config_variables.yml on every config access (hundreds
    # per run, ~1 s on a county day); the gate substitutes no variables, so drop it.
    if context.variables.config_variables_file_path is not None:
        context.variables.config_variables_file_path = None
        changed = True
    if changed:
        context.variables.save()
        # reopen: the context keeps the configuration providers it was built with
        context = gx.get_context(mode="file", project_root_dir=str(gx_root))
    return context


def _meta(rule: Rule | RowRule, table: str) -> dict[str, Any]:
    return {
        "rule": rule.rule,
        "severity": rule.severity,
        "table": table,
        "practice": rule.practice,
    }


def gx_suite(suite: TableSuite) -> tuple[Any, Any | None]:
    """The GX suites of a table: metrics rules, and row rules (None when it has none)."""
    gx = _import_gx()
    from great_expectations.expectations.metadata_types import FailureSeverity

    def sev(s: str) -> Any:
        return FailureSeverity.CRITICAL if s == "blocking" else FailureSeverity.WARNING

    def note(r: Rule | RowRule) -> str:
        return (
            f"`{r.rule}` ({r.severity}): {r.description}. {zh(r.rule, r.description)}。 Practice / 依据: {r.practice}."
        )

    # one expectation per rule, named by what it checks in English and Chinese (GX shows
    # an expectation's description instead of its generic template, e.g. "Sum across
    # columns ... must be 0"); GX's set-up costs ~15 ms per expectation, a few seconds a
    # county day, the price of a page a person can read
    metric_expectations = [
        gx.expectations.ExpectColumnValuesToBeBetween(
            column=r.metric,
            min_value=r.min_value,
            max_value=r.max_value,
            description=title(r.rule, r.description),
            meta=_meta(r, suite.table),
            severity=sev(r.severity),
            notes=note(r),
        )
        for r in suite.rules
    ]
    metrics_suite = gx.ExpectationSuite(
        name=suite.name,
        expectations=metric_expectations,
        meta={"table": suite.table, "layer": suite.layer, "notes": suite.description},
    )
    if not suite.row_rules:
        return metrics_suite, None
    row_expectations = []
    for r in suite.row_rules:
        common = {
            "column": r.column,
            "description": title(r.rule, r.description),
            "meta": _meta(r, suite.table),
            "severity": sev(r.severity),
            "notes": note(r),
        }
        if r.kind == "in_set":
            row_expectations.append(gx.expectations.ExpectColumnValuesToBeInSet(value_set=list(r.value_set), **common))
        else:
            row_expectations.append(
                gx.expectations.ExpectColumnValuesToBeBetween(min_value=r.min_value, max_value=r.max_value, **common)
            )
    rows_suite = gx.ExpectationSuite(
        name=f"{suite.name}.rows", expectations=row_expectations, meta={"table": suite.table, "layer": suite.layer}
    )
    return metrics_suite, rows_suite


def _fingerprint(suite: Any, index_columns: list[str]) -> str:
    """A digest of what a checkpoint would store: unchanged suites are not rewritten."""
    body = {
        "expectations": [e.configuration.to_json_dict() for e in suite.expectations],
        "meta": suite.meta,
        "index": index_columns,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _checkpoint(context: Any, name: str, suite: Any, index_columns: list[str]) -> tuple[Any, bool]:
    """Suite, validation definition and checkpoint named ``name``, and whether they
    were (re)stored.

    Stored once and reused while the suite is unchanged: GX's add_or_update rewrites
    and re-reads every object (about 0.1 s a table), which a daily gate need not pay.
    """
    gx = _import_gx()
    fingerprint = _fingerprint(suite, index_columns)
    try:
        stored = context.checkpoints.get(name)
        if stored.validation_definitions[0].suite.meta.get("fingerprint") == fingerprint:
            return stored, False
    except Exception:  # absent or unreadable: (re)create below
        pass
    suite.meta["fingerprint"] = fingerprint
    try:
        source = context.data_sources.get(DATASOURCE)
    except (KeyError, ValueError, LookupError):
        source = context.data_sources.add_pandas(DATASOURCE)
    try:
        asset = source.get_asset(name)
    except LookupError:
        asset = source.add_dataframe_asset(name)
    try:
        batch = asset.get_batch_definition("whole")
    except KeyError:
        batch = asset.add_batch_definition_whole_dataframe("whole")
    suite = context.suites.add_or_update(suite)
    vd = context.validation_definitions.add_or_update(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=name,
            validation_definitions=[vd],
            actions=[],
            # the frames are small (one row per partition, or a small table):
            # COMPLETE names every failing partition/row at little cost
            result_format={
                "result_format": "COMPLETE",
                "unexpected_index_column_names": index_columns,
                "partial_unexpected_count": EVIDENCE_ROWS,
                "return_unexpected_index_query": False,
            },
        )
    )
    return checkpoint, True


#: HTML's five special characters, as html.escape writes them
_HTML_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#x27;"))


def html_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """Every text value HTML-escaped, as GX gets it.

    GX writes index and unexpected values into the Data Docs pages as they are, so a
    landing value such as ``<script>`` would run in the reader's browser. The rules
    judge numbers and codes, which escaping leaves alone; the findings turn the values
    back with :func:`html.unescape`.
    """

    def escape(col: pl.Expr) -> pl.Expr:
        for char, entity in _HTML_ESCAPES:
            col = col.str.replace_all(char, entity, literal=True)
        return col

    return frame.with_columns(escape(pl.col(c)) for c, dtype in frame.schema.items() if dtype == pl.String)


def _unescaped(value: Any) -> Any:
    return html.unescape(value) if isinstance(value, str) else value


def _to_pandas(frame: pl.DataFrame) -> Any:
    # GX's dataframe data source takes pandas only: the one place pandas is used.
    return frame.to_pandas()


# -- results into findings ----------------------------------------------------------------


def _plain(v: Any) -> Any:
    """A JSON-able Python value (numpy scalars, NaN)."""
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _exception(result: Any) -> str | None:
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for v in info.values():  # keyed per metric in some GX versions
        if isinstance(v, dict) and v.get("raised_exception"):
            return str(v.get("exception_message"))
    return None


def _by_rule(vr: Any) -> dict[str, Any]:
    """Each rule's GX result (one expectation per rule)."""
    return {str((res.expectation_config.meta or {}).get("rule")): res for res in vr.results}


def _metric_findings(inp: SuiteInput, vr: Any) -> list[dict[str, Any]]:
    suite = inp.suite
    by_rule = _by_rule(vr)
    values = inp.metrics.to_dicts()
    out = []
    for rule in suite.rules:
        res = by_rule[rule.rule]
        error = _exception(res)
        failing = {str(_unescaped(row[PARTITION])) for row in (res.result or {}).get("unexpected_index_list") or []}
        for row in values:
            part = str(row[PARTITION])
            observed = _plain(row.get(rule.metric))
            # GX names the failing partitions
            ok = error is None and part not in failing
            evidence: dict[str, Any] = {"metric": rule.metric, "value": observed}
            evidence.update(inp.evidence.get(part, {}))
            if error is not None:
                evidence["exception"] = error
            out.append(
                {
                    "table": suite.table,
                    "layer": suite.layer,
                    "partition": part,
                    "suite": suite.name,
                    "rule": rule.rule,
                    "severity": rule.severity,
                    "success": ok,
                    "metric": rule.metric,
                    "observed": float(observed)
                    if isinstance(observed, int | float) and not isinstance(observed, bool)
                    else None,
                    "expected": rule.expected,
                    "expectation": res.expectation_config.type,
                    "description": rule.description,
                    "evidence": json.dumps(evidence, ensure_ascii=False, default=str),
                }
            )
    return out


def _row_findings(inp: SuiteInput, vr: Any) -> list[dict[str, Any]]:
    suite = inp.suite
    assert inp.rows is not None
    partitions = sorted(set(inp.metrics[PARTITION].to_list()))
    by_rule = _by_rule(vr)
    out = []
    for rule in suite.row_rules:
        res = by_rule[rule.rule]
        error = _exception(res)
        bad: dict[str, list[dict[str, Any]]] = {}
        for row in (res.result or {}).get("unexpected_index_list") or []:
            bad.setdefault(str(_unescaped(row[PARTITION])), []).append(
                {k: _plain(_unescaped(v)) for k, v in row.items() if k != PARTITION}
            )
        for part in partitions:
            rows = bad.get(part, [])
            ok = error is None and not rows
            evidence: dict[str, Any] = {
                "column": rule.column,
                "unexpected_count": len(rows),
                "rows": rows[:EVIDENCE_ROWS],
            }
            if error is not None:
                evidence["exception"] = error
            out.append(
                {
                    "table": suite.table,
                    "layer": suite.layer,
                    "partition": part,
                    "suite": f"{suite.name}.rows",
                    "rule": rule.rule,
                    "severity": rule.severity,
                    "success": ok,
                    "metric": rule.column,
                    "observed": float(len(rows)),
                    "expected": rule.expected,
                    "expectation": res.expectation_config.type,
                    "description": rule.description,
                    "evidence": json.dumps(evidence, ensure_ascii=False, default=str),
                }
            )
    return out


# -- the whole run --------------------------------------------------------------------


def run_checks(
    inputs: Sequence[SuiteInput],
    gx_root: Path,
    docs_dir: Path,
    run_name: str,
    docs_validation_limit: int = 300,
) -> CheckReport:
    """Validate every input with GX, store the results, build the Data Docs.

    Returns the findings (schema :data:`CHECK_RESULTS` without ``run_id``) and the
    Data Docs pages of this run, checked to exist on disk.
    """
    gx = _import_gx()
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    context = open_context(gx_root, docs_dir, docs_validation_limit)
    run_id = gx.RunIdentifier(run_name=run_name)
    findings: list[dict[str, Any]] = []
    result_ids: list[Any] = []
    #: suites whose Data Docs page must be (re)rendered: changed, or never rendered
    suite_names: list[str] = []
    for inp in inputs:
        metrics_suite, rows_suite = gx_suite(inp.suite)
        jobs = [(metrics_suite, inp.metrics, [PARTITION], _metric_findings)]
        if rows_suite is not None and inp.rows is not None:
            jobs.append((rows_suite, inp.rows, [PARTITION, *inp.suite.row_index], _row_findings))
        for gx_s, frame, row_index, to_findings in jobs:
            cp, changed = _checkpoint(context, gx_s.name, gx_s, row_index)
            page = Path(docs_dir, "expectations", *gx_s.name.split(".")).with_suffix(".html")
            if changed or not page.exists():
                suite_names.append(gx_s.name)
            result = cp.run(batch_parameters={"dataframe": _to_pandas(html_safe(frame))}, run_id=run_id)
            for vr_id, vr in result.run_results.items():
                result_ids.append(vr_id)
                findings.extend(to_findings(inp, vr))

    pages: list[Path] = []
    missing: list[str] = []
    index: Path | None = None
    if result_ids or suite_names:
        ids = result_ids + [ExpectationSuiteIdentifier(name=n) for n in suite_names]
        urls = context.build_data_docs(site_names=[SITE_NAME], resource_identifiers=ids)
        index = _path(urls[SITE_NAME])
        make_offline(Path(docs_dir))  # the pages load nothing from the network
        if not index.exists():
            missing.append(str(index))
        for vr_id in result_ids:
            for site in context.get_docs_sites_urls(
                resource_identifier=vr_id, site_name=SITE_NAME, only_if_exists=False
            ):
                page = _path(site["site_url"])
                if page.exists():
                    pages.append(page)
                else:
                    missing.append(str(page))

    schema = {k: v for k, v in CHECK_RESULTS.schema.items() if k != "run_id"}
    frame = pl.DataFrame(findings, schema=schema, orient="row") if findings else pl.DataFrame(schema=schema)
    return CheckReport(findings=frame, data_docs_index=index, validation_pages=pages, missing_pages=missing)


def _path(url: str) -> Path:
    parsed = urlparse(url)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(url)


# -- the gate ----------------------------------------------------------------------------


def _one(row: dict[str, Any]) -> str:
    observed = row["observed"]
    found = (
        "an exception"
        if observed is None and "exception" in (row["evidence"] or "")
        else ("no value" if observed is None else f"{observed:g}")
    )
    return (
        f"{row['rule']} ({row['expectation']} on {row['metric']}: expected {row['expected']}, found {found}) "
        f"in table {row['layer']}/{row['table']}, partition {row['partition']}"
    )


def blocking_message(report: CheckReport, limit: int = 3) -> str:
    """One line naming the first blocking failure (expectation, table, partition) and how many more."""
    rows = report.blocking.to_dicts()
    if not rows:
        return ""
    msg = f"blocking expectation failed: {_one(rows[0])}"
    if len(rows) > 1:
        more = [f"{r['rule']} in {r['table']} {r['partition']}" for r in rows[1 : 1 + limit]]
        rest = len(rows) - 1 - len(more)
        msg += f"; {len(rows) - 1} more blocking: " + ", ".join(more) + (f" and {rest} more" if rest else "")
    if report.data_docs_index is not None:
        msg += f"; Data Docs: {report.data_docs_index}"
    return msg


def warning_notes(report: CheckReport, limit: int = 20) -> list[str]:
    """One note per failed warning (rule, table, partition), at most ``limit`` and a count."""
    rows = report.warnings.to_dicts()
    notes = [f"warning: {_one(r)}" for r in rows[:limit]]
    if len(rows) > limit:
        notes.append(f"warning: {len(rows) - limit} more warnings in check_results")
    return notes
