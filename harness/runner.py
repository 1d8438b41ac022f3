"""Runs a plan's trials in this process, with live progress, into a run directory."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.config import TrialConfig
from harness.errors import HarnessError
from harness.planner import Plan
from harness.results import read_json, write_json
from harness.trial import run_trial

RUN_FILE = "run.json"


def new_run_dir(output_dir: Path, suite: str) -> Path:
    base = output_dir / f"{datetime.now():%Y%m%d-%H%M%S}-{suite}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path


def write_plan(plan: Plan, run_dir: Path) -> None:
    run = {
        "command": sys.argv,
        "created": datetime.now().isoformat(timespec="seconds"),
        "notes": plan.notes,
        "trials": [{"trial_id": t.trial_id(), "config": t.to_dict()} for t in plan.trials],
    }
    write_json(run_dir / RUN_FILE, run)


def read_plan(run_dir: Path) -> Plan:
    """The plan of an earlier run, for ``harness run --resume RUN_DIR``."""
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise HarnessError(f"--resume {run_dir}: no {RUN_FILE} there; give a directory that `harness run` created")
    run = read_json(path)
    return Plan([TrialConfig.from_dict(t["config"]) for t in run["trials"]], run.get("notes", []))


def run_local(plan: Plan, run_dir: Path, plugins, console: Console, quiet: bool = False) -> list[dict]:
    """Runs the trials in order; a trial already completed in ``run_dir`` is not run again."""
    records = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=quiet, transient=True) as bar:
        overall = bar.add_task("trials", total=len(plan.trials), info="")
        for cfg in plan.trials:
            tid = cfg.trial_id()
            current = bar.add_task(f"{cfg.task} {cfg.objective} seed {cfg.seed}", total=None, info="")

            def progress(event, current=current):
                if event["event"] == "step":
                    bar.update(
                        current,
                        completed=event["step"],
                        total=event["total_steps"],
                        info=f"epoch {event['epoch']} loss {event['loss']:.4f}",
                    )

            started = time.perf_counter()
            record = run_trial(cfg.to_dict(), run_dir / "trials" / tid, progress, plugins=plugins)
            bar.remove_task(current)
            bar.advance(overall)
            records.append(record)
            if not quiet:
                console.print(_line(record, time.perf_counter() - started), soft_wrap=True)
    return records


def _line(record: dict, seconds: float) -> str:
    c = record["config"]
    name = f"{c['task']} {c['objective']} seed {c['seed']}"
    if record["status"] != "completed":
        return f"[red]✗[/] {name}: failed: {record.get('error')}"
    final = next(iter(record["final"].values()))
    metric = record["primary_metric"]
    return (
        f"[green]✓[/] {name}: {metric} {100 * final[metric]:.2f}, NCMI {final['ncmi']:.3g}, "
        f"{record['train_samples_per_s']:.1f} samples/s ({seconds:.0f} s)"
    )
