"""The data dictionary (数据字典), generated from the table contracts in ``schemas/``.

Every mart, clean table and landing file with each column's type, unit, meaning and
Chinese name (e.g. ``loss_rate`` 线损率), plus the code lists the schema modules
declare (quarantine reasons, uncomputable reasons...). Nothing here is written by
hand: a new schema module appears at the next generation.

* ``docs/data_dictionary.md`` in the repository: ``python -m meterlake.dictionary``
  regenerates it (``--check`` exits 1 when it is stale; a test does the same);
* ``LAKE/reports/data_dictionary.md`` and ``.html`` beside the lake: written by the
  publish stage (:func:`write_dictionary`).
"""

from __future__ import annotations

import argparse
import html
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import polars as pl

from .publish import registry
from .schemas import Table
from .schemas.landing import Landing

#: the repository's copy (editable installs and the source tree)
DOCS_PATH = Path(__file__).resolve().parents[1] / "docs" / "data_dictionary.md"

LAYER_TITLES = {
    "marts": (
        "Marts",
        "分析数据表",
        "analyst-facing tables under `LAKE/marts/`; DuckDB views in `main`, PostgreSQL tables in the reporting schema",
    ),
    "clean": (
        "Clean tables",
        "清洗数据表",
        "validated landing rows under `LAKE/clean/`, with lineage; DuckDB views in schema `clean`",
    ),
}

CONVENTIONS = (
    "Time is local China Standard Time (Asia/Shanghai, UTC+8, no DST); a *date* is a local calendar date, a *month* is `YYYY-MM`.",
    "A 15-minute interval is labelled by its start: slot 1 is 00:00-00:15.",
    "Forward energy is consumption, reverse energy is export.",
    "kWh are primary side (after the CT x PT multiplier) unless the name says `_meter`; money is in yuan (`_yuan`); unit `1` is a fraction (0.05 = 5%).",
    "Card numbers (卡号) are never published: purchases keep `card_last4` and a keyed token `card_token`.",
    "A lake sharded by org unit (供电单位, `meterlake run --sharded`) holds one lake per unit: every path below "
    "sits under `LAKE/org_id=<unit>/` (e.g. `LAKE/org_id=ORG01/marts/meter_daily/date=<value>/part-0.parquet`), "
    "so every row carries its unit as the Hive key `org_id`; read the whole province with "
    "`LAKE/org_id=*/marts/<table>/**/*.parquet` and Hive partitioning. Ranks (`rank`) are within the unit.",
)


@dataclass(frozen=True)
class CodeList:
    """A module-level ``NAME = {code: meaning}`` declared beside a table."""

    name: str
    codes: dict[str, str]


def type_name(dtype: pl.DataType) -> str:
    """A reader's name for a polars type.

    >>> type_name(pl.Datetime("us"))
    'timestamp'
    >>> type_name(pl.List(pl.String()))
    'list[string]'
    """
    base = dtype.base_type()
    if base is pl.Datetime:
        return "timestamp"
    if base in (pl.List, pl.Array):
        return f"list[{type_name(dtype.inner)}]"  # type: ignore[attr-defined]
    if base is pl.Decimal:
        return f"decimal({dtype.precision}, {dtype.scale})"  # type: ignore[attr-defined]
    return {pl.String: "string", pl.Boolean: "boolean", pl.Date: "date"}.get(base, str(base.__name__).lower())


def _code_lists(module: ModuleType) -> list[CodeList]:
    out = []
    for name, value in vars(module).items():
        if (
            name.isupper()
            and isinstance(value, dict)
            and value
            and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        ):
            out.append(CodeList(name, dict(value)))
    return sorted(out, key=lambda c: c.name)


def collect() -> tuple[list[tuple[Table, list[CodeList]]], list[Landing]]:
    """Every declared table with the code lists of its module, and the landing contracts."""
    codes: dict[tuple[str, str], list[CodeList]] = {}
    for module in registry.schema_modules():
        if module.__name__ == registry.SCHEMA_PACKAGE:
            continue
        lists = _code_lists(module)
        for value in vars(module).values():
            if isinstance(value, Table):
                codes.setdefault((value.layer, value.name), lists)
    return [(t, codes.get((t.layer, t.name), [])) for t in registry.tables()], registry.landings()


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _lake_path(table: Table) -> str:
    part = f"{table.partition_by}=<value>/" if table.partition_by else ""
    return f"LAKE/{table.layer}/{table.name}/{part}part-0.parquet"


