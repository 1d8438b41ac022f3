"""``harness tune``: a hyper-parameter search of one objective on one task through Ray Tune, in one
module: the search space, the algorithm and scheduler, the best config and the command. The executor
(harness.ray_executor.run_search) sees a ``Search`` only through ``domains``, ``total``,
``tune_options`` and ``label``.

The space: ``KEY=KIND:ARGS`` strings or a YAML file, checked against the trial config before
anything runs. KEY is a trial setting (``lr``, ``batch_size``, ``epochs``, ``warmup_ratio``,
``weight_decay``, ``max_seq_length``, ``max_train_samples``, ``seed``) or ``OBJECTIVE.HPARAM`` of
the tuned objective. KIND:ARGS is one of

* ``uniform:LO:HI``, ``loguniform:LO:HI`` (0 < LO) -- floats;
* ``randint:LO:HI`` -- integers LO..HI, both included;
* ``choice:A,B,...`` -- sampled; ``grid:A,B,...`` -- every value, each with ``--num-samples`` draws.

A search writes, besides the trials' records, RUN_DIR/search.csv (one row per trial: the searched
values, status, epochs trained, and the dev metric that chose the winner, labelled as the selection
score) and RUN_DIR/best.yaml: the best trial's settings as a ``harness run --config`` file. A score
used to choose a configuration is not its result (it is biased upwards by the choice), so the
search ends by rerunning the best config on fresh seeds (``--confirm-seeds``) in RUN_DIR/confirm, a
run directory of its own with its report, and reports that mean ± std.

``harness tune --resume RUN_DIR`` continues a search whose driver stopped: Tune restores its
experiment (the searcher's and scheduler's state, finished trials kept) from RUN_DIR/run.json's
search and Ray's storage; a trial whose record completed is never trained again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from rich.console import Console

from harness.config import TRAINING, Plan, TrialConfig, yaml_mapping
from harness.errors import HarnessError
from harness.options import Options
from harness.record import TrialRecord
from harness.rundir import RunDir, check_output_dir

SETTINGS = ("lr", "batch_size", "epochs", "warmup_ratio", "weight_decay", "max_seq_length", "max_train_samples", "seed")
WHOLE = ("seed", "epochs", "batch_size", "max_seq_length", "max_train_samples")
KINDS = ("uniform", "loguniform", "randint", "choice", "grid")
EXAMPLE = "e.g. lr=loguniform:1e-5:1e-4 or cmi_min.lambda=choice:0.01,0.1,0.5"


@dataclass(frozen=True)
class Dimension:
    key: str  # a TrialConfig field, or "objective.hparam"
    kind: str
    values: tuple[Any, ...]  # (LO, HI) for uniform/loguniform/randint; the listed values otherwise

    def tune_domain(self):
        from ray import tune

        lo, hi = self.values[0], self.values[-1]
        return {
            "uniform": lambda: tune.uniform(lo, hi),
            "loguniform": lambda: tune.loguniform(lo, hi),
            "randint": lambda: tune.randint(lo, hi + 1),  # Tune's upper bound is exclusive
            "choice": lambda: tune.choice(list(self.values)),
            "grid": lambda: tune.grid_search(list(self.values)),
        }[self.kind]()


def _scalar(text: str) -> Any:
    """``3`` -> 3, ``2e-3`` -> 0.002, ``true`` -> True, anything else stays a string."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_dimension(key: str, spec: Any, where: str = "--search") -> Dimension:
    """One dimension from ``KIND:ARGS`` (or, from YAML, a list: a choice)."""
    key = key.strip().replace("-", "_") if "." not in key else key.strip()
    shown = f"{where} {key}={spec}"
    if isinstance(spec, list):
        if not spec:
            raise HarnessError(f"{shown}: the list is empty; give at least one value")
        return Dimension(key, "choice", tuple(spec))
    kind, _, args = str(spec).partition(":")
    if kind not in KINDS or not args:
        raise HarnessError(f"{shown}: write KEY=KIND:ARGS with KIND one of {', '.join(KINDS)}; {EXAMPLE}")
    if kind in ("choice", "grid"):
        values = tuple(_scalar(v.strip()) for v in args.split(",") if v.strip())
        if not values:
            raise HarnessError(f"{shown}: list at least one value, e.g. {key}={kind}:0.01,0.1")
        return Dimension(key, kind, values)
    bounds = args.split(":")
    number = int if kind == "randint" else float
    try:
        lo, hi = (number(b) for b in bounds) if len(bounds) == 2 else (None, None)
    except ValueError:
        lo = hi = None
    if lo is None or not (math.isfinite(lo) and math.isfinite(hi)):
        raise HarnessError(f"{shown}: {kind} needs two {number.__name__} bounds LO:HI, e.g. {key}={kind}:1:4")
    if not lo < hi:
        raise HarnessError(f"{shown}: LO must be below HI")
    if kind == "loguniform" and lo <= 0:
        raise HarnessError(f"{shown}: loguniform needs 0 < LO, e.g. {key}=loguniform:1e-5:1e-4")
    return Dimension(key, kind, (lo, hi))


