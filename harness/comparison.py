"""Comparisons between arms: which pairs are compared (each arm against the baselines it declares in
``compare_to``), the mean deltas, the seed-aware test per task with Holm over a comparison's tasks,
and "better on k of n" counting only tasks where both arms learned and the treatment acted."""

from __future__ import annotations

import pandas as pd

from harness import significance
from harness.grouping import ALPHA, SETTING, arm, completed, row_label
from harness.record import TrialRecord


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
                    "row": row_label(task, split, metric),
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
