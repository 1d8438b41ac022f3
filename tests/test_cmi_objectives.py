"""cmi_min / cmi_max: the math by hand, centroid estimates, guards, and what training does to dev CMI."""

import math

import pytest
import torch

from harness.objective import Outputs
from harness.results import trial_records
from tests.helpers import SMALL_DATA_FLAGS

# Two examples, two classes; logits = log P so that softmax gives P exactly.
P = torch.tensor([[0.8, 0.2], [0.1, 0.9]], dtype=torch.float64)
Y = torch.tensor([0, 1])
Q = torch.tensor([[0.7, 0.3], [0.2, 0.8]], dtype=torch.float64)


def outputs(p=P, y=Y, features=None):
    return Outputs(p.log(), y, torch.arange(len(y)), features)


def with_centroids(obj, q=Q):
    obj.q, obj.have = q.clone(), torch.ones(len(q), dtype=torch.bool)
    return obj


def test_cmi_min_loss_and_parts_by_hand(loaded):
    obj = with_centroids(loaded.objectives.get("cmi_min")(2, **{"lambda": 0.5, "beta": 0.1}))
    out = obj.loss(outputs())
    # CE = -(ln .8 + ln .9)/2 = (.223144 + .105361)/2 = .164252
    # KL(P_0||Q_0) = .8 ln(8/7) + .2 ln(2/3) = .025732; KL(P_1||Q_1) = .1 ln(1/2) + .9 ln(9/8) = .036690
    # separation: H(P_0, Q_1) = -(.8 ln .2 + .2 ln .8) = 1.332179; H(P_1, Q_0) = -(.1 ln .7 + .9 ln .3) = 1.119243
    assert out.parts["ce"].item() == pytest.approx(0.164252, abs=1e-6)
    assert out.parts["kl"].item() == pytest.approx((0.025732 + 0.036690) / 2, abs=1e-6)
    assert out.parts["separation"].item() == pytest.approx((1.332179 + 1.119243) / 2, abs=1e-6)
    assert out.loss.item() == pytest.approx(0.164252 + 0.5 * 0.031211 - 0.1 * 1.225711, abs=1e-5)


def test_cmi_max_loss_by_hand(loaded):
    obj = with_centroids(loaded.objectives.get("cmi_max")(2, **{"lambda": 0.5}))
    assert obj.loss(outputs()).loss.item() == pytest.approx(0.164252 - 0.5 * 0.031211, abs=1e-5)


def test_before_any_centroid_the_cmi_terms_are_zero(loaded):
    obj = loaded.objectives.get("cmi_min")(2, **{"lambda": 0.5, "beta": 0.1})
    out = obj.loss(outputs())
    assert out.parts["kl"].item() == 0 and out.parts["separation"].item() == 0
    assert out.loss.item() == out.parts["ce"].item()


def test_a_class_without_centroid_adds_nothing(loaded):
    obj = loaded.objectives.get("cmi_min")(2, **{"lambda": 1.0, "beta": 1.0})
    obj.q, obj.have = Q.clone(), torch.tensor([True, False])
    out = obj.loss(outputs())
    assert out.parts["kl"].item() == pytest.approx(0.025732 / 2, abs=1e-6)  # only example 0 (class 0)
    assert out.parts["separation"].item() == pytest.approx(1.119243 / 2, abs=1e-6)  # only H(P_1, Q_0)


def batches():
    return [
        outputs(torch.tensor([[0.8, 0.2], [0.1, 0.9], [0.6, 0.4]], dtype=torch.float64), torch.tensor([0, 1, 0])),
        outputs(torch.tensor([[0.3, 0.7], [0.9, 0.1]], dtype=torch.float64), torch.tensor([1, 0])),
    ]


# class means over both batches: class 0 = mean of (.8,.2), (.6,.4), (.9,.1) = (.766667, .233333);
# class 1 = mean of (.1,.9), (.3,.7) = (.2, .8)
MEANS = torch.tensor([[2.3 / 3, 0.7 / 3], [0.2, 0.8]], dtype=torch.float64)


