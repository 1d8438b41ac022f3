"""The strength study's verdicts: its decision rules (benchmarks/cmi_strength.yaml, written before
it ran) applied to the tables of its report, so that no verdict is a judgement made after the fact.

    python benchmarks/cmi_strength_verdict.py reports/cmi_strength_report

Per primary arm: M (the manipulation check: CMI moved >= 10% its intended way on the task, and a
teacher that learned, >= 5 points above the majority class), then the effect from the report's
seed-aware test, Holm-adjusted here over the claim's primary (arm, task) pairs:
    reproduces    M on both tasks, delta > 0 on both, Holm p < 0.05 on at least one;
    refuted       M on both tasks and the upper 95% bound below +0.5 points on both;
    not tested    M fails on either task;
    inconclusive  otherwise;  not run: a task's test is missing.
Claim 1 (cmi_min vs ce; co-primaries: posterior and features arms at lambda 1) reproduces if
either reproduces, is refuted if every tested co-primary is refuted, not tested if none was.
Claim 2 (cmi_max_kd at teacher lambda 1 vs kd) is its primary's verdict.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.significance import holm

TASKS = ("sst2", "qqp")
ALPHA = 0.05
REFUTE_BELOW = 0.5  # points: the upper 95% bound under which an effect is refuted
TEACHER_ABOVE_CHANCE = 5.0  # points
CLAIMS = {
    "1: cmi_min beats ce": {
        "posterior": ("minilm-l6", "cmi_min", {"lambda": "1.0", "beta": "0.1"}, "ce"),
        "features": ("minilm-l6", "cmi_min", {"lambda": "1.0", "beta": "0.1", "space": "features"}, "ce"),
    },
    "2: cmi_max_kd beats kd": {
        "teacher lambda 1": ("minilm-l6:half", "cmi_max_kd", {"teacher_lambda": "1.0"}, "kd"),
    },
}


def parse_arm(label: str) -> tuple[str, dict[str, str]]:
    """``cmi_min[lambda=1.0,space=features]`` -> ("cmi_min", {"lambda": "1.0", "space": "features"})."""
    name, _, rest = label.partition("[")
    pairs = [p.split("=", 1) for p in rest.rstrip("]").split(",") if "=" in p]
    return name, dict(pairs)


def find_arm(labels: set[str], objective: str, wanted: dict[str, str]) -> str | None:
    """The one arm of ``objective`` whose non-default hyper-parameters are exactly ``wanted``, but any
    temperature (the features arm's T comes from the pre-check)."""
    for label in labels:
        name, hp = parse_arm(label)
        hp.pop("temperature", None)
        if name == objective and hp == wanted:
            return label
    return None


def arm_verdict(rows: dict[str, dict], checks: dict[str, dict]) -> str:
    """``rows``/``checks``: per task, the significance row (with ``p_claim``) and the manipulation row."""
    if set(rows) != set(TASKS) or set(checks) != set(TASKS):
        return "not run"
    if not all(checks[t]["holds"] for t in TASKS):
        return "not tested"
    if all(rows[t]["delta"] > 0 for t in TASKS) and any(rows[t]["p_claim"] < ALPHA for t in TASKS):
        return "reproduces"
    if all(rows[t]["ci_high"] < REFUTE_BELOW for t in TASKS):
        return "refuted"
    return "inconclusive"


def claim_verdict(arms: list[str]) -> str:
    tested = [v for v in arms if v in ("reproduces", "refuted", "inconclusive")]
    if "reproduces" in arms:
        return "reproduces"
    if not tested:
        return "not run" if "not run" in arms else "not tested"
    return "refuted" if all(v == "refuted" for v in tested) else "inconclusive"


def _teacher_learned(tables: dict, model: str, task: str, arm: str) -> bool:
    """The arm's teachers' mean dev accuracy at least TEACHER_ABOVE_CHANCE points above the majority class."""
    teacher = [r for r in tables["teachers"] if (r["model"], r["task"], r["objective"]) == (model, task, arm)]
    chance = [r["chance"] for r in tables["chance"] if r["task"] == task and r["metric"] == "accuracy"]
    return bool(teacher and chance and teacher[0]["mean"] >= chance[0] + TEACHER_ABOVE_CHANCE)


def verdicts(tables: dict) -> list[dict]:
    """One row per claim and primary arm, and one per claim ("all")."""
    out = []
    for claim, primaries in CLAIMS.items():
        found = {}
        for name, (model, objective, wanted, base) in primaries.items():
            labels = {r["objective"] for r in tables["significance"] if r["model"] == model}
            arm = find_arm(labels, objective, wanted)
            rows = {
                r["task"]: dict(r)
                for r in tables["significance"]
                if (r["model"], r["objective"], r["baseline"]) == (model, arm, base) and r["task"] in TASKS
            }
            checks = {
                r["task"]: dict(r)
                for r in tables["manipulation"]
                if (r["model"], r["objective"]) == (model, arm) and r["task"] in TASKS
            }
            for task, c in checks.items():
                if "teacher" in c["target"]:
                    c["holds"] = c["holds"] and _teacher_learned(tables, model, task, arm)
            found[name] = (arm, rows, checks)
        family = [(name, t) for name, (_, rows, _) in found.items() for t in sorted(rows)]
        adjusted = holm([found[name][1][t]["p_value"] for name, t in family])
        for (name, t), p in zip(family, adjusted, strict=True):
            found[name][1][t]["p_claim"] = p
        arm_rows = []
        for name, (arm, rows, checks) in found.items():
            verdict = arm_verdict(rows, checks)
            arm_rows.append(verdict)
            out.append({"claim": claim, "arm": f"{name}: {arm}", "verdict": verdict, "tasks": _detail(rows, checks)})
        out.append({"claim": claim, "arm": "all", "verdict": claim_verdict(arm_rows), "tasks": ""})
    return out


def _detail(rows: dict, checks: dict) -> str:
    parts = []
    for t in TASKS:
        if t not in rows or t not in checks:
            parts.append(f"{t}: not run")
            continue
        r, c = rows[t], checks[t]
        parts.append(
            f"{t}: CMI x{c['ratio']:.2f} ({'holds' if c['holds'] else 'fails'}), "
            f"Δ {r['delta']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}], Holm p (claim) {r['p_claim']:.3f}, "
            f"{r['equivalence']}, detectable ±{r['mde']:.2f}"
        )
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("report_dir", help="the output of `harness report` on the study's run directory")
    a = p.parse_args(argv)
    path = Path(a.report_dir) / "report.json"
    if not path.is_file():
        print(f"{path} not found: run `harness report RUN_DIR --output {a.report_dir}` first", file=sys.stderr)
        return 2
    tables = json.loads(path.read_text())["tables"]
    print("| claim | arm | verdict | per task |\n|---|---|---|---|")
    for row in verdicts(tables):
        print(f"| {row['claim']} | {row['arm']} | **{row['verdict']}** | {row['tasks']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
