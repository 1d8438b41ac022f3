"""How often the report's significance test calls a difference real: false positives under no
effect, and power under a planted effect, against the test it replaced (a paired bootstrap over
dev examples with the seeds held fixed, the named peer) and an oracle (Welch's t-test on the
per-seed scores of models scored on an infinite dev set).

The simulated world: a dev set of N examples with difficulties a_i ~ N(0, 1) and balanced
labels; a model of skill theta gets example i right with probability sigmoid(theta + a_i).
Each seed draws theta ~ N(theta_0 + effect, tau); tau is set so that the per-seed accuracy
spreads by ``--seed-sd`` points (3.7 on RTE in the project's runs). ``--interaction`` gives objective
A an effect that varies by example (N(0, s) in logit units, mean 0: no effect on average over the
example distribution, but a real one on any finite dev set, which only the example term sees). A
fresh dev set per simulated comparison. Sides use different seeds (unpaired), or the same seeds with a
per-seed correlation ``--paired RHO`` of skills and shared coin flips (the harness's design:
seed s initialises both objectives alike).

    python benchmarks/significance_calibration.py [--sims 1000] [--seeds 3] [--seed-sd 3.7]

``--regime study`` checks the regime the GLUE studies live in instead: paired seeds whose two arms
differ on only 0.3-3% of dev examples (a fine-tuning objective that changes a few predictions),
2-8 seeds, accuracy (SST-2's 872 examples), F1 (MRPC's 408) and MCC (CoLA's 1,043). Per seed, B's
predictions come from the world above; A is B with k = frac * N examples changed, different ones
per seed: G ~ Binomial(k, 1/2 + e) wrong ones made right and k - G right ones made wrong. e = 0:
no effect (false positives); e = 0.25: a planted effect, whose true size (the expected metric
difference) is estimated from 20,000 simulated seeds, for the coverage of the 95% interval. The
"old" test is the same one without its two floors, rebuilt from the fields the result keeps.

    python benchmarks/significance_calibration.py --regime study [--sims 400]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import optimize, special, stats

from harness import significance

GRID = stats.norm.ppf((np.arange(2000) + 0.5) / 2000)  # quantiles of the difficulty distribution


def expected_accuracy(theta: float, scale: float = 1.0) -> float:
    """Mean over examples of sigmoid(theta + d), d ~ N(0, scale^2) (difficulty, plus any per-example effect)."""
    return float(special.expit(theta + scale * GRID).mean())


def skill_for(accuracy: float, scale: float = 1.0) -> float:
    return float(optimize.brentq(lambda t: expected_accuracy(t, scale) - accuracy, -10, 10))


def simulate(
    rng: np.random.Generator,
    n_examples: int = 277,
    seeds: int = 3,
    seed_sd: float = 3.7,
    effect: float = 0.0,
    base: float = 0.60,
    rho: float | None = None,
    resamples: int = 400,
    interaction: float = 0.0,
) -> dict[str, float]:
    """One simulated comparison; returns the p-values of the new test, the old one, and the oracle."""
    theta0 = skill_for(base)
    slope = (expected_accuracy(theta0 + 1e-3) - expected_accuracy(theta0 - 1e-3)) / 2e-3
    tau = seed_sd / 100 / slope  # skill spread that moves expected accuracy by seed_sd points
    scale_a = float(np.hypot(1.0, interaction))  # A's logits: difficulty plus its per-example effect
    shift = skill_for(base + effect / 100, scale_a) - theta0  # so A's mean accuracy is base + effect
    a = rng.normal(size=n_examples)
    helps = interaction * rng.normal(size=n_examples)  # objective A helps some examples, hurts others
    labels = rng.integers(0, 2, n_examples)
    z_a = rng.normal(size=seeds)
    z_b = rho * z_a + np.sqrt(1 - rho**2) * rng.normal(size=seeds) if rho is not None else rng.normal(size=seeds)
    preds_a, preds_b = [], []
    for s in range(seeds):
        u_a = rng.random(n_examples)
        u_b = u_a if rho is not None else rng.random(n_examples)
        for z, u, delta, out in ((z_a[s], u_a, shift + helps, preds_a), (z_b[s], u_b, 0.0, preds_b)):
            right = u < special.expit(theta0 + delta + tau * z + a)
            out.append(np.where(right, labels, 1 - labels))
    ids = list(range(seeds))
    new = significance.compare("accuracy", labels, preds_a, preds_b, ids, ids if rho is not None else None, resamples)
    old_p = _examples_only_percentile(labels, preds_a, preds_b, resamples, rng)
    oracle_a = [expected_accuracy(theta0 + shift + tau * z, scale_a) for z in z_a]
    oracle_b = [expected_accuracy(theta0 + tau * z) for z in z_b]
    oracle = (
        stats.ttest_rel(oracle_a, oracle_b) if rho is not None else stats.ttest_ind(oracle_a, oracle_b, equal_var=False)
    )
    return {"new": new.p_value, "old": old_p, "oracle": float(oracle.pvalue)}


def _examples_only_percentile(labels, preds_a, preds_b, resamples, rng) -> float:
    """The replaced test: seed-averaged metric per example resample, percentile two-sided p."""
    n = len(labels)
    w = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
    side = lambda preds: np.mean([significance.weighted_metric("accuracy", w, labels, p) for p in preds], 0)  # noqa: E731
    d = side(preds_a) - side(preds_b)
    return float(min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0))))


def rates(sims: int, alpha: float = 0.05, seed: int = 0, **kw) -> dict[str, float]:
    """Fraction of ``sims`` comparisons with p < alpha, per test."""
    rng = np.random.default_rng(seed)
    ps = [simulate(rng, **kw) for _ in range(sims)]
    return {k: float(np.mean([p[k] < alpha for p in ps])) for k in ps[0]}


STUDY_TASKS = {"accuracy": (872, 0.51), "f1": (408, 0.68), "mcc": (1043, 0.69)}  # N, share of label 1


def _changed(rng, labels: np.ndarray, base: np.ndarray, k: int, e: float) -> np.ndarray:
    """``base`` with ``k`` examples changed: G ~ Bin(k, 1/2 + e) wrong ones made right, k - G right made wrong."""
    right, wrong = np.flatnonzero(base == labels), np.flatnonzero(base != labels)
    gain = min(rng.binomial(k, 0.5 + e), len(wrong))
    out = base.copy()
    g = rng.choice(wrong, gain, replace=False)
    lo = rng.choice(right, min(k - gain, len(right)), replace=False)
    out[g], out[lo] = labels[g], 1 - labels[lo]
    return out


def study_world(rng, metric: str, seeds: int, frac: float, e: float, seed_sd: float = 1.0, base: float = 0.8):
    """One simulated comparison in the study regime: labels and both arms' predictions per seed."""
    n, share = STUDY_TASKS[metric]
    theta0 = skill_for(base)
    slope = (expected_accuracy(theta0 + 1e-3) - expected_accuracy(theta0 - 1e-3)) / 2e-3
    tau = seed_sd / 100 / slope
    a = rng.normal(size=n)
    labels = (rng.random(n) < share).astype(int)
    k = max(1, round(frac * n))
    preds_b = [
        np.where(rng.random(n) < special.expit(theta0 + tau * z + a), labels, 1 - labels)
        for z in rng.normal(size=seeds)
    ]
    preds_a = [_changed(rng, labels, b, k, e) for b in preds_b]
    return labels, preds_a, preds_b