def parse_space(items: list[str], file: str | None = None) -> list[Dimension]:
    """``--search KEY=SPEC`` items, after those of a YAML file ({key: spec} or {objective: {hparam: spec}})."""
    dims: dict[str, Dimension] = {}
    if file:
        for key, spec in yaml_mapping(file, "--search-file", f"a mapping of keys to specs; {EXAMPLE}").items():
            nested = spec.items() if isinstance(spec, dict) else [(None, spec)]
            for sub, value in nested:
                full = f"{key}.{sub}" if sub is not None else str(key)
                dims[full] = parse_dimension(full, value, f"--search-file {file}:")
    for item in items:
        key, eq, spec = item.partition("=")
        if not eq or not key.strip():
            raise HarnessError(f"--search {item!r}: write KEY=KIND:ARGS, {EXAMPLE}")
        dim = parse_dimension(key, spec)
        dims[dim.key] = dim
    if not dims:
        raise HarnessError(f"nothing to search: give --search KEY=KIND:ARGS or --search-file FILE; {EXAMPLE}")
    return list(dims.values())


def check(dims: list[Dimension], base: TrialConfig, objective_cls) -> list[Dimension]:
    """Refuses keys that do not exist and values the trial would refuse; returns the dimensions
    with objective hyper-parameter values converted to their declared types."""
    checked = []
    for dim in dims:
        owner, dot, name = dim.key.partition(".")
        where = f"--search {dim.key}"
        if dot and owner != base.objective:
            raise HarnessError(f"{where}: {owner!r} is not the tuned objective {base.objective!r}")
        if not dot and dim.key not in SETTINGS:
            raise HarnessError(
                f"{where}: unknown key; searchable: {', '.join(SETTINGS)}, or {base.objective}.HPARAM "
                f"(see `harness list --details {base.objective}`)"
            )
        if dim.key in WHOLE and dim.kind in ("uniform", "loguniform"):
            raise HarnessError(f"{where}: takes whole numbers; use randint, choice or grid")
        values = []
        for value in dim.values:  # the bounds, or every listed value: checking them checks all
            try:
                if dot:
                    value = objective_cls.resolve_hparams({name: value})[name]
                base.with_values({dim.key: value})
            except (HarnessError, TypeError) as exc:
                raise HarnessError(f"{where}: value {value!r}: {exc}") from None
            if dot and objective_cls.teacher_stages(
                objective_cls.resolve_hparams({name: value})
            ) != objective_cls.teacher_stages(objective_cls.resolve_hparams({})):
                raise HarnessError(f"{where}: changes the teacher; tune searches the student's settings only")
            values.append(value)
        if dot and dim.kind in ("choice", "grid"):
            dim = replace(dim, values=tuple(values))
        checked.append(dim)
    if base.teacher and any(d.key == "seed" for d in checked):
        raise HarnessError("--search seed: this objective's teacher is trained for --seed only; search other keys")
    return checked


def grid_only(dims: list[Dimension]) -> list[Dimension]:
    """For ``--search-alg grid``: every dimension must list its values."""
    for dim in dims:
        if dim.kind in ("uniform", "loguniform", "randint"):
            raise HarnessError(
                f"--search {dim.key}: grid search needs listed values, e.g. {dim.key}=grid:"
                f"{dim.values[0]},{dim.values[-1]}"
            )
    return [replace(d, kind="grid") for d in dims]


