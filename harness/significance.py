"""Seed-aware significance of the difference of a dev metric between two objectives.

A trial's dev score has two sources of chance: the training seed (initialisation, data
order) and the finite dev set. Seeds and dev examples are *crossed* random factors: every
seed's model is scored on the same examples. For objectives A (seeds s = 1..n_a) and B
(n_b seeds), with m_s the metric of seed s on the dev set, the estimate is
    delta = mean_s m^A_s - mean_s m^B_s
and its variance is estimated in two parts (a variance-components reading of the crossed
design, as in Owen's "pigeonhole bootstrap", Ann. Appl. Stat. 2007):

* seeds: from the spread of the per-seed scores. When both sides ran the same seeds (the
  harness gives seed s the same initialisation and data order under every objective) the
  design is paired: d_s = m^A_s - m^B_s, V_seed = var(d) / n, df = n - 1. Otherwise
  V_seed = var(m^A)/n_a + var(m^B)/n_b with Welch-Satterthwaite df. The per-seed spread
  already contains each model's own dev-sampling noise;
* examples: what the per-seed spread cannot see is the part of the dev-sampling noise that is
  common to the seeds (an objective that helps on some kinds of example, hurts on others).
  A paired bootstrap over dev examples (multinomial weights, the same for every seed and both
  sides) gives each seed's metric per resample; the covariance of two *different* seeds'
  replicates is that common part. V_examples = c_AA - 2 c_AB + c_BB, the mean covariances
  between distinct seeds of A, of B, and across A and B, always over pairs of different seeds
  (a seed's A and B models share their initialisation, and that shared part is in V_seed).

SE = sqrt(V_seed + V_examples); the 95% interval is delta +- t(0.975, df) * SE and the
two-sided p = 2 P(T_df > |delta| / SE), df by Satterthwaite with V_examples counted as
known. With one seed on either side there is no seed term: the test then speaks only to
dev-example resampling, with the models held fixed, and says so. Holm's step-down
correction (``holm``) controls the family-wise error over the tasks of one comparison.
The generator is seeded, so a report is reproducible.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SEED = 20250217
RESAMPLES = 1000
MIN_SEEDS = 3  # fewer seeds a side: the seed variance is too poorly estimated to tell much


@dataclass(frozen=True)
class Result:
    delta: float  # mean_A - mean_B of the metric (a fraction, not points)
    ci_low: float
    ci_high: float
    p_value: float
    se: float
    se_seeds: float
    se_examples: float
    df: float
    design: str  # "paired seeds", "unpaired seeds" or "examples only"

    def as_dict(self) -> dict:
        return asdict(self)


def weighted_metric(metric: str, w: np.ndarray, labels: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """``metric`` for each row of example weights ``w`` (B, N) over ``labels``/``preds`` (N,)."""
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


def _mean_cross_cov(x: np.ndarray, y: np.ndarray, seeds_x: list, seeds_y: list) -> float:
    """Mean covariance (over resamples) between rows of ``x`` and rows of ``y`` whose seeds differ."""
    c = (x - x.mean(1, keepdims=True)) @ (y - y.mean(1, keepdims=True)).T / (x.shape[1] - 1)
    distinct = np.array([[sx != sy for sy in seeds_y] for sx in seeds_x])
    return float(c[distinct].mean()) if distinct.any() else 0.0


def compare(
    metric: str,
    labels: np.ndarray,
    preds_a: list[np.ndarray],
    preds_b: list[np.ndarray],
    seeds_a: list[int] | None = None,
    seeds_b: list[int] | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Result:
    """Seed-aware test of mean_A - mean_B of ``metric`` (see the module docstring).

    ``preds_*``: one array of predicted labels per seed; ``seeds_*``: those seeds, in the same
    order (equal sets make the design paired)."""
    n = len(labels)
    ones = np.ones((1, n))
    a = np.array([weighted_metric(metric, ones, labels, p)[0] for p in preds_a])
    b = np.array([weighted_metric(metric, ones, labels, p)[0] for p in preds_b])
    delta = float(a.mean() - b.mean())
    w = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
    ra = np.array([weighted_metric(metric, w, labels, p) for p in preds_a])  # (n_a, B)
    rb = np.array([weighted_metric(metric, w, labels, p) for p in preds_b])
    na, nb = len(a), len(b)
    ids_a = list(seeds_a) if seeds_a is not None else [("a", i) for i in range(na)]
    ids_b = list(seeds_b) if seeds_b is not None else [("b", i) for i in range(nb)]
    paired = seeds_a is not None and seeds_b is not None and na > 1 and sorted(seeds_a) == sorted(seeds_b)
    if paired:
        order_b = [list(seeds_b).index(s) for s in seeds_a]
        d = a - b[order_b]
        v_seed, df_seed, design = float(d.var(ddof=1) / na), float(na - 1), "paired seeds"
    elif na > 1 and nb > 1:
        va, vb = a.var(ddof=1) / na, b.var(ddof=1) / nb
        v_seed, design = float(va + vb), "unpaired seeds"
        df_seed = float((va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))) if va + vb > 0 else np.inf
    else:
        v_seed, df_seed, design = 0.0, np.inf, "examples only"
    if design == "examples only":  # the models are held fixed: the whole resampling variance
        v_ex = float(np.var(ra.mean(0) - rb.mean(0), ddof=1))
    else:
        c_aa = _mean_cross_cov(ra, ra, ids_a, ids_a)
        c_bb = _mean_cross_cov(rb, rb, ids_b, ids_b)
        v_ex = max(0.0, c_aa - 2 * _mean_cross_cov(ra, rb, ids_a, ids_b) + c_bb)
    from scipy import stats

    var = v_seed + v_ex
    df = float(var**2 / (v_seed**2 / df_seed)) if v_seed > 0 and np.isfinite(df_seed) else np.inf
    se = float(np.sqrt(var))
    if se == 0:  # no variability at all: identical predictions (no difference), or nothing to test against
        p = 1.0 if delta == 0 else float("nan")
        half = 0.0
    else:
        p = float(2 * stats.t.sf(abs(delta) / se, df))
        half = float(stats.t.ppf(0.975, df) * se)
    return Result(delta, delta - half, delta + half, p, se, float(np.sqrt(v_seed)), float(np.sqrt(v_ex)), df, design)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values: sort p ascending, p_(i) * (m - i + 1) made monotone, capped at 1."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out = np.empty(m)
    out[order] = adjusted
    return out.tolist()


def format_p(p: float) -> str:
    """``p`` to three decimals, or ``< 0.001`` below that resolution: never "0.000"."""
    if p != p:
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
