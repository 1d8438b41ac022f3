"""The trial record: what one trial was and what it did; the contract every report and later run reads.

On disk it is ``trials/ID/record.json``, a JSON object whose ``schema`` says which keys it may
have (a reader refuses a newer one). ``TrialRecord`` is that object typed: one constructor per
way a trial ends (``completed`` fills a ``running`` record; ``failed``, ``skipped``, ``stopped``),
and the figures readers want (``headline_split``, ``headline``, ``score``). Fields left ``None``
are not written, so each outcome writes exactly the keys it has.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from harness.config import TrialConfig
from harness.results import RECORD, read_json, write_json

# 2: records name their arm, the data's provenance (rows used / available / official, missing
# splits), a student's kept layers, and CMI in the space an objective shapes. Readers take 1 too.
SCHEMA = 2


class Status(StrEnum):
    RUNNING = "running"  # written by no one: a trial's state until it ends
    COMPLETED = "completed"
    FAILED = "failed"  # an error in the trial (or a plugin's bug), or Ray lost it
    SKIPPED = "skipped"  # a teacher it depends on did not complete
    STOPPED = "stopped"  # ended early by a Tune scheduler


@dataclass
class TrialRecord:
    trial_id: str
    status: Status
    config: TrialConfig
    schema: int = SCHEMA
    harness: dict | None = None  # version and git commit of the harness that ran it
    versions: dict | None = None  # of Python and the libraries
    node: dict | None = None  # where it ran: {"host", "ray_node"} (harness.results.node)
    role: str | None = None  # "teacher" or "trial"
    arm: str | None = None  # objective with its non-default hyper-parameters, e.g. "cmi_min(lambda=0.5)"
    label_names: list[str] | None = None
    primary_metric: str | None = None
    lr: float | None = None
    notes: list[str] | None = None
    data: dict | None = None  # provenance: rows used, available, official; missing dev splits
    student_layers: list[int] | None = None  # kept layers of a student; null (once the model loaded) for all
    hparams: dict | None = None
    compare_to: list[str] | None = None  # the arms it is judged against
    epochs: list[dict] | None = None  # {"epoch", "train_loss", DEV_SPLIT: {metric: value}}
    final: dict[str, dict[str, float]] | None = None  # DEV_SPLIT -> metrics; the first is the headline split
    train_time_s: float | None = None
    train_samples_per_s: float | None = None
    predictions: str | None = None  # file name of the dev predictions, in the trial directory
    kept_model: str | None = None  # folder of the kept model (--save-model), in the trial directory
    trainable_parameters: int | None = None  # with LoRA, the adapters and the head
    total_parameters: int | None = None
    error: str | None = None
    traceback: str | None = None
    wall_time_s: float | None = None
    peak_memory_mb: float | None = None

    @classmethod
    def running(cls, cfg: TrialConfig, **fields_: Any) -> TrialRecord:
        return cls(cfg.trial_id(), Status.RUNNING, cfg, **fields_)

    @classmethod
    def failed(cls, cfg: TrialConfig, error: str, **fields_: Any) -> TrialRecord:
        return cls(cfg.trial_id(), Status.FAILED, cfg, error=error, **fields_)

    @classmethod
    def skipped(cls, cfg: TrialConfig, error: str) -> TrialRecord:
        return cls(cfg.trial_id(), Status.SKIPPED, cfg, error=error)

    @classmethod
    def stopped(cls, cfg: TrialConfig, error: str, epochs: list[dict]) -> TrialRecord:
        return cls(cfg.trial_id(), Status.STOPPED, cfg, error=error, epochs=epochs)

    def complete(self, epochs: list[dict], final: dict, train_time_s: float, samples: int, predictions: str) -> None:
        """A running trial's training result: it completed."""
        self.status = Status.COMPLETED
        self.epochs, self.final, self.train_time_s, self.predictions = epochs, final, train_time_s, predictions
        self.train_samples_per_s = samples / train_time_s if train_time_s else None

    def fail(self, error: str, traceback: str | None = None) -> None:
        self.status, self.error, self.traceback = Status.FAILED, error, traceback

    @property
    def completed(self) -> bool:
        return self.status == Status.COMPLETED

    @property
    def headline_split(self) -> str:
        """The dev split the headline figures come from: the task's first (MNLI: matched)."""
        return next(iter(self.final or {}))

    @property
    def headline(self) -> dict[str, float]:
        """The final dev metrics of the headline split."""
        return (self.final or {})[self.headline_split]

    def score(self, metric: str | None = None) -> float:
        """A final dev metric of the headline split (default: the task's primary metric), in [0, 1]."""
        return self.headline[metric or self.primary_metric or ""]

    @staticmethod
    def dev_of(epoch: dict) -> tuple[str, dict[str, float]]:
        """An epoch entry's first dev split and its metrics."""
        return next((k, v) for k, v in epoch.items() if k.startswith("validation") and isinstance(v, dict))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": self.schema}  # first, as readers check it first
        for f in fields(self):
            value = getattr(self, f.name)
            loaded = f.name == "student_layers" and self.role is not None  # null says "all layers"
            if (value is not None or loaded) and f.name != "schema":
                out[f.name] = value.to_dict() if f.name == "config" else str(value) if f.name == "status" else value
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialRecord:
        """A record as read from JSON; keys this harness does not know raise KeyError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise KeyError(f"unknown keys {sorted(unknown)}")
        config = TrialConfig.from_dict(d["config"])
        return cls(**{**d, "schema": d.get("schema", 1), "status": Status(d["status"]), "config": config})

    @classmethod
    def load(cls, trial_dir: Path) -> TrialRecord | None:
        """The record in ``trial_dir``; None before the trial wrote one."""
        path = Path(trial_dir) / RECORD
        return cls.from_dict(read_json(path)) if path.exists() else None

    def save(self, trial_dir: Path) -> None:
        write_json(Path(trial_dir) / RECORD, self.to_dict())
