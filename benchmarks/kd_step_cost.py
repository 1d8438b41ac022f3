"""Cost of a distillation step with cached teacher logits, against a `ce` step (the named peer)
and against a naive distillation step that runs the teacher forward on every batch.

Student minilm-l6:half (3 layers), teacher minilm-l6 (6 layers), batch 32, CPU. Each round
runs one step of each variant on the same batch, in turn; medians are compared.

    python benchmarks/kd_step_cost.py --data-dir ../shared/glue [--task rte] [--rounds 30]
"""

from __future__ import annotations

import copy

import torch
from common import arguments, glue_train, interleaved, print_ratios

from harness import plugins as plugin_loader
from harness.config import TrialConfig
from harness.engine import build, harness_clip
from harness.forward import NOT_INPUTS
from harness.models import resolve
from harness.trainer import predict_logits, train_step


def main() -> None:
    a = arguments(__doc__)
    plugins = plugin_loader.load()
    torch.manual_seed(1)
    num_labels = plugins.suites.get("glue").task(a.task).num_labels
    tok, teacher = resolve("minilm-l6", plugins.models).load(num_labels)
    _, student = resolve("minilm-l6:half", plugins.models).load(num_labels)
    task, _, train = glue_train(plugins, a.task, tok, (a.rounds + a.warmup) * a.batch_size, a.data_dir)
    cached = torch.full((int(train.idx.max()) + 1, task.num_labels), float("nan"))
    cached[train.idx] = torch.from_numpy(predict_logits(teacher, train, 64)).float()  # once, not timed
    teacher.eval()

    def from_cache(batch):
        batch["teacher_logits"] = cached[batch["idx"]]
        return batch

    def from_teacher(batch):
        with torch.no_grad():
            batch["teacher_logits"] = teacher(**{k: v for k, v in batch.items() if k not in NOT_INPUTS}).logits
        return batch

    cfg = TrialConfig(suite="glue", task=task.name, objective="kd", model="minilm-l6:half", seed=1)
    clip = harness_clip(cfg)
    steps = {}
    for name, objective, source in (
        ("ce", "ce", lambda b: b),
        ("kd, cached teacher", "kd", from_cache),
        ("kd, teacher forward", "kd", from_teacher),
    ):
        engine = build(copy.deepcopy(student), cfg, 2e-5, a.rounds + a.warmup)
        engine.train()
        obj = plugins.objectives.get(objective)(task.num_labels)
        steps[name] = lambda batch, e=engine, o=obj, s=source: train_step(e, o, [s(batch)], None, clip)
    print(
        f"student minilm-l6:half, teacher minilm-l6, {task.name}, batch {a.batch_size}, {a.rounds} rounds, "
        f"{a.threads} threads"
    )
    print_ratios(interleaved(train, a.batch_size, a.warmup, steps), "ce")


if __name__ == "__main__":
    main()
