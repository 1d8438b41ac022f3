"""The local executor: runs a plan's trials in this process, with live progress, into a run directory."""

from __future__ import annotations

import logging
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from harness.config import Plan
from harness.record import Status, TrialRecord
from harness.rundir import RunDir, line
from harness.trial import run_trial

log = logging.getLogger("harness")


def run_local(
    plan: Plan,
    run: RunDir,
    plugins,
    console: Console,
    quiet: bool = False,
    retrain_teachers: bool = False,
    retries: int = 0,
) -> list[TrialRecord]:
    """Runs the trials in plan order (teachers first); a trial already completed is not run again,
    unless it is a teacher and ``retrain_teachers`` is set; a trial whose teacher failed is skipped;
    a failed trial is run again up to ``retries`` times."""
    records: list[TrialRecord] = []
    by_id: dict[str, TrialRecord] = {}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    )
    with run.log(), Progress(*columns, console=console, disable=quiet, transient=True) as bar:
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
            record = run.settled(cfg, plan.trials, by_id, retrain_teachers)
            stored = record is not None and record.completed
            for attempt in range(retries + 1):
                if record:
                    break
                record = run_trial(cfg, run.trial_dir(cfg), progress, plugins=plugins)
                if record.status == Status.FAILED and attempt < retries:
                    log.warning("%s failed (%s); retrying", tid, record.error)
                    record = None
            assert record is not None  # the last attempt's, whatever its status
            by_id[tid] = record
            run.finish(cfg)
            bar.remove_task(current)
            bar.advance(overall)
            records.append(record)
            text = line(record, time.perf_counter() - started)
            text = text.replace(" s)", " s, stored earlier)") if stored else text
            log.info("%s", Text.from_markup(text).plain)
            if not quiet:
                console.print(text, soft_wrap=True)
    return records
