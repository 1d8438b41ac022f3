"""The comparison report, computed from trial records (and their stored dev predictions) alone.

Tables (pandas, long form, numeric; every reporter renders these):

* ``results``: per setting (suite, model), row (task, dev split, metric) and objective:
  mean, std (sample, ddof=1) and n over seeds; plus average rows over tasks, with and
  without WNLI, where a task's score is the mean of its metrics (as GLUE scores MRPC/QQP).
* ``deltas``: per comparison (objective vs its baseline on the same setting, as the
  objective declares in ``compare_to``) and row: mean difference, and a summary line
  "better on k of n tasks" on each task's headline metric.
* ``significance``: paired bootstrap (harness.bootstrap) per task and comparison on the
  headline metric of the main dev split.
* ``cmi``: dev CMI, Gamma, NCMI per setting, task and objective (means over seeds).
* ``trials``: every trial with status and, for failed or skipped ones, the reason.
* ``reference``: published GLUE dev numbers (DistilBERT paper, Table 1), labelled with source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness import bootstrap
from harness.metrics import GLUE_METRICS
from harness.results import read_predictions

SHORT = {"accuracy": "acc", "f1": "F1", "mcc": "MCC"}
SPLIT = {"validation": "", "validation_matched": "m", "validation_mismatched": "mm"}
SETTING = ["suite", "model"]
NO_WNLI = "wnli"

REFERENCE_SOURCE = "Sanh et al. 2019 (DistilBERT), Table 1: GLUE dev, medians of 5 runs"
REFERENCE = {  # model -> task -> score (%): CoLA MCC, MRPC F1, QQP acc, others accuracy (MNLI matched)
    "bert-base": {
        "cola": 56.3,
        "mnli": 86.7,
        "mrpc": 88.6,
        "qnli": 91.8,
        "qqp": 89.6,
        "rte": 69.3,
        "sst2": 92.7,
        "wnli": 53.5,
    },
    "distilbert-base": {
        "cola": 51.3,
        "mnli": 82.2,
        "mrpc": 87.5,
        "qnli": 89.2,
        "qqp": 88.5,
        "rte": 59.9,
        "sst2": 91.3,
        "wnli": 56.3,
    },
}


@dataclass(frozen=True)
class Reporter:
    """An output format, registered by a plugin's ``harness_reporters`` hook."""

    name: str
    description: str
    write: Callable[[Report, Path], list[Path]]  # (report, output directory) -> files written


@dataclass
class Report:
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # the run directories it was computed from
    _figures: dict[str, bytes] | None = None

    def figures(self) -> dict[str, bytes]:
        """PNG plots by file name, rendered once (harness.plots)."""
        if self._figures is None:
            from harness.plots import render

            self._figures = render(self)
        return self._figures

    def settings(self) -> list[tuple[str, str]]:
        res = self.tables["results"]
        return list(dict.fromkeys(zip(res["suite"], res["model"], strict=True)))

    def wide(self, suite: str, model: str) -> pd.DataFrame:
        """The results table of a setting as text: rows x objectives, cells 'mean ± std (n)'."""
        res = self.tables["results"]
        res = res[(res["suite"] == suite) & (res["model"] == model)]
        objectives = sorted(res["objective"].unique(), key=lambda o: (o != "ce", o))
        rows = list(dict.fromkeys(res["row"]))
        out = pd.DataFrame("", index=pd.Index(rows, name="task"), columns=objectives)
        for r in res.itertuples():
            if r.kind == "average":
                out.loc[r.row, r.objective] = f"{r.mean:.2f} ({r.n} tasks)"
            elif r.n > 1:
                out.loc[r.row, r.objective] = f"{r.mean:.2f} ± {r.std:.2f} (n={r.n})"
            else:
                out.loc[r.row, r.objective] = f"{r.mean:.2f} (n=1)"
        if model in REFERENCE:  # the measured setting matches a published one: show it beside
            heads = res[res["headline"]].drop_duplicates("row").set_index("row")["task"]
            published = [REFERENCE[model].get(heads.get(row, ""), None) for row in rows]
            out[f"published ({REFERENCE_SOURCE.split(':')[0]})"] = [f"{v:.1f}" if v else "" for v in published]
        return out


def _row(task: str, split: str, metric: str) -> str:
    return " ".join(x for x in (task, SPLIT.get(split, split), SHORT.get(metric, metric)) if x)


