"""The run directory: its layout, and the steps around a trial that every executor shares.

```
OUTPUT_DIR/<time>-<suite>/run.json          the command, notes, the planned trials (made atomically)
                         run.log           the harness's (and Ray's) log
                         trials/ID/        one directory per trial: record.json, dev predictions, logs
TEACHER_DIR/ID/                            teacher trials, shared by runs (weights, train logits)
```
``RunDir`` owns that layout: no other module joins a run's paths. The executors (harness.runner
locally, harness.ray_executor on Ray) only execute: what is already done, what must be skipped,
what a finished trial leaves in the run and prints are decided here (``settled``, ``finish``,
``line``). Light to import: a refused command does not load torch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from harness.config import Plan, TrialConfig
from harness.errors import HarnessError
from harness.record import Status, TrialRecord
from harness.results import PREDICTIONS, RECORD, atomic_write, read_json, write_json

NOUN = {"run": "run", "tune": "search"}
RUN_FILE = "run.json"
LOG_FILE = "run.log"
log = logging.getLogger("harness")


def check_output_dir(output_dir: Path) -> None:
    """Refuses an --output-dir that is a file or cannot be written, before anything is planned or made."""
    path = Path(output_dir).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise HarnessError(f"--output-dir {output_dir}: {existing} is a file; give a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise HarnessError(f"--output-dir {output_dir}: {existing} is not writable; choose another --output-dir")


class RunDir:
    """One run's directory (``path``), where its plan, log and trials live."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def __str__(self) -> str:
        return str(self.path)

    @classmethod
    def earlier(cls, path: str) -> RunDir:
        """An earlier run given to ``--reuse``, refused unless `harness run` made it."""
        if not (Path(path) / "trials").is_dir():
            raise HarnessError(f"--reuse {path}: no trials/ there; give a directory that `harness run` created")
        return cls(Path(path).resolve())

    @classmethod
    def create(cls, output_dir: Path, name: str) -> RunDir:
        """A new directory OUTPUT_DIR/<time>-<name>[-n], made atomically (two runs started at the same
        instant get different ones)."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)  # e.g. hf:org/data: one folder, not three
        base = output_dir / f"{datetime.now():%Y%m%d-%H%M%S}-{safe}"
        output_dir.mkdir(parents=True, exist_ok=True)
        for n in range(1, 10_000):
            path = base if n == 1 else base.with_name(f"{base.name}-{n}")
            try:
                path.mkdir()
                return cls(path)
            except FileExistsError:
                continue
        raise HarnessError(f"--output-dir {output_dir}: cannot make a new run directory there")

    # -- the plan ------------------------------------------------------------------------------

    def write_plan(self, plan: Plan, **extra) -> None:
        run = {
            "command": sys.argv,
            "created": datetime.now().isoformat(timespec="seconds"),
            "notes": plan.notes,
            "trials": [{"trial_id": t.trial_id(), "config": t.to_dict()} for t in plan.trials],
            **extra,
        }
        write_json(self.path / RUN_FILE, run)

    def read_plan(self, command: str = "run") -> Plan:
        """The plan of an earlier run, for ``harness run --resume RUN_DIR`` (``command`` "run") or
        ``harness tune --resume RUN_DIR`` ("tune": a search's)."""
        run = self._run_file(command)
        damaged = f"--resume {self}: {self.path / RUN_FILE} is damaged"
        if not isinstance(run, dict) or not isinstance(run.get("trials"), list) or not run["trials"]:
            raise HarnessError(f"{damaged} (it lists no trials); start the {NOUN[command]} again with the same options")
        try:
            trials = [TrialConfig.from_dict(t["config"]) for t in run["trials"]]
        except (KeyError, TypeError) as exc:
            raise HarnessError(
                f"{damaged} (a trial entry lacks {exc}); start the {NOUN[command]} again with the same options"
            ) from None
        return Plan(trials, run.get("notes", []))

    def adopt(self, trials: list[TrialConfig], earlier: RunDir) -> list[str]:
        """Copies into this run the completed trials of ``earlier`` that this run plans, so they count
        as done (``harness run --reuse``); returns their ids. A trial id hashes every setting that
        changes training and the data's fingerprint, so an equal id is the same trial."""
        adopted = []
        for cfg in trials:
            source, target = earlier._in_run(cfg), self._in_run(cfg)
            done = TrialRecord.load(source)
            if done and done.completed and done.config.trial_id() == cfg.trial_id() and not target.exists():
                shutil.copytree(source, target)
                adopted.append(cfg.trial_id())
        return adopted

    def search(self) -> dict:
        """A search's definition as run.json keeps it (harness.search.Search.to_dict)."""
        run = self._run_file("tune")
        if not isinstance(run.get("search"), dict) or "dimensions" not in run["search"]:
            raise HarnessError(
                f"--resume {self}: its {RUN_FILE} does not keep the search's dimensions (a search started "
                "before `harness tune --resume` existed); start the search again"
            )
        return run["search"]

    def _run_file(self, command: str) -> dict:
        path = self.path / RUN_FILE
        made = f"`harness {command}`"
        if not path.is_file():
            raise HarnessError(f"--resume {self}: no {RUN_FILE} there; give a directory that {made} created")
        try:
            run = read_json(path)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HarnessError(
                f"--resume {self}: {path} is damaged ({exc}); start the {NOUN[command]} again with the same options"
            ) from None
        searched = isinstance(run, dict) and "search" in run
        if searched and command == "run":
            raise HarnessError(
                f"--resume {self}: a `harness tune` search; continue it with `harness tune --resume {self}`"
            )
        if not searched and command == "tune":
            raise HarnessError(f"--resume {self}: not a search; finish it with `harness run --resume {self}`")
        return run

    def stored_options(self) -> dict:
        """The options run.json keeps (how the trials execute: harness.options.EXECUTION); {} for runs
        made before it kept them, or when it cannot be read (``read_plan`` then says why)."""
        path = self.path / RUN_FILE
        try:
            run = read_json(path) if path.is_file() else {}
        except (ValueError, UnicodeDecodeError):
            return {}
        return run.get("options", {}) if isinstance(run, dict) else {}

    def notes(self) -> list[str]:
        """The notes the run's plan made about its data (none when run.json is absent)."""
        path = self.path / RUN_FILE
        if not path.is_file():
            return []
        try:
            return list(read_json(path).get("notes", []))
        except ValueError:
            raise HarnessError(f"{path}: not valid JSON; the run's plan is damaged") from None

    @contextlib.contextmanager
    def log(self, *names: str) -> Iterator[None]:
        """The harness's log (and that of the named libraries' loggers) to RUN_DIR/run.log only, not the
        terminal; inside another run's block (``harness tune``'s confirmation run), to this run's log alone."""
        self.path.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.path / LOG_FILE)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        loggers = [logging.getLogger(name) for name in ("harness", *names)]
        saved = [(lg.level, lg.propagate, lg.handlers) for lg in loggers]
        for lg in loggers:
            lg.handlers = [handler]
            lg.setLevel(logging.INFO)
            lg.propagate = False
        try:
            yield
        finally:
            for lg, (level, propagate, handlers) in zip(loggers, saved, strict=True):
                lg.handlers = handlers
                lg.setLevel(level)
                lg.propagate = propagate
            handler.close()

    @property
    def log_file(self) -> Path:
        return self.path / LOG_FILE

    # -- trials --------------------------------------------------------------------------------

    def trial_dir(self, cfg: TrialConfig) -> Path:
        """Teachers live in the shared teacher store, so later runs reuse them; others in the run."""
        if cfg.save_teacher:
            assert cfg.teacher_store, "the planner gives every teacher stage its store"
            return Path(cfg.teacher_store) / cfg.trial_id()
        return self._in_run(cfg)

    def _in_run(self, cfg: TrialConfig) -> Path:
        return self.path / "trials" / cfg.trial_id()

    def record(self, cfg: TrialConfig) -> TrialRecord | None:
        """The trial's record, whatever its status; None before it wrote one."""
        return TrialRecord.load(self.trial_dir(cfg))

    def write(self, record: TrialRecord) -> None:
        record.save(self.trial_dir(record.config))

    def settled(
        self, cfg: TrialConfig, trials: list[TrialConfig], by_id: dict[str, TrialRecord], retrain_teachers: bool
    ) -> TrialRecord | None:
        """The record of a trial that needs no running: completed earlier (a teacher only when not
        ``retrain_teachers``), a teacher nothing needs any more, or skipped because a teacher it
        depends on (``by_id``: the records so far) did not complete. None: run it."""
        if retrain_teachers and cfg.save_teacher:
            (self.trial_dir(cfg) / RECORD).unlink(missing_ok=True)
            return self.skipped(cfg, by_id)
        done = self.record(cfg)
        if done and done.completed:
            return done
        return self._needless_teacher(cfg, trials) or self.skipped(cfg, by_id)

    def skipped(self, cfg: TrialConfig, by_id: dict[str, TrialRecord]) -> TrialRecord | None:
        """A record saying why ``cfg`` cannot run, when a teacher it depends on did not complete."""
        for dep in filter(None, (cfg.init_from, cfg.teacher)):
            got = by_id.get(dep)
            if got is None or not got.completed:
                reason = f"teacher {dep} {got.status if got else 'missing'}: {got.error if got else ''}".rstrip(": ")
                record = TrialRecord.skipped(cfg, reason)
                self.write(record)
                return record
        return None

    def _needless_teacher(self, cfg: TrialConfig, trials: list[TrialConfig]) -> TrialRecord | None:
        """The run's copy of a teacher's record when the teacher is gone from its store (another
        machine, a new checkout) but nothing needs it any more: every trial that learns from it, or
        continues it, has completed. Else None, and the teacher is trained (again)."""
        if not cfg.save_teacher:
            return None
        copy = TrialRecord.load(self._in_run(cfg))
        if copy is None or not copy.completed:
            return None
        tid = cfg.trial_id()
        for dep in (c for c in trials if tid in (c.teacher, c.init_from)):
            done = self.record(dep)
            if not (done and done.completed) and self._needless_teacher(dep, trials) is None:
                return None
        return copy

    def finish(self, cfg: TrialConfig) -> None:
        """After a trial: a teacher's record and dev predictions are copied into the run, so its report
        shows the teachers."""
        if not cfg.save_teacher:
            return
        src, dst = self.trial_dir(cfg), self._in_run(cfg)
        for name in (RECORD, PREDICTIONS):
            if (src / name).exists():
                atomic_write(dst / name, (src / name).read_bytes())


def line(record: TrialRecord, seconds: float | None = None, label: str | None = None) -> str:
    """One line per finished trial: its headline metric, NCMI and throughput."""
    c = record.config
    name = label or f"{c.task} {record.arm or c.objective} {c.model} seed {c.seed}"
    if c.save_teacher and not label:
        name = f"teacher {name}"
    if record.status != Status.COMPLETED:
        return f"[red]✗[/] {name}: {record.status}: {record.error}"
    return (
        f"[green]✓[/] {name}: {record.primary_metric} {100 * record.score():.2f}, NCMI {record.headline['ncmi']:.3g}, "
        f"{record.train_samples_per_s:.1f} samples/s" + (f" ({seconds:.0f} s)" if seconds is not None else "")
    )
