"""The one training loop, shared by every objective.

Per step: a length-grouped, dynamically padded batch -> forward through the DeepSpeed
engine -> ``objective.loss`` -> ``engine.backward``/``engine.step`` (AdamW, linear
schedule, clipping) -> ``objective.on_step_end``. Per epoch: ``objective.on_epoch_end``,
then dev evaluation: the task's GLUE metrics and CMI, Gamma, NCMI of P_x (and of the
distribution the objective shapes, when that is not P_x).
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.profiler import record_function

from harness import checkpoint, cpu_dropout, embedding_rows, last_layer
from harness import engine as ds_engine
from harness.batching import Columns, eval_batches, train_batches
from harness.config import TrialConfig
from harness.errors import TrialFailed
from harness.forward import FeatureTap, forward
from harness.metrics import cmi_stats, glue_metrics
from harness.objective import Objective, Outputs
from harness.suite import Task

Progress = Callable[[dict], None]
GPU_READ_EVERY = 16  # steps between read-backs of the loss on a GPU (``_LossLog``); 1 on the CPU


@dataclass
class Predictions:
    probs: np.ndarray  # (N, C) float32, rows in split order
    labels: np.ndarray  # (N,)
    idx: np.ndarray  # (N,) example ids


@dataclass
class FitResult:
    epochs: list[dict] = field(default_factory=list)
    final: dict[str, dict] = field(default_factory=dict)  # dev split -> metrics
    predictions: dict[str, Predictions] = field(default_factory=dict)
    train_time_s: float = 0.0
    train_samples: int = 0
    notes: list[str] = field(default_factory=list)  # e.g. a damaged checkpoint that was discarded
    kept_epoch: int = 0  # with cfg.save_model == "best": the epoch whose weights the model holds at the end


def _mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """``values`` averaged over the workers of this trial, on the device (no read-back)."""
    return ds_engine.sum_over_ranks(values) / ds_engine.world()[1]


def measured_space(objective: Objective | None, feature_temperature: float | None = None):
    """The distribution, other than P_x, whose CMI a trial measures: the one ``objective`` shapes
    (``Objective.cmi_distribution``), else, with ``feature_temperature`` T, softmax(h / T) over
    the pooled features h (the feature-space control of a ``space=features`` arm). A function
    of a forward's Outputs -> (space name, (B, K) distribution) or None."""

    def shape(out: Outputs):
        shaped = objective.cmi_distribution(out) if objective is not None else None
        if shaped is None and feature_temperature and out.features is not None:
            return "features", torch.softmax(out.features / feature_temperature, dim=-1)
        return shaped

    return shape


def _eval_pass(model, split: Columns, batch_size: int, tap=None, shape=None):
    """Eval-mode logits (N, C) of ``model`` (a module or an engine) on ``split``, rows in split order,
    and, with ``shape`` (``measured_space``), the name of the other distribution it measures and
    that distribution (N, K)."""
    model.eval()
    logits_out, space, space_out = None, None, None
    device = next(model.parameters()).device
    with torch.no_grad():
        for rows in eval_batches(split.lengths, batch_size):
            batch = {k: v.to(device) for k, v in split.collate(rows).items()}
            out = forward(model, batch, tap)
            logits = out.logits.double().cpu().numpy()
            logits_out = np.zeros((len(split), logits.shape[1])) if logits_out is None else logits_out
            logits_out[rows] = logits
            shaped = shape(out) if shape is not None else None
            if shaped is not None:
                space, p = shaped[0], shaped[1].double().cpu().numpy()
                space_out = np.zeros((len(split), p.shape[1])) if space_out is None else space_out
                space_out[rows] = p
    return logits_out, space, space_out


def predict_logits(model, split: Columns, batch_size: int) -> np.ndarray:
    """Eval-mode logits (N, C) of ``model`` (a module or an engine) on ``split``, rows in split order."""
    return _eval_pass(model, split, batch_size)[0]