def true_delta(metric: str, frac: float, e: float, draws: int = 20000, seed: int = 99) -> float:
    """E[metric(A) - metric(B)] over seeds and dev sets, by simulation (0 for accuracy at e = 0)."""
    rng = np.random.default_rng(seed)
    ones = None
    total = 0.0
    per_world = 50
    for _ in range(draws // per_world):
        labels, pa, pb = study_world(rng, metric, per_world, frac, e)
        ones = np.ones((1, len(labels)))
        total += sum(
            significance.weighted_metric(metric, ones, labels, x)[0]
            - significance.weighted_metric(metric, ones, labels, y)[0]
            for x, y in zip(pa, pb, strict=True)
        )
    return total / (draws // per_world * per_world)


def _old(r, seeds: int) -> tuple[float, float]:
    """p and interval half-width of the paired test without its floors, from the fields a Result keeps."""
    v_seed, var = r.se_seeds_observed**2, r.se_seeds_observed**2 + r.se_examples**2
    if var == 0:
        return (1.0 if r.delta == 0 else 0.0), 0.0
    df = var**2 / (v_seed**2 / (seeds - 1)) if v_seed > 0 else np.inf
    se = np.sqrt(var)
    return float(2 * stats.t.sf(abs(r.delta) / se, df)), float(stats.t.ppf(0.975, df) * se)


def study_row(metric: str, seeds: int, frac: float, sims: int, resamples: int = 400, seed: int = 0) -> dict:
    """False-positive rate (e = 0) and 95% coverage of the planted effect (e = 0.25), new and old test."""
    rng = np.random.default_rng(seed)
    truth = true_delta(metric, frac, 0.25)
    ids = list(range(seeds))
    out = {"fp_new": 0, "fp_old": 0, "cover_new": 0, "cover_old": 0}
    for _ in range(sims):
        labels, pa, pb = study_world(rng, metric, seeds, frac, 0.0)
        r = significance.compare(metric, labels, pa, pb, ids, ids, resamples, seed=int(rng.integers(2**31)))
        out["fp_new"] += r.p_value < 0.05
        out["fp_old"] += _old(r, seeds)[0] < 0.05
        labels, pa, pb = study_world(rng, metric, seeds, frac, 0.25)
        r = significance.compare(metric, labels, pa, pb, ids, ids, resamples, seed=int(rng.integers(2**31)))
        out["cover_new"] += r.ci_low <= truth <= r.ci_high
        half = _old(r, seeds)[1]
        out["cover_old"] += r.delta - half <= truth <= r.delta + half
    return {k: v / sims for k, v in out.items()} | {"truth": truth}


def study_table(sims: int) -> None:
    print(f"{sims} simulated comparisons per row and column; paired seeds; seed spread 1 point")
    print("| metric (N) | seeds | examples changed | FP new | FP old | coverage new | coverage old |")
    print("|---|---|---|---|---|---|---|")
    for metric, (n, _) in STUDY_TASKS.items():
        for seeds in (2, 3, 5, 8):
            for frac in (0.003, 0.01, 0.03):
                r = study_row(metric, seeds, frac, sims, seed=seeds * 100 + int(frac * 1000))
                print(
                    f"| {metric} ({n}) | {seeds} | {100 * frac:g}% | {r['fp_new']:.3f} | {r['fp_old']:.3f} | "
                    f"{r['cover_new']:.3f} | {r['cover_old']:.3f} |",
                    flush=True,
                )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--regime", choices=("seeds", "study"), default="seeds")
    p.add_argument("--sims", type=int, default=1000)
    p.add_argument("--examples", type=int, default=277)
    p.add_argument("--seed-sd", type=float, default=3.7)
    p.add_argument("--effect", type=float, default=3.0, help="planted effect for the power rows (points)")
    p.add_argument("--paired", type=float, default=0.8, help="per-seed correlation of the paired rows")
    p.add_argument("--interaction", type=float, default=0.0, help="sd of A's per-example effect (logits)")
    a = p.parse_args()
    if a.regime == "study":
        study_table(a.sims)
        return
    print(f"N={a.examples} dev examples, seed spread {a.seed_sd} points, {a.sims} simulated comparisons per row")
    print("rate of p < 0.05 | new (seed-aware) | old (examples bootstrap) | oracle (Welch/paired t, exact scores)")
    for seeds in (3, 5):
        for design, rho in (("unpaired", None), (f"paired rho={a.paired}", a.paired)):
            for what, effect in (("null", 0.0), (f"effect {a.effect:+g}", a.effect)):
                started = time.perf_counter()
                r = rates(
                    a.sims,
                    seeds=seeds,
                    seed_sd=a.seed_sd,
                    effect=effect,
                    rho=rho,
                    n_examples=a.examples,
                    interaction=a.interaction,
                )
                print(
                    f"{seeds} vs {seeds} seeds, {design:<15} {what:<11} | {r['new']:.3f} | {r['old']:.3f} | "
                    f"{r['oracle']:.3f}   ({time.perf_counter() - started:.0f} s)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
