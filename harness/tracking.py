"""Experiment trackers: each trial's config, per-step training loss, per-epoch dev metrics and dev
CMI/NCMI, logged to TensorBoard, MLflow or a plugin's tracker, from inside the trial (so the same
code serves both executors). A tracker is a plugin (``harness_trackers`` hook), like a reporter.

A ``Tracker`` names the package it needs; ``open(trial_dir, tracking_dir, config)`` returns a
``Run`` with ``params(dict)``, ``metrics(dict, step)`` and ``close()``.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness.errors import HarnessError

log = logging.getLogger("harness")

PER_STEP = "train/loss"  # the one metric logged at each optimiser step; every other one at its epoch


class Run(Protocol):
    def params(self, values: dict[str, Any]) -> None: ...
    def metrics(self, values: dict[str, float], step: int) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Tracker:
    name: str
    description: str
    module: str  # the import that must work, e.g. "mlflow"
    install: str  # how to get it, e.g. "pip install 'cmi-harness[track]'"
    open: Callable[[Path, Path, dict], Run]  # (trial dir, tracking dir, trial config) -> Run


def check(names: tuple[str, ...], registry) -> None:
    """Unknown trackers and missing packages are refused before anything runs."""
    for name in names:
        tracker = registry.get(name)
        if importlib.util.find_spec(tracker.module) is None:
            raise HarnessError(f"--tracker {name} needs the {tracker.module} package: {tracker.install}")


def flat(config: dict, prefix: str = "") -> dict[str, Any]:
    """Nested config as flat ``key.sub`` parameters (trackers store flat strings)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        elif value is not None and value != () and value != []:
            out[f"{prefix}{key}"] = value
    return out


class Guarded:
    """A tracker run whose failure (a full disk, a tracking server gone) costs the trial nothing: the
    first error is logged and kept as ``error`` (the trial's record notes it), and the run is not
    called again."""

    def __init__(self, name: str, start: Callable[[], Run]):
        self.name, self.error = name, None  # type: str, str | None
        self.run = self._call(start)

    def _call(self, fn: Callable, *args) -> Any:
        if self.error is None:
            try:
                return fn(*args)
            except Exception as exc:
                self.error = f"tracker {self.name} stopped logging: {type(exc).__name__}: {exc}"
                log.warning("%s", self.error)
        return None

    def params(self, values: dict[str, Any]) -> None:
        self._call(lambda: self.run.params(values))

    def metrics(self, values: dict[str, float], step: int) -> None:
        self._call(lambda: self.run.metrics(values, step))

    def close(self) -> None:
        self._call(lambda: self.run.close())


def follow(runs: list[Run], progress: Callable[[dict], None]) -> Callable[[dict], None]:
    """``progress`` that also logs each step's loss and each epoch's dev metrics and CMI statistics."""

    def both(event: dict) -> None:
        progress(event)
        if event["event"] == "step":  # the losses of the steps up to this one since the last event
            first = event["step"] - len(event["losses"]) + 1
            for step, loss in enumerate(event["losses"], start=first):
                for run in runs:
                    run.metrics({PER_STEP: loss}, step)
            return
        if event["event"] == "epoch":
            step = event["epoch"]
            values = {"train/epoch_loss": event["train_loss"]}
            for split, metrics in event.items():
                if split.startswith("validation") and isinstance(metrics, dict):
                    values.update({f"{split}/{k}": v for k, v in metrics.items() if isinstance(v, float)})
        else:
            return
        for run in runs:
            run.metrics(values, step)

    return both