def train_step(
    engine, objective: Objective, micro: list[dict[str, torch.Tensor]], tap: FeatureTap | None, clip: float = 0.0
) -> tuple[torch.Tensor, list[str]]:
    """One optimizer step over a rank's share of the global batch, in ``micro``-batches (gradient
    accumulation: DeepSpeed scales each backward by 1/N and steps at the last), then
    ``on_step_end`` once with the whole share's outputs, as without accumulation. ``clip``: the
    gradient norm the harness clips to (``harness.engine.harness_clip``).

    Returns, on the device and without reading them back, [loss, *parts] as one tensor (size-weighted
    means over the micro-batches) and the parts' names; ``_LossLog`` checks them for finiteness."""
    values, sizes, outs, names = [], [], [], []
    for batch in micro:
        with record_function("harness.forward"):
            out = forward(engine, batch, tap)
        with record_function("harness.loss"):
            lo = objective.loss(out)
            names = list(lo.parts)
            values.append(torch.stack([lo.loss.detach(), *(v.detach() for v in lo.parts.values())]).float())
        with record_function("harness.backward"):
            engine.backward(lo.loss)
        with record_function("harness.optimizer_step"):
            ds_engine.step(engine, clip)
        sizes.append(len(out.labels))
        features = None if out.features is None else out.features.detach()
        outs.append(Outputs(out.logits.detach(), out.labels, out.idx, features))
    if len(outs) > 1:
        weights = torch.tensor(sizes, dtype=torch.float32, device=values[0].device) / sum(sizes)
        values = [(torch.stack(values) * weights[:, None]).sum(0)]
        features = None if outs[0].features is None else torch.cat([o.features for o in outs])  # type: ignore[misc]
        logits, labels, idx = (torch.cat([getattr(o, f) for o in outs]) for f in ("logits", "labels", "idx"))
        outs = [Outputs(logits, labels, idx, features)]
    objective.on_step_end(outs[0])
    return values[0], names


@dataclass
class _LossLog:
    """Each step's loss and parts, kept on the device and read back to the host once every ``every``
    steps and at the end of each epoch: a read waits for the device, and on a GPU one per step
    would drain the queue of kernels that keeps it busy. A read hands ``progress`` one step event for
    the steps it covers and raises TrialFailed at the first non-finite loss among them (the trial
    fails; up to ``every`` - 1 steps after it have run)."""

    every: int
    pending: list[tuple[int, int, torch.Tensor]] = field(default_factory=list)  # (epoch, step, [loss, *parts])
    names: list[str] = field(default_factory=list)
    loss_sum: float = 0.0  # this epoch's, over the steps read
    parts_sum: dict[str, float] = field(default_factory=dict)

    def add(self, epoch: int, step: int, values: torch.Tensor, names: list[str]) -> None:
        self.pending.append((epoch, step, values))
        self.names = names

    def read(self, progress: Progress, total: int) -> None:
        if not self.pending:
            return
        rows = torch.stack([v for _, _, v in self.pending]).tolist()
        for (epoch, step, _), (loss, *parts) in zip(self.pending, rows, strict=True):
            named = dict(zip(self.names, parts, strict=True))
            if not math.isfinite(loss):
                raise TrialFailed(
                    f"non-finite loss {loss} (parts {named}) at epoch {epoch + 1}, step {step}; lower the "
                    f"learning rate or check the objective's hyper-parameters"
                )
            self.loss_sum += loss
            for k, v in named.items():
                self.parts_sum[k] = self.parts_sum.get(k, 0.0) + v
        epoch, step, _ = self.pending[-1]
        losses = [row[0] for row in rows]
        event = {"event": "step", "step": step, "total_steps": total, "epoch": epoch + 1, "loss": losses[-1]}
        progress({**event, "losses": losses})
        self.pending = []


