"""The ``harness`` command line: the parser, and ``main``, which merges a command's options
(harness.options), loads the plugins and calls the command (harness.commands, harness.search)."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.markup import escape

from harness import options
from harness.errors import HarnessError
from harness.options import converter

EPILOG = """examples:
  harness run                              # smoke suite, tiny model, offline, on a local Ray
  harness run --executor local             # the same trials in this process (fastest for tiny ones)
  harness run --suite glue --tasks rte,mrpc --objectives ce,cmi_min --model minilm-l6 --data-dir ../shared/glue
  harness run --suite glue --tasks rte --objectives ce,kd,cmi_max_kd --model minilm-l6:half \\
      --teacher-model minilm-l6 --data-dir ../shared/glue
  harness tune --suite glue --tasks rte --objectives cmi_min --model minilm-l6 --data-dir ../shared/glue \\
      --search lr=loguniform:1e-5:1e-4 --search cmi_min.lambda=choice:0.01,0.1,0.5 --scheduler asha
  harness run --resume runs/RUN_DIR        # finish an interrupted run
  harness tune --resume runs/RUN_DIR       # continue an interrupted search
  harness report runs/RUN_DIR              # rebuild a run's comparison report
  harness list                             # objectives, models, suites, reporters, with their packages
  harness list --details cmi_min           # one entry's hyper-parameters or tasks
