"""The Ray path: each trial a Ray Tune trial that trains in its own process (one worker) or runs a Ray
Train TorchTrainer of DeepSpeed workers (several), on a local Ray of this machine's CPUs (2 on CI)."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import yaml
from rich.console import Console

from harness.planner import make_plan
from harness.ray_executor import RayOptions, run_ray
from harness.results import read_json
from harness.rundir import RunDir
from harness.runner import run_local
from tests.helpers import NO_DROPOUT, SMALL_DATA, SMALL_DATA_FLAGS, tensorboard_scalars

pytestmark = pytest.mark.ray

QUIET = Console(quiet=True)


def _dicts(records):
    return [r.to_dict() for r in records]


def test_a_four_trial_grid_gives_the_records_of_the_local_executor(loaded, tmp_path):
    plan = make_plan(
        loaded, "smoke", ["sentiment"], ["ce", "cmi_min"], "tiny", [1, 2], check_model=False, epochs=2, threads=1,
        **SMALL_DATA,
    )  # fmt: skip
    local = _dicts(run_local(plan, RunDir(tmp_path / "local"), loaded, QUIET, quiet=True))
    store = tmp_path / "storage"  # --storage: where Ray keeps its experiment state
    remote = _dicts(
        run_ray(plan, RunDir(tmp_path / "ray"), QUIET, RayOptions(max_concurrent=2, quiet=True, storage=str(store)))
    )
    assert [r["status"] for r in remote] == ["completed"] * 4
    for a, b in zip(local, remote, strict=True):
        assert a["trial_id"] == b["trial_id"]
        assert a["epochs"] == b["epochs"] and a["final"] == b["final"]  # the same numbers, bit for bit
        assert (tmp_path / "ray" / "trials" / a["trial_id"] / "worker-0.log").exists()
    log = (tmp_path / "ray" / "run.log").read_text()
    assert log.count("epoch 2, accuracy") == 4 and log.count("✓") == 4
    # --storage holds the run: Ray's state and every trial's files, fetched back into the run directory
    assert len(list(store.glob("*/ray/stage0/*/result.json"))) == 4 and not (tmp_path / "ray" / "ray").exists()
    for r in remote:
        stored = store / (tmp_path / "ray").name / "trials" / r["trial_id"]
        assert (stored / "record.json").read_bytes() == (
            tmp_path / "ray" / "trials" / r["trial_id"] / "record.json"
        ).read_bytes()


def test_a_student_runs_after_its_teacher_and_matches_the_local_executor(loaded, tmp_path):
    def plan_in(store):
        return make_plan(
            loaded, "smoke", ["sentiment"], ["kd"], "tiny", [1], check_model=False, epochs=1, threads=1,
            teacher_model="tiny", teacher_store=str(store), **SMALL_DATA,
        )  # fmt: skip

    local = _dicts(run_local(plan_in(tmp_path / "t1"), RunDir(tmp_path / "local"), loaded, QUIET, quiet=True))
    remote = _dicts(run_ray(plan_in(tmp_path / "t2"), RunDir(tmp_path / "ray"), QUIET, RayOptions(quiet=True)))
    assert [r["config"]["save_teacher"] for r in remote] == [True, True, False]  # teacher stages first
    assert [r["status"] for r in remote] == ["completed"] * 3
    for a, b in zip(local, remote, strict=True):
        assert a["epochs"] == b["epochs"]
    assert (tmp_path / "t2" / remote[0]["trial_id"] / "record.json").exists()  # in the teacher store
    assert (tmp_path / "ray" / "trials" / remote[0]["trial_id"] / "record.json").exists()  # shown in the run


FLAKY = """
import os
import torch
import torch.nn.functional as F
from harness import LossOutput, Objective, hookimpl

