"""Dropout on the CPU with masks drawn by numpy's SFC64 generator, seeded from torch's.

torch draws a CPU dropout mask one element at a time with its Mersenne Twister; for a 3.84 M
element attention map (RTE, batch 32, 12 heads) ``native_dropout`` took 30 ms on 2 Xeon cores,
this module's mask 3.0 ms, and dropout was 19% of an RTE training step. The law is torch's: each
element is kept independently with probability

    P(keep) = 1 - k / 2^32,   k = round(p 2^32)   (within 2^-33 of 1 - p)

and a kept element is scaled by 1 / (1 - p), so E[dropout(x)] = x; the backward multiplies the
gradient by the same mask and scale. Only the draws differ: each mask takes one 63-bit seed from
torch's default generator, so ``torch.manual_seed``, a checkpoint's saved RNG state and activation
checkpointing's replay reproduce it exactly.

While a model trains on the CPU, ``on_cpu`` puts this in every ``nn.Dropout`` and, for the encoders
named in ``ENCODERS`` under SDPA, in attention: softmax(q k^T / sqrt(d) + mask) is formed as torch's
SDPA math kernel forms it and dropped here (with dropout 0, as in evaluation, SDPA itself runs, so
evaluation is bit for bit unchanged). Nothing changes on a GPU, where masks are drawn in-kernel.
"""

from __future__ import annotations

import math
import types

import numpy as np
import torch

ENCODERS = ("bert", "roberta", "xlm-roberta", "distilbert")  # non-causal attention through ALL_ATTENTION_FUNCTIONS
ATTENTION = "harness_cpu_dropout"  # the name the attention function is registered under in transformers
SOFTMAX_WIDTH = 16  # keys a softmax row is padded to (``softmax``): torch's AVX-512 vector of fp32


