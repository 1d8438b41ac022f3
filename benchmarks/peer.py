"""The harness's training throughput against its named peer, a Hugging Face ``Trainer`` configured as
its users configure it for speed (``DataCollatorWithPadding``: each batch padded to its longest;
``train_sampling_strategy="group_by_length"``: batches of similar lengths; bf16 on a GPU), on the
same model, task, batch, examples and threads. A second, labelled column is the Trainer as
``run_glue.py`` sets it up by default (every sequence padded to 128), which is not a fair peer.
Each side is timed in a process of its own (Trainer wraps its model in DDP once the harness's
process group exists in a process), and the sides alternate in rounds, their order rotating, so a
load that comes and goes on a shared machine shows as spread in the per-round ratio rather than
as bias. Used by throughput_vs_trainer.py and gpu_check.py; the peer needs ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _rate(stamps: list[float], warmup: int, batch: int) -> float:
    """Samples/s from the end of the warm-up steps to the end of the last step."""
    return (len(stamps) - warmup) * batch / (stamps[-1] - stamps[warmup - 1])


SIDES = ("trainer", "trainer-pad128", "harness")
LABELS = {"trainer": "HF Trainer (dynamic padding, length-grouped)", "trainer-pad128": "run_glue.py defaults (pad 128)"}


def time_side(side: str, spec: dict, on_step=lambda: None) -> float:
    """Samples/s of one side (``trainer``, ``trainer-pad128`` or ``harness``) for ``spec``: suite, task,
    model, data_dir, steps, warmup, batch, lr, bf16, threads. Runs in this process; ``on_step()``
    after each step (benchmarks/profile_step.py steps its profiler there)."""
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
    batch, stamps = spec["batch"], []
    n = spec["steps"] * batch or len(data.splits["train"])  # steps 0: one epoch of the whole split
    set_seed(1)
    tok, model = resolve(spec["model"], plugins.models).load(task.num_labels)
    if side.startswith("trainer"):
        from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments

        cols = ["text_a", "text_b"] if task.pair else ["text_a"]
        fast = side == "trainer"
        padding = {} if fast else {"padding": "max_length"}
        train = subsample(data.splits["train"], n).map(
            lambda b: tok(*[b[c] for c in cols], max_length=128, truncation=True, **padding),
            batched=True,
            remove_columns=[*cols, "idx"],
        )

        class Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                stamps.append(time.perf_counter())
                on_step()

        with tempfile.TemporaryDirectory() as out:
            args = TrainingArguments(
                output_dir=out,
                per_device_train_batch_size=batch,
                max_steps=spec["steps"] or -1,
                num_train_epochs=1,
                learning_rate=spec["lr"],
                report_to=[],
                logging_strategy="no",
                save_strategy="no",
                bf16=spec["bf16"],
                use_cpu=not torch.cuda.is_available(),
                dataloader_num_workers=0,
                seed=1,
                disable_tqdm=True,
                **({"train_sampling_strategy": "group_by_length"} if fast else {}),
            )
            collator = DataCollatorWithPadding(tok) if fast else None
            Trainer(model=model, args=args, train_dataset=train, data_collator=collator, callbacks=[Clock()]).train()
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
                on_step()

        fit(cfg, spec["lr"], model, plugins.objectives.get("ce")(task.num_labels), task, train, {}, clock)
    return _rate(stamps, spec["warmup"], batch)


LAUNCHER_VARIABLES = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _single_process_env() -> dict[str, str]:
    """This environment without a distributed launcher's variables: a caller that has joined a process
    group (the harness sets LOCAL_RANK) must not make the Trainer's accelerate expect a launch."""
    return {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}


PRELOAD = ("torch", "transformers", "peft", "bitsandbytes", "deepspeed", "harness.trainer", "harness.lora")


def in_fresh_process(fn, *args):
    """``fn(*args)`` in a process of its own, its result returned; its error raised here with the child's
    traceback. Without CUDA the process is forked from a server that has imported ``PRELOAD`` and
    done nothing else (no model, no tensor: about 8 s of imports saved per side on a 2-core CPU);
    with CUDA, which a forked process cannot share, a fresh interpreter (spawn)."""
    import multiprocessing

    import torch

    if torch.cuda.is_available():
        ctx = multiprocessing.get_context("spawn")
    else:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(PRELOAD))  # a module that is not installed is skipped
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(send, fn, args))
    child.start()
    send.close()  # the child holds the only writing end: its death ends recv() with EOFError
    try:
        ok, value = receive.recv()
    except EOFError:
        ok, value = False, "the process died before it could answer"
    child.join()
    if not ok and child.exitcode:
        value = f"{value} (exit code {child.exitcode})"
    if not ok:
        raise RuntimeError(f"{getattr(fn, '__name__', fn)}{args!r} failed:\n{value}")
    return value


def _child(send, fn, args) -> None:
    """Runs in the fresh process: its output goes to a file, shown only with its error."""
    import traceback

    for name in LAUNCHER_VARIABLES:  # a caller that joined a process group must not make the child expect one
        os.environ.pop(name, None)
    with tempfile.TemporaryFile("w+") as log:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
            os.dup2(log.fileno(), stream.fileno())
        try:
            send.send((True, fn(*args)))
        except BaseException:
            sys.stdout.flush()
            sys.stderr.flush()
            log.seek(0)
            send.send((False, log.read()[-3000:] + traceback.format_exc()))


def rounds(spec: dict, count: int, label: str, sides: tuple[str, ...] = SIDES) -> list[float]:
    """``count`` rounds of ``sides`` (by default all three: the fast Trainer, run_glue.py's pad-128
    Trainer, the harness), each in a fresh process (``in_fresh_process``), the order rotating from round to round;
    prints each round and the median and range of harness / fast Trainer (the headline) and of
    harness / pad-128 Trainer (labelled); returns the headline ratios."""
    ratios: dict[str, list[float]] = {peer: [] for peer in sides if peer != "harness"}
    for r in range(count):
        rates = {}
        for side in sides[r % len(sides) :] + sides[: r % len(sides)]:
            rates[side] = in_fresh_process(time_side, side, spec)
        for peer in ratios:
            ratios[peer].append(rates["harness"] / rates[peer])
        peers = " | ".join(f"{LABELS[p]} {rates[p]:.1f} samples/s ({ratios[p][-1]:.2f}x)" for p in ratios)
        print(f"{label} round {r + 1}: harness {rates['harness']:.1f} samples/s | {peers}", flush=True)
    for peer, values in ratios.items():
        name = "Trainer" if peer == "trainer" else "run_glue.py defaults"
        print(
            f"{label} ratio harness / {name}: median {statistics.median(values):.2f}x "
            f"(range {min(values):.2f}-{max(values):.2f}, {count} rounds)"
        )
    return ratios["trainer"]


if __name__ == "__main__":  # one timed side: python peer.py SIDE SPEC_JSON (what ``rounds`` runs)
    p = argparse.ArgumentParser()
    p.add_argument("side", choices=SIDES)
    p.add_argument("spec")
    a = p.parse_args()
    print(json.dumps(time_side(a.side, json.loads(a.spec))))
