"""Judge the suites, have Great Expectations check the verdict, and turn it into a gate.

Every rule is judged in polars (:mod:`meterlake.checks.judge`) on each table's
per-partition metrics frame (see :mod:`meterlake.checks.metrics`) and, for small
area-grain tables, their rows: one finding per table, partition and rule. GX then
validates those findings, one combined frame, with one suite and one checkpoint per
run (each finding's value within its rule's bounds, per severity); its verdict must
agree with the polars one, and its result is the run's Data Docs page, listing every
failing rule, table and partition with the rule's title and evidence. (Per-table
suites cost ~15 ms of GX set-up per expectation, 265 of them, and ~40 checkpoint runs
and pages a run: several seconds whatever the data.)

The verdict (:func:`judge_all`, :func:`verdict`) needs no GX. :func:`render` is the
GX part: it imports GX (3-4 s of CPU in a fresh process), validates the judged findings
and builds the Data Docs. The check stage decides with the verdict alone and renders
only a failing gate's page itself; a passing gate's page is rendered by the docs stage
(:mod:`meterlake.stages.docs`), off the path from the gate to publishing.

GX's file context lives in the lake (``LAKE/_meta/gx``), never in the repository, so
the validation history and the Data Docs (``LAKE/reports/data_docs``) travel with the data.

GX is imported inside functions: its import takes seconds, and DAG files and the CLI
must stay quick to load. Analytics are switched off before the import.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import importlib
import importlib.util
import json
import os
import re
import sys
import threading
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import polars as pl

from .judge import EVIDENCE_ROWS, FINDINGS_SCHEMA, empty_findings, metric_findings, row_findings
from .offline import make_offline
from .suites import TableSuite

SITE_NAME = "meterlake"
#: the module of the site's page views (GX imports it by name when it builds the site)
VIEWS = "meterlake.checks.gx_views"
DATASOURCE = "meterlake"
#: under ``LAKE/_meta``: the judged findings of passing gates whose Data Docs page the
#: docs stage has yet to render, one ``<run id>.parquet`` each
PENDING = "data_docs_pending"


def pending(meta: Path) -> list[Path]:
    """The judged findings under ``meta`` waiting for their Data Docs page, oldest first."""
    folder = Path(meta) / PENDING
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.suffix == ".parquet" and not p.name.startswith(".")]
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))


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


#: modules GX imports at its own import for expectations the gate never uses (the KL
#: divergence's and the KS tests' scipy.stats, the KL divergence's altair charts): ~0.75 s
#: of the import's ~2.3 s of CPU. They are put off until something reads from them.
DEFERRED = ("scipy.stats", "altair")


class _Deferred(types.ModuleType):
    """A stand-in for a module not imported yet: the first attribute read from it imports
    the module (then the stand-in holds its names too, for whoever kept a reference)."""

    def __getattr__(self, attr: str) -> Any:
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        real = importlib.import_module(name)  # Python's import lock: another thread's read waits
        self.__dict__.update(real.__dict__)
        return getattr(real, attr)


_DEFER_LOCK = threading.Lock()


def defer_imports(names: Sequence[str] = DEFERRED) -> list[str]:
    """Put a :class:`_Deferred` stand-in in ``sys.modules`` for each of ``names`` not imported
    yet (and installed); return the names deferred."""
    done = []
    with _DEFER_LOCK:
        for name in names:
            if name in sys.modules:
                continue
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError):
                continue
            if spec is None:
                continue
            stand_in = _Deferred(name)
            stand_in.__spec__ = spec
            stand_in.__loader__ = spec.loader
            sys.modules[name] = stand_in
            done.append(name)
    return done


def import_gx() -> Any:
    # GX starts an analytics thread and phones home unless told not to (before import).
    os.environ["GX_ANALYTICS_ENABLED"] = "False"
    if "great_expectations" not in sys.modules:
        defer_imports()
    import great_expectations as gx

    return gx


def open_context(gx_root: Path, docs_dir: Path, docs_validation_limit: int = 300) -> Any:
    """The file context under ``gx_root``, its one Data Docs site writing to ``docs_dir``."""
    gx = import_gx()
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
            "view": {"module_name": VIEWS, "class_name": "IndexPageView"},
        },
        # GX's views on templates compiled once per process (:mod:`meterlake.checks.gx_views`)
        "site_section_builders": {
            section: {"view": {"module_name": VIEWS, "class_name": "PageView"}}
            for section in ("expectations", "validations")
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


#: the one GX suite, validation definition and checkpoint of the gate
GATE = "meterlake.gate"
#: columns naming a finding on the Data Docs page (a failing one is listed with them)
INDEX_COLUMNS = ["table", "partition", "rule", "check", "evidence"]
#: the severities, as GX names them, and as the page titles them
_SEVERITIES = (
    ("blocking", "CRITICAL", "Blocking rules", "阻断规则"),
    ("warning", "WARNING", "Warning rules", "警告规则"),
)


def gate_suite() -> Any:
    """The gate's GX suite: every finding's value within its rule's bounds, blocking
    and warning rules apart (one expectation per severity and bound).

    It judges the combined findings frame (:func:`gate_frame`), a few hundred rows to a
    few ten thousand: a missing value or bound is not judged, as in the rules.
    """
    gx = import_gx()
    from great_expectations.expectations.metadata_types import FailureSeverity

    expectations = []
    for severity, gx_severity, en, zh_ in _SEVERITIES:
        value = f"{severity}_value"
        for a, b, bound, en_bound, zh_bound in (
            (value, "min_value", "min", "at or above", "不低于"),
            ("max_value", value, "max", "at or below", "不高于"),
        ):
            expectations.append(
                gx.expectations.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A=a,
                    column_B=b,
                    or_equal=True,
                    ignore_row_if="either_value_is_missing",
                    description=(
                        f"{en}: every table, partition and rule has its value {en_bound} the rule's {bound} bound"
                        f" / {zh_}：每个表、分区和规则的取值{zh_bound}规则的{'下限' if bound == 'min' else '上限'}"
                    ),
                    meta={"severity": severity, "bound": bound},
                    severity=getattr(FailureSeverity, gx_severity),
                )
            )
    return gx.ExpectationSuite(
        name=GATE,
        expectations=expectations,
        meta={
            "notes": "One row per table, partition and rule: the metric judged (or the count of offending "
            "rows for a row rule) and the rule's bounds; a failing row names the rule, its check in English "
            "and Chinese, and the evidence. All findings: LAKE/_meta/check_results."
        },
    )


def gate_frame(judged: pl.DataFrame) -> pl.DataFrame:
    """The findings as GX judges them: the value in the column of its severity."""
    value = pl.col("value")
    return judged.select(
        pl.concat_str("layer", pl.lit("/"), "table").alias("table"),
        "partition",
        "rule",
        "check",
        "evidence",
        *(pl.when(pl.col("severity") == s).then(value).alias(f"{s}_value") for s, *_ in _SEVERITIES),
        "min_value",
        "max_value",
    )


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
    gx = import_gx()
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


# -- the verdict --------------------------------------------------------------------------


def judge(inp: SuiteInput) -> pl.DataFrame:
    """The findings of one table (with the value, bounds and title GX judges)."""
    suite = inp.suite
    frames = [metric_findings(inp.metrics, suite.rules, suite.table, suite.layer, suite.name, inp.evidence)]
    if suite.row_rules and inp.rows is not None:
        frames.append(
            row_findings(
                inp.metrics, inp.rows, suite.row_rules, suite.row_index, suite.table, suite.layer, f"{suite.name}.rows"
            )
        )
    return pl.concat(frames)


def _exception(result: Any) -> str | None:
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for v in info.values():  # keyed per metric in some GX versions
        if isinstance(v, dict) and v.get("raised_exception"):
            return str(v.get("exception_message"))
    return None


def _gx_failures(vr: Any) -> set[tuple[str, str, str]]:
    """(layer/table, partition, rule) of every finding GX found outside its bounds."""
    failed = set()
    for res in vr.results:
        error = _exception(res)
        if error is not None:
            raise CheckError(f"Great Expectations could not judge the findings: {error}".splitlines()[0])
        for row in (res.result or {}).get("unexpected_index_list") or []:
            failed.add((_unescaped(row["table"]), _unescaped(row["partition"]), _unescaped(row["rule"])))
    return failed


class CheckError(RuntimeError):
    """The gate itself went wrong (not the data): GX failed, or disagreed with the verdict."""


# -- the whole run ---------------------------------------------------------------------


def judge_all(inputs: Sequence[SuiteInput]) -> pl.DataFrame:
    """Every input's findings with the value, bounds and title GX judges (no GX involved).

    The columns are :data:`FINDINGS_SCHEMA` and :data:`BOUNDS_SCHEMA`: what
    :func:`render` takes, and, less the bounds, the findings of ``check_results``.
    """
    return pl.concat([judge(inp) for inp in inputs]) if inputs else empty_findings()


def verdict(judged: pl.DataFrame, data_docs_index: Path | None = None) -> CheckReport:
    """The gate's verdict from the judged findings alone; the Data Docs are those given, if any."""
    return CheckReport(
        findings=judged.select(list(FINDINGS_SCHEMA)),
        data_docs_index=data_docs_index,
        validation_pages=[],
        missing_pages=[],
    )


