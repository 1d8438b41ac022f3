"""Epoch-end checkpoints of a trial, whole or absent, verified before use.

``TRIAL_DIR/checkpoint/`` holds the model weights, the optimizer state, the objective's state,
the torch and numpy RNG states and the loop's progress; a trial started again in the same
directory resumes after the last completed epoch and ends with the same numbers as an
uninterrupted run. Two formats, one layout:

- the harness's (ZeRO stage 0 in fp32 or bf16, where the optimizer is a plain torch AdamW):
  safetensors and JSON only, written by rank 0, nothing unpickled on load;
- DeepSpeed's own (ZeRO stages 1-3, fp16), under ``checkpoint/deepspeed/``: every worker writes its
  shard of the partitioned optimizer (and, at stage 3, parameter) state through
  ``engine.save_checkpoint``. These files are torch pickles; they are loaded only after each has
  matched the size and SHA-256 this trial recorded for it. With workers on several nodes the
  trial directory must be shared storage, as for DeepSpeed itself.

Written into a temporary directory, every file flushed to disk, then renamed; ``state.json``,
written last, records the size and SHA-256 of every other file. A checkpoint that does not match
them (a full disk, a lost node, a copy cut short) is named in the log, removed, and the trial
restarts from scratch: never stuck, never resumed from damaged weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from harness.errors import TrialFailed

NAME = "checkpoint"
DEEPSPEED = "deepspeed"  # the folder of DeepSpeed's own checkpoint, and its tag
LEGACY_RNG = "torch_rng"  # the key of the torch generator state in optimizer.safetensors before 4a6dfc6
log = logging.getLogger("harness")


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _own_format(engine) -> bool:
    """Whether the optimizer is the plain torch AdamW the harness's own format holds."""
    return isinstance(engine.optimizer, torch.optim.AdamW)


