"""Training throughput of `harness` (ce, DeepSpeed, per-batch padding, length grouping) against a
Hugging Face `Trainer` set up as `run_glue.py` does by default (every sequence padded to 128).

Same model (minilm-l6), same batch size, same torch threads, same training examples, in one
process. Samples/s is timed from the end of the warm-up steps to the end of the last step.

    python benchmarks/throughput_vs_trainer.py --data-dir ../shared/glue [--tasks rte,sst2] [--steps 12]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from harness import plugins as plugin_loader
from harness.batching import Columns
from harness.config import TrialConfig
from harness.data import subsample, tokenize
from harness.trainer import fit


def rate(stamps: list[float], warmup: int, batch_size: int) -> float:
    return (len(stamps) - warmup) * batch_size / (stamps[-1] - stamps[warmup - 1])


def hf_trainer(model_spec, task, data, n: int, steps: int, warmup: int, bs: int) -> float:
    from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed

    set_seed(1)
    tok, model = model_spec.load(task.num_labels)
    cols = ["text_a", "text_b"] if task.pair else ["text_a"]
    train = subsample(data.splits["train"], n).map(
        lambda b: tok(*[b[c] for c in cols], padding="max_length", max_length=128, truncation=True),
        batched=True,
        remove_columns=[*cols, "idx"],
    )
    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=bs,
            max_steps=steps,
            learning_rate=2e-5,
            report_to=[],
            logging_strategy="no",
            save_strategy="no",
            use_cpu=True,
            dataloader_num_workers=0,
            seed=1,
            disable_tqdm=True,
        )
        Trainer(model=model, args=args, train_dataset=train, callbacks=[Clock()]).train()
    return rate(stamps, warmup, bs)


def harness_ce(plugins, task, data, n: int, steps: int, warmup: int, bs: int) -> float:
    from transformers import set_seed

    cfg = TrialConfig(
        suite="glue",
        task=task.name,
        objective="ce",
        model="minilm-l6",
        seed=1,
        epochs=1,
        batch_size=bs,
        max_train_samples=n,
        lr=2e-5,
    )
    set_seed(1)
    tok, model = plugins.models.get("minilm-l6").load(task.num_labels)
    train = Columns(tokenize(task, data, tok, 128, n)["train"], tok.pad_token_id)
    stamps: list[float] = []

    def clock(event):
        if event["event"] == "step":
            stamps.append(time.perf_counter())

    fit(cfg, 2e-5, model, plugins.objectives.get("ce")(task.num_labels), task, train, {}, clock)
    assert len(stamps) == steps
    return rate(stamps, warmup, bs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/glue")
    p.add_argument("--tasks", default="rte,sst2")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    plugins = plugin_loader.load()
    glue = plugins.suites.get("glue")
    n = a.steps * a.batch_size
    print(f"minilm-l6, batch {a.batch_size}, {a.steps} steps ({a.warmup} warm-up), {a.threads} threads")
    tasks = [glue.task(name) for name in a.tasks.split(",")]
    data = {t.name: glue.load(t, Path(a.data_dir)) for t in tasks}
    # All Trainer runs first: the harness starts a (1-process) torch.distributed group, after which
    # Trainer would wrap its model in DDP and be slowed down by it.
    base = {
        t.name: hf_trainer(plugins.models.get("minilm-l6"), t, data[t.name], n, a.steps, a.warmup, a.batch_size)
        for t in tasks
    }
    for t in tasks:
        ours = harness_ce(plugins, t, data[t.name], n, a.steps, a.warmup, a.batch_size)
        print(
            f"{t.name:6s} HF Trainer (pad 128) {base[t.name]:7.1f} samples/s | harness ce {ours:7.1f} samples/s | "
            f"ratio {ours / base[t.name]:.2f}x"
        )


if __name__ == "__main__":
    main()
