"""DeepSpeed engine for a trial: process group (gloo on CPU, NCCL on GPUs), AdamW, linear schedule."""

from __future__ import annotations

import logging
import os
import socket

import torch

from harness.config import TrialConfig

if not torch.cuda.is_available():
    os.environ.setdefault("DS_ACCELERATOR", "cpu")  # say it, rather than let DeepSpeed warn that it guessed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_process_group() -> None:
    """Join the process group set up by the launcher (Ray Train, deepspeed), or make a 1-process one."""
    import deepspeed
    import torch.distributed as dist

    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    if dist.is_initialized():
        return
    for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1")):
        os.environ.setdefault(key, value)
    os.environ.setdefault("MASTER_PORT", str(_free_port()))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False, verbose=False)


def ds_config(cfg: TrialConfig) -> dict:
    return {
        "train_micro_batch_size_per_gpu": cfg.batch_size,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": cfg.grad_clip,
        "zero_optimization": {"stage": cfg.zero_stage},
        "bf16": {"enabled": cfg.precision == "bf16"},
        "fp16": {"enabled": cfg.precision == "fp16"},
        "zero_allow_untested_optimizer": True,  # a plain torch AdamW, which DeepSpeed wraps under ZeRO
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def build(model: torch.nn.Module, cfg: TrialConfig, lr: float, total_steps: int):
    """AdamW (no decay on biases and LayerNorm weights) with linear warm-up then linear decay to 0."""
    import deepspeed
    from transformers import get_linear_schedule_with_warmup

    init_process_group()
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    params = [p for p in model.named_parameters() if p[1].requires_grad]
    groups = [
        {"params": [p for n, p in params if not n.endswith(no_decay)], "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in params if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=lr, fused=True)  # one kernel per step; CPU and GPU
    schedule = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=schedule, config=ds_config(cfg)
    )
    return engine
