"""The harness's training throughput against its named peer, a Hugging Face ``Trainer`` set up as
``run_glue.py`` does (every sequence padded to 128), on the same model, task, batch, examples and
threads. Each side is timed in a subprocess of its own (Trainer wraps its model in DDP once the
harness's process group exists in a process), and the sides alternate in rounds, so a load that
comes and goes on a shared machine shows as spread in the per-round ratio rather than as bias.
Used by throughput_vs_trainer.py and gpu_check.py; the peer needs ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _rate(stamps: list[float], warmup: int, batch: int) -> float:
    """Samples/s from the end of the warm-up steps to the end of the last step."""
    return (len(stamps) - warmup) * batch / (stamps[-1] - stamps[warmup - 1])


def time_side(side: str, spec: dict) -> float:
    """Samples/s of one side (``trainer`` or ``harness``) for ``spec``: suite, task, model, data_dir,
    steps, warmup, batch, lr, bf16, threads. Runs in this process."""
    import torch
    from transformers import set_seed

    from harness import plugins as plugin_loader
    from harness.data import subsample, tokenize
    from harness.models import resolve

    torch.set_num_threads(spec["threads"])
    plugins = plugin_loader.load()
    suite = plugins.suites.get(spec["suite"])
    task = suite.task(spec["task"])
    data = suite.load(task, Path(spec["data_dir"]) if spec.get("data_dir") else None)
    n, batch, stamps = spec["steps"] * spec["batch"], spec["batch"], []
    set_seed(1)
    tok, model = resolve(spec["model"], plugins.models).load(task.num_labels)
    if side == "trainer":
        from transformers import Trainer, TrainerCallback, TrainingArguments

        cols = ["text_a", "text_b"] if task.pair else ["text_a"]
        train = subsample(data.splits["train"], n).map(
            lambda b: tok(*[b[c] for c in cols], padding="max_length", max_length=128, truncation=True),
            batched=True,
            remove_columns=[*cols, "idx"],
        )

        class Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                stamps.append(time.perf_counter())

        with tempfile.TemporaryDirectory() as out:
            args = TrainingArguments(
                output_dir=out,
                per_device_train_batch_size=batch,
                max_steps=spec["steps"],
                learning_rate=spec["lr"],
                report_to=[],
                logging_strategy="no",
                save_strategy="no",
                bf16=spec["bf16"],
                use_cpu=not torch.cuda.is_available(),
                dataloader_num_workers=0,
                seed=1,
                disable_tqdm=True,
            )
            Trainer(model=model, args=args, train_dataset=train, callbacks=[Clock()]).train()
    else:
        from harness.batching import Columns
        from harness.config import TrialConfig
        from harness.trainer import fit

        cfg = TrialConfig(
            suite=spec["suite"],
            task=task.name,
            objective="ce",
            model=spec["model"],
            seed=1,
            epochs=1,
            batch_size=batch,
            max_train_samples=n,
            lr=spec["lr"],
            precision="bf16" if spec["bf16"] else "fp32",
        )
        train = Columns(tokenize(task, data, tok, 128, n)["train"], tok.pad_token_id)

        def clock(event):
            if event["event"] == "step":
                stamps.append(time.perf_counter())

        fit(cfg, spec["lr"], model, plugins.objectives.get("ce")(task.num_labels), task, train, {}, clock)
    return _rate(stamps, spec["warmup"], batch)


LAUNCHER_VARIABLES = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _single_process_env() -> dict[str, str]:
    """This environment without a distributed launcher's variables: a caller that has joined a process
    group (the harness sets LOCAL_RANK) must not make the Trainer's accelerate expect a launch."""
    return {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}


def rounds(spec: dict, count: int, label: str) -> list[float]:
    """``count`` rounds of Trainer then harness, each in a fresh subprocess; prints each round and the
    median and range of the ratio harness / Trainer; returns the ratios."""
    ratios = []
    for r in range(count):
        rates = {}
        for side in ("trainer", "harness"):
            cmd = [sys.executable, __file__, side, json.dumps(spec)]
            done = subprocess.run(cmd, capture_output=True, text=True, env=_single_process_env())
            if done.returncode != 0:
                raise SystemExit(f"{side} side failed:\n{done.stderr[-3000:]}")
            rates[side] = json.loads(done.stdout.strip().splitlines()[-1])
        ratios.append(rates["harness"] / rates["trainer"])
        print(
            f"{label} round {r + 1}: HF Trainer (pad 128) {rates['trainer']:.1f} samples/s | harness "
            f"{rates['harness']:.1f} samples/s | ratio {ratios[-1]:.2f}x",
            flush=True,
        )
    print(
        f"{label} ratio harness / Trainer: median {statistics.median(ratios):.2f}x "
        f"(range {min(ratios):.2f}-{max(ratios):.2f}, {count} rounds)"
    )
    return ratios


if __name__ == "__main__":  # one timed side: python peer.py SIDE SPEC_JSON (what ``rounds`` runs)
    p = argparse.ArgumentParser()
    p.add_argument("side", choices=("trainer", "harness"))
    p.add_argument("spec")
    a = p.parse_args()
    print(json.dumps(time_side(a.side, json.loads(a.spec))))
