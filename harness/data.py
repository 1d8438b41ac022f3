"""From a suite's raw task data to tokenized splits, cached on disk.

The cache key is (tokenizer, task, source data fingerprint, max length, train subsample),
so a second trial on the same task and tokenizer reads Arrow files instead of tokenizing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from harness.errors import HarnessError
from harness.suite import Task, TaskData

CACHE_ENV = "HARNESS_CACHE"
datasets.disable_progress_bars()  # the harness shows its own progress


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "cmi-harness")


def subsample(ds: datasets.Dataset, n: int | None) -> datasets.Dataset:
    """The same ``n`` rows whatever the trial's seed: a fixed permutation, kept in file order."""
    if not n or n >= len(ds):
        return ds
    keep = np.sort(np.random.default_rng(0).permutation(len(ds))[:n])
    return ds.select(keep)


def hold_out(splits: dict, task: Task, n: int) -> dict:
    """``n`` training rows (a fixed permutation, kept in file order, the same for every seed) as the
    task's first dev split, in place of its dev splits; the rest of the rows as train."""
    train = splits["train"]
    if n >= len(train):
        raise HarnessError(
            f"--dev-from-train {n}: task {task.name!r} has only {len(train):,} training rows; hold out fewer"
        )
    order = np.random.default_rng(1).permutation(len(train))
    return {
        "train": train.select(np.sort(order[n:])),
        task.dev_splits[0]: train.select(np.sort(order[:n])),
    }


def tokenizer_fingerprint(tok) -> str:
    if getattr(tok, "is_fast", False):
        blob = tok.backend_tokenizer.to_str()
    else:
        blob = json.dumps(sorted(tok.get_vocab().items())) + type(tok).__name__
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def tokenize(
    task: Task,
    data: TaskData,
    tok,
    max_len: int,
    max_train: int | None,
    max_dev: int | None = None,
    dev_from_train: int | None = None,
) -> datasets.DatasetDict:
    """Tokenized splits with columns input_ids, token_type_ids (if the model uses them), label, idx, length;
    ``max_train``/``max_dev``: fixed subsamples of the train and dev splits (the same for every trial);
    ``dev_from_train``: that many training rows held out as the dev set first (``hold_out``)."""
    sizes: list[Any] = [max_train] if max_dev is None else [max_train, max_dev]  # earlier runs' cache keys stay
    sizes += [] if dev_from_train is None else [{"dev_from_train": dev_from_train}]
    key = hashlib.sha256(
        json.dumps([tokenizer_fingerprint(tok), task.name, data.fingerprint, max_len, *sizes]).encode()
    ).hexdigest()[:20]
    path = cache_root() / "tokenized" / f"{task.name}-{key}"
    if (path / "dataset_dict.json").exists():
        return datasets.load_from_disk(str(path))
    splits = dict(data.splits) if dev_from_train is None else hold_out(dict(data.splits), task, dev_from_train)
    splits = {name: subsample(ds, max_train if name == "train" else max_dev) for name, ds in splits.items()}
    columns = ["text_a", "text_b"] if task.pair else ["text_a"]

    def encode(batch):
        enc = tok(*[batch[c] for c in columns], truncation=True, max_length=max_len)
        enc["length"] = [len(ids) for ids in enc["input_ids"]]
        return enc

    out = datasets.DatasetDict(
        {
            name: ds.map(encode, batched=True, remove_columns=columns, keep_in_memory=True, desc=None)
            for name, ds in splits.items()
        }
    )
    out = out.remove_columns([c for c in ("attention_mask",) if c in out["train"].column_names])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=".tmp-"))
    out.save_to_disk(str(tmp))
    try:
        os.replace(tmp, path)  # atomic: concurrent trials either see a whole cache entry or none
    except OSError:  # another trial got there first
        shutil.rmtree(tmp, ignore_errors=True)
    return datasets.load_from_disk(str(path))
