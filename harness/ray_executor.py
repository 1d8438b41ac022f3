"""The Ray driver: runs a plan's trials through Ray Tune (what runs inside a trial is harness.ray_trial).

Each Tune trial calls the same ``run_trial`` as the local executor, so records are the same files
with the same numbers. ``harness run``: teacher stages first, one Tune run per stage (a trial's
teacher must exist before it starts), a grid over the stage's trials. ``harness tune``: the
teachers, then one Tune run whose search space is applied to the tuned trial's config
(harness.search).

Ray starts locally with this machine's CPUs and GPUs, bound to 127.0.0.1, no dashboard,
its logs in RUN_DIR/run.log, unless ``address`` points at a cluster; trial directories must
then be on storage every node can reach.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune
from rich.console import Console

from harness import checkpoint
from harness.config import Plan, TrialConfig
from harness.errors import HarnessError
from harness.ray_callbacks import CtrlC, ReleaseResources
from harness.ray_trial import STEP_FILE, job_trial, resources, trainable
from harness.record import TrialRecord
from harness.results import read_json
from harness.rundir import RunDir, line
from harness.storage import Storage, fetched

_trainable = trainable  # the name Tune's saved experiments (`harness tune --resume`) pickled before 2026-12-07

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
    RUN_DIR/run.log, with the harness's own log), shut down on the way out, also on Ctrl-C. Inside
    a session already (``harness tune``'s search, then its confirmation run), that Ray serves."""
    import ray

    if ray.is_initialized():
        with run.log("ray"):
            yield
        return
    for key, value in RAY_ENV.items():  # before Ray starts: its processes inherit them (_runtime_env)
        os.environ.setdefault(key, value)
    # With several workers per trial a local Ray gets one logical CPU more than the machine has:
    # each Tune trial's driver holds 0.01 CPU while it only waits for its workers.
    cpus = (os.cpu_count() or 1) + (opts.workers > 1)
    local: dict[str, Any] = {"num_cpus": cpus, "include_dashboard": opts.dashboard, "dashboard_host": "127.0.0.1"}
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
    trainable_with = tune.with_resources(trainable, resources)
    callbacks = [progress, ReleaseResources()]
    experiment = f"{_storage(run, opts).rstrip('/')}/{name}"
    if restore and tune.Tuner.can_restore(experiment):
        tuner = tune.Tuner.restore(experiment, trainable_with, resume_unfinished=True, resume_errored=True)
        # Tune pickled the first driver's callbacks and stopper with the experiment and takes no new
        # ones on restore (ray-project/ray#41364: no public access to a restored run config); this
        # driver's live display and Ctrl-C go in their place
        restored = tuner._local_tuner.get_run_config()
        restored.callbacks, restored.stop = callbacks, interrupt
    else:
        tuner = tune.Tuner(
            trainable_with,
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
