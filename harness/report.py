"""The comparison report, computed from trial records (and their stored dev predictions) alone:
``build`` reads the runs (harness.runs) and assembles the tables, the comparisons coming from
harness.comparison, the CMI tables from harness.cmi_tables, the grouping from harness.grouping.

Trials are grouped by *arm*: the objective with its non-default hyper-parameters (records
before schema 2: the objective), so runs with different settings are never averaged together.
Tables (pandas, long form, numeric; every reporter renders these):

* ``results``: per setting (suite, model), row (task, dev split, metric) and arm: mean, std
  (sample, ddof=1) and n over seeds; plus average rows over tasks, with and without WNLI,
  where a task's score is the mean of its metrics (as GLUE scores MRPC/QQP).
* ``chance``: per task, dev split and metric, the best score of a constant prediction
  (harness.chance); ``learned``: per setting, task and arm, how many seeds cleared it.
* ``deltas``: per comparison (arm vs each baseline it declares in ``compare_to``, same
  setting) and row: the mean difference.
* ``significance``: per comparison and task, the seed-aware test of harness.significance on
  the headline metric of the main dev split, with Holm-adjusted p over the comparison's tasks.
* ``wins``: per comparison, "better on k of n tasks, significant on j", counting only tasks
  where both arms learned; the tasks left out are named.
* ``teachers``: for distillation students, their teachers' dev metric and CMI side by side.
* ``data``: per task, the training rows used out of how many, each dev split's provenance,
  and what the task's score averages.
* ``cmi`` / ``cmi_trials``: dev CMI, Gamma, NCMI of the class posterior and, for objectives
  that shape another distribution, of that one (``space``).
* ``manipulation``: per CMI arm and task, whether its objective moved the dev CMI it targets
  (harness.manipulation); a failed check leaves the task out of ``wins``.
* ``ncmi_metric``: per setting, task and space, the within-seed rank correlation between dev NCMI
  and the dev metric, with a permutation p over trials of the same seed (descriptive, not a cause).
* ``trials``: every trial with status and, for failed or skipped ones, the reason.
* ``reference``: published GLUE dev numbers with the metric behind each (harness.reference).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness import chance, manipulation, reference, significance
from harness.cmi_tables import cmi_table, cmi_trials, ncmi_metric
from harness.comparison import comparisons, deltas_table, significance_table, wins
from harness.grouping import KEY, NO_WNLI, SETTING, arm, completed, key_of, row_label
from harness.metrics import GLUE_METRICS
from harness.record import TrialRecord
from harness.results import read_predictions
from harness.runs import check_comparable, load_records


@dataclass
class Report:
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # the run directories it was computed from
    notes: list[str] = field(default_factory=list)  # the runs' notes about their data
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
        """The results of a setting as text: rows x arms, cells 'mean ± std (n)', a chance column,
        and on headline rows how many seeds cleared chance when not all did."""
        res = self.tables["results"]
        res = res[(res["suite"] == suite) & (res["model"] == model)]
        objectives = sorted(res["objective"].unique(), key=lambda o: (o != "ce", o))
        rows = list(dict.fromkeys(res["row"]))
        out = pd.DataFrame("", index=pd.Index(rows, name="task"), columns=objectives)
        learned = self.tables["learned"]
        learned = learned[(learned["suite"] == suite) & (learned["model"] == model)]
        learned = learned.set_index(["task", "objective"])
        for r in res.itertuples():
            if r.kind == "average":
                out.loc[r.row, r.objective] = f"{r.mean:.2f} ({r.n} task{'s' if r.n != 1 else ''})"
                continue
            cell = f"{r.mean:.2f} ± {r.std:.2f} (n={r.n}" if r.n > 1 else f"{r.mean:.2f} (n=1"
            if r.headline and (r.task, r.objective) in learned.index:
                got = learned.loc[(r.task, r.objective)]
                if got["seeds_learned"] < got["n"]:
                    cell += f", {got['seeds_learned']}/{got['n']} above chance"
            out.loc[r.row, r.objective] = cell + ")"
        ch = self.tables["chance"]
        ch = ch[ch["suite"] == suite].drop_duplicates("row").set_index("row")["chance"]
        out.insert(0, "chance", [f"{ch[row]:.2f}" if row in ch.index else "" for row in rows])
        published = reference.beside(model)
        if published:  # the measured setting is one of the paper's: show its figure beside
            heads = res[res["headline"]].drop_duplicates("row").set_index("row")["task"]
            out[f"published ({reference.SANH.split(':')[0]})"] = [
                f"{published[heads[row]][0]:.1f}" if row in heads.index and heads[row] in published else ""
                for row in rows
            ]
        return out


def score_frame(records: list[TrialRecord]) -> pd.DataFrame:
    """One row per (completed trial, dev split, GLUE metric)."""
    rows = []
    for r in completed(records):
        for i, (split, m) in enumerate((r.final or {}).items()):
            for metric in (k for k in m if k in GLUE_METRICS):
                rows.append(
                    {
                        **key_of(r),
                        "split": split,
                        "metric": metric,
                        "row": row_label(r.config.task, split, metric),
                        "value": 100 * m[metric],
                        "headline": i == 0 and metric == r.primary_metric,
                    }
                )
    cols = [*SETTING, "task", "split", "metric", "row", "objective", "seed", "value", "headline"]
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


def chance_and_learned(records: list[TrialRecord], preds: dict[str, dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The chance level of every (task, dev split, metric), and per trial whether it cleared it."""
    levels, checkers, verdicts = [], {}, []
    for r in completed(records):
        c, p = r.config, preds.get(r.trial_id)
        if p is None:
            verdicts.append({**key_of(r), "learned": None})
            continue
        for split, m in (r.final or {}).items():
            if (c.suite, c.task, split) in checkers or split not in p:
                continue
            labels, k = p[split]["labels"], p[split]["probs"].shape[1]
            checkers[(c.suite, c.task, split)] = chance.Checker(labels, k)
            names = r.label_names or [str(i) for i in range(k)]
            for metric in (x for x in m if x in GLUE_METRICS):
                score, cls = chance.level(metric, labels, k)
                levels.append(
                    {
                        "suite": c.suite,
                        "task": c.task,
                        "split": split,
                        "metric": metric,
                        "row": row_label(c.task, split, metric),
                        "chance": 100 * score,
                        "constant": f"always {names[cls]}" if metric != "mcc" else "any constant",
                        "n_examples": len(labels),
                    }
                )
        split = r.headline_split
        check = checkers.get((c.suite, c.task, split))
        ok = check.learned(r.primary_metric or "", p[split]["probs"].argmax(1)) if check else None
        verdicts.append({**key_of(r), "learned": ok})
    cols = ["suite", "task", "split", "metric", "row", "chance", "constant", "n_examples"]
    per_trial = pd.DataFrame(verdicts, columns=[*KEY, "learned"])
    known = per_trial[per_trial["learned"].notna()]
    learned = (
        known.groupby([*SETTING, "task", "objective"], sort=False)
        .agg(seeds_learned=("learned", "sum"), n=("learned", "size"))
        .reset_index()
    )
    learned["seeds_learned"] = learned["seeds_learned"].astype(int)
    learned["learned"] = learned["seeds_learned"] > learned["n"] / 2  # most seeds cleared chance
    return pd.DataFrame(levels, columns=cols), learned


