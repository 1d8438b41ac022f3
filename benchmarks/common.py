"""What the benchmark scripts share: arguments, GLUE data as batches, interleaved step timing."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from harness.batching import Columns, train_batches
from harness.data import tokenize


def arguments(
    doc: str, task: str = "rte", rounds: int = 30, warmup: int = 3, extra: Callable | None = None
) -> argparse.Namespace:
    """The shared options; ``extra(parser)`` adds a script's own."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/glue")
    p.add_argument("--task", default=task)
    p.add_argument("--rounds", type=int, default=rounds, help="timed steps (or rounds) per variant")
    p.add_argument("--warmup", type=int, default=warmup, help="untimed steps first")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    if extra is not None:
        extra(p)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    return a


def glue_train(plugins, task_name: str, tok, n: int, data_dir: str):
    """(task, raw task data, the first ``n`` tokenized training examples as Columns)."""
    glue = plugins.suites.get("glue")
    task = glue.task(task_name)
    data = glue.load(task, Path(data_dir))
    return task, data, Columns(tokenize(task, data, tok, 128, n)["train"], tok.pad_token_id)


def interleaved(train: Columns, batch_size: int, warmup: int, variants: dict[str, Callable[[dict], None]]):
    """Runs every variant's step on each batch in turn; returns the timed seconds per variant."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i, rows in enumerate(train_batches(train.lengths, batch_size, np.random.default_rng(1))):
        batch = train.collate(rows)
        for name, step in variants.items():
            started = time.perf_counter()
            step(dict(batch))
            if torch.cuda.is_available():  # the step leaves its loss on the device: wait for its kernels
                torch.cuda.synchronize()
            if i >= warmup:
                times[name].append(time.perf_counter() - started)
    return times


def print_ratios(times: dict[str, list[float]], base: str) -> None:
    reference = statistics.median(times[base])
    for name, t in times.items():
        med = statistics.median(t)
        print(f"{name:22s} median step {1000 * med:7.1f} ms   ratio to {base} {med / reference:.3f}x")