def _under(key: str, params: set[str]) -> bool:
    """Whether state-dict entry ``key`` is one of ``params`` or belongs to one: a 4-bit weight's
    quantization state is saved as ``<param>.absmax``, ``<param>.quant_map``, ..."""
    parts = key.split(".")
    return any(".".join(parts[:i]) in params for i in range(len(parts), 0, -1))


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def save(trial_dir: Path, engine, objective, rng: np.random.Generator, progress: dict[str, Any], rank: int = 0) -> None:
    """Every worker calls it (rank 0 alone writes the harness's format; each writes its shard of DeepSpeed's)."""
    final, tmp = trial_dir / NAME, trial_dir / ".checkpoint-new"
    if rank == 0:
        trial_dir.mkdir(parents=True, exist_ok=True)
        for stale in trial_dir.glob(".checkpoint-*"):  # left by a process killed while saving
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
    meta: dict[str, Any] = {"progress": progress, "numpy_rng": rng.bit_generator.state}
    if _own_format(engine):
        if rank != 0:
            return
        frozen = {n for n, p in engine.module.named_parameters() if not p.requires_grad}  # LoRA's base: not saved
        model = {k: v.detach().contiguous() for k, v in engine.module.state_dict().items() if not _under(k, frozen)}
        save_file(model, str(tmp / "model.safetensors"))
        opt = engine.optimizer.state_dict()
        tensors = {f"{i}.{k}": v for i, s in opt["state"].items() for k, v in s.items()}
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        meta.update(param_groups=opt["param_groups"], scheduler=engine.lr_scheduler.state_dict())
    else:
        _barrier()  # the folder exists
        engine.save_checkpoint(str(tmp / DEEPSPEED), tag=DEEPSPEED, save_latest=False)
        _barrier()  # every shard is written
        if rank != 0:
            return
    save_file({"torch_rng": torch.get_rng_state()}, str(tmp / "rng.safetensors"))
    state = objective.state_dict()
    save_file(
        {k: v.contiguous() for k, v in state.items()} or {"_empty": torch.zeros(0)}, str(tmp / "objective.safetensors")
    )
    files = sorted(f for f in tmp.rglob("*") if f.is_file())
    for file in files:
        _fsync(file)
    meta["files"] = {str(f.relative_to(tmp)): {"bytes": f.stat().st_size, "sha256": _digest(f)} for f in files}
    (tmp / "state.json").write_text(json.dumps(meta))
    _fsync(tmp / "state.json")
    for folder in {f.parent for f in files}:
        _fsync(folder)
    if final.exists():
        old = final.with_name(f".old-{NAME}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync(trial_dir)


def damage(path: Path) -> str | None:
    """Why the checkpoint at ``path`` cannot be trusted, or None when every file matches state.json."""
    try:
        meta = json.loads((path / "state.json").read_text())
    except (OSError, ValueError) as exc:
        return f"state.json unreadable ({exc})"
    for name, want in meta.get("files", {}).items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != want["bytes"]:
            return f"{name} has {file.stat().st_size} bytes, {want['bytes']} were written"
        if _digest(file) != want["sha256"]:
            return f"{name} does not match its SHA-256"
    if "files" not in meta:
        return "it predates checksums"
    return None


def discard_damaged(trial_dir: Path) -> str | None:
    """Removes a checkpoint that fails its checks and says so (also in the log); None if none was damaged.
    A checkpoint caught between its two renames (the previous one set aside) is put back first."""
    path, old = trial_dir / NAME, trial_dir / f".old-{NAME}"
    for stale in trial_dir.glob(".checkpoint-*"):  # a save killed before its rename: never used
        shutil.rmtree(stale, ignore_errors=True)
    if not path.exists() and old.exists():
        os.replace(old, path)
    why = damage(path) if path.exists() else None
    if why is None:
        return None
    text = f"checkpoint {path} was damaged ({why}): removed, and the trial restarted from its first epoch"
    log.warning("%s", text)
    remove(trial_dir)
    return text


def load(trial_dir: Path, engine, objective, rng: np.random.Generator) -> dict[str, Any] | None:
    """Restores everything ``save`` wrote and returns the saved progress, or None without a checkpoint
    (call ``discard_damaged`` first). Every worker calls it."""
    path = trial_dir / NAME
    if not (path / "state.json").exists():
        return None
    meta = json.loads((path / "state.json").read_text())
    if (path / DEEPSPEED).is_dir() == _own_format(engine):
        raise TrialFailed(
            f"checkpoint {path} was written under another ZeRO stage or precision; delete it to start the trial over"
        )
    if _own_format(engine):
        _load_own(path, meta, engine)
    else:  # DeepSpeed's pickles: each file's SHA-256 was checked against state.json (discard_damaged)
        engine.load_checkpoint(str(path / DEEPSPEED), tag=DEEPSPEED, load_lr_scheduler_states=True)
    if (path / "rng.safetensors").exists():
        torch.set_rng_state(load_file(str(path / "rng.safetensors"))["torch_rng"])
    else:  # written before 4a6dfc6, which kept the generator's state in optimizer.safetensors
        torch.set_rng_state(load_file(str(path / "optimizer.safetensors"))[LEGACY_RNG])
    objective.load_state_dict(
        {k: v for k, v in load_file(str(path / "objective.safetensors")).items() if k != "_empty"}
    )
    rng.bit_generator.state = meta["numpy_rng"]
    return meta["progress"]


def _load_own(path: Path, meta: dict[str, Any], engine) -> None:
    missing, unexpected = engine.module.load_state_dict(load_file(str(path / "model.safetensors")), strict=False)
    trainable = {n for n, p in engine.module.named_parameters() if p.requires_grad}
    if unexpected or trainable & set(missing):
        raise TrialFailed(
            f"checkpoint {path} does not fit this model (missing {sorted(trainable & set(missing))[:3]}, "
            f"unexpected {unexpected[:3]}); delete it to start the trial over"
        )
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in load_file(str(path / "optimizer.safetensors")).items():
        if key == LEGACY_RNG:
            continue
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = value
    for group in meta["param_groups"]:
        group["betas"] = tuple(group["betas"])
    engine.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    engine.lr_scheduler.load_state_dict(meta["scheduler"])


def remove(trial_dir: Path) -> None:
    shutil.rmtree(trial_dir / NAME, ignore_errors=True)
