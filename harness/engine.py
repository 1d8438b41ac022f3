"""DeepSpeed engine for a trial: process group (gloo on CPU, NCCL on GPUs), AdamW, linear schedule."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import torch

from harness import embedding_rows
from harness.config import TrialConfig
from harness.errors import TrialFailed

if not torch.cuda.is_available():
    os.environ.setdefault("DS_ACCELERATOR", "cpu")  # say it, rather than let DeepSpeed warn that it guessed


def deepspeed():
    """The ``deepspeed`` module. Its import loads its autotuner, which imports MLflow when MLflow is
    installed (1.1 s of CPU, half of DeepSpeed's own import, in every trial process); the harness never
    autotunes, so MLflow is hidden for that import only and stays importable for the MLflow tracker."""
    if "deepspeed" in sys.modules or "mlflow" in sys.modules:
        import deepspeed

        return deepspeed
    sys.modules["mlflow"] = None  # makes ``import mlflow`` raise ImportError: the autotuner's "not installed"
    try:
        import deepspeed
    finally:
        del sys.modules["mlflow"]
    return deepspeed


def init_process_group() -> None:
    """Join the process group a launcher set up (Ray Train, torchrun, deepspeed: WORLD_SIZE in the
    environment), or make a 1-process group over a file store: no port, so concurrent trials
    on one machine cannot collide."""
    import torch.distributed as dist

    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "gloo":
        # DeepSpeed's CPU shared-memory kernels serve its inference all-reduce, which the harness never
        # calls (training all-reduce goes through gloo); left on, their first use on a machine compiles
        # them (about 40 s, two compilers). DeepSpeed keeps its probed op table as one module dict so
        # that edits persist (deepspeed/ops/__init__.py); marking the op unavailable skips the build.
        # Marked before anything returns: a group Ray Train opened still meets DeepSpeed's comm setup.
        deepspeed().ops.__compatible_ops__["deepspeed_shm_comm"] = False
    if dist.is_initialized():
        return
    os.environ.setdefault("LOCAL_RANK", "0")
    if "WORLD_SIZE" in os.environ:
        deepspeed().init_distributed(dist_backend=backend, auto_mpi_discovery=False, verbose=False)
        return
    store = Path(tempfile.mkdtemp(prefix="harness-pg-")) / "store"
    deepspeed().init_distributed(
        dist_backend=backend,
        auto_mpi_discovery=False,
        verbose=False,
        init_method=f"file://{store}",
        rank=0,
        world_size=1,
    )
    # ours, so ours to close: left to interpreter shutdown, the group's threads can abort the
    # process after its work is done ("terminate called without an active exception", seen in CI)
    atexit.register(_close_process_group)


def _close_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def world() -> tuple[int, int]:
    """(rank, number of workers) of this process; (0, 1) outside a process group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def sum_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over the workers of this trial (``t`` itself with one worker); NCCL sums on the GPU."""
    import torch.distributed as dist

    if world()[1] == 1:
        return t
    on = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else t.device
    total = t.to(on, copy=True)
    dist.all_reduce(total)
    return total.to(t.device)


def ds_config(cfg: TrialConfig, workers: int = 1) -> dict:
    """--batch-size is the global batch: each of the ``workers`` ranks takes batch_size / workers.

    bf16 is mixed precision as in a Hugging Face Trainer: fp32 weights and optimizer, matrix
    products autocast to bf16. DeepSpeed's own ``bf16`` (bf16 weights) without ZeRO wraps the
    optimizer in its unfused fp16 one, which checks every parameter's gradient for overflow each
    step, one device sync per tensor: on an H200, 32 of the 60 ms of a BERT-base optimizer step."""
    return {
        "train_micro_batch_size_per_gpu": cfg.batch_size // (workers * (cfg.grad_accum or 1)),
        "gradient_accumulation_steps": cfg.grad_accum or 1,
        "gradient_clipping": 0.0 if _clips_itself(cfg) else cfg.grad_clip,
        "zero_optimization": {"stage": cfg.zero_stage},
        "torch_autocast": {"enabled": cfg.precision == "bf16", "dtype": "bfloat16"},
        "fp16": {"enabled": cfg.precision == "fp16"},
        "zero_allow_untested_optimizer": True,  # a plain torch AdamW, which DeepSpeed wraps under ZeRO
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


@contextmanager
def partitioned_loading(cfg: TrialConfig) -> Iterator[None]:
    """Under ZeRO-3, a model that loads with ``from_pretrained`` inside is partitioned over the
    workers as it loads (``deepspeed.zero.Init``, through transformers' ``HfDeepSpeedConfig``): no
    rank ever holds the whole model. Elsewhere, and for a model built in memory, it does nothing."""
    if cfg.zero_stage != 3:
        yield
        return
    init_process_group()  # imports DeepSpeed (``deepspeed()``) before transformers' integration can
    from transformers.integrations.deepspeed import HfDeepSpeedConfig, unset_hf_deepspeed_config

    held = HfDeepSpeedConfig(ds_config(cfg, world()[1]))  # transformers keeps only a weak reference
    try:
        yield
    finally:
        unset_hf_deepspeed_config()
        del held


def plain_optimizer(cfg: TrialConfig) -> bool:
    """Whether torch's AdamW steps the module's own parameters and gradients: without ZeRO (which
    partitions them) or fp16 (fp16 weights, scaled gradients, fp32 master copies in DeepSpeed's wrapper)."""
    return not cfg.zero_stage and cfg.precision != "fp16"


def _clips_itself(cfg: TrialConfig) -> bool:
    """With a ``plain_optimizer`` the harness clips gradients itself (``step``): DeepSpeed's clip takes
    one tensor at a time with an all-reduce even over one rank (9 ms of a 263 ms CoLA step of
    minilm-l6 on 2 CPU cores, against 2 ms). Same rule: g *= min(1, c / (||g||_2 + 1e-6)).
    Under ZeRO or fp16 the gradients are partitioned or scaled, and DeepSpeed clips."""
    return plain_optimizer(cfg) and cfg.grad_clip > 0


def harness_clip(cfg: TrialConfig) -> float:
    """The gradient norm ``step`` clips to for ``cfg``: --grad-clip where the harness clips
    (``_clips_itself``), else 0 (DeepSpeed clips, or nothing does)."""
    return cfg.grad_clip if _clips_itself(cfg) else 0.0


class BackwardNorms:
    """Each parameter's squared gradient norm g . g, taken by a post-accumulate-grad hook as the
    backward finishes that gradient, while it is still in cache; read again at the step, every
    gradient comes from memory (5.6 ms there against 3.5 here, of a CoLA step of minilm-l6 of about
    200 ms on 2 CPU cores, under the profiler). As a BLAS dot product in fp32: 23 against 86 us for a
    384 x 1536 gradient, where ``vector_norm`` accumulates in fp64 on the CPU. For one worker only:
    with several, the gradients are all-reduced after the backward, and the norm is of the reduced ones."""

    def __init__(self, params: list[torch.nn.Parameter]) -> None:
        self.squares: dict[int, torch.Tensor] = {}  # id(parameter) -> ||g||_2^2 of its latest accumulation
        self.handles = [p.register_post_accumulate_grad_hook(self._take) for p in params]

    def _take(self, p: torch.Tensor) -> None:
        assert p.grad is not None  # the hook runs once the gradient is accumulated
        g = p.grad.reshape(-1).float()  # a view where the gradient is contiguous, as autograd makes it
        self.squares[id(p)] = torch.dot(g, g)

    def total(self) -> torch.Tensor:
        """||g||_2 = sqrt(sum of g . g) over all the gradients accumulated since the last call."""
        total = torch.stack(list(self.squares.values())).sum().sqrt()
        self.squares.clear()
        return total

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def step(engine, clip: float) -> None:
    """``engine.step()``, the gradients first clipped to norm ``clip`` (``harness_clip``; 0: not at all) at
    an accumulation boundary, where every worker holds the same reduced gradients, so the same norm.

    The clip is applied inside AdamW's fused kernel, which divides each gradient by the optimizer's
    ``grad_scale`` (the attribute torch's GradScaler sets): s = max(1, (||g||_2 + 1e-6) / c), so
    g / s = g min(1, c / (||g||_2 + 1e-6)), clip_grad_norm_'s rule, without its pass over every
    gradient (3-4 ms of a CoLA step of minilm-l6 on 2 CPU cores). ||g||_2 comes from the
    engine's ``BackwardNorms`` where ``build`` gave it one."""
    if not clip or not engine.is_gradient_accumulation_boundary():
        engine.step()
        return
    norms = getattr(engine, "harness_norms", None)
    if norms is not None:
        norm = norms.total()
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in engine.module.parameters() if p.grad is not None])
    optimizer = engine.optimizer  # torch's AdamW (``plain_optimizer``), whose kernel takes an fp32 scale
    optimizer.grad_scale = torch.clamp((norm.float() + 1e-6) / clip, min=1.0)
    try:
        engine.step()
    finally:
        optimizer.grad_scale = None


def destroy(engine) -> None:
    """Ends ``engine``: the hooks of its ``BackwardNorms``, then DeepSpeed's own teardown."""
    norms = getattr(engine, "harness_norms", None)
    if norms is not None:
        norms.remove()
    engine.destroy()


def linear_schedule(step: int, *, warmup: int, total: int) -> float:
    """The learning rate's factor at ``step``: step / warmup during warm-up, then (total - step) /
    (total - warmup) down to 0. It is transformers' ``get_linear_schedule_with_warmup`` (tested equal);
    that function's module imports PEFT and bitsandbytes where they are installed, 4-5 s of CPU at
    the start of every trial process that never uses them."""
    if step < warmup:
        return float(step) / float(max(1, warmup))
    return max(0.0, float(total - step) / float(max(1, total - warmup)))


def build(model: torch.nn.Module, cfg: TrialConfig, lr: float, total_steps: int):
    """AdamW (no decay on biases and LayerNorm weights) with linear warm-up then linear decay to 0;
    with ``cfg.compile``, the model compiled by torch.compile."""
    init_process_group()
    workers = world()[1]
    if cfg.batch_size % (workers * (cfg.grad_accum or 1)):
        raise TrialFailed(
            f"--batch-size {cfg.batch_size} does not split over {workers} workers x {cfg.grad_accum or 1} "
            f"accumulation steps; use a multiple"
        )
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    params = [p for p in model.named_parameters() if p[1].requires_grad]
    groups = [
        {"params": [p for n, p in params if not n.endswith(no_decay)], "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in params if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]  # LoRA trains no norms: DeepSpeed drops an empty group
    optimizer = torch.optim.AdamW(groups, lr=lr, fused=True)  # one kernel per step; CPU and GPU
    embedding_rows.decay_after_each_step(optimizer, model)
    warmup = int(cfg.warmup_ratio * total_steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(linear_schedule, warmup=warmup, total=total_steps))
    engine, _, _, _ = deepspeed().initialize(
        model=model, optimizer=optimizer, lr_scheduler=schedule, config=ds_config(cfg, workers)
    )
    if workers == 1 and not cfg.zero_stage:
        # one worker has nothing to reduce, yet DeepSpeed's data-parallel path would still flatten
        # every gradient into one buffer, all-reduce it over a group of one and copy it back: 28 ms
        # of a 293 ms CoLA step of minilm-l6 on 2 CPU cores (benchmarks/profile_step.py)
        engine.enable_backward_allreduce = False
        if harness_clip(cfg):
            engine.harness_norms = BackwardNorms([p for _, p in params])
    if cfg.compile:
        # torch.compile of the module in place (its state_dict keys unchanged), graphs built at the first
        # step of each new shape (with dynamic shapes from the second); inductor's on-disk cache
        # (TORCHINDUCTOR_CACHE_DIR, by default under the system's temporary folder) serves later
        # trials on the same machine
        engine.compile()
    return engine
