"""The comparison report, computed from trial records (and their stored dev predictions) alone.

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
from harness.config import TRAINING
from harness.errors import HarnessError
from harness.metrics import GLUE_METRICS
from harness.record import SCHEMA, TrialRecord
from harness.results import RECORD, read_json, read_predictions
from harness.rundir import RunDir

SHORT = {"accuracy": "acc", "f1": "F1", "mcc": "MCC"}
SPLIT = {"validation": "", "validation_matched": "m", "validation_mismatched": "mm"}
SETTING = ["suite", "model"]
KEY = [*SETTING, "task", "objective", "seed"]
NO_WNLI = "wnli"
ALPHA = 0.05


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
                out.loc[r.row, r.objective] = f"{r.mean:.2f} ({r.n} tasks)"
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


def arm(r: TrialRecord) -> str:
    return r.arm or r.config.objective  # records before schema 2: the objective


def _row(task: str, split: str, metric: str) -> str:
    return " ".join(x for x in (task, SPLIT.get(split, split), SHORT.get(metric, metric)) if x)


def _key(r: TrialRecord) -> dict:
    c = r.config
    return {"suite": c.suite, "model": c.model, "task": c.task, "objective": arm(r), "seed": c.seed}


def completed(records: list[TrialRecord]) -> list[TrialRecord]:
    return [r for r in records if r.completed]


def score_frame(records: list[TrialRecord]) -> pd.DataFrame:
    """One row per (completed trial, dev split, GLUE metric)."""
    rows = []
    for r in completed(records):
        for i, (split, m) in enumerate(r.final.items()):
            for metric in (k for k in m if k in GLUE_METRICS):
                rows.append(
                    {
                        **_key(r),
                        "split": split,
                        "metric": metric,
                        "row": _row(r.config.task, split, metric),
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
            verdicts.append({**_key(r), "learned": None})
            continue
        for split, m in r.final.items():
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
                        "row": _row(c.task, split, metric),
                        "chance": 100 * score,
                        "constant": f"always {names[cls]}" if metric != "mcc" else "any constant",
                        "n_examples": len(labels),
                    }
                )
        split = r.headline_split
        check = checkers.get((c.suite, c.task, split))
        ok = check.learned(r.primary_metric, p[split]["probs"].argmax(1)) if check else None
        verdicts.append({**_key(r), "learned": ok})
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


def comparisons(records: list[TrialRecord]) -> list[tuple[str, str, str, str]]:
    """(suite, model, arm, baseline) for every declared baseline present in the same setting."""
    present = {(r.config.suite, r.config.model, arm(r)) for r in records}
    found = set()
    for r in records:
        c = r.config
        # records written before `compare_to` existed judged every objective against ce
        bases = r.compare_to if r.compare_to is not None else [] if c.objective == "ce" else ["ce"]
        for base in bases:
            if (c.suite, c.model, base) in present:
                found.add((c.suite, c.model, arm(r), base))
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


def significance_table(
    records: list[TrialRecord],
    pairs,
    preds: dict[str, dict],
    learned: pd.DataFrame,
    margin: float = significance.MARGIN,
) -> pd.DataFrame:
    """Per comparison and task: the seed-aware test (95% intervals unadjusted; p also Holm-adjusted
    over the comparison's tasks), TOST within +-``margin``, the 80%-power detectable effect."""
    ok = learned.set_index([*SETTING, "task", "objective"])["learned"].to_dict()
    rows = []
    for suite, model, obj, base in pairs:
        by_task: dict[str, dict[str, list]] = {}
        for r in completed(records):
            c = r.config
            if (c.suite, c.model) == (suite, model) and arm(r) in (obj, base) and r.trial_id in preds:
                by_task.setdefault(c.task, {}).setdefault(arm(r), []).append(r)
        family = []
        for task, sides in sorted(by_task.items()):
            if set(sides) != {obj, base}:
                continue
            first = sides[obj][0]
            split, metric = first.headline_split, first.primary_metric
            labels = preds[first.trial_id][split]["labels"]
            side = {name: [preds[r.trial_id][split]["probs"].argmax(1) for r in recs] for name, recs in sides.items()}
            seeds = {name: [r.config.seed for r in recs] for name, recs in sides.items()}
            res = significance.compare(metric, labels, side[obj], side[base], seeds[obj], seeds[base], margin=margin)
            both = ok.get((suite, model, task, obj)) and ok.get((suite, model, task, base))
            fewest = min(len(seeds[obj]), len(seeds[base]))
            note = (
                "one seed a side: dev-example resampling only, blind to seed variance"
                if res.design == "examples only"
                else f"fewer than {significance.MIN_SEEDS} seeds a side: too few to estimate seed variance well"
                if fewest < significance.MIN_SEEDS
                else ""
            )
            family.append(
                {
                    "suite": suite,
                    "model": model,
                    "objective": obj,
                    "baseline": base,
                    "task": task,
                    "row": _row(task, split, metric),
                    "delta": 100 * res.delta,
                    "ci_low": 100 * res.ci_low,
                    "ci_high": 100 * res.ci_high,
                    "p_value": res.p_value,
                    "equivalence": significance.equivalence(res, fewest),
                    "p_equivalence": res.p_equivalence,
                    "mde": 100 * res.mde,
                    "resolution": 100 * res.resolution,
                    "floored": res.floored,
                    "design": res.design,
                    "seeds": f"{len(seeds[obj])} vs {len(seeds[base])}",
                    "n_examples": len(labels),
                    "both_learned": bool(both),
                    "note": note if both else "; ".join(filter(None, ["not above chance: left out of k of n", note])),
                }
            )
        for row, adjusted in zip(family, significance.holm([f["p_value"] for f in family]), strict=True):
            row["p_holm"] = adjusted
        rows += family
    cols = [
        *SETTING,
        "objective",
        "baseline",
        "task",
        "row",
        "delta",
        "ci_low",
        "ci_high",
        "p_value",
        "p_holm",
        "equivalence",
        "p_equivalence",
        "mde",
        "resolution",
        "floored",
        "design",
        "seeds",
        "n_examples",
        "both_learned",
        "note",
    ]
    return pd.DataFrame(rows, columns=cols)


def wins(deltas: pd.DataFrame, sig: pd.DataFrame, manip: pd.DataFrame) -> pd.DataFrame:
    """Per comparison: on how many tasks the arm beats its baseline on the headline metric, on how
    many of those significantly (Holm), counting only tasks where both arms learned and the arm's
    manipulation check (harness.manipulation) did not fail; the tasks left out, each with why."""
    columns = [*SETTING, "objective", "baseline", "better", "significant", "worse_significant", "tasks", "left_out"]
    head = deltas[deltas["headline"].astype(bool)]
    failed = {(r.suite, r.model, r.task, r.objective) for r in manip.itertuples() if not r.holds}
    rows = []
    for (suite, model, obj, base), d in head.groupby([*SETTING, "objective", "baseline"], sort=False):
        s = sig[(sig["suite"] == suite) & (sig["model"] == model) & (sig["objective"] == obj)]
        s = s[s["baseline"] == base].set_index("task")
        why = {}
        for t in d["task"]:
            if t not in s.index:
                why[t] = "no test"
            elif not s.loc[t, "both_learned"]:
                why[t] = "an arm not above chance"
            elif (suite, model, t, obj) in failed:
                why[t] = "CMI not moved"
        counted = [t for t in d["task"] if t not in why]
        d = d.set_index("task")
        sig_here = [t for t in counted if s.loc[t, "p_holm"] < ALPHA]
        rows.append(
            {
                "suite": suite,
                "model": model,
                "objective": obj,
                "baseline": base,
                "better": int(sum(d.loc[t, "delta"] > 0 for t in counted)),
                "significant": int(sum(d.loc[t, "delta"] > 0 for t in sig_here)),
                "worse_significant": int(sum(d.loc[t, "delta"] < 0 for t in sig_here)),
                "tasks": len(counted),
                "left_out": ", ".join(f"{t} ({w})" for t, w in why.items()),
            }
        )
    out = pd.DataFrame(rows, columns=columns)
    out["summary"] = [summary(r) for r in out.itertuples()]
    return out


def summary(r) -> str:
    text = (
        f"{r.objective} better than {r.baseline} on {r.better} of {r.tasks} tasks, "
        f"significantly on {r.significant} (seed-aware test, Holm-adjusted p < {ALPHA})"
    )
    if r.worse_significant:
        text += f"; significantly worse on {r.worse_significant}"
    if r.left_out:
        text += f"; left out: {r.left_out}"
    return text


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
                **_key(r),
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
        used = sorted(
            {
                (x.data or {}).get("train_examples")
                for x in completed(records)
                if (x.config.suite, x.config.task) == (c.suite, c.task)
            }
            - {None}
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
            used = "" if available == n else f"{n:,} used (a fixed sample) of "
            dev.append(f"{split}: {used}{_rows_text(available, official.get(split))}{_provenance(sources.get(split))}")
        dev += [f"{split}: missing, not evaluated" for split in d.get("missing_splits", [])]
        task_rows = results[(results["suite"] == c.suite) & (results["task"] == c.task)]
        parts = list(dict.fromkeys(task_rows["row"]))
        averages = parts[0] if len(parts) == 1 else "mean of " + " and ".join(parts)
        if d.get("missing_splits"):
            averages += " (" + ", ".join(d["missing_splits"]) + " missing)"
        rows.append({"suite": c.suite, "task": c.task, "train": train, "dev": "; ".join(dev), "task score": averages})
    return pd.DataFrame(rows, columns=["suite", "task", "train", "dev", "task score"])


SPACES = (("posterior", ""), ("features", "_features"))


def cmi_trials(records: list[TrialRecord]) -> pd.DataFrame:
    """Per completed trial and distribution space: headline dev metric (%), CMI, Gamma, NCMI (main dev split)."""
    rows = []
    for r in completed(records):
        m = r.headline
        for space, suffix in SPACES:
            if f"cmi{suffix}" in m:
                rows.append(
                    {
                        **_key(r),
                        "space": space,
                        "metric": 100 * r.score(),
                        "cmi": m[f"cmi{suffix}"],
                        "gamma": m[f"gamma{suffix}"],
                        "ncmi": m[f"ncmi{suffix}"],
                    }
                )
    return pd.DataFrame(rows, columns=[*KEY, "space", "metric", "cmi", "gamma", "ncmi"])


def cmi_table(per_trial: pd.DataFrame) -> pd.DataFrame:
    """Means over seeds of CMI, Gamma and NCMI per setting, task, arm and space."""
    return (
        per_trial.groupby([*SETTING, "task", "objective", "space"], sort=False)
        .agg(cmi=("cmi", "mean"), gamma=("gamma", "mean"), ncmi=("ncmi", "mean"), n=("seed", "size"))
        .reset_index()
    )


PERMUTATIONS = 2000


def ncmi_metric(per_trial: pd.DataFrame) -> pd.DataFrame:
    """Within-seed rank correlation between dev NCMI and the dev metric over a setting's trials on a
    task: both ranked among the trials of the same seed (ties averaged) and centred per seed, then
    Pearson's r over all trials of seeds with two or more (a Spearman's rho that compares only
    trials sharing a seed, so seed-to-seed differences cannot make it). Its two-sided p permutes
    the metric within seeds (``PERMUTATIONS``, seeded): trials of one seed are not independent of
    each other, seeds are. NaN when fewer than 3 such trials or either is constant."""
    rng = np.random.default_rng(significance.SEED)
    rows = []
    for (suite, model, task, space), g in per_trial.groupby([*SETTING, "task", "space"], sort=False):
        g = g[g.groupby("seed")["seed"].transform("size") >= 2]
        rho = p = np.nan
        if len(g) >= 3 and g["metric"].nunique() > 1 and g["ncmi"].nunique() > 1:
            x = _centred_ranks(g["ncmi"], g["seed"])
            y = _centred_ranks(g["metric"], g["seed"])
            if x.any() and y.any():
                rho = float(x @ y / np.sqrt((x @ x) * (y @ y)))
                blocks = [np.flatnonzero(g["seed"].to_numpy() == s) for s in g["seed"].unique()]
                hits = 0
                for _ in range(PERMUTATIONS):
                    yp = y.copy()
                    for b in blocks:
                        yp[b] = y[rng.permutation(b)]
                    hits += abs(x @ yp / np.sqrt((x @ x) * (yp @ yp))) >= abs(rho) - 1e-12
                p = (1 + hits) / (1 + PERMUTATIONS)
        rows.append(
            {
                "suite": suite,
                "model": model,
                "task": task,
                "space": space,
                "n": len(g),
                "seeds": g["seed"].nunique(),
                "rho": rho,
                "p": p,
            }
        )
    cols = [*SETTING, "task", "space", "n", "seeds", "rho", "p"]
    return pd.DataFrame(rows, columns=cols).astype({"rho": float, "p": float})


def _centred_ranks(values: pd.Series, seeds: pd.Series) -> np.ndarray:
    ranks = values.groupby(seeds.to_numpy()).rank().to_numpy(dtype=float)
    return ranks - pd.Series(ranks).groupby(seeds.to_numpy()).transform("mean").to_numpy()


def trials_table(records: list[TrialRecord]) -> pd.DataFrame:
    rows = [{**_key(r), "trial_id": r.trial_id, "status": str(r.status), "reason": r.error or ""} for r in records]
    return pd.DataFrame(rows, columns=[*KEY, "trial_id", "status", "reason"])


def curves_table(records: list[TrialRecord]) -> pd.DataFrame:
    rows = []
    for r in completed(records):
        split = r.headline_split
        for e in r.epochs:
            rows.append(
                {
                    **_key(r),
                    "epoch": e["epoch"],
                    "train_loss": e["train_loss"],
                    "dev_metric": 100 * e[split][r.primary_metric],
                }
            )
    return pd.DataFrame(rows, columns=[*KEY, "epoch", "train_loss", "dev_metric"])


def load_records(run_dirs: list[Path], supersede: bool = False) -> tuple[list[TrialRecord], dict[str, Path], list[str]]:
    """Every trial record of the runs (a trial in two runs counts once), where each lives, and the
    runs' notes; a record that cannot be read, or is of a newer schema, is refused by path. With
    ``supersede``, a task's trials come from the last run that holds the task (a rerun of it at
    another budget), and a note says which runs' trials of it were left out."""
    records, where, origin, notes = [], {}, {}, []
    for index, run_dir in enumerate(run_dirs):
        notes += [n for n in RunDir(run_dir).notes() if n not in notes]
        for path in sorted((run_dir / "trials").glob(f"*/{RECORD}")):
            try:
                raw = read_json(path)
                newer = isinstance(raw, dict) and raw.get("schema", 1) > SCHEMA
                r, why = (None, "") if newer else (TrialRecord.from_dict(raw), "")
            except ValueError as exc:
                raw, r, why = None, None, f"not valid JSON: {exc}"
            except (KeyError, TypeError) as exc:
                r, why = None, f"it lacks or garbles {exc}"
            if why:
                raise HarnessError(
                    f"{path}: not a trial record ({why}); move it away, or rerun that trial with "
                    f"`harness run --resume {run_dir}`"
                )
            if r is None:
                raise HarnessError(
                    f"{path}: record schema {raw['schema']} is newer than this harness reads ({SCHEMA}); "
                    f"upgrade cmi-harness to report it"
                )
            if r.trial_id not in where:
                records.append(r)
                where[r.trial_id], origin[r.trial_id] = path.parent, index
    if supersede:
        records, superseded = _latest_per_task(records, origin, run_dirs)
        notes += superseded
    records.sort(key=lambda r: tuple(_key(r).values()))
    return records, where, notes


def _latest_per_task(
    records: list[TrialRecord], origin: dict[str, int], run_dirs: list[Path]
) -> tuple[list[TrialRecord], list[str]]:
    """Each task's records from the last of ``run_dirs`` that holds it, and a note per task whose
    trials in earlier runs were left out."""
    runs_of: dict[tuple[str, str], set[int]] = {}
    for r in records:
        runs_of.setdefault((r.config.suite, r.config.task), set()).add(origin[r.trial_id])
    notes = [
        f"{task}: trials from {run_dirs[max(runs)]}, superseding those in "
        f"{', '.join(str(run_dirs[i]) for i in sorted(runs - {max(runs)}))} (--supersede)"
        for (_, task), runs in runs_of.items()
        if len(runs) > 1
    ]
    kept = [r for r in records if origin[r.trial_id] == max(runs_of[r.config.suite, r.config.task])]
    return kept, notes


def check_comparable(records: list[TrialRecord]) -> None:
    """The seeds of one arm must differ only in their seed: runs with other training settings or data
    (merged by ``harness report A B``) are refused, naming two trials and what differs."""
    keys = (*TRAINING, "data_fingerprint")
    first: dict[tuple, TrialRecord] = {}
    for r in completed(records):
        group = tuple(_key(r).values())[:-1]
        seen = first.setdefault(group, r)
        differ = [k for k in keys if getattr(r.config, k) != getattr(seen.config, k)]
        if differ:
            raise HarnessError(
                f"trials {seen.trial_id} and {r.trial_id} ({' '.join(map(str, group))}) differ in "
                f"{', '.join(differ)}, not only in their seed: report those runs separately, or with "
                "--supersede take each task from the last run given that holds it"
            )


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