def values_of(cfg: TrialConfig, keys: list[str]) -> dict[str, Any]:
    """The searched keys' values in a trial config (the inverse of ``apply``)."""
    return {k: cfg.objective_args[k.partition(".")[2]] if "." in k else getattr(cfg, k) for k in keys}


def label(values: dict[str, Any]) -> str:
    """``lr=3.2e-05 cmi_min.lambda=0.1``: a sampled point, short."""
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


@dataclass(frozen=True)
class Search:
    """What a search draws and how: its dimensions, the dev metric it maximises, the algorithm
    (random | grid | optuna) seeded with ``seed``, the scheduler (fifo | asha) and the draws."""

    dims: list[Dimension]
    metric: str
    algorithm: str = "random"
    scheduler: str = "fifo"
    num_samples: int = 8
    seed: int = 0

    @property
    def keys(self) -> list[str]:
        return [d.key for d in self.dims]

    def domains(self) -> dict[str, Any]:
        """Ray Tune's domain of each searched key."""
        dims = grid_only(self.dims) if self.algorithm == "grid" else self.dims
        return {d.key: d.tune_domain() for d in dims}

    def total(self) -> int:
        """Tune trials: ``num_samples`` draws of every grid point."""
        return math.prod(len(d.values) for d in self.dims if d.kind == "grid" or self.algorithm == "grid") * (
            self.num_samples
        )

    def tune_options(self, epochs: int, limit: int) -> dict[str, Any]:
        """``tune.TuneConfig`` arguments: metric, searcher and scheduler; ``limit`` trials at once."""
        options: dict[str, Any] = {"metric": self.metric, "mode": "max", "num_samples": self.num_samples}
        if self.algorithm == "optuna":
            options["search_alg"] = _optuna(self.seed)
        else:
            from ray.tune.search.basic_variant import BasicVariantGenerator

            # the same samples every time; max_concurrent here, as Tune ignores it for a given generator
            options["search_alg"] = BasicVariantGenerator(max_concurrent=limit, random_state=self.seed)
            options["max_concurrent_trials"] = None
        if self.scheduler == "asha":
            from ray.tune.schedulers import ASHAScheduler

            # stop_last_trials=False: a trial that reaches the last epoch ends by itself, records and all
            options["scheduler"] = ASHAScheduler(
                max_t=epochs, grace_period=1, reduction_factor=2, stop_last_trials=False
            )
        return options

    def label(self, cfg: TrialConfig) -> str:
        """``sentiment ce lr=0.002``: a trial, by what the search chose."""
        return f"{cfg.task} {cfg.objective} " + label(values_of(cfg, self.keys))

    def best(self, records: list[TrialRecord]) -> TrialRecord | None:
        """The completed trial with the highest ``metric`` on the first dev split at its last epoch."""
        return max((r for r in records if r.completed), key=lambda r: r.score(self.metric), default=None)

    def to_dict(self) -> dict[str, Any]:
        """As run.json keeps it (``space`` for readers, ``dimensions`` for ``--resume``)."""
        return {
            "space": {d.key: f"{d.kind}:{','.join(map(str, d.values))}" for d in self.dims},
            "dimensions": [[d.key, d.kind, list(d.values)] for d in self.dims],
            "metric": self.metric,
            "algorithm": self.algorithm,
            "scheduler": self.scheduler,
            "num_samples": self.num_samples,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Search:
        dims = [Dimension(key, kind, tuple(values)) for key, kind, values in d["dimensions"]]
        fields = ("metric", "algorithm", "scheduler", "num_samples", "seed")
        return cls(dims, **{k: d[k] for k in fields})


def _optuna(seed: int):
    try:
        import optuna
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        raise HarnessError(
            "--search-alg optuna needs Optuna: pip install 'cmi-harness[optuna]' (or use random or grid)"
        ) from None
    return OptunaSearch(sampler=optuna.samplers.TPESampler(seed=seed))


# -- the command --------------------------------------------------------------------------------

BEST_FILE = "best.yaml"
CONFIRM_DIR = "confirm"
TABLE_FILE = "search.csv"


def best_config(cfg: TrialConfig, teacher_model: str | None) -> dict:
    """``harness run --config`` options that rerun ``cfg`` (its seed first)."""
    options = {
        "suite": cfg.suite,
        "tasks": [cfg.task],
        "objectives": [cfg.objective],
        "model": cfg.model,
        "teacher_model": teacher_model,
        "seeds": [cfg.seed],
        "objective_args": {cfg.objective: dict(cfg.objective_args)} if cfg.objective_args else None,
    }
    for key in (*TRAINING, "data_dir", "zero_stage", "precision", "threads"):
        options[key] = getattr(cfg, key)
    return {k: v for k, v in options.items() if v is not None}


def table(records: list[TrialRecord], keys: list[str], metric: str) -> pd.DataFrame:
    """One row per trial: its searched values, status, epochs trained and last dev ``metric``; best first."""
    rows = []
    for r in records:
        epochs = r.epochs or []
        last = TrialRecord.dev_of(epochs[-1])[1] if epochs else {}
        rows.append(
            {
                "trial_id": r.trial_id,
                **values_of(r.config, keys),
                "status": str(r.status),
                "epochs": len(epochs),
                selection(metric): last.get(metric),
                "error": r.error,
            }
        )
    return pd.DataFrame(rows).sort_values(selection(metric), ascending=False, na_position="last")


def selection(metric: str) -> str:
    return f"{metric} (selection score: dev, used to choose)"


def confirm(plugins, opts: Options, best: TrialConfig, seeds: list[int], run: RunDir, console: Console) -> list[float]:
    """Reruns ``best`` on ``seeds`` in RUN_DIR/confirm (a run directory with its own report);
    returns the completed trials' scores on the search metric (first dev split)."""
    from harness.commands import write_report
    from harness.ray_executor import run_ray

    again = replace(  # the winner's values, not the search's (nor its per-task ones)
        opts,
        **{key: getattr(best, key) for key in TRAINING},
        task_args={},
        objective_args={best.objective: dict(best.objective_args)},
    )
    plan = again.plan(plugins, seeds)
    out = RunDir(run.path / CONFIRM_DIR)
    out.path.mkdir(exist_ok=True)  # a resumed search finishes its confirmation: completed trials are kept
    out.write_plan(plan)
    console.print(f"confirming the best config on seeds {', '.join(map(str, seeds))} -> {out}")
    records = run_ray(plan, out, console, opts.ray())
    write_report(plugins, [out.path], out.path / "report", None, console)
    metric = opts.metric or plugins.suites.get(best.suite).task(best.task).primary
    return [r.score(metric) for r in records if r.completed and not r.config.save_teacher]


def cmd_tune(plugins, args: Options, console: Console) -> int:
    from harness.ray_executor import run_search

    if args.resume:
        run = RunDir(args.resume)
        spec = Search.from_dict(run.search())
        plan = run.read_plan("tune")
        if plan.trials[-1].plugins:  # the search's own --plugin modules, wherever it is resumed
            from harness.plugins import load

            plugins = load(tuple(args.plugin) + tuple(plan.trials[-1].plugins))
            args = replace(args, plugin=list(plan.trials[-1].plugins))  # the confirmation's trials are the same
        console.print(f"resuming the search in {run}")
    else:
        plan, spec = define(plugins, args)
        run = RunDir.create(Path(args.output_dir), f"tune-{plan.trials[-1].task}-{plan.trials[-1].objective}")
        run.write_plan(plan, options=args.stored_search(), search=spec.to_dict())
        for note in plan.notes:
            console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
        base = plan.trials[-1]
        console.print(
            f"searching {', '.join(spec.keys)} for {base.task} {base.objective} ({spec.algorithm}, "
            f"{spec.scheduler}, {spec.num_samples} sample(s)) -> {run}"
        )
    try:
        records = run_search(plan, spec, run, console, args.ray(), resume=bool(args.resume))
    except KeyboardInterrupt:
        console.print(f"interrupted: `harness tune --resume {run}` continues the search")
        raise
    return conclude(plugins, args, spec, records, run, console)


def define(plugins, args: Options) -> tuple[Plan, Search]:
    """The plan (teachers, then the trial searched around) and the search of ``args``, refused here
    if anything in them would fail later."""
    if not args.tasks or len(args.tasks) != 1:
        raise HarnessError("harness tune searches one task at a time: give --tasks NAME, e.g. --tasks rte")
    if len(args.objectives) != 1:
        raise HarnessError("harness tune searches one objective at a time: give --objectives NAME")
    check_output_dir(Path(args.output_dir))
    dims = parse_space(args.search, args.search_file)
    plan = args.plan(plugins, [args.seed])
    base = plan.trials[-1]
    dims = check(dims, base, plugins.objectives.get(base.objective))
    if args.search_alg == "grid":
        grid_only(dims)
    if args.search_alg == "optuna" and any(d.kind == "grid" for d in dims):
        raise HarnessError("--search-alg optuna samples every dimension: write choice:... instead of grid:...")
    task = plugins.suites.get(base.suite).task(base.task)
    metric = args.metric or task.primary
    if metric not in task.metrics:
        raise HarnessError(f"--metric {metric}: {task.name} reports {', '.join(task.metrics)}")
    only_grid = args.search_alg == "grid" or all(d.kind == "grid" for d in dims)
    num_samples = args.num_samples if args.num_samples is not None else (1 if only_grid else 8)
    confirm_seeds(args)
    args.ray()  # refuses a bad --address before a run directory exists
    return plan, Search(dims, metric, args.search_alg, args.scheduler, num_samples, seed=args.seed)


def confirm_seeds(args: Options) -> list[int]:
    """--confirm-seeds, by default the three seeds after --seed; never the search's own seed."""
    seeds = args.confirm_seeds if args.confirm_seeds is not None else [args.seed + i for i in (1, 2, 3)]
    if args.seed in seeds:
        raise HarnessError(
            f"--confirm-seeds {','.join(map(str, seeds))}: leave out the search's seed {args.seed}, whose score chose "
            f"the config; e.g. --confirm-seeds {','.join(str(args.seed + i) for i in (1, 2, 3))}"
        )
    return seeds


def conclude(plugins, args: Options, spec: Search, records: list[TrialRecord], run: RunDir, console: Console) -> int:
    """The search's table, its best config (confirmed on fresh seeds) as a ``--config`` file."""
    metric, run_dir = spec.metric, run.path
    frame = table(records, spec.keys, metric)
    frame.to_csv(run_dir / TABLE_FILE, index=False)
    counts = frame["status"].value_counts().to_dict()
    console.print(f"{len(records)} trial(s): " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    best = spec.best(records)
    if best is None:
        console.print(f"[red]no trial completed[/]; see {run_dir}/{TABLE_FILE} and {run_dir}/run.log")
        return 1
    cfg = best.config
    score = best.score(metric)
    options = best_config(cfg, args.teacher_model)
    chosen = f"{label(values_of(cfg, spec.keys))} (trial {best.trial_id})"
    console.print(
        f"[bold]best[/]: {chosen}; selection score {metric} {100 * score:.2f} (seed {cfg.seed}: chosen on this dev "
        f"set, so biased upwards)",
        soft_wrap=True,
    )
    header = f"# harness tune: best of {len(records)} trials, {chosen}\n"
    header += f"# selection score {metric} {100 * score:.2f} on seed {cfg.seed} (chosen on the dev set: optimistic)\n"
    seeds = confirm_seeds(args)
    if seeds:
        scores = [100 * v for v in confirm(plugins, args, cfg, seeds, run, console)]
        if scores:
            spread = f" ± {pd.Series(scores).std():.2f}" if len(scores) > 1 else ""
            result = f"{metric} {sum(scores) / len(scores):.2f}{spread} over fresh seeds {seeds} (n={len(scores)})"
        else:
            result = f"no confirmation trial completed; see {run_dir / CONFIRM_DIR}"
        header += f"# result: {result}\n"
        console.print(f"[bold]result[/]: {result}", soft_wrap=True)
    (run_dir / BEST_FILE).write_text(header + yaml.safe_dump(options, sort_keys=False))
    console.print(
        f"table: {run_dir}/{TABLE_FILE}; config: {run_dir}/{BEST_FILE} "
        f"(rerun over seeds: harness run --config {run_dir}/{BEST_FILE} --seeds 1,2,3)",
        soft_wrap=True,
    )
    return 0
