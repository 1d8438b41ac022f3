"""The ``harness`` command line: the parser, and ``main``, which merges a command's options
(harness.options), loads the plugins and calls the command (harness.commands, harness.tune)."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.markup import escape

from harness import converters, options
from harness.arguments import eval_options, fill_defaults, predict_options, ray_options, trial_options
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
  harness run --train-file train.csv --validation-file dev.csv --text-columns text --save-model last
  harness predict runs/RUN/trials/ID/model --file new.csv --output predictions.csv
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
    trial_options(r)
    r.add_argument("--seeds", type=converter("seeds"), help="comma-separated integer seeds (default: {default})")
    r.add_argument("--retrain-teachers", action="store_true", help="train teachers again even if stored")
    r.add_argument(
        "--setting",
        action="append",
        type=converters.setting,
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
    ray_options(r)
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
    trial_options(t)
    t.add_argument(
        "--search",
        action="append",
        metavar="KEY=KIND:ARGS",
        help="a dimension, e.g. lr=loguniform:1e-5:1e-4 or cmi_min.lambda=choice:0.01,0.1,0.5",
    )
    t.add_argument("--search-file", metavar="YAML", help="dimensions as {KEY: KIND:ARGS or [values]}")
    t.add_argument("--search-alg", choices=options.SEARCH_ALGS, help="default: {default}")
    t.add_argument(
        "--num-samples",
        type=converter("num_samples"),
        help="configs drawn (random, optuna; default 8), or repeats of each grid point (default 1)",
    )
    t.add_argument(
        "--scheduler",
        choices=options.SCHEDULERS,
        help="asha: stop poor trials early on the dev metric, judged after each epoch (default: {default}, none)",
    )
    t.add_argument("--metric", help="dev metric to maximise (default: the task's headline metric)")
    t.add_argument("--seed", type=converter("seed"), help="training seed of every trial (default: {default})")
    t.add_argument(
        "--confirm-seeds",
        type=converter("confirm_seeds"),
        help="rerun the best config on these fresh seeds and report that as the result, since the search's "
        "own score chose it on the same dev set (default: the three seeds after --seed; none: skip)",
    )
    ray_options(t)
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
        "--formats", type=converters.words("formats"), help="reporters to use (default: all; see `harness list`)"
    )

    pr = sub.add_parser(
        "predict",
        help="predict labels of a data file with a kept model (`harness run --save-model last`)",
        description="One output row per input row: its id, the predicted label and every class's probability.",
    )
    predict_options(pr)
    ev = sub.add_parser(
        "eval",
        help="score a kept model on a dev set: metrics and CMI, as a record `harness report` reads",
        description="The same evaluation a trial runs, on --validation-file (with --train-file, which fixes the "
        "classes) or a suite's task (--suite, --tasks, --data-dir).",
    )
    eval_options(ev)
    ls = sub.add_parser("list", help="show registered objectives, models, suites and reporters")
    ls.add_argument("--details", metavar="NAME", help="hyper-parameters of an objective, or tasks of a suite")
    env = sub.add_parser("env", help="show versions, devices and the data cache")
    for parser, module, func in (
        (r, "harness.commands", "cmd_run"),
        (t, "harness.tune", "cmd_tune"),
        (rp, "harness.commands", "cmd_report"),
        (pr, "harness.commands", "cmd_predict"),
        (ev, "harness.commands", "cmd_eval"),
        (ls, "harness.commands", "cmd_list"),
        (env, "harness.commands", "cmd_env"),
    ):
        parser.set_defaults(func=(module, func))  # imported when called: a refused command loads no torch
    fill_defaults(r, "run")
    fill_defaults(t, "tune")
    return p


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
