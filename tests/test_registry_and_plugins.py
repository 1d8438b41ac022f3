"""Registries and plugins: unknown and duplicate names, plugins loaded with --plugin or installed
through the entry-point group (broken ones skipped with a warning), and suites whose tasks or data
break the contract refused when they load."""

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness import plugins as plugin_loader
from harness.errors import HarnessError
from harness.registry import Registry
from tests.helpers import SMALL_DATA_FLAGS

ROOT = Path(__file__).resolve().parents[1]


def test_unknown_name_lists_known_names_and_a_close_match():
    reg = Registry("objective")
    for name in ("ce", "cmi_min", "kd"):
        reg.add(name, object(), "", "here")
    with pytest.raises(HarnessError) as err:
        reg.get("cmi_mn")
    assert str(err.value) == "unknown objective 'cmi_mn'. Did you mean 'cmi_min'? Known objectives: ce, cmi_min, kd."
    with pytest.raises(HarnessError, match=r"^unknown objective 'zzz'\. Known objectives: ce, cmi_min, kd\.$"):
        reg.get("zzz")


def test_duplicate_registration_names_both_sources():
    reg = Registry("model")
    reg.add("tiny", 1, "", "pkg-a 1.0")
    with pytest.raises(HarnessError, match="registered twice, by pkg-a 1.0 and by pkg-b 2.0"):
        reg.add("tiny", 2, "", "pkg-b 2.0")


def test_builtins_register_through_the_entry_point_group(loaded):
    assert "ce" in loaded.objectives.names()
    assert {"bert-base", "distilbert-base", "minilm-l6", "tiny"} <= set(loaded.models.names())
    assert {"glue", "smoke"} <= set(loaded.suites.names())
    assert loaded.objectives.entry("ce").source.startswith("cmi-harness ")


def _module(tmp_path, monkeypatch, name, body):
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


GOOD = """
    from harness import Objective, LossOutput, hookimpl
    import torch.nn.functional as F

    class Mine(Objective):
        name = "mine"
        description = "my objective"
        def loss(self, out):
            return LossOutput(F.cross_entropy(out.logits, out.labels))

    @hookimpl
    def harness_objectives():
        return [Mine]
"""


def test_plugin_option_loads_an_uninstalled_module(tmp_path, monkeypatch):
    name = _module(tmp_path, monkeypatch, "my_local_plugin", GOOD)
    loaded = plugin_loader.load((name,))
    assert loaded.objectives.entry("mine").source == "my_local_plugin (--plugin)"


def test_plugin_option_with_a_missing_module_is_an_error():
    with pytest.raises(HarnessError, match=r"--plugin no_such_module_xyz: cannot import it"):
        plugin_loader.load(("no_such_module_xyz",))


def test_misspelled_hook_is_reported_with_a_close_match(tmp_path, monkeypatch):
    body = GOOD.replace("def harness_objectives", "def harness_objective")
    loaded = plugin_loader.load((_module(tmp_path, monkeypatch, "typo_plugin", body),))
    assert any("unknown hook 'harness_objective'; did you mean 'harness_objectives'?" in w for w in loaded.warnings)
    assert "mine" not in loaded.objectives


def test_a_raising_hook_is_skipped_with_a_warning(tmp_path, monkeypatch):
    body = GOOD.replace("return [Mine]", "raise RuntimeError('boom')")
    loaded = plugin_loader.load((_module(tmp_path, monkeypatch, "raising_plugin", body),))
    assert any("raising_plugin" in w and "RuntimeError: boom" in w for w in loaded.warnings)
    assert "ce" in loaded.objectives


