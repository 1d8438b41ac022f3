"""What Ray costs per trial, against the local executor (the named peer) on the same smoke trials,
and what running trials concurrently on Ray gives back.

Runs, one after another in this process: the plan's trials with the local executor; a Ray
session that runs nothing (start-up and shut-down); the trials on Ray one at a time; the
trials on Ray ``--concurrent`` at a time. Every trial is a 1-thread tiny-BERT smoke trial.

    python benchmarks/ray_overhead.py [--trials 4] [--epochs 3] [--concurrent 2]
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
    a = p.parse_args()
    quiet = Console(quiet=True)
    loaded = plugin_loader.load()
    seeds = list(range(1, a.trials + 1))
    plan = make_plan(
        loaded, "smoke", ["sentiment"], ["ce"], "tiny", seeds, check_model=False, epochs=a.epochs, threads=1
    )
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
    timed("ray_serial", lambda d: run_ray(plan, d, quiet, RayOptions(max_concurrent=1, quiet=True)))
    timed("ray_concurrent", lambda d: run_ray(plan, d, quiet, RayOptions(max_concurrent=a.concurrent, quiet=True)))

    n = len(plan.trials)
    in_trial = sum(r.wall_time_s for r in local) / n
    per_trial = (walls["ray_serial"] - walls["ray_session"] - walls["local"]) / n
    print(f"{n} smoke trials (tiny BERT, {a.epochs} epochs, 1 thread each) on {os.cpu_count()} cores")
    print(f"{'variant':<28}{'wall s':>9}{'per trial s':>13}{'vs local':>10}")
    for name, label in (
        ("local", "local executor (peer)"),
        ("ray_serial", "ray, 1 trial at a time"),
        ("ray_concurrent", f"ray, {a.concurrent} trials at a time"),
    ):
        print(f"{label:<28}{walls[name]:>9.1f}{walls[name] / n:>13.1f}{walls[name] / walls['local']:>9.2f}x")
    print(f"Ray start + shut-down alone: {walls['ray_session']:.1f} s")
    print(f"fixed cost Ray adds per trial: {per_trial:.1f} s (a local trial takes {in_trial:.1f} s inside run_trial)")
    print(f"concurrency speed-up on Ray: {walls['ray_serial'] / walls['ray_concurrent']:.2f}x")


if __name__ == "__main__":
    main()
