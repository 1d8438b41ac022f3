"""Plans of several settings and per-task settings: from the command line and from a config file."""

import json
import textwrap

import pytest
import yaml

from harness.cli import parse
from harness.planner import make_plan
from tests.helpers import SMALL_DATA_FLAGS


def _plan(loaded, argv):
    _, opts = parse(["run", *argv])
    return opts.plan(loaded, opts.seeds)


def test_config_file_sets_options_and_the_command_line_wins(cli, tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(
        textwrap.dedent("""
        tasks: [sentiment]
        objectives: [cmi_min]
        seeds: [1]
        epochs: 2
        objective_args:
          cmi_min: {lambda: 0.3, beta: 0.02}
    """)
    )
    args = ["--config", str(path), "--epochs", "1", *SMALL_DATA_FLAGS]
    code, _, err = cli("run", *args, "--output-dir", str(tmp_path / "o"), "--quiet")
    assert code == 0, err
    (record,) = (tmp_path / "o").glob("*/trials/*/record.json")
    r = json.loads(record.read_text())
    assert r["config"]["task"] == "sentiment" and r["config"]["epochs"] == 1  # the flag beat the file's 2
    assert r["hparams"]["lambda"] == 0.3 and r["hparams"]["beta"] == 0.02


def test_a_config_with_two_settings_and_per_task_settings(loaded, tmp_path):
    study = {
        "suite": "smoke",
        "setting": [
            {"model": "tiny", "objectives": ["ce", "cmi_min"]},
            {"model": "tiny:half", "objectives": ["ce", "kd", "cmi_max_kd"], "teacher_model": "tiny"},
        ],
        "seeds": [1, 2],
        "epochs": 2,
        "task_args": {"nli": {"epochs": 4, "lr": 1e-3, "seeds": [1, 2, 3]}},
        "objective_args": {"cmi_min": {"lambda": 0.5}, "kd": {"alpha": 0.9}},
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    plan = _plan(loaded, ["--config", str(tmp_path / "study.yaml")])
    students = [c for c in plan.trials if not c.save_teacher]
    # tiny's ce arm is exactly the first stage of the students' teachers: trained once, as the teacher
    assert {(c.model, c.objective) for c in students} == {
        ("tiny", "cmi_min"),
        ("tiny:half", "ce"),
        ("tiny:half", "kd"),
        ("tiny:half", "cmi_max_kd"),
    }
    assert len(students) == 4 * (2 + 3)  # sentiment: seeds 1, 2; nli: seeds 1, 2, 3
    assert sorted({c.seed for c in students if c.task == "nli"}) == [1, 2, 3]
    first_student = plan.trials.index(students[0])
    assert all(c.save_teacher for c in plan.trials[:first_student])  # every teacher first
    for c in plan.trials:
        assert (c.epochs, c.lr) == ((4, 1e-3) if c.task == "nli" else (2, None)) or c.init_from  # 1-epoch stages
    by = {(c.model, c.objective): c for c in students if c.task == "nli"}
    assert by[("tiny", "cmi_min")].objective_args["lambda"] == 0.5 and by[("tiny:half", "kd")].objective_args[
        "alpha"
    ] == pytest.approx(0.9)


def test_settings_on_the_command_line(loaded):
    plan = _plan(loaded, ["--setting", "tiny=ce", "--setting", "tiny:half=kd@tiny", "--seeds", "1", "--tasks", "nli"])
    assert [(c.model, c.objective, c.save_teacher) for c in plan.trials] == [
        ("tiny", "ce", True),
        ("tiny", "ce", True),
        ("tiny:half", "kd", False),
    ]  # tiny's ce arm is the teacher's first stage


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--task-args", "rte.epochs=3"], "'rte' is not among the suite's tasks (sentiment, nli)"),
        (["--task-args", "nli.seed=3"], "'seed' is not a per-task setting"),
        (["--task-args", "nli.epochs=x"], "'x' is not a whole number"),
        (["--task-args", "nli.epochs=0"], "--epochs 0: must be at least 1"),
        (["--task-args", "epochs=3"], "write TASK.SETTING=VALUE"),
        (["--setting", "tiny=ce", "--objective-args", "kd.alpha=0.5"], "'kd' is not among --objectives"),
    ],
)
def test_bad_per_task_settings_get_one_line(cli, tmp_path, argv, message):
    code, _, err = cli("run", *argv, "--output-dir", str(tmp_path))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_a_malformed_setting_is_refused(cli, tmp_path):
    code, _, err = cli("run", "--setting", "tiny", "--output-dir", str(tmp_path))
    assert code == 2 and "write MODEL=OBJ,OBJ[@TEACHER]" in err


