"""GLUE metrics and the CMI statistics of a model's output distributions.

Notation: P is an (N, C) matrix of class probabilities P_x, y the labels, Q_c the
centroid of class c, i.e. the mean of P_x over the examples with y = c.

* CMI = (1/N) sum_i KL(P_i || Q_{y_i}): how tightly each class's outputs concentrate.
* Gamma (separation) = mean over ordered pairs (i, j) with y_i != y_j of the cross-entropy
  H(P_i, P_j) = -sum_k P_i(k) log P_j(k). With L_c = sum_{j: y_j = c} log P_j and
  L = sum_c L_c this is  -sum_i P_i . (L - L_{y_i})  /  sum_i (N - n_{y_i}),
  exact in O(N C) instead of O(N^2 C).
* NCMI = CMI / Gamma; the CMI papers report that accuracy falls as NCMI rises.
Probabilities are clamped at EPS before any logarithm so that no term is infinite.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-12
GLUE_METRICS = ("accuracy", "f1", "mcc")


def glue_metrics(metrics: tuple[str, ...], labels: np.ndarray, preds: np.ndarray) -> dict[str, float]:
    """GLUE's metrics as in `evaluate`'s glue module: accuracy, binary F1 of class 1, Matthews corr."""
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    fns = {
        "accuracy": lambda: accuracy_score(labels, preds),
        "f1": lambda: f1_score(labels, preds, average="binary", pos_label=1, zero_division=0.0),
        "mcc": lambda: matthews_corrcoef(labels, preds),
    }
    return {m: float(fns[m]()) for m in metrics}


def class_centroids(probs: np.ndarray, labels: np.ndarray, num_labels: int) -> np.ndarray:
    """Q (C, C): row c is the mean of the rows of ``probs`` whose label is c (uniform if c is absent)."""
    q = np.full((num_labels, probs.shape[1]), 1.0 / probs.shape[1])
    for c in range(num_labels):
        rows = probs[labels == c]
        if len(rows):
            q[c] = rows.mean(axis=0)
    return q


def cmi_stats(probs: np.ndarray, labels: np.ndarray, num_labels: int) -> dict[str, float]:
    """CMI, Gamma and NCMI of the distributions ``probs`` (N, K) under labels ``labels`` (N,)."""
    p = np.clip(probs.astype(np.float64), EPS, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    logp = np.log(p)
    q = class_centroids(p, labels, num_labels)
    cmi = float(np.mean(np.sum(p * (logp - np.log(np.clip(q[labels], EPS, 1.0))), axis=1)))
    per_class = np.zeros((num_labels, p.shape[1]))
    np.add.at(per_class, labels, logp)
    counts = np.bincount(labels, minlength=num_labels)
    pairs = float(np.sum(len(labels) - counts[labels]))
    if pairs == 0:  # a single class: separation is undefined
        return {"cmi": cmi, "gamma": float("nan"), "ncmi": float("nan")}
    gamma = float(-np.sum(p * (per_class.sum(axis=0) - per_class[labels])) / pairs)
    return {"cmi": cmi, "gamma": gamma, "ncmi": cmi / gamma if gamma > 0 else float("nan")}