"""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + line
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> Parser:
    p = Parser(
        prog="harness",
        description="Fine-tune transformer classifiers on GLUE under pluggable training objectives and compare them.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="also load plugin module MODULE (importable, not installed); repeatable",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    r = sub.add_parser(
        "run",
        argument_default=argparse.SUPPRESS,  # unset options come from --config, else Options' defaults
        help="train and evaluate trials, then write the comparison report",
        description="Runs every (task, objective, seed) trial, teachers first, and writes the comparison "
        "report. Without arguments: the generated smoke suite with the tiny model, offline.",
    )
    _trial_options(r)
    r.add_argument("--seeds", type=converter("seeds"), help="comma-separated integer seeds (default: 1,2,3)")
    r.add_argument("--retrain-teachers", action="store_true", help="train teachers again even if stored")
    r.add_argument(
        "--setting",
        action="append",
        type=options.setting,
        metavar="MODEL=OBJ,...[@TEACHER]",
        help="a model with its objectives (and teacher), repeatable, instead of --model/--objectives/"
        "--teacher-model; e.g. --setting minilm-l6=ce,cmi_min --setting minilm-l6:half=ce,kd@minilm-l6",
    )
    r.add_argument(
        "--executor",
        choices=options.EXECUTORS,
        help="ray: each trial a Ray Tune trial running a Ray Train TorchTrainer of DeepSpeed workers "
        "(default; $HARNESS_EXECUTOR changes it); local: the same trials in this process, for debugging",
    )
    _ray_options(r)
    r.add_argument(
        "--reuse",
        action="append",
        metavar="RUN_DIR",
        help="take the completed trials of an earlier run that this run plans unchanged (the same settings "
        "and data: the same trial id) instead of training them again; repeatable. E.g. after changing one "
        "task's budget in a study's config, only that task trains",
    )
    r.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="finish an interrupted run: completed trials are kept, interrupted ones continue from their "
        "last epoch checkpoint; it executes as it did (--executor, Ray's options, --retries) unless "
        "those are given here; other options are ignored",
    )

    t = sub.add_parser(
        "tune",
        argument_default=argparse.SUPPRESS,
        help="search hyper-parameters of one objective on one task (Ray Tune)",
        description="Searches hyper-parameters of one objective on one task with Ray Tune, early-stopping "
        "poor trials on the dev metric if asked, and saves the best config as a file `harness run --config` "
        "reads. Search space: --search KEY=KIND:ARGS (repeatable) and/or --search-file YAML. KEY: lr, "
        "batch_size, epochs, warmup_ratio, weight_decay, max_seq_length, max_train_samples, seed, or "
        "OBJECTIVE.HPARAM. KIND:ARGS: uniform:LO:HI, loguniform:LO:HI, randint:LO:HI (inclusive), "
        "choice:A,B,... (sampled), grid:A,B,... (each value).",
    )
    _trial_options(t)
    t.add_argument(
        "--search",
        action="append",
        metavar="KEY=KIND:ARGS",
        help="a dimension, e.g. lr=loguniform:1e-5:1e-4 or cmi_min.lambda=choice:0.01,0.1,0.5",
    )
    t.add_argument("--search-file", metavar="YAML", help="dimensions as {KEY: KIND:ARGS or [values]}")
    t.add_argument("--search-alg", choices=options.SEARCH_ALGS, help="default: random")
    t.add_argument(
        "--num-samples",
        type=converter("num_samples"),
        help="configs drawn (random, optuna; default 8), or repeats of each grid point (default 1)",
    )
    t.add_argument(
        "--scheduler",
        choices=options.SCHEDULERS,
        help="asha: stop poor trials early on the dev metric, judged after each epoch (default: fifo, none)",
    )
    t.add_argument("--metric", help="dev metric to maximise (default: the task's headline metric)")
    t.add_argument("--seed", type=converter("seed"), help="training seed of every trial (default: 1)")
    t.add_argument(
        "--confirm-seeds",
        type=converter("confirm_seeds"),
        help="rerun the best config on these fresh seeds and report that as the result, since the search's "
        "own score chose it on the same dev set (default: the three seeds after --seed; none: skip)",
    )
    _ray_options(t)
    t.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue a search whose driver stopped (Tune restores its searcher, scheduler and trials; "
        "completed trials are not trained again), then its confirmation; Ray's options may be given "
        "again, the search's own options are its run.json's",
    )

    rp = sub.add_parser(
        "report",
        help="(re)generate the comparison report of one or more runs",
        description="Builds the comparison report from the trial records of RUN_DIRs alone: "
        "rich tables here; Markdown, HTML, CSV, JSON and PNG plots in the output directory.",
    )
    rp.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    rp.add_argument("--output", help="directory for the report files (default: RUN_DIR/report for one run)")
    rp.add_argument(
        "--supersede",
        action="store_true",
        help="where several runs hold a task, take its trials from the last run given (a rerun of that task "
        "at another budget) and say so in the report; without it such runs are refused",
    )
    rp.add_argument(
        "--equivalence-margin",
        type=float,
        metavar="POINTS",
        help="two one-sided tests: is every difference within +-POINTS of the metric? (default: 1)",
    )
    rp.add_argument(
        "--formats", type=options.words("formats"), help="reporters to use (default: all; see `harness list`)"
    )

    pr = sub.add_parser(
        "predict",
        help="predict labels of a data file with a kept model (`harness run --save-model last`)",
        description="One output row per input row: its id, the predicted label and every class's probability.",
    )
    pr.add_argument("model_dir", metavar="MODEL_DIR", help="a kept model: RUN_DIR/trials/TRIAL_ID/model")
    pr.add_argument("--file", required=True, help="rows to predict (.csv, .tsv, .json(l), .parquet)")
    pr.add_argument("--output", required=True, help="where to write (.csv, .tsv, .jsonl, .parquet)")
    pr.add_argument("--text-columns", type=converter("text_columns"), metavar="A[,B]", help="default: the model's")
    pr.add_argument("--batch-size", type=int, default=64)
    ev = sub.add_parser(
        "eval",
        help="score a kept model on a dev set: metrics and CMI, as a record `harness report` reads",
        description="The same evaluation a trial runs, on --validation-file (with --train-file, which fixes the "
        "classes) or a suite's task (--suite, --tasks, --data-dir).",
    )
    ev.add_argument("model_dir", metavar="MODEL_DIR", help="a kept model: RUN_DIR/trials/TRIAL_ID/model")
    for flag, kw in (
        ("--suite", {"default": "smoke", "help": "suite of the task (default: smoke)"}),
        ("--tasks", {"type": converter("tasks"), "help": "the one task to score"}),
        ("--data-dir", {"help": "local GLUE copy (default: $HARNESS_GLUE_DIR, else the Hub)"}),
        ("--train-file", {"metavar": "FILE", "help": "the training file of your task (its classes)"}),
        ("--validation-file", {"metavar": "FILE", "help": "the file to score"}),
        ("--text-columns", {"type": converter("text_columns"), "metavar": "A[,B]"}),
        ("--label-column", {"metavar": "C"}),
        ("--max-dev-samples", {"type": converter("max_dev_samples")}),
        ("--output-dir", {"default": "runs", "help": "the record goes to OUTPUT_DIR/TIME-eval/ (default: runs)"}),
        ("--batch-size", {"type": int, "default": 64}),
    ):
        ev.add_argument(flag, **kw)
    ls = sub.add_parser("list", help="show registered objectives, models, suites and reporters")
    ls.add_argument("--details", metavar="NAME", help="hyper-parameters of an objective, or tasks of a suite")
    env = sub.add_parser("env", help="show versions, devices and the data cache")
    for parser, module, func in (
        (r, "harness.commands", "cmd_run"),
        (t, "harness.search", "cmd_tune"),
        (rp, "harness.commands", "cmd_report"),
        (pr, "harness.commands", "cmd_predict"),
        (ev, "harness.commands", "cmd_eval"),
        (ls, "harness.commands", "cmd_list"),
        (env, "harness.commands", "cmd_env"),
    ):
        parser.set_defaults(func=(module, func))  # imported when called: a refused command loads no torch
    return p


def _trial_options(p: argparse.ArgumentParser) -> None:
    """What a trial is: the options `run` and `tune` share."""
    p.add_argument(
        "--config",
        metavar="FILE",
        help="YAML file of these options (e.g. objective_args: {cmi_min: "
        "{lambda: 0.1}}); options given on the command line override it",
    )
    p.add_argument("--suite", help="suite to run (default: smoke; see `harness list`)")
    p.add_argument("--tasks", type=converter("tasks"), help="comma-separated tasks of the suite (default: all)")
    p.add_argument("--objectives", type=converter("objectives"), help="comma-separated (default: ce,cmi_min; tune: ce)")
    p.add_argument(
        "--objective-args",
        metavar="OBJ.KEY=V,...",
        type=converter("objective_args"),
        help="objective hyper-parameters, e.g. ce.label_smoothing=0.1 (see `harness list --details OBJ`)",
    )
    p.add_argument("--model", help="registered name, local directory, or hf:HUB_ID (default: tiny)")
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
    p.add_argument("--epochs", type=converter("epochs"), help="default: 3")
    p.add_argument("--lr", type=converter("lr"), help="peak learning rate (default: the model's, 2e-5 for pretrained)")
    p.add_argument("--batch-size", type=converter("batch_size"), help="global batch (default: 32)")
    p.add_argument("--max-seq-length", type=converter("max_seq_length"), help="truncation length (default: 128)")
    p.add_argument("--warmup-ratio", type=converter("warmup_ratio"), help="default: 0.1")
    p.add_argument("--weight-decay", type=converter("weight_decay"), help="default: 0.01")
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
        help="dtype the weights are cast to once loaded (default fp32; on a GPU, bf16 with --peft lora and "
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
    p.add_argument("--peft", choices=("lora",), help="train LoRA adapters and the head, the base frozen (PEFT)")
    p.add_argument(
        "--peft-args",
        type=converter("peft_args"),
        metavar="K=V,...",
        help="LoRA settings: r (8), alpha (16), dropout (0.05), targets (all-linear, or names joined by +)",
    )
    p.add_argument(
        "--save-model",
        choices=("none", "last", "best"),
        help="keep each trial's model in TRIAL_DIR/model (Hugging Face format, with a model card): last epoch, or "
        "best by dev metric (its dev figure is then optimistic); default none: a comparison's product is its table",
    )
    p.add_argument("--zero-stage", type=converter("zero_stage"), help="DeepSpeed ZeRO stage (default: 0)")
    p.add_argument("--precision", help="fp32, bf16, or fp16 (GPU only) (default: fp32)")
    p.add_argument("--threads", type=converter("threads"), help="torch threads per worker (default: torch's; Ray: 1)")
    p.add_argument("--output-dir", help="each run gets a new directory under it (default: runs)")
    p.add_argument("--quiet", action="store_true", help="no live progress or per-trial lines")
    p.add_argument(
        "--tracker",
        type=converter("tracker"),
        help="log each trial to experiment trackers: tensorboard, mlflow, wandb (comma-separated; see `harness list`)",
    )
    p.add_argument("--retries", type=converter("retries"), help="run a failed trial again up to N times (default 0)")


def _ray_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", help="ray: a Ray cluster (auto, host:port, ray://host:port); default: a local Ray")
    p.add_argument(
        "--storage",
        metavar="URI",
        help="ray: the run's storage when nodes share no filesystem, a URI (s3://bucket/runs, gs://..., or a "
        "path): trials work on their node's disk and keep their files and Ray's state there (RUN/trials, "
        "RUN/ray, teachers/), the driver fetches records into --output-dir (default: none, --output-dir is shared)",
    )
    p.add_argument("--workers-per-trial", type=converter("workers_per_trial"), help="ray: DeepSpeed workers per trial")
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


def parse(argv: list[str]):
    """``(module, function)`` of the command and its options: merged Options for run and tune (may
    raise HarnessError), the parsed arguments for the others; ``(None, None)`` without a command."""
    return _merged(build_parser().parse_args(argv))


def _merged(args: argparse.Namespace):
    if not hasattr(args, "func"):
        return None, None
    given = vars(args)
    func, command, config = given.pop("func"), given.pop("command"), given.pop("config", None)
    return func, options.Options.merge(command, given, config) if command in ("run", "tune") else args


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    console, err = Console(), Console(stderr=True)
    debug = args.debug
    try:
        import importlib

        from harness.plugins import load

        func, opts = _merged(args)
        if func is None:
            build_parser().print_help()
            return 0
        plugins = load(tuple(opts.plugin))
        for w in plugins.warnings:
            err.print(f"[yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)
        return getattr(importlib.import_module(func[0]), func[1])(plugins, opts, console)
    except HarnessError as exc:
        if debug:
            raise
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
