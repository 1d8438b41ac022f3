"""What runs inside a Tune trial or a Ray Train worker (the driver is harness.ray_executor).

``trainable`` is the Tune trial. A one-worker trial trains inside it, holding its CPUs and GPU;
a trial of ``--workers-per-trial`` N > 1 builds a Ray Train ``TorchTrainer`` whose N workers each
run ``worker``, driving a DeepSpeed engine (gloo on CPU, NCCL on GPUs). Either way a worker calls
the same ``run_trial`` as the local executor, in its trial directory (``placed``), and reports each
epoch's first dev split to Tune for its schedulers.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from ray import tune

from harness.config import TrialConfig
from harness.errors import TrialFailed
from harness.record import TrialRecord
from harness.results import write_json
from harness.rundir import RunDir
from harness.storage import Storage

STEP_FILE = ".step.json"  # in a trial directory: its latest step, for the live display


def job_trial(tune_config: dict) -> TrialConfig:
    """The harness trial of a Tune trial: the job's config with the sampled values applied."""
    base = TrialConfig.from_dict(tune_config["job"]["trial"])
    sampled = {k: v for k, v in tune_config.items() if k != "job"}
    return base.with_values(sampled) if sampled else base


def train(
    cfg: TrialConfig,
    trial_dir: Path,
    rank: int,
    report_metrics: Callable[[dict], None],
    mirror: Callable[[], None],
    **also: Any,
) -> None:
    """One worker's part of a trial in this process: ``run_trial``, each epoch's first dev split
    reported flat through ``report_metrics`` (``tune.report`` or ``ray.train.report``) for schedulers,
    with ``also`` (what the driver's callbacks need to know of the trial)."""
    from harness.trial import run_trial

    fd = os.open(trial_dir / f"worker-{rank}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)  # this process runs one trial at a time: its output (DeepSpeed, warnings) goes to the trial
    os.dup2(fd, 2)
    os.close(fd)

    def report(epoch: dict, primary: str) -> None:
        split, dev = TrialRecord.dev_of(epoch)
        report_metrics(
            {
                "epoch": epoch["epoch"],
                "train_loss": epoch["train_loss"],
                "split": split,
                "metric": primary,
                "score": dev[primary],
                "dev_keys": ",".join(dev),
                **dev,
                **also,
            }
        )

    reported, written = [], 0.0

    def progress(event: dict) -> None:
        nonlocal written
        if event["event"] == "epoch":
            reported.append(event["epoch"])
            mirror()  # a lost node costs the trial this epoch at most
            report(event, event["primary"])
        elif rank == 0 and time.monotonic() - written > 1.0:  # for the driver's live display
            written = time.monotonic()
            write_json(trial_dir / STEP_FILE, {k: event[k] for k in ("epoch", "step", "total_steps", "loss")})

    record = run_trial(cfg, trial_dir, progress)
    (trial_dir / STEP_FILE).unlink(missing_ok=True)
    if not record.completed:  # Tune counts it as an error (and retries it, if asked)
        raise TrialFailed(record.error or record.status)
    if not reported:  # completed earlier (a repeated sample): Tune sees its epochs all the same
        print(f"{cfg.trial_id()} completed earlier: its record's epochs are reported, not retrained", flush=True)
    for epoch in [] if reported else record.epochs or []:
        report(epoch, record.primary_metric or "")


def worker(config: dict) -> None:
    """A Ray Train worker of a multi-worker trial; Ray has set RANK/WORLD_SIZE, so the engine joins its group."""
    import ray.train

    rank = ray.train.get_context().get_world_rank()
    group = ray.util.get_current_placement_group().id.hex()  # Train places its workers
    with placed(config["job"], TrialConfig.from_dict(config["trial"]), rank) as (cfg, trial_dir, mirror):
        train(cfg, trial_dir, rank, ray.train.report, mirror, placement_group=group)


def trainable(tune_config: dict) -> None:
    """The Tune trial. With one worker (the common case) it trains in its own process, holding the
    trial's CPUs and GPU (``resources``): no Ray Train controller, no worker actor, one import of
    torch. With several it builds the Ray Train ``TorchTrainer`` of DeepSpeed workers."""
    job, cfg = tune_config["job"], job_trial(tune_config)
    if job["workers"] > 1:
        torch_trainer(job, cfg).fit()
        return
    with placed(job, cfg, 0) as (cfg, trial_dir, mirror), open(trial_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a config a search draws twice is trained once (on one node)
        train(cfg, trial_dir, 0, tune.report, mirror)


def torch_trainer(job: dict, cfg: TrialConfig):
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    return TorchTrainer(
        worker,
        train_loop_config={"trial": cfg.to_dict(), "job": job},
        scaling_config=ScalingConfig(
            num_workers=job["workers"],
            use_gpu=job["gpus"] > 0,
            resources_per_worker={"CPU": cfg.threads or 1, "GPU": job["gpus"]},
        ),
        run_config=RunConfig(name=cfg.trial_id(), storage_path=job["ray_storage"], callbacks=[TuneReportCallback()]),
    )


def resources(tune_config: dict) -> tune.PlacementGroupFactory:
    """What a Tune trial holds: a one-worker trial its worker's CPUs and GPU; a multi-worker trial's
    driver 0.01 CPU while it waits for its workers, who reserve their own."""
    job, cfg = tune_config["job"], job_trial(tune_config)
    if job["workers"] == 1:
        return tune.PlacementGroupFactory([{"CPU": cfg.threads or 1, "GPU": job["gpus"]}])
    return tune.PlacementGroupFactory([{"CPU": 0.01}])


@contextlib.contextmanager
def placed(job: dict, cfg: TrialConfig, rank: int) -> Iterator[tuple[TrialConfig, Path, Callable[[], None]]]:
    """Where a worker runs its trial: (its config, its directory, ``mirror``). Without a storage, the
    trial's directory in the run directory, which every node mounts. With one, a directory on this
    node's disk, filled first from storage with the trial's files so far (its epoch checkpoint) and
    its teachers', mirrored back by ``mirror`` (after each epoch) and at the end, then removed; a
    worker other than rank 0 mirrors only its log."""
    if not job["storage"]:
        trial_dir = RunDir(job["run_dir"]).trial_dir(cfg)
        trial_dir.mkdir(parents=True, exist_ok=True)
        yield cfg, trial_dir, lambda: None
        return
    store, scratch = Storage(job["storage"]), Path(tempfile.mkdtemp(prefix=f"harness-{cfg.trial_id()}-"))
    cfg = replace(cfg, teacher_store=str(scratch / "teachers"))  # a location, not part of the trial id
    for teacher in filter(None, (cfg.init_from, cfg.teacher)):
        store.get(f"teachers/{teacher}", scratch / "teachers" / teacher)
    trial_dir, rel = RunDir(scratch).trial_dir(cfg), Storage.trial(job["run_name"], cfg)
    trial_dir.mkdir(parents=True, exist_ok=True)
    store.get(rel, trial_dir)
    log_name = f"worker-{rank}.log"

    def mirror() -> None:
        if rank == 0:
            store.put(trial_dir, rel)
        else:
            store.put(trial_dir / log_name, f"{rel}/{log_name}")

    try:
        yield cfg, trial_dir, mirror
    finally:  # a failed trial's record too
        try:
            mirror()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