def teachers_table(records: list[TrialRecord]) -> pd.DataFrame:
    """Per student setting, task and arm: its teachers' arm, headline dev metric and CMI (over seeds)."""
    by_id = {r.trial_id: r for r in completed(records)}
    rows = []
    for r in completed(records):
        t = by_id.get(r.config.teacher or "")
        if t is None:
            continue
        m = t.headline
        rows.append(
            {
                **key_of(r),
                "teacher": arm(t),
                "teacher_model": t.config.model,
                "metric": t.primary_metric,
                "value": 100 * t.score(),
                "cmi": m["cmi"],
                "ncmi": m["ncmi"],
            }
        )
    cols = [*SETTING, "task", "objective", "teacher", "teacher_model", "metric", "mean", "std", "cmi", "ncmi", "n"]
    if not rows:
        return pd.DataFrame(columns=cols)
    frame = pd.DataFrame(rows)
    keys = [*SETTING, "task", "objective", "teacher", "teacher_model", "metric"]
    out = frame.groupby(keys, sort=False).agg(
        mean=("value", "mean"), std=("value", "std"), cmi=("cmi", "mean"), ncmi=("ncmi", "mean"), n=("seed", "size")
    )
    return out.reset_index()[cols]


def _rows_text(n: int | None, official: int | None) -> str:
    if n is None:
        return "unknown (record before schema 2)"
    if official is None:
        return f"{n:,} rows (no official size known)"
    return f"{n:,} rows (official)" if n == official else f"{n:,} rows; the official split has {official:,}"


def _provenance(source: dict | None) -> str:
    """What a data copy's PROVENANCE.yaml (harness.provenance) says of one file, for the data table."""
    p = (source or {}).get("provenance")
    if not p:
        return ""
    text = " (official split)" if p["official"] else " (NOT the official split)"
    return text + (f": {p['note']}" if p.get("note") else "")


