"""Your own data as a task: files (``--train-file``/``--validation-file``: CSV, TSV, JSON lines or
Parquet, read with ``datasets``) or a Hugging Face Hub dataset (``--suite hf:DATASET[:CONFIG]``,
its ``train`` and ``validation`` splits), with ``--text-columns A[,B]`` and ``--label-column C``.

A ``FileSpec`` (a plain dict in the trial config, so it travels to Ray workers) makes a one-task
suite named ``files``: the task is named after the training file (or its folder, for a file named
train.csv), its classes are the distinct values of the label column in the training file
(sorted: numerically when every value is a whole number, else as text), a pair task when two
text columns are given. Metric: accuracy (F1 would need a "positive" class that string labels
do not name), beside its chance level, the majority class. The fingerprint is the files' content, so
an edited file is new data with new trial ids; every record names each file and its SHA-256.
Bad input stops the run before it starts, naming file and row: a missing column, an empty label,
a dev label the training file does not have, a text column that is empty on every row.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.suite import Suite, Task, TaskData, split_from_columns

SUITE = "files"
FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
DEFAULT_TEXT = (("sentence1", "sentence2"), ("sentence",), ("text",))  # run_glue.py's guesses, in order


HUB_PREFIX = "hf:"


@dataclass(frozen=True)
class FileSpec:
    train: str  # a file path, or with ``hub``: the split name
    validation: str
    text_columns: tuple[str, ...] = ()  # empty: the first of DEFAULT_TEXT the training file has
    label_column: str = "label"
    hub: str = ""  # DATASET[:CONFIG] on the Hugging Face Hub, instead of files

    def as_dict(self) -> dict[str, Any]:
        d = {**asdict(self), "text_columns": list(self.text_columns)}
        return d if self.hub else {k: v for k, v in d.items() if k != "hub"}  # ids of file runs unchanged

    @classmethod
    def of(cls, d: dict[str, Any]) -> FileSpec:
        cols = tuple(d.get("text_columns") or ())
        return cls(d["train"], d["validation"], cols, d.get("label_column") or "label", d.get("hub") or "")


def spec_from_options(
    train: str | None, validation: str | None, text_columns, label_column, suite: str = ""
) -> dict | None:
    """The trial config's ``data_files`` from the command line's options (None without --train-file
    or an ``hf:`` suite)."""
    if suite.startswith(HUB_PREFIX):
        if train or validation:
            raise HarnessError(
                f"--suite {suite} reads the Hub dataset's own splits: leave out --train-file/--validation-file"
            )
        name = suite[len(HUB_PREFIX) :]
        if not name.strip(":"):
            raise HarnessError(f"--suite {suite}: name a dataset, e.g. --suite hf:imdb or hf:glue:sst2")
        return FileSpec("train", "validation", tuple(text_columns or ()), label_column or "label", name).as_dict()
    if not train and not validation:
        return None
    if not (train and validation):
        raise HarnessError(
            "--train-file and --validation-file go together: give both, e.g. --train-file "
            "train.csv --validation-file dev.csv"
        )
    for flag, path in (("--train-file", train), ("--validation-file", validation)):
        if not Path(path).is_file():
            raise HarnessError(f"{flag} {path}: no such file")
        if Path(path).suffix.lower() not in FORMATS:
            raise HarnessError(f"{flag} {path}: unknown format; use .csv, .tsv, .json, .jsonl or .parquet")
    cols = tuple(text_columns or ())
    if len(cols) > 2:
        raise HarnessError(f"--text-columns {','.join(cols)}: give one column, or two for sentence pairs")
    spec = FileSpec(str(Path(train).resolve()), str(Path(validation).resolve()), cols, label_column or "label")
    return spec.as_dict()


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Every row of a CSV, TSV, JSON-lines or Parquet file, through ``datasets``."""
    import datasets

    datasets.disable_progress_bars()
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise HarnessError(f"{path}: unknown format; use .csv, .tsv, .json, .jsonl or .parquet")
    extra = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
    try:
        ds = datasets.load_dataset(kind, data_files=str(path), split="train", keep_in_memory=True, **extra)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise HarnessError(f"{path}: cannot read it as {path.suffix[1:]}: {first}") from None
    return ds.to_list()


GENERIC = {"train", "training", "data", "dataset", "all"}


def task_name(spec: FileSpec) -> str:
    """The task's name: the Hub dataset's, or the training file's (its folder's, when the file is just
    called train.csv or the like)."""
    if spec.hub:
        name = spec.hub.replace("/", "_").replace(":", "_")
    else:
        path = Path(spec.train)
        name = path.parent.name if path.stem.lower() in GENERIC and path.parent.name else path.stem
    return name.replace(".", "_") or "task"


def pick_text_columns(given: tuple[str, ...], rows: list[dict], path: str) -> tuple[str, ...]:
    """``given`` when the rows have those columns (else one clear error); without ``given``, the first
    of DEFAULT_TEXT the rows have."""
    have = set(rows[0]) if rows else set()
    if given:
        missing = [c for c in given if c not in have]
        if missing:
            raise HarnessError(
                f"{path}: no column {', '.join(map(repr, missing))}; its columns: {', '.join(sorted(have))}"
            )
        return given
    for guess in DEFAULT_TEXT:
        if set(guess) <= have:
            return guess
    raise HarnessError(
        f"{path}: say which column holds the text: --text-columns A (or A,B for pairs); its columns: "
        f"{', '.join(sorted(have))}"
    )


