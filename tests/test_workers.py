"""Two gloo workers with the same global batch follow the one-worker loss curve; ZeRO-2 and ZeRO-3 trials
on two workers resume to the uninterrupted numbers."""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch.multiprocessing as mp

from harness.config import TrialConfig
from harness.planner import make_plan
from harness.results import RECORD, read_json
from harness.trial import run_trial
from tests.helpers import NO_DROPOUT, Interrupt, stop_in_epoch

pytestmark = pytest.mark.slow  # each spawns two interpreters that import torch and DeepSpeed: 12-17 s


def _join(rank: int, world: int, port: int, cache: str) -> None:
    """A launcher's environment: rank, world size, and the rendezvous store (``_store``) to join as a client."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), TORCHELASTIC_USE_AGENT_STORE="True", HARNESS_CACHE=cache)  # fmt: skip


@contextmanager
def _store() -> Iterator[int]:
    """The port of a rendezvous store this process hosts while the workers run, as torchrun's agent does
    (workers with TORCHELASTIC_USE_AGENT_STORE join it instead of rank 0 binding the port): the OS picks
    a free port and it stays held, where a port found free and released first can be taken by another
    test before rank 0 binds it (a flake seen under pytest -n 2 in an earlier session)."""
    from torch.distributed import TCPStore

    store = TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)  # closed with this frame
    yield store.port


def _worker(rank: int, world: int, port: int, config: dict, trial_dir: str, cache: str) -> None:
    _join(rank, world, port, cache)
    record = run_trial(TrialConfig.from_dict(config), trial_dir)
    assert record.completed, record.error


@pytest.mark.parametrize("objective, args", [("ce", None), ("cmi_min", {"cmi_min": {"lambda": "1", "beta": "0.1"}})])
def test_two_workers_follow_the_one_worker_loss_curve(tmp_path, monkeypatch, objective, args):
    # Without dropout the only randomness is the batch order, which both runs share: the two
    # workers' half batches must give the one worker's whole-batch curve up to float rounding.
    from harness import plugins as plugin_loader

    (tmp_path / "nodrop_plugin.py").write_text(NO_DROPOUT)
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = plugin_loader.load(("nodrop_plugin",))
    plan = make_plan(
        loaded,
        "smoke",
        ["nli"],
        [objective],
        "tiny-nodrop",
        [1],
        args,  # cmi_min: the class centroids must cover the global batch, not each worker's half
        check_model=False,
        epochs=2,
        threads=1,
        max_train_samples=400,  # 12 whole global batches of 32 and a last one of 16, as 2,000 has
        plugins=("nodrop_plugin",),
    )
    config = plan.trials[0].to_dict()
    one = run_trial(plan.trials[0], tmp_path / "one", plugins=loaded).to_dict()
    with _store() as port:
        mp.spawn(_worker, args=(2, port, config, str(tmp_path / "two"), os.environ["HARNESS_CACHE"]), nprocs=2)
    two = read_json(tmp_path / "two" / RECORD)
    curve_one = [e["train_loss"] for e in one["epochs"]]
    curve_two = [e["train_loss"] for e in two["epochs"]]
    assert curve_two == pytest.approx(curve_one, rel=1e-3)
    parts = lambda record: [e["train_parts"] for e in record["epochs"]]  # noqa: E731
    assert parts(two) == [pytest.approx(p, rel=1e-3) for p in parts(one)]
    assert two["final"]["validation"]["accuracy"] == pytest.approx(one["final"]["validation"]["accuracy"], abs=0.01)
    assert two["data"]["train_examples"] == one["data"]["train_examples"]


def _zero_worker(rank: int, world: int, port: int, config: dict, root: str, cache: str) -> None:
    """Runs the trial straight, then interrupted in its third epoch, then resumed; every run on both ranks."""
    from pathlib import Path

    _join(rank, world, port, cache)
    cfg = TrialConfig.from_dict(config)
    assert run_trial(cfg, Path(root) / "straight").completed
    try:  # Ctrl-C in both workers at the same step
        run_trial(cfg, Path(root) / "resumed", stop_in_epoch(3))
        raise AssertionError("the trial was not interrupted")
    except Interrupt:
        pass
    shards = list((Path(root) / "resumed" / "checkpoint").rglob("*optim_states.pt"))
    assert len(shards) == world, shards  # one optimizer shard a worker
    epochs = []
    assert run_trial(cfg, Path(root) / "resumed", lambda e: epochs.append(e.get("epoch"))).completed
    assert set(epochs) == {3}, epochs  # only the third epoch trained again


@pytest.mark.parametrize("stage", [2, 3])
def test_a_zero_trial_on_two_workers_resumes_to_the_uninterrupted_numbers(tmp_path, stage):
    """Each worker writes its shard of DeepSpeed's checkpoint and loads it back; the resumed trial ends with
    the records of the straight one. Spawned processes: ZeRO-3 leaves its patches behind in a process."""
    from harness import plugins as plugin_loader

    loaded = plugin_loader.load()
    plan = make_plan(loaded, "smoke", ["nli"], ["cmi_min"], "tiny", [2], check_model=False, epochs=3, threads=1,
                     zero_stage=stage, max_train_samples=256, max_dev_samples=64)  # fmt: skip
    config = plan.trials[0].to_dict()
    with _store() as port:
        mp.spawn(_zero_worker, args=(2, port, config, str(tmp_path), os.environ["HARNESS_CACHE"]), nprocs=2)
    straight, resumed = (read_json(tmp_path / name / RECORD) for name in ("straight", "resumed"))
    assert straight["status"] == resumed["status"] == "completed"
    assert resumed["epochs"] == straight["epochs"] and resumed["final"] == straight["final"]
    assert not (tmp_path / "resumed" / "checkpoint").exists()  # removed once the trial completed
