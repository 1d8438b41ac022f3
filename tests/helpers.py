"""Helpers the test modules share (a helper module, not a test module): a snapshot of a directory's
files, a miniature GLUE copy on disk, readers of TensorBoard event files and of W&B's offline run
files, the source of a plugin
that registers a tiny model without dropout, the settings of a small sample of the smoke suite, and
an interruption of a trial at a given epoch."""

import json
import struct
from pathlib import Path


def files_of(path: Path) -> dict[str, bytes]:
    """Every file under ``path``, by relative name, with its bytes: to show that nothing changed."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# -- a miniature GLUE copy in the classic layout, one file per task and split --

MNLI_HEAD = (
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
    "sentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label"
)


def mnli_row(i, a, b, label):
    return f"{i}\t\t\t\t\t\t\t\t{a}\t{b}\t{label}\t{label}"


GLUE_FILES = {
    "CoLA/train.tsv": ["gj04\t1\t\tThe sailors rode the breeze.", "gj04\t0\t*\tThe more we study verbs."],
    "CoLA/dev.tsv": ["gj04\t1\t\tThe weights made the rope stretch.", "cl07\t0\t*\tHerself likes Mary."],
    "SST-2/train.tsv": ["sentence\tlabel", "a charming journey \t1", "hide new secretions \t0"],
    "SST-2/dev.tsv": ["sentence\tlabel", "it 's a charming film . \t1", "dull and lifeless \t0"],
    "MRPC/train.tsv": [
        "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String",
        '1\t7\t8\tHe said "no".\tHe refused.',
        "0\t9\t10\tIt rained.\tThe sun shone.",
    ],
    "MRPC/dev.tsv": ["\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String", "1\t1\t2\tA cat sat.\tA cat was sitting."],
    "QQP/train.tsv": [
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
        "\t\t\tHow to cook?\tHow do I cook?\t1",
        "1\t2\t3\tWhy is sky blue?\tWhat is love?\t0",
    ],
    "QQP/dev.tsv": ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate", "5\t6\t7\tWho?\tWhom?\t0"],
    "MNLI/train.tsv": [
        MNLI_HEAD,
        mnli_row(0, "A man eats.", "A person eats.", "entailment"),
        mnli_row(1, "A man eats.", "Nobody eats.", "contradiction"),
        mnli_row(2, "A man eats.", "He is hungry.", "neutral"),
    ],
    "MNLI/dev_matched.tsv": [MNLI_HEAD, mnli_row(0, "Dogs bark.", "Animals make noise.", "entailment")],
    "QNLI/train.tsv": [
        "index\tquestion\tsentence\tlabel",
        "0\tWhat is red?\tApples are red.\tentailment",
        "\tWho?\tNobody knows why.\tnot_entailment",
    ],
    "QNLI/dev.tsv": ["index\tquestion\tsentence\tlabel", "0\tWhere?\tIn Paris.\tentailment"],
    "RTE/train.tsv": [
        "index\tsentence1\tsentence2\tlabel",
        "0\tNo weapons found.\tWeapons found.\tnot_entailment",
        "1\tJohn runs.\tJohn moves.\tentailment",
    ],
    "RTE/dev.tsv": ["index\tsentence1\tsentence2\tlabel", "0\tDana died.\tDana is dead.\tentailment"],
    "WNLI/train.tsv": [
        "index\tsentence1\tsentence2\tlabel",
        "0\tI stuck a pin in a carrot.\tThe carrot had a hole.\t1",
    ],
    "WNLI/dev.tsv": ["index\tsentence1\tsentence2\tlabel", "0\tThe drain is clogged.\tThe hair must go.\t0"],
}


def write_glue(root: Path, skip: tuple[str, ...] = (), replace: dict[str, list[str]] | None = None) -> Path:
    """Writes the miniature GLUE copy under ``root`` (less the files in ``skip``, with ``replace``'s
    files in place of the usual ones) and returns ``root``."""
    for name, lines in {**GLUE_FILES, **(replace or {})}.items():
        if name in skip:
            continue
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


# -- TensorBoard event files, read back --


def tensorboard_scalars(path) -> dict[str, list[tuple[int, float]]]:
    """The scalars of TensorBoard event files under ``path`` (TFRecord framing: length, crc, event, crc)."""
    from tensorboardX.proto import event_pb2

    out: dict[str, list[tuple[int, float]]] = {}
    for file in sorted(path.rglob("events.out.tfevents.*")):
        data, at = file.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at : at + 8])
            event = event_pb2.Event.FromString(data[at + 12 : at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


# -- W&B run files (offline mode), read back --


def wandb_records(file: Path):
    """The records of a ``run-*.wandb`` file: a 7-byte header (":W&B", 0xBEE1, version 0), then
    LevelDB's log format (32 KiB blocks; each chunk: crc32c, length, type; FULL=1, FIRST=2, MIDDLE=3,
    LAST=4), each whole record a ``wandb.proto.wandb_internal_pb2.Record``. wandb 0.31 writes and
    reads these files in its Go service and ships no Python reader, hence this one."""
    from wandb.proto.wandb_internal_pb2 import Record

    data, block = file.read_bytes(), 32768
    assert data[:7] == b":W&B\xe1\xbe\x00", f"{file}: not a version-0 W&B run file: {data[:7]!r}"
    at, chunks = 7, b""
    while at + 7 <= len(data):
        if block - at % block < 7:  # too little left in this block for a chunk header: zero padding
            at += block - at % block
            continue
        length, kind = struct.unpack("<HB", data[at + 4 : at + 7])
        chunks += data[at + 7 : at + 7 + length]
        at += 7 + length
        if kind in (1, 4):
            yield Record.FromString(chunks)
            chunks = b""
        elif kind == 0:  # zero padding (a pre-allocated tail)
            chunks = b""


def wandb_runs(path: Path) -> dict[str, dict]:
    """Each offline W&B run under ``path``, by its name: project, config, history rows (dicts) and
    exit code (None if it never finished)."""

    def key(item) -> str:
        return item.key or "/".join(item.nested_key)

    runs = {}
    for file in sorted(path.rglob("run-*.wandb")):
        run = {"config": {}, "history": [], "exit_code": None, "dir": file.parent}
        for record in wandb_records(file):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run["name"], run["project"] = record.run.display_name, record.run.project
                run["config"].update({key(u): json.loads(u.value_json) for u in record.run.config.update})
            elif kind == "config":
                run["config"].update({key(u): json.loads(u.value_json) for u in record.config.update})
            elif kind == "history":
                run["history"].append({key(i): json.loads(i.value_json) for i in record.history.item})
            elif kind == "exit":
                run["exit_code"] = record.exit.exit_code
        runs[run["name"]] = run
    return runs


# -- plugin sources, written to a file and loaded with --plugin --

# Registers "tiny-nodrop", the tiny model without dropout: the only randomness left is the batch
# order, so the multi-worker tests can compare loss curves with the one-worker run.
NO_DROPOUT = """
from harness import hookimpl
from harness import ModelSpec
from harness_plugins.models import tiny_tokenizer


