"""A forward pass as every objective sees it: a batch in, ``Outputs`` out (float32 logits, the labels,
the example ids, a teacher's logits where the batch carries them), and, through ``FeatureTap``, the
vector the classification head reads, wherever the model pools it."""

from __future__ import annotations

import torch

from harness.models import head_of
from harness.objective import Outputs


class FeatureTap:
    """Keeps the vector the classification head reads for each example: its input when the model
    pools before the head (encoders); when the head scores every token and the model pools after it
    (decoders), the input at the token the model pools, the last that is not padding, found the
    way the model finds it (``input_ids`` against the config's pad id)."""

    def __init__(self, model: torch.nn.Module):
        self.value: torch.Tensor | None = None
        self.input_ids: torch.Tensor | None = None  # set by the forward before each call
        self.pad_id = getattr(model.config, "pad_token_id", None)
        self.handle = head_of(model).register_forward_pre_hook(self._keep)

    def _keep(self, module, args):
        x = args[0]
        if x.dim() == 2:
            self.value = x
            return
        width = x.shape[1]
        if self.pad_id is None or self.input_ids is None:
            last = torch.full((x.shape[0],), width - 1, device=x.device)
        else:
            real = (self.input_ids != self.pad_id).to(x.device, torch.long)
            last = (torch.arange(width, device=x.device) * real).argmax(-1)
        self.value = x[torch.arange(x.shape[0], device=x.device), last]


NOT_INPUTS = ("labels", "idx", "teacher_logits")


def forward(engine, batch: dict[str, torch.Tensor], tap: FeatureTap | None) -> Outputs:
    inputs = {k: v for k, v in batch.items() if k not in NOT_INPUTS}
    if tap is not None:
        tap.input_ids = inputs.get("input_ids")
    logits = engine(**inputs).logits.float()
    features = tap.value.float() if tap is not None and tap.value is not None else None
    return Outputs(logits, batch["labels"], batch["idx"], features, batch.get("teacher_logits"))
