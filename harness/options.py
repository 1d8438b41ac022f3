"""The options of ``harness run`` and ``harness tune``, merged as data: defaults < ``--config`` YAML < command line.

Every option is one field of ``Options``, with its default and (in the field's metadata) its
converter (harness.converters) and the commands it belongs to. A converter takes either source's form, command-line
text or the YAML's own types (``seeds: [1, 2]`` or ``--seeds 1,2``), and the command-line parser
uses the same converters as its ``type=``; so a value is converted once, in one way, and then
``Options.check`` validates the whole once. ``Options.plan`` turns them into trials
(harness.planner), ``Options.ray`` into the Ray executor's settings.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.converters import (
    Invalid,
    confirm_seeds,
    dotted,
    flag,
    number,
    pairs,
    seeds,
    settings,
    text,
    texts,
    words,
)
from harness.errors import HarnessError

RUN, TUNE, BOTH = ("run",), ("tune",), ("run", "tune")

# How a run's trials execute: kept in its run.json, so `harness run --resume` runs them the same way.
EXECUTION = (
    "executor",
    "address",
    "storage",
    "workers_per_trial",
    "gpus_per_worker",
    "max_concurrent_trials",
    "dashboard",
    "retries",
)
# What the command line may still set when resuming; everything else is the run's own.
RESUMING = (*EXECUTION, "resume", "quiet", "plugin", "debug")
EXECUTORS = ("ray", "local")
SEARCH_ALGS = ("random", "grid", "optuna")
SCHEDULERS = ("fifo", "asha")


def opt(default: Any = None, convert=text, commands=BOTH, factory=None):
    meta = {"convert": convert, "commands": commands}
    return field(default_factory=factory, metadata=meta) if factory else field(default=default, metadata=meta)


COMMAND_DEFAULTS = {"tune": {"objectives": ["ce"]}}  # where a command's default differs from the field's


@dataclass(frozen=True)
class Options:
    command: str
    plugin: list[str] = opt(factory=list, convert=texts, commands=())  # global: before the command
    debug: bool = opt(False, flag, commands=())
    # what a trial is
    suite: str = opt("smoke")
    tasks: list[str] | None = opt(None, words("tasks"))
    # `harness run` compares the mission's two by default; `harness tune` searches one (COMMAND_DEFAULTS)
    objectives: list[str] = opt(factory=lambda: ["ce", "cmi_min"], convert=words("objectives"))
    objective_args: dict[str, dict[str, Any]] = opt(
        factory=dict, convert=dotted("--objective-args", "OBJECTIVE.KEY=VALUE, e.g. ce.label_smoothing=0.1")
    )
    model: str = opt("tiny")
    task_args: dict[str, dict[str, Any]] = opt(
        factory=dict, convert=dotted("--task-args", "TASK.SETTING=VALUE, e.g. rte.epochs=10")
    )
    teacher_model: str | None = opt(None)
    teacher_dir: str | None = opt(None)
    data_dir: str | None = opt(None)
    train_file: str | None = opt(None)
    validation_file: str | None = opt(None)
    text_columns: list[str] | None = opt(None, words("text columns"))
    label_column: str | None = opt(None)
    epochs: int = opt(3, number(int))
    lr: float | None = opt(None, number(float))
    batch_size: int = opt(32, number(int))
    max_seq_length: int = opt(128, number(int))
    warmup_ratio: float = opt(0.1, number(float))
    weight_decay: float = opt(0.01, number(float))
    max_train_samples: int | None = opt(None, number(int))
    max_dev_samples: int | None = opt(None, number(int))
    dev_from_train: int | None = opt(None, number(int))
    feature_cmi_temperature: float | None = opt(None, number(float))
    zero_stage: int = opt(0, number(int))
    precision: str = opt("fp32")
    threads: int | None = opt(None, number(int))
    pad_multiple: int | None = opt(None, number(int))
    compile: bool = opt(False, flag)
    save_model: str = opt("none")
    grad_accum: int | None = opt(None, number(int))
    model_dtype: str = opt("fp32")
    gradient_checkpointing: bool = opt(False, flag)
    peft: str | None = opt(None)
    peft_args: dict[str, Any] = opt(factory=dict, convert=pairs)
    output_dir: str = opt("runs")
    quiet: bool = opt(False, flag)
    tracker: list[str] = opt(factory=list, convert=words("trackers"))
    retries: int = opt(0, number(int))
    # where trials run (Ray)
    address: str | None = opt(None)
    storage: str | None = opt(None)
    workers_per_trial: int = opt(1, number(int))
    gpus_per_worker: float | None = opt(None, number(float))
    max_concurrent_trials: int | None = opt(None, number(int))
    dashboard: bool = opt(False, flag)
    # harness run
    seeds: list[int] = opt(factory=lambda: [1, 2, 3], convert=seeds, commands=RUN)
    retrain_teachers: bool = opt(False, flag, commands=RUN)
    setting: list[dict] | None = opt(None, settings, commands=RUN)
    executor: str = opt(factory=lambda: os.environ.get("HARNESS_EXECUTOR", "ray"), commands=RUN)
    resume: str | None = opt(None, commands=())  # run and tune, command line only: a file cannot resume itself
    reuse: list[str] = opt(factory=list, convert=texts, commands=())  # run, command line only
    # harness tune
    search: list[str] = opt(factory=list, convert=texts, commands=TUNE)
    search_file: str | None = opt(None, commands=TUNE)
    search_alg: str = opt("random", commands=TUNE)
    num_samples: int | None = opt(None, number(int), commands=TUNE)
    scheduler: str = opt("fifo", commands=TUNE)
    metric: str | None = opt(None, commands=TUNE)
    seed: int = opt(1, number(int), commands=TUNE)
    confirm_seeds: list[int] | None = opt(None, confirm_seeds, commands=TUNE)

    @classmethod
    def merge(cls, command: str, given: dict[str, Any], config: str | None = None) -> Options:
        """Defaults < the ``config`` YAML file < ``given`` (the command line's options, already
        converted), then checked once. Resuming, the run's own execution options take the file's place."""
        from_file = _from_yaml(config, command) if config else {}
        if given.get("resume"):
            from harness.rundir import RunDir

            from_file = {k: v for k, v in RunDir(given["resume"]).stored_options().items() if k in _FIELDS}
            given = {k: v for k, v in given.items() if k in RESUMING}
        merged = {**COMMAND_DEFAULTS.get(command, {}), **from_file, **given}
        for key in NESTED:  # the command line's OBJ.KEY=V adds to the file's OBJ: {KEY: V}, key by key
            if key in from_file and key in given:
                merged[key] = {
                    g: {**from_file[key].get(g, {}), **given[key].get(g, {})} for g in {**from_file[key], **given[key]}
                }
        return cls(command=command, **merged).check()

    def execution(self) -> dict[str, Any]:
        """What a run's run.json keeps of these options (EXECUTION)."""
        return {k: getattr(self, k) for k in EXECUTION}

    def stored_search(self) -> dict[str, Any]:
        """What a search's run.json keeps: every option of ``harness tune``, paths made absolute, so
        that ``harness tune --resume`` continues the same search from anywhere."""
        kept = {k: getattr(self, k) for k, f in _FIELDS.items() if "tune" in f.metadata["commands"]}
        for key in ("output_dir", "data_dir", "teacher_dir"):
            kept[key] = str(Path(kept[key]).resolve()) if kept[key] else None
        return kept

    def check(self) -> Options:
        for name, ok, why in (
            ("retries", self.retries >= 0, "must be 0 or more"),
            ("workers-per-trial", self.workers_per_trial >= 1, "must be at least 1"),
            ("max-concurrent-trials", (self.max_concurrent_trials or 1) >= 1, "must be at least 1"),
            ("gpus-per-worker", (self.gpus_per_worker or 0) >= 0, "must be 0 or more"),
            ("num-samples", self.num_samples is None or self.num_samples >= 1, "must be at least 1"),
            ("executor", self.executor in EXECUTORS, f"must be one of {', '.join(EXECUTORS)}"),
            ("search-alg", self.search_alg in SEARCH_ALGS, f"must be one of {', '.join(SEARCH_ALGS)}"),
            ("scheduler", self.scheduler in SCHEDULERS, f"must be one of {', '.join(SCHEDULERS)}"),
            (
                "storage",
                not (self.storage and self.command == "run" and self.executor == "local"),
                "is where Ray's trials keep their files; the local executor writes to --output-dir: leave "
                "--storage out, or use --executor ray",
            ),
        ):
            if not ok:
                raise HarnessError(f"--{name} {getattr(self, name.replace('-', '_'))}: {why}")
        return self

    def trial_settings(self) -> dict[str, Any]:
        """What every trial gets from these options (harness.config.TrialConfig's fields)."""
        from harness.config import TRAINING
        from harness.files import spec_from_options
        from harness.lora import resolve

        out = {
            k: getattr(self, k)
            for k in (
                *TRAINING,
                "zero_stage",
                "precision",
                "threads",
                "feature_cmi_temperature",
                "save_model",
                "grad_accum",
                "pad_multiple",
            )
        }
        out["data_dir"] = str(Path(self.data_dir).resolve()) if self.data_dir else None
        out["data_files"] = spec_from_options(
            self.train_file, self.validation_file, self.text_columns, self.label_column, self.suite
        )
        out["peft"] = resolve(self.peft, self.peft_args)
        out["gradient_checkpointing"] = self.gradient_checkpointing or None  # None: off, and ids as before
        out["compile"] = self.compile or None
        out["model_dtype"] = None if self.model_dtype == "fp32" else self.model_dtype
        out["plugins"] = tuple(self.plugin)
        out["trackers"] = tuple(self.tracker)
        out["tracking_dir"] = str(Path(self.output_dir).resolve()) if self.tracker else None
        out["teacher_store"] = str(Path(self.teacher_dir or Path(self.output_dir) / "teachers").expanduser().resolve())
        return out

    def plan(self, plugins, seeds: list[int], check_model: bool = True):
        """The validated plan (harness.planner.make_plan), one per setting (``setting``, else ``model``
        with ``objectives``), merged; each setting gets the objective arguments of its own objectives."""
        from harness.files import SUITE
        from harness.planner import check_objective_args, make_plan, merge
        from harness.tracking import check

        check(tuple(self.tracker), plugins.trackers)
        groups = self.setting or [
            {"model": self.model, "objectives": self.objectives, "teacher_model": self.teacher_model}
        ]
        check_objective_args(self.objective_args, [o for g in groups for o in g["objectives"]])
        for g in groups:
            check_objective_args(g.get("objective_args") or {}, g["objectives"])
        settings = self.trial_settings()
        suite, tasks = self.suite, self.tasks
        if settings["data_files"]:
            if (self.suite != default("suite") and not self.suite.startswith("hf:")) or self.tasks:
                raise HarnessError(
                    "--train-file makes a task of your files: leave --suite and --tasks out (or drop --train-file)"
                )
            suite, tasks = SUITE, None
        return merge(
            [
                make_plan(
                    plugins,
                    suite,
                    tasks,
                    g["objectives"],
                    g["model"],
                    g.get("seeds") or seeds,
                    {
                        o: {**self.objective_args.get(o, {}), **(g.get("objective_args") or {}).get(o, {})}
                        for o in g["objectives"]
                        if o in self.objective_args or o in (g.get("objective_args") or {})
                    },
                    check_model,
                    teacher_model=g["teacher_model"],
                    task_args=self.task_args,
                    **settings,
                )
                for g in groups
            ]
        )

    def ray(self):
        """The Ray executor's settings (harness.ray_executor.RayOptions); refuses an address that does
        not answer and a dashboard without its packages."""
        from harness.ray_executor import RayOptions, check_address

        if self.address:
            check_address(self.address)
        gpus = self.gpus_per_worker
        if gpus is None:
            import torch

            gpus = 1 if torch.cuda.is_available() and not self.address else 0
        if self.dashboard and importlib.util.find_spec("aiohttp") is None:
            raise HarnessError("--dashboard needs Ray's dashboard packages: pip install 'ray[default]'")
        return RayOptions(
            address=self.address,
            storage=self.storage,
            workers=self.workers_per_trial,
            gpus=gpus,
            max_concurrent=self.max_concurrent_trials,
            retries=self.retries,
            quiet=self.quiet,
            dashboard=self.dashboard,
        )


