"""Teacher outputs: what a teacher trial leaves for the trials that learn from it.

``STORE/<teacher trial id>/`` holds, besides the usual record and dev predictions,
``model.safetensors`` (the fine-tuned weights, to initialise a later teacher stage) and
``train_logits.safetensors`` (eval-mode logits on the training set with the example ids,
read by distillation students by id: the student never runs the teacher).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from harness.batching import Columns
from harness.engine import deepspeed, world
from harness.errors import TrialFailed
from harness.record import TrialRecord
from harness.results import RECORD
from harness.suite import Task
from harness.trainer import predict_logits

WEIGHTS = "model.safetensors"
LOGITS = "train_logits.safetensors"


def save_outputs(trial_dir: Path, model: torch.nn.Module, train: Columns, batch_size: int) -> None:
    """Inference only (no optimizer state is kept); under ZeRO-3 the partitioned parameters
    are gathered before the weights are read."""
    logits = predict_logits(model, train, batch_size)
    with deepspeed().zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
        state = {k: v.detach().contiguous().cpu().clone() for k, v in model.state_dict().items()}
    if world()[0] != 0:  # rank 0 writes
        return
    save_file(state, str(trial_dir / WEIGHTS))
    save_file({"logits": torch.from_numpy(logits).float(), "idx": torch.from_numpy(train.idx)}, str(trial_dir / LOGITS))


def _completed(store: Path | None, teacher_id: str) -> tuple[Path, TrialRecord]:
    if store is None:
        raise TrialFailed(f"teacher {teacher_id}: this trial has no teacher store (its config lacks teacher_store)")
    path = store / teacher_id
    record = TrialRecord.load(path)
    if record is None or not record.completed:
        raise TrialFailed(f"teacher {teacher_id} has not completed (see {path / RECORD})")
    return path, record


def load_weights(store: Path | None, teacher_id: str, model: torch.nn.Module) -> str:
    """Loads the teacher's weights into ``model``; returns the teacher's label (its ``arm``)."""
    path, record = _completed(store, teacher_id)
    # a model partitioned as it loaded (ZeRO-3) is gathered whole for this, then partitioned again
    with deepspeed().zero.GatheredParameters(list(model.parameters()), modifier_rank=0):
        missing, unexpected = model.load_state_dict(load_file(str(path / WEIGHTS)), strict=False)
    if missing or unexpected:
        raise TrialFailed(
            f"teacher {teacher_id}'s weights do not fit this model: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return record.arm or record.config.objective


def load_logits(store: Path | None, teacher_id: str, task: Task, train: Columns) -> torch.Tensor:
    """The teacher's train logits as a table indexed by example id; refuses a different label space."""
    path, record = _completed(store, teacher_id)
    names = tuple(record.label_names or ())
    saved = load_file(str(path / LOGITS))
    logits, idx = saved["logits"], saved["idx"]
    if names != task.label_names or logits.shape[1] != task.num_labels:
        raise TrialFailed(
            f"teacher {teacher_id} predicts {logits.shape[1]} classes {list(names)}, but task {task.name} has "
            f"{task.num_labels}: {list(task.label_names)}; teacher and student need the same label space"
        )
    table = torch.full((int(max(idx.max(), train.idx.max())) + 1, logits.shape[1]), float("nan"))
    table[idx] = logits
    uncovered = np.setdiff1d(train.idx, idx.numpy())
    if len(uncovered):
        raise TrialFailed(
            f"teacher {teacher_id} has no logits for {len(uncovered)} training examples "
            f"(e.g. id {uncovered[0]}); teacher and student must train on the same examples"
        )
    return table
