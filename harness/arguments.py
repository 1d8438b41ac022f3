"""The options of ``harness run`` and ``harness tune`` as command-line flags: what a trial is
(``trial_options``) and where trials run (``ray_options``). Their defaults and conversions are
harness.options'; the parser (harness.cli) adds these to both commands."""

from __future__ import annotations

import argparse

from harness.lora import DEFAULTS as LORA_DEFAULTS
from harness.lora import METHODS as PEFT_METHODS
from harness.options import converter, default


def trial_options(p: argparse.ArgumentParser) -> None:
    """What a trial is: the options `run` and `tune` share."""
    p.add_argument(
        "--config",
        metavar="FILE",
        help="YAML file of these options (e.g. objective_args: {cmi_min: "
        "{lambda: 0.1}}); options given on the command line override it",
    )
    p.add_argument("--suite", help="suite to run (default: {default}; see `harness list`)")
    p.add_argument("--tasks", type=converter("tasks"), help="comma-separated tasks of the suite (default: all)")
    p.add_argument("--objectives", type=converter("objectives"), help="comma-separated (default: {default})")
    p.add_argument(
        "--objective-args",
        metavar="OBJ.KEY=V,...",
        type=converter("objective_args"),
        help="objective hyper-parameters, e.g. ce.label_smoothing=0.1 (see `harness list --details OBJ`)",
    )
    p.add_argument("--model", help="registered name, local directory, or hf:HUB_ID (default: {default})")
    p.add_argument(
        "--task-args",
        metavar="TASK.KEY=V,...",
        type=converter("task_args"),
        help="per-task settings over the global ones, e.g. rte.epochs=10,rte.lr=5e-5,rte.seeds=1+2+3+4+5 (keys: "
        "epochs, lr, batch_size, max_seq_length, warmup_ratio, weight_decay, max_train_samples, max_dev_samples, "
        "dev_from_train, seeds)",
    )
    p.add_argument("--teacher-model", help="teacher of kd / cmi_max_kd (e.g. minilm-l6, with --model minilm-l6:half)")
    p.add_argument(
        "--teacher-dir", help="shared store of teacher trials, reused across runs (default: OUTPUT_DIR/teachers)"
    )
    p.add_argument(
        "--data-dir", help="local GLUE copy in the classic layout (default: $HARNESS_GLUE_DIR, else the Hub)"
    )
    p.add_argument("--train-file", metavar="FILE", help="your own training data (.csv, .tsv, .json(l), .parquet)")
    p.add_argument("--validation-file", metavar="FILE", help="your own dev data, scored like a GLUE dev set")
    p.add_argument(
        "--text-columns",
        type=converter("text_columns"),
        metavar="A[,B]",
        help="text column(s) of your files (default: sentence1,sentence2, sentence or text, as run_glue.py)",
    )
    p.add_argument("--label-column", metavar="C", help="label column of your files (default: label)")
    p.add_argument("--epochs", type=converter("epochs"), help="default: {default}")
    p.add_argument("--lr", type=converter("lr"), help="peak learning rate (default: the model's, 2e-5 for pretrained)")
    p.add_argument("--batch-size", type=converter("batch_size"), help="global batch (default: {default})")
    p.add_argument("--max-seq-length", type=converter("max_seq_length"), help="truncation length (default: {default})")
    p.add_argument("--warmup-ratio", type=converter("warmup_ratio"), help="default: {default}")
    p.add_argument("--weight-decay", type=converter("weight_decay"), help="default: {default}")
    p.add_argument(
        "--max-train-samples", type=converter("max_train_samples"), help="deterministic subsample of each train split"
    )
    p.add_argument(
        "--max-dev-samples",
        type=converter("max_dev_samples"),
        help="deterministic subsample of each dev split (said in the report)",
    )
    p.add_argument(
        "--dev-from-train",
        type=converter("dev_from_train"),
        metavar="N",
        help="hold out N training rows (fixed, the same for every trial) as the dev set, in place of the task's dev "
        "splits; said in the report",
    )
    p.add_argument(
        "--feature-cmi-temperature",
        type=converter("feature_cmi_temperature"),
        metavar="T",
        help="also measure dev CMI of softmax(pooled features / T) on every trial (the control of a "
        "space=features arm)",
    )
    p.add_argument(
        "--model-dtype",
        choices=("fp32", "bf16", "fp16"),
        help="dtype the weights load in (default: {default}; on a GPU, bf16 with --peft lora and "
        "--precision bf16 is the usual LLM recipe; fp16 needs CUDA)",
    )
    p.add_argument(
        "--grad-accum",
        type=converter("grad_accum"),
        metavar="N",
        help="accumulate N micro-batches per step; --batch-size stays the global batch (default: 1)",
    )
    p.add_argument(
        "--gradient-checkpointing", action="store_true", help="recompute activations in backward (less memory)"
    )
    p.add_argument(
        "--pad-multiple",
        type=converter("pad_multiple"),
        metavar="N",
        help="pad each batch to a multiple of N tokens (default: 8 on a GPU, which then meets few shapes; 1 on "
        "the CPU, where padding is only more work)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model, each new batch shape compiled at its first step (slower on a 2-core CPU; "
        "reports/performance.md)",
    )
    p.add_argument(
        "--peft",
        choices=PEFT_METHODS,
        help="train LoRA adapters and the head, the base frozen (PEFT); qlora: on a 4-bit base (bitsandbytes)",
    )
    p.add_argument(
        "--peft-args",
        type=converter("peft_args"),
        metavar="K=V,...",
        help=f"LoRA settings (defaults): {', '.join(f'{k} ({v})' for k, v in LORA_DEFAULTS.items())}; targets "
        "also as module names joined by +",
    )
    p.add_argument(
        "--save-model",
        choices=("none", "last", "best"),
        help="keep each trial's model in TRIAL_DIR/model (Hugging Face format, with a model card): last epoch, or "
        "best by dev metric (its dev figure is then optimistic); default: {default}, as a comparison's "
        "product is its table",
    )
    p.add_argument("--zero-stage", type=converter("zero_stage"), help="DeepSpeed ZeRO stage (default: {default})")
    p.add_argument("--precision", help="fp32, bf16, or fp16 (GPU only) (default: {default})")
    p.add_argument("--threads", type=converter("threads"), help="torch threads per worker (default: torch's; Ray: 1)")
    p.add_argument("--output-dir", help="each run gets a new directory under it (default: {default})")
    p.add_argument("--quiet", action="store_true", help="no live progress or per-trial lines")
    p.add_argument(
        "--tracker",
        type=converter("tracker"),
        help="log each trial to experiment trackers: tensorboard, mlflow, wandb (comma-separated; see `harness list`)",
    )
    p.add_argument(
        "--retries", type=converter("retries"), help="run a failed trial again up to N times (default: {default})"
    )


