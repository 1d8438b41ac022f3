"""The training step's speed options change how fast, not what: losses read back every N steps
give the same records and per-step losses as every step, a non-finite loss still fails its trial
naming its step, batches padded to a multiple of 8 train to the same losses, and --compile trains
the same model (torch.compile) to the same losses within float tolerance."""

import math

import pytest

from harness.errors import TrialFailed


def _fit(loaded, read_every=None, objective="ce", pad_multiple=1, epochs=2, dropout=True, dev=True, **cfg_fields):
    """Trains the tiny smoke model on 256 sentiment examples in batches of 16 (16 steps an epoch);
    returns the FitResult and the progress events. ``dropout=False``: every dropout's p set to 0
    (a mask drawn for a wider batch is another mask); ``dev=False``: no dev evaluation."""
    import torch

    from harness.batching import Columns
    from harness.config import TrialConfig
    from harness.data import tokenize
    from harness.models import resolve
    from harness.trainer import fit
    from harness.trial import set_seed

    suite = loaded.suites.get("smoke")
    task = suite.task("sentiment")
    set_seed(1)
    tok, model = resolve("tiny", loaded.models).load(task.num_labels)
    for module in model.modules() if not dropout else ():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    tokenized = tokenize(task, suite.load(task, None), tok, 64, 256, 128)
    splits = ("train", *task.dev_splits) if dev else ("train",)
    columns = {s: Columns(tokenized[s], tok.pad_token_id, pad_multiple, 64) for s in splits}
    cfg = TrialConfig(suite="smoke", task="sentiment", objective=objective, model="tiny", seed=1, epochs=epochs,
                      batch_size=16, max_train_samples=256, **cfg_fields)  # fmt: skip
    events: list[dict] = []
    objective = loaded.objectives.get(objective)(task.num_labels)
    result = fit(cfg, 1e-3, model, objective, task, columns.pop("train"), columns, events.append, read_every=read_every)
    return result, [e for e in events if e["event"] == "step"]


@pytest.mark.parametrize("objective", ["ce", "cmi_min"])
def test_losses_read_every_5_steps_equal_those_read_every_step(loaded, objective):
    every, steps = _fit(loaded, 1, objective)
    batched, reads = _fit(loaded, 5, objective)
    assert batched.epochs == every.epochs  # losses, parts, metrics and CMI, bit for bit
    assert [e["step"] for e in reads] == [5, 10, 15, 16, 20, 25, 30, 32]  # every 5th step, and each epoch's end
    assert [loss for e in reads for loss in e["losses"]] == [e["loss"] for e in steps]
    assert [e["epoch"] for e in reads] == [1, 1, 1, 1, 2, 2, 2, 2]
    assert all(e["loss"] == e["losses"][-1] and e["total_steps"] == 32 for e in reads)


def test_a_non_finite_loss_read_late_still_names_its_step(loaded, monkeypatch):
    """With reads every 4 steps, NaN from the third step on is found at the fourth, reported as step 3."""
    from harness_plugins.objectives_ce import CrossEntropy

    calls = []

    def loss(self, out):
        calls.append(1)
        lo = original(self, out)
        return type(lo)(lo.loss * (math.nan if len(calls) >= 3 else 1.0), lo.parts)

    original = CrossEntropy.loss
    monkeypatch.setattr(CrossEntropy, "loss", loss)
    with pytest.raises(TrialFailed, match=r"^non-finite loss nan \(parts \{'ce': [\d.]+\}\) at epoch 1, step 3; lower"):
        _fit(loaded, 4, epochs=1)
    assert len(calls) == 4  # the step it was read at ran; no further one


def test_batches_padded_to_a_multiple_of_8_train_to_the_same_losses(loaded):
    plain, _ = _fit(loaded, epochs=1, dropout=False)
    padded, _ = _fit(loaded, pad_multiple=8, epochs=1, dropout=False)
    assert padded.epochs[0]["train_loss"] == pytest.approx(plain.epochs[0]["train_loss"], abs=1e-5)
    assert padded.epochs[0]["validation"] == pytest.approx(plain.epochs[0]["validation"], abs=1e-4)


@pytest.mark.slow
def test_compile_trains_the_same_model_to_the_same_losses(loaded):
    """torch.compile (inductor, the C++ backend on the CPU) of the tiny model: every step's loss equal
    to eager's within float tolerance, so the compiled module is the one that trained. Dropout off
    (inductor draws its own random numbers), every batch padded to 64 and no evaluation, so one
    training graph is compiled (11 s here with inductor's cache warm, 32 s cold)."""
    settings = {"epochs": 1, "dropout": False, "dev": False, "pad_multiple": 64}
    _, eager = _fit(loaded, **settings)
    _, compiled = _fit(loaded, **settings, compile=True)
    losses = [e["loss"] for e in eager]
    assert [e["loss"] for e in compiled] == pytest.approx(losses, abs=1e-5)
    assert max(losses) - min(losses) > 1e-3  # the steps moved the weights, so later losses test the updates too
