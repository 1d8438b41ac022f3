"""Batches: length-grouped training batches cover every example once and pad far less than random
ones, the same seed gives the same order, and collation pads to the longest in the batch."""

import numpy as np

from harness.batching import eval_batches, train_batches


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


def test_pad_multiple_rounds_each_batch_up_and_stops_at_the_longest_allowed():
    """Widths worked by hand: longest 3 -> 8, longest 5 -> 8; longest 9 -> 16; a split cut at 10
    tokens pads 9 to 10, not 16; the mask still marks only real tokens."""
    import datasets

    from harness.batching import Columns

    lengths = [3, 5, 9]
    split = datasets.Dataset.from_dict(
        {
            "input_ids": [list(range(1, n + 1)) for n in lengths],
            "label": [0, 1, 0],
            "idx": [0, 1, 2],
            "length": lengths,
        }
    )
    eight = Columns(split, pad_id=0, pad_multiple=8, max_width=128)
    assert [eight.width(np.array(r)) for r in ([0], [0, 1], [1, 2])] == [8, 8, 16]
    batch = eight.collate(np.array([0, 1]))
    assert batch["input_ids"].tolist() == [[1, 2, 3, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 0, 0, 0]]
    assert batch["attention_mask"].sum(1).tolist() == [3, 5]
    assert Columns(split, pad_id=0, pad_multiple=8, max_width=10).width(np.array([2])) == 10
    assert Columns(split, pad_id=0).width(np.array([0, 1])) == 5  # the default: no rounding
