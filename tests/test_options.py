"""Options merge as data: defaults < --config YAML < command line, each value converted one way
whichever source gave it, and checked once."""

import pytest

from harness.cli import build_parser, main
from harness.errors import HarnessError
from harness.options import Options, default


def _options(tmp_path, yaml_text: str | None, *argv: str) -> Options:
    args = build_parser().parse_args(["run", *argv])
    given = {k: v for k, v in vars(args).items() if k not in ("func", "command", "config")}
    config = None
    if yaml_text is not None:
        config = tmp_path / "c.yaml"
        config.write_text(yaml_text)
    return Options.merge("run", given, str(config) if config else None)


def test_command_line_beats_file_beats_defaults(tmp_path):
    yaml_text = "epochs: 2\nseeds: [4, 5]\nobjectives: [ce, cmi_min]\nobjective_args: {cmi_min: {lambda: 0.5}}\n"
    opts = _options(tmp_path, yaml_text, "--epochs", "1")
    assert opts.epochs == 1  # the command line
    assert opts.seeds == [4, 5]  # the file
    assert opts.objectives == ["ce", "cmi_min"]
    assert opts.objective_args == {"cmi_min": {"lambda": 0.5}}  # data, not re-parsed text
    assert opts.batch_size == default("batch_size") == 32  # the default


def test_command_line_objective_and_task_args_add_to_the_files_key_by_key(tmp_path):
    """`--config study.yaml --objective-args cmi_min.temperature=0.1` changes one hyper-parameter of the
    file's cmi_min, not all of them (it once replaced the file's lambda, beta and space wholesale)."""
    yaml_text = "objective_args: {cmi_min: {lambda: 1.0, space: features}}\ntask_args: {sentiment: {epochs: 2}}\n"
    opts = _options(
        tmp_path,
        yaml_text,
        "--objective-args",
        "cmi_min.temperature=0.1,ce.label_smoothing=0.1",
        "--task-args",
        "sentiment.lr=1e-3",
    )
    assert opts.objective_args == {
        "cmi_min": {"lambda": 1.0, "space": "features", "temperature": "0.1"},
        "ce": {"label_smoothing": "0.1"},
    }
    assert opts.task_args == {"sentiment": {"epochs": 2, "lr": "1e-3"}}


def test_a_setting_in_a_file_carries_its_own_objective_args_and_seeds(tmp_path, loaded):
    """Two doses of one objective in one run, each with its own seeds, as the strength study needs."""
    yaml_text = (
        "suite: smoke\ntasks: [sentiment]\nseeds: [1, 2, 3]\nobjective_args: {cmi_min: {beta: 0.2}}\n"
        "setting:\n  - {model: tiny, objectives: [ce, cmi_min], objective_args: {cmi_min: {lambda: 1.0}}}\n"
        "  - {model: tiny, objectives: [cmi_min], objective_args: {cmi_min: {lambda: 3.0}}, seeds: [1, 2]}\n"
    )
    plan = _options(tmp_path, yaml_text).plan(loaded, [1, 2, 3], check_model=False)
    doses = sorted(
        (t.objective_args.get("lambda"), t.objective_args.get("beta"), t.seed)
        for t in plan.trials
        if t.objective == "cmi_min"
    )
    assert doses == [(1.0, 0.2, 1), (1.0, 0.2, 2), (1.0, 0.2, 3), (3.0, 0.2, 1), (3.0, 0.2, 2)]
    assert sorted(t.seed for t in plan.trials if t.objective == "ce") == [1, 2, 3]
    bad = "setting:\n  - {model: tiny, objectives: [ce], objective_args: {cmi_min: {lambda: 1.0}}}\n"
    with pytest.raises(HarnessError, match="'cmi_min' is not among"):
        _options(tmp_path, bad).plan(loaded, [1], check_model=False)


