"""Chance levels, and whether a trial learned anything beyond them.

The chance level of a metric on a dev set is the best score of a *constant* prediction there:
the majority-class accuracy, the F1 of always predicting the positive class, 0 for MCC. A
model that ignores its input gets it, so a trial that does not clear it has not learned, and
comparisons between such trials say nothing about the objectives.

A trial *learned* when its headline metric beats the best constant prediction beyond what
dev-set sampling explains: with the same resamples of dev examples for both (a paired
bootstrap, B = 1000), the one-sided 95% lower bound of metric(model) - metric(constant)
is above 0. On RTE (277 examples, majority 52.7%) that takes about 4 to 5 points of accuracy
above the majority for a model whose errors are spread like a coin's, less for one whose
predictions differ from the constant on only a few examples.
"""

from __future__ import annotations

import numpy as np

from harness.significance import RESAMPLES, SEED, weighted_metric


def constant_scores(metric: str, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``metric`` of predicting class c for every example, for each c."""
    ones = np.ones((1, len(labels)))
    return np.array([weighted_metric(metric, ones, labels, np.full(len(labels), c))[0] for c in range(num_classes)])


def level(metric: str, labels: np.ndarray, num_classes: int) -> tuple[float, int]:
    """(chance level, the constant class that reaches it)."""
    scores = constant_scores(metric, labels, num_classes)
    best = int(np.argmax(scores))
    return float(scores[best]), best


class Checker:
    """Learned-or-not for many trials of one dev set: the resample weights are drawn once."""

    def __init__(self, labels: np.ndarray, num_classes: int, resamples: int = RESAMPLES, seed: int = SEED):
        n = len(labels)
        self.labels, self.num_classes = labels, num_classes
        self.w = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)

    def learned(self, metric: str, preds: np.ndarray) -> bool:
        _, c = level(metric, self.labels, self.num_classes)
        const = np.full(len(self.labels), c)
        diff = weighted_metric(metric, self.w, self.labels, preds) - weighted_metric(metric, self.w, self.labels, const)
        return bool(np.percentile(diff, 5) > 0)