def run_checks(
    inputs: Sequence[SuiteInput],
    gx_root: Path,
    docs_dir: Path,
    run_name: str,
    docs_validation_limit: int = 300,
) -> CheckReport:
    """Judge every input, have GX check the verdict, store its result, build the Data Docs.

    Returns the findings (schema :data:`CHECK_RESULTS` without ``run_id``) and the
    Data Docs pages of this run, checked to exist on disk. (The check stage judges with
    :func:`judge_all` and leaves :func:`render` to the docs stage when the gate passes.)
    """
    return render(judge_all(inputs), gx_root, docs_dir, run_name, docs_validation_limit)


#: a run id's leading UTC timestamp (:func:`meterlake.pipeline.new_run_id`)
_RUN_ID_TIME = re.compile(r"(\d{8}T\d{6})Z")


def run_time_of(run_name: str, now: dt.datetime | None = None) -> dt.datetime:
    """The UTC start a run id begins with, else ``now``.

    >>> run_time_of("20261207T073309Z-9802ad")
    datetime.datetime(2026, 12, 7, 7, 33, 9, tzinfo=datetime.timezone.utc)
    """
    if found := _RUN_ID_TIME.match(run_name):
        return dt.datetime.strptime(found[1], "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
    return now or dt.datetime.now(dt.UTC)


def gx_run_id(gx: types.ModuleType, run_name: str) -> Any:
    """GX's identifier of a run: named ``run-<run>``, filed under the run's start.

    GX reads a time out of every run name with dateutil (to default the run time, and
    again to title the page), and dateutil takes some run ids for a time: it reads
    ``20261207T073309Z-9802ad`` as 07:33 at an offset of 98 hours ("ad" as anno Domini),
    on which GX then fails (about 1 run id in 1,500). Behind ``run-`` no name parses.
    """
    return gx.RunIdentifier(run_name=f"run-{run_name}", run_time=run_time_of(run_name))


def render(
    judged: pl.DataFrame,
    gx_root: Path,
    docs_dir: Path,
    run_name: str,
    docs_validation_limit: int = 300,
) -> CheckReport:
    """Have GX check the judged findings (:func:`judge_all`), store its result and build
    the run's Data Docs page; raise :class:`CheckError` when GX disagrees with the verdict.

    Imports GX (seconds of CPU in a fresh process): the gate's verdict does not wait for it.
    """
    findings = judged.select(list(FINDINGS_SCHEMA))

    gx = import_gx()
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    prepared = _PREPARED.pop(_prepared_key(gx_root, docs_dir, docs_validation_limit), None)
    context, checkpoint, changed = prepared or _open_gate(gx_root, docs_dir, docs_validation_limit)
    frame = _to_pandas(html_safe(gate_frame(judged)))
    result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=gx_run_id(gx, run_name))
    result_ids = list(result.run_results)
    failed = set().union(*(_gx_failures(vr) for vr in result.run_results.values()))
    ours = set(
        judged.filter(~pl.col("success"))
        .select(pl.concat_str("layer", pl.lit("/"), "table"), "partition", "rule")
        .iter_rows()
    )
    if failed != ours:
        diff = sorted(failed ^ ours)
        raise CheckError(
            f"Great Expectations and the gate disagree on {len(diff)} finding(s), e.g. {' '.join(diff[0])}"
        )

    # the run's validation page, the index, and the suite's page when it changed or was never built
    page = Path(docs_dir, "expectations", *GATE.split(".")).with_suffix(".html")
    ids = result_ids + ([ExpectationSuiteIdentifier(name=GATE)] if changed or not page.exists() else [])
    urls = context.build_data_docs(site_names=[SITE_NAME], resource_identifiers=ids)
    index = _path(urls[SITE_NAME])
    make_offline(Path(docs_dir))  # the pages load nothing from the network
    pages: list[Path] = []
    missing = [] if index.exists() else [str(index)]
    for vr_id in result_ids:
        for site in context.get_docs_sites_urls(resource_identifier=vr_id, site_name=SITE_NAME, only_if_exists=False):
            page = _path(site["site_url"])
            if page.exists():
                pages.append(page)
            else:
                missing.append(str(page))
    return CheckReport(findings=findings, data_docs_index=index, validation_pages=pages, missing_pages=missing)


