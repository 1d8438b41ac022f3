"""The end-of-run results table: per task and objective, the headline dev metric and NCMI over seeds."""

from __future__ import annotations

import pandas as pd
from rich.table import Table


def frame(records: list[dict]) -> pd.DataFrame:
    """One row per (completed trial, dev split) with its headline metric, CMI, Gamma, NCMI."""
    rows = []
    for r in records:
        if r.get("status") != "completed":
            continue
        c = r["config"]
        for split, m in r["final"].items():
            rows.append(
                {
                    "task": c["task"] if split in ("validation",) else f"{c['task']} ({split.split('_')[-1]})",
                    "objective": c["objective"],
                    "seed": c["seed"],
                    "metric": r["primary_metric"],
                    "score": m[r["primary_metric"]],
                    "cmi": m["cmi"],
                    "gamma": m["gamma"],
                    "ncmi": m["ncmi"],
                    "samples_per_s": r["train_samples_per_s"],
                }
            )
    return pd.DataFrame(rows)


SHORT = {"accuracy": "acc", "f1": "F1", "mcc": "MCC"}


def table(records: list[dict], title: str = "Dev results (mean ± std over seeds, in %)") -> Table:
    out = Table(title=title)
    for col in ("task", "objective", "n", "dev", "NCMI", "CMI", "Γ"):
        out.add_column(col, justify="left" if col in ("task", "objective") else "right", no_wrap=True)
    df = frame(records)
    if not df.empty:
        stats = df.groupby(["task", "metric", "objective"], sort=True).agg(
            n=("score", "size"),
            mean=("score", "mean"),
            std=("score", "std"),
            ncmi=("ncmi", "mean"),
            cmi=("cmi", "mean"),
            gamma=("gamma", "mean"),
        )
        for (task, metric, obj), s in stats.iterrows():
            spread = f" ± {100 * s['std']:.2f}" if s["n"] > 1 else ""
            out.add_row(
                f"{task} {SHORT.get(metric, metric)}",
                obj,
                str(int(s["n"])),
                f"{100 * s['mean']:.2f}{spread}",
                f"{s['ncmi']:.3g}",
                f"{s['cmi']:.3g}",
                f"{s['gamma']:.3g}",
            )
    failed = [r for r in records if r.get("status") != "completed"]
    if failed:
        out.caption = f"{len(failed)} trial(s) failed: " + "; ".join(
            f"{r['trial_id']}: {r.get('error', '?')}" for r in failed
        )
    return out
