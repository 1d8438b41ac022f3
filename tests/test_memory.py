"""What lets a large model fit: gradient accumulation (N micro-batches give the update of the whole batch)
and gradient checkpointing (the same numbers, activations recomputed), on a tiny model without dropout."""

from dataclasses import replace

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


def _out_of_memory_above(monkeypatch, rows: int, from_step: int = 0):
    """Training forwards of more than ``rows`` examples run, then raise CUDA's out-of-memory error (after
    drawing their dropout masks, as a real one would), from the ``from_step``-th training forward on."""
    import torch

    from harness import trainer

    real, calls = trainer.forward, []

    def forward(engine, batch, tap):
        out = real(engine, batch, tap)
        if torch.is_grad_enabled():
            calls.append(len(batch["labels"]))
            if len(calls) > from_step and len(batch["labels"]) > rows:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return out

    monkeypatch.setattr(trainer, "forward", forward)
    return calls


def test_out_of_memory_at_the_first_step_halves_the_micro_batch_to_the_numbers_of_grad_accum(
    loaded, tmp_path, monkeypatch
):
    """Batch 32 runs out of memory above 8 rows: 16 x 2, then 8 x 4 accumulation steps, the step retried
    with the dropout masks it first drew; the same numbers as --grad-accum 4 planned, and said in the record."""
    plan = make_plan(loaded, "smoke", ["nli"], ["cmi_min"], "tiny", [2], check_model=False, epochs=2,
                     batch_size=32, **SMALL_DATA)  # fmt: skip
    planned = run_trial(replace(plan.trials[0], grad_accum=4), tmp_path / "planned", plugins=loaded)
    calls = _out_of_memory_above(monkeypatch, 8)
    record = run_trial(plan.trials[0], tmp_path / "backed-off", plugins=loaded)
    assert record.completed, record.error
    assert calls[:4] == [32, 16, 8, 8] and max(calls[3:]) <= 8
    assert [n for n in record.notes if "out of memory" in n] == [
        "out of memory at the first step with micro-batch 32: trained with micro-batch 16 x 2 accumulation "
        "steps instead, the same global batch of 32",
        "out of memory at the first step with micro-batch 16: trained with micro-batch 8 x 4 accumulation "
        "steps instead, the same global batch of 32",
    ]
    assert record.epochs == planned.epochs


def test_out_of_memory_after_the_first_step_fails_the_trial_with_what_to_do(loaded, tmp_path, monkeypatch):
    plan = make_plan(loaded, "smoke", ["nli"], ["ce"], "tiny", [1], check_model=False, epochs=1,
                     batch_size=32, **SMALL_DATA)  # fmt: skip
    _out_of_memory_above(monkeypatch, 8, from_step=3)
    record = run_trial(plan.trials[0], tmp_path, plugins=loaded)
    assert not record.completed
    assert "out of memory at epoch 1, step 4, micro-batch 32; use --grad-accum 2 or --gradient-checkpointing" in (
        record.error
    )
