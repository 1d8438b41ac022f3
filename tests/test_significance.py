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
    assert (same.delta, same.p_value) == (0.0, 1.0)
    assert (same.ci_low, same.ci_high) == pytest.approx((-0.01, 0.01))  # never narrower than one example of 100
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


def _swap(base: np.ndarray, labels: np.ndarray, gain: list[int], lose: list[int]) -> np.ndarray:
    """``base`` with the examples in ``gain`` made right and those in ``lose`` made wrong."""
    out = base.copy()
    out[gain] = labels[gain]
    out[lose] = 1 - labels[lose]
    return out


def _old_p(r) -> float:
    """The test before the floors: the seeds' own scatter plus the common example term, n - 1 df."""
    se = np.hypot(r.se_seeds_observed, r.se_examples)
    return float(2 * stats.t.sf(abs(r.delta) / se, 2)) if se > 0 else float("nan")


def test_the_cancel_case_gets_an_interval_of_at_least_one_example():
    """Every seed's arms differ on exactly two examples, one gained and one lost, different ones per
    seed (RTE's 277 dev examples): the per-seed differences are all 0, and the interval used to be
    +-0.03 points, a tenth of one example (0.36)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 277)
    b = [np.where(rng.random(277) < 0.7, labels, 1 - labels) for _ in range(3)]
    a = []
    for s, base in enumerate(b):
        right, wrong = np.flatnonzero(base == labels), np.flatnonzero(base != labels)
        a.append(_swap(base, labels, [wrong[s]], [right[s]]))
    r = significance.compare("accuracy", labels, a, b, [1, 2, 3], [1, 2, 3])
    assert r.delta == 0 and r.se_seeds_observed == 0
    assert r.ci_high >= 1 / 277 and r.ci_low <= -1 / 277 and r.p_value == pytest.approx(1.0)
    assert r.se_seeds > 0  # the floor: each seed's difference carries two examples' noise


def test_the_tight_triple_is_not_significant_once_the_seed_term_has_its_floor():
    """Three seeds gain +3, +3 and +4 examples net of about 30 changed each, on disjoint examples of
    a CoLA-sized dev set: the seeds agree by chance, far more closely than the dev set allows."""
    rng = np.random.default_rng(1)
    n = 1043
    labels = rng.integers(0, 2, n)
    b = [np.where(rng.random(n) < 0.75, labels, 1 - labels) for _ in range(3)]
    a = []
    for s, (base, net) in enumerate(zip(b, (3, 3, 4), strict=True)):
        right, wrong = np.flatnonzero(base == labels), np.flatnonzero(base != labels)
        lose = right[40 * s : 40 * s + 13]
        gain = wrong[40 * s : 40 * s + 13 + net]
        a.append(_swap(base, labels, list(gain), list(lose)))
    r = significance.compare("accuracy", labels, a, b, [1, 2, 3], [1, 2, 3])
    assert r.delta == pytest.approx(10 / 3 / n)
    assert _old_p(r) < 0.01  # what the report said before
    assert r.p_value > 0.1 and r.ci_low < 0 and r.floored


def test_resolution_of_f1_and_mcc_by_hand():
    # tp 3, fp 1, fn 1, tn 5: F1 = 6/8 = 0.75; one more tp (from fn): 8/9; one fewer fp: 6/7
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    preds = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0])
    steps = [8 / 9 - 0.75, 6 / 7 - 0.75, 0.75 - 6 / 9, 0.75 - 6 / 9]  # fn->tp, fp->tn, tp->fn, tn->fp
    assert significance.resolution("f1", labels, preds) == pytest.approx(min(steps))
    assert significance.resolution("accuracy", labels, preds) == pytest.approx(0.1)
    mcc = lambda tp, fp, fn, tn: (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))  # noqa: E731
    here = mcc(3, 1, 1, 5)
    moves = [mcc(4, 1, 0, 5), mcc(2, 1, 2, 5), mcc(3, 0, 1, 6), mcc(3, 2, 1, 4)]
    assert significance.resolution("mcc", labels, preds) == pytest.approx(min(abs(m - here) for m in moves))


def test_equivalence_by_hand():
    """TOST: the larger one-sided p of delta against -m and +m, with the test's own SE and df."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 872)
    b = [np.where(rng.random(872) < 0.8, labels, 1 - labels) for _ in range(5)]
    a = [np.where(rng.random(872) < 0.01, 1 - p, p) for p in b]  # ~1% of examples changed
    r = significance.compare("accuracy", labels, a, b, list(range(5)), list(range(5)))
    want = max(stats.t.sf((r.delta + 0.01) / r.se, r.df), stats.t.sf((0.01 - r.delta) / r.se, r.df))
    assert r.p_equivalence == pytest.approx(want)
    assert significance.equivalence(r, 5) == ("within ±1 points" if want < 0.05 else "not shown within ±1")
    assert significance.equivalence(r, 2) == "too few seeds to tell"
    assert r.mde == pytest.approx((stats.t.ppf(0.975, r.df) + stats.t.ppf(0.8, r.df)) * r.se)


def test_calibration_in_the_study_regime_runs_and_the_floors_hold_the_level():
    """A small version of reports/significance_calibration.md's rows: paired seeds, arms differing on 1%."""
    from benchmarks.significance_calibration import study_row

    r = study_row("accuracy", 3, 0.01, sims=40, resamples=200, seed=5)
    assert r["fp_new"] <= 0.1 and r["cover_new"] >= 0.9
