"""The ``harness`` command: run, list, env."""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.errors import HarnessError

EPILOG = """examples:
  harness run                              # smoke suite, tiny model, offline, on a local Ray
  harness run --executor local             # the same trials in this process (fastest for tiny ones)
  harness run --suite glue --tasks rte,mrpc --objectives ce,cmi_min --model minilm-l6 --data-dir ../shared/glue
  harness run --suite glue --tasks rte --objectives ce,kd,cmi_max_kd --model minilm-l6:half \\
      --teacher-model minilm-l6 --data-dir ../shared/glue
  harness tune --suite glue --tasks rte --objectives cmi_min --model minilm-l6 --data-dir ../shared/glue \\
      --search lr=loguniform:1e-5:1e-4 --search cmi_min.lambda=choice:0.01,0.1,0.5 --scheduler asha
  harness run --resume runs/RUN_DIR        # finish an interrupted run
  harness report runs/RUN_DIR              # rebuild a run's comparison report
  harness list                             # objectives, models, suites, reporters, with their packages
  harness list --details cmi_min           # one entry's hyper-parameters or tasks
"""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + line
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _csv(kind: str):
    def parse(text: str) -> list[str]:
        items = [s.strip() for s in text.split(",") if s.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"{kind}: give a comma-separated list")
        return items

    return parse


def _seeds(text: str) -> list[int]:
    out = []
    for s in _csv("seeds")(text):
        try:
            out.append(int(s))
        except ValueError:
            raise argparse.ArgumentTypeError(f"seed {s!r} is not an integer; write e.g. --seeds 1,2,3") from None
    return out


def _setting(text: str) -> dict:
    model, eq, rest = text.partition("=")
    objectives, _, teacher = rest.partition("@")
    if not (eq and model.strip() and objectives.strip()):
        raise argparse.ArgumentTypeError(
            f"--setting {text!r}: write MODEL=OBJ,OBJ[@TEACHER], e.g. minilm-l6=ce,cmi_min"
        )
    return {
        "model": model.strip(),
        "objectives": _csv("objectives")(objectives),
        "teacher_model": teacher.strip() or None,
    }


def _confirm_seeds(text: str) -> list[int]:
    return [] if text.strip().lower() == "none" else _seeds(text)


def _number(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a {'whole number' if kind is int else 'number'}"
            ) from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        return value

    return parse


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
        help="train and evaluate trials, then write the comparison report",
        description="Runs every (task, objective, seed) trial, teachers first, and writes the comparison "
        "report. Without arguments: the generated smoke suite with the tiny model, offline.",
    )
    _trial_options(r)
    r.add_argument("--seeds", type=_seeds, default=[1, 2, 3], help="comma-separated integer seeds (default: 1,2,3)")
    r.add_argument("--retrain-teachers", action="store_true", help="train teachers again even if stored")
    r.add_argument(
        "--setting",
        action="append",
        type=_setting,
        metavar="MODEL=OBJ,...[@TEACHER]",
        help="a model with its objectives (and teacher), repeatable, instead of --model/--objectives/"
        "--teacher-model; e.g. --setting minilm-l6=ce,cmi_min --setting minilm-l6:half=ce,kd@minilm-l6",
    )
    r.add_argument(
        "--executor",
        choices=("ray", "local"),
        default=os.environ.get("HARNESS_EXECUTOR", "ray"),
        help="ray: each trial a Ray Tune trial running a Ray Train TorchTrainer of DeepSpeed workers "
        "(default; $HARNESS_EXECUTOR changes it); local: the same trials in this process, for debugging",
    )
    _ray_options(r)
    r.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="finish an interrupted run: completed trials are kept, interrupted ones continue from their "
        "last epoch checkpoint; options other than the executor's are ignored",
    )

    t = sub.add_parser(
        "tune",
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
        default=[],
        metavar="KEY=KIND:ARGS",
        help="a dimension, e.g. lr=loguniform:1e-5:1e-4 or cmi_min.lambda=choice:0.01,0.1,0.5",
    )
    t.add_argument("--search-file", metavar="YAML", help="dimensions as {KEY: KIND:ARGS or [values]}")
    t.add_argument("--search-alg", choices=("random", "grid", "optuna"), default="random", help="default: random")
    t.add_argument(
        "--num-samples",
        type=_number(int),
        help="configs drawn (random, optuna; default 8), or repeats of each grid point (default 1)",
    )
    t.add_argument(
        "--scheduler",
        choices=("fifo", "asha"),
        default="fifo",
        help="asha: stop poor trials early on the dev metric, judged after each epoch (default: fifo, none)",
    )
    t.add_argument("--metric", help="dev metric to maximise (default: the task's headline metric)")
    t.add_argument("--seed", type=_number(int), default=1, help="training seed of every trial (default: 1)")
    t.add_argument(
        "--confirm-seeds",
        type=_confirm_seeds,
        help="rerun the best config on these fresh seeds and report that as the result, since the search's "
        "own score chose it on the same dev set (default: the three seeds after --seed; none: skip)",
    )
    _ray_options(t)

    rp = sub.add_parser(
        "report",
        help="(re)generate the comparison report of one or more runs",
        description="Builds the comparison report from the trial records of RUN_DIRs alone: "
        "rich tables here; Markdown, HTML, CSV, JSON and PNG plots in the output directory.",
    )
    rp.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    rp.add_argument("--output", help="directory for the report files (default: RUN_DIR/report for one run)")
    rp.add_argument("--formats", type=_csv("formats"), help="reporters to use (default: all; see `harness list`)")

    ls = sub.add_parser("list", help="show registered objectives, models, suites and reporters")
    ls.add_argument("--details", metavar="NAME", help="hyper-parameters of an objective, or tasks of a suite")
    sub.add_parser("env", help="show versions, devices and the data cache")
    return p


