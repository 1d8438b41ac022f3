"""Paired bootstrap over dev examples for the difference of a metric between two objectives.

Both sides are scored on the same resamples of dev examples: for resample b with example
counts w_b (multinomial, sum N), each seed's metric is computed from w_b-weighted confusion
counts, averaged over that side's seeds, and delta_b = mean_A - mean_B. Reported: the
observed delta, the 95% percentile interval of delta_b, and the two-sided p-value
p = min(1, 2 * min(P(delta_b <= 0), P(delta_b >= 0))). The generator is seeded, so a
report is reproducible.
"""

from __future__ import annotations

import numpy as np

SEED = 20250217
RESAMPLES = 1000


def weighted_metric(metric: str, w: np.ndarray, labels: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """``metric`` for each row of weights ``w`` (B, N) over examples with ``labels``/``preds`` (N,)."""
    total = w.sum(axis=1).astype(np.float64)
    if metric == "accuracy":
        return (w @ (labels == preds)) / total
    tp = w @ ((preds == 1) & (labels == 1)).astype(np.float64)
    fp = w @ ((preds == 1) & (labels != 1)).astype(np.float64)
    fn = w @ ((preds != 1) & (labels == 1)).astype(np.float64)
    if metric == "f1":
        denom = 2 * tp + fp + fn
        return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    if metric == "mcc":
        tn = total - tp - fp - fn
        denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        return np.divide(tp * tn - fp * fn, denom, out=np.zeros_like(tp), where=denom > 0)
    raise ValueError(f"unknown metric {metric!r}")


def paired(
    metric: str,
    labels: np.ndarray,
    preds_a: list[np.ndarray],
    preds_b: list[np.ndarray],
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict[str, float]:
    """Delta (A - B) of the seed-averaged ``metric``, its 95% interval and two-sided p-value."""
    n = len(labels)
    ones = np.ones((1, n))
    observed = np.mean([weighted_metric(metric, ones, labels, p)[0] for p in preds_a]) - np.mean(
        [weighted_metric(metric, ones, labels, p)[0] for p in preds_b]
    )
    w = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
    side = lambda preds: np.mean([weighted_metric(metric, w, labels, p) for p in preds], axis=0)  # noqa: E731
    deltas = side(preds_a) - side(preds_b)
    p = min(1.0, 2 * min(np.mean(deltas <= 0), np.mean(deltas >= 0)))
    lo, hi = np.percentile(deltas, [2.5, 97.5])
    return {"delta": float(observed), "ci_low": float(lo), "ci_high": float(hi), "p_value": float(p)}
