"""CMI objectives: ``cmi_min`` (CMI-constrained fine-tuning) and ``cmi_max`` (the maximum-CMI teacher).

Notation: for an input x with label y, P_x is a distribution over K outcomes and Q_c the
centroid of class c, the mean of P_x over the examples of class c. The conditional mutual
information of the model is CMI = E[KL(P_x || Q_y)]: small when each class's outputs
concentrate around their centroid.

* ``cmi_min`` (Yang et al., arXiv:2309.09123, applied to LLM fine-tuning by Sivakaran & Yang,
  arXiv:2502.11258) minimises over theta and Q
      CE(z(x), y) + lambda * KL(P_x || Q_y) - beta * S(x),
      S(x) = 1/(C-1) * sum_{c != y} H(P_x, Q_c),  H(p, q) = -sum_k p_k log q_k,
  i.e. pull each output toward its own class centroid and push it away from the others.
* ``cmi_max`` (the teacher of Ye et al., arXiv:2401.08732) maximises CMI while fitting labels:
      CE(z(x), y) - lambda * KL(P_x || Q_y).

Q is held fixed during a theta-step (it is a detached tensor) and re-estimated as class
means of P_x, alternating, in one of three ways (hyper-parameter ``centroids``):

* ``ema`` (default): after each step, Q_c <- d * Q_c + (1 - d) * mean of that batch's
  detached P_x of class c (the first batch that holds class c sets Q_c). The P_x come from the
  forward pass the step already made: O(B*K) extra work, no extra pass over the data, and Q
  follows the model as it moves, which matters for fine-tuning runs of only a few epochs.
* ``epoch``: accumulate the detached P_x of the epoch and swap the class means in at its end
  (the alternation of the CMI-constrained learning papers; Q is one epoch stale).
* ``exact``: after each epoch (and once before training) an extra eval-mode pass over the
  training data computes the exact class means of the current model.

Before class c has a centroid, the terms that need Q_c are zero: an example of class c
adds no KL term, and Q_c adds nothing to other examples' separation. With ``ema`` or
``epoch`` the first steps (or the first epoch) are therefore plain cross-entropy.

``space``: ``logits`` uses the class posterior P_x = softmax(z(x)) (K = C). ``features``
uses P_x = softmax(h(x) / temperature) over the H dimensions of the pooled vector h(x) the
classification head reads (for BERT, the pooler output tanh(W h_[CLS]); for DistilBERT, the
pre-classifier ReLU output) and clusters those per class (K = H), as the CMI-for-LLM paper
adapts CMI to language models. Probabilities are clamped at 1e-12 before every logarithm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness import HParam, LossOutput, Objective, Outputs, hookimpl

if TYPE_CHECKING:  # torch is imported in the methods that compute, so listing plugins stays fast
    import torch

EPS = 1e-12
SPACES = ("logits", "features")
MODES = ("ema", "epoch", "exact")


class _CentroidObjective(Objective):
    """Cross-entropy plus terms of P_x and class centroids Q that are re-estimated alternately."""

    common = (
        HParam(
            "space", "logits", "distribution P_x: logits (class posterior) or features (pooled vector)", choices=SPACES
        ),
        HParam("temperature", 1.0, "features space: P_x = softmax(h / temperature)", minimum=1e-6),
        HParam(
            "centroids",
            "ema",
            "how Q is re-estimated: ema (each step), epoch (swap at epoch end), exact "
            "(extra pass over the train data each epoch)",
            choices=MODES,
        ),
        HParam("ema_decay", 0.95, "ema mode: weight of the old centroid in each update", minimum=0.0, maximum=0.999),
    )

    def __init__(self, num_labels: int, **hparams):
        import torch

        super().__init__(num_labels, **hparams)
        self.wants_train_pass = self.hp["centroids"] == "exact"
        self.q: torch.Tensor | None = None  # (C, K) centroids, allocated once K is known
        self.have = torch.zeros(num_labels, dtype=torch.bool)  # which classes have a centroid yet
        self.sums: torch.Tensor | None = None  # (C, K) running sums of the epoch / pass
        self.counts = torch.zeros(num_labels, dtype=torch.float64)
        self.steps = torch.zeros((), dtype=torch.int64)

    @classmethod
    def needs_for(cls, hp: dict) -> frozenset[str]:
        """The pooled features too when P_x lives in their space."""
        return frozenset({"logits", "features"}) if hp["space"] == "features" else frozenset({"logits"})

    def distribution(self, out: Outputs) -> torch.Tensor:
        import torch.nn.functional as F

        if self.hp["space"] == "features":
            return F.softmax(out.features / self.hp["temperature"], dim=-1)
        return F.softmax(out.logits, dim=-1)

    def cmi_distribution(self, out: Outputs) -> tuple[str, torch.Tensor] | None:
        return ("features", self.distribution(out)) if self.hp["space"] == "features" else None

    # -- the terms ------------------------------------------------------------------------------
    def kl_to_own(self, p: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(1/B) sum_i KL(P_i || Q_{y_i}) over examples whose class has a centroid (0 for the others)."""
        if self.q is None:
            return p.new_zeros(())
        logp = p.clamp_min(EPS).log()
        logq = self.q.to(p).clamp_min(EPS).log()[labels]
        per = (p * (logp - logq)).sum(-1) * self.have.to(p.device)[labels]
        return per.mean()

    def separation(self, p: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(1/B) sum_i 1/(C-1) sum_{c != y_i, c has a centroid} H(P_i, Q_c)."""
        import torch.nn.functional as F

        if self.q is None or self.num_labels < 2:
            return p.new_zeros(())
        cross = -(p @ self.q.to(p).clamp_min(EPS).log().T)  # (B, C): H(P_i, Q_c)
        other = F.one_hot(labels, self.num_labels).logical_not() & self.have.to(p.device)[None, :]
        return (cross * other).sum(-1).mean() / (self.num_labels - 1)

    # -- centroid estimation ----------------------------------------------------------------------
    def _class_sums(
        self, p: torch.Tensor, labels: torch.Tensor, over_ranks: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-class sums of P_x and counts, in float64 on P_x's device (nothing is read back to the
        host: on a GPU that would wait for the step); ``over_ranks``: of the global batch, when
        several workers each hold part of it, so every worker keeps the centroids one worker would."""
        import torch

        from harness import sum_over_ranks

        sums = torch.zeros(self.num_labels, p.shape[-1], dtype=torch.float64, device=p.device)
        sums.index_add_(0, labels, p.detach().double())
        ones = torch.ones(len(labels), dtype=torch.float64, device=p.device)
        counts = torch.zeros(self.num_labels, dtype=torch.float64, device=p.device).index_add_(0, labels, ones)
        if not over_ranks:
            return sums, counts
        both = sum_over_ranks(torch.cat([sums, counts[:, None]], dim=1))
        return both[:, :-1], both[:, -1]

    def _to(self, device) -> None:
        """The centroid state onto ``device`` (P_x's), where it stays; a no-op once there (a resumed
        checkpoint loads it on the CPU)."""
        self.have, self.counts = self.have.to(device), self.counts.to(device)
        self.q = None if self.q is None else self.q.to(device)
        self.sums = None if self.sums is None else self.sums.to(device)

    def _accumulate(self, p: torch.Tensor, labels: torch.Tensor, over_ranks: bool = False) -> None:
        self._to(p.device)
        sums, counts = self._class_sums(p, labels, over_ranks)
        self.sums = sums if self.sums is None else self.sums + sums
        self.counts += counts

    def _swap_in(self) -> None:
        """Q_c <- accumulated class mean, for each class seen; then start a new accumulation."""
        import torch

        if self.sums is None:
            return
        seen = self.counts > 0
        if self.q is None:
            self.q = torch.full_like(self.sums, 1.0 / self.sums.shape[1])
        self.q[seen] = self.sums[seen] / self.counts[seen, None]
        self.have |= seen
        self.sums, self.counts = None, torch.zeros_like(self.counts)

    def on_step_end(self, out: Outputs) -> None:
        import torch

        self.steps += 1
        if self.hp["centroids"] == "exact":
            return
        p = self.distribution(out)
        if self.hp["centroids"] == "epoch":
            self._accumulate(p, out.labels, over_ranks=True)
            return
        self._to(p.device)
        sums, counts = self._class_sums(p, out.labels, over_ranks=True)
        seen = counts > 0  # masks, not indexing by them: indexing would read the mask back to the host
        means = sums / counts.clamp_min(1.0)[:, None]
        if self.q is None:
            self.q = torch.full((self.num_labels, p.shape[-1]), 1.0 / p.shape[-1], dtype=torch.float64, device=p.device)
        d = self.hp["ema_decay"]
        updated = torch.where(self.have[:, None], d * self.q + (1 - d) * means, means)
        self.q = torch.where(seen[:, None], updated, self.q)
        self.have = self.have | seen

    def on_epoch_end(self, epoch: int) -> None:
        if self.hp["centroids"] == "epoch":
            self._swap_in()

    def on_pass_batch(self, out: Outputs) -> None:
        self._accumulate(self.distribution(out), out.labels)

    def on_pass_end(self) -> None:
        self._swap_in()

    # -- checkpointing ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {"have": self.have.clone(), "counts": self.counts.clone(), "steps": self.steps.clone()}
        if self.q is not None:
            state["q"] = self.q.clone()
        if self.sums is not None:
            state["sums"] = self.sums.clone()
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.have, self.counts, self.steps = state["have"].bool(), state["counts"].double(), state["steps"]
        self.q = state["q"].double() if "q" in state else None
        self.sums = state["sums"].double() if "sums" in state else None


class CMIMin(_CentroidObjective):
    __doc__ = "CE + lambda * KL(P_x || Q_y) - beta * S(x); see the module docstring."
    name = "cmi_min"
    description = "CMI-constrained fine-tuning: CE + lambda*KL(P_x||Q_y) - beta*separation (Yang et al.)"
    hparams = (
        HParam("lambda", 0.1, "weight of KL(P_x || Q_y), which pulls outputs to their class centroid", minimum=0.0),
        HParam("beta", 0.01, "weight of the separation term, which pushes outputs from other centroids", minimum=0.0),
        *_CentroidObjective.common,
    )
    cmi_target = ("self", -1)

    def loss(self, out: Outputs) -> LossOutput:
        import torch.nn.functional as F

        ce = F.cross_entropy(out.logits, out.labels)
        lam, beta = self.hp["lambda"], self.hp["beta"]
        if not (lam or beta):  # exactly cross-entropy, bit for bit
            return LossOutput(ce, {"ce": ce})
        p = self.distribution(out)
        kl, sep = self.kl_to_own(p, out.labels), self.separation(p, out.labels)
        return LossOutput(ce + lam * kl - beta * sep, {"ce": ce, "kl": kl, "separation": sep})


class CMIMax(_CentroidObjective):
    __doc__ = "CE - lambda * KL(P_x || Q_y): the maximum-CMI teacher; see the module docstring."
    name = "cmi_max"
    description = "Maximum-CMI teacher: CE - lambda*KL(P_x||Q_y) (Ye et al., ICLR 2024)"
    hparams = (
        HParam("lambda", 0.1, "weight of KL(P_x || Q_y), which is maximised", minimum=0.0),
        *_CentroidObjective.common,
    )
    cmi_target = ("self", 1)

    def loss(self, out: Outputs) -> LossOutput:
        import torch.nn.functional as F

        ce = F.cross_entropy(out.logits, out.labels)
        if not self.hp["lambda"]:
            return LossOutput(ce, {"ce": ce})
        kl = self.kl_to_own(self.distribution(out), out.labels)
        return LossOutput(ce - self.hp["lambda"] * kl, {"ce": ce, "kl": kl})


@hookimpl
def harness_objectives():
    return [CMIMin, CMIMax]
