"""The run directory: its layout and the steps every executor shares.

```
OUTPUT_DIR/<time>-<suite>/run.json          the command, notes, the planned trials (made atomically)
                         run.log           the harness's (and Ray's) log
                         trials/ID/        one directory per trial: record.json, dev predictions, logs
TEACHER_DIR/ID/                            teacher trials, shared by runs (weights, train logits)
```
The executors (harness.runner locally, harness.ray_executor on Ray) only execute; what to run,
what to skip and what a finished trial prints are decided here. Light to import: a refused
command does not load torch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from harness.config import TrialConfig
from harness.errors import HarnessError
from harness.planner import Plan
from harness.results import PREDICTIONS, RECORD, SCHEMA, atomic_write, completed_record, read_json, write_json

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


def line(record: dict, seconds: float | None = None, label: str | None = None) -> str:
    """One line per finished trial: its headline metric, NCMI and throughput."""
    c = record["config"]
    name = label or f"{c['task']} {record.get('arm') or c['objective']} {c['model']} seed {c['seed']}"
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
