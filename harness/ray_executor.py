"""Runs trials through Ray Tune. Each Tune trial is a function trainable that calls the same
``run_trial`` as the local executor, so records are the same files with the same numbers: a
one-worker trial trains inside the Tune trial's own process, holding its CPUs and GPU; a trial of
``--workers-per-trial`` N > 1 builds a Ray Train ``TorchTrainer`` whose N workers each drive a
DeepSpeed engine (gloo on CPU, NCCL on GPUs).

``harness run``: teacher stages first, one Tune run per stage (a trial's teacher must exist
before it starts), a grid over the stage's trials. ``harness tune``: the teachers, then one
Tune run whose search space is applied to the tuned trial's config (harness.search).

Ray starts locally with this machine's CPUs and GPUs, bound to 127.0.0.1, no dashboard,
its logs in RUN_DIR/run.log, unless ``address`` points at a cluster; trial directories must
then be on storage every node can reach.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ray import tune
from rich.console import Console

from harness import checkpoint
from harness.config import Plan, TrialConfig
from harness.errors import HarnessError, TrialFailed
from harness.record import TrialRecord
from harness.results import read_json, write_json
from harness.rundir import RunDir, line
from harness.storage import Storage, fetched

log = logging.getLogger("harness")

# Train V2 (function trainables that build a TorchTrainer); Tune's own console output off;
# Tune's SIGINT handler off: Ctrl-C is CtrlC's, which ends the run so that it can be resumed.
RAY_ENV = {
    "RAY_TRAIN_V2_ENABLED": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    # A multi-worker trial starts a Tune trial, a Train controller and its workers at once; Ray's
    # default of one process start per core queues them and warns about it.
    "RAY_worker_maximum_startup_concurrency": str(4 * (os.cpu_count() or 1)),
    # How often the Train controller polls its workers: it notices a finished trial within 0.5 s
    # rather than 2 s, which is most of a short trial's tear-down.
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
}
for _key, _value in RAY_ENV.items():
    os.environ.setdefault(_key, _value)


STEP_FILE = ".step.json"  # in a trial directory: its latest step, for the live display


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: a local Ray
    storage: str | None = None  # Ray's experiment storage (path or URI); default RUN_DIR/ray
    workers: int = 1  # DeepSpeed workers per trial
    gpus: float = 0  # per worker
    max_concurrent: int | None = None
    retries: int = 0  # a failed trial is run again this many times
    quiet: bool = False
    dashboard: bool = False  # a local Ray's dashboard, on 127.0.0.1


def job_trial(tune_config: dict) -> TrialConfig:
    """The harness trial of a Tune trial: the job's config with the sampled values applied."""
    base = TrialConfig.from_dict(tune_config["job"]["trial"])
    sampled = {k: v for k, v in tune_config.items() if k != "job"}
    return base.with_values(sampled) if sampled else base


