"""Runs a plan's trials in this process, with live progress, into a run directory."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from harness.config import TrialConfig
from harness.errors import HarnessError
from harness.planner import Plan
from harness.results import PREDICTIONS, RECORD, SCHEMA, atomic_write, completed_record, read_json, write_json
from harness.trial import run_trial

RUN_FILE = "run.json"
LOG_FILE = "run.log"
log = logging.getLogger("harness")


@contextlib.contextmanager
def run_log(run_dir: Path, *names: str) -> Iterator[None]:
    """The harness's log (and that of the named libraries' loggers) to RUN_DIR/run.log, not the terminal."""
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(name) for name in ("harness", *names)]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
        lg.propagate = False
    try:
        yield
    finally:
        for lg, (level, propagate) in zip(loggers, saved, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate
        handler.close()


def check_output_dir(output_dir: Path) -> None:
    """Refuses an --output-dir that is a file or cannot be written, before anything is planned or made."""
    path = Path(output_dir).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise HarnessError(f"--output-dir {output_dir}: {existing} is a file; give a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise HarnessError(f"--output-dir {output_dir}: {existing} is not writable; choose another --output-dir")


def new_run_dir(output_dir: Path, suite: str) -> Path:
    """A new directory OUTPUT_DIR/<time>-<suite>[-n], made atomically (two runs started at the same
    instant get different ones)."""
    base = output_dir / f"{datetime.now():%Y%m%d-%H%M%S}-{suite}"
    output_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise HarnessError(f"--output-dir {output_dir}: cannot make a new run directory there")


def write_plan(plan: Plan, run_dir: Path, **extra) -> None:
    run = {
        "command": sys.argv,
        "created": datetime.now().isoformat(timespec="seconds"),
        "notes": plan.notes,
        "trials": [{"trial_id": t.trial_id(), "config": t.to_dict()} for t in plan.trials],
        **extra,
    }
    write_json(run_dir / RUN_FILE, run)


def read_plan(run_dir: Path) -> Plan:
    """The plan of an earlier run, for ``harness run --resume RUN_DIR``."""
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise HarnessError(f"--resume {run_dir}: no {RUN_FILE} there; give a directory that `harness run` created")
    damaged = f"--resume {run_dir}: {path} is damaged"
    try:
        run = read_json(path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HarnessError(f"{damaged} ({exc}); start the run again with the same options") from None
    if isinstance(run, dict) and "search" in run:
        raise HarnessError(f"--resume {run_dir}: a `harness tune` run cannot be resumed; start the search again")
    if not isinstance(run, dict) or not isinstance(run.get("trials"), list) or not run["trials"]:
        raise HarnessError(f"{damaged} (it lists no trials); start the run again with the same options")
    try:
        trials = [TrialConfig.from_dict(t["config"]) for t in run["trials"]]
    except (KeyError, TypeError) as exc:
        raise HarnessError(
            f"{damaged} (a trial entry lacks {exc}); start the run again with the same options"
        ) from None
    return Plan(trials, run.get("notes", []))


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


def needless_teacher(cfg: TrialConfig, trials: list[TrialConfig], run_dir: Path) -> dict | None:
    """The run's copy of a teacher's record when the teacher is gone from its store (another
    machine, a new checkout) but nothing needs it any more: every trial that learns from it, or
    continues it, has completed. Else None, and the teacher is trained (again)."""
    copy = completed_record(run_dir / "trials" / cfg.trial_id())
    if not cfg.save_teacher or copy is None:
        return None
    tid = cfg.trial_id()
    for dep in (c for c in trials if tid in (c.teacher, c.init_from)):
        done = completed_record(dep.trial_dir(run_dir)) or needless_teacher(dep, trials, run_dir)
        if done is None:
            return None
    return copy


def publish(cfg: TrialConfig, run_dir: Path) -> None:
    """Copies a teacher's record and dev predictions into the run, so its report shows the teachers."""
    src, dst = cfg.trial_dir(run_dir), run_dir / "trials" / cfg.trial_id()
    for name in (RECORD, PREDICTIONS):
        if (src / name).exists():
            atomic_write(dst / name, (src / name).read_bytes())


def run_local(
    plan: Plan,
    run_dir: Path,
    plugins,
    console: Console,
    quiet: bool = False,
    retrain_teachers: bool = False,
    retries: int = 0,
) -> list[dict]:
    """Runs the trials in plan order (teachers first); a trial already completed is not run again,
    unless it is a teacher and ``retrain_teachers`` is set; a trial whose teacher failed is skipped;
    a failed trial is run again up to ``retries`` times."""
    records, by_id = [], {}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    )
    with run_log(run_dir), Progress(*columns, console=console, disable=quiet, transient=True) as bar:
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
            stored = completed_record(cfg.trial_dir(run_dir))
            spare = None if stored else needless_teacher(cfg, plan.trials, run_dir)
            record = spare or skipped(cfg, run_dir, by_id)
            for attempt in range(retries + 1):
                if record:
                    break
                record = run_trial(cfg.to_dict(), cfg.trial_dir(run_dir), progress, plugins=plugins)
                if record["status"] == "failed" and attempt < retries:
                    log.warning("%s failed (%s); retrying", tid, record["error"])
                    record = None
            by_id[tid] = record
            if cfg.save_teacher:
                publish(cfg, run_dir)
            bar.remove_task(current)
            bar.advance(overall)
            records.append(record)
            text = line(record, time.perf_counter() - started)
            text = text.replace(" s)", " s, stored earlier)") if stored or spare else text
            log.info("%s", Text.from_markup(text).plain)
            if not quiet:
                console.print(text, soft_wrap=True)
    return records


def line(record: dict, seconds: float | None = None, label: str | None = None) -> str:
    """One line per finished trial: its headline metric, NCMI and throughput."""
    c = record["config"]
    name = label or f"{c['task']} {c['objective']} {c['model']} seed {c['seed']}"
    if c.get("save_teacher") and not label:
        name = f"teacher {name}"
    if record["status"] != "completed":
        return f"[red]✗[/] {name}: {record['status']}: {record.get('error')}"
    final = next(iter(record["final"].values()))
    metric = record["primary_metric"]
    return (
        f"[green]✓[/] {name}: {metric} {100 * final[metric]:.2f}, NCMI {final['ncmi']:.3g}, "
        f"{record['train_samples_per_s']:.1f} samples/s" + (f" ({seconds:.0f} s)" if seconds is not None else "")
    )
