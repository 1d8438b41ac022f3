"""Cost of a training step under a CMI objective relative to a `ce` step (the named peer).

minilm-l6, batch 32, CPU. One engine per objective, all from the same weights; each round
runs one step of every objective on the same batch, in turn (interleaved, so drift in
machine speed hits all alike). Prints the median step time per objective and its ratio to `ce`.

    python benchmarks/objective_step_cost.py --data-dir ../shared/glue [--task rte] [--rounds 30]
"""

from __future__ import annotations

import copy

import torch
from common import arguments, glue_train, interleaved, print_ratios

from harness import plugins as plugin_loader
from harness.config import TrialConfig
from harness.engine import build, harness_clip
from harness.forward import FeatureTap
from harness.trainer import train_step

OBJECTIVES = {"ce": {}, "cmi_min": {}, "cmi_min (features)": {"space": "features"}}


def main() -> None:
    a = arguments(__doc__)
    plugins = plugin_loader.load()
    torch.manual_seed(1)
    num_labels = plugins.suites.get("glue").task(a.task).num_labels
    tok, model = plugins.models.get("minilm-l6").load(num_labels)
    task, _, train = glue_train(plugins, a.task, tok, (a.rounds + a.warmup) * a.batch_size, a.data_dir)
    steps = {}
    for name, hp in OBJECTIVES.items():
        objective = plugins.objectives.get(name.split()[0])(task.num_labels, **hp)
        cfg = TrialConfig(suite="glue", task=task.name, objective=objective.name, model="minilm-l6", seed=1)
        engine = build(copy.deepcopy(model), cfg, 2e-5, a.rounds + a.warmup)
        engine.train()
        tap = FeatureTap(engine.module) if "features" in objective.needs else None
        clip = harness_clip(cfg)
        steps[name] = lambda batch, e=engine, o=objective, t=tap, c=clip: train_step(e, o, [batch], t, c)
    print(f"minilm-l6, {task.name}, batch {a.batch_size}, {a.rounds} interleaved rounds, {a.threads} threads")
    print_ratios(interleaved(train, a.batch_size, a.warmup, steps), "ce")


if __name__ == "__main__":
    main()