def _batch_on(device, train: Columns, rows: np.ndarray, teacher_logits: torch.Tensor | None) -> dict:
    batch = train.collate(rows)
    if teacher_logits is not None:
        batch["teacher_logits"] = teacher_logits[batch["idx"]]
    return {k: v.to(device) for k, v in batch.items()}


def _rng_state() -> tuple:
    """Torch's CPU and CUDA generator states (``_set_rng_state`` puts them back)."""
    return torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None


def _set_rng_state(state: tuple) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state_all(state[1])


def _halve_micro_batch(engine, cfg: TrialConfig, lr: float, total: int, accum: int, workers: int, notes: list):
    """After an out-of-memory error at the first step, before any update: a new engine with half the
    micro-batch and twice the accumulation steps, so the same global batch (--batch-size) and the
    same update; said in the record's notes. Refused with several workers (the others would wait in
    their all-reduce), under ZeRO-3 (the parameters are partitioned) and at a micro-batch of 1."""
    micro = cfg.batch_size // (workers * accum)
    if workers > 1 or cfg.zero_stage == 3 or micro % 2 or engine.global_steps:
        raise TrialFailed(
            f"out of memory at the first step with micro-batch {micro}; use --grad-accum {2 * accum} "
            f"(or more) or --gradient-checkpointing"
        )
    module = engine.module
    module.zero_grad(set_to_none=True)
    ds_engine.destroy(engine)
    del engine
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    notes.append(
        f"out of memory at the first step with micro-batch {micro}: trained with micro-batch {micro // 2} x "
        f"{2 * accum} accumulation steps instead, the same global batch of {cfg.batch_size}"
    )
    return ds_engine.build(module, replace(cfg, grad_accum=2 * accum), lr, total), 2 * accum


@dataclass
class _Stepper:
    """``fit``'s optimizer steps: owns the engine and the accumulation steps, which an out-of-memory
    error at this process's first step changes (``_halve_micro_batch``)."""

    engine: Any
    cfg: TrialConfig
    lr: float
    total: int  # optimizer steps of the whole training, for the schedule of a rebuilt engine
    objective: Objective
    train: Columns
    tap: FeatureTap | None
    teacher_logits: torch.Tensor | None
    notes: list[str]  # where a halved micro-batch is said

    def __post_init__(self) -> None:
        self.accum = self.cfg.grad_accum or 1
        self.clip = ds_engine.harness_clip(self.cfg)
        self.rank, self.workers = ds_engine.world()
        self.stepped = False  # whether this process has completed a step

    def step(self, rows: np.ndarray, epoch: int, step: int) -> tuple[torch.Tensor, list[str]]:
        """One step on the global batch ``rows`` (this rank's share); returns [loss, *parts] averaged
        over the workers, on the device, and the parts' names. ``epoch`` and ``step`` (0-based) name
        the step in errors."""
        rng_state = _rng_state() if not self.stepped else None
        while True:  # more than once only after an out-of-memory error at the first step
            with record_function("harness.collate"):  # each micro-batch padded to its own longest
                micro = [
                    _batch_on(self.engine.device, self.train, part, self.teacher_logits)
                    for part in np.array_split(rows[self.rank :: self.workers], self.accum)
                ]
            try:
                values, names = train_step(self.engine, self.objective, micro, self.tap, self.clip)
                break
            except torch.OutOfMemoryError:
                if self.stepped:
                    raise TrialFailed(
                        f"out of memory at epoch {epoch + 1}, step {step + 1}, micro-batch "
                        f"{len(micro[0]['labels'])}; use --grad-accum {2 * self.accum} or --gradient-checkpointing"
                    ) from None
                del micro
                self.engine, self.accum = _halve_micro_batch(
                    self.engine, self.cfg, self.lr, self.total, self.accum, self.workers, self.notes
                )
                _set_rng_state(rng_state)  # type: ignore[arg-type]  # the retried step draws the dropout masks the first try drew
        self.stepped = True
        if self.workers > 1:  # log the global batch's loss, as one worker would
            values = _mean_over_ranks(values)
        return values, names


