"""Batches padded to their own longest sequence, with similar lengths grouped together.

Training order (HF's LengthGroupedSampler idea): shuffle with the trial's RNG, cut the
permutation into mega-batches of ``group * batch_size`` examples, sort each by length,
cut into batches, then shuffle the batches. Each batch is padded only to its longest member,
rounded up to a multiple of ``pad_multiple`` (at most the longest the split allows): with 8, a
128-token limit leaves at most 16 widths, so a GPU's kernels and compiled graphs meet few shapes.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

FIELDS = ("input_ids", "token_type_ids")


def pad_multiple(configured: int | None) -> int:
    """--pad-multiple, or by default 8 on a GPU (where each new shape costs kernel selection and plan
    building) and 1 on the CPU (where padding is only more work)."""
    return configured or (8 if torch.cuda.is_available() else 1)


class Columns:
    """A tokenized split held as Python lists, for fast per-batch collation."""

    def __init__(self, split, pad_id: int, pad_multiple: int = 1, max_width: int | None = None):
        self.pad_id, self.pad_multiple = pad_id, pad_multiple
        self.fields = {f: list(split[f]) for f in FIELDS if f in split.column_names}
        self.labels = np.asarray(split["label"], dtype=np.int64)
        self.idx = np.asarray(split["idx"], dtype=np.int64)
        self.lengths = np.asarray(split["length"], dtype=np.int64)
        self.max_width = max_width or int(self.lengths.max(initial=1))  # the tokenizer's truncation length

    def width(self, rows: np.ndarray) -> int:
        """The padded length of the batch ``rows``: its longest, rounded up to ``pad_multiple``."""
        longest = int(self.lengths[rows].max())
        return max(longest, min(-(-longest // self.pad_multiple) * self.pad_multiple, self.max_width))

    def __len__(self) -> int:
        return len(self.labels)

    def collate(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        width = self.width(rows)
        batch = {}
        for name, values in self.fields.items():
            pad = self.pad_id if name == "input_ids" else 0
            t = torch.full((len(rows), width), pad, dtype=torch.long)
            for r, i in enumerate(rows):
                seq = values[i]
                t[r, : len(seq)] = torch.as_tensor(seq)
            batch[name] = t
        lengths = torch.as_tensor(self.lengths[rows])
        batch["attention_mask"] = (torch.arange(width)[None, :] < lengths[:, None]).long()
        batch["labels"] = torch.as_tensor(self.labels[rows])
        batch["idx"] = torch.as_tensor(self.idx[rows])
        return batch


def train_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator, group: int = 50) -> list[np.ndarray]:
    perm = rng.permutation(len(lengths))
    mega = group * batch_size
    batches = []
    for start in range(0, len(perm), mega):
        chunk = perm[start : start + mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def eval_batches(lengths: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Longest first, so the first batch shows the peak memory; callers restore order via the row ids."""
    order = np.argsort(-lengths, kind="stable")
    for i in range(0, len(order), batch_size):
        yield order[i : i + batch_size]