#: the GX context and the gate's checkpoint opened ahead (:func:`prepare`), by where they
#: render: taken by the next :func:`render` there
_PREPARED: dict[tuple[str, str, int], tuple[Any, Any, bool]] = {}


def _prepared_key(gx_root: Path, docs_dir: Path, docs_validation_limit: int) -> tuple[str, str, int]:
    return (str(Path(gx_root).resolve()), str(Path(docs_dir).resolve()), docs_validation_limit)


def _open_gate(gx_root: Path, docs_dir: Path, docs_validation_limit: int) -> tuple[Any, Any, bool]:
    """The file context, the gate's checkpoint and whether it was (re)stored."""
    context = open_context(gx_root, docs_dir, docs_validation_limit)
    checkpoint, changed = _checkpoint(context, GATE, gate_suite(), INDEX_COLUMNS)
    return context, checkpoint, changed


def prepare(gx_root: Path, docs_dir: Path, docs_validation_limit: int = 300) -> None:
    """Open the file context and store the gate's suite and checkpoint now (a fresh lake's
    context is written and read back twice, and its suite, validation definition and
    checkpoint stored: ~0.5 s of CPU), for the next :func:`render` with the same arguments
    in this process: the docs helper does it while it waits for the run's first stages,
    off the path from publish to the run's end. What it writes is what that render would
    have written first; only the context's objects are kept, the run's result is not.
    It also compiles the Data Docs page templates (:func:`~meterlake.checks.gx_views.compile_templates`),
    which the render's pages then load compiled."""
    _PREPARED[_prepared_key(gx_root, docs_dir, docs_validation_limit)] = _open_gate(
        gx_root, docs_dir, docs_validation_limit
    )
    from .gx_views import compile_templates

    compile_templates()  # the page templates the render then loads compiled


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