def train_pass(engine, split: Columns, objective: Objective, batch_size: int, tap: FeatureTap | None) -> None:
    """Eval-mode pass over the training data for objectives that ask for one (``wants_train_pass``)."""
    engine.eval()
    with torch.no_grad():
        for rows in eval_batches(split.lengths, batch_size):
            batch = {k: v.to(engine.device) for k, v in split.collate(rows).items()}
            objective.on_pass_batch(forward(engine, batch, tap))
    objective.on_pass_end()


def evaluate(
    engine, split: Columns, task: Task, batch_size: int, objective: Objective | None = None, tap=None, shape=None
) -> tuple[dict, Predictions]:
    """The task's GLUE metrics and CMI, Gamma, NCMI of the class posterior on ``split``; for another
    distribution measured (``shape``, by default the one ``objective`` shapes, e.g. with
    ``space=features``), also its CMI, Gamma and NCMI, as ``cmi_<space>``, ``gamma_<space>``, ``ncmi_<space>``."""
    logits, space, shaped = _eval_pass(engine, split, batch_size, tap, shape or measured_space(objective))
    probs = torch.from_numpy(logits).softmax(-1).numpy()
    metrics = glue_metrics(task.metrics, split.labels, probs.argmax(axis=1))
    metrics.update(cmi_stats(probs, split.labels, task.num_labels))
    if space is not None:
        metrics.update({f"{k}_{space}": v for k, v in cmi_stats(shaped, split.labels, task.num_labels).items()})
    return metrics, Predictions(probs.astype(np.float32), split.labels, split.idx)


def _resume(
    trial_dir: Path, engine, objective: Objective, rng: np.random.Generator, cfg: TrialConfig, result: FitResult
) -> tuple[int, int] | None:
    """Restores the checkpoint in ``trial_dir`` into ``engine``, ``objective``, ``rng`` and ``result``
    (epochs, time, samples) and returns its (step, epoch); None without one. A damaged checkpoint
    is discarded first, said in ``result.notes``."""
    rank, workers = ds_engine.world()
    damaged = checkpoint.discard_damaged(trial_dir) if rank == 0 else None
    result.notes += [damaged] if damaged else []
    if workers > 1:  # every rank loads what rank 0 left in place
        torch.distributed.barrier()
    saved = checkpoint.load(trial_dir, engine, objective, rng)
    if not saved:
        return None
    if cfg.save_model == "best":
        result.notes.append(
            f"resumed after epoch {saved['epoch']}: the kept model is the best of epochs {saved['epoch'] + 1}-"
            f"{cfg.epochs} (earlier epochs' weights were not kept across the interruption)"
        )
    result.epochs, result.train_time_s, result.train_samples = saved["epochs"], saved["time"], saved["samples"]
    return saved["step"], saved["epoch"]


