"""Focal loss (Lin et al. 2017) as a cmi-harness objective: L = -(1 - p_y)^gamma * log p_y."""

import torch.nn.functional as F

from harness import HParam, LossOutput, Objective, hookimpl


class Focal(Objective):
    name = "focal"
    description = "Focal loss: cross-entropy down-weighting easy examples by (1 - p_y)^gamma."
    hparams = (HParam("gamma", 2.0, "focusing exponent; 0 gives cross-entropy", minimum=0.0),)

    def loss(self, out):
        logp = F.log_softmax(out.logits, dim=-1).gather(1, out.labels[:, None]).squeeze(1)
        loss = (-((1 - logp.exp()) ** self.hp["gamma"]) * logp).mean()
        return LossOutput(loss, {"focal": loss})


@hookimpl
def harness_objectives():
    return [Focal]