def score_frame(records: list[dict]) -> pd.DataFrame:
    """One row per (completed trial, dev split, GLUE metric)."""
    rows = []
    for r in records:
        if r.get("status") != "completed":
            continue
        c = r["config"]
        for i, (split, m) in enumerate(r["final"].items()):
            for metric in (k for k in m if k in GLUE_METRICS):
                rows.append(
                    {
                        "suite": c["suite"],
                        "model": c["model"],
                        "task": c["task"],
                        "split": split,
                        "metric": metric,
                        "row": _row(c["task"], split, metric),
                        "objective": c["objective"],
                        "seed": c["seed"],
                        "value": 100 * m[metric],
                        "headline": i == 0 and metric == r["primary_metric"],
                    }
                )
    cols = ["suite", "model", "task", "split", "metric", "row", "objective", "seed", "value", "headline"]
    return pd.DataFrame(rows, columns=cols)


def results_table(scores: pd.DataFrame) -> pd.DataFrame:
    keys = [*SETTING, "task", "row", "objective"]
    per_row = (
        scores.groupby(keys, sort=False)
        .agg(mean=("value", "mean"), std=("value", "std"), n=("value", "size"), headline=("headline", "first"))
        .reset_index()
    )
    per_row["kind"] = "task"
    task_score = scores.groupby([*SETTING, "task", "objective", "seed"], sort=False)["value"].mean().reset_index()
    averages = []
    for label, keep in (("average", lambda t: t), ("average (no WNLI)", lambda t: t[t["task"] != NO_WNLI])):
        sub = keep(task_score)
        if sub.empty:
            continue
        per_task = sub.groupby([*SETTING, "objective", "task"])["value"].mean().reset_index()
        avg = per_task.groupby([*SETTING, "objective"]).agg(mean=("value", "mean"), n=("task", "nunique"))
        avg = avg.reset_index().assign(task="", row=label, std=np.nan, kind="average", headline=False)
        averages.append(avg)
    return pd.concat([per_row, *averages], ignore_index=True)[[*keys, "kind", "headline", "mean", "std", "n"]]


def comparisons(records: list[dict]) -> list[tuple[str, str, str, str]]:
    """(suite, model, objective, baseline) for every declared baseline present in the same setting."""
    present = {(r["config"]["suite"], r["config"]["model"], r["config"]["objective"]) for r in records}
    found = set()
    for r in records:
        c = r["config"]
        # records written before `compare_to` existed judged every objective against ce
        for base in r.get("compare_to", [] if c["objective"] == "ce" else ["ce"]):
            if (c["suite"], c["model"], base) in present:
                found.add((c["suite"], c["model"], c["objective"], base))
    return sorted(found)


def deltas_table(results: pd.DataFrame, pairs) -> pd.DataFrame:
    rows = []
    task_rows = results[results["kind"] == "task"]
    for suite, model, obj, base in pairs:
        here = task_rows[(task_rows["suite"] == suite) & (task_rows["model"] == model)]
        a = here[here["objective"] == obj].set_index("row")
        b = here[here["objective"] == base].set_index("row")
        for row in a.index.intersection(b.index):
            rows.append(
                {
                    "suite": suite,
                    "model": model,
                    "objective": obj,
                    "baseline": base,
                    "row": row,
                    "task": a.loc[row, "task"],
                    "headline": bool(a.loc[row, "headline"]),
                    "delta": a.loc[row, "mean"] - b.loc[row, "mean"],
                    "n": int(a.loc[row, "n"]),
                    "n_baseline": int(b.loc[row, "n"]),
                }
            )
    return pd.DataFrame(
        rows, columns=["suite", "model", "objective", "baseline", "row", "task", "headline", "delta", "n", "n_baseline"]
    )


def wins(deltas: pd.DataFrame) -> pd.DataFrame:
    """Per comparison: on how many tasks the objective beats its baseline on the headline metric."""
    columns = [*SETTING, "objective", "baseline", "better", "tasks", "summary"]
    head = deltas[deltas["headline"].astype(bool)]
    if head.empty:
        return pd.DataFrame(columns=columns)
    out = (
        head.groupby([*SETTING, "objective", "baseline"])
        .agg(better=("delta", lambda d: int((d > 0).sum())), tasks=("delta", "size"))
        .reset_index()
    )
    out["summary"] = [
        f"{r.objective} better than {r.baseline} on {r.better} of {r.tasks} tasks" for r in out.itertuples()
    ]
    return out[columns]