def fit(
    cfg: TrialConfig,
    lr: float,
    model: torch.nn.Module,
    objective: Objective,
    task: Task,
    train: Columns,
    devs: dict[str, Columns],
    progress: Progress = lambda event: None,
    trial_dir: Path | None = None,
    teacher_logits: torch.Tensor | None = None,
    read_every: int | None = None,
) -> FitResult:
    """Trains ``model`` for ``cfg.epochs`` epochs; ``progress`` receives step and epoch events, a step
    event each ``read_every`` steps and at each epoch's end (``_LossLog``; by default ``GPU_READ_EVERY``
    on a GPU, 1 on the CPU, where reading a loss back costs nothing), carrying the losses of the steps it covers.

    With ``trial_dir``, a checkpoint is written there after every epoch but the last, and a
    checkpoint found there is resumed from (see harness.checkpoint). ``teacher_logits`` (rows
    indexed by example id) feeds objectives that need them."""
    rng = np.random.default_rng(cfg.seed)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    if cfg.gradient_checkpointing:  # recompute activations in backward: memory for time
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})  # type: ignore[operator]
    last_layer.at_first_token(model)  # exact: the classifier reads the last layer at [CLS] only
    used_rows = embedding_rows.train_used_rows(model, train.fields["input_ids"], ds_engine.plain_optimizer(cfg))
    result = FitResult()
    tap = FeatureTap(model) if "features" in objective.needs or cfg.feature_cmi_temperature else None
    stepper = _Stepper(
        ds_engine.build(model, cfg, lr, total), cfg, lr, total, objective, train, tap, teacher_logits, result.notes
    )
    dropouts = None
    try:
        dropouts = cpu_dropout.on_cpu(model)  # the same law, masks drawn 3x faster (weights on the CPU only)
        rank, workers = ds_engine.world()
        shape = measured_space(objective, cfg.feature_cmi_temperature)
        best: tuple[int, dict] | None = None  # (epoch, weights) for --save-model best
        resumed = _resume(trial_dir, stepper.engine, objective, rng, cfg, result) if trial_dir is not None else None
        if not resumed and objective.wants_train_pass:
            train_pass(stepper.engine, train, objective, 2 * cfg.batch_size, tap)
        step, first_epoch = resumed or (0, 0)
        for epoch in range(first_epoch, cfg.epochs):
            stepper.engine.train()
            started = time.perf_counter()
            log = _LossLog(read_every or (GPU_READ_EVERY if stepper.engine.device.type == "cuda" else 1))
            for rows in train_batches(train.lengths, cfg.batch_size, rng):
                if len(rows) < workers:  # a last global batch too small to give every rank an example
                    continue
                log.add(epoch, step + 1, *stepper.step(rows, epoch, step))
                step += 1
                if step % log.every == 0:
                    log.read(progress, total)
            log.read(progress, total)
            if objective.wants_train_pass:
                train_pass(stepper.engine, train, objective, 2 * cfg.batch_size, tap)
            objective.on_epoch_end(epoch)
            result.train_time_s += time.perf_counter() - started
            result.train_samples += len(train)
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "train_loss": log.loss_sum / steps_per_epoch,
                "train_parts": {k: v / steps_per_epoch for k, v in log.parts_sum.items()},
            }
            for name, split in devs.items():
                record[name], result.predictions[name] = evaluate(
                    stepper.engine, split, task, 2 * cfg.batch_size, objective, tap, shape
                )
            result.epochs.append(record)
            if cfg.save_model == "best":  # the weights of the best epoch so far, by the headline dev metric
                score = record[next(iter(devs))][task.primary]
                if best is None or score > result.epochs[best[0] - 1][next(iter(devs))][task.primary]:
                    weights = stepper.engine.module.state_dict()
                    best = (epoch + 1, {k: v.detach().cpu().clone() for k, v in weights.items()})
            if trial_dir is not None and epoch + 1 < cfg.epochs:
                state = {
                    "epoch": epoch + 1,
                    "step": step,
                    "epochs": result.epochs,
                    "time": result.train_time_s,
                    "samples": result.train_samples,
                }
                checkpoint.save(trial_dir, stepper.engine, objective, rng, state, rank)
            progress({"event": "epoch", "primary": task.primary, **record})
        result.final = {name: result.epochs[-1][name] for name in devs}
        result.kept_epoch = len(result.epochs)
        if best is not None:
            result.kept_epoch, state = best
            stepper.engine.module.load_state_dict(state)
        if tap is not None:
            tap.handle.remove()
        return result
    finally:  # also when interrupted: ZeRO's optimizer hooks every parameter's gradient accumulator,
        ds_engine.destroy(stepper.engine)  # where the collector cannot see, so an engine left alive is never freed
        if dropouts is not None:
            dropouts.restore()
        if used_rows is not None:
            model.set_input_embeddings(used_rows.restore())  # type: ignore[operator]