class Flaky(Objective):
    name = "flaky"
    description = "cross-entropy that raises with seed 2 and kills its process with seed 3"

    def loss(self, out):
        if torch.initial_seed() == 2:
            raise RuntimeError("flaky objective: seed 2 is cursed")
        if torch.initial_seed() == 3:
            os._exit(1)  # as the kernel's OOM killer would
        return LossOutput(F.cross_entropy(out.logits, out.labels))

@hookimpl
def harness_objectives():
    return [Flaky]
"""


def test_a_trial_that_raises_or_dies_fails_alone_after_its_retries(cli, tmp_path, monkeypatch):
    (tmp_path / "flaky_plugin.py").write_text(FLAKY)
    monkeypatch.syspath_prepend(str(tmp_path))  # here only: the workers get it through Ray's runtime env
    out = tmp_path / "runs"
    args = ["--tasks", "sentiment", "--objectives", "flaky", "--seeds", "1,2,3,4", "--epochs", "1", "--threads", "1"]
    args += SMALL_DATA_FLAGS
    code, stdout, _ = cli(
        "--plugin", "flaky_plugin", "run", "--executor", "ray", *args, "--retries", "1", "--output-dir", str(out)
    )
    assert code == 1  # a trial failed
    (run_dir,) = out.iterdir()
    records = {r["config"]["seed"]: r for r in map(read_json, run_dir.glob("trials/*/record.json"))}
    assert {s: r["status"] for s, r in records.items()} == {1: "completed", 2: "failed", 3: "failed", 4: "completed"}
    assert "RuntimeError: flaky objective: seed 2 is cursed" in records[2]["error"]
    assert "seed 2: failed: RuntimeError: flaky objective" in stdout
    assert "its worker process has died" in records[3]["error"]  # no record of its own: the harness wrote it
    assert "seed 3: failed" in stdout
    assert (run_dir / "run.log").read_text().count("failed; retrying") == 2


@pytest.mark.parametrize("workers", [1, 2])
def test_asha_stops_a_poor_trial_early_and_the_best_config_is_saved(cli, tmp_path, monkeypatch, workers):
    """With two Ray Train workers, each taking 2 accumulation steps of 8 examples, the completed trial
    also follows the loss curve of one worker's batch of 32 (a model without dropout, so that the
    workers' random streams cannot differ), and DeepSpeed builds no op (its CPU all-reduce: 40 s, two
    compilers) though Ray Train, not the harness, opened the process group."""
    plugin, model = [], ["--model", "tiny"]
    if workers == 2:
        (tmp_path / "nodrop_plugin.py").write_text(NO_DROPOUT)
        monkeypatch.syspath_prepend(str(tmp_path))  # the workers get it through Ray's runtime env
        monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))  # where DeepSpeed would build ops
        plugin, model = ["--plugin", "nodrop_plugin"], ["--model", "tiny-nodrop", "--grad-accum", "2"]
    out = tmp_path / "runs"
    code, stdout, err = cli(
        *plugin, "tune", "--tasks", "sentiment", *model, "--search", "lr=grid:2e-3,1e-7", "--scheduler", "asha",
        "--epochs", "3", "--threads", "1", "--max-concurrent-trials", "1", "--output-dir", str(out),
        "--confirm-seeds", "2,3" if workers == 1 else "none", "--workers-per-trial", str(workers),
    )  # fmt: skip  # the confirmation runs the same code whatever the workers: checked once
    assert code == 0, err
    (run_dir,) = out.iterdir()
    table = pd.read_csv(run_dir / "search.csv").set_index("lr")
    assert table.loc[2e-3, "status"] == "completed" and table.loc[2e-3, "epochs"] == 3
    assert table.loc[1e-7, "status"] == "stopped" and table.loc[1e-7, "epochs"] == 1  # 1 of 3 epochs
    selection = "accuracy (selection score: dev, used to choose)"
    assert table.loc[1e-7, selection] < table.loc[2e-3, selection]
    best = yaml.safe_load((run_dir / "best.yaml").read_text())
    assert best["lr"] == 2e-3 and best["tasks"] == ["sentiment"] and best["epochs"] == 3
    assert "stopped early after epoch 1" in stdout and "best: lr=0.002 (trial" in stdout
    # the result is the best config rerun on fresh seeds, in a run directory of its own
    confirmed = [read_json(p) for p in (run_dir / "confirm").glob("trials/*/record.json")]
    if workers == 1:
        assert sorted(r["config"]["seed"] for r in confirmed) == [2, 3]
        assert {r["config"]["lr"] for r in confirmed} == {2e-3}
        scores = [100 * r["final"]["validation"]["accuracy"] for r in confirmed]
        result = f"result: accuracy {np.mean(scores):.2f} ± {np.std(scores, ddof=1):.2f} over fresh seeds [2, 3] (n=2)"
        assert result in stdout and result in (run_dir / "best.yaml").read_text()
        assert (run_dir / "confirm" / "report" / "report.md").exists()
        # the confirmation shares the search's Ray and logs to its own run directory alone
        assert "seed 2" in (run_dir / "confirm" / "run.log").read_text()
        assert "seed 2" not in (run_dir / "run.log").read_text()
    else:
        assert not confirmed
    records = [read_json(p) for p in run_dir.glob("trials/*/record.json")]
    stopped = next(r for r in records if r["status"] == "stopped")
    assert [e["epoch"] for e in stopped["epochs"]] == [1] and "accuracy" in stopped["epochs"][0]["validation"]
    # A one-worker trial holds its CPU in the Tune trial itself, which Tune frees; with two workers Tune
    # killed the stopped trial's Train controller, so the harness released its workers' CPU (else
    # later trials would wait for it forever)
    released = [line for line in (run_dir / "run.log").read_text().splitlines() if "released the placement" in line]
    assert any(stopped["trial_id"] in line for line in released) == (workers == 2)
    if workers == 2:
        (two,) = [r for r in records if r["status"] == "completed"]
        assert (run_dir / "trials" / two["trial_id"] / "worker-1.log").exists()
        code, _, err = cli(
            *plugin, "run", "--executor", "local", "--tasks", "sentiment", "--model", "tiny-nodrop",
            "--objectives", "ce", "--lr", "2e-3", "--seeds", str(two["config"]["seed"]), "--epochs", "3",
            "--threads", "1", "--quiet", "--output-dir", str(tmp_path / "one"),
        )  # fmt: skip
        assert code == 0, err
        (one,) = [read_json(p) for p in (tmp_path / "one").glob("*/trials/*/record.json")]
        assert [e["train_loss"] for e in two["epochs"]] == pytest.approx(
            [e["train_loss"] for e in one["epochs"]], rel=1e-3
        )
        assert not (tmp_path / "ext").exists() or not any((tmp_path / "ext").iterdir())


AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")  # poll for their raylet; gone a minute or two later


def _ray_processes(pids: set[int], agents: bool = True) -> list[psutil.Process]:
    alive = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            if p.status() != psutil.STATUS_ZOMBIE and (agents or not " ".join(p.cmdline()).startswith(AGENTS)):
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


def _start(tmp_path: Path, *args: str, plugin: str | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "harness", *(["--plugin", plugin] if plugin else []), "run", "--executor", "ray"]
    cmd += ["--tasks", "sentiment", "--objectives", "ce", "--threads", "1"]
    return subprocess.Popen(
        [*cmd, *args, "--output-dir", str(tmp_path), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )


def _wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


HOLD = """
import time
from pathlib import Path

