"""``harness tune``: a hyper-parameter search of one objective on one task through Ray Tune (its
space and algorithm: harness.search).

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

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import yaml
from rich.console import Console

from harness.config import TRAINING, Plan, TrialConfig
from harness.errors import HarnessError
from harness.options import Options
from harness.record import TrialRecord
from harness.rundir import RunDir, check_output_dir
from harness.search import Search, check, grid_only, label, parse_space, values_of

if TYPE_CHECKING:
    from harness.ray_executor import RayOptions

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


def confirm(
    plugins, opts: Options, best: TrialConfig, seeds: list[int], run: RunDir, console: Console, ray_opts: RayOptions
) -> list[float]:
    """Reruns ``best`` on ``seeds`` in RUN_DIR/confirm (a run directory with its own report), on the
    search's Ray (``ray_opts``); returns the completed trials' scores on the search metric (first dev split)."""
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
    records = run_ray(plan, out, console, ray_opts)
    write_report(plugins, [out.path], out.path / "report", None, console)
    metric = opts.metric or plugins.suites.get(best.suite).task(best.task).primary
    return [r.score(metric) for r in records if r.completed and not r.config.save_teacher]


def cmd_tune(plugins, args: Options, console: Console) -> int:
    from harness.ray_executor import ray_session, run_search

    if args.resume:
        run = RunDir(args.resume)
        spec = Search.from_dict(run.search())
        plan = run.read_plan("tune")
        if plan.trials[-1].plugins:  # the search's own --plugin modules, wherever it is resumed
            from harness.plugins import load

            plugins = load(tuple(args.plugin) + tuple(plan.trials[-1].plugins))
            args = replace(args, plugin=list(plan.trials[-1].plugins))  # the confirmation's trials are the same
        console.print(f"resuming the search in {run}")
        ray_opts = args.ray()  # checks --address
    else:
        plan, spec, ray_opts = define(plugins, args)
        run = RunDir.create(Path(args.output_dir), f"tune-{plan.trials[-1].task}-{plan.trials[-1].objective}")
        run.write_plan(plan, options=args.stored_search(), search=spec.to_dict())
        for note in plan.notes:
            console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
        base = plan.trials[-1]
        console.print(
            f"searching {', '.join(spec.keys)} for {base.task} {base.objective} ({spec.algorithm}, "
            f"{spec.scheduler}, {spec.num_samples} sample(s)) -> {run}"
        )
    with ray_session(run, ray_opts, plan.trials[-1].plugins):  # one Ray for the search and its confirmation
        try:
            records = run_search(plan, spec, run, console, ray_opts, resume=bool(args.resume))
        except KeyboardInterrupt:
            console.print(f"interrupted: `harness tune --resume {run}` continues the search")
            raise
        return conclude(plugins, args, spec, records, run, console, ray_opts)


def define(plugins, args: Options) -> tuple[Plan, Search, RayOptions]:
    """The plan (teachers, then the trial searched around), the search of ``args`` and its Ray
    settings, refused here if anything in them would fail later."""
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
    num_samples = args.num_samples if args.num_samples is not None else (1 if only_grid else Search.num_samples)
    confirm_seeds(args)
    ray_opts = args.ray()  # refuses a bad --address before a run directory exists
    return plan, Search(dims, metric, args.search_alg, args.scheduler, num_samples, seed=args.seed), ray_opts


def confirm_seeds(args: Options) -> list[int]:
    """--confirm-seeds, by default the three seeds after --seed; never the search's own seed."""
    seeds = args.confirm_seeds if args.confirm_seeds is not None else [args.seed + i for i in (1, 2, 3)]
    if args.seed in seeds:
        raise HarnessError(
            f"--confirm-seeds {','.join(map(str, seeds))}: leave out the search's seed {args.seed}, whose score chose "
            f"the config; e.g. --confirm-seeds {','.join(str(args.seed + i) for i in (1, 2, 3))}"
        )
    return seeds


def conclude(
    plugins,
    args: Options,
    spec: Search,
    records: list[TrialRecord],
    run: RunDir,
    console: Console,
    ray_opts: RayOptions,
) -> int:
    """The search's table, its best config (confirmed on fresh seeds, on ``ray_opts``) as a ``--config`` file."""
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
        scores = [100 * v for v in confirm(plugins, args, cfg, seeds, run, console, ray_opts)]
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