def keep_mask(shape: torch.Size | tuple[int, ...], p: float) -> torch.Tensor:
    """A bool tensor of ``shape``, each element True with probability 1 - t / 2^32, t = round(p 2^32):
    True where a uniform 32-bit u >= t, drawn a byte at a time. With t = 2^24 t_hi + t_lo, u's top
    byte b decides unless b = t_hi, and only then are u's low 24 bits drawn:

        P(keep) = (255 - t_hi) / 256 + (1 / 256)(2^24 - t_lo) / 2^24 = 1 - t / 2^32

    One byte an element instead of four: 116 against 234 us for a (32, 11, 384) mask, 3.0 against
    7.3 ms for a (32, 12, 100, 100) one (2 Xeon cores)."""
    n = math.prod(shape)
    t = round(p * 2**32)
    if t >= 2**32:  # p within 2^-33 of 1
        return torch.zeros(shape, dtype=torch.bool)
    t_hi, t_lo = t >> 24, t & 0xFFFFFF
    rng = np.random.SFC64(int(torch.randint(0, 2**63 - 1, ())))  # torch's generator decides the draws
    top = rng.random_raw(-(-n // 8)).view(np.uint8)[:n]  # 64 random bits = eight top bytes
    keep = top > t_hi
    tied = np.flatnonzero(top == t_hi)  # 1 in 256: the low 24 bits decide
    if tied.size:
        low = rng.random_raw(-(-tied.size // 2)).view(np.uint32)[: tied.size] & 0xFFFFFF
        keep[tied] = low >= t_lo
    return torch.from_numpy(keep).view(shape)


def _kept(x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
    """x * keep * scale, ``keep`` read as uint8 (the same bytes, 0 or 1). torch casts either to x's dtype
    first; from bool the cast costs more: 0.93 against 0.54 ms a CoLA step of minilm-l6 for the
    13 hidden-state masks' forward casts, 0.87 against 0.50 for the backward's (2 Xeon cores)."""
    return x.mul(keep.view(torch.uint8)).mul_(scale)


class _Dropout(torch.autograd.Function):
    """y = x * keep / (1 - p); dL/dx = dL/dy * keep / (1 - p), keep saved as bool."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        keep = keep_mask(x.shape, p)
        ctx.save_for_backward(keep)
        ctx.scale = 1.0 / (1.0 - p)
        return _kept(x, keep, ctx.scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (keep,) = ctx.saved_tensors
        return _kept(grad, keep, ctx.scale), None


def drop(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``torch.nn.functional.dropout``'s law with this module's masks (CPU tensors)."""
    if not training or p == 0.0:
        return x
    if p >= 1.0:
        return x * 0.0
    return _Dropout.apply(x, p)


def _module_forward(module: torch.nn.Dropout, x: torch.Tensor) -> torch.Tensor:
    return drop(x, module.p, module.training)


def softmax(scores: torch.Tensor) -> torch.Tensor:
    """softmax over the last dimension. torch's CPU kernel is slow where that dimension is shorter than
    its vector width: forward and backward of a (32, 12, 11, 11) map took 915 us against 249 for
    (32, 12, 16, 16) (AVX-512, 2 cores), as CoLA's short batches form them. Such a map is padded to 16
    with -inf, which softmax sends to exactly 0, so each row's values and gradients are the same law
    (343 us for that map)."""
    n = scores.shape[-1]
    if n >= SOFTMAX_WIDTH:
        return torch.softmax(scores, dim=-1)
    padded = torch.nn.functional.pad(scores, (0, SOFTMAX_WIDTH - n), value=float("-inf"))
    return torch.softmax(padded, dim=-1)[..., :n]


def attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """transformers' attention interface (query, key, value: (B, H, L, D); returns (B, L, H, D)):
    softmax(scaling q k^T, masked) v with its dropout drawn here; SDPA's own wherever dropout is 0."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    causal = kwargs.get("is_causal") or getattr(module, "is_causal", False)
    if not dropout or causal or query.device.type != "cpu":
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query * scaling, key.transpose(-1, -2))
    if attention_mask is not None and attention_mask.dtype == torch.bool:  # True: attend
        scores.masked_fill_(attention_mask.logical_not(), torch.finfo(scores.dtype).min)  # in place: no copy
    elif attention_mask is not None:  # additive
        scores.add_(attention_mask)
    probs = drop(softmax(scores), dropout)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, sdpa_mask

    if ATTENTION not in ALL_MASK_ATTENTION_FUNCTIONS:
        AttentionInterface.register(ATTENTION, attention)
        AttentionMaskInterface.register(ATTENTION, sdpa_mask)  # the same boolean masks SDPA gets


class Installed:
    """What ``on_cpu`` changed; ``restore()`` puts torch's dropout and SDPA back."""

    def __init__(self, modules: list[torch.nn.Dropout], config) -> None:
        self.modules, self.config = modules, config

    def restore(self) -> None:
        for m in self.modules:
            del m.forward
        if self.config is not None:
            self.config._attn_implementation = "sdpa"


def on_cpu(model: torch.nn.Module) -> Installed | None:
    """Swaps this module's dropout in for ``model``'s, in place, where its weights are on the CPU:
    every ``nn.Dropout`` with p > 0, and the attention of an ``ENCODERS`` model under SDPA whose
    attention dropout is above 0. None where nothing applied."""
    if next(model.parameters()).device.type != "cpu":
        return None
    modules = [m for m in model.modules() if type(m) is torch.nn.Dropout and m.p > 0]
    for m in modules:
        m.forward = types.MethodType(_module_forward, m)  # type: ignore[method-assign]
    config = getattr(model, "config", None)
    p_attention = getattr(config, "attention_probs_dropout_prob", None) or getattr(config, "attention_dropout", 0.0)
    if (
        config is not None
        and getattr(config, "model_type", None) in ENCODERS
        and not getattr(config, "is_decoder", False)
        and config._attn_implementation == "sdpa"
        and p_attention
    ):
        _register()
        config._attn_implementation = ATTENTION
    else:
        config = None
    return Installed(modules, config) if modules or config is not None else None
