"""From the command line's choices to a validated list of trial configs.

Everything a user can get wrong is checked here, before any trial starts or any file is
written: names, hyper-parameters, values, data files (parsed once), and the model.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from harness import lora
from harness.config import TRAINING, Plan, TrialConfig
from harness.errors import HarnessError
from harness.files import resolve_suite
from harness.models import resolve
from harness.plugins import Plugins


def _check_groups(given: dict[str, dict[str, Any]], flag: str, groups: list[str], among: str) -> None:
    """Every GROUP of ``{GROUP: {KEY: VALUE}}`` must be one of ``groups``: else one HarnessError naming
    ``flag``, the item, and what is ``among``."""
    for group, kv in given.items():
        if group not in groups:
            key, value = next(iter(kv.items()), ("", ""))
            item = f"{group}.{key}={value}"
            raise HarnessError(f"{flag} {item!r}: {group!r} is not among {among} ({', '.join(groups)})")


def check_objective_args(given: dict[str, dict[str, Any]], objectives: list[str]) -> None:
    """``{"cmi_min": {"lambda": "0.1"}}`` may only name objectives that run."""
    _check_groups(given, "--objective-args", objectives, "--objectives")


TASK_SETTINGS = (*TRAINING, "seeds")


def task_settings(given: dict[str, dict[str, Any]], tasks: list[str]) -> dict[str, dict[str, Any]]:
    """``{"rte": {"epochs": "10", "seeds": "1+2+3"}}`` (command-line text, or the YAML's numbers and
    lists) -> ``{"rte": {"epochs": 10, "seeds": [1, 2, 3]}}``: per-task trial settings and seeds.
    ``tasks``: the suite's, so a study's config keeps every task's settings under ``--tasks``."""
    _check_groups(given, "--task-args", tasks, "the suite's tasks")
    out: dict[str, dict[str, Any]] = {}
    for task, kv in given.items():
        for name, value in kv.items():
            item = f"{task}.{name}={value}"
            if name not in TASK_SETTINGS:
                raise HarnessError(
                    f"--task-args {item!r}: {name!r} is not a per-task setting; one of {', '.join(TASK_SETTINGS)}"
                )
            kind = float if name in ("lr", "warmup_ratio", "weight_decay") else int
            try:  # through text, so 2.5 is no whole number and True no number, from either source
                if name == "seeds":
                    parsed = [int(str(v)) for v in (value if isinstance(value, list) else str(value).split("+"))]
                else:
                    parsed = kind(str(value))  # type: ignore[assignment]
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
    plugins: Plugins,
    /,
    suite: str,
    tasks: list[str] | None,
    objectives: list[str],
    model: str,
    seeds: list[int],
    objective_args: dict[str, dict[str, Any]] | None = None,
    check_model: bool = True,
    teacher_model: str | None = None,
    teacher_store: str | None = None,
    task_args: dict[str, dict[str, Any]] | None = None,
    **settings: Any,
) -> Plan:
    """Trials in the order they must run: teacher stages first (each once, shared), then the rest."""
    if settings.get("precision") == "fp16" and not _cuda():  # trials run on this machine
        raise HarnessError("--precision fp16 needs a GPU; use fp32 or bf16 on CPU")
    if settings.get("model_dtype") == "fp16" and not _cuda():
        raise HarnessError("--model-dtype fp16 needs a GPU; use fp32 or bf16 on CPU")
    suite_obj = resolve_suite(plugins, suite, settings.get("data_files"))
    selected = suite_obj.select(tasks)
    if not objectives:
        raise HarnessError("--objectives is empty; name at least one, e.g. --objectives ce (see `harness list`)")
    if not seeds:
        raise HarnessError("--seeds is empty; give at least one integer seed, e.g. --seeds 1,2,3")
    for flag, values in (("--tasks", tasks or []), ("--objectives", objectives), ("--seeds", seeds)):
        texts = [str(v) for v in values]
        twice = sorted({v for v in texts if texts.count(v) > 1})
        if twice:
            raise HarnessError(f"{flag} lists {', '.join(twice)} more than once; give each value once")
    per_task = task_settings(task_args or {}, [t.name for t in suite_obj.tasks])
    classes = {name: plugins.objectives.get(name) for name in objectives}
    given = objective_args or {}
    check_objective_args(given, objectives)
    hparams = {name: cls.resolve_hparams(given.get(name, {})) for name, cls in classes.items()}
    stages = {name: cls.teacher_stages(hparams[name]) for name, cls in classes.items()}
    needs_teacher = [name for name, st in stages.items() if st]
    if needs_teacher and not teacher_model:
        raise HarnessError(
            f"{', '.join(needs_teacher)} learn(s) from a teacher: give --teacher-model, e.g. "
            f"--model minilm-l6:half --teacher-model minilm-l6"
        )
    spec = resolve(model, plugins.models)
    teacher_spec = resolve(teacher_model, plugins.models) if teacher_model else None
    data_dir = settings.get("data_dir")
    notes, fingerprints = [], {}
    for task in selected:  # parse every task once now, so a bad file stops the run before it starts
        data = suite_obj.load(task, Path(data_dir) if data_dir else None)
        data.check(task, suite)
        notes += data.notes
        fingerprints[task.name] = data.fingerprint
        held_out = {**settings, **per_task.get(task.name, {})}.get("dev_from_train")
        if held_out and held_out >= len(data.splits["train"]):
            raise HarnessError(
                f"dev_from_train {held_out}: task {task.name!r} has only {len(data.splits['train']):,} training "
                f"rows; hold out fewer"
            )
        if held_out:
            notes.append(
                f"{task.name}: the dev set is {held_out:,} rows held out from the training data (the same for "
                f"every trial), not the task's own dev split; scores are not comparable with published ones"
            )
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
                    args = plugins.objectives.get(stage.objective).resolve_hparams(stage.args)
                    cfg = TrialConfig(
                        **{**common, "epochs": stage.epochs or common.get("epochs", 3)},
                        objective=stage.objective,
                        model=teacher_model,  # type: ignore[arg-type]  # set: needs_teacher was checked
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
    if check_model:  # loads, and its LoRA targets match something
        lora.apply(spec.load(selected[0].num_labels)[1], settings.get("peft"))
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
