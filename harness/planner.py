"""From the command line's choices to a validated list of trial configs.

Everything a user can get wrong is checked here, before any trial starts or any file is
written: names, hyper-parameters, values, data files (parsed once), and the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.config import TRAINING, TrialConfig
from harness.errors import HarnessError
from harness.models import resolve
from harness.plugins import Plugins


@dataclass
class Plan:
    trials: list[TrialConfig]
    notes: list[str] = field(default_factory=list)  # e.g. an optional dev split that is missing


def _dotted(text: str | None, flag: str, form: str, groups: list[str], among: str):
    """``"a.x=1,b.y=2"`` as (item, group, key, value) tuples; a malformed item, or a group not in
    ``groups``, is one HarnessError naming ``flag``, the ``form`` to write, and what is ``among``."""
    for item in filter(None, (s.strip() for s in (text or "").split(","))):
        key, eq, value = item.partition("=")
        group, dot, name = key.partition(".")
        if not (eq and dot and group and name):
            raise HarnessError(f"{flag} {item!r}: write {form}")
        if group not in groups:
            raise HarnessError(f"{flag} {item!r}: {group!r} is not among {among} ({', '.join(groups)})")
        yield item, group, name, value


def parse_objective_args(text: str | None, objectives: list[str]) -> dict[str, dict[str, str]]:
    """``"cmi_min.lambda=0.1,ce.label_smoothing=0.1"`` -> {"cmi_min": {"lambda": "0.1"}, ...}."""
    out: dict[str, dict[str, str]] = {}
    form = "OBJECTIVE.KEY=VALUE, e.g. ce.label_smoothing=0.1"
    for _, obj, name, value in _dotted(text, "--objective-args", form, objectives, "--objectives"):
        out.setdefault(obj, {})[name] = value
    return out


TASK_SETTINGS = (*TRAINING, "seeds")


def parse_task_args(text: str | None, tasks: list[str]) -> dict[str, dict[str, Any]]:
    """``"rte.epochs=10,rte.lr=5e-5,rte.seeds=1+2+3+4+5"`` -> {"rte": {"epochs": 10, "lr": 5e-05, "seeds":
    [1, 2, 3, 4, 5]}}: per-task trial settings, and per-task seeds (``+``-separated)."""
    out: dict[str, dict[str, Any]] = {}
    form = "TASK.SETTING=VALUE, e.g. rte.epochs=10"
    for item, task, name, value in _dotted(text, "--task-args", form, tasks, "the run's tasks"):
        if name not in TASK_SETTINGS:
            raise HarnessError(
                f"--task-args {item!r}: {name!r} is not a per-task setting; one of {', '.join(TASK_SETTINGS)}"
            )
        kind = float if name in ("lr", "warmup_ratio", "weight_decay") else int
        try:
            parsed = [int(v) for v in value.split("+")] if name == "seeds" else kind(value)
        except ValueError:
            raise HarnessError(
                f"--task-args {item!r}: {value!r} is not a {'number' if kind is float else 'whole number'}"
            ) from None
        if name == "seeds" and len(set(parsed)) != len(parsed):
            raise HarnessError(f"--task-args {item!r}: a seed is listed twice; give each once")
        out.setdefault(task, {})[name] = parsed
    return out


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def make_plan(
    registry: Plugins,
    suite: str,
    tasks: list[str] | None,
    objectives: list[str],
    model: str,
    seeds: list[int],
    objective_args: str | None = None,
    check_model: bool = True,
    teacher_model: str | None = None,
    teacher_store: str | None = None,
    task_args: str | None = None,
    **settings: Any,
) -> Plan:
    """Trials in the order they must run: teacher stages first (each once, shared), then the rest."""
    if settings.get("precision") == "fp16" and not _cuda():  # trials run on this machine
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
    per_task = parse_task_args(task_args, [t.name for t in selected])
    classes = {name: registry.objectives.get(name) for name in objectives}
    given = parse_objective_args(objective_args, objectives)
    hparams = {name: cls.resolve_hparams(given.get(name, {})) for name, cls in classes.items()}
    stages = {name: cls.teacher_stages(hparams[name]) for name, cls in classes.items()}
    needs_teacher = [name for name, st in stages.items() if st]
    if needs_teacher and not teacher_model:
        raise HarnessError(
            f"{', '.join(needs_teacher)} learn(s) from a teacher: give --teacher-model, e.g. "
            f"--model minilm-l6:half --teacher-model minilm-l6"
        )
    spec = resolve(model, registry.models)
    teacher_spec = resolve(teacher_model, registry.models) if teacher_model else None
    data_dir = settings.get("data_dir")
    notes, fingerprints = [], {}
    for task in selected:  # parse every task once now, so a bad file stops the run before it starts
        data = suite_obj.load(task, Path(data_dir) if data_dir else None)
        data.check(task, suite)
        notes += data.notes
        fingerprints[task.name] = data.fingerprint
    teachers: dict[str, TrialConfig] = {}  # trial id -> config, in stage order, each once
    trials = []
    for t in selected:
        here = {**settings, **per_task.get(t.name, {})}
        task_seeds = here.pop("seeds", seeds)
        for o in objectives:
            for s in task_seeds:
                common = dict(suite=suite, task=t.name, seed=s, data_fingerprint=fingerprints[t.name], **here)
                previous = None
                for stage in stages[o]:
                    args = registry.objectives.get(stage.objective).resolve_hparams(stage.args)
                    cfg = TrialConfig(
                        **{**common, "epochs": stage.epochs or common.get("epochs", 3)},
                        objective=stage.objective,
                        model=teacher_model,
                        objective_args=args,
                        save_teacher=True,
                        init_from=previous,
                        teacher_store=teacher_store,
                    )
                    previous = cfg.trial_id()
                    teachers.setdefault(previous, cfg)
                trials.append(
                    TrialConfig(
                        **common,
                        objective=o,
                        model=model,
                        objective_args=hparams[o],
                        teacher=previous,
                        teacher_store=teacher_store if previous else None,
                    )
                )
    if check_model:
        spec.load(selected[0].num_labels)
        if teacher_spec:
            teacher_spec.load(selected[0].num_labels)
    return Plan(list(teachers.values()) + trials, notes)


def merge(plans: list[Plan]) -> Plan:
    """Several settings' plans as one, task by task: a task's teachers (each once, in stage order),
    then its other trials, so an interrupted run leaves whole tasks done. A trial that is exactly a
    teacher trial (the teacher model's ce arm is the first stage of its students' teachers) is
    trained once, as the teacher, whose record the run's report reads."""
    teachers = {c.trial_id(): c for p in plans for c in p.trials if c.save_teacher}
    rest = {  # by trial id: two settings may both name the same model and objective
        c.trial_id(): c
        for p in plans
        for c in p.trials
        if not c.save_teacher and replace(c, save_teacher=True).trial_id() not in teachers
    }.values()
    tasks = list(dict.fromkeys(c.task for c in [*teachers.values(), *rest]))
    ordered = [c for t in tasks for c in [*teachers.values(), *rest] if c.task == t]
    notes = list(dict.fromkeys(n for p in plans for n in p.notes))
    return Plan(ordered, notes)