import ray
import torch.nn.functional as F
from harness import LossOutput, Objective, hookimpl

GATE, NODE = Path({gate!r}), {node!r}


class Held(Objective):
    name = "held"
    description = "cross-entropy; once GATE/hold exists, a step (on node NODE, if given) holds while it does"

    def loss(self, out):
        while (GATE / "hold").exists() and (NODE is None or ray.get_runtime_context().get_node_id() == NODE):
            (GATE / "held").touch()
            time.sleep(0.2)
        return LossOutput(F.cross_entropy(out.logits, out.labels))


@hookimpl
def harness_objectives():
    return [Held]
"""


def test_a_sigkilled_driver_resumes_without_redoing_finished_trials(cli, tmp_path, monkeypatch):
    """The driver is killed while a trial is certainly in flight: once one has finished, the next step
    any trial takes holds (a file it waits on, not a sleep), so no machine is too fast."""
    from harness import plugins as plugin_loader

    gate, runs = tmp_path / "gate", tmp_path / "runs"
    gate.mkdir()
    (tmp_path / "hold_plugin.py").write_text(HOLD.format(gate=str(gate), node=None))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    args = ["--seeds", "1,2,3", "--epochs", "2", "--max-concurrent-trials", "1", "--objectives", "held"]
    driver = _start(runs, *args, *SMALL_DATA_FLAGS, plugin="hold_plugin")
    records = lambda: list(runs.glob("*/trials/*/record.json"))  # noqa: E731
    _wait_for(lambda: len(records()) >= 1, 240, "a first finished trial")
    (gate / "hold").touch()
    _wait_for(lambda: (gate / "held").exists(), 240, "a trial held in flight")
    children = {p.pid for p in psutil.Process(driver.pid).children(recursive=True)}
    driver.send_signal(signal.SIGKILL)
    driver.wait(10)
    _wait_for(lambda: not _ray_processes(children, agents=False), 60, "Ray to go with its driver")
    for p in _ray_processes(children):  # not to leave them to the rest of the suite
        p.kill()
    (gate / "hold").unlink()
    (run_dir,) = runs.iterdir()
    finished = {p: p.read_bytes() for p in records()}
    assert 1 <= len(finished) < 3  # the held trial, at least, had not finished
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = plugin_loader.load(("hold_plugin",))
    code, out, err = cli("run", "--resume", str(run_dir), "--executor", "ray", "--quiet")  # loads its own --plugin
    assert code == 0, err
    assert all(p.read_bytes() == data for p, data in finished.items())  # not redone
    resumed = {r["trial_id"]: r for r in map(read_json, records())}
    assert len(resumed) == 3 and all(r["status"] == "completed" for r in resumed.values())
    straight = run_local(RunDir(run_dir).read_plan(), RunDir(tmp_path / "straight"), loaded, QUIET, quiet=True)
    for r in straight:  # the same numbers as a run nobody interrupted
        assert resumed[r.trial_id]["epochs"] == r.epochs


def test_ctrl_c_stops_the_run_and_ray_with_it(tmp_path):
    driver = _start(tmp_path, "--seeds", "1,2", "--epochs", "50")
    _wait_for(lambda: "started" in "".join(p.read_text() for p in tmp_path.glob("*/run.log")), 240, "a trial start")
    children = {p.pid for p in psutil.Process(driver.pid).children(recursive=True)}
    assert children  # Ray's processes
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 130, err
    assert "harness run --resume" in err or "interrupted" in err
    _wait_for(lambda: not _ray_processes(children), 30, "Ray to shut down")


def test_an_optuna_search_samples_within_the_space(cli, tmp_path):
    code, out, err = cli(
        "tune", "--tasks", "sentiment", "--search", "lr=loguniform:1e-3:3e-3", "--search-alg", "optuna",
        "--num-samples", "2", "--epochs", "1", "--threads", "1", "--max-concurrent-trials", "2", *SMALL_DATA_FLAGS,
        "--output-dir", str(tmp_path), "--quiet", "--confirm-seeds", "none",
    )  # fmt: skip
    assert code == 0, err
    (run_dir,) = tmp_path.iterdir()
    table = pd.read_csv(run_dir / "search.csv")
    assert list(table["status"]) == ["completed"] * 2
    assert table["lr"].between(1e-3, 3e-3).all() and table["lr"].nunique() == 2
    assert yaml.safe_load((run_dir / "best.yaml").read_text())["lr"] == table["lr"].iloc[0]  # sorted best first


def test_a_config_drawn_twice_is_trained_once(cli, tmp_path):
    code, out, err = cli(
        "tune", "--tasks", "sentiment", "--search", "lr=choice:2e-3", "--num-samples", "2", "--epochs", "1",
        "--threads", "1", "--max-concurrent-trials", "2", *SMALL_DATA_FLAGS, "--output-dir", str(tmp_path), "--quiet",
        "--confirm-seeds", "none",
    )  # fmt: skip
    assert code == 0, err
    (run_dir,) = tmp_path.iterdir()
    assert len(pd.read_csv(run_dir / "search.csv")) == 1
    assert len(list(run_dir.glob("ray/search/*/result.json"))) == 2  # two Tune trials, one harness trial
    log = (run_dir / "run.log").read_text()
    assert log.count(": epoch 1, accuracy") == 2  # the second reads the first's record and reports it
    reports = [read_json(p) for p in run_dir.glob("ray/search/*/result.json")]  # one line each: one epoch
    assert len({r["score"] for r in reports}) == 1
    (worker_log,) = run_dir.glob("trials/*/worker-0.log")
    assert worker_log.read_text().count("completed earlier: its record's epochs are reported") == 1


def test_a_ray_of_its_own_whatever_ray_address_says_and_trackers_log_from_its_workers(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")  # someone else's (here: nobody's) cluster
    code, _, err = cli(
        "run", "--executor", "ray", "--tasks", "sentiment", "--objectives", "ce", "--seeds", "1", "--epochs", "1",
        "--threads", "1", *SMALL_DATA_FLAGS,
        "--tracker", "tensorboard", "--output-dir", str(tmp_path), "--quiet",
    )  # fmt: skip
    assert code == 0, err  # without --address the harness started a Ray of its own
    (record,) = tmp_path.glob("*/trials/*/record.json")
    assert read_json(record)["status"] == "completed"
    scalars = tensorboard_scalars(record.parent / "tensorboard")  # written inside the Ray trial
    assert dict(scalars["validation/accuracy"])[1] == pytest.approx(
        read_json(record)["final"]["validation"]["accuracy"]
    )


def _terminated_lrs(states) -> set[float]:
    """The learning rates of the trials that Tune's experiment state files record as finished."""
    lrs = set()
    for path in states:
        for trial, _ in json.loads(path.read_text())["trial_data"]:
            trial = json.loads(trial) if isinstance(trial, str) else trial
            if trial["status"] == "TERMINATED":
                lrs.add(trial["config"]["lr"])
    return lrs


