"""``glue``: the eight GLUE classification tasks, from the Hub or from a local copy.

Local copies use the classic layout (``DIR/<TASK>/train.tsv``, ``dev.tsv``; MNLI has
``dev_matched.tsv`` and ``dev_mismatched.tsv``; CoLA has no header), given by
``--data-dir`` or the ``HARNESS_GLUE_DIR`` environment variable. Without either, tasks
come from the Hugging Face Hub (``nyu-mll/glue``). Both give the same columns and labels
(those of ``nyu-mll/glue``). Metrics follow GLUE: Matthews corr. for CoLA, F1 and accuracy
for MRPC and QQP, accuracy otherwise; MNLI is scored on matched and mismatched dev.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

from harness import HarnessError, Suite, Task, TaskData, hookimpl, hub, provenance, split_from_columns

DATA_ENV = "HARNESS_GLUE_DIR"
HUB_ID = "nyu-mll/glue"


@dataclass(frozen=True)
class Layout:
    """Where a task lives in the classic GLUE layout and which columns hold what."""

    folder: str
    files: dict[str, str]  # split -> file name
    text_a: str | int  # header name, or column index when there is no header
    text_b: str | int | None
    label: str | int
    hub_columns: tuple[str, ...]  # the text columns of nyu-mll/glue
    header: bool = True


ENTAIL2 = ("entailment", "not_entailment")
TASKS = {
    "cola": (
        Task("cola", ("unacceptable", "acceptable"), False, ("mcc",)),
        Layout("CoLA", {"train": "train.tsv", "validation": "dev.tsv"}, 3, None, 1, ("sentence",), header=False),
    ),
    "sst2": (
        Task("sst2", ("negative", "positive"), False, ("accuracy",)),
        Layout("SST-2", {"train": "train.tsv", "validation": "dev.tsv"}, "sentence", None, "label", ("sentence",)),
    ),
    "mrpc": (
        Task("mrpc", ("not_equivalent", "equivalent"), True, ("f1", "accuracy")),
        Layout(
            "MRPC",
            {"train": "train.tsv", "validation": "dev.tsv"},
            "#1 String",
            "#2 String",
            "Quality",
            ("sentence1", "sentence2"),
        ),
    ),
    "qqp": (
        Task("qqp", ("not_duplicate", "duplicate"), True, ("accuracy", "f1")),
        Layout(
            "QQP",
            {"train": "train.tsv", "validation": "dev.tsv"},
            "question1",
            "question2",
            "is_duplicate",
            ("question1", "question2"),
        ),
    ),
    "mnli": (
        Task(
            "mnli",
            ("entailment", "neutral", "contradiction"),
            True,
            ("accuracy",),
            ("validation_matched", "validation_mismatched"),
        ),
        Layout(
            "MNLI",
            {
                "train": "train.tsv",
                "validation_matched": "dev_matched.tsv",
                "validation_mismatched": "dev_mismatched.tsv",
            },
            "sentence1",
            "sentence2",
            "gold_label",
            ("premise", "hypothesis"),
        ),
    ),
    "qnli": (
        Task("qnli", ENTAIL2, True, ("accuracy",)),
        Layout(
            "QNLI",
            {"train": "train.tsv", "validation": "dev.tsv"},
            "question",
            "sentence",
            "label",
            ("question", "sentence"),
        ),
    ),
    "rte": (
        Task("rte", ENTAIL2, True, ("accuracy",)),
        Layout(
            "RTE",
            {"train": "train.tsv", "validation": "dev.tsv"},
            "sentence1",
            "sentence2",
            "label",
            ("sentence1", "sentence2"),
        ),
    ),
    "wnli": (
        Task("wnli", ("not_entailment", "entailment"), True, ("accuracy",)),
        Layout(
            "WNLI",
            {"train": "train.tsv", "validation": "dev.tsv"},
            "sentence1",
            "sentence2",
            "label",
            ("sentence1", "sentence2"),
        ),
    ),
}


# Rows of GLUE's released splits (nyu-mll/glue), so a report can say when a local copy is a sample.
OFFICIAL_ROWS = {
    "cola": {"train": 8551, "validation": 1043},
    "sst2": {"train": 67349, "validation": 872},
    "mrpc": {"train": 3668, "validation": 408},
    "qqp": {"train": 363846, "validation": 40430},
    "mnli": {"train": 392702, "validation_matched": 9815, "validation_mismatched": 9832},
    "qnli": {"train": 104743, "validation": 5463},
    "rte": {"train": 2490, "validation": 277},
    "wnli": {"train": 635, "validation": 71},
}


def read_tsv(path: Path, raw_bytes: bytes, task: Task, layout: Layout) -> dict[str, list]:
    """Rows of one GLUE TSV file (``raw_bytes``, read from ``path``) as columns idx, text_a, [text_b],
    label; a bad row names file and line."""
    try:
        lines = raw_bytes.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        bad = raw_bytes[: exc.start].count(b"\n") + 1
        raise HarnessError(
            f"{path}:{bad}: byte {raw_bytes[exc.start]:#04x} is not UTF-8; GLUE files are UTF-8 text, so the file "
            f"is damaged or in another encoding (re-download it, or convert it with iconv)"
        ) from None
    start = 0
    cols: list = [layout.text_a, layout.text_b, layout.label]  # names, or positions where there is no header
    if layout.header:
        if not lines:
            raise HarnessError(f"{path}:1: the file is empty; expected a header line")
        header = lines[0].split("\t")
        missing = [c for c in cols if c is not None and c not in header]
        if missing:
            raise HarnessError(
                f"{path}:1: header lacks column(s) {', '.join(map(repr, missing))}; this is not the GLUE "
                f"{layout.folder} layout (header found: {' | '.join(header)[:120]})"
            )
        cols = [header.index(str(c)) if c is not None else None for c in cols]
        start = 1
    a, b, lab = cols
    width = max(c for c in cols if c is not None) + 1
    names = {n: i for i, n in enumerate(task.label_names)}
    out: dict[str, list] = {"idx": [], "text_a": [], "label": []}
    if task.pair:
        out["text_b"] = []
    for lineno, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < width:
            raise HarnessError(
                f"{path}:{lineno}: expected at least {width} tab-separated fields, found {len(fields)}; "
                f"fix or remove that line"
            )
        raw = fields[lab].strip()
        label = names.get(raw, int(raw) if raw.isdigit() else None)
        if label is None or not 0 <= label < task.num_labels:
            raise HarnessError(
                f"{path}:{lineno}: label {raw!r} is not one of {', '.join(task.label_names)} "
                f"(or 0..{task.num_labels - 1}); fix or remove that line"
            )
        out["idx"].append(len(out["idx"]))
        out["text_a"].append(fields[a])
        if task.pair:
            out["text_b"].append(fields[b])
        out["label"].append(label)
    if not out["idx"]:
        raise HarnessError(f"{path}: no examples after the header; the file is cut short or empty, copy it again")
    return out


def load_local(task: Task, layout: Layout, data_dir: Path) -> TaskData:
    import datasets

    if not data_dir.is_dir():
        raise HarnessError(
            f"data directory {data_dir} does not exist; point --data-dir (or {DATA_ENV}) at the "
            f"folder that holds CoLA/, SST-2/, MRPC/ ..."
        )
    required = ("train", task.dev_splits[0])
    splits, notes, stamp, sources = {}, [], [], {}
    known = provenance.load(data_dir).get(layout.folder, {})
    for split, name in layout.files.items():
        path = data_dir / layout.folder / name
        if not path.is_file():
            if split in required:
                raise HarnessError(
                    f"task {task.name}: {path} not found, and the {split} split is required; the GLUE layout "
                    f"needs {layout.folder}/{name} under {data_dir}"
                )
            notes.append(f"{task.name}: {split} is not evaluated: {path} not found")
            continue
        # the content, not the path or mtime: a copy elsewhere (another node, a re-provisioned
        # disk) keeps its trial ids, so its teachers and `harness run --reuse` still match
        raw = path.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        stamp.append(f"{layout.folder}/{name}:{digest}")
        key = hashlib.sha256(stamp[-1].encode()).hexdigest()
        columns = read_tsv(path, raw, task, layout)
        splits[split] = split_from_columns(columns, key)
        sources[split] = {"path": str(path), "sha256": digest, "rows": len(columns["idx"])}
        if name in known:  # what the copy's PROVENANCE.yaml says of this file
            sources[split]["provenance"] = known[name]
    fingerprint = hashlib.sha256("|".join(stamp).encode()).hexdigest()[:16]
    return TaskData(datasets.DatasetDict(splits), fingerprint, notes, sources)


def load_hub(task: Task, layout: Layout) -> TaskData:
    import datasets

    if not hub.reachable() and not hub.offline_by_choice():
        raise HarnessError(
            f"cannot load GLUE task {task.name} from the Hugging Face Hub ({HUB_ID}): the Hub is not reachable "
            f"from here. Offline, pass --data-dir DIR (or set {DATA_ENV}) with a copy in the classic GLUE layout, "
            f"or set HF_HUB_OFFLINE=1 to use a copy in the local Hugging Face cache"
        )
    try:
        raw = datasets.load_dataset(HUB_ID, task.name)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise HarnessError(
            f"cannot load GLUE task {task.name} from the Hugging Face Hub ({HUB_ID}): {first}. Offline, pass "
            f"--data-dir DIR (or set {DATA_ENV}) with a copy in the classic GLUE layout"
        ) from exc
    splits, notes = {}, []
    for split in ("train", *task.dev_splits):
        if split not in raw:
            notes.append(f"{task.name}: {split} is not evaluated: the Hub copy has no such split")
            continue
        ds = raw[split]
        cols = {"idx": ds["idx"], "text_a": ds[layout.hub_columns[0]], "label": ds["label"]}
        if task.pair:
            cols["text_b"] = ds[layout.hub_columns[1]]
        splits[split] = split_from_columns({k: list(v) for k, v in cols.items()}, ds._fingerprint)
    fingerprint = hashlib.sha256("".join(raw[s]._fingerprint for s in raw).encode()).hexdigest()[:16]
    return TaskData(datasets.DatasetDict(splits), fingerprint, notes)


def load(task: Task, data_dir: Path | None) -> TaskData:
    layout = TASKS[task.name][1]
    data_dir = data_dir or (Path(os.environ[DATA_ENV]) if os.environ.get(DATA_ENV) else None)
    return load_local(task, layout, data_dir.expanduser()) if data_dir else load_hub(task, layout)


@hookimpl
def harness_suites():
    tasks = tuple(replace(task, official_rows=OFFICIAL_ROWS[task.name]) for task, _ in TASKS.values())
    return [Suite("glue", "GLUE classification: CoLA, SST-2, MRPC, QQP, MNLI (m/mm), QNLI, RTE, WNLI", tasks, load)]
