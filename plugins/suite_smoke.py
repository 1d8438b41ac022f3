"""``smoke``: two small tasks the project generates itself, so a full run needs no download.

* ``sentiment`` (single sentence, 2 classes): a subject and a clause of filler words around one
  sentiment word, or around "not" and a word of the other polarity (NEGATED of clauses); in
  CONTRAST of sentences "X but Y", where the clause after "but" decides.
* ``nli`` (sentence pair, 3 classes): premise "the ANIMAL is COLOR"; the hypothesis repeats it
  (entailment), states an unrelated attribute (neutral), or contradicts it, by "not" or by
  another of NLI_COLORS colours, which the model has to compare.

In both, NOISE of the labels (train and dev) are replaced by a different random class, so
the best dev accuracy is about 1 - NOISE and the output distributions keep a measurable
spread (non-zero CMI). Generated from a fixed seed: the same examples on every machine. In
the default run's 3 epochs a tiny model learns both above chance, unevenly over seeds. The
words come from ``harness_plugins.words``, which the ``tiny`` model's tokenizer reads too.
The fingerprint hashes the generated rows, so a change to the generator reaches the cache.
"""

from __future__ import annotations

import hashlib
import random
from typing import TYPE_CHECKING

from harness import Suite, Task, TaskData, hookimpl, split_from_columns

from .words import ANIMALS, COLORS, FILLER, NEGATIVE, POSITIVE, SIZES, SUBJECTS

SIZES_BY_SPLIT = {"train": 2000, "validation": 400}
NOISE = 0.1
NEGATED = 0.3  # of sentiment clauses: "not" and a word of the other polarity
CONTRAST = 0.3  # of sentiment sentences: "X but Y", where Y decides
NLI_COLORS = 4  # few enough that the colour pairs are learnt within the demo's epochs, unevenly over seeds
VERSION = 3  # seeds the generator

TASKS = (
    Task("sentiment", ("negative", "positive"), pair=False, metrics=("accuracy",)),
    Task("nli", ("entailment", "neutral", "contradiction"), pair=True, metrics=("accuracy",)),
)


def _clause(rng: random.Random, polarity: int) -> list[str]:
    """Filler words around one sentiment word of ``polarity``, or around "not" and a word of the other."""
    negated = rng.random() < NEGATED
    word = rng.choice(POSITIVE if polarity != negated else NEGATIVE)
    words = rng.sample(FILLER, rng.randint(0, 2))
    words.insert(rng.randrange(len(words) + 1), f"not {word}" if negated else word)
    return words


def _sentiment(rng: random.Random) -> tuple[str, str | None, int]:
    label = rng.randrange(2)
    words = _clause(rng, label)
    if rng.random() < CONTRAST:  # "X but Y": the clause after "but" decides
        words = [*_clause(rng, 1 - label), "but", *words]
    return f"{rng.choice(SUBJECTS)} {' '.join(words)}", None, label


def _nli(rng: random.Random) -> tuple[str, str | None, int]:
    animal, (color, other) = rng.choice(ANIMALS), rng.sample(COLORS[:NLI_COLORS], 2)
    label = rng.randrange(3)
    hypothesis = [
        f"the {animal} is {color}",
        f"the {animal} is {rng.choice(SIZES)}",
        rng.choice([f"the {animal} is not {color}", f"the {animal} is {other}"]),  # needs the colours compared
    ]
    return f"the {animal} is {color}", hypothesis[label], label


if TYPE_CHECKING:
    import datasets


def _content_hash(value) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


def generate(task: Task, split: str) -> datasets.Dataset:
    make = _nli if task.pair else _sentiment
    rng = random.Random(f"{task.name}-{split}-{VERSION}")
    rows = []
    for _ in range(SIZES_BY_SPLIT[split]):
        a, b, label = make(rng)
        if rng.random() < NOISE:
            label = (label + rng.randrange(1, task.num_labels)) % task.num_labels
        rows.append((a, b, label))
    cols = {"idx": list(range(len(rows))), "text_a": [r[0] for r in rows], "label": [r[2] for r in rows]}
    if task.pair:
        cols["text_b"] = [r[1] for r in rows]
    return split_from_columns(cols, _content_hash(cols))


def load(task: Task, data_dir=None) -> TaskData:
    import datasets

    splits = datasets.DatasetDict({s: generate(task, s) for s in SIZES_BY_SPLIT})
    # of the generated rows themselves: any change to the generator reaches the tokenization cache
    return TaskData(splits, _content_hash({name: split._fingerprint for name, split in splits.items()}))


@hookimpl
def harness_suites():
    return [
        Suite("smoke", "Generated offline tasks for demos and tests (1 single-sentence, 1 pair 3-class)", TASKS, load)
    ]
