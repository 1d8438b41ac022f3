"""The trial configuration: one plain dict per trial, so Ray Tune can pass it unchanged.

``TrialConfig`` validates and documents the keys; ``to_dict``/``from_dict`` convert.
``yaml_mapping`` reads the YAML files users write (``--config``, ``--search-file``).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

PRECISIONS = ("fp32", "bf16", "fp16")
# What a user sets about how a trial trains (also per task, with --task-args, and in a best.yaml).
TRAINING = (
    "epochs",
    "lr",
    "batch_size",
    "max_seq_length",
    "warmup_ratio",
    "weight_decay",
    "max_train_samples",
    "max_dev_samples",
    "dev_from_train",
)
# fields added after runs were recorded: left out of the id when unset
LATER_FIELDS = (
    "max_dev_samples",
    "dev_from_train",
    "feature_cmi_temperature",
    "data_files",
    "peft",
    "grad_accum",
    "gradient_checkpointing",
    "model_dtype",
)
# where results go, or how fast they come, not what they are
NOT_IDENTITY = ("teacher_store", "trackers", "tracking_dir", "save_model", "pad_multiple", "compile")


@dataclass(frozen=True)
class TrialConfig:
    suite: str
    task: str
    objective: str
    model: str
    seed: int
    objective_args: dict[str, Any] = field(default_factory=dict)
    epochs: int = 3
    lr: float | None = None  # None: the model's default (2e-5 for pretrained models)
    batch_size: int = 32
    max_seq_length: int = 128
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    max_train_samples: int | None = None
    max_dev_samples: int | None = None  # a fixed subsample of each dev split (CPU-scale studies; reported)
    # a fixed set of this many training rows held out as the dev set, in place of the task's dev
    # splits (a dev set larger than the one shipped, or one where none is usable; reported)
    dev_from_train: int | None = None
    # also measure CMI, Gamma, NCMI of softmax(h / T) over the pooled features h on every trial,
    # whatever its objective: the feature-space control of a `space=features` arm
    feature_cmi_temperature: float | None = None
    data_dir: str | None = None
    data_files: dict[str, Any] | None = None  # the user's own files (harness.files.FileSpec), suite "files"
    zero_stage: int = 0
    model_dtype: str | None = None  # the dtype weights are cast to once loaded: bf16 or fp16 (None: fp32)
    grad_accum: int | None = None  # micro-batches per step (None: 1); --batch-size stays the global batch
    gradient_checkpointing: bool | None = None  # recompute activations in backward (None: off)
    peft: dict[str, Any] | None = None  # LoRA adapters (harness.lora): {method, r, alpha, dropout, targets}
    precision: str = "fp32"
    pad_multiple: int | None = None  # batches padded to a multiple of this (None: harness.batching.pad_multiple)
    compile: bool | None = None  # torch.compile the model (DeepSpeed's engine.compile; None: off)
    threads: int | None = None  # torch intra-op threads; None: torch's default
    plugins: tuple[str, ...] = ()  # --plugin modules, re-imported wherever the trial runs
    data_fingerprint: str | None = None  # of the task's source data: part of the trial id
    # Teachers: a teacher trial saves its weights and train-set logits (save_teacher) under
    # teacher_store/<trial id>; a trial may start from a teacher's weights (init_from) or
    # read a teacher's train logits (teacher). Both hold trial ids.
    save_teacher: bool = False
    init_from: str | None = None
    teacher: str | None = None
    teacher_store: str | None = None  # a location, not part of the trial id
    trackers: tuple[str, ...] = ()  # experiment trackers the trial logs to (harness.tracking); not in the id
    save_model: str = "none"  # keep the trained model (harness.kept): none, last or best; not in the id
    tracking_dir: str | None = None  # where local trackers write (the output directory); not in the id

    def __post_init__(self):
        checks = [
            (isinstance(self.seed, int) and not isinstance(self.seed, bool), "seed", "must be an integer"),
            (self.epochs >= 1, "epochs", "must be at least 1"),
            (self.lr is None or 0 < self.lr < math.inf, "lr", "must be positive and finite, e.g. 2e-5"),
            (self.batch_size >= 1, "batch-size", "must be at least 1"),
            (self.max_seq_length >= 8, "max-seq-length", "must be at least 8"),
            (0 <= self.warmup_ratio < 1, "warmup-ratio", "must be in [0, 1)"),
            (0 <= self.weight_decay < math.inf, "weight-decay", "must be >= 0 and finite"),
            (0 <= self.grad_clip < math.inf, "grad-clip", "must be >= 0 and finite (0 turns clipping off)"),
            (self.max_train_samples is None or self.max_train_samples >= 1, "max-train-samples", "must be >= 1"),
            (self.max_dev_samples is None or self.max_dev_samples >= 1, "max-dev-samples", "must be >= 1"),
            (self.dev_from_train is None or self.dev_from_train >= 1, "dev-from-train", "must be >= 1"),
            (
                self.feature_cmi_temperature is None or 0 < self.feature_cmi_temperature < math.inf,
                "feature-cmi-temperature",
                "must be positive and finite, e.g. 0.1",
            ),
            (self.zero_stage in (0, 1, 2, 3), "zero-stage", "must be 0, 1, 2 or 3"),
            (
                self.grad_accum is None or (self.grad_accum >= 1 and self.batch_size % self.grad_accum == 0),
                "grad-accum",
                f"must be >= 1 and divide --batch-size {self.batch_size}",
            ),
            (self.precision in PRECISIONS, "precision", f"must be one of {', '.join(PRECISIONS)}"),
            (self.model_dtype in (None, *PRECISIONS), "model-dtype", f"must be one of {', '.join(PRECISIONS)}"),
            (self.threads is None or self.threads >= 1, "threads", "must be at least 1"),
            (self.pad_multiple is None or 1 <= self.pad_multiple <= 128, "pad-multiple", "must be in 1..128, e.g. 8"),
            (self.save_model in ("none", "last", "best"), "save-model", "must be none, last or best"),
            (
                not (self.zero_stage and (self.peft or {}).get("method") == "qlora"),
                "zero-stage",
                "ZeRO cannot partition QLoRA's 4-bit base, which is what saves the memory; use --zero-stage 0",
            ),
            (
                not (self.save_model == "best" and self.zero_stage == 3),
                "save-model",
                "best keeps a full copy of the weights, which ZeRO-3 partitions; use --save-model last",
            ),
        ]
        for ok, name, why in checks:
            if not ok:
                raise HarnessError(f"--{name} {getattr(self, name.replace('-', '_'))!r}: {why}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["plugins"] = list(self.plugins)
        d["trackers"] = list(self.trackers)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise HarnessError(f"unknown trial config keys {sorted(unknown)}; known: {sorted(names)}")
        d = dict(d)
        d["plugins"] = tuple(d.get("plugins", ()))
        d["trackers"] = tuple(d.get("trackers", ()))
        return cls(**d)

    def with_values(self, values: dict[str, Any]) -> TrialConfig:
        """This config with ``values`` set, ``OBJECTIVE.HPARAM`` keys into objective_args (a search's draw)."""
        settings = {k: v for k, v in values.items() if "." not in k}
        args = dict(self.objective_args)
        args.update({k.partition(".")[2]: v for k, v in values.items() if "." in k})
        return replace(self, objective_args=args, **settings)

    def trial_id(self) -> str:
        """Readable and unique: task, objective, seed, and a hash of the whole config."""
        identity = {
            k: v
            for k, v in self.to_dict().items()
            if k not in NOT_IDENTITY and not (k in LATER_FIELDS and v is None)  # ids of earlier runs stay valid
        }
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
        prefix = "teacher-" if self.save_teacher else ""
        return f"{prefix}{self.task}-{self.objective}-s{self.seed}-{digest}"


@dataclass
class Plan:
    """The trials of a run, in the order they must run (teachers before their students)."""

    trials: list[TrialConfig]
    notes: list[str] = field(default_factory=list)  # e.g. an optional dev split that is missing


def yaml_mapping(path: str, option: str, expected: str) -> dict[str, Any]:
    """The mapping a YAML file holds (empty file: {}); an unreadable file or another shape is a
    one-line HarnessError naming ``option`` and what was ``expected``."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise HarnessError(
            f"{option} {path}: not a text file (byte {exc.start} is not UTF-8); give a YAML file"
        ) from None
    except (OSError, yaml.YAMLError) as exc:
        raise HarnessError(f"{option} {path}: cannot read it: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise HarnessError(f"{option} {path}: expected {expected}")
    return data
