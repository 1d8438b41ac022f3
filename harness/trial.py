"""One trial = one (suite, task, objective, model, seed, settings) TrialConfig -> one TrialRecord.

``run_trial`` is a plain function of the config, so the local executor and Ray Tune call
it the same way. It writes ``record.json`` and the dev predictions into ``trial_dir``.
A failure inside the trial is recorded (status failed, the error) and not raised.
Started again in the same directory, a completed trial returns its record without training,
and an interrupted one resumes from its last epoch checkpoint (harness.checkpoint).
"""

from __future__ import annotations

import gc
import random
import resource
import time
import traceback
from functools import partial
from pathlib import Path

import numpy as np
import torch

import harness
from harness import checkpoint, kept, lora, teachers, tracking
from harness import plugins as plugin_loader
from harness.batching import Columns, pad_multiple
from harness.config import TrialConfig
from harness.data import tokenize
from harness.engine import partitioned_loading, world
from harness.errors import HarnessError, TrialFailed
from harness.files import resolve_suite, text_columns
from harness.models import loading_in, resolve
from harness.record import TrialRecord
from harness.results import PREDICTIONS, git_commit, node, versions, write_predictions
from harness.trainer import Progress, fit

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}  # --model-dtype

DEFAULT_LR = 2e-5


def _peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_trial(
    cfg: TrialConfig, trial_dir: str | Path, progress: Progress = lambda e: None, plugins=None
) -> TrialRecord:
    """The trial's record; its model, engine and optimizer freed before the next trial of the process.

    A DeepSpeed engine and its model refer to each other (the engine's hooks on the model), so
    reference counting never frees them, and Python's cyclic collector, paced by object counts,
    not bytes, can leave several trials' models and optimizer states behind: in a reused Ray actor
    or the local executor's one process, memory grew by a model and its optimizer per trial
    (0.8 GB a trial for minilm-l6, until a 2-core, 24 GB machine ran out). Collecting once the
    trial's frame is gone frees them. glibc then keeps the freed pages in its arenas, and in a Ray
    actor (many threads) the next trial's allocations did not reuse them: 0.2-0.5 GB a trial more,
    until ``malloc_trim`` hands them back (measured: 1.14, 1.36, 1.57, 1.71, 1.84 GB peak over five
    small minilm-l6 trials in one actor; 1.14, 1.19, then 1.21 for the rest with the trim)."""
    record = _run_trial(cfg, trial_dir, progress, plugins)
    gc.collect()
    _trim_heap()
    return record