def _train(
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

    log = os.open(trial_dir / f"worker-{rank}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)  # this process runs one trial at a time: its output (DeepSpeed, warnings) goes to the trial
    os.dup2(log, 2)
    os.close(log)

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
    for epoch in [] if reported else record.epochs:
        report(epoch, record.primary_metric)


def _worker(config: dict) -> None:
    """A Ray Train worker of a multi-worker trial; Ray has set RANK/WORLD_SIZE, so the engine joins its group."""
    import ray.train

    rank = ray.train.get_context().get_world_rank()
    group = ray.util.get_current_placement_group().id.hex()  # for ReleaseResources, in every report
    with _placed(config["job"], TrialConfig.from_dict(config["trial"]), rank) as (cfg, trial_dir, mirror):
        _train(cfg, trial_dir, rank, ray.train.report, mirror, placement_group=group)


class ReleaseResources(tune.Callback):
    """A Tune callback that removes a trial's worker placement group when the trial ends.

    Ray Train removes it itself when training ends; but a trial Tune stops (an early stop by
    the scheduler), and now and then one that ends as Tune tears it down, loses its Train
    controller first, and Train's fallback cleaner needs Ray's state API (the dashboard), which
    a quiet local Ray does not run: the group's CPUs would stay reserved and later trials would
    wait for them forever (seen: a search stuck after its first two trials). The group is known
    from what the trial reported to Tune (its workers' ``placement_group``), not from its files."""

    def __init__(self):
        self.groups: dict[str, str] = {}  # Tune trial id -> its workers' placement group

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "placement_group" in result:
            self.groups[trial.trial_id] = result["placement_group"]

    def release(self, trial) -> None:
        from ray._raylet import PlacementGroupID
        from ray.util import placement_group_table
        from ray.util.placement_group import PlacementGroup, remove_placement_group

        hex_id = self.groups.pop(trial.trial_id, None)
        if hex_id:
            group = PlacementGroup(PlacementGroupID(bytes.fromhex(hex_id)))
            if placement_group_table(group).get("state") not in ("REMOVED", None):
                remove_placement_group(group)
                log.info("released the placement group Ray Train left behind by %s", job_trial(trial.config).trial_id())

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.release(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.release(trial)


def _trainable(tune_config: dict) -> None:
    """The Tune trial. With one worker (the common case) it trains in its own process, holding the
    trial's CPUs and GPU (``_resources``): no Ray Train controller, no worker actor, one import of
    torch. With several it builds the Ray Train ``TorchTrainer`` of DeepSpeed workers."""
    job, cfg = tune_config["job"], job_trial(tune_config)
    if job["workers"] > 1:
        _torch_trainer(job, cfg).fit()
        return
    with _placed(job, cfg, 0) as (cfg, trial_dir, mirror), open(trial_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a config a search draws twice is trained once (on one node)
        _train(cfg, trial_dir, 0, tune.report, mirror)


def _torch_trainer(job: dict, cfg: TrialConfig):
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    return TorchTrainer(
        _worker,
        train_loop_config={"trial": cfg.to_dict(), "job": job},
        scaling_config=ScalingConfig(
            num_workers=job["workers"],
            use_gpu=job["gpus"] > 0,
            resources_per_worker={"CPU": cfg.threads or 1, "GPU": job["gpus"]},
        ),
        run_config=RunConfig(name=cfg.trial_id(), storage_path=job["ray_storage"], callbacks=[TuneReportCallback()]),
    )


def _resources(tune_config: dict) -> tune.PlacementGroupFactory:
    """What a Tune trial holds: a one-worker trial its worker's CPUs and GPU; a multi-worker trial's
    driver 0.01 CPU while it waits for its workers, who reserve their own."""
    job, cfg = tune_config["job"], job_trial(tune_config)
    if job["workers"] == 1:
        return tune.PlacementGroupFactory([{"CPU": cfg.threads or 1, "GPU": job["gpus"]}])
    return tune.PlacementGroupFactory([{"CPU": 0.01}])


def stages(trials: list[TrialConfig]) -> list[list[TrialConfig]]:
    """Trials grouped so that every trial's teacher is in an earlier group."""
    level: dict[str, int] = {}
    for cfg in trials:  # the plan lists teachers before their dependants
        deps = [d for d in (cfg.init_from, cfg.teacher) if d]
        level[cfg.trial_id()] = 1 + max((level[d] for d in deps), default=-1)
    out: list[list[TrialConfig]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for cfg in trials:
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


def _runtime_env(plugins: tuple[str, ...]) -> dict:
    """What workers need of this driver's environment: HARNESS_* and RAY_ENV variables, the directories
    that make ``--plugin`` modules importable (on a cluster: a path every node can read)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("HARNESS_") or k in RAY_ENV}
    roots = []
    for module in plugins:
        spec = importlib.util.find_spec(module)
        if spec and spec.origin:
            path = Path(spec.origin)
            path = path.parent if path.name == "__init__.py" else path
            roots.append(str(path.parents[module.count(".")].resolve()))
    if roots:
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([*roots, *filter(None, [os.environ.get("PYTHONPATH")])]))
    return {"env_vars": env} if env else {}


@contextlib.contextmanager
def ray_session(run: RunDir, opts: RayOptions, plugins: tuple[str, ...]) -> Iterator[None]:
    """Ray for the length of a run: connected or started quietly (what Ray's driver logs goes to
    RUN_DIR/run.log, with the harness's own log), shut down on the way out, also on Ctrl-C."""
    import ray

    # With several workers per trial a local Ray gets one logical CPU more than the machine has:
    # each Tune trial's driver holds 0.01 CPU while it only waits for its workers.
    cpus = (os.cpu_count() or 1) + (opts.workers > 1)
    local = {"num_cpus": cpus, "include_dashboard": opts.dashboard, "dashboard_host": "127.0.0.1"}
    if opts.address:
        check_address(opts.address)
    run.path.mkdir(parents=True, exist_ok=True)
    try:
        with open(run.log_file, "a") as log, contextlib.redirect_stderr(log):  # Ray's start-up notices
            ray.init(  # "local": a new Ray of our own, even when RAY_ADDRESS or another Ray is around
                address=opts.address or "local",
                log_to_driver=False,
                configure_logging=False,
                runtime_env=_runtime_env(plugins),
                **({} if opts.address else local),
            )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise HarnessError(
            f"--address {opts.address}: cannot connect to Ray ({str(exc).splitlines()[0]}); start the "
            f"cluster (`ray start --head`) or leave --address out for a local Ray"
        ) from exc
    try:
        with run.log("ray"):
            yield
    finally:
        ray.shutdown()


def _tune(
    param_space: dict,
    total: int,
    run: RunDir,
    name: str,
    console: Console,
    opts: RayOptions,
    labels: Callable[[TrialConfig], str],
    threads: int,
    restore: bool = False,
    **tune_config: Any,
):
    """One Tune run of ``_trainable`` over ``param_space`` (trials of ``threads`` CPUs per worker), with
    live progress; its ResultGrid, and the trials' states as the progress display saw them, by trial
    directory. ``restore``: continue the Tune run of this name that Ray's storage holds, if any (its
    searcher, scheduler and trials as they were; errored and unfinished trials run again)."""

    from harness.live import LiveProgress

    configs: dict[str, TrialConfig] = {}  # by trial directory

    def describe(config: dict) -> tuple[str, str, int]:
        cfg = job_trial(config)
        configs[str(run.trial_dir(cfg))] = cfg
        return str(run.trial_dir(cfg)), labels(cfg), cfg.epochs

    def outcome(trial_dir: str, errored: bool, state) -> tuple[str, str]:
        _fetch(configs[trial_dir], run, opts)
        record = TrialRecord.load(Path(trial_dir))
        if record:
            return ("done" if record.completed else "failed"), line(record, label=state.label)
        if errored:
            return "failed", f"[red]✗[/] {state.label}: failed without a record; Ray's reason goes into one"
        return "stopped", f"[yellow]■[/] {state.label}: stopped early after epoch {state.epoch} ({state.latest()})"

    def peek(trial_dir: str) -> dict | None:
        with contextlib.suppress(OSError, ValueError):  # not written yet, or gone with the trial
            return read_json(Path(trial_dir) / STEP_FILE)
        return None

    progress, interrupt = LiveProgress(console, total, describe, outcome, opts.quiet, peek), CtrlC()
    tune_config.setdefault("max_concurrent_trials", opts.max_concurrent or fits(opts, threads))
    trainable = tune.with_resources(_trainable, _resources)
    callbacks = [progress, ReleaseResources()]
    experiment = f"{_storage(run, opts).rstrip('/')}/{name}"
    if restore and tune.Tuner.can_restore(experiment):
        tuner = tune.Tuner.restore(experiment, trainable, resume_unfinished=True, resume_errored=True)
        # Tune pickled the first driver's callbacks and stopper with the experiment and takes no new
        # ones on restore (ray-project/ray#41364: no public access to a restored run config); this
        # driver's live display and Ctrl-C go in their place
        restored = tuner._local_tuner.get_run_config()
        restored.callbacks, restored.stop = callbacks, interrupt
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                trial_name_creator=lambda t: job_trial(t.config).trial_id(),
                trial_dirname_creator=lambda t: f"{job_trial(t.config).trial_id()}-{t.trial_id}",
                # a one-worker trial's process, torch imported, takes the next trial of the same
                # resources, as the local executor's one process takes every trial
                reuse_actors=opts.workers == 1,
                **tune_config,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=_storage(run, opts),
                verbose=0,
                callbacks=callbacks,
                failure_config=tune.FailureConfig(max_failures=opts.retries),
                stop=interrupt,
            ),
        )
    with progress, interrupt.catching():
        results = tuner.fit()
    return results, progress.trials


class CtrlC(tune.Stopper):
    """Ctrl-C ends the Tune run at the next turn of Tune's loop (``stop_all``), and ``catching`` then
    raises KeyboardInterrupt, so the run can be resumed. The signal's own KeyboardInterrupt can land
    in a callback from Ray's compiled code, which swallows it: seen once, a run that trained on after
    Ctrl-C until its last epoch."""

    def __init__(self):
        self.pressed = False

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.pressed

    @contextlib.contextmanager
    def catching(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():  # only there can Python take signals
            yield
            return
        previous = signal.signal(signal.SIGINT, lambda *_: setattr(self, "pressed", True))
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
        if self.pressed:
            raise KeyboardInterrupt


def fits(opts: RayOptions, threads: int, resources: dict[str, float] | None = None) -> int:
    """How many trials of ``threads`` CPUs per worker the cluster runs at once (at least one): the
    default of --max-concurrent-trials. Without it Tune starts every multi-worker trial of a stage at
    once, each holding its 0.01 CPU while its workers wait (72 Ray processes on 2 cores, seen)."""
    import ray

    resources = resources if resources is not None else ray.cluster_resources()
    by_cpu = int(resources.get("CPU", 1) // (opts.workers * threads))
    by_gpu = int(resources.get("GPU", 0) // (opts.workers * opts.gpus)) if opts.gpus else by_cpu
    return max(1, min(by_cpu, by_gpu))


def _storage(run: RunDir, opts: RayOptions) -> str:
    """Where Ray Tune keeps the run's experiment state: RUN/ray, in the run's storage if given."""
    return f"{opts.storage.rstrip('/')}/{run.path.name}/ray" if opts.storage else str((run.path / "ray").resolve())


def _job(cfg: TrialConfig, run: RunDir, opts: RayOptions) -> dict:
    return {
        "trial": cfg.to_dict(),
        "run_dir": str(run.path.resolve()),
        "run_name": run.path.name,
        "workers": opts.workers,
        "gpus": opts.gpus,
        "storage": opts.storage,  # the run's storage (harness.storage), or None: a shared filesystem
        "ray_storage": _storage(run, opts),
    }


def _fetch(cfg: TrialConfig, run: RunDir, opts: RayOptions) -> None:
    """With a storage: the trial's record, predictions and logs into the driver's run directory,
    unless a completed record is there already (final: a completed trial never runs again), so a
    trial is fetched once however many places ask (the live display, the end of its stage)."""
    if not opts.storage:
        return
    done = run.record(cfg)
    if not (done and done.completed):
        Storage(opts.storage).get(Storage.trial(run.path.name, cfg), run.trial_dir(cfg), only=fetched)


@contextlib.contextmanager
def _placed(job: dict, cfg: TrialConfig, rank: int) -> Iterator[tuple[TrialConfig, Path, Callable[[], None]]]:
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


def _default_label(cfg: TrialConfig) -> str:
    teacher = "teacher " if cfg.save_teacher else ""
    return f"{teacher}{cfg.task} {cfg.objective} {cfg.model} seed {cfg.seed}"


def _ended(cfg: TrialConfig, run: RunDir, opts: RayOptions, state, result) -> TrialRecord:
    """The trial's record. A trial Ray ended before it wrote one (stopped early by the scheduler,
    or killed) gets one saying so, with the epochs it reported (``state``, from LiveProgress)."""
    _fetch(cfg, run, opts)
    written = run.record(cfg)
    if written:
        return written
    reports = state.reports if state else []
    epochs = [
        {"epoch": r["epoch"], "train_loss": r["train_loss"], r["split"]: {k: r[k] for k in r["dev_keys"].split(",")}}
        for r in reports
    ]
    if state and state.status == "stopped":
        record = TrialRecord.stopped(cfg, f"stopped early by the scheduler after epoch {len(epochs)}", epochs)
    else:
        record = TrialRecord.failed(cfg, _reason(getattr(result, "error", None)), epochs=epochs)
    run.write(record)
    checkpoint.remove(run.trial_dir(cfg))
    return record


def _reason(error: BaseException | None) -> str:
    """Ray's error for a trial that died without a record, on one line: the cause Ray wraps
    (e.g. "ControllerError: ... its worker process has died ... killed by the OOM killer")."""
    if error is None:
        return "Ray ended the trial before it reported anything"
    cause = getattr(error, "cause", None) or error
    lines = [" ".join(x.split()) for x in re.sub(r"\x1b\[[0-9;]*m", "", str(cause)).splitlines() if x.strip()]
    died = [x for x in lines if x.startswith("The actor is dead because")]  # with the exit detail
    return f"{type(cause).__name__}: " + " ".join(lines[:1] + died[:1])


def _run_stages(
    trials: list[TrialConfig], run: RunDir, console: Console, opts: RayOptions, retrain_teachers: bool
) -> dict[str, TrialRecord]:
    """Runs ``trials`` stage by stage (teachers before their students); records by trial id.
    Trials already completed are not submitted again."""
    by_id: dict[str, TrialRecord] = {}
    for number, stage in enumerate(stages(trials)):
        todo = []
        for cfg in stage:
            _fetch(cfg, run, opts)  # resuming from a storage: what finished there
            done = run.settled(cfg, trials, by_id, retrain_teachers)
            if done:
                by_id[cfg.trial_id()] = done
                if not opts.quiet:
                    console.print(line(done) + (" (stored earlier)" if done.completed else ""), soft_wrap=True)
            else:
                todo.append(cfg)
        if todo:
            grid = {"job": tune.grid_search([_job(cfg, run, opts) for cfg in todo])}
            threads = max(cfg.threads or 1 for cfg in todo)
            results, states = _tune(grid, len(todo), run, f"stage{number}", console, opts, _default_label, threads)
            by_result = {job_trial(r.config).trial_id(): r for r in results}
            for cfg in todo:
                state = states.get(str(run.trial_dir(cfg)))
                by_id[cfg.trial_id()] = _ended(cfg, run, opts, state, by_result.get(cfg.trial_id()))
        for cfg in stage:
            run.finish(cfg)
    return by_id


def run_ray(
    plan: Plan, run: RunDir, console: Console, opts: RayOptions = RayOptions(), retrain_teachers: bool = False
) -> list[TrialRecord]:
    """``harness run`` through Ray: every trial of the plan, teachers first; records in plan order."""
    with ray_session(run, opts, plan.trials[0].plugins if plan.trials else ()):
        by_id = _run_stages(plan.trials, run, console, opts, retrain_teachers)
    return [by_id[cfg.trial_id()] for cfg in plan.trials]


def run_search(
    plan: Plan, search, run: RunDir, console: Console, opts: RayOptions = RayOptions(), resume: bool = False
) -> list[TrialRecord]:
    """``harness tune`` on Ray: the plan's teachers, then one Tune run over the plan's last trial with
    ``search``'s domains, options and labels (harness.search.Search); ``resume``: Tune's restore of
    that run where it stopped. Every searched trial's record (a config drawn twice is one trial)."""
    *teachers, base = plan.trials
    with ray_session(run, opts, base.plugins):
        by_id = _run_stages(teachers, run, console, opts, retrain_teachers=False)
        if base.teacher and not by_id[base.teacher].completed:
            raise HarnessError(f"the teacher {base.teacher} {by_id[base.teacher].status}: nothing to tune")
        space = {"job": _job(base, run, opts), **search.domains()}
        threads = base.threads or 1
        options = search.tune_options(base.epochs, opts.max_concurrent or fits(opts, threads))
        results, states = _tune(
            space, search.total(), run, "search", console, opts, search.label, threads, resume, **options
        )
    by_trial = {}
    for result in results:
        cfg = job_trial(result.config)
        by_trial[cfg.trial_id()] = _ended(cfg, run, opts, states.get(str(run.trial_dir(cfg))), result)
    return list(by_trial.values())
