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

Two floors keep a few agreeing seeds from faking precision:

* the seed term is never below what the dev set alone forces. Each seed's difference d_s
  carries dev-example noise of its own, v_s = var_boot(r^A_s - r^B_s), of which the part c
  common to the seeds does not scatter them (c is V_examples), so E[var(d)] >= mean_s v_s - c:
  V_seed = max(var(d), mean_s v_s - c) / n (unpaired: the same per side). The degrees of
  freedom stay those of the seed spread (n - 1, or Welch), which is conservative when the floor
  binds (Kenward-Roger-style corrections would add df there, never remove them);
* the interval is never narrower than the dev set's resolution: its half-width is at least one
  dev example's worth of the metric (1/N for accuracy; for F1 and MCC the smallest change that
  moving one example between confusion-matrix cells makes, median over the compared models).

SE = sqrt(V_seed + V_examples); the 95% interval is delta +- t(0.975, df) * SE (widened to the
resolution, with SE raised to match so that p and interval agree) and the two-sided
p = 2 P(T_df > |delta| / SE), df by Satterthwaite with V_examples counted as known. Intervals
are per comparison, *unadjusted*; Holm's step-down correction (``holm``) adjusts the p-values
over the tasks of one comparison. Equivalence within +-m is two one-sided tests (TOST,
``p_equivalence``: the larger of P(T > (delta + m)/SE) and P(T > (m - delta)/SE)); ``mde`` is
the smallest difference the test detects with 80% power, (t(0.975) + t(0.80)) * SE. With one
seed on either side there is no seed term: the test then speaks only to dev-example
resampling, with the models held fixed, and says so. The generator is seeded, so a report is
reproducible.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SEED = 20250217
RESAMPLES = 1000
MIN_SEEDS = 3  # fewer seeds a side: the seed variance is too poorly estimated to tell much
MARGIN = 0.01  # equivalence margin: 1 point of the metric


@dataclass(frozen=True)
class Result:
    delta: float  # mean_A - mean_B of the metric (a fraction, not points)
    ci_low: float  # 95%, unadjusted
    ci_high: float
    p_value: float  # two-sided, unadjusted
    se: float  # after both floors
    se_seeds: float  # sqrt(V_seed) after its floor
    se_seeds_observed: float  # sqrt(var(d) / n) as the seeds scattered, before the floor
    se_examples: float
    df: float
    design: str  # "paired seeds", "unpaired seeds" or "examples only"
    resolution: float  # one dev example's worth of the metric
    p_equivalence: float  # TOST against +-margin
    margin: float
    mde: float  # smallest |delta| detected with 80% power at alpha 0.05

    @property
    def floored(self) -> bool:
        """Whether the seed floor or the resolution floor, not the seeds' own scatter, set the interval."""
        return self.se_seeds > self.se_seeds_observed or self.ci_high - self.delta <= self.resolution + 1e-15

    def as_dict(self) -> dict:
        return {**asdict(self), "floored": self.floored}


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


def _from_counts(metric: str, tp, fp, fn, tn) -> np.ndarray:
    w = np.ones((1, 1))
    labels = np.array([1, 0, 1, 0]).repeat([tp, fp, fn, tn])
    preds = np.array([1, 1, 0, 0]).repeat([tp, fp, fn, tn])
    return weighted_metric(metric, w * np.ones((1, len(labels))), labels, preds)[0]


def resolution(metric: str, labels: np.ndarray, preds: np.ndarray) -> float:
    """One dev example's worth of ``metric`` for these predictions: 1/N for accuracy; for F1 and MCC
    the smallest non-zero change from moving one example between confusion-matrix cells."""
    if metric == "accuracy":
        return 1.0 / len(labels)
    tp, fp = int(((preds == 1) & (labels == 1)).sum()), int(((preds == 1) & (labels != 1)).sum())
    fn, tn = int(((preds != 1) & (labels == 1)).sum()), int(((preds != 1) & (labels != 1)).sum())
    here = _from_counts(metric, tp, fp, fn, tn)
    moves = [(-1, 0, 1, 0), (1, 0, -1, 0), (0, -1, 0, 1), (0, 1, 0, -1)]  # flip one positive or negative
    changes = [
        abs(_from_counts(metric, tp + a, fp + b, fn + c, tn + d) - here)
        for a, b, c, d in moves
        if min(tp + a, fp + b, fn + c, tn + d) >= 0
    ]
    changes = [c for c in changes if c > 1e-12]
    return float(min(changes)) if changes else 1.0 / len(labels)