def _labels(spec: FileSpec, rows: list[dict], path: str) -> tuple[str, ...]:
    values = []
    for i, row in enumerate(rows, start=1):
        if spec.label_column not in row:
            raise HarnessError(
                f"{path}: no column {spec.label_column!r} (--label-column); its columns: {', '.join(sorted(row))}"
            )
        value = row[spec.label_column]
        if value is None or str(value).strip() == "":
            raise HarnessError(f"{path}: row {i} has an empty label ({spec.label_column!r}); fill it or drop the row")
        values.append(str(value).strip())
    distinct = sorted(set(values), key=lambda v: (0, int(v), "") if v.lstrip("-").isdigit() else (1, 0, v))
    if len(distinct) < 2:
        raise HarnessError(f"{path}: every row has the label {distinct[0]!r}; a classifier needs two classes or more")
    return tuple(distinct)


def read_hub(spec: FileSpec) -> tuple[dict[str, list[dict]], dict[str, str]]:
    """The ``train`` and ``validation`` rows of a Hub dataset, and each split's fingerprint; offline, one line."""
    import datasets

    from harness import hub

    name, _, config = spec.hub.partition(":")
    if not hub.reachable() and not hub.offline_by_choice():
        raise HarnessError(
            f"--suite hf:{spec.hub}: the Hugging Face Hub is not reachable from here. Offline, save the dataset's "
            f"splits as files and pass --train-file and --validation-file, or set HF_HUB_OFFLINE=1 to use a copy "
            f"in the local Hugging Face cache"
        )
    try:
        raw = datasets.load_dataset(name, config or None)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise HarnessError(f"--suite hf:{spec.hub}: cannot load it from the Hub: {first}") from None
    missing = [s for s in ("train", "validation") if s not in raw]
    if missing:
        raise HarnessError(
            f"--suite hf:{spec.hub}: no {', '.join(missing)} split (it has {', '.join(raw)}); save the splits as "
            f"files and pass --train-file and --validation-file"
        )
    return {s: raw[s].to_list() for s in ("train", "validation")}, {s: raw[s]._fingerprint for s in raw}


class _Files:
    """One file (or Hub) task: read once per process, the suite and its loader share the rows."""

    def __init__(self, spec: FileSpec):
        self.spec = spec
        self.hub_prints: dict[str, str] = {}
        if spec.hub:
            self.rows, self.hub_prints = read_hub(spec)
            self.where = {s: f"hf:{spec.hub}[{s}]" for s in ("train", "validation")}
        else:
            self.rows = {"train": read_rows(spec.train), "validation": read_rows(spec.validation)}
            self.where = {"train": spec.train, "validation": spec.validation}
        if not self.rows["train"]:
            raise HarnessError(f"{self.where['train']}: no rows")
        self.text = pick_text_columns(spec.text_columns, self.rows["train"], self.where["train"])
        self.labels = _labels(spec, self.rows["train"], self.where["train"])
        self.task = Task(task_name(spec), self.labels, len(self.text) == 2, ("accuracy",))

    def load(self, task: Task, data_dir: Path | None) -> TaskData:
        import datasets

        splits, sources, stamps = {}, {}, []
        for split in ("train", "validation"):
            rows, path = self.rows[split], self.where[split]
            pick_text_columns(self.spec.text_columns, rows, path)
            ids = {name: i for i, name in enumerate(self.labels)}
            cols: dict[str, list] = {"idx": list(range(len(rows))), "label": []}
            for key, column in zip(("text_a", "text_b"), self.text, strict=False):
                cols[key] = ["" if r.get(column) is None else str(r[column]) for r in rows]
                if not any(t.strip() for t in cols[key]):
                    raise HarnessError(f"{path}: text column {column!r} is empty on every row")
            for i, row in enumerate(rows, start=1):
                raw = row.get(self.spec.label_column)
                label = ids.get("" if raw is None else str(raw).strip())
                if label is None:
                    raise HarnessError(
                        f"{path}: row {i} has label {raw!r}, which the training file does not have "
                        f"({', '.join(self.labels)}); fix the row or the files"
                    )
                cols["label"].append(label)
            digest = (
                hashlib.sha256(self.hub_prints[split].encode()).hexdigest()
                if self.spec.hub
                else hashlib.sha256(
                    Path(self.spec.train if split == "train" else self.spec.validation).read_bytes()
                ).hexdigest()
            )
            stamps.append(digest)
            sources[split] = {"path": path, "sha256": digest, "rows": len(rows)}
            splits[split] = split_from_columns(cols, digest[:32])
        fingerprint = hashlib.sha256("|".join([*stamps, *self.text, self.spec.label_column]).encode()).hexdigest()[:16]
        return TaskData(datasets.DatasetDict(splits), fingerprint, [], sources)


_CACHE: dict[FileSpec, _Files] = {}


def suite(data_files: dict[str, Any]) -> Suite:
    """The one-task suite of ``data_files`` (a FileSpec as a dict)."""
    spec = FileSpec.of(data_files)
    if spec not in _CACHE:
        _CACHE[spec] = _Files(spec)
    files = _CACHE[spec]
    return Suite(SUITE, f"your files: {spec.train}, {spec.validation}", (files.task,), files.load)


def text_columns(data_files: dict[str, Any] | None) -> tuple[str, ...]:
    """The text columns a file task reads (resolved from the files when not given); () for other suites."""
    if not data_files:
        return ()
    suite(data_files)
    return _CACHE[FileSpec.of(data_files)].text


def resolve_suite(plugins, name: str, data_files: dict[str, Any] | None) -> Suite:
    """The suite a run or trial reads: the files' own with ``data_files``, else the registered ``name``."""
    return suite(data_files) if data_files else plugins.suites.get(name)