def load(num_labels):
    from transformers import BertConfig, BertForSequenceClassification

    tok = tiny_tokenizer()
    config = BertConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, num_labels=num_labels, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    return tok, BertForSequenceClassification(config)


@hookimpl
def harness_models():
    return [ModelSpec("tiny-nodrop", "tiny without dropout", load, {"lr": 2e-3})]
"""


# -- a small sample of the smoke suite --

# What most trial tests prove (a resumed trial ends with the same numbers, a record holds its config,
# a failure is named) does not depend on how much the model learns, so they train on a fixed sample
# of the smoke suite's 2,000 train and 400 dev examples per task. Tests whose claim is that training
# works (it learns, CMI moves, a student beats its bar) keep the whole suite.
SMALL_DATA = {"max_train_samples": 256, "max_dev_samples": 100}
SMALL_DATA_FLAGS = ("--max-train-samples", "256", "--max-dev-samples", "100")


# -- an interrupted trial --


class Interrupt(BaseException):
    """Stands for Ctrl-C or a killed process: not an Exception, so the trial does not catch it."""


def stop_in_epoch(epoch: int):
    """A progress callback that interrupts the trial at the first step of ``epoch``."""

    def stop(event):
        if event["event"] == "step" and event["epoch"] == epoch:
            raise Interrupt

    return stop