def test_a_value_means_the_same_from_either_source(tmp_path):
    from_file = _options(
        tmp_path,
        "tasks: [sentiment]\nseeds: [1, 2]\nlr: 5.0e-4\ntask_args: {sentiment: {seeds: [1, 2, 3], epochs: 2}}\n"
        "setting: [{model: tiny, objectives: [ce, cmi_min]}]\ntracker: [tensorboard]\nquiet: true\n",
    )
    from_line = _options(
        tmp_path,
        None,
        "--tasks",
        "sentiment",
        "--seeds",
        "1,2",
        "--lr",
        "5e-4",
        "--task-args",
        "sentiment.seeds=1+2+3,sentiment.epochs=2",
        "--setting",
        "tiny=ce,cmi_min",
        "--tracker",
        "tensorboard",
        "--quiet",
    )
    same = ("tasks", "seeds", "lr", "setting", "tracker", "quiet")
    assert {k: getattr(from_file, k) for k in same} == {k: getattr(from_line, k) for k in same}
    from harness.plugins import load

    plugins = load(())
    plans = [o.plan(plugins, o.seeds, check_model=False) for o in (from_file, from_line)]
    assert [c.trial_id() for c in plans[0].trials] == [c.trial_id() for c in plans[1].trials]
    assert len(plans[0].trials) == 2 * 3  # two objectives, the task's own three seeds


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("epochs: 2.5\n", r"--config .*c\.yaml: epochs: 2\.5 is not a whole number"),
        ("lr: .inf\n", r"lr: inf is not a finite number"),
        ("seeds: [1, two]\n", r"seeds: seed 'two' is not an integer"),
        ("quiet: maybe\n", r"quiet: 'maybe': expected true or false"),
        ("objective_args: {cmi_min: 0.1}\n", r"objective_args: --objective-args: cmi_min: expected a mapping"),
        ("executor: gpu\n", r"--executor gpu: must be one of ray, local"),
        ("resume: runs/x\n", r"unknown option 'resume'"),
        ("search: [lr=choice:1e-3]\n", r"unknown option 'search'"),  # a tune option, in a run's file
        ("retries: -1\n", r"--retries -1: must be 0 or more"),
    ],
)
def test_a_bad_value_in_a_file_is_refused_naming_it(tmp_path, yaml_text, message):
    with pytest.raises(HarnessError, match=message):
        _options(tmp_path, yaml_text)


def test_every_option_of_a_command_has_its_flag(capsys):
    """The parser and Options list the same options: a YAML key is a flag's long name."""
    from dataclasses import fields

    for command in ("run", "tune"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        shown = capsys.readouterr().out
        for f in fields(Options):
            if command in f.metadata.get("commands", ()):
                assert f"--{f.name.replace('_', '-')}" in shown, (command, f.name)


def test_a_resumed_run_executes_as_it_did_unless_told_otherwise(tmp_path):
    """run.json keeps how the trials executed; --resume takes it over, the command line still wins.
    (A study started with `executor: local` in its file was resumed on Ray, which runs all tasks'
    first stage before any second one, instead of task by task.)"""
    from harness.config import Plan, TrialConfig
    from harness.rundir import RunDir

    started = Options.merge("run", {"executor": "local", "retries": 2, "epochs": 1})
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    cfg = TrialConfig(suite="smoke", task="sentiment", objective="ce", model="tiny", seed=1)
    run.write_plan(Plan([cfg]), options=started.execution())
    resumed = Options.merge("run", {"resume": str(run.path)})
    assert (resumed.executor, resumed.retries) == ("local", 2)
    assert resumed.epochs == default("epochs")  # not an execution option: the plan has the trials' own
    again = Options.merge("run", {"resume": str(run.path), "executor": "ray"})
    assert (again.executor, again.retries) == ("ray", 2)


def test_ray_runs_as_many_trials_at_once_as_fit():
    """The default of --max-concurrent-trials: trials whose workers fit in the cluster's CPUs (and GPUs).
    Without it Tune started every trial of a stage at once (72 Ray processes on 2 cores)."""
    from harness.ray_executor import RayOptions, fits

    assert fits(RayOptions(), threads=2, resources={"CPU": 3.0}) == 1
    assert fits(RayOptions(), threads=1, resources={"CPU": 3.0}) == 3
    assert fits(RayOptions(workers=2), threads=4, resources={"CPU": 3.0}) == 1  # at least one
    assert fits(RayOptions(gpus=1), threads=1, resources={"CPU": 16.0, "GPU": 2.0}) == 2
    assert fits(RayOptions(gpus=0.5), threads=2, resources={"CPU": 16.0, "GPU": 1.0}) == 2


@pytest.mark.parametrize("command", ["run", "tune"])
def test_every_flag_with_a_default_states_it_in_its_help_from_the_options_dataclass(command):
    """Defaults live in harness.options alone: the help reads them, so they cannot drift apart."""
    import dataclasses

    from harness.arguments import shown
    from harness.cli import build_parser
    from harness.options import Options, default

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    fields = {f.name for f in dataclasses.fields(Options)}
    checked = 0
    for action in sub._actions:
        value = default(action.dest, command) if action.dest in fields else None
        if value in (None, False, [], {}) or action.dest in ("executor",):  # executor: from the environment
            continue
        assert f"default: {shown(value)}" in action.help, (action.dest, action.help)
        checked += 1
    assert checked >= 12
