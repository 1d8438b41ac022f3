"""``ce``: plain cross-entropy fine-tuning, the baseline every other objective is compared with."""

from __future__ import annotations

from harness import HParam, LossOutput, Objective, Outputs, hookimpl


class CrossEntropy(Objective):
    """L = -(1/B) sum_i log softmax(z(x_i))[y_i], optionally with label smoothing eps:
    the target becomes (1 - eps) * onehot(y) + eps / C."""

    name = "ce"
    description = "Cross-entropy fine-tuning (the plain BERT baseline)."
    compare_to = ()
    hparams = (HParam("label_smoothing", 0.0, "label smoothing eps in [0, 1)", minimum=0.0, maximum=0.999),)

    def loss(self, out: Outputs) -> LossOutput:
        import torch.nn.functional as F  # here, so listing plugins does not load torch

        ce = F.cross_entropy(out.logits, out.labels, label_smoothing=self.hp["label_smoothing"])
        return LossOutput(ce, {"ce": ce})


@hookimpl
def harness_objectives():
    return [CrossEntropy]
