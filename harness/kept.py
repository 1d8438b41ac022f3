"""Kept models (``--save-model last|best``): a trial's classifier in Hugging Face format, with its
tokenizer, ``harness.json`` (what ``harness predict`` needs: labels, text columns, max length)
and a model card (``README.md``: config, dev metrics beside chance, CMI/Γ/NCMI, data caveats).
The directory loads anywhere ``from_pretrained`` does, and as ``--model DIR``.

``last`` keeps the model as training ended; ``best`` the epoch with the highest headline dev
metric, whose dev figure is then optimistic (the dev set chose it), which the card says.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from harness import chance, last_layer
from harness.config import TrialConfig
from harness.engine import deepspeed, world
from harness.record import TrialRecord

MODEL_DIR = "model"
META = "harness.json"
CHOICES = ("none", "last", "best")


def save(
    trial_dir: Path,
    model,
    tokenizer,
    record: TrialRecord,
    cfg: TrialConfig,
    epoch: int,
    labels: np.ndarray,
    text_columns: tuple[str, ...],
) -> Path | None:
    """Writes ``trial_dir/model`` (atomically: a temporary folder renamed); every rank calls it, as
    gathering ZeRO-3 parameters is collective; rank 0 writes. Returns the folder on rank 0."""
    with deepspeed().zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
        if world()[0] != 0:
            return None
        names = record.label_names or []
        model.config.id2label = dict(enumerate(names))
        model.config.label2id = {n: i for i, n in enumerate(names)}
        target, tmp = trial_dir / MODEL_DIR, trial_dir / f".{MODEL_DIR}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    final = record.epochs[epoch - 1] if record.epochs else {}
    meta = {
        "trial_id": record.trial_id,
        "arm": record.arm,
        "suite": cfg.suite,
        "task": cfg.task,
        "label_names": names,
        "text_columns": list(text_columns),
        "max_seq_length": cfg.max_seq_length,
        "selection": cfg.save_model,
        "epoch": epoch,
        "dev": {k: v for k, v in final.items() if isinstance(v, dict)},
        "config": cfg.to_dict(),
    }
    (tmp / META).write_text(json.dumps(meta, indent=1) + "\n")
    (tmp / "README.md").write_text(card(meta, record, labels))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def card(meta: dict[str, Any], record: TrialRecord, labels: np.ndarray) -> str:
    """The model card: what the model is, how it was trained, what it scored, and what to distrust."""
    cfg = meta["config"]
    lines = [
        f"# {meta['arm']} on {meta['suite']}/{meta['task']} (seed {cfg['seed']})",
        "",
        f"Fine-tuned from `{cfg['model']}` by cmi-harness with objective `{meta['arm']}`: {cfg['epochs']} epochs, "
        f"lr {record.lr:g}, batch {cfg['batch_size']}, max length {cfg['max_seq_length']}, seed {cfg['seed']}. "
        f"Trial `{meta['trial_id']}`; the full config is in `harness.json`.",
        "",
        f"Classes: {', '.join(meta['label_names'])}. Kept: the model after epoch {meta['epoch']} "
        f"(`--save-model {meta['selection']}`).",
        "",
        "## Dev results",
        "",
        "| split | metric | value (%) | chance (%) |",
        "|---|---|---|---|",
    ]
    k = len(meta["label_names"])
    for split, metrics in meta["dev"].items():
        for name, value in metrics.items():
            if name in ("accuracy", "f1", "mcc"):
                level = 100 * chance.level(name, labels, k)[0] if split == record.headline_split else float("nan")
                lines.append(f"| {split} | {name} | {100 * value:.2f} | {level:.2f} |")
    head = meta["dev"].get(record.headline_split, {})
    if "cmi" in head:
        lines += ["", f"Dev CMI {head['cmi']:.4g}, Γ {head['gamma']:.4g}, NCMI {head['ncmi']:.4g} (class posterior)."]
    lines += ["", "## Caveats", ""]
    if meta["selection"] == "best":
        lines.append(
            "- The epoch was chosen by this dev metric, so the dev figure above is optimistic; "
            "confirm on data that chose nothing."
        )
    lines.append("- Chance is the best constant prediction on the dev set; one run, one seed: no spread.")
    lines += [f"- {n}" for n in (record.notes or [])]
    data = record.data or {}
    if data.get("dev_from_train"):
        lines.append(f"- The dev set is {data['dev_from_train']:,} rows held out from the training data.")
    for split, src in (data.get("sources") or {}).items():
        lines.append(f"- {split}: `{src['path']}`, {src['rows']:,} rows, sha256 {src['sha256'][:16]}")
    return "\n".join(lines) + "\n"


def load(model_dir: str | Path) -> tuple[Any, Any, dict[str, Any]]:
    """(tokenizer, model in eval mode, harness.json) of a kept model; one clear error if it is not one."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from harness.errors import HarnessError

    hf_logging.disable_progress_bar()

    model_dir = Path(model_dir)
    if not (model_dir / META).is_file():
        raise HarnessError(
            f"{model_dir} is not a kept model (no {META}); keep one with `harness run --save-model last`, "
            f"then pass RUN_DIR/trials/TRIAL_ID/{MODEL_DIR}"
        )
    meta = json.loads((model_dir / META).read_text())
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
    last_layer.at_first_token(model)  # computed as in training, so eval reproduces its numbers bit for bit
    return tok, model, meta
