"""The commands ``run``, ``report``, ``list`` and ``env`` (``tune``: harness.tune).

Each is ``cmd_NAME(plugins, options, console) -> exit status``: ``plugins`` the loaded plugin
manager (harness.plugins), ``options`` the merged Options (run) or the parsed arguments.
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.errors import HarnessError
from harness.options import Options
from harness.rundir import RunDir, check_output_dir


def cmd_run(plugins, opts: Options, console: Console) -> int:
    if opts.resume:
        run = RunDir(opts.resume)
        plan = run.read_plan()
        if plan.trials[0].plugins:  # the run's own --plugin modules, wherever it is resumed
            from harness.plugins import load

            plugins = load(tuple(opts.plugin) + tuple(plan.trials[0].plugins))
        console.print(f"resuming {len(plan.trials)} trial(s) in {run}")
        return _execute(plan, run, plugins, opts, console)
    check_output_dir(Path(opts.output_dir))
    plan = opts.plan(plugins, opts.seeds)
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    if opts.executor == "ray":
        opts.ray()  # refuses a bad --address before a run directory exists
    earlier = [RunDir.earlier(d) for d in opts.reuse]
    run = RunDir.create(Path(opts.output_dir), plan.trials[0].suite)
    reused = {str(e): run.adopt(plan.trials, e) for e in earlier}
    run.write_plan(plan, options=opts.execution(), **({"reused": reused} if reused else {}))
    console.print(f"{len(plan.trials)} trial(s) -> {run}")
    for source, ids in reused.items():
        console.print(f"{len(ids)} of them completed in {source}: reused, not trained again", soft_wrap=True)
    return _execute(plan, run, plugins, opts, console)


def _execute(plan, run: RunDir, plugins, opts: Options, console: Console) -> int:
    try:
        if opts.executor == "ray":
            from harness.ray_executor import run_ray

            records = run_ray(plan, run, console, opts.ray(), opts.retrain_teachers)
        else:
            from harness.runner import run_local

            records = run_local(plan, run, plugins, console, opts.quiet, opts.retrain_teachers, opts.retries)
    except KeyboardInterrupt:
        console.print(f"interrupted: `harness run --resume {run}` finishes the run from the last epoch")
        raise
    write_report(plugins, [run.path], run.path / "report", None, console)
    console.print(f"records: {run}/trials/*/record.json; log: {run.log_file}", soft_wrap=True)
    kept = [r for r in records if r.kept_model]
    if kept:  # with --storage they stay in storage: the driver fetches records, not weights
        where = f"{opts.storage.rstrip('/')}/{run.path.name}" if opts.storage else str(run)
        console.print(
            f"models ({len(kept)}; `harness predict MODEL_DIR --file F`): {where}/trials/*/model/", soft_wrap=True
        )
    return 0 if all(r.completed for r in records) else 1


def write_report(
    plugins,
    run_dirs: list[Path],
    out: Path,
    formats: list[str] | None,
    console: Console,
    supersede: bool = False,
    margin: float | None = None,
) -> None:
    from harness.render import rich_tables
    from harness.report import build
    from harness.significance import MARGIN

    reporters = [plugins.reporters.get(f) for f in formats] if formats else [e.obj for e in plugins.reporters]
    targets = {e.name: e.obj.cmi_target for e in plugins.objectives}
    report = build(run_dirs, supersede, targets, (margin if margin is not None else 100 * MARGIN) / 100)
    for table in rich_tables(report):
        console.print(table)
    for reporter in reporters:
        reporter.write(report, out)
    console.print(f"report: {out}/ ({', '.join(r.name for r in reporters)})", soft_wrap=True)


def cmd_predict(plugins, args, console: Console) -> int:
    from harness.predict import glue_submission, predict

    if args.glue:
        n = glue_submission(args.model_dir, args.file, args.output, args.batch_size)
    else:
        n = predict(args.model_dir, args.file, args.output, args.text_columns, args.batch_size)
    console.print(f"{n} rows -> {args.output}", soft_wrap=True)
    return 0


def cmd_eval(plugins, args, console: Console) -> int:
    from harness.predict import evaluate_kept

    record, run = evaluate_kept(plugins, args.model_dir, args, args.batch_size)
    for split, metrics in record.final.items():
        shown = ", ".join(f"{k} {100 * v:.2f}" for k, v in metrics.items() if k in ("accuracy", "f1", "mcc"))
        console.print(f"{split}: {shown}; CMI {metrics['cmi']:.4g}, NCMI {metrics['ncmi']:.4g}", soft_wrap=True)
    console.print(f"record: {run}/trials/; `harness report {run}` reads it", soft_wrap=True)
    return 0


def cmd_report(plugins, args, console: Console) -> int:
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
    out = Path(args.output) if args.output else run_dirs[0] / "report"
    if args.equivalence_margin is not None and not args.equivalence_margin > 0:
        raise HarnessError(f"--equivalence-margin {args.equivalence_margin}: give a positive number of points, e.g. 1")
    write_report(plugins, run_dirs, out, args.formats, console, args.supersede, args.equivalence_margin)
    return 0


def cmd_list(plugins, args, console: Console) -> int:
    if args.details:
        return _details(plugins, console, args.details)
    for title, entries in (
        ("Objectives", plugins.objectives),
        ("Models", plugins.models),
        ("Suites", plugins.suites),
        ("Reporters", plugins.reporters),
        ("Trackers", plugins.trackers),
    ):
        t = Table(title=title, title_justify="left")
        for col in ("name", "from", "description"):
            t.add_column(col)
        for e in entries:
            t.add_row(e.name, e.source, e.description)
        console.print(t)
    return 0


def _details(plugins, console: Console, name: str) -> int:
    if name in plugins.objectives:
        cls = plugins.objectives.get(name)
        console.print(f"[bold]{name}[/] ({plugins.objectives.entry(name).source}): {cls.description}")
        by_setting = cls.needs_by_setting()  # e.g. cmi_min: logits, and features too with space=features
        shown = {key: ", ".join(sorted(needs, key=lambda n: (n != "logits", n))) for key, needs in by_setting.items()}
        others = "; ".join(f"{key}: {needs}" for key, needs in shown.items() if key)
        console.print(f"needs: {shown['']}" + (f" ({others})" if others else ""), soft_wrap=True)
        t = Table("hyper-parameter", "default", "meaning", title=f"set with --objective-args {name}.KEY=VALUE")
        for h in cls.hparams:
            t.add_row(h.name, repr(h.default), h.help)
        console.print(t)
    elif name in plugins.suites:
        suite = plugins.suites.get(name)
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
    elif name in plugins.models or name.endswith(":half") and name[: -len(":half")] in plugins.models:
        from harness.models import resolve

        spec, source = resolve(name, plugins.models), plugins.models.entry(name.removesuffix(":half")).source
        layers = f"{spec.layers} layers" if spec.layers else "layers known once loaded"
        console.print(
            f"[bold]{name}[/] ({source}): {spec.description}; {layers}; defaults: {spec.defaults or 'none'}",
            soft_wrap=True,
        )
    elif (Path(name.removesuffix(":half")).expanduser() / "config.json").is_file():
        import json

        from harness.models import student_layers

        folder = Path(name.removesuffix(":half")).expanduser()
        config = json.loads((folder / "config.json").read_text())
        n = config.get("num_hidden_layers") or config.get("n_layer") or config.get("n_layers")
        what = f"[bold]{name}[/]: local {config.get('model_type', 'model')} folder, {n or '?'} layers"
        if name.endswith(":half") and n:
            what += f"; the :half student keeps layers {', '.join(map(str, student_layers(n)))} (first and last kept)"
        console.print(what, soft_wrap=True)
    else:
        known = plugins.objectives.names() + plugins.suites.names() + plugins.models.names()
        raise HarnessError(f"nothing named {name!r}; known names: {', '.join(known)}, or a model folder")
    return 0


def cmd_env(plugins, args, console: Console) -> int:
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