def _trial_options(p: argparse.ArgumentParser) -> None:
    """What a trial is: the options `run` and `tune` share."""
    p.add_argument(
        "--config",
        metavar="FILE",
        help="YAML file of these options (e.g. objective_args: {cmi_min: "
        "{lambda: 0.1}}); options given on the command line override it",
    )
    p.add_argument("--suite", default="smoke", help="suite to run (default: smoke; see `harness list`)")
    p.add_argument("--tasks", type=_csv("tasks"), help="comma-separated tasks of the suite (default: all)")
    p.add_argument("--objectives", type=_csv("objectives"), default=["ce"], help="comma-separated (default: ce)")
    p.add_argument(
        "--objective-args",
        metavar="OBJ.KEY=V,...",
        help="objective hyper-parameters, e.g. ce.label_smoothing=0.1 (see `harness list --details OBJ`)",
    )
    p.add_argument("--model", default="tiny", help="registered name, local directory, or hf:HUB_ID (default: tiny)")
    p.add_argument(
        "--task-args",
        metavar="TASK.KEY=V,...",
        help="per-task settings over the global ones, e.g. rte.epochs=10,rte.lr=5e-5,rte.seeds=1+2+3+4+5 (keys: "
        "epochs, "
        "lr, batch_size, max_seq_length, warmup_ratio, weight_decay, max_train_samples, max_dev_samples, seeds)",
    )
    p.add_argument("--teacher-model", help="teacher of kd / cmi_max_kd (e.g. minilm-l6, with --model minilm-l6:half)")
    p.add_argument(
        "--teacher-dir", help="shared store of teacher trials, reused across runs (default: OUTPUT_DIR/teachers)"
    )
    p.add_argument(
        "--data-dir", help="local GLUE copy in the classic layout (default: $HARNESS_GLUE_DIR, else the Hub)"
    )
    p.add_argument("--epochs", type=_number(int), default=3, help="default: 3")
    p.add_argument("--lr", type=_number(float), help="peak learning rate (default: the model's, 2e-5 for pretrained)")
    p.add_argument("--batch-size", type=_number(int), default=32, help="global batch (default: 32)")
    p.add_argument("--max-seq-length", type=_number(int), default=128, help="truncation length (default: 128)")
    p.add_argument("--warmup-ratio", type=_number(float), default=0.1, help="default: 0.1")
    p.add_argument("--weight-decay", type=_number(float), default=0.01, help="default: 0.01")
    p.add_argument("--max-train-samples", type=_number(int), help="deterministic subsample of each train split")
    p.add_argument(
        "--max-dev-samples", type=_number(int), help="deterministic subsample of each dev split (said in the report)"
    )
    p.add_argument("--zero-stage", type=_number(int), default=0, help="DeepSpeed ZeRO stage (default: 0)")
    p.add_argument("--precision", default="fp32", help="fp32, bf16, or fp16 (GPU only) (default: fp32)")
    p.add_argument("--threads", type=_number(int), help="torch threads per worker (default: torch's; Ray: 1)")
    p.add_argument("--output-dir", default="runs", help="each run gets a new directory under it (default: runs)")
    p.add_argument("--quiet", action="store_true", help="no live progress or per-trial lines")
    p.add_argument(
        "--tracker",
        type=_csv("trackers"),
        default=[],
        help="log each trial to experiment trackers: tensorboard, mlflow (comma-separated; see `harness list`)",
    )
    p.add_argument("--retries", type=_number(int), default=0, help="run a failed trial again up to N times (default 0)")


