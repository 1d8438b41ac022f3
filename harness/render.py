"""Text renderings of a Report shared by the terminal and the file reporters (plugins/reporters.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from rich.table import Table

from harness import reference
from harness.grouping import ALPHA
from harness.report import Report
from harness.significance import format_p

CHANCE_NOTE = (
    "chance: the best score of a constant prediction on that dev set (majority class for accuracy, "
    "always-positive for F1, 0 for MCC). 'k/n above chance': only k of n seeds beat it beyond dev-sampling "
    "noise (one-sided paired bootstrap, 95%); a task counts in 'better on k of n' only where more than half "
    "of each arm's seeds did."
)
TEST_NOTE = (
    "Seed-aware test (harness.significance): seeds and dev examples as crossed random factors; paired by "
    "seed when both arms ran the same seeds; the seed variance never below what each seed's dev-example noise "
    "forces, and no interval narrower than one dev example (*: a floor set it); t interval, 95%, unadjusted "
    f"for the several tasks; p also Holm-adjusted over each comparison's tasks (α = {ALPHA}). 'equivalence': "
    "two one-sided tests against ±margin; 'detectable': the difference the test finds with 80% power."
)
MANIPULATION_NOTE = (
    "Manipulation check (harness.manipulation): each CMI arm's dev CMI, in the space it shapes, as a ratio to "
    "its own seed's control (for a distillation student: its teacher's CMI against the control teacher's); "
    "it holds when CMI moved at least 10% the intended way. Where it fails the objective was not applied, "
    "whatever the metric says: the task is left out of 'better on k of n'."
)


def _significance_view(sig: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "setting": sig["suite"] + " / " + sig["model"],
            "task": sig["row"],
            "comparison": sig["objective"] + " − " + sig["baseline"],
            "Δ": sig["delta"].map(lambda v: f"{v:+.2f}"),
            "95% interval, unadjusted": [
                f"[{a:+.2f}, {b:+.2f}]{'*' if f else ''}"
                for a, b, f in zip(sig["ci_low"], sig["ci_high"], sig["floored"], strict=True)
            ],
            "p": sig["p_value"].map(format_p),
            "p (Holm)": sig["p_holm"].map(format_p),
            "equivalence": sig["equivalence"],
            "detectable": sig["mde"].map(lambda v: f"±{v:.2f}"),
            "seeds": sig["seeds"] + " (" + sig["design"] + ")",
            "note": sig["note"],
        }
    )


def _manipulation_view(m: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "setting": m["suite"] + " / " + m["model"],
            "task": m["task"],
            "arm": m["objective"],
            "target": m["target"],
            "control": m["control"],
            "CMI ratio, mean [min, max] over seeds": [
                "—" if n == 0 else f"×{r:.3f} [{lo:.3f}, {hi:.3f}] (n={n})"
                for r, lo, hi, n in zip(m["ratio"], m["ratio_min"], m["ratio_max"], m["seeds"], strict=True)
            ],
            "check": ["holds" if h else "FAILS: " + note for h, note in zip(m["holds"], m["note"], strict=True)],
        }
    )


def _teachers_view(t: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "setting": t["suite"] + " / " + t["model"],
            "task": t["task"],
            "student": t["objective"],
            "teacher": t["teacher"] + " (" + t["teacher_model"] + ")",
            "teacher dev": [
                f"{m}: {a:.2f} ± {s:.2f} (n={n})" if n > 1 else f"{m}: {a:.2f} (n=1)"
                for m, a, s, n in zip(t["metric"], t["mean"], t["std"], t["n"], strict=True)
            ],
            "teacher CMI": t["cmi"].map(lambda v: f"{v:.4g}"),
            "teacher NCMI": t["ncmi"].map(lambda v: f"{v:.4g}"),
        }
    )


def _cmi_view(c: pd.DataFrame) -> pd.DataFrame:
    c = c.copy()
    for col in ("cmi", "gamma", "ncmi"):
        c[col] = c[col].map(lambda v: f"{v:.4g}")
    return c.rename(columns={"gamma": "Γ"})


def _ncmi_metric_view(c: pd.DataFrame) -> pd.DataFrame:
    c = c.copy()
    c["rho"] = c["rho"].map(lambda v: "—" if np.isnan(v) else f"{v:+.2f}")
    c["p"] = c["p"].map(lambda v: "" if np.isnan(v) else f"{v:.3f}")
    return c.rename(columns={"rho": "ρ within seeds", "n": "trials"})


def sections(report: Report) -> list[tuple[str, pd.DataFrame]]:
    """(title, table) pairs in reading order: the same content in every format."""
    t = report.tables
    out = []
    for suite, model in report.settings():
        title = f"{suite} / {model}: dev results (%), mean ± std over seeds, beside chance"
        out.append((title, report.wide(suite, model)))
    out.append(("Data: what each task trained and was scored on", t["data"]))
    if report.notes:
        out.append(("Notes on the data", pd.DataFrame({"note": report.notes})))
    if not t["manipulation"].empty:
        title = "Manipulation checks, first: did each CMI objective move the CMI it targets?"
        out.append((title, _manipulation_view(t["manipulation"])))
    if not t["wins"].empty:
        out.append(("Comparisons: better on k of n tasks (headline metric)", t["wins"][["summary"]]))
    if not t["significance"].empty:
        title = "Significance: seed-aware test (Δ in points; 95% intervals unadjusted, p also Holm-adjusted)"
        out.append((title, _significance_view(t["significance"])))
    if not t["teachers"].empty:
        out.append(
            ("Distillation teachers, side by side (dev, mean over the students' seeds)", _teachers_view(t["teachers"]))
        )
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
        title = "Dev CMI, Γ and NCMI (means over seeds); space: posterior = softmax(logits), features = the space "
        out.append((title + "a space=features objective optimises", _cmi_view(t["cmi"])))
    if not t["ncmi_metric"].empty:
        title = (
            "Dev NCMI against the dev metric: rank correlation among trials of the same seed, p by permuting "
            "within seeds (descriptive; —: under 3 such trials, or every trial at one value)"
        )
        out.append((title, _ncmi_metric_view(t["ncmi_metric"])))
    bad = t["trials"][t["trials"]["status"] != "completed"]
    out.append(("Trials not completed", bad if not bad.empty else pd.DataFrame({"trial": ["none"]})))
    out.append(
        (
            "Published GLUE dev numbers (other models and scales, not measured here), with the metric behind each",
            t["reference"],
        )
    )
    out.append(("How to read the tables", pd.DataFrame({"note": [CHANCE_NOTE, MANIPULATION_NOTE, TEST_NOTE]})))
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
    """The terminal view, per setting: results beside chance, CMI statistics, the test, k of n;
    then the data caveats, the teachers and the trials not completed."""
    t = report.tables
    out: list = []
    for suite, model in report.settings():

        def here(df: pd.DataFrame, suite=suite, model=model) -> pd.DataFrame:
            return df[(df["suite"] == suite) & (df["model"] == model)]

        wide = report.wide(suite, model).map(lambda c: c.replace(" (n=", " n=").rstrip(")") if "n=" in c else c)
        out.append(_rich(f"{suite} / {model}: dev metric (%), mean ± std over seeds", wide.reset_index()))
        cmi = _cmi_view(here(t["cmi"]))[["task", "objective", "space", "cmi", "Γ", "ncmi"]]
        out.append(_rich("dev CMI, Γ, NCMI (means over seeds)", cmi))
        manip = here(t["manipulation"])
        if not manip.empty:
            out.append(_rich("manipulation checks (read first)", _manipulation_view(manip).drop(columns="setting")))
        sig = here(t["significance"])
        if not sig.empty:
            out.append(_rich("seed-aware test", _significance_view(sig).drop(columns="setting")))
        out += list(here(t["wins"])["summary"])
    out += [CHANCE_NOTE, MANIPULATION_NOTE, TEST_NOTE]
    out.append(_rich("data", t["data"]))
    out += [f"note: {n}" for n in report.notes]
    if not t["teachers"].empty:
        out.append(_rich("distillation teachers", _teachers_view(t["teachers"])))
    bad = t["trials"][t["trials"]["status"] != "completed"]
    if not bad.empty:
        out.append(_rich("trials not completed", bad[["task", "objective", "seed", "status", "reason"]]))
    out.append(f"published numbers: {reference.SANH}; {reference.RUN_GLUE} (see the report's reference table)")
    return out
