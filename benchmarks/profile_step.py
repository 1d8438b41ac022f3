"""Where a training step's time goes: the harness's phases and the top operators, by torch.profiler.

minilm-l6 (or --model), one objective, batch 32, the task's training data as the harness batches
it (length-grouped, each batch padded to its longest). After --warmup untimed steps, --rounds steps
run under the profiler; prints each phase's share of the step (collate, forward, loss, backward,
optimizer step: the ``harness.*`` ranges the loop marks) and the operators with the most self time.

    python benchmarks/profile_step.py --task cola [--objective ce] [--rounds 30] [--top 25]
"""

from __future__ import annotations

import numpy as np
import torch
from common import arguments, glue_train
from torch.profiler import ProfilerActivity, profile, record_function

from harness import plugins as plugin_loader
from harness.batching import train_batches
from harness.config import TrialConfig
from harness.engine import build
from harness.trainer import _FeatureTap, train_step

PHASES = ("harness.collate", "harness.forward", "harness.loss", "harness.backward", "harness.optimizer_step")


def _options(p) -> None:
    p.add_argument("--top", type=int, default=25, help="operators to list")


def main() -> None:
    a = arguments(__doc__, task="cola", rounds=30, warmup=5, extra=_options)
    plugins = plugin_loader.load()
    torch.manual_seed(1)
    glue = plugins.suites.get("glue")
    task = glue.task(a.task)
    tok, model = plugins.models.get("minilm-l6").load(task.num_labels)
    n = (a.rounds + a.warmup) * a.batch_size
    task, _, train = glue_train(plugins, a.task, tok, n, a.data_dir)
    objective = plugins.objectives.get("ce")(task.num_labels)
    cfg = TrialConfig(suite="glue", task=task.name, objective="ce", model="minilm-l6", seed=1)
    engine = build(model, cfg, 2e-5, a.rounds + a.warmup)
    engine.train()
    tap = _FeatureTap(engine.module) if "features" in objective.needs else None
    batches = train_batches(train.lengths, a.batch_size, np.random.default_rng(1))

    def step(rows):
        with record_function("harness.collate"):
            batch = {k: v.to(engine.device) for k, v in train.collate(rows).items()}
        train_step(engine, objective, [batch], tap)

    for rows in batches[: a.warmup]:
        step(rows)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        with record_function("harness.step"):
            for rows in batches[a.warmup : a.warmup + a.rounds]:
                step(rows)
    events = prof.key_averages()
    total = next(e for e in events if e.key == "harness.step").cpu_time_total
    print(f"minilm-l6 {task.name} ce, batch {a.batch_size}, {a.rounds} profiled steps, {a.threads} threads")
    print(f"step {total / a.rounds / 1000:.1f} ms")
    for e in sorted((e for e in events if e.key in PHASES), key=lambda e: -e.cpu_time_total):
        print(f"  {e.key:24s} {e.cpu_time_total / a.rounds / 1000:7.1f} ms  {100 * e.cpu_time_total / total:5.1f}%")
    print(events.table(sort_by="self_cpu_time_total", row_limit=a.top))


if __name__ == "__main__":
    main()