def test_epoch_centroids_are_the_class_means_of_what_they_were_fed(loaded):
    obj = loaded.objectives.get("cmi_min")(2, centroids="epoch")
    for b in batches():
        obj.on_step_end(b)
    assert obj.q is None  # held until the epoch ends
    obj.on_epoch_end(0)
    torch.testing.assert_close(obj.q, MEANS)


def test_exact_pass_centroids_are_the_class_means(loaded):
    obj = loaded.objectives.get("cmi_min")(2, centroids="exact")
    assert obj.wants_train_pass
    for b in batches():
        obj.on_step_end(b)  # training steps do not move exact centroids
        obj.on_pass_batch(b)
    obj.on_pass_end()
    torch.testing.assert_close(obj.q, MEANS)


def test_ema_centroids_by_hand(loaded):
    obj = loaded.objectives.get("cmi_min")(2, centroids="ema", ema_decay=0.5)
    b1, b2 = batches()
    obj.on_step_end(b1)  # first sight of each class sets it: (.7, .3) and (.1, .9)
    torch.testing.assert_close(obj.q, torch.tensor([[0.7, 0.3], [0.1, 0.9]], dtype=torch.float64))
    obj.on_step_end(b2)  # .5 * old + .5 * new
    torch.testing.assert_close(obj.q, torch.tensor([[0.8, 0.2], [0.2, 0.8]], dtype=torch.float64))


def test_state_round_trips(loaded):
    cls = loaded.objectives.get("cmi_min")
    obj = cls(2, centroids="epoch")
    b1, b2 = batches()
    obj.on_step_end(b1)
    obj.on_epoch_end(0)
    obj.on_step_end(b2)  # a half-accumulated epoch is state too
    restored = cls(2, centroids="epoch")
    restored.load_state_dict(obj.state_dict())
    for o in (obj, restored):
        o.on_epoch_end(1)
    torch.testing.assert_close(restored.q, obj.q)
    assert restored.steps.item() == obj.steps.item() == 2


def test_zero_probabilities_do_not_make_the_loss_infinite(loaded):
    obj = with_centroids(
        loaded.objectives.get("cmi_min")(2, **{"lambda": 1.0, "beta": 1.0}),
        torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64),
    )
    logits = torch.tensor([[-1e4, 1e4], [1e4, -1e4]], dtype=torch.float64)  # P puts all mass where Q has none
    out = obj.loss(Outputs(logits, Y, torch.arange(2)))
    assert all(math.isfinite(v.item()) for v in [out.loss, *out.parts.values()])


def test_features_space_uses_a_softmax_over_hidden_dimensions(loaded):
    obj = loaded.objectives.get("cmi_min")(2, space="features", temperature=0.5)
    assert obj.needs == {"logits", "features"}
    h = torch.tensor([[1.0, 0.0, -1.0]], dtype=torch.float64)
    got = obj.distribution(Outputs(torch.zeros(1, 2), torch.tensor([0]), torch.arange(1), h))
    torch.testing.assert_close(got, torch.softmax(h / 0.5, dim=-1))


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    from harness.cli import main

    def run(*args):
        out = tmp_path_factory.mktemp("runs")
        code = main(["run", "--tasks", "nli", "--seeds", "1", "--output-dir", str(out), "--quiet", *args])
        assert code == 0
        return {r["config"]["objective"]: r for r in trial_records(next(out.iterdir()))}

    return run


def test_lambda_beta_zero_reproduce_ce_exactly(smoke):
    got = smoke("--objectives", "ce,cmi_min", "--objective-args", "cmi_min.lambda=0,cmi_min.beta=0", *SMALL_DATA_FLAGS)
    ce, cmi = got["ce"], got["cmi_min"]
    assert [e["train_loss"] for e in cmi["epochs"]] == [e["train_loss"] for e in ce["epochs"]]
    assert [e["validation"] for e in cmi["epochs"]] == [e["validation"] for e in ce["epochs"]]