def _key(table: Table) -> list[str]:
    cols = [table.partition_by] if table.partition_by else []
    return cols + [k for k in table.key if k not in cols]


def render_markdown() -> str:
    """The whole dictionary as Markdown (deterministic: no dates, sorted tables)."""
    tables, landings = collect()
    lines = [
        "# meterlake data dictionary (数据字典)",
        "",
        "Generated from the table contracts in `schemas/` by `python -m meterlake.dictionary`; "
        "do not edit by hand. The same dictionary is published beside the lake as "
        "`LAKE/reports/data_dictionary.html` and `.md`.",
        "",
        "Conventions:",
        "",
        *[f"- {c}" for c in CONVENTIONS],
        "",
        "## Contents",
        "",
    ]
    for layer, (title, zh, _) in LAYER_TITLES.items():
        members = [t for t, _ in tables if t.layer == layer]
        if members:
            lines.append(f"- {title} ({zh}): " + ", ".join(f"[{t.name}](#{t.layer}-{t.name}) {t.zh}" for t in members))
    lines.append(
        "- Landing files (接入文件): " + ", ".join(f"[{ld.dataset}](#landing-{ld.dataset}) {ld.zh}" for ld in landings)
    )
    lines.append("")
    for layer, (title, zh, blurb) in LAYER_TITLES.items():
        in_layer = [(t, c) for t, c in tables if t.layer == layer]
        if not in_layer:
            continue
        lines += [f"## {title} ({zh})", "", blurb[0].upper() + blurb[1:] + ".", ""]
        for table, code_lists in in_layer:
            lines += _table_md(table, code_lists)
    lines += [
        "## Landing files (接入文件)",
        "",
        "What upstream systems deliver under `LANDING/<dataset>/` (CSV, UTF-8 or GBK, canonical or Chinese headers).",
        "",
    ]
    for landing in landings:
        lines += _landing_md(landing)
    return "\n".join(lines).rstrip() + "\n"