def data_table(records: list[TrialRecord], results: pd.DataFrame) -> pd.DataFrame:
    """Per suite and task: training rows used of how many, dev splits' provenance, what the score averages."""
    rows, seen = [], set()
    for r in completed(records):
        c = r.config
        if (c.suite, c.task) in seen:
            continue
        seen.add((c.suite, c.task))
        d = r.data or {}  # records before schema 2 say nothing of their data
        official = d.get("official_rows", {})
        used: list[int] = sorted(
            {
                (x.data or {}).get("train_examples")
                for x in completed(records)
                if (x.config.suite, x.config.task) == (c.suite, c.task)
            }
            - {None}  # type: ignore[arg-type]
        )
        available = d.get("train_rows")
        train = f"{' / '.join(f'{u:,}' for u in used) or '?'} used of " + _rows_text(available, official.get("train"))
        if available and official.get("train") and available < official["train"]:
            train += " (a sample of the official train split)"
        sources = d.get("sources") or {}
        train += _provenance(sources.get("train"))
        dev = []
        if d.get("dev_from_train"):
            dev.append(f"{d['dev_from_train']:,} rows held out from the training data (not an official dev split)")
        for split, n in ({} if d.get("dev_from_train") else d.get("dev_examples", {})).items():
            available = d.get("dev_rows", {}).get(split, n)
            part = "" if available == n else f"{n:,} used (a fixed sample) of "
            dev.append(f"{split}: {part}{_rows_text(available, official.get(split))}{_provenance(sources.get(split))}")
        dev += [f"{split}: missing, not evaluated" for split in d.get("missing_splits", [])]
        task_rows = results[(results["suite"] == c.suite) & (results["task"] == c.task)]
        parts = list(dict.fromkeys(task_rows["row"]))
        averages = parts[0] if len(parts) == 1 else "mean of " + " and ".join(parts)
        if d.get("missing_splits"):
            averages += " (" + ", ".join(d["missing_splits"]) + " missing)"
        rows.append({"suite": c.suite, "task": c.task, "train": train, "dev": "; ".join(dev), "task score": averages})
    return pd.DataFrame(rows, columns=["suite", "task", "train", "dev", "task score"])


def trials_table(records: list[TrialRecord]) -> pd.DataFrame:
    rows = [{**key_of(r), "trial_id": r.trial_id, "status": str(r.status), "reason": r.error or ""} for r in records]
    return pd.DataFrame(rows, columns=[*KEY, "trial_id", "status", "reason"])


def curves_table(records: list[TrialRecord]) -> pd.DataFrame:
    rows = []
    for r in completed(records):
        split = r.headline_split
        for e in r.epochs or []:
            rows.append(
                {
                    **key_of(r),
                    "epoch": e["epoch"],
                    "train_loss": e["train_loss"],
                    "dev_metric": 100 * e[split][r.primary_metric],
                }
            )
    return pd.DataFrame(rows, columns=[*KEY, "epoch", "train_loss", "dev_metric"])


def build(
    run_dirs: list[Path],
    supersede: bool = False,
    targets: dict[str, tuple[str, int] | None] | None = None,
    margin: float = significance.MARGIN,
) -> Report:
    """The report of ``run_dirs``; ``targets``: each objective's ``cmi_target`` (from the installed
    plugins: the manipulation checks), ``margin``: the equivalence margin (a fraction)."""
    records, where, notes = load_records(run_dirs, supersede)
    check_comparable(records)
    preds = {}
    for r in completed(records):
        path = where[r.trial_id] / (r.predictions or "")
        if r.predictions and path.is_file():
            preds[r.trial_id] = read_predictions(path)
    scores = score_frame(records)
    results = results_table(scores)
    levels, learned = chance_and_learned(records, preds)
    pairs = comparisons(records)
    deltas = deltas_table(results, pairs)
    sig = significance_table(records, pairs, preds, learned, margin)
    manip = manipulation.checks(records, pairs, targets or {}, learned, arm)
    per_trial = cmi_trials(records)
    tables = {
        "results": results,
        "chance": levels,
        "learned": learned,
        "deltas": deltas,
        "wins": wins(deltas, sig, manip),
        "manipulation": manip,
        "significance": sig,
        "teachers": teachers_table(records),
        "data": data_table(records, results),
        "cmi": cmi_table(per_trial),
        "cmi_trials": per_trial,
        "ncmi_metric": ncmi_metric(per_trial),
        "curves": curves_table(records),
        "trials": trials_table(records),
        "reference": reference.table(),
    }
    return Report(tables, [str(d) for d in run_dirs], notes)
