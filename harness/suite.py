"""Suites and tasks: what a task's data looks like and how it is scored (the suite plugin API).

The data contract: a suite's ``load(task, data_dir)`` returns a ``TaskData`` whose ``splits``
is a ``datasets.DatasetDict`` with a ``train`` split and the task's dev splits (the first of
``Task.dev_splits`` required, the others optional: a missing one goes into ``notes``), each
with columns ``idx`` (int, unique within the split), ``text_a`` (str), ``text_b`` (str, pair
tasks only) and ``label`` (int in ``range(num_labels)``); and a ``fingerprint``: a string that
changes whenever the data changes (a hash of the files' paths, sizes and times, or of the
content). It keys the tokenization cache, so a constant would silently reuse a stale cache.
Tasks are checked when the plugin loads (metrics that fit the label count, distinct labels),
the data when a run is planned (``TaskData.check``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import HarnessError
from harness.metrics import GLUE_METRICS

if TYPE_CHECKING:
    import datasets

BINARY_ONLY = ("f1", "mcc")  # binary F1 of class 1 and the binary Matthews correlation, as GLUE scores them


def split_from_columns(columns: dict[str, list], fingerprint: str) -> datasets.Dataset:
    """An in-memory split built from columns, keyed by ``fingerprint`` (the suite's own, per split).

    ``datasets.Dataset.from_dict`` keys a new split by pickling its whole table with dill, which
    fails on Python 3.12 with pyarrow 26 ("Can't pickle <class 'MonthDayNano'>", seen on the GPU
    machine); a suite already knows what identifies its data, so nothing needs hashing."""
    import datasets
    from datasets.table import InMemoryTable

    return datasets.Dataset(InMemoryTable.from_pydict(columns), fingerprint=fingerprint)


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

    def __post_init__(self):
        """A plugin's mistakes surface when it loads (ValueError: the plugin is skipped with a warning)."""
        where = f"task {self.name!r}"
        if len(self.label_names) < 2 or len(set(self.label_names)) != len(self.label_names):
            raise ValueError(f"{where}: label_names must be two or more distinct names, got {self.label_names}")
        unknown = [m for m in self.metrics if m not in GLUE_METRICS]
        if not self.metrics or unknown:
            raise ValueError(f"{where}: metrics must be some of {', '.join(GLUE_METRICS)}, got {self.metrics}")
        binary = [m for m in self.metrics if m in BINARY_ONLY]
        if binary and len(self.label_names) != 2:
            raise ValueError(
                f"{where}: {', '.join(binary)} score two classes, but the task has {len(self.label_names)}; "
                f"use accuracy"
            )
        if not self.dev_splits or "train" in self.dev_splits:
            raise ValueError(f"{where}: dev_splits must name one or more splits other than train")

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
    sources: dict[str, dict] = field(default_factory=dict)  # split -> {path, sha256, rows}: kept in every record

    def check(self, task: Task, suite: str) -> None:
        """The data contract (module docstring); a breach is one line naming suite, task and split."""
        where = f"suite {suite!r}, task {task.name!r}"
        if not isinstance(self.fingerprint, str) or not self.fingerprint:
            raise HarnessError(f"{where}: TaskData.fingerprint must be a non-empty string that changes with the data")
        for split in ("train", task.dev_splits[0]):
            if split not in self.splits:
                raise HarnessError(f"{where}: the loaded data has no {split!r} split (it has {list(self.splits)})")
        needed = ["idx", "text_a", *(["text_b"] if task.pair else []), "label"]
        for split, ds in self.splits.items():
            missing = [c for c in needed if c not in ds.column_names]
            if missing:
                raise HarnessError(
                    f"{where}: split {split!r} lacks column(s) {', '.join(missing)}; a suite's data has columns "
                    f"{', '.join(needed)}"
                )
            labels = set(ds["label"])
            bad = sorted(v for v in labels if not (isinstance(v, int) and 0 <= v < task.num_labels))
            if bad:
                raise HarnessError(
                    f"{where}: split {split!r} has labels {bad[:5]} outside 0..{task.num_labels - 1} "
                    f"({', '.join(task.label_names)})"
                )
            if len(set(ds["idx"])) != len(ds):
                raise HarnessError(f"{where}: split {split!r} repeats idx values; each example needs its own id")


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
