"""Built-in reporters: Markdown, a self-contained HTML page, CSV and JSON tables, PNG plots."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import TYPE_CHECKING

from harness import Reporter, atomic_write, hookimpl

if TYPE_CHECKING:
    from harness import Report


def write_markdown(report: Report, out: Path) -> list[Path]:
    from harness import markdown_table, sections

    parts = ["# Comparison report", "", "Computed from the trial records of: " + ", ".join(report.sources), ""]
    for title, df in sections(report):
        parts += [f"## {title}", "", markdown_table(df), ""]
    parts += [f"![{name}](plots/{name})" for name in report.figures()]
    path = out / "report.md"
    atomic_write(path, ("\n".join(parts) + "\n").encode())
    return [path]


def write_html(report: Report, out: Path) -> list[Path]:
    from harness import sections

    body = [
        f"<h1>Comparison report</h1><p>Computed from the trial records of: {html.escape(', '.join(report.sources))}</p>"
    ]
    for title, df in sections(report):
        df = df.reset_index() if df.index.name else df  # the row label as a first column, one header row
        table = df.to_html(index=False, border=0, classes="t", escape=True)
        body.append(f"<h2>{html.escape(title)}</h2>{table}")
    for name, png in report.figures().items():
        data = base64.b64encode(png).decode()
        body.append(f'<h2>{html.escape(name)}</h2><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">')
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1400px}table.t{border-collapse:collapse;margin:1em 0}"
        "table.t td,table.t th{border:1px solid #ccc;padding:3px 8px;text-align:right}img{max-width:100%}"
    )
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>cmi-harness report</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )
    path = out / "report.html"
    atomic_write(path, page.encode())
    return [path]


def write_csv(report: Report, out: Path) -> list[Path]:
    paths = []
    for name, df in report.tables.items():
        path = out / "tables" / f"{name}.csv"
        atomic_write(path, df.to_csv(index=False).encode())
        paths.append(path)
    return paths


def write_json(report: Report, out: Path) -> list[Path]:
    doc = {
        "sources": report.sources,
        "tables": {name: json.loads(df.to_json(orient="records")) for name, df in report.tables.items()},
    }
    path = out / "report.json"
    atomic_write(path, (json.dumps(doc, indent=1) + "\n").encode())
    return [path]


def write_png(report: Report, out: Path) -> list[Path]:
    paths = []
    for name, png in report.figures().items():
        atomic_write(out / "plots" / name, png)
        paths.append(out / "plots" / name)
    return paths


@hookimpl
def harness_reporters():
    return [
        Reporter("markdown", "report.md: every table, plots linked", write_markdown),
        Reporter("html", "report.html: one self-contained page, tables and embedded plots", write_html),
        Reporter("csv", "tables/*.csv: each table, numeric, long form", write_csv),
        Reporter("json", "report.json: every table, numeric", write_json),
        Reporter("png", "plots/*.png: metric vs NCMI, per-task deltas, training curves", write_png),
    ]
