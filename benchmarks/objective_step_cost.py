"""Cost of a training step under a CMI objective relative to a `ce` step (the named peer).

minilm-l6, batch 32, CPU. Two engines start from the same weights; each round runs one
step of every objective on the same batch, in turn (interleaved, so drift in machine speed
hits all alike). Reports the median step time per objective and its ratio to `ce`.

    python benchmarks/objective_step_cost.py --data-dir ../shared/glue [--task rte] [--rounds 30]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from harness import plugins as plugin_loader
from harness.batching import Columns, train_batches
from harness.config import TrialConfig
from harness.data import tokenize
from harness.engine import build
from harness.trainer import _FeatureTap, train_step

OBJECTIVES = {"ce": {}, "cmi_min": {}, "cmi_min (features)": {"space": "features"}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/glue")
    p.add_argument("--task", default="rte")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    plugins = plugin_loader.load()
    glue = plugins.suites.get("glue")
    task = glue.task(a.task)
    torch.manual_seed(1)
    tok, model = plugins.models.get("minilm-l6").load(task.num_labels)
    n = (a.rounds + a.warmup) * a.batch_size
    train = Columns(tokenize(task, glue.load(task, Path(a.data_dir)), tok, 128, n)["train"], tok.pad_token_id)
    batches = train_batches(train.lengths, a.batch_size, np.random.default_rng(1))
    runners = {}
    for name, hp in OBJECTIVES.items():
        cls = plugins.objectives.get(name.split()[0])
        objective = cls(task.num_labels, **hp)
        cfg = TrialConfig(suite="glue", task=task.name, objective=cls.name, model="minilm-l6", seed=1)
        engine = build(copy.deepcopy(model), cfg, 2e-5, len(batches))
        engine.train()
        tap = _FeatureTap(engine.module) if "features" in objective.needs else None
        runners[name] = (engine, objective, tap)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for i, rows in enumerate(batches):
        batch = train.collate(rows)
        for name, (engine, objective, tap) in runners.items():
            started = time.perf_counter()
            train_step(engine, objective, dict(batch), tap)
            if i >= a.warmup:
                times[name].append(time.perf_counter() - started)
    base = statistics.median(times["ce"])
    print(f"minilm-l6, {task.name}, batch {a.batch_size}, {a.rounds} interleaved rounds, {a.threads} threads")
    for name, t in times.items():
        med = statistics.median(t)
        print(f"{name:20s} median step {1000 * med:7.1f} ms   ratio to ce {med / base:.3f}x")


if __name__ == "__main__":
    main()
