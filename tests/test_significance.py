"""The seed-aware test: its parts worked by hand, its error rates checked by simulation."""

import numpy as np
import pytest
from scipy import stats

from benchmarks.significance_calibration import rates
from harness import significance


def preds_with_accuracy(labels: np.ndarray, right: int) -> np.ndarray:
    """Predictions right on exactly the first ``right`` examples."""
    out = 1 - labels
    out[:right] = labels[:right]
    return out


def test_paired_seed_term_and_df_by_hand():
    labels = np.ones(10, dtype=int)
    a = [preds_with_accuracy(labels, 8), preds_with_accuracy(labels, 6)]  # 0.8, 0.6
    b = [preds_with_accuracy(labels, 5), preds_with_accuracy(labels, 5)]  # 0.5, 0.5
    r = significance.compare("accuracy", labels, a, b, [1, 2], [2, 1])
    # per-seed differences 0.3 and 0.1: mean 0.2, var 0.02, V_seed = 0.02 / 2 = 0.01, df = 1
    assert r.design == "paired seeds" and r.delta == pytest.approx(0.2)
    assert r.se_seeds == pytest.approx(0.1) and r.df >= 1.0
    assert r.ci_high - r.delta == pytest.approx(stats.t.ppf(0.975, r.df) * r.se)


def test_unpaired_seed_term_is_welch():
    labels = np.ones(20, dtype=int)
    a = [preds_with_accuracy(labels, k) for k in (14, 16, 18)]  # 0.7, 0.8, 0.9: var 0.01
    b = [preds_with_accuracy(labels, k) for k in (10, 12)]  # 0.5, 0.6: var 0.005
    r = significance.compare("accuracy", labels, a, b, [1, 2, 3], [4, 5])
    va, vb = 0.01 / 3, 0.005 / 2
    assert r.design == "unpaired seeds" and r.se_seeds == pytest.approx(np.sqrt(va + vb))
    welch = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 1)
    assert r.df >= welch - 1e-9  # the example term only adds (as known) degrees of freedom


def test_one_seed_a_side_is_examples_only_and_identical_predictions_give_p_1():
    labels = np.array([0, 1] * 50)
    good, bad = preds_with_accuracy(labels, 90), preds_with_accuracy(labels, 60)
    r = significance.compare("accuracy", labels, [good], [bad], [1], [1])
    assert r.design == "examples only" and r.se_seeds == 0 and r.p_value < 0.001 and r.ci_low > 0.15
    same = significance.compare("accuracy", labels, [good, good], [good, good], [1, 2], [1, 2])
    assert (same.delta, same.p_value, same.ci_low, same.ci_high) == (0.0, 1.0, 0.0, 0.0)
    assert significance.compare("accuracy", labels, [good], [bad]) == r  # seeded: reproducible


def test_weighted_metrics_match_sklearn_with_unit_weights():
    from sklearn.metrics import f1_score, matthews_corrcoef

    rng = np.random.default_rng(0)
    labels, preds = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    w = np.ones((1, 200))
    assert significance.weighted_metric("f1", w, labels, preds)[0] == pytest.approx(f1_score(labels, preds))
    assert significance.weighted_metric("mcc", w, labels, preds)[0] == pytest.approx(matthews_corrcoef(labels, preds))


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.04 -> 0.03, 0.04, 0.04 (monotone); back in the given order
    assert significance.holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert significance.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    assert significance.holm([]) == []


def test_p_below_resolution_is_never_printed_as_zero():
    assert significance.format_p(0.0) == "< 0.001" and significance.format_p(0.0004) == "< 0.001"
    assert significance.format_p(0.0123) == "0.012" and significance.format_p(float("nan")) == "n/a"


@pytest.mark.parametrize("seeds,rho", [(3, None), (5, 0.8)])
def test_false_positive_rate_under_the_null_with_seed_variance(seeds, rho):
    """RTE-like: 277 dev examples, per-seed skill spread 3.7 points, no true effect, 250 comparisons."""
    r = rates(250, seeds=seeds, seed_sd=3.7, rho=rho, resamples=200, seed=seeds)
    assert r["new"] <= 0.07
    assert r["old"] >= 0.15  # the replaced examples-only bootstrap: why it was replaced


def test_false_positive_rate_when_the_objective_helps_some_examples_and_hurts_others():
    """No effect over the example distribution, but one on any finite dev set (A's per-example effect
    ~ N(0, 1) logits): only the example term accounts for it. Paired seeds, whose A and B models share
    their initialisation, must not have that shared part subtracted twice."""
    r = rates(300, seeds=5, seed_sd=3.7, rho=0.8, resamples=200, seed=21, interaction=1.0)
    assert r["new"] <= 0.07


def test_power_against_a_planted_three_point_effect():
    """5 paired seeds, 3 points: detected most of the time when seeds spread by 1.5 points; at 3.7
    points no calibrated test can (the oracle t-test on exact scores), and the new one keeps up with it."""
    easy = rates(150, seeds=5, seed_sd=1.5, effect=3.0, rho=0.8, resamples=200, seed=11)
    assert easy["new"] >= 0.8
    hard = rates(150, seeds=5, seed_sd=3.7, effect=3.0, rho=0.8, resamples=200, seed=12)
    assert hard["new"] >= hard["oracle"] - 0.12
