"""``harness tune``: a hyper-parameter search of one objective on one task, through Ray Tune.

Writes, besides the trials' records, RUN_DIR/search.csv (one row per trial: the searched
values, status, epochs trained, dev metric) and RUN_DIR/best.yaml: the best trial's settings
as a ``harness run --config`` file, so the winner can be rerun over seeds.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml
from rich.console import Console

from harness import search
from harness.config import TrialConfig
from harness.errors import HarnessError

BEST_FILE = "best.yaml"
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
    for key in (
        "epochs",
        "lr",
        "batch_size",
        "max_seq_length",
        "warmup_ratio",
        "weight_decay",
        "max_train_samples",
        "data_dir",
        "zero_stage",
        "precision",
        "threads",
    ):
        options[key] = getattr(cfg, key)
    return {k: v for k, v in options.items() if v is not None}


def table(records: list[dict], keys: list[str], metric: str) -> pd.DataFrame:
    """One row per trial: its searched values, status, epochs trained and last dev ``metric``; best first."""
    rows = []
    for r in records:
        cfg = TrialConfig.from_dict(r["config"])
        epochs = r.get("epochs") or []
        last = next((v for k, v in epochs[-1].items() if k.startswith("validation")), {}) if epochs else {}
        rows.append(
            {
                "trial_id": r["trial_id"],
                **search.values_of(cfg, keys),
                "status": r["status"],
                "epochs": len(epochs),
                metric: last.get(metric),
                "error": r.get("error"),
            }
        )
    return pd.DataFrame(rows).sort_values(metric, ascending=False, na_position="last")


def cmd_tune(loaded, args, console: Console) -> int:
    from harness.cli import plan_from_args, ray_options
    from harness.ray_executor import Search, run_search
    from harness.runner import new_run_dir, write_plan

    if not args.tasks or len(args.tasks) != 1:
        raise HarnessError("harness tune searches one task at a time: give --tasks NAME, e.g. --tasks rte")
    if len(args.objectives) != 1:
        raise HarnessError("harness tune searches one objective at a time: give --objectives NAME")
    dims = search.parse_space(args.search, args.search_file)
    plan = plan_from_args(loaded, args, [args.seed])
    base = plan.trials[-1]
    dims = search.check(dims, base, loaded.objectives.get(base.objective))
    if args.search_alg == "grid":
        search.grid_only(dims)
    if args.search_alg == "optuna" and any(d.kind == "grid" for d in dims):
        raise HarnessError("--search-alg optuna samples every dimension: write choice:... instead of grid:...")
    task = loaded.suites.get(base.suite).task(base.task)
    metric = args.metric or task.primary
    if metric not in task.metrics:
        raise HarnessError(f"--metric {metric}: {task.name} reports {', '.join(task.metrics)}")
    only_grid = args.search_alg == "grid" or all(d.kind == "grid" for d in dims)
    num_samples = args.num_samples or (1 if only_grid else 8)
    if num_samples < 1:
        raise HarnessError(f"--num-samples {num_samples}: must be at least 1")
    spec = Search(dims, metric, args.search_alg, args.scheduler, num_samples, seed=args.seed)
    opts = ray_options(args)
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    run_dir = new_run_dir(Path(args.output_dir), f"tune-{base.task}-{base.objective}")
    described = {d.key: f"{d.kind}:{','.join(map(str, d.values))}" for d in dims}
    write_plan(
        plan,
        run_dir,
        search={"space": described, "algorithm": spec.algorithm, "scheduler": spec.scheduler, "metric": metric},
    )
    console.print(
        f"searching {', '.join(described)} for {base.task} {base.objective} ({spec.algorithm}, "
        f"{spec.scheduler}, {num_samples} sample(s)) -> {run_dir}"
    )
    try:
        records, best = run_search(plan, spec, run_dir, console, opts)
    except KeyboardInterrupt:
        console.print(f"interrupted; finished trials are in {run_dir}/trials")
        raise
    frame = table(records, list(described), metric)
    frame.to_csv(run_dir / TABLE_FILE, index=False)
    counts = frame["status"].value_counts().to_dict()
    console.print(f"{len(records)} trial(s): " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    if best is None:
        console.print(f"[red]no trial completed[/]; see {run_dir}/{TABLE_FILE} and {run_dir}/run.log")
        return 1
    cfg = TrialConfig.from_dict(best["config"])
    score = next(iter(best["final"].values()))[metric]
    options = best_config(cfg, args.teacher_model)
    header = f"# harness tune: best of {len(records)} trials, {metric} {100 * score:.2f} (trial {best['trial_id']})\n"
    (run_dir / BEST_FILE).write_text(header + yaml.safe_dump(options, sort_keys=False))
    console.print(
        f"[bold]best[/]: {search.label(search.values_of(cfg, list(described)))} -> {metric} {100 * score:.2f} "
        f"(trial {best['trial_id']})"
    )
    console.print(
        f"table: {run_dir}/{TABLE_FILE}; config: {run_dir}/{BEST_FILE} "
        f"(rerun over seeds: harness run --config {run_dir}/{BEST_FILE} --seeds 1,2,3)",
        soft_wrap=True,
    )
    return 0