def _mean_cross_cov(x: np.ndarray, y: np.ndarray, seeds_x: list, seeds_y: list) -> float:
    """Mean covariance (over resamples) between rows of ``x`` and rows of ``y`` whose seeds differ."""
    c = (x - x.mean(1, keepdims=True)) @ (y - y.mean(1, keepdims=True)).T / (x.shape[1] - 1)
    distinct = np.array([[sx != sy for sy in seeds_y] for sx in seeds_x])
    return float(c[distinct].mean()) if distinct.any() else 0.0


def _seed_floor(replicates: np.ndarray, ids: list) -> float:
    """mean_s var_boot(row s) - mean covariance of distinct rows: the least the per-seed values can scatter."""
    own = float(replicates.var(axis=1, ddof=1).mean())
    return max(0.0, own - _mean_cross_cov(replicates, replicates, ids, ids))


def compare(
    metric: str,
    labels: np.ndarray,
    preds_a: list[np.ndarray],
    preds_b: list[np.ndarray],
    seeds_a: list[int] | None = None,
    seeds_b: list[int] | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    margin: float = MARGIN,
) -> Result:
    """Seed-aware test of mean_A - mean_B of ``metric`` (see the module docstring).

    ``preds_*``: one array of predicted labels per seed; ``seeds_*``: those seeds, in the same
    order (equal sets make the design paired); ``margin``: the equivalence margin (a fraction)."""
    from scipy import stats

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
        order_b = [ids_b.index(s) for s in ids_a]  # type: ignore[arg-type]  # paired: both are seeds
        d = a - b[order_b]
        observed = float(d.var(ddof=1) / na)
        v_seed = max(observed, _seed_floor(ra - rb[order_b], ids_a) / na)
        df_seed, design = float(na - 1), "paired seeds"
    elif na > 1 and nb > 1:
        va, vb = a.var(ddof=1) / na, b.var(ddof=1) / nb
        observed = float(va + vb)
        va, vb = max(va, _seed_floor(ra, ids_a) / na), max(vb, _seed_floor(rb, ids_b) / nb)
        v_seed, design = float(va + vb), "unpaired seeds"
        df_seed = float((va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))) if va + vb > 0 else np.inf
    else:
        v_seed, observed, df_seed, design = 0.0, 0.0, np.inf, "examples only"
    if design == "examples only":  # the models are held fixed: the whole resampling variance
        v_ex = float(np.var(ra.mean(0) - rb.mean(0), ddof=1))
    else:
        c_aa = _mean_cross_cov(ra, ra, ids_a, ids_a)
        c_bb = _mean_cross_cov(rb, rb, ids_b, ids_b)
        v_ex = max(0.0, c_aa - 2 * _mean_cross_cov(ra, rb, ids_a, ids_b) + c_bb)
    var = v_seed + v_ex
    df = float(var**2 / (v_seed**2 / df_seed)) if v_seed > 0 and np.isfinite(df_seed) else np.inf
    t975 = float(stats.t.ppf(0.975, df))
    step = float(np.median([resolution(metric, labels, p) for p in [*preds_a, *preds_b]]))
    se = max(float(np.sqrt(var)), step / t975)  # the resolution floor, as a standard error
    half = t975 * se
    p = float(2 * stats.t.sf(abs(delta) / se, df))
    p_eq = float(max(stats.t.sf((delta + margin) / se, df), stats.t.sf((margin - delta) / se, df)))
    mde = float((t975 + stats.t.ppf(0.80, df)) * se)
    return Result(
        delta,
        delta - half,
        delta + half,
        p,
        se,
        float(np.sqrt(v_seed)),
        float(np.sqrt(observed)),
        float(np.sqrt(v_ex)),
        df,
        design,
        step,
        p_eq,
        margin,
        mde,
    )


def equivalence(r: Result, fewest_seeds: int, alpha: float = 0.05) -> str:
    """What TOST says of ``r``: within +-margin, not shown, or too few seeds to tell."""
    if fewest_seeds < MIN_SEEDS:
        return "too few seeds to tell"
    m = f"{100 * r.margin:g}"
    return f"within ±{m} points" if r.p_equivalence < alpha else f"not shown within ±{m}"


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
