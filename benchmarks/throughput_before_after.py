"""Whole-epoch training throughput of the harness now against the harness at an earlier commit, with
the fair Trainer (benchmarks/peer.py) timed in the same rounds: a change's before/after ratio and both
sides' ratio to the named peer. Each side in a fresh process, the order rotating per round.

    git worktree add /tmp/before COMMIT && cp benchmarks/peer.py /tmp/before/benchmarks/
    python benchmarks/throughput_before_after.py --before /tmp/before --tasks cola,rte --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from peer import _single_process_env

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="a work tree of the earlier commit (this peer.py copied in)")
    p.add_argument("--data-dir", default="../shared/glue")
    p.add_argument("--tasks", default="cola,rte")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    a = p.parse_args()
    before = Path(a.before).resolve()
    sides = [("trainer", "trainer", HERE), ("before", "harness", before / "benchmarks"), ("now", "harness", HERE)]
    for task in a.tasks.split(","):
        spec = {"suite": "glue", "task": task, "model": "minilm-l6", "data_dir": os.path.abspath(a.data_dir),
                "steps": 0, "warmup": 3, "batch": 32, "lr": 2e-5, "bf16": False, "threads": a.threads}  # fmt: skip
        rates: dict[str, list[float]] = {name: [] for name, _, _ in sides}
        for r in range(a.rounds):
            for name, side, where in sides[r % 3 :] + sides[: r % 3]:
                env = _single_process_env()
                if name == "before":  # its harness, not the installed one
                    env["PYTHONPATH"] = str(before)
                cmd = [sys.executable, str(where / "peer.py"), side, json.dumps(spec)]
                done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=where.parent)
                if done.returncode:
                    raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
                rates[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"{task} round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()), flush=True)
        for name in ("before", "now"):
            ratios = [h / t for h, t in zip(rates[name], rates["trainer"], strict=True)]
            print(f"{task} {name} / Trainer: median {statistics.median(ratios):.2f}x "
                  f"(range {min(ratios):.2f}-{max(ratios):.2f})")  # fmt: skip
        change = [n / b for n, b in zip(rates["now"], rates["before"], strict=True)]
        print(f"{task} now / before: median {statistics.median(change):.2f}x")


if __name__ == "__main__":
    main()
