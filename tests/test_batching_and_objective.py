import numpy as np
import pytest
import torch

from harness.batching import eval_batches, train_batches
from harness.errors import HarnessError
from harness.objective import Outputs


def test_length_grouped_batches_cover_every_example_once_and_pad_less():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 128, size=1000)
    batches = train_batches(lengths, 32, np.random.default_rng(1))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    random_padded = sum(len(b) * lengths[b].max() for b in np.array_split(rng.permutation(1000), 32))
    assert padded < 0.6 * random_padded  # length grouping removes most padding
    assert sorted(np.concatenate(list(eval_batches(lengths, 64))).tolist()) == list(range(1000))


def test_same_rng_seed_same_order():
    lengths = np.arange(300) % 17
    a = train_batches(lengths, 8, np.random.default_rng(5))
    b = train_batches(lengths, 8, np.random.default_rng(5))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_collate_pads_to_the_longest_in_the_batch():
    import datasets

    from harness.batching import Columns

    split = datasets.Dataset.from_dict(
        {
            "input_ids": [[2, 7, 3], [2, 7, 8, 9, 3]],
            "token_type_ids": [[0] * 3, [0] * 5],
            "label": [0, 1],
            "idx": [0, 1],
            "length": [3, 5],
        }
    )
    batch = Columns(split, pad_id=0).collate(np.array([0, 1]))
    assert batch["input_ids"].tolist() == [[2, 7, 3, 0, 0], [2, 7, 8, 9, 3]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["labels"].tolist() == [0, 1]


def test_ce_matches_a_hand_value(loaded):
    ce = loaded.objectives.get("ce")(2)
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    out = ce.loss(Outputs(logits, torch.tensor([0, 1]), torch.arange(2)))
    # -log(1/2) = 0.693147; -log(1/(1+e^2)) = log(1+e^2) = 2.126928; mean 1.410038
    assert out.loss.item() == pytest.approx(1.410038, abs=1e-6)


@pytest.mark.parametrize(
    "given, message",
    [
        ({"label_smoothing": -0.1}, r"ce\.label_smoothing=-0\.1: must be >= 0\.0"),
        ({"label_smoothing": "abc"}, r"ce\.label_smoothing='abc': expected a float"),
        ({"smoothing": 0.1}, r"no hyper-parameter 'smoothing'\. Did you mean 'label_smoothing'\?"),
    ],
)
def test_bad_hyper_parameters_are_refused(loaded, given, message):
    with pytest.raises(HarnessError, match=message):
        loaded.objectives.get("ce")(2, **given)