def significance_table(records: list[dict], pairs, trial_dirs: dict[str, Path]) -> pd.DataFrame:
    rows = []
    for suite, model, obj, base in pairs:
        by_task: dict[str, dict[str, list]] = {}
        for r in records:
            c = r["config"]
            if r.get("status") != "completed" or (c["suite"], c["model"]) != (suite, model):
                continue
            if c["objective"] in (obj, base):
                by_task.setdefault(c["task"], {}).setdefault(c["objective"], []).append(r)
        for task, sides in sorted(by_task.items()):
            if set(sides) != {obj, base}:
                continue
            first = sides[obj][0]
            split, metric = next(iter(first["final"])), first["primary_metric"]
            preds = {}
            for name, recs in sides.items():
                loaded = [read_predictions(trial_dirs[r["trial_id"]] / r["predictions"])[split] for r in recs]
                preds[name] = loaded
            labels = preds[obj][0]["labels"]
            res = bootstrap.paired(
                metric, labels, [p["probs"].argmax(1) for p in preds[obj]], [p["probs"].argmax(1) for p in preds[base]]
            )
            rows.append(
                {
                    "suite": suite,
                    "model": model,
                    "objective": obj,
                    "baseline": base,
                    "task": task,
                    "row": _row(task, split, metric),
                    "delta": 100 * res["delta"],
                    "ci_low": 100 * res["ci_low"],
                    "ci_high": 100 * res["ci_high"],
                    "p_value": res["p_value"],
                    "n_examples": len(labels),
                    "seeds": f"{len(preds[obj])} vs {len(preds[base])}",
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "suite",
            "model",
            "objective",
            "baseline",
            "task",
            "row",
            "delta",
            "ci_low",
            "ci_high",
            "p_value",
            "n_examples",
            "seeds",
        ],
    )


def cmi_trials(records: list[dict]) -> pd.DataFrame:
    """Per completed trial: headline dev metric (%), CMI, Gamma, NCMI on the main dev split."""
    rows = []
    for r in records:
        if r.get("status") != "completed":
            continue
        c = r["config"]
        split, m = next(iter(r["final"].items()))
        rows.append(
            {
                **{k: c[k] for k in (*SETTING, "task", "objective", "seed")},
                "metric": 100 * m[r["primary_metric"]],
                "cmi": m["cmi"],
                "gamma": m["gamma"],
                "ncmi": m["ncmi"],
            }
        )
    return pd.DataFrame(rows, columns=[*SETTING, "task", "objective", "seed", "metric", "cmi", "gamma", "ncmi"])


def cmi_table(per_trial: pd.DataFrame) -> pd.DataFrame:
    """Means over seeds of CMI, Gamma and NCMI per setting, task and objective."""
    return (
        per_trial.groupby([*SETTING, "task", "objective"], sort=False)
        .agg(cmi=("cmi", "mean"), gamma=("gamma", "mean"), ncmi=("ncmi", "mean"), n=("seed", "size"))
        .reset_index()
    )


def trials_table(records: list[dict]) -> pd.DataFrame:
    rows = [
        {
            **{k: r["config"][k] for k in (*SETTING, "task", "objective", "seed")},
            "trial_id": r["trial_id"],
            "status": r.get("status"),
            "reason": r.get("error", ""),
        }
        for r in records
    ]
    return pd.DataFrame(rows, columns=[*SETTING, "task", "objective", "seed", "trial_id", "status", "reason"])


def reference_table() -> pd.DataFrame:
    rows = [
        {"model": m, "task": t, "score": s, "source": REFERENCE_SOURCE}
        for m, d in REFERENCE.items()
        for t, s in d.items()
    ]
    return pd.DataFrame(rows)


def curves_table(records: list[dict]) -> pd.DataFrame:
    rows = []
    for r in records:
        if r.get("status") != "completed":
            continue
        c = r["config"]
        split = next(iter(r["final"]))
        for e in r["epochs"]:
            rows.append(
                {
                    **{k: c[k] for k in (*SETTING, "task", "objective", "seed")},
                    "epoch": e["epoch"],
                    "train_loss": e["train_loss"],
                    "dev_metric": 100 * e[split][r["primary_metric"]],
                }
            )
    return pd.DataFrame(rows, columns=[*SETTING, "task", "objective", "seed", "epoch", "train_loss", "dev_metric"])


def build(run_dirs: list[Path]) -> Report:
    from harness.results import trial_records

    records, where = [], {}
    for run_dir in run_dirs:
        for r in trial_records(run_dir):
            if r["trial_id"] not in where:  # the same config in two runs counts once
                records.append(r)
                where[r["trial_id"]] = run_dir / "trials" / r["trial_id"]
    records.sort(
        key=lambda r: (
            r["config"]["suite"],
            r["config"]["model"],
            r["config"]["task"],
            r["config"]["objective"],
            r["config"]["seed"],
        )
    )
    scores = score_frame(records)
    results = results_table(scores)
    pairs = comparisons(records)
    deltas = deltas_table(results, pairs)
    per_trial = cmi_trials(records)
    tables = {
        "results": results,
        "deltas": deltas,
        "wins": wins(deltas),
        "significance": significance_table(records, pairs, where),
        "cmi": cmi_table(per_trial),
        "cmi_trials": per_trial,
        "curves": curves_table(records),
        "trials": trials_table(records),
        "reference": reference_table(),
    }
    return Report(tables, [str(d) for d in run_dirs])
