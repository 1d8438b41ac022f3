"""Where a training step's time goes, by torch.profiler: the harness's phases and the operators with
the most self time; ``--side trainer`` profiles the named peer (a ``Trainer`` with dynamic padding and
length-grouped batches, benchmarks/peer.py) the same way, for an operator-by-operator comparison.

minilm-l6, ``ce``, batch 32, the task's training data as each side batches it. After --warmup
untimed steps, --rounds steps are profiled; prints the step time, each phase's share (collate,
forward, loss, backward, optimizer step: the ``harness.*`` ranges the loop marks) and the top
operators, per step.

    python benchmarks/profile_step.py --task cola [--side trainer] [--rounds 30] [--top 25]
"""

from __future__ import annotations

import os

import torch
from common import arguments
from peer import time_side
from torch.profiler import ProfilerActivity, profile, schedule

PHASES = ("harness.collate", "harness.forward", "harness.loss", "harness.backward", "harness.optimizer_step")


def _options(p) -> None:
    p.add_argument("--side", choices=("harness", "trainer"), default="harness")
    p.add_argument("--top", type=int, default=25, help="operators to list")


def main() -> None:
    a = arguments(__doc__, task="cola", rounds=30, warmup=5, extra=_options)
    spec = {
        "suite": "glue",
        "task": a.task,
        "model": "minilm-l6",
        "data_dir": os.path.abspath(a.data_dir),
        "steps": a.warmup + 1 + a.rounds,
        "warmup": a.warmup,
        "batch": a.batch_size,
        "lr": 2e-5,
        "bf16": False,
        "threads": a.threads,
        "read_every": 1,  # a step event, so a profiler step, after every step (on a GPU also a device sync)
    }
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities, schedule=schedule(wait=a.warmup, warmup=1, active=a.rounds)) as prof:
        time_side(a.side, spec, prof.step)
    events = prof.key_averages()
    total = sum(e.cpu_time_total for e in events if e.key.startswith("ProfilerStep"))
    print(f"{a.side}: minilm-l6 {a.task} ce, batch {a.batch_size}, {a.rounds} profiled steps, {a.threads} threads")
    print(f"step {total / a.rounds / 1000:.1f} ms")
    for e in sorted((e for e in events if e.key in PHASES), key=lambda e: -e.cpu_time_total):
        print(f"  {e.key:24s} {e.cpu_time_total / a.rounds / 1000:7.1f} ms  {100 * e.cpu_time_total / total:5.1f}%")
    print(f"top operators by self time, ms per step ({a.rounds} steps)")
    ops = sorted(
        (e for e in events if not e.key.startswith(("ProfilerStep", "harness."))), key=lambda e: -e.self_cpu_time_total
    )
    for e in ops[: a.top]:
        print(f"  {e.key[:60]:60s} {e.self_cpu_time_total / a.rounds / 1000:8.2f} ms  {e.count // a.rounds:5d} calls")


if __name__ == "__main__":
    main()
