"""Suites and tasks: what a task's data looks like and how it is scored.

Every suite loads a task into one form: a ``datasets.DatasetDict`` with a ``train``
split and the task's dev splits, each with columns ``idx`` (int), ``text_a`` (str),
``text_b`` (str, pair tasks only) and ``label`` (int in ``range(num_labels)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from harness.errors import HarnessError


@dataclass(frozen=True)
class Task:
    name: str
    label_names: tuple[str, ...]
    pair: bool  # True when examples are sentence pairs (text_a, text_b)
    metrics: tuple[str, ...]  # from harness.metrics.GLUE_METRICS; the first is the task's headline metric
    dev_splits: tuple[str, ...] = ("validation",)  # the first is required, the rest optional
    # rows of each split in the benchmark's official release, to tell a report whether the data
    # used is the official split, a sample of it, or something else
    official_rows: dict[str, int] = field(default_factory=dict, hash=False, compare=False)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def primary(self) -> str:
        return self.metrics[0]


@dataclass
class TaskData:
    splits: datasets.DatasetDict
    fingerprint: str  # changes whenever the source data changes; keys the tokenization cache
    notes: list[str] = field(default_factory=list)  # e.g. a missing optional dev split


Loader = Callable[[Task, "Path | None"], TaskData]


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    tasks: tuple[Task, ...]
    load: Loader  # (task, data_dir or None) -> TaskData

    def task(self, name: str) -> Task:
        by_name = {t.name: t for t in self.tasks}
        if name not in by_name:
            known = ", ".join(by_name)
            raise HarnessError(f"suite {self.name!r} has no task {name!r}. Its tasks: {known}.")
        return by_name[name]

    def select(self, names: list[str] | None) -> list[Task]:
        return list(self.tasks) if not names else [self.task(n) for n in names]
