"""A third-party suite for cmi-harness: ``negation``, one task built in memory.

It shows the suite contract (see harness.suite): a ``Task`` says the labels, whether examples
are sentence pairs, and the GLUE-style metrics; ``load`` returns a ``TaskData`` with a ``train``
split and the task's dev split, columns ``idx``, ``text_a`` (and ``text_b`` for pairs), ``label``,
and a fingerprint that changes whenever the data does (it keys the tokenization cache).
"""

import hashlib
import random

import datasets

from harness import Suite, Task, TaskData, hookimpl, split_from_columns

SUBJECTS = ["the film", "the plot", "this actor", "the music", "the ending", "the story"]
VERBS = ["is", "was", "seems", "feels"]
WORDS = ["good", "great", "fun", "clever", "moving", "funny"]
TASK = Task("negated", ("affirmed", "negated"), pair=False, metrics=("accuracy", "f1"))


def _split(n: int, seed: int) -> dict[str, list]:
    rng = random.Random(seed)
    rows = {"idx": [], "text_a": [], "label": []}
    for i in range(n):
        negated = rng.random() < 0.5
        words = [rng.choice(SUBJECTS), rng.choice(VERBS), *(["not"] if negated else []), rng.choice(WORDS)]
        rows["idx"].append(i)
        rows["text_a"].append(" ".join(words))
        rows["label"].append(int(negated))
    return rows


def load(task: Task, data_dir) -> TaskData:
    splits = {"train": _split(400, 1), "validation": _split(100, 2)}
    fingerprint = hashlib.sha256(repr(splits).encode()).hexdigest()[:16]  # changes with the content
    # split_from_columns keys each split by our fingerprint; Dataset.from_dict would hash every row
    # with dill, which fails on Python 3.12 with pyarrow 26
    split = {k: split_from_columns(v, f"{fingerprint}-{k}") for k, v in splits.items()}
    return TaskData(datasets.DatasetDict(split), fingerprint)


@hookimpl
def harness_suites():
    return [Suite("negation", "Is the sentence negated? Generated in memory (an example suite plugin)", (TASK,), load)]