def test_non_objective_class_is_refused(tmp_path, monkeypatch):
    body = GOOD.replace("return [Mine]", "return [dict]")
    loaded = plugin_loader.load((_module(tmp_path, monkeypatch, "wrong_type_plugin", body),))
    assert any("is not a subclass of harness.Objective" in w for w in loaded.warnings)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """pip-installs the README's example plugin, and a broken one, into a target directory."""
    target = tmp_path_factory.mktemp("site")
    broken = tmp_path_factory.mktemp("broken")
    (broken / "pyproject.toml").write_text(
        textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "harness-broken-plugin"
        version = "0.0.1"
        [project.entry-points.harness]
        broken = "harness_broken"
        [tool.setuptools]
        py-modules = ["harness_broken"]
    """)
    )
    (broken / "harness_broken.py").write_text("raise ImportError('this plugin is broken on purpose')\n")
    example = tmp_path_factory.mktemp("example") / "harness-example-plugin"  # pip builds in the source tree:
    shutil.copytree(ROOT / "examples" / "harness-example-plugin", example)  # a copy, so xdist workers never race
    for pkg in (example, broken):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                "--target",
                str(target),
                str(pkg),
            ],
            check=True,
            capture_output=True,
        )
    return target


def _harness(site, *args, env_extra=None, cwd=None):
    import os

    env = {**os.environ, "PYTHONPATH": str(site), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=env, cwd=cwd)


def _run_in_process(cli, site, monkeypatch, *args):
    """`harness run ARGS` in this process, with the target directory on sys.path as PYTHONPATH puts
    it there: a fresh interpreter finds the plugins (the `list` calls show it); the run need not pay
    for another start-up of torch."""
    monkeypatch.syspath_prepend(str(site))
    return cli("run", *args)


def test_installed_third_party_plugin_is_listed_and_runs(installed, cli, tmp_path, monkeypatch):
    listed = _harness(installed, "list")
    assert listed.returncode == 0, listed.stderr
    assert "focal" in listed.stdout and "harness-example-plugin 0.1.0" in listed.stdout
    assert "'broken' from harness-broken-plugin failed to load and is skipped" in listed.stderr
    code, out, err = _run_in_process(
        cli,
        installed,
        monkeypatch,
        "--objectives",
        "focal",
        "--objective-args",
        "focal.gamma=1.0",
        "--tasks",
        "sentiment",
        "--seeds",
        "1",
        "--epochs",
        "1",
        *SMALL_DATA_FLAGS,
        "--output-dir",
        str(tmp_path),
        "--quiet",
    )
    assert code == 0, err
    assert "sentiment focal seed 1" in out or "focal" in out
    (record,) = tmp_path.glob("*/trials/*/record.json")
    assert '"status": "completed"' in record.read_text()


def test_the_example_suite_plugin_runs_end_to_end(installed, cli, tmp_path, monkeypatch):
    listed = _harness(installed, "list", "--details", "negation")
    assert listed.returncode == 0 and "negated" in listed.stdout
    code, _, err = _run_in_process(
        cli,
        installed,
        monkeypatch,
        "--suite",
        "negation",
        "--objectives",
        "ce",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--output-dir",
        str(tmp_path),
        "--quiet",
    )
    assert code == 0, err
    (record,) = tmp_path.glob("*/trials/*/record.json")
    assert '"status": "completed"' in record.read_text()


def test_the_example_model_tracker_and_reporter_plugins_run_end_to_end(installed, cli, tmp_path, monkeypatch):
    """One trial of the example model, logged by the example tracker, reported by the example reporter."""
    listed = _harness(installed, "list", env_extra={"COLUMNS": "200"})  # one row per entry
    assert listed.returncode == 0, listed.stderr
    for name in ("char-bert", "distilroberta", "jsonl", "latex"):
        assert re.search(rf"│ {name} +│ harness-example-plugin 0\.1\.0 ", listed.stdout), name
    args = ("--model", "char-bert", "--tracker", "jsonl", "--tasks", "sentiment", "--objectives", "ce")
    code, _, err = _run_in_process(cli, installed, monkeypatch, *args, "--seeds", "1", "--epochs", "1",
                                   *SMALL_DATA_FLAGS, "--output-dir", str(tmp_path / "runs"), "--quiet")  # fmt: skip
    assert code == 0, err
    (run_dir,) = (p.parent for p in (tmp_path / "runs").glob("*/run.json"))
    (record,) = (json.loads(p.read_text()) for p in run_dir.glob("trials/*/record.json"))
    assert record["status"] == "completed" and record["config"]["model"] == "char-bert"
    assert record["lr"] == 2e-3  # the model's default, used

    (log,) = (tmp_path / "runs" / "jsonl").iterdir()  # the tracking directory: the output directory
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert events[0]["params"]["model"] == "char-bert"
    steps = [e for e in events if "train/loss" in e.get("metrics", {})]
    assert len(steps) == 256 // 32 and all(e["metrics"]["train/loss"] > 0 for e in steps)  # one per step
    epoch = [e["metrics"] for e in events if "validation/accuracy" in e.get("metrics", {})]  # one epoch
    assert len(epoch) == 1 and epoch[0]["validation/accuracy"] == record["final"]["validation"]["accuracy"]

    code, _, err = cli("report", str(run_dir), "--formats", "latex", "--output", str(tmp_path / "report"))
    assert code == 0, err
    tex = (tmp_path / "report" / "report.tex").read_text()
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") >= 2
    assert r"\subsection*{smoke / char-bert: dev results" in tex and "sentiment" in tex
    assert "_" not in tex.replace(r"\_", "")  # escaped


def test_autoload_switch_keeps_only_the_builtins(installed):
    listed = _harness(installed, "list", env_extra={"HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert listed.returncode == 0
    assert "focal" not in listed.stdout and "ce" in listed.stdout and "broken" not in listed.stderr


BAD_SUITES = {
    "binary metric on three classes": (
        'Task("t", ("a", "b", "c"), False, ("f1",))',
        "f1 score two classes, but the task has 3; use accuracy",
    ),
    "one label": ('Task("t", ("a",), False, ("accuracy",))', "label_names must be two or more distinct names"),
    "unknown metric": ('Task("t", ("a", "b"), False, ("auc",))', "metrics must be some of accuracy, f1, mcc"),
}


@pytest.mark.parametrize("case", sorted(BAD_SUITES))
def test_a_suite_plugin_with_a_bad_task_is_named_when_it_loads(tmp_path, monkeypatch, case):
    task, message = BAD_SUITES[case]
    name = f"bad_suite_{sorted(BAD_SUITES).index(case)}"  # a module of its own per case
    (tmp_path / f"{name}.py").write_text(
        "from harness import Suite, Task, hookimpl\n"
        f"@hookimpl\ndef harness_suites():\n    return [Suite('bad', 'bad', ({task},), lambda t, d: None)]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = plugin_loader.load((name,))
    assert "bad" not in loaded.suites
    assert any(name in w and message in w for w in loaded.warnings), loaded.warnings


CONTRACT = """
import datasets
from harness import Suite, Task, TaskData, hookimpl

def load(task, data_dir):
    rows = {"idx": [0, 1], "text_a": ["a b", "c d"], "label": [0, 1]}
    rows.update(EXTRA)
    return TaskData(datasets.DatasetDict({s: datasets.Dataset.from_dict(rows) for s in ("train", "validation")}), FP)

@hookimpl
def harness_suites():
    return [Suite("contract", "contract", (Task("t", ("a", "b"), PAIR, ("accuracy",)),), load)]
"""


@pytest.mark.parametrize(
    "extra, pair, fingerprint, message",
    [
        ("{}", True, "'x1'", "split 'train' lacks column(s) text_b"),
        ("{'label': [0, 2]}", False, "'x1'", "labels [2] outside 0..1"),
        ("{'idx': [0, 0]}", False, "'x1'", "repeats idx values"),
        ("{}", False, "''", "fingerprint must be a non-empty string"),
    ],
)
def test_a_suite_whose_data_breaks_the_contract_is_refused_before_anything_runs(
    cli, tmp_path, monkeypatch, extra, pair, fingerprint, message
):
    module = CONTRACT.replace("EXTRA", extra).replace("PAIR", str(pair)).replace("FP", fingerprint)
    name = f"contract_{abs(hash(message))}"  # a module of its own per case
    (tmp_path / f"{name}.py").write_text(module)
    monkeypatch.syspath_prepend(str(tmp_path))
    code, _, err = cli("--plugin", name, "run", "--suite", "contract", "--output-dir", str(tmp_path / "o"))
    assert code == 2 and message in err and "suite 'contract', task 't'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