def _ray_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", help="ray: a Ray cluster (auto, host:port, ray://host:port); default: a local Ray")
    p.add_argument(
        "--storage", help="ray: where Ray keeps experiment state, a path or URI (s3://...) (default: RUN_DIR/ray)"
    )
    p.add_argument("--workers-per-trial", type=_number(int), default=1, help="ray: DeepSpeed workers per trial")
    p.add_argument(
        "--gpus-per-worker",
        type=_number(float),
        help="ray: GPUs per worker (default: 1 on a local Ray of a machine with CUDA GPUs, else 0)",
    )
    p.add_argument("--max-concurrent-trials", type=_number(int), help="ray: trials running at once (default: as fit)")
    p.add_argument(
        "--dashboard", action="store_true", help="ray: start a local Ray's dashboard on 127.0.0.1 (needs ray[default])"
    )


def config_tokens(path: str, parser: Parser, command: str) -> list[str]:
    """A YAML file of `harness COMMAND` options (long names, - or _) as command-line tokens.

    ``objective_args`` may be a mapping {objective: {key: value}}; lists become comma lists."""
    from harness.config import yaml_mapping

    data = yaml_mapping(path, "--config", "a mapping of option names to values")
    sub = parser._subparsers._group_actions[0].choices[command]
    options = {a.dest: a for a in sub._actions if a.option_strings and a.dest not in ("help", "config", "resume")}
    tokens = []
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        if dest not in options:
            raise HarnessError(f"--config {path}: unknown option {key!r}; known: {', '.join(sorted(options))}")
        flag = options[dest].option_strings[0]
        if dest in ("objective_args", "task_args") and isinstance(value, dict):
            join = lambda v: "+".join(map(str, v)) if isinstance(v, list) else v  # noqa: E731 -- per-task seeds
            value = ",".join(f"{o}.{k}={join(v)}" for o, kv in value.items() for k, v in (kv or {}).items())
        if dest == "setting" and isinstance(value, list):  # settings: [{model, objectives, teacher_model}]
            for item in value:
                if not isinstance(item, dict) or not {"model", "objectives"} <= set(item):
                    raise HarnessError(f"--config {path}: each of setting: needs model and objectives, got {item!r}")
                objs = item["objectives"]
                text = f"{item['model']}={','.join(objs) if isinstance(objs, list) else objs}"
                tokens += [flag, text + (f"@{item['teacher_model']}" if item.get("teacher_model") else "")]
            continue
        if isinstance(options[dest], argparse._StoreTrueAction):
            tokens += [flag] if value else []
        else:
            tokens += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return tokens


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    console, err = Console(), Console(stderr=True)
    try:
        if args.command in ("run", "tune") and args.config:  # the file's options first, so flags given here win
            at = argv.index(args.command) + 1
            args = parser.parse_args(argv[:at] + config_tokens(args.config, parser, args.command) + argv[at:])
        from harness import plugins as plugin_loader

        loaded = plugin_loader.load(tuple(args.plugin))
        for w in loaded.warnings:
            err.print(f"[yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)
        if args.command == "list":
            return cmd_list(loaded, console, args.details)
        if args.command == "env":
            return cmd_env(loaded, console)
        if args.command == "run":
            return cmd_run(loaded, args, console)
        if args.command == "tune":
            from harness.tuning import cmd_tune

            return cmd_tune(loaded, args, console)
        if args.command == "report":
            return cmd_report(loaded, args, console)
        build_parser().print_help()
        return 0
    except HarnessError as exc:
        if args.debug:
            raise
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130


def plan_from_args(loaded, args, seeds: list[int], check_model: bool = True):
    """The validated plan of `run`/`tune` options (harness.planner.make_plan), one per --setting, merged."""
    from harness.planner import merge, parse_objective_args

    groups = getattr(args, "setting", None) or [
        {"model": args.model, "objectives": args.objectives, "teacher_model": args.teacher_model}
    ]
    from harness.tracking import check

    check(tuple(args.tracker), loaded.trackers)
    given = parse_objective_args(args.objective_args, [o for g in groups for o in g["objectives"]])
    plans = []
    for g in groups:  # each setting gets the objective arguments of its own objectives
        mine = ",".join(f"{o}.{k}={v}" for o, kv in given.items() if o in g["objectives"] for k, v in kv.items())
        plans.append(
            _plan_setting(loaded, args, seeds, g["model"], g["objectives"], g["teacher_model"], mine, check_model)
        )
    return merge(plans)


def _plan_setting(loaded, args, seeds, model, objectives, teacher_model, objective_args, check_model):
    from harness.planner import make_plan

    plan = make_plan(
        loaded,
        args.suite,
        args.tasks,
        objectives,
        model,
        seeds,
        objective_args or None,
        check_model,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        max_seq_length=args.max_seq_length,
        warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay,
        max_train_samples=args.max_train_samples,
        max_dev_samples=args.max_dev_samples,
        data_dir=str(Path(args.data_dir).resolve()) if args.data_dir else None,
        zero_stage=args.zero_stage,
        precision=args.precision,
        threads=args.threads,
        plugins=tuple(args.plugin),
        teacher_model=teacher_model,
        task_args=args.task_args,
        teacher_store=str(Path(args.teacher_dir or Path(args.output_dir) / "teachers").resolve()),
        trackers=tuple(args.tracker),
        tracking_dir=str(Path(args.output_dir).resolve()) if args.tracker else None,
    )
    if args.retries < 0:
        raise HarnessError(f"--retries {args.retries}: must be 0 or more")
    if args.workers_per_trial < 1:
        raise HarnessError(f"--workers-per-trial {args.workers_per_trial}: must be at least 1")
    if args.max_concurrent_trials is not None and args.max_concurrent_trials < 1:
        raise HarnessError(f"--max-concurrent-trials {args.max_concurrent_trials}: must be at least 1")
    return plan


def ray_options(args):
    from harness.ray_executor import RayOptions, check_address

    if args.address:
        check_address(args.address)
    gpus = args.gpus_per_worker
    if gpus is None:
        import torch

        gpus = 1 if torch.cuda.is_available() and not args.address else 0
    if gpus < 0:
        raise HarnessError(f"--gpus-per-worker {gpus}: must be 0 or more")
    if args.dashboard and importlib.util.find_spec("aiohttp") is None:
        raise HarnessError("--dashboard needs Ray's dashboard packages: pip install 'ray[default]'")
    return RayOptions(
        address=args.address,
        storage=args.storage,
        workers=args.workers_per_trial,
        gpus=gpus,
        max_concurrent=args.max_concurrent_trials,
        retries=args.retries,
        quiet=args.quiet,
        dashboard=args.dashboard,
    )


def cmd_run(loaded, args, console: Console) -> int:
    from harness import plugins as plugin_loader
    from harness.rundir import check_output_dir, new_run_dir, read_plan, write_plan

    if args.resume:
        run_dir = Path(args.resume)
        plan = read_plan(run_dir)
        loaded = plugin_loader.load(tuple(args.plugin) + tuple(plan.trials[0].plugins)) if plan.trials else loaded
        console.print(f"resuming {len(plan.trials)} trial(s) in {run_dir}")
        return _execute(plan, run_dir, loaded, args, console)
    check_output_dir(Path(args.output_dir))
    plan = plan_from_args(loaded, args, args.seeds)
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    if args.executor == "ray":
        ray_options(args)  # refuses a bad --address before a run directory exists
    run_dir = new_run_dir(Path(args.output_dir), args.suite)
    write_plan(plan, run_dir)
    console.print(f"{len(plan.trials)} trial(s) -> {run_dir}")
    return _execute(plan, run_dir, loaded, args, console)


def _execute(plan, run_dir: Path, loaded, args, console: Console) -> int:
    from harness.runner import run_local

    try:
        if args.executor == "ray":
            from harness.ray_executor import run_ray

            records = run_ray(plan, run_dir, console, ray_options(args), args.retrain_teachers)
        else:
            records = run_local(plan, run_dir, loaded, console, args.quiet, args.retrain_teachers, args.retries)
    except KeyboardInterrupt:
        console.print(f"interrupted: `harness run --resume {run_dir}` finishes the run from the last epoch")
        raise
    write_report(loaded, [run_dir], run_dir / "report", None, console)
    failed = sum(r["status"] != "completed" for r in records)
    console.print(f"records: {run_dir}/trials/*/record.json; log: {run_dir}/run.log", soft_wrap=True)
    return 1 if failed else 0


def write_report(loaded, run_dirs: list[Path], out: Path, formats: list[str] | None, console: Console) -> None:
    from harness.render import rich_tables
    from harness.report import build

    reporters = [loaded.reporters.get(f) for f in formats] if formats else [e.obj for e in loaded.reporters]
    report = build(run_dirs)
    for table in rich_tables(report):
        console.print(table)
    for reporter in reporters:
        reporter.write(report, out)
    console.print(f"report: {out}/ ({', '.join(r.name for r in reporters)})", soft_wrap=True)


def cmd_report(loaded, args, console: Console) -> int:
    run_dirs = [Path(d) for d in args.run_dirs]
    for d in run_dirs:
        if not (d / "trials").is_dir():
            raise HarnessError(f"{d} holds no trials/ directory; give a directory that `harness run` created")
        if (d / "search.csv").exists():  # its trials differ in hyper-parameters, not only in seed
            raise HarnessError(
                f"{d} is a `harness tune` run: its table is {d}/search.csv; compare objectives by running "
                f"the best config over seeds (`harness run --config {d}/best.yaml --seeds 1,2,3`)"
            )
    if args.output is None and len(run_dirs) > 1:
        raise HarnessError("several runs need --output DIR for the combined report")
    write_report(loaded, run_dirs, Path(args.output) if args.output else run_dirs[0] / "report", args.formats, console)
    return 0


def cmd_list(loaded, console: Console, details: str | None) -> int:
    if details:
        return _details(loaded, console, details)
    for title, registry in (
        ("Objectives", loaded.objectives),
        ("Models", loaded.models),
        ("Suites", loaded.suites),
        ("Reporters", loaded.reporters),
        ("Trackers", loaded.trackers),
    ):
        t = Table(title=title, title_justify="left")
        for col in ("name", "from", "description"):
            t.add_column(col)
        for e in registry:
            t.add_row(e.name, e.source, e.description)
        console.print(t)
    return 0


def _details(loaded, console: Console, name: str) -> int:
    if name in loaded.objectives:
        cls = loaded.objectives.get(name)
        console.print(f"[bold]{name}[/] ({loaded.objectives.entry(name).source}): {cls.description}")
        console.print(f"needs: {', '.join(sorted(cls.needs))}")
        t = Table("hyper-parameter", "default", "meaning", title=f"set with --objective-args {name}.KEY=VALUE")
        for h in cls.hparams:
            t.add_row(h.name, repr(h.default), h.help)
        console.print(t)
    elif name in loaded.suites:
        suite = loaded.suites.get(name)
        t = Table("task", "labels", "pair", "metrics", "dev splits", title=f"suite {name}: {suite.description}")
        for task in suite.tasks:
            t.add_row(
                task.name,
                ", ".join(task.label_names),
                str(task.pair),
                ", ".join(task.metrics),
                ", ".join(task.dev_splits),
            )
        console.print(t)
    elif name in loaded.models or name.endswith(":half") and name[: -len(":half")] in loaded.models:
        from harness.models import resolve

        spec, source = resolve(name, loaded.models), loaded.models.entry(name.removesuffix(":half")).source
        layers = f"{spec.layers} layers" if spec.layers else "layers known once loaded"
        console.print(
            f"[bold]{name}[/] ({source}): {spec.description}; {layers}; defaults: {spec.defaults or 'none'}",
            soft_wrap=True,
        )
    else:
        known = loaded.objectives.names() + loaded.suites.names() + loaded.models.names()
        raise HarnessError(f"nothing named {name!r}; known names: {', '.join(known)}")
    return 0


def cmd_env(loaded, console: Console) -> int:
    import torch

    from harness.data import cache_root
    from harness.results import git_commit, versions

    t = Table("what", "value", title="harness env")
    for k, v in versions().items():
        t.add_row(k, str(v))
    t.add_row("git commit", str(git_commit()))
    t.add_row("cuda devices", str(torch.cuda.device_count()))
    t.add_row("torch threads", str(torch.get_num_threads()))
    t.add_row("cache", str(cache_root()))
    t.add_row("HARNESS_GLUE_DIR", os.environ.get("HARNESS_GLUE_DIR", "(unset: GLUE from the Hub)"))
    console.print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
