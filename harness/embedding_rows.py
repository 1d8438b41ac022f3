"""Only the word-embedding rows the training split uses are trained as a parameter.

A token that never appears in the training inputs never gives its embedding row a gradient, so
AdamW (decoupled weight decay lambda) keeps that row's moments at m = v = 0 and each step changes
it by p <- p (1 - eta_t lambda) alone: the V - K unused rows evolve as P_0 prod_s (1 - eta_s lambda),
one scalar. Held as a frozen table times that scalar, with the K used rows as the parameter, the
dense V x d gradient that is otherwise zeroed, clipped and updated in full every step, and its two
AdamW moments, shrink to K x d (CoLA's split uses 5,584 of BERT's 30,522 rows). The outputs, the
gradient norm and every update are those of the whole table (tested, with weight decay). It
applies where that holds and saves memory (K <= 3V/4: the table, K x d rows, their gradient and
two moments <= 4 V x d), where torch's AdamW steps the rows themselves (no ZeRO, no fp16) and the
table is trained and tied to nothing; ``restore`` writes the whole table back at the end.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


class UsedRows(torch.nn.Module):
    """Stands in for an ``nn.Embedding``: rows ``used`` are the parameter ``rows``; the others are
    ``rest`` (frozen) times ``decay``, the product of each step's (1 - lr * weight_decay)."""

    rest: torch.Tensor
    decay: torch.Tensor
    slot: torch.Tensor

    def __init__(self, embedding: torch.nn.Embedding, used: torch.Tensor):
        super().__init__()
        self.embedding = [embedding]  # the module put back by ``restore`` (a list: not a submodule)
        weight = embedding.weight.detach()
        self.rows = torch.nn.Parameter(weight[used].clone())
        self.register_buffer("rest", weight)  # the table's own storage until the module is moved
        self.register_buffer("decay", torch.ones((), device=weight.device))  # fp32 whatever the table's dtype
        self.register_buffer("slot", torch.full((weight.shape[0],), -1, dtype=torch.long, device=weight.device))
        self.slot[used] = torch.arange(len(used), device=weight.device)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        slot = self.slot[ids]  # fit trains on the split the rows came from: no other id gets a gradient
        found = F.embedding(slot.clamp(min=0), self.rows)
        return torch.where((slot >= 0).unsqueeze(-1), found, F.embedding(ids, self.rest) * self.decay)

    def after_step(self, lr: float, weight_decay: float) -> None:
        """What AdamW did to every unused row this step: p <- p (1 - lr * weight_decay)."""
        if weight_decay:
            self.decay.mul_(1.0 - lr * weight_decay)

    def restore(self) -> torch.nn.Embedding:
        """The whole table back in the original ``nn.Embedding``: rest * decay, the used rows over it."""
        embedding = self.embedding[0].to(self.rows.device)
        with torch.no_grad():
            embedding.weight.copy_(self.rest * self.decay)
            used = torch.nonzero(self.slot >= 0).squeeze(-1)
            embedding.weight[used] = self.rows[self.slot[used]].to(embedding.weight.dtype)
        return embedding


def used_ids(input_ids: Iterable[list[int]], embedding: torch.nn.Embedding) -> torch.Tensor:
    """The token ids the training inputs hold, but the padding row (never trained), sorted."""
    ids = np.unique(np.fromiter((t for seq in input_ids for t in seq), dtype=np.int64))
    if embedding.padding_idx is not None:
        ids = ids[ids != embedding.padding_idx]
    return torch.from_numpy(ids).to(embedding.weight.device)


def train_used_rows(model: Any, input_ids: Iterable[list[int]], plain_adamw: bool) -> UsedRows | None:
    """Puts a ``UsedRows`` in place of ``model``'s input embedding where that is exact and saves
    memory (module docstring); returns it, or None where the table is left as it is. ``plain_adamw``:
    torch's AdamW steps the module's own fp32 parameters (no ZeRO partitions, no fp16 master copies)."""
    embedding = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if (
        not plain_adamw
        or type(embedding) is not torch.nn.Embedding
        or not embedding.weight.requires_grad
        or embedding.max_norm is not None
        or embedding.scale_grad_by_freq
        or embedding.sparse
        or sum(p is embedding.weight for _, p in model.named_parameters(remove_duplicate=False)) != 1
    ):
        return None
    used = used_ids(input_ids, embedding)
    if 4 * len(used) > 3 * embedding.num_embeddings:
        return None
    rows = UsedRows(embedding, used)
    model.set_input_embeddings(rows)
    return rows


def decay_after_each_step(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> None:
    """Hooks ``optimizer`` so that each step also decays the unused rows of a ``UsedRows`` in ``model``,
    by the lr and weight decay of the parameter group that holds its rows."""
    for module in model.modules():
        if isinstance(module, UsedRows):
            optimizer.register_step_post_hook(_decays(module, optimizer))


def _decays(rows: UsedRows, optimizer: torch.optim.Optimizer):
    """A step post-hook: ``rows.after_step`` with the lr and weight decay of the group holding its rows."""
    group = next(g for g in optimizer.param_groups if any(p is rows.rows for p in g["params"]))

    def hook(opt, args, kwargs) -> None:
        rows.after_step(float(group["lr"]), group["weight_decay"])

    return hook