def _table_md(table: Table, code_lists: list[CodeList]) -> list[str]:
    out = [
        f'<a id="{table.layer}-{table.name}"></a>',
        "",
        f"### {table.name} — {table.zh}" if table.zh else f"### {table.name}",
        "",
        _md(table.description[0].upper() + table.description[1:]) + ".",
        "",
        f"- Lake: `{_lake_path(table)}`",
        f"- Partition: `{table.partition_by}`" if table.partition_by else "- Not partitioned",
        f"- Key: `{', '.join(_key(table))}`" if table.key else "- No key",
        "",
        "| column | 中文 | type | unit | nullable | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for c in table.columns:
        meaning = c.description
        if c.codes:
            meaning += "; codes: " + ", ".join(f"`{v}`" for v in c.codes)
        out.append(
            f"| `{c.name}` | {_md(c.zh)} | {type_name(c.dtype)} | {_md(c.unit)} | "
            f"{'yes' if c.nullable else 'no'} | {_md(meaning)} |"
        )
    out.append("")
    for note in table.notes:
        out += [f"> {_md(note)}", ""]
    for cl in code_lists:
        out += [f"`{cl.name}`:", "", "| code | meaning |", "|---|---|"]
        out += [f"| `{k}` | {_md(v)} |" for k, v in cl.codes.items()]
        out.append("")
    return out


def _landing_md(landing: Landing) -> list[str]:
    out = [
        f'<a id="landing-{landing.dataset}"></a>',
        "",
        f"### {landing.dataset} — {landing.zh}",
        "",
        f"- Files: `LANDING/{landing.dataset}/*.csv[.gz]`; key `{', '.join(landing.key)}`; "
        f"clean table [{landing.clean.name}](#clean-{landing.clean.name}) partitioned by `{landing.date_field}`",
        "",
        "| header | 中文 header | type | unit | required | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for f in landing.fields:
        meaning = f.description
        if f.codes:
            meaning += "; codes: " + ", ".join(f"`{v}`" for v in f.codes)
        if f.personal:
            meaning += " (personal data: never stored in clear)"
        out.append(
            f"| `{f.name}` | {_md(f.zh)} | {f.kind} | {_md(f.unit)} | {'yes' if f.required else 'no'} | {_md(meaning)} |"
        )
    out.append("")
    return out


# -- HTML ------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:2rem auto;max-width:1200px;color:#1f2933;padding:0 1rem}
h1{font-size:1.6rem}h2{border-bottom:2px solid #d9e2ec;padding-bottom:.2rem;margin-top:2.5rem}
h3{margin-top:2rem}table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.5rem 0 1rem}
th,td{border:1px solid #d9e2ec;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f4f8}code{background:#f0f4f8;padding:0 .2rem;border-radius:3px}
.meta{color:#52606d;font-size:.9rem}nav a{margin-right:.6rem}
"""


def render_html() -> str:
    """The dictionary as one self-contained HTML page (inline CSS, no scripts)."""
    tables, landings = collect()
    e = html.escape
    body = [
        "<h1>meterlake data dictionary (数据字典)</h1>",
        "<p class=meta>Generated from the table contracts in <code>schemas/</code>.</p>",
        "<ul>" + "".join(f"<li>{_code_html(c)}</li>" for c in CONVENTIONS) + "</ul>",
    ]
    for layer, (title, zh, blurb) in LAYER_TITLES.items():
        members = [(t, c) for t, c in tables if t.layer == layer]
        if not members:
            continue
        body.append(f"<h2>{e(title)} ({e(zh)})</h2><p>{_code_html(blurb)}.</p><nav>")
        body += [f'<a href="#{layer}-{e(t.name)}">{e(t.name)} {e(t.zh)}</a>' for t, _ in members]
        body.append("</nav>")
        for table, code_lists in members:
            body.append(f'<h3 id="{layer}-{e(table.name)}">{e(table.name)} — {e(table.zh)}</h3>')
            body.append(f"<p>{e(table.description)}.</p>")
            key = ", ".join(_key(table)) if table.key else "none"
            body.append(
                f"<p class=meta>Lake: <code>{e(_lake_path(table))}</code> · partition "
                f"<code>{e(table.partition_by or 'none')}</code> · key <code>{e(key)}</code></p>"
            )
            rows = "".join(
                f"<tr><td><code>{e(c.name)}</code></td><td>{e(c.zh)}</td><td>{e(type_name(c.dtype))}</td>"
                f"<td>{e(c.unit)}</td><td>{'yes' if c.nullable else 'no'}</td><td>{e(c.description)}"
                + (f"; codes: {e(', '.join(c.codes))}" if c.codes else "")
                + "</td></tr>"
                for c in table.columns
            )
            body.append(
                "<table><tr><th>column</th><th>中文</th><th>type</th><th>unit</th><th>nullable</th>"
                f"<th>meaning</th></tr>{rows}</table>"
            )
            for cl in code_lists:
                items = "".join(f"<tr><td><code>{e(k)}</code></td><td>{e(v)}</td></tr>" for k, v in cl.codes.items())
                body.append(
                    f"<p><code>{e(cl.name)}</code></p><table><tr><th>code</th><th>meaning</th></tr>{items}</table>"
                )
    body.append("<h2>Landing files (接入文件)</h2>")
    for landing in landings:
        body.append(f'<h3 id="landing-{e(landing.dataset)}">{e(landing.dataset)} — {e(landing.zh)}</h3>')
        rows = "".join(
            f"<tr><td><code>{e(f.name)}</code></td><td>{e(f.zh)}</td><td>{e(f.kind)}</td><td>{e(f.unit)}</td>"
            f"<td>{'yes' if f.required else 'no'}</td><td>{e(f.description)}"
            + (f"; codes: {e(', '.join(f.codes))}" if f.codes else "")
            + (" (personal data: never stored in clear)" if f.personal else "")
            + "</td></tr>"
            for f in landing.fields
        )
        body.append(
            "<table><tr><th>header</th><th>中文 header</th><th>type</th><th>unit</th><th>required</th>"
            f"<th>meaning</th></tr>{rows}</table>"
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>meterlake data dictionary</title>"
        f"<style>{_CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n"
    )


def _code_html(text: str) -> str:
    """Markdown `code` spans of the fixed texts above as <code> (after escaping)."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


# -- writing ---------------------------------------------------------------------
def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def write_dictionary(reports_dir: Path) -> list[Path]:
    """Write ``data_dictionary.md`` and ``.html`` into ``reports_dir`` (``LAKE/reports``)."""
    return [
        _write(Path(reports_dir) / "data_dictionary.md", render_markdown()),
        _write(Path(reports_dir) / "data_dictionary.html", render_html()),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate docs/data_dictionary.md from schemas/.")
    parser.add_argument("--out", type=Path, default=DOCS_PATH, help=f"where to write (default {DOCS_PATH})")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale instead of writing it")
    args = parser.parse_args(argv)
    text = render_markdown()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run `python -m meterlake.dictionary`", file=sys.stderr)
            return 1
        return 0
    _write(args.out, text)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
