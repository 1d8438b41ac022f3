"""Manipulation checks: did a CMI objective move the dev CMI it targets? Read before its effect.

An objective declares ``cmi_target = (who, direction)`` (harness.objective). For an arm of it on
a task, and every seed s it shares with its control,

    R_s = CMI(arm, s) / CMI(control, s)

on the main dev split, in the space the arm shapes (``features`` for ``space=features``, else the
posterior). ``who = "self"``: the trained models' own CMI, the control being the arm's first
baseline (``cmi_min`` against ``ce``). ``who = "teacher"``: the CMI of each side's teacher, the
control being the first baseline that has a teacher (``cmi_max_kd``'s teacher against ``kd``'s,
which trained as long without the CMI term). The check holds when

    direction * (mean_s R_s - 1) >= THRESHOLD (10%)

and, for teachers, the arm's teacher learned (most seeds above chance). An arm whose check fails
did not apply the treatment it names: its comparisons say so first and are left out of
"better on k of n".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.record import TrialRecord

THRESHOLD = 0.10
COLUMNS = [
    "suite",
    "model",
    "task",
    "objective",
    "target",
    "control",
    "ratio",
    "ratio_min",
    "ratio_max",
    "seeds",
    "holds",
    "note",
]


def _space(r: TrialRecord, who: str) -> str:
    return "features" if who == "self" and (r.hparams or {}).get("space") == "features" else "posterior"


def _cmi(r: TrialRecord, space: str) -> float | None:
    value = r.headline.get("cmi" if space == "posterior" else f"cmi_{space}")
    return None if value is None or not np.isfinite(value) else float(value)


def checks(
    records: list[TrialRecord],
    pairs: list[tuple[str, str, str, str]],
    targets: dict[str, tuple[str, int] | None],
    learned: pd.DataFrame,
    arm_of,
) -> pd.DataFrame:
    """One row per (setting, task, arm) whose objective has a ``cmi_target`` (see the module
    docstring). ``pairs``: the report's (suite, model, arm, baseline) comparisons, baselines in
    each arm's ``compare_to`` order; ``arm_of``: a record's arm label; ``learned``: the report's."""
    done = [r for r in records if r.completed]
    by_id = {r.trial_id: r for r in done}
    ok = learned.set_index(["suite", "model", "task", "objective"])["learned"].to_dict()
    groups: dict[tuple, list[TrialRecord]] = {}
    for r in done:
        groups.setdefault((r.config.suite, r.config.model, r.config.task, arm_of(r)), []).append(r)
    rows = []
    for suite, model, arm in dict.fromkeys((s, m, a) for s, m, a, _ in pairs):
        bases = [b for s, m, a, b in pairs if (s, m, a) == (suite, model, arm)]
        for (s, m, task, a), recs in groups.items():
            if (s, m, a) != (suite, model, arm):
                continue
            target = targets.get(recs[0].config.objective)
            if target is None:
                continue
            who, direction = target
            space = _space(recs[0], who)
            row = _check(recs, bases, groups, (suite, model, task), who, direction, space, by_id, ok, arm_of)
            rows.append({"suite": suite, "model": model, "task": task, "objective": arm, **row})
    return pd.DataFrame(rows, columns=COLUMNS)


def _check(recs, bases, groups, where, who, direction, space, by_id, ok, arm_of) -> dict:
    suite, model, task = where
    what = f"{'teacher ' if who == 'teacher' else ''}dev CMI ({space}) {'down' if direction < 0 else 'up'}"
    side = recs if who == "self" else [by_id.get(r.config.teacher or "") for r in recs]
    for base in bases:
        control = groups.get((suite, model, task, base), [])
        if who == "teacher":
            control = [by_id.get(r.config.teacher or "") for r in control]
        control = {c.config.seed: c for c in control if c is not None}
        if not control:
            continue
        ratios = []
        for r in filter(None, side):
            c = control.get(r.config.seed)
            a, b = _cmi(r, space), (_cmi(c, space) if c else None)
            if a is not None and b:
                ratios.append(a / b)
        name = arm_of(next(iter(control.values()))) if who == "teacher" else base
        if not ratios:
            note = f"no seed of the control ({name}) measured CMI in the {space} space (--feature-cmi-temperature)"
            return _row(what, name, [], False, note)
        moved = direction * (np.mean(ratios) - 1) >= THRESHOLD
        teacher = next((arm_of(t) for t in side if t is not None), None)
        learned = who == "self" or bool(ok.get((suite, _model_of(side), task, teacher)))
        note = "" if moved else f"CMI moved less than {THRESHOLD:.0%} its intended way: the treatment was not applied"
        if moved and not learned:
            note = "the teacher did not learn (not above chance): the treatment was not applied"
        return _row(what, name, ratios, bool(moved and learned), note)
    return _row(what, "none", [], False, "no control arm ran on this task")


def _model_of(side: list[TrialRecord | None]) -> str | None:
    return next((t.config.model for t in side if t is not None), None)


def _row(target: str, control: str, ratios: list[float], holds: bool, note: str) -> dict:
    return {
        "target": target,
        "control": control,
        "ratio": float(np.mean(ratios)) if ratios else np.nan,
        "ratio_min": float(np.min(ratios)) if ratios else np.nan,
        "ratio_max": float(np.max(ratios)) if ratios else np.nan,
        "seeds": len(ratios),
        "holds": holds,
        "note": note,
    }
