"""From the command line's choices to a validated list of trial configs.

Everything a user can get wrong is checked here, before any trial starts or any file is
written: names, hyper-parameters, values, data files (parsed once), and the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.config import TrialConfig
from harness.errors import HarnessError
from harness.models import resolve
from harness.plugins import Plugins


@dataclass
class Plan:
    trials: list[TrialConfig]
    notes: list[str] = field(default_factory=list)  # e.g. an optional dev split that is missing


def parse_objective_args(text: str | None, objectives: list[str]) -> dict[str, dict[str, str]]:
    """``"cmi_min.lambda=0.1,ce.label_smoothing=0.1"`` -> {"cmi_min": {"lambda": "0.1"}, ...}."""
    out: dict[str, dict[str, str]] = {}
    for item in filter(None, (s.strip() for s in (text or "").split(","))):
        key, eq, value = item.partition("=")
        obj, dot, name = key.partition(".")
        if not (eq and dot and obj and name):
            raise HarnessError(f"--objective-args {item!r}: write OBJECTIVE.KEY=VALUE, e.g. ce.label_smoothing=0.1")
        if obj not in objectives:
            raise HarnessError(
                f"--objective-args {item!r}: {obj!r} is not among --objectives ({', '.join(objectives)})"
            )
        out.setdefault(obj, {})[name] = value
    return out


def make_plan(
    registry: Plugins,
    suite: str,
    tasks: list[str] | None,
    objectives: list[str],
    model: str,
    seeds: list[int],
    objective_args: str | None = None,
    check_model: bool = True,
    **settings: Any,
) -> Plan:
    if settings.get("precision") == "fp16" and not torch.cuda.is_available():  # trials run on this machine
        raise HarnessError("--precision fp16 needs a GPU; use fp32 or bf16 on CPU")
    suite_obj = registry.suites.get(suite)
    selected = suite_obj.select(tasks)
    if not objectives:
        raise HarnessError("--objectives is empty; name at least one, e.g. --objectives ce (see `harness list`)")
    if not seeds:
        raise HarnessError("--seeds is empty; give at least one integer seed, e.g. --seeds 1,2,3")
    for flag, values in (("--tasks", tasks or []), ("--objectives", objectives), ("--seeds", seeds)):
        twice = sorted({str(v) for v in values if values.count(v) > 1})
        if twice:
            raise HarnessError(f"{flag} lists {', '.join(twice)} more than once; give each value once")
    classes = {name: registry.objectives.get(name) for name in objectives}
    given = parse_objective_args(objective_args, objectives)
    hparams = {name: cls.resolve_hparams(given.get(name, {})) for name, cls in classes.items()}
    spec = resolve(model, registry.models)
    trials = [
        TrialConfig(suite=suite, task=t.name, objective=o, model=model, seed=s, objective_args=hparams[o], **settings)
        for t in selected
        for o in objectives
        for s in seeds
    ]
    data_dir = settings.get("data_dir")
    notes = []
    for task in selected:  # parse every task once now, so a bad file stops the run before it starts
        notes += suite_obj.load(task, Path(data_dir) if data_dir else None).notes
    if check_model:
        spec.load(selected[0].num_labels)
    return Plan(trials, notes)