@pytest.mark.slow  # training must move dev CMI: three trials of 3 epochs on 2,000 examples
def test_cmi_min_lowers_and_cmi_max_raises_dev_cmi(smoke):
    got = smoke("--objectives", "ce,cmi_min,cmi_max", "--objective-args", "cmi_min.lambda=1,cmi_max.lambda=0.5")
    cmi = {name: r["final"]["validation"]["cmi"] for name, r in got.items()}
    assert cmi["cmi_min"] < 0.8 * cmi["ce"] < 0.8 * cmi["cmi_max"], cmi
    assert got["cmi_min"]["epochs"][-1]["train_parts"]["kl"] > 0


def test_features_space_runs_end_to_end(smoke):
    args = ["--objective-args", "cmi_min.space=features,cmi_min.centroids=exact", "--epochs", "2", *SMALL_DATA_FLAGS]
    got = smoke("--objectives", "cmi_min", *args)
    r = got["cmi_min"]
    assert r["status"] == "completed" and r["hparams"]["space"] == "features"
    assert r["epochs"][-1]["train_parts"]["kl"] > 0
    assert r["arm"] == "cmi_min[space=features,centroids=exact]"


def test_features_space_trial_records_dev_cmi_in_the_space_it_optimises(cli, tmp_path):
    args = ["--objectives", "cmi_min", "--objective-args", "cmi_min.space=features", "--tasks", "nli"]
    code, _, err = cli(
        "run", *args, "--seeds", "1", "--epochs", "1", *SMALL_DATA_FLAGS, "--output-dir", str(tmp_path), "--quiet"
    )
    assert code == 0, err
    (run_dir,) = tmp_path.iterdir()
    (r,) = trial_records(run_dir)
    final = r["final"]["validation"]
    assert final["cmi_features"] != final["cmi"]
    assert final["ncmi_features"] == pytest.approx(final["cmi_features"] / final["gamma_features"])
    from harness.report import build

    spaces = build([run_dir]).tables["cmi"].set_index("space")  # the report labels which is which
    assert spaces.loc["features", "cmi"] == pytest.approx(final["cmi_features"])
    assert spaces.loc["posterior", "cmi"] == pytest.approx(final["cmi"])


def test_features_space_dev_cmi_matches_a_recomputation_from_the_pooled_vectors(loaded):
    """evaluate() against softmax(pooler_output / T) of the same model, computed here without the harness's tap."""
    import numpy as np

    from harness.batching import Columns
    from harness.data import tokenize
    from harness.forward import FeatureTap
    from harness.metrics import cmi_stats
    from harness.trainer import evaluate

    suite = loaded.suites.get("smoke")
    task = suite.task("nli")
    torch.manual_seed(0)
    tok, model = loaded.models.get("tiny").load(task.num_labels)
    dev = Columns(tokenize(task, suite.load(task, None), tok, 64, 50)["validation"], tok.pad_token_id)
    objective = loaded.objectives.get("cmi_min")(task.num_labels, space="features", temperature=0.5)
    metrics, _ = evaluate(model, dev, task, 16, objective, FeatureTap(model))
    model.eval()
    with torch.no_grad():
        batch = dev.collate(np.arange(len(dev)))
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "idx")}
        pooled = model.bert(**inputs).pooler_output.double()
    expected = cmi_stats(torch.softmax(pooled / 0.5, -1).numpy(), dev.labels, task.num_labels)
    assert metrics["cmi_features"] == pytest.approx(expected["cmi"], rel=1e-5)
    assert metrics["gamma_features"] == pytest.approx(expected["gamma"], rel=1e-5)


@pytest.mark.parametrize(
    "args, message",
    [
        ("cmi_min.lambda=-0.1", r"cmi_min\.lambda='-0\.1': must be >= 0\.0"),
        ("cmi_min.gamma=1", r"objective 'cmi_min' has no hyper-parameter 'gamma'"),
        ("cmi_min.space=tokens", r"cmi_min\.space='tokens': must be one of logits, features"),
    ],
)
def test_bad_cmi_hyper_parameters_get_one_line(cli, tmp_path, args, message):
    import re

    code, _, err = cli("run", "--objectives", "cmi_min", "--objective-args", args, "--output-dir", str(tmp_path))
    assert code == 2 and len(err.strip().splitlines()) == 1 and re.search(message, err), err
    assert not any(tmp_path.iterdir())
