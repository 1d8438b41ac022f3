"""What Ray costs per trial, against the local executor (the named peer) on the same smoke trials,
and what running trials concurrently on Ray gives back.

Runs, one after another in this process: the plan's trials with the local executor; a Ray
session that runs nothing (start-up and shut-down); the trials on Ray one at a time; the
trials on Ray ``--concurrent`` at a time. By default every trial is a 1-thread tiny-BERT smoke
trial; on a GPU, ``--model minilm-l6 --gpus-per-worker 0.25 --concurrent 4`` packs four trials
onto one card, and the trials per hour of one at a time and of packed are the figure.

    python benchmarks/ray_overhead.py [--trials 4] [--epochs 3] [--concurrent 2]
    python benchmarks/ray_overhead.py --model minilm-l6 --gpus-per-worker 0.25 --concurrent 4  # a GPU
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console

from harness import plugins as plugin_loader
from harness.planner import make_plan
from harness.ray_executor import RayOptions, ray_session, run_ray
from harness.rundir import RunDir
from harness.runner import run_local


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=4, help="smoke trials (seeds 1..N)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--concurrent", type=int, default=os.cpu_count() or 1, help="trials at once (default: cores)")
    p.add_argument("--model", default="tiny")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="a GPU's share per trial (0: CPU trials)")
    p.add_argument("--precision", default="fp32")
    a = p.parse_args()
    quiet = Console(quiet=True)
    loaded = plugin_loader.load()
    seeds = list(range(1, a.trials + 1))
    plan = make_plan(
        loaded, "smoke", ["sentiment"], ["ce"], a.model, seeds, check_model=False, epochs=a.epochs, threads=1,
        precision=a.precision,
    )  # fmt: skip
    root = Path(tempfile.mkdtemp(prefix="ray-overhead-"))
    walls: dict[str, float] = {}

    def timed(name, fn):
        started = time.perf_counter()
        records = fn(RunDir(root / name))
        walls[name] = time.perf_counter() - started
        if records is not None:
            assert all(r.completed for r in records), [r.error for r in records]
        return records

    def session_only(run: RunDir):
        with ray_session(run, RayOptions(), ()):
            pass

    local = timed("local", lambda d: run_local(plan, d, loaded, quiet, quiet=True))
    timed("ray_session", session_only)
    gpus = a.gpus_per_worker
    serial = RayOptions(max_concurrent=1, gpus=1 if gpus else 0, quiet=True)  # a whole card each, one at a time
    timed("ray_serial", lambda d: run_ray(plan, d, quiet, serial))
    packed = RayOptions(max_concurrent=a.concurrent, gpus=gpus, quiet=True)
    timed("ray_concurrent", lambda d: run_ray(plan, d, quiet, packed))

    n = len(plan.trials)
    in_trial = sum(r.wall_time_s for r in local) / n
    per_trial = (walls["ray_serial"] - walls["ray_session"] - walls["local"]) / n
    where = f"{gpus} of a GPU each when packed" if gpus else f"{os.cpu_count()} cores"
    print(f"{n} smoke trials ({a.model}, {a.epochs} epochs, {a.precision}, 1 thread each), {where}")
    print(f"{'variant':<28}{'wall s':>9}{'per trial s':>13}{'vs local':>10}{'trials/hour':>13}")
    for name, label in (
        ("local", "local executor (peer)"),
        ("ray_serial", "ray, 1 trial at a time"),
        ("ray_concurrent", f"ray, {a.concurrent} trials at a time"),
    ):
        wall = walls[name]
        print(f"{label:<28}{wall:>9.1f}{wall / n:>13.1f}{wall / walls['local']:>9.2f}x{3600 * n / wall:>13.0f}")
    print(f"Ray start + shut-down alone: {walls['ray_session']:.1f} s")
    print(f"fixed cost Ray adds per trial: {per_trial:.1f} s (a local trial takes {in_trial:.1f} s inside run_trial)")
    print(f"concurrency speed-up on Ray (trials per hour, packed / one at a time): "
          f"{walls['ray_serial'] / walls['ray_concurrent']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