def _trim_heap() -> None:
    """Returns freed heap pages to the system where the C library is glibc (elsewhere: nothing)."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def set_seed(seed: int) -> None:
    """Seeds Python, NumPy and torch (every device), as ``transformers.set_seed`` does, without importing
    its module (``transformers.trainer_utils``), which loads PEFT and bitsandbytes where they are
    installed: 4-5 s of CPU at the start of every trial process that never uses them."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _run_trial(cfg: TrialConfig, trial_dir: str | Path, progress: Progress, plugins) -> TrialRecord:
    started = time.perf_counter()
    trial_dir = Path(trial_dir)
    done = TrialRecord.load(trial_dir)
    if done and done.completed:  # finished before an interruption, or by an earlier run: not redone
        return done
    record = TrialRecord.running(
        cfg, harness={"version": harness.__version__, "git_commit": git_commit()}, versions=versions(), node=node()
    )
    runs: list = []  # open experiment-tracker runs (harness.tracking)
    try:
        plugins = plugins or plugin_loader.load(cfg.plugins)
        suite = resolve_suite(plugins, cfg.suite, cfg.data_files)
        task = suite.task(cfg.task)
        objective_cls = plugins.objectives.get(cfg.objective)
        objective = objective_cls(task.num_labels, **cfg.objective_args)
        spec = resolve(cfg.model, plugins.models)
        lr = cfg.lr or spec.defaults.get("lr", DEFAULT_LR)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        set_seed(cfg.seed)
        data = suite.load(task, Path(cfg.data_dir) if cfg.data_dir else None)
        with loading_in(DTYPES[cfg.model_dtype or "fp32"]), partitioned_loading(cfg):
            tokenizer, model = spec.load(task.num_labels)
        store = Path(cfg.teacher_store) if cfg.teacher_store else None
        arm = objective_cls.label(objective.hp)
        if cfg.init_from:  # a later teacher stage: named after the stages it continues, e.g. ce→cmi_max
            arm = f"{teachers.load_weights(store, cfg.init_from, model)}→{arm}"
        if cfg.model_dtype:  # after a teacher's weights (stored in fp32), and for a spec that loads otherwise
            model = model.to(DTYPES[cfg.model_dtype])
        model = lora.apply(model, cfg.peft)  # after a teacher's weights: adapters on the continued model
        record.trainable_parameters, record.total_parameters = lora.parameters(model)
        tokenized = tokenize(
            task, data, tokenizer, cfg.max_seq_length, cfg.max_train_samples, cfg.max_dev_samples, cfg.dev_from_train
        )
        pad_id = tokenizer.pad_token_id or 0
        splits = [s for s in ("train", *task.dev_splits) if s in tokenized]
        multiple = pad_multiple(cfg.pad_multiple)
        batched = {s: Columns(tokenized[s], pad_id, multiple, cfg.max_seq_length) for s in splits}
        train, devs = batched.pop("train"), batched
        teacher_logits = teachers.load_logits(store, cfg.teacher, task, train) if cfg.teacher else None
        record.role = "teacher" if cfg.save_teacher else "trial"
        record.arm, record.label_names, record.primary_metric = arm, list(task.label_names), task.primary
        record.lr, record.notes = lr, list(data.notes)
        held_out = cfg.dev_from_train or 0
        record.data = {
            "fingerprint": data.fingerprint,
            "train_examples": len(train),
            "train_rows": len(data.splits["train"]) - held_out,
            "dev_examples": {s: len(c) for s, c in devs.items()},
            "dev_rows": {s: held_out or len(data.splits[s]) for s in devs},
            "missing_splits": [] if held_out else [s for s in task.dev_splits if s not in devs],
            "official_rows": dict(task.official_rows),
        }
        if held_out:
            record.data["dev_from_train"] = held_out
        if data.sources:
            record.data["sources"] = data.sources
        record.student_layers = getattr(model.config, "student_layers", None)
        record.hparams = objective.hp
        record.compare_to = [] if cfg.save_teacher else list(objective_cls.compare_to)
        if cfg.trackers and world()[0] == 0:  # rank 0 logs, as it writes the trial's files
            where = Path(cfg.tracking_dir or trial_dir)
            for name in cfg.trackers:
                tracker = plugins.trackers.get(name)
                runs.append(tracking.Guarded(name, partial(tracker.open, trial_dir, where, cfg.to_dict())))
                runs[-1].params({**cfg.to_dict(), "hparams": objective.hp, "lr": lr, "arm": arm})
            progress = tracking.follow(runs, progress)
        result = fit(cfg, lr, model, objective, task, train, devs, progress, trial_dir, teacher_logits)
        for run in runs:  # the final dev figures once more, under final/
            final = {f"final/{s}/{k}": v for s, m in result.final.items() for k, v in m.items()}
            run.metrics(final, len(result.epochs))
        if world()[0] == 0:
            write_predictions(trial_dir / PREDICTIONS, result.predictions)
        if cfg.peft:  # teachers and kept models are saved merged: plain models their users load as any
            model = lora.merged(model)
        if cfg.save_teacher:  # every rank: gathering ZeRO-3 parameters is collective
            teachers.save_outputs(trial_dir, model, train, 2 * cfg.batch_size)
        record.notes += result.notes
        record.complete(result.epochs, result.final, result.train_time_s, result.train_samples, PREDICTIONS)
        if cfg.save_model != "none":  # every rank: gathering ZeRO-3 parameters is collective
            labels = result.predictions[record.headline_split].labels
            columns = text_columns(cfg.data_files)
            kept.save(trial_dir, model, tokenizer, record, cfg, result.kept_epoch, labels, columns)
            record.kept_model = kept.MODEL_DIR
    except (HarnessError, TrialFailed) as exc:
        record.fail(str(exc))
    except Exception as exc:  # a plugin's bug fails its trial, not the run
        record.fail(f"{type(exc).__name__}: {exc}", traceback.format_exc())
    for run in runs:
        run.close()
    record.notes = (record.notes or []) + [run.error for run in runs if run.error]
    record.wall_time_s = time.perf_counter() - started
    record.peak_memory_mb = _peak_memory_mb()
    if world()[0] != 0:  # with several workers, rank 0 writes the trial's files
        return record
    record.save(trial_dir)
    if record.completed:
        checkpoint.remove(trial_dir)
    return record
