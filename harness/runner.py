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
from harness.results import PREDICTIONS, RECORD, SCHEMA, atomic_write, completed_record, read_json, write_json
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


def skipped(cfg: TrialConfig, run_dir: Path, by_id: dict[str, dict]) -> dict | None:
    """A record saying why ``cfg`` cannot run, when a teacher it depends on did not complete."""
    for dep in filter(None, (cfg.init_from, cfg.teacher)):
        dep_record = by_id.get(dep, {})
        if dep_record.get("status") != "completed":
            reason = f"teacher {dep} {dep_record.get('status', 'missing')}: {dep_record.get('error', '')}".rstrip(": ")
            record = {
                "schema": SCHEMA,
                "trial_id": cfg.trial_id(),
                "status": "skipped",
                "config": cfg.to_dict(),
                "error": reason,
            }
            write_json(cfg.trial_dir(run_dir) / RECORD, record)
            return record
    return None


def publish(cfg: TrialConfig, run_dir: Path) -> None:
    """Copies a teacher's record and dev predictions into the run, so its report shows the teachers."""
    src, dst = cfg.trial_dir(run_dir), run_dir / "trials" / cfg.trial_id()
    for name in (RECORD, PREDICTIONS):
        if (src / name).exists():
            atomic_write(dst / name, (src / name).read_bytes())


def run_local(
    plan: Plan, run_dir: Path, plugins, console: Console, quiet: bool = False, retrain_teachers: bool = False
) -> list[dict]:
    """Runs the trials in plan order (teachers first); a trial already completed is not run again,
    unless it is a teacher and ``retrain_teachers`` is set; a trial whose teacher failed is skipped."""
    records, by_id = [], {}
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
            if retrain_teachers and cfg.save_teacher:
                (cfg.trial_dir(run_dir) / RECORD).unlink(missing_ok=True)
            stored = completed_record(cfg.trial_dir(run_dir)) is not None
            record = skipped(cfg, run_dir, by_id) or run_trial(
                cfg.to_dict(), cfg.trial_dir(run_dir), progress, plugins=plugins
            )
            by_id[tid] = record
            if cfg.save_teacher:
                publish(cfg, run_dir)
            bar.remove_task(current)
            bar.advance(overall)
            records.append(record)
            if not quiet:
                text = line(record, time.perf_counter() - started)
                console.print(text.replace(" s)", " s, stored earlier)") if stored else text, soft_wrap=True)
    return records


def line(record: dict, seconds: float | None = None) -> str:
    """One line per finished trial: its headline metric, NCMI and throughput."""
    c = record["config"]
    name = f"{c['task']} {c['objective']} {c['model']} seed {c['seed']}"
    if c.get("save_teacher"):
        name = f"teacher {name}"
    if record["status"] != "completed":
        return f"[red]✗[/] {name}: {record['status']}: {record.get('error')}"
    final = next(iter(record["final"].values()))
    metric = record["primary_metric"]
    return (
        f"[green]✓[/] {name}: {metric} {100 * final[metric]:.2f}, NCMI {final['ncmi']:.3g}, "
        f"{record['train_samples_per_s']:.1f} samples/s" + (f" ({seconds:.0f} s)" if seconds is not None else "")
    )
