"""``harness predict`` and ``harness eval``: a kept model (harness.kept) on new data.

* ``predict MODEL_DIR --file F --output P``: one output row per input row, in input order: the
  input's ``idx``, ``index``, ``id`` or ``uid`` column when it has one, the predicted label and the probability of
  every class (``prob_<label>``). CSV, TSV, JSON lines or Parquet by the output's extension.
* ``predict MODEL_DIR --file TEST.tsv --output TASK.tsv --glue``: a GLUE test file in, the GLUE
  benchmark's submission file out (``index<TAB>prediction``; 0/1 for CoLA, SST-2, MRPC, QQP and
  WNLI, label names for MNLI, QNLI and RTE), for a model kept from a ``glue`` trial.
* ``eval MODEL_DIR`` with ``run``'s data options (``--validation-file`` with the column options,
  or ``--suite/--tasks/--data-dir``): the task's metrics and dev CMI, Γ, NCMI through the very
  evaluation a trial runs (harness.trainer.evaluate), written as a record and dev predictions
  under ``OUTPUT_DIR/TIMESTAMP-eval/trials/eval-TRIAL_ID/``, which ``harness report`` reads.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from harness import kept
from harness.errors import HarnessError
from harness.files import pick_text_columns, read_rows

OUTPUTS = (".csv", ".tsv", ".jsonl", ".parquet")
# GLUE's test files: their text columns, and whether a submission names labels or gives their index
GLUE_TEST_COLUMNS = {
    "cola": ("sentence",),
    "sst2": ("sentence",),
    "mrpc": ("#1 String", "#2 String"),
    "qqp": ("question1", "question2"),
    "mnli": ("sentence1", "sentence2"),
    "qnli": ("question", "sentence"),
    "rte": ("sentence1", "sentence2"),
    "wnli": ("sentence1", "sentence2"),
}
GLUE_BY_NAME = ("mnli", "qnli", "rte")


def _columns(given, meta: dict, rows: list[dict], path: str) -> tuple[str, ...]:
    """``--text-columns``, else the kept model's own when the file has them, else run_glue.py's guesses."""
    own = tuple(meta.get("text_columns") or ())
    if not given and own and rows and set(own) <= set(rows[0]):
        return own
    return pick_text_columns(tuple(given or ()), rows, path)


def probabilities(tok, model, texts: list[list[str]], max_len: int, batch_size: int) -> np.ndarray:
    """Class probabilities (N, C), rows in input order; batches of similar length, each padded to its longest."""
    enc = tok(*texts, truncation=True, max_length=max_len)
    ids = enc["input_ids"]
    order = np.argsort([len(x) for x in ids], kind="stable")
    out = np.zeros((len(ids), model.config.num_labels), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = tok.pad([{k: enc[k][i] for k in enc} for i in rows], return_tensors="pt")
            out[rows] = model(**batch).logits.float().softmax(-1).numpy()
    return out


def glue_submission(model_dir: str, file: str, output: str, batch_size: int = 64) -> int:
    """A GLUE test file (tab-separated, quotes not special, as GLUE ships them) to a submission file."""
    import csv

    import pandas as pd

    tok, model, meta = kept.load(model_dir)
    task = meta["task"]
    if meta["suite"] != "glue" or task not in GLUE_TEST_COLUMNS:
        raise HarnessError(f"--glue: {model_dir} was trained on {meta['suite']}/{task}, not a GLUE task")
    try:
        rows = pd.read_csv(file, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{file}: cannot read it as a GLUE test file: {str(exc).splitlines()[0]}") from None
    cols = GLUE_TEST_COLUMNS[task]
    key = next((k for k in ("index", "id") if k in rows.columns), None)
    missing = [c for c in (*cols, key or "index") if c not in rows.columns]
    if missing:
        raise HarnessError(f"{file}: no column {', '.join(missing)}; a GLUE {task} test file has {', '.join(cols)}")
    probs = probabilities(tok, model, [list(rows[c]) for c in cols], meta["max_seq_length"], batch_size)
    names = meta["label_names"]
    out = [names[i] if task in GLUE_BY_NAME else str(i) for i in probs.argmax(1)]
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"index": rows[key], "prediction": out}).to_csv(output, sep="\t", index=False)
    return len(out)


def predict(model_dir: str, file: str, output: str, text_columns=None, batch_size: int = 64) -> int:
    """Writes ``output``; returns the number of rows."""
    import pandas as pd

    suffix = Path(output).suffix.lower()
    if suffix not in OUTPUTS:
        raise HarnessError(f"--output {output}: use a .csv, .tsv, .jsonl or .parquet file name")
    tok, model, meta = kept.load(model_dir)
    rows = read_rows(file)
    if not rows:
        raise HarnessError(f"{file}: no rows to predict")
    cols = _columns(text_columns, meta, rows, file)
    texts = [["" if r.get(c) is None else str(r[c]) for r in rows] for c in cols]
    probs = probabilities(tok, model, texts, meta["max_seq_length"], batch_size)
    names = meta["label_names"]
    key = next((k for k in ("idx", "index", "id", "uid") if k in rows[0]), None)
    table = pd.DataFrame({key or "row": [r[key] for r in rows] if key else range(len(rows))})
    table["prediction"] = [names[i] for i in probs.argmax(1)]
    for i, name in enumerate(names):
        table[f"prob_{name}"] = probs[:, i]
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        table.to_parquet(output, index=False)
    elif suffix == ".jsonl":
        table.to_json(output, orient="records", lines=True)
    else:
        table.to_csv(output, sep="\t" if suffix == ".tsv" else ",", index=False)
    return len(table)


def evaluate_kept(plugins, model_dir: str, opts, batch_size: int = 64):
    """The kept model on the dev split(s) of ``opts``' data; returns (record, run directory)."""
    from harness.batching import Columns
    from harness.config import TrialConfig
    from harness.data import tokenize
    from harness.files import SUITE, resolve_suite, spec_from_options
    from harness.record import TrialRecord
    from harness.results import PREDICTIONS, write_predictions
    from harness.rundir import RunDir
    from harness.trainer import evaluate

    started = time.perf_counter()
    tok, model, meta = kept.load(model_dir)
    data_files = spec_from_options(opts.train_file, opts.validation_file, opts.text_columns, opts.label_column)
    if data_files is None and opts.validation_file:
        raise HarnessError("--validation-file needs --train-file too, which fixes the classes (or give --suite)")
    suite_name = SUITE if data_files else opts.suite
    suite = resolve_suite(plugins, suite_name, data_files)
    tasks = suite.select(opts.tasks) if not data_files else list(suite.tasks)
    if len(tasks) != 1:
        raise HarnessError(f"harness eval scores one task: give --tasks one of {', '.join(t.name for t in tasks)}")
    task = tasks[0]
    if list(task.label_names) != list(meta["label_names"]):
        raise HarnessError(
            f"{model_dir} predicts {', '.join(meta['label_names'])}, but task {task.name} has "
            f"{', '.join(task.label_names)}: evaluate it on data with its own classes"
        )
    data = suite.load(task, Path(opts.data_dir) if opts.data_dir else None)
    data.check(task, suite_name)
    tokenized = tokenize(task, data, tok, meta["max_seq_length"], None, opts.max_dev_samples)
    pad = tok.pad_token_id or 0
    devs = {s: Columns(tokenized[s], pad) for s in task.dev_splits if s in tokenized}
    trained = TrialConfig.from_dict(meta["config"])
    cfg = TrialConfig.from_dict(
        {
            **trained.to_dict(),
            "suite": suite_name,
            "task": task.name,
            "data_dir": opts.data_dir,
            "data_files": data_files,
            "data_fingerprint": data.fingerprint,
            "max_dev_samples": opts.max_dev_samples,
        }
    )
    record = TrialRecord.running(cfg, role="eval", arm=meta["arm"], label_names=list(task.label_names))
    record.primary_metric, record.notes = task.primary, [f"evaluation of the kept model {Path(model_dir).resolve()}"]
    record.data = {"fingerprint": data.fingerprint, "dev_examples": {s: len(c) for s, c in devs.items()}}
    if data.sources:
        record.data["sources"] = data.sources
    final, preds = {}, {}
    for split, columns in devs.items():
        final[split], preds[split] = evaluate(model, columns, task, batch_size)
    run = RunDir.create(Path(opts.output_dir), "eval")
    trial_dir = run.path / "trials" / f"eval-{record.trial_id}"
    write_predictions(trial_dir / PREDICTIONS, preds)
    record.complete([], final, 0.0, 0, PREDICTIONS)  # no training: no epochs, no curve
    record.wall_time_s = time.perf_counter() - started
    record.save(trial_dir)
    return record, run
