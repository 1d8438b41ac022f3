"""Text renderings of a Report shared by the terminal and the file reporters (plugins/reporters.py)."""

from __future__ import annotations

import pandas as pd
from rich.table import Table

from harness.report import REFERENCE_SOURCE, Report


def sections(report: Report) -> list[tuple[str, pd.DataFrame]]:
    """(title, table) pairs in reading order: the same content in every format."""
    t = report.tables
    out = []
    for suite, model in report.settings():
        out.append((f"{suite} / {model}: dev results (%), mean ± std over seeds", report.wide(suite, model)))
    if not t["wins"].empty:
        out.append(
            (
                "Comparisons: better on k of n tasks (headline metric)",
                t["wins"][["suite", "model", "objective", "baseline", "better", "tasks"]],
            )
        )
    if not t["significance"].empty:
        sig = t["significance"].copy()
        for c in ("delta", "ci_low", "ci_high"):
            sig[c] = sig[c].map(lambda v: f"{v:+.2f}")
        sig["p_value"] = sig["p_value"].map(lambda v: f"{v:.3f}")
        out.append(("Paired bootstrap over dev examples (Δ in points, 95% interval, two-sided p)", sig))
    if not t["deltas"].empty:
        d = t["deltas"].copy()
        d["delta"] = d["delta"].map(lambda v: f"{v:+.2f}")
        out.append(
            (
                "Δ against the baseline, every metric (points)",
                d[["suite", "model", "row", "objective", "baseline", "delta", "n", "n_baseline"]],
            )
        )
    if not t["cmi"].empty:
        c = t["cmi"].copy()
        for col in ("cmi", "gamma", "ncmi"):
            c[col] = c[col].map(lambda v: f"{v:.4g}")
        out.append(("Dev CMI, Γ and NCMI (means over seeds)", c))
    bad = t["trials"][t["trials"]["status"] != "completed"]
    out.append(("Trials not completed", bad if not bad.empty else pd.DataFrame({"trial": ["none"]})))
    ref = t["reference"].pivot(index="task", columns="model", values="score").reset_index()
    out.append((f"Published reference (not measured here): {REFERENCE_SOURCE}", ref))
    return out


def markdown_table(df: pd.DataFrame) -> str:
    df = df.reset_index() if df.index.name else df
    cells = [[str(v) for v in row] for row in df.itertuples(index=False)]
    head = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    return "\n".join(lines)


def _rich(title: str, df: pd.DataFrame) -> Table:
    table = Table(title=title, title_justify="left")
    for col in df.columns:
        table.add_column(str(col), justify="right" if pd.api.types.is_numeric_dtype(df[col]) else "left")
    for row in df.itertuples(index=False):
        table.add_row(*[str(v) for v in row])
    return table


def rich_tables(report: Report) -> list:
    """The terminal view, per setting: results, CMI statistics, comparisons; then trials not completed."""
    t = report.tables
    out: list = []
    for suite, model in report.settings():

        def here(df: pd.DataFrame, suite=suite, model=model) -> pd.DataFrame:
            return df[(df["suite"] == suite) & (df["model"] == model)]

        wide = report.wide(suite, model).map(lambda c: c.replace(" (n=", " n=").rstrip(")") if "n=" in c else c)
        out.append(_rich(f"{suite} / {model}: dev metric (%), mean ± std over seeds", wide.reset_index()))
        cmi = here(t["cmi"])[["task", "objective", "cmi", "gamma", "ncmi"]].copy()
        for col in ("cmi", "gamma", "ncmi"):
            cmi[col] = cmi[col].map(lambda v: f"{v:.4g}")
        out.append(_rich("dev CMI, Γ, NCMI (means over seeds)", cmi.rename(columns={"gamma": "Γ"})))
        sig = here(t["significance"])
        if not sig.empty:
            view = pd.DataFrame(
                {
                    "task": sig["row"],
                    "comparison": sig["objective"] + " − " + sig["baseline"],
                    "Δ": sig["delta"].map(lambda v: f"{v:+.2f}"),
                    "95% interval": [
                        f"[{a:+.2f}, {b:+.2f}]" for a, b in zip(sig["ci_low"], sig["ci_high"], strict=True)
                    ],
                    "p": sig["p_value"].map(lambda v: f"{v:.3f}"),
                }
            )
            out.append(_rich("paired bootstrap over dev examples", view))
        out += list(here(t["wins"])["summary"])
    bad = t["trials"][t["trials"]["status"] != "completed"]
    if not bad.empty:
        out.append(_rich("trials not completed", bad[["task", "objective", "seed", "status", "reason"]]))
    return out