NESTED = ("objective_args", "task_args")  # {GROUP: {KEY: VALUE}} options


def converter(name: str):
    """The converter of option ``name`` (the parser's ``type=``)."""
    return _FIELDS[name].metadata["convert"]


def default(name: str, command: str | None = None) -> Any:
    """Option ``name``'s default (for ``command``, where COMMAND_DEFAULTS differs)."""
    if name in COMMAND_DEFAULTS.get(command or "", {}):
        return COMMAND_DEFAULTS[command or ""][name]
    f = _FIELDS[name]
    return f.default_factory() if f.default is MISSING else f.default  # type: ignore[operator]


def _from_yaml(path: str, command: str) -> dict[str, Any]:
    """The options a ``--config`` file sets (long names, ``-`` or ``_``), converted; an unknown name or a
    bad value is one HarnessError naming the file and the option."""
    from harness.config import yaml_mapping

    data = yaml_mapping(path, "--config", "a mapping of option names to values")
    known = sorted(name for name, f in _FIELDS.items() if command in f.metadata["commands"])
    out = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise HarnessError(f"--config {path}: unknown option {key!r}; known: {', '.join(known)}")
        if value is None:
            continue
        try:
            out[name] = converter(name)(value)
        except Invalid as exc:
            raise HarnessError(f"--config {path}: {key}: {exc}") from None
    return out


_FIELDS = {f.name: f for f in fields(Options) if f.name != "command"}
