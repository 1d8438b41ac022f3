"""What lets a large model fit: gradient accumulation (N micro-batches give the update of the whole batch)
and gradient checkpointing (the same numbers, activations recomputed), on a tiny model without dropout."""

import pytest

from harness.planner import make_plan
from harness.trial import run_trial
from tests.helpers import NO_DROPOUT, SMALL_DATA


@pytest.fixture
def nodrop(tmp_path, monkeypatch):
    from harness import plugins as plugin_loader

    (tmp_path / "nodrop_plugin.py").write_text(NO_DROPOUT)
    monkeypatch.syspath_prepend(str(tmp_path))
    return plugin_loader.load(("nodrop_plugin",))


def _epochs(loaded, tmp_path, name, objective="ce", **settings):
    plan = make_plan(loaded, "smoke", ["nli"], [objective], "tiny-nodrop", [1], check_model=False, epochs=2,
                     batch_size=32, plugins=("nodrop_plugin",), **SMALL_DATA, **settings)  # fmt: skip
    record = run_trial(plan.trials[0], tmp_path / name, plugins=loaded)
    assert record.completed, record.error
    return record.epochs


def _close(a, b, tol=2e-4):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x["train_loss"] == pytest.approx(y["train_loss"], rel=tol)
        for metric in ("accuracy", "cmi", "ncmi"):
            assert x["validation"][metric] == pytest.approx(y["validation"][metric], rel=tol, abs=1e-6)


@pytest.mark.parametrize("objective", ["ce", "cmi_min"])
def test_four_micro_batches_of_eight_give_the_steps_of_one_batch_of_thirty_two(nodrop, tmp_path, objective):
    """cmi_min too: its centroids are updated once per step, from the outputs of all four micro-batches."""
    whole = _epochs(nodrop, tmp_path, "whole", objective)
    accumulated = _epochs(nodrop, tmp_path, "accum", objective, grad_accum=4)
    _close(whole, accumulated)


def test_gradient_checkpointing_gives_the_same_numbers(nodrop, tmp_path):
    _close(_epochs(nodrop, tmp_path, "plain"), _epochs(nodrop, tmp_path, "ckpt", gradient_checkpointing=True))


def test_accumulation_that_does_not_divide_the_batch_is_refused(cli, tmp_path):
    code, _, err = cli("run", "--grad-accum", "5", "--batch-size", "32", "--output-dir", str(tmp_path))
    assert code == 2 and "--grad-accum 5: must be >= 1 and divide --batch-size 32" in err
