"""Live progress of Ray Tune trials in the terminal, and a line per finished trial in RUN_DIR/run.log.

A Tune ``Callback`` on the driver keeps each trial's state (pending, running, done, failed,
stopped), its last reported epoch and dev metric, and, read about once a second from a file
the trial's first worker rewrites (``peek``), its step and training loss within the epoch; a
rich ``Live`` table shows the counts and the running trials.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ray import tune
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

log = logging.getLogger("harness")


@dataclass
class TrialState:
    label: str
    epochs: int
    status: str = "running"
    epoch: int = 0
    metric: str = ""  # the task's dev metric, as reported by the trial
    score: float | None = None
    reports: list[dict] = field(default_factory=list)  # what the trial reported, once per epoch
    step: dict = field(default_factory=dict)  # the latest {"step", "total_steps", "loss"} seen

    def latest(self) -> str:
        return "-" if self.score is None else f"{self.metric} {100 * self.score:.2f}"


class LiveProgress(tune.Callback):
    """``describe(tune_config) -> (key, label, epochs)`` names a Tune trial; ``outcome(key,
    errored, state)`` says how it ended: ("done" | "failed" | "stopped", the line to print);
    ``peek(key)`` returns a running trial's latest step, or None."""

    def __init__(
        self,
        console: Console,
        total: int,
        describe: Callable[[dict], tuple[str, str, int]],
        outcome: Callable[[str, bool, TrialState], tuple[str, str]],
        quiet: bool = False,
        peek: Callable[[str], dict | None] = lambda key: None,
    ):
        self.console, self.total, self.describe, self.outcome, self.quiet = console, total, describe, outcome, quiet
        self.peek, self.peeked = peek, 0.0
        self.trials: dict[str, TrialState] = {}
        self.live = Live(self._render(), console=console, transient=True, auto_refresh=False) if not quiet else None

    def __reduce__(self):  # Tune pickles its callbacks with the experiment state: the terminal stays here
        return tune.Callback, ()

    def __enter__(self):
        if self.live:
            self.live.start()
        return self

    def __exit__(self, *exc):
        if self.live:
            self.live.stop()

    def _state(self, trial) -> tuple[str, TrialState]:
        key, label, epochs = self.describe(trial.config)
        return key, self.trials.setdefault(key, TrialState(label, epochs))

    def _render(self):
        counts = {s: sum(t.status == s for t in self.trials.values()) for s in ("running", "done", "failed", "stopped")}
        pending = max(self.total - len(self.trials), 0)
        head = f"trials: {pending} pending, " + ", ".join(f"{counts[s]} {s}" for s in ("running", "done", "failed"))
        if counts["stopped"]:
            head += f", {counts['stopped']} stopped early"
        table = Table("running trial", "epoch", "step", "loss", "dev metric", box=None, show_edge=False)
        for t in self.trials.values():
            if t.status == "running":
                step = f"{t.step['step']}/{t.step['total_steps']}" if t.step else "-"
                loss = f"{t.step['loss']:.4f}" if t.step else "-"
                table.add_row(t.label, f"{t.epoch}/{t.epochs}", step, loss, t.latest())
        return Group(head, table) if table.row_count else head

    def _refresh(self):
        if self.live:
            self.live.update(self._render(), refresh=True)

    def on_step_end(self, iteration, trials, **info):  # Tune's event loop: often; files read once a second
        if self.live is None or time.monotonic() - self.peeked < 1.0:
            return
        self.peeked = time.monotonic()
        for key, state in self.trials.items():
            if state.status == "running":
                state.step = self.peek(key) or state.step
        self._refresh()

    def on_trial_start(self, iteration, trials, trial, **info):
        key, state = self._state(trial)
        state.status = "running"
        log.info("started %s", state.label)
        self._refresh()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        _, state = self._state(trial)
        state.reports.append(result)
        state.epoch, state.metric, state.score = result["epoch"], result["metric"], result["score"]
        log.info("%s: epoch %s, %s", state.label, state.epoch, state.latest())
        self._refresh()

    def on_trial_recover(self, iteration, trials, trial, **info):
        _, state = self._state(trial)
        log.warning("%s failed; retrying (%s)", state.label, trial.error_file or "no error file")
        self._refresh()

    def _end(self, trial, errored: bool):
        key, state = self._state(trial)
        state.status, text = self.outcome(key, errored, state)
        log.info("%s", Console().render_str(text).plain)
        if not self.quiet:
            self.console.print(text, soft_wrap=True)
        self._refresh()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._end(trial, errored=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._end(trial, errored=True)
