"""Training throughput of `harness` (ce, DeepSpeed, per-batch padding, length grouping) against a
Hugging Face `Trainer` configured for speed (dynamic padding, length-grouped batches), with the
Trainer as `run_glue.py` sets it up by default (every sequence padded to 128) as a labelled
second column.

Same model (minilm-l6), batch size, torch threads and training examples; the two sides alternate
in rounds, each in a fresh process (benchmarks/peer.py), and the per-round ratio is reported as
median and range. The peer needs `pip install -e '.[bench]'`.

    python benchmarks/throughput_vs_trainer.py --data-dir ../shared/glue [--tasks rte,sst2] [--rounds 5]
    python benchmarks/throughput_vs_trainer.py --tasks rte,cola --steps 0 --no-pad128 --rounds 3   # whole epochs
    python benchmarks/throughput_vs_trainer.py --options pad,reads,compile ...   # and each step option
"""

from __future__ import annotations

import argparse
import os

from peer import OPTIONS, SIDES, option_names, rounds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/glue")
    p.add_argument("--tasks", default="rte,sst2")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=20, help="timed steps; 0: one epoch of the whole training split")
    p.add_argument("--no-pad128", action="store_true", help="leave out the run_glue.py-defaults column (slow)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    help_options = f"also the harness with each step option of {', '.join(OPTIONS)}"
    p.add_argument("--options", type=option_names, default=(), help=help_options)
    a = p.parse_args()
    print(f"minilm-l6, batch {a.batch_size}, {a.steps} steps ({a.warmup} warm-up), {a.threads} threads")
    for task in a.tasks.split(","):
        spec = {
            "suite": "glue",
            "task": task,
            "model": "minilm-l6",
            "data_dir": os.path.abspath(a.data_dir),
            "steps": a.steps,
            "warmup": a.warmup,
            "batch": a.batch_size,
            "lr": 2e-5,
            "bf16": False,
            "threads": a.threads,
        }
        sides = tuple(s for s in SIDES if not (a.no_pad128 and s == "trainer-pad128"))
        rounds(spec, a.rounds, task, sides, a.options)


if __name__ == "__main__":
    main()