def ray_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", help="ray: a Ray cluster (auto, host:port, ray://host:port); default: a local Ray")
    p.add_argument(
        "--storage",
        metavar="URI",
        help="ray: the run's storage when nodes share no filesystem, a URI (s3://bucket/runs, gs://..., or a "
        "path): trials work on their node's disk and keep their files and Ray's state there (RUN/trials, "
        "RUN/ray, teachers/), the driver fetches records into --output-dir (default: none, --output-dir is shared)",
    )
    p.add_argument(
        "--workers-per-trial",
        type=converter("workers_per_trial"),
        help="ray: DeepSpeed workers per trial (default: {default})",
    )
    p.add_argument(
        "--gpus-per-worker",
        type=converter("gpus_per_worker"),
        help="ray: GPUs per worker (default: 1 on a local Ray of a machine with CUDA GPUs, else 0)",
    )
    p.add_argument(
        "--max-concurrent-trials",
        type=converter("max_concurrent_trials"),
        help="ray: trials running at once (default: as fit)",
    )
    p.add_argument(
        "--dashboard", action="store_true", help="ray: start a local Ray's dashboard on 127.0.0.1 (needs ray[default])"
    )


def fill_defaults(p: argparse.ArgumentParser, command: str) -> None:
    """``{default}`` in a flag's help becomes the option's default for ``command``, read from
    harness.options (the one place defaults are set), as the command line would write it."""
    for action in p._actions:
        if action.help and "{default}" in action.help:
            action.help = action.help.replace("{default}", shown(default(action.dest, command)))


def shown(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def predict_options(p: argparse.ArgumentParser) -> None:
    """``harness predict``: a kept model on a data file."""
    p.add_argument("model_dir", metavar="MODEL_DIR", help="a kept model: RUN_DIR/trials/TRIAL_ID/model")
    p.add_argument("--file", required=True, help="rows to predict (.csv, .tsv, .json(l), .parquet)")
    p.add_argument("--output", required=True, help="where to write (.csv, .tsv, .jsonl, .parquet)")
    p.add_argument("--text-columns", type=converter("text_columns"), metavar="A[,B]", help="default: the model's")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--glue",
        action="store_true",
        help="FILE is a GLUE test.tsv: write GLUE's submission format (index, prediction)",
    )


def eval_options(p: argparse.ArgumentParser) -> None:
    """``harness eval``: a kept model scored on a dev set."""
    p.add_argument("model_dir", metavar="MODEL_DIR", help="a kept model: RUN_DIR/trials/TRIAL_ID/model")
    for flag, kw in (
        ("--suite", {"default": default("suite"), "help": f"suite of the task (default: {default('suite')})"}),
        ("--tasks", {"type": converter("tasks"), "help": "the one task to score"}),
        ("--data-dir", {"help": "local GLUE copy (default: $HARNESS_GLUE_DIR, else the Hub)"}),
        ("--train-file", {"metavar": "FILE", "help": "the training file of your task (its classes)"}),
        ("--validation-file", {"metavar": "FILE", "help": "the file to score"}),
        ("--text-columns", {"type": converter("text_columns"), "metavar": "A[,B]"}),
        ("--label-column", {"metavar": "C"}),
        ("--max-dev-samples", {"type": converter("max_dev_samples")}),
        (
            "--output-dir",
            {
                "default": default("output_dir"),
                "help": f"the record goes to OUTPUT_DIR/TIME-eval/ (default: {default('output_dir')})",
            },
        ),
        ("--batch-size", {"type": int, "default": 64}),
    ):
        p.add_argument(flag, **kw)
