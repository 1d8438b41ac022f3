"""Runs a plan's trials through Ray Tune: each trial is a Ray Train ``TorchTrainer`` whose
workers each drive a DeepSpeed engine (gloo on CPU, NCCL on GPUs) and call the same
``run_trial`` as the local executor, so records are the same files with the same numbers.

Teacher stages run first, one Tune run per stage (a trial's teacher must exist before it
starts). Ray starts locally with this machine's CPUs, no dashboard, unless ``address``
points at a cluster; trial directories must then be on storage every node can reach.
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console

from harness.config import TrialConfig
from harness.errors import HarnessError
from harness.planner import Plan
from harness.results import RECORD, read_json
from harness.runner import line, publish, skipped

os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")  # function trainables that build a TorchTrainer


def _worker(config: dict) -> None:
    """Runs on every Ray Train worker; Ray has set RANK/WORLD_SIZE, so the engine joins its group."""
    import ray.train

    from harness.trial import run_trial

    def progress(event: dict) -> None:
        if event["event"] == "epoch":
            split = next(k for k in event if k.startswith("validation"))
            ray.train.report({"epoch": event["epoch"], "train_loss": event["train_loss"], **event[split]})

    record = run_trial(config["trial"], config["trial_dir"], progress)
    if record["status"] != "completed":
        ray.train.report({"status": record["status"]})


def _trainable(tune_config: dict) -> None:
    """The Tune trial: builds and runs the TorchTrainer of one harness trial."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    config = tune_config["job"]
    threads = config["trial"].get("threads") or 1
    trainer = TorchTrainer(
        _worker,
        train_loop_config=config,
        scaling_config=ScalingConfig(
            num_workers=config["workers"],
            use_gpu=config["gpus"] > 0,
            resources_per_worker={"CPU": threads, "GPU": config["gpus"]},
        ),
        run_config=RunConfig(name=config["name"], storage_path=config["storage"], callbacks=[TuneReportCallback()]),
    )
    trainer.fit()


def stages(plan: Plan) -> list[list[TrialConfig]]:
    """Trials grouped so that every trial's teacher is in an earlier group."""
    level: dict[str, int] = {}
    for cfg in plan.trials:  # the plan lists teachers before their dependants
        deps = [d for d in (cfg.init_from, cfg.teacher) if d]
        level[cfg.trial_id()] = 1 + max((level[d] for d in deps), default=-1)
    out: list[list[TrialConfig]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for cfg in plan.trials:
        out[level[cfg.trial_id()]].append(cfg)
    return out


def check_address(address: str) -> None:
    """Fails fast, in one line, when a host:port (or ray://host:port) address does not answer."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and the like: Ray resolves them itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise HarnessError(
            f"--address {address}: nothing answers there ({exc}); start the cluster with `ray start "
            f"--head` on that host, or leave --address out for a local Ray"
        ) from None


def run_ray(
    plan: Plan,
    run_dir: Path,
    console: Console,
    address: str | None = None,
    workers: int = 1,
    gpus: float = 0,
    max_concurrent: int | None = None,
    retrain_teachers: bool = False,
) -> list[dict]:
    import ray
    from ray import tune

    # A local Ray gets one logical CPU more than the machine has: each Tune trial's driver holds
    # 0.01 CPU while it only waits for its workers, who reserve --threads CPUs each.
    local = {} if address else {"num_cpus": (os.cpu_count() or 1) + 1}
    if address:
        check_address(address)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False, **local)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise HarnessError(
            f"--address {address}: cannot connect to Ray ({str(exc).splitlines()[0]}); start the "
            f"cluster (`ray start --head`) or leave --address out for a local Ray"
        ) from exc
    by_id: dict[str, dict] = {}
    try:
        storage = str((run_dir / "ray").resolve())
        for number, stage in enumerate(stages(plan)):
            todo = []
            for cfg in stage:
                trial_dir = cfg.trial_dir(run_dir)
                if retrain_teachers and cfg.save_teacher:
                    (trial_dir / RECORD).unlink(missing_ok=True)
                blocked = skipped(cfg, run_dir, by_id)
                if blocked:
                    by_id[cfg.trial_id()] = blocked
                else:
                    todo.append(
                        {
                            "trial": cfg.to_dict(),
                            "trial_dir": str(trial_dir.resolve()),
                            "name": cfg.trial_id(),
                            "workers": workers,
                            "gpus": gpus,
                            "storage": storage,
                        }
                    )
            if todo:
                tuner = tune.Tuner(
                    tune.with_resources(_trainable, {"cpu": 0.01}),
                    param_space={"job": tune.grid_search(todo)},
                    tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent),
                    run_config=tune.RunConfig(name=f"stage{number}", storage_path=storage, verbose=0),
                )
                tuner.fit()
            for cfg in stage:
                if cfg.trial_id() in by_id:  # skipped above
                    continue
                path = cfg.trial_dir(run_dir) / RECORD
                by_id[cfg.trial_id()] = (
                    read_json(path)
                    if path.exists()
                    else {
                        "trial_id": cfg.trial_id(),
                        "status": "failed",
                        "config": cfg.to_dict(),
                        "error": "the Ray trial ended without writing a record (see RUN_DIR/ray)",
                    }
                )
                if cfg.save_teacher:
                    publish(cfg, run_dir)
            for cfg in stage:
                console.print(line(by_id[cfg.trial_id()]), soft_wrap=True)
    finally:
        ray.shutdown()
    return [by_id[cfg.trial_id()] for cfg in plan.trials]