def test_a_dev_subsample_is_fixed_recorded_and_reported(cli, tmp_path):
    args = ["--tasks", "nli", "--seeds", "1,2", "--epochs", "1", "--max-dev-samples", "40", "--quiet"]
    code, _, err = cli("run", *args, "--max-train-samples", "256", "--output-dir", str(tmp_path))
    assert code == 0, err
    (run_dir,) = tmp_path.iterdir()
    from harness.report import build
    from harness.results import read_predictions, trial_records

    records = trial_records(run_dir)
    assert all(r["data"]["dev_examples"] == {"validation": 40} for r in records)
    ids = [
        read_predictions(run_dir / "trials" / r["trial_id"] / r["predictions"])["validation"]["idx"] for r in records
    ]
    assert (ids[0] == ids[1]).all()  # the same examples for every seed
    rows = records[0]["data"]["dev_rows"]["validation"]
    (data,) = build([run_dir]).tables["data"].itertuples()
    assert data.dev == f"validation: 40 used (a fixed sample) of {rows:,} rows (no official size known)"


def test_a_dev_set_held_out_from_train_is_fixed_disjoint_recorded_and_reported(cli, tmp_path):
    """--dev-from-train 60: the same 60 training rows are every trial's dev set, none of them is
    trained on, the record and the report say so; --feature-cmi-temperature measures feature CMI
    on a ce trial (the control of a space=features arm)."""
    args = ["--tasks", "sentiment", "--objectives", "ce", "--seeds", "1,2", "--epochs", "1", "--quiet"]
    more = ["--dev-from-train", "60", "--feature-cmi-temperature", "0.5", "--max-train-samples", "200"]
    code, _, err = cli("run", *args, *more, "--output-dir", str(tmp_path))
    assert code == 0, err
    (run_dir,) = tmp_path.iterdir()
    from harness import plugins
    from harness.data import hold_out
    from harness.report import build
    from harness.results import read_predictions, trial_records

    records = trial_records(run_dir)
    assert all(r["data"]["dev_examples"] == {"validation": 60} and r["data"]["dev_from_train"] == 60 for r in records)
    dev_ids = [
        read_predictions(run_dir / "trials" / r["trial_id"] / r["predictions"])["validation"]["idx"] for r in records
    ]
    assert (dev_ids[0] == dev_ids[1]).all()
    suite = plugins.load(()).suites.get("smoke")
    task = suite.task("sentiment")
    splits = hold_out(dict(suite.load(task, None).splits), task, 60)
    assert not set(splits["train"]["idx"]) & set(splits["validation"]["idx"])  # held out: never trained on
    assert sorted(splits["validation"]["idx"]) == sorted(dev_ids[0].tolist())
    assert all("cmi_features" in r["final"]["validation"] for r in records)  # measured on ce trials too
    report = build([run_dir])
    (data,) = report.tables["data"].itertuples()
    assert data.dev == "60 rows held out from the training data (not an official dev split)"
    assert any("held out from the training data" in n for n in report.notes)
    assert set(report.tables["cmi"]["space"]) == {"posterior", "features"}
    code, _, err = cli("run", *args, "--dev-from-train", "10000000", "--output-dir", str(tmp_path / "x"))
    assert code == 2 and "has only" in err and "hold out fewer" in err


def test_an_unset_later_field_leaves_trial_ids_as_they_were(loaded):
    """Trial ids recorded by earlier versions (the committed first GLUE study, 2026-11) are what today's
    code computes from their configs: a field added since, left unset, changes no id, so teachers and
    `--reuse` still find those trials; a field set changes it."""
    from pathlib import Path

    from harness.config import TrialConfig
    from harness.results import read_json

    study = Path(__file__).parent.parent / "reports" / "glue_cpu_study" / "trials"
    records = [read_json(p) for p in sorted(study.glob("*/record.json"))[:40]]
    assert len(records) == 40
    for r in records:
        assert TrialConfig.from_dict(r["config"]).trial_id() == r["trial_id"]
    cfg = TrialConfig.from_dict(records[0]["config"])
    for field, value in (("max_dev_samples", 10), ("dev_from_train", 100), ("grad_accum", 2), ("peft", {"r": 8})):
        assert TrialConfig.from_dict({**cfg.to_dict(), field: value}).trial_id() != cfg.trial_id(), field


def test_a_study_config_narrowed_by_tasks_keeps_the_other_tasks_settings_unused(loaded):
    """`harness run --config benchmarks/paper_cpu.yaml --tasks cola`: the file's settings for the
    other tasks are the suite's tasks, so not refused, and do not touch the task that runs."""
    task_args = {"sentiment": {"epochs": "5", "seeds": [7]}, "nli": {"lr": "1e-4"}}
    plan = make_plan(loaded, "smoke", ["nli"], ["ce"], "tiny", [1], None, False, task_args=task_args, epochs=2)
    assert [(c.task, c.epochs, c.lr, c.seed) for c in plan.trials] == [("nli", 2, 1e-4, 1)]
