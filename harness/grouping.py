"""How the report groups trial records: by setting (suite, model), task, *arm* (the objective with
its non-default hyper-parameters) and seed, and how it names a row (task, dev split, metric)."""

from __future__ import annotations

from harness.record import TrialRecord

SHORT = {"accuracy": "acc", "f1": "F1", "mcc": "MCC"}
SPLIT = {"validation": "", "validation_matched": "m", "validation_mismatched": "mm"}
SETTING = ["suite", "model"]
KEY = [*SETTING, "task", "objective", "seed"]
NO_WNLI = "wnli"
ALPHA = 0.05


def arm(r: TrialRecord) -> str:
    return r.arm or r.config.objective  # records before schema 2: the objective


def row_label(task: str, split: str, metric: str) -> str:
    return " ".join(x for x in (task, SPLIT.get(split, split), SHORT.get(metric, metric)) if x)


def key_of(r: TrialRecord) -> dict:
    c = r.config
    return {"suite": c.suite, "model": c.model, "task": c.task, "objective": arm(r), "seed": c.seed}


def completed(records: list[TrialRecord]) -> list[TrialRecord]:
    return [r for r in records if r.completed]