def test_a_sigkilled_search_resumes_with_tunes_restore_without_retraining(cli, tmp_path):
    cmd = [sys.executable, "-m", "harness", "tune", "--tasks", "sentiment", "--search", "lr=grid:2e-3,1e-3,5e-4,3e-4"]
    cmd += ["--epochs", "2", "--threads", "1", "--max-concurrent-trials", "1", "--confirm-seeds", "2", "--quiet"]
    cmd += SMALL_DATA_FLAGS
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "1"}  # Tune saves its experiment state every second
    driver = subprocess.Popen(
        [*cmd, "--output-dir", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    records = lambda: list(tmp_path.glob("*/trials/*/record.json"))  # noqa: E731
    state = lambda: "".join(p.read_text() for p in tmp_path.glob("*/ray/search/experiment_state*.json"))  # noqa: E731
    # killed once Tune's own experiment state holds a finished trial, so that there is something to restore
    _wait_for(lambda: records() and "TERMINATED" in state(), 240, "a finished trial in Tune's experiment state")
    children = {p.pid for p in psutil.Process(driver.pid).children(recursive=True)}
    driver.send_signal(signal.SIGKILL)
    driver.wait(10)
    _wait_for(lambda: not _ray_processes(children, agents=False), 60, "Ray to go with its driver")
    for p in _ray_processes(children):
        p.kill()
    (run_dir,) = tmp_path.iterdir()
    finished = {p: p.read_bytes() for p in records()}
    assert 1 <= len(finished) < 4 and not (run_dir / "search.csv").exists()
    known = _terminated_lrs(run_dir.glob("ray/search/experiment_state*.json"))  # what Tune's saved state knew
    assert known

    code, out, err = cli("tune", "--resume", str(run_dir), "--quiet")
    assert code == 0, err
    assert all(p.read_bytes() == data for p, data in finished.items())  # not retrained
    for p in finished:  # those Tune's saved state knew finished are not even replayed: its restore skips them
        if read_json(p)["config"]["lr"] in known:  # (a trial that finished after the state's last save is
            assert "completed earlier" not in (p.parent / "worker-0.log").read_text()  # replayed from its record)
    table = pd.read_csv(run_dir / "search.csv")
    assert sorted(table["lr"]) == [3e-4, 5e-4, 1e-3, 2e-3] and list(table["status"]) == ["completed"] * 4
    assert len(list(run_dir.glob("ray/search/*/result.json"))) == 4  # the same four Tune trials, restored
    (confirmed,) = [read_json(p) for p in (run_dir / "confirm").glob("trials/*/record.json")]
    assert confirmed["config"]["seed"] == 2 and confirmed["config"]["lr"] == table["lr"].iloc[0]
    assert "best: lr=" in out and (run_dir / "best.yaml").exists()


def test_a_two_node_cluster_runs_trials_on_both_and_a_lost_node_costs_only_a_retry(tmp_path, monkeypatch):
    """A real cluster of two raylets on this machine (head and second node, 1 CPU each, distinct custom
    resources), driven by `harness run --address` as a user would drive `ray start` nodes. The second
    node is lost while one of its trials is certainly in flight: once a trial has finished there,
    the next step it takes blocks (a file the trial waits on, not a sleep), so no machine is too fast."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"head": 1}})
    try:
        second = cluster.add_node(num_cpus=1, resources={"second": 1})
        cluster.wait_for_nodes()
        head_id, second_id = cluster.head_node.node_id, second.node_id
        gate, runs = tmp_path / "gate", tmp_path / "runs"
        gate.mkdir()
        (tmp_path / "hold_plugin.py").write_text(HOLD.format(gate=str(gate), node=second_id))
        monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        args = ["--address", cluster.address, "--seeds", "1,2,3,4,5,6", "--epochs", "2", "--retries", "1"]
        args += SMALL_DATA_FLAGS  # the gate, not the data's size, keeps node 2's trial in flight
        driver = _start(runs, *args, "--objectives", "held", plugin="hold_plugin")
        records = lambda: [read_json(p) for p in runs.glob("*/trials/*/record.json")]  # noqa: E731
        _wait_for(lambda: any(r["node"]["ray_node"] == second_id for r in records()), 240, "a trial on node 2")
        (gate / "hold").touch()  # node 2's trial in flight, or its next one, holds
        _wait_for(lambda: (gate / "held").exists(), 240, "a trial held on node 2")
        assert len(records()) < 6
        cluster.remove_node(second, allow_graceful=False)  # its raylet and workers, killed
        out, err = driver.communicate(timeout=400)
        assert driver.returncode == 0, err
        done = records()
        assert len(done) == 6 and all(r["status"] == "completed" for r in done)
        nodes = {r["node"]["ray_node"] for r in done}
        assert nodes == {head_id, second_id}  # trials landed on both
        (run_dir,) = runs.iterdir()
        state = "".join(p.read_text() for p in run_dir.glob("ray/stage0/experiment_state*.json"))
        assert re.search(r"num_failures\W+1\b", state)  # the lost node's trial, retried on the head
        # the harness disconnected from a cluster it did not start, and left it running
        import ray

        ray.init(address=cluster.address, log_to_driver=False)
        try:
            alive = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        finally:
            ray.shutdown()
        assert head_id in alive  # (the lost node stays listed until the GCS's health checks give up on it)
    finally:
        cluster.shutdown()
