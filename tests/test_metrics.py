"""The metrics by hand: accuracy, F1 and MCC, class centroids, and CMI, Gamma and NCMI (also on
degenerate outputs)."""

import itertools

import numpy as np
import pytest

from harness.metrics import class_centroids, cmi_stats, glue_metrics

# Four examples, two classes. Worked by hand:
# class 0: P = (0.8, 0.2), (0.6, 0.4) -> Q_0 = (0.7, 0.3); class 1: (0.1, 0.9), (0.3, 0.7) -> Q_1 = (0.2, 0.8)
P = np.array([[0.8, 0.2], [0.6, 0.4], [0.1, 0.9], [0.3, 0.7]])
Y = np.array([0, 0, 1, 1])


def kl(p, q):
    return sum(a * np.log(a / b) for a, b in zip(p, q, strict=True))


def test_glue_metrics_hand_values():
    labels = np.array([1, 1, 0, 0, 1])
    preds = np.array([1, 0, 0, 1, 1])
    # TP=2, FP=1, FN=1 -> F1 = 2*2/(2*2+1+1) = 2/3; accuracy 3/5
    # MCC = (TP*TN - FP*FN)/sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (2*1-1*1)/sqrt(3*3*2*2) = 1/6
    got = glue_metrics(("accuracy", "f1", "mcc"), labels, preds)
    assert got == pytest.approx({"accuracy": 0.6, "f1": 2 / 3, "mcc": 1 / 6})


def test_centroids_are_class_means():
    q = class_centroids(P, Y, 2)
    np.testing.assert_allclose(q, [[0.7, 0.3], [0.2, 0.8]])


def test_cmi_gamma_ncmi_hand_values():
    cmi = (
        kl([0.8, 0.2], [0.7, 0.3])
        + kl([0.6, 0.4], [0.7, 0.3])
        + kl([0.1, 0.9], [0.2, 0.8])
        + kl([0.3, 0.7], [0.2, 0.8])
    ) / 4
    # by hand: .8 ln(8/7) + .2 ln(2/3) = .025732; .6 ln(6/7) + .4 ln(4/3) = .022582;
    #          .1 ln(1/2) + .9 ln(9/8) = .036690; .3 ln(3/2) + .7 ln(7/8) = .028168; mean .028293
    assert cmi == pytest.approx(0.028293, abs=1e-6)
    pairs = [(i, j) for i, j in itertools.permutations(range(4), 2) if Y[i] != Y[j]]
    gamma = np.mean([-np.sum(P[i] * np.log(P[j])) for i, j in pairs])
    got = cmi_stats(P, Y, 2)
    assert got["cmi"] == pytest.approx(cmi, rel=1e-9)
    assert got["gamma"] == pytest.approx(gamma, rel=1e-9)
    # the 8 cross-entropies H(P_i, P_j), e.g. H(P_0, P_2) = -(.8 ln .1 + .2 ln .9) = 1.86314, sum to 9.52115
    assert got["gamma"] == pytest.approx(9.52115 / 8, abs=1e-5)
    assert got["ncmi"] == pytest.approx(cmi / gamma, rel=1e-9)


def test_gamma_matches_brute_force_on_random_data():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=40)
    labels = rng.integers(0, 3, size=40)
    brute = np.mean(
        [-np.sum(probs[i] * np.log(probs[j])) for i in range(40) for j in range(40) if labels[i] != labels[j]]
    )
    assert cmi_stats(probs, labels, 3)["gamma"] == pytest.approx(brute, rel=1e-9)


def test_identical_outputs_per_class_have_zero_cmi_and_one_hot_zero_does_not_blow_up():
    probs = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    got = cmi_stats(probs, np.array([0, 0, 1]), 2)
    assert got["cmi"] == pytest.approx(0.0, abs=1e-9)
    assert np.isfinite(got["gamma"]) and got["gamma"] > 20  # -log(1e-12) ~ 27.6: clamped, not inf
