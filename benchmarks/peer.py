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


class StepClock:
    """Times steps the same way on both sides: at every step on the CPU; on a GPU at every
    ``GPU_READ_EVERY``-th step and the last (where the harness reads its losses back), after
    waiting for the device, so a time is when that step's kernels have run."""

    def __init__(self):
        import torch

        self.cuda, self.every, self.points = torch.cuda.is_available(), 1, []  # points: (step, seconds)
        if self.cuda:
            from harness import trainer

            self.every = getattr(trainer, "GPU_READ_EVERY", 1)  # an earlier commit's harness read every step

    def __call__(self, step: int, last: int) -> bool:
        """Records ``step`` (1-based) of ``last`` if it is one timed; returns whether it was."""
        if step % self.every and step != last:
            return False
        if self.cuda:
            import torch

            torch.cuda.synchronize()
        self.points.append((step, time.perf_counter()))
        return True

    def rate(self, warmup: int, batch: int) -> float:
        """Samples/s from the first timed step at or after ``warmup`` to the last (a side that reports
        its steps every N, as the harness reading its loss every 16 steps, starts at the first N)."""
        (s0, t0), (s1, t1) = next(p for p in self.points if p[0] >= warmup), self.points[-1]
        if s1 == s0:
            raise ValueError(f"no step timed after the warm-up (steps reported: {[s for s, _ in self.points]})")
        return (s1 - s0) * batch / (t1 - t0)


SIDES = ("trainer", "trainer-pad128", "harness")
LABELS = {"trainer": "HF Trainer (dynamic padding, length-grouped)", "trainer-pad128": "run_glue.py defaults (pad 128)"}
# the harness with one training-step option away from its defaults: on the CPU the defaults are no
# padding multiple and a loss read back every step, on a GPU a multiple of 8 and every 16 steps
OPTIONS = {
    "pad": ("--pad-multiple 8", {"pad_multiple": 8}, "--pad-multiple 1", {"pad_multiple": 1}),
    "reads": ("loss read every 16 steps", {"read_every": 16}, "loss read every step", {"read_every": 1}),
    "compile": ("--compile", {"compile": True}, "--compile", {"compile": True}),
}


def option_names(text: str) -> tuple[str, ...]:
    """``--options``' value: comma-separated names of ``OPTIONS`` (argparse refuses others)."""
    names = tuple(o for o in text.split(",") if o)
    if set(names) - set(OPTIONS):
        raise argparse.ArgumentTypeError(f"of {', '.join(OPTIONS)}")
    return names


def variant(name: str, cuda: bool) -> tuple[str, dict]:
    """The label and spec overrides of harness option ``name`` (``OPTIONS``) on this device."""
    cpu_label, cpu, gpu_label, gpu = OPTIONS[name]
    return (gpu_label, gpu) if cuda else (cpu_label, cpu)


def time_side(side: str, spec: dict, on_step=lambda: None) -> float:
    """Samples/s of one side (``trainer``, ``trainer-pad128`` or ``harness``) for ``spec``: suite, task,
    model, data_dir, steps, warmup, batch, lr, bf16, threads, and for the harness optionally
    pad_multiple, compile and read_every (``fit``'s). Runs in this process; ``on_step()`` after each
    step the harness reports (benchmarks/profile_step.py steps its profiler there, with read_every 1)."""
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
    batch, clock = spec["batch"], StepClock()
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
                clock(state.global_step, state.max_steps)
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
        from harness import batching
        from harness.config import TrialConfig
        from harness.trainer import fit

        options = {"compile": True} if spec.get("compile") else {}  # not in earlier commits' TrialConfig
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
            **options,
        )
        multiple = batching.pad_multiple(spec.get("pad_multiple")) if hasattr(batching, "pad_multiple") else 1
        train = batching.Columns(tokenize(task, data, tok, 128, n)["train"], tok.pad_token_id, multiple, 128)

        def progress(event):
            if event["event"] == "step":
                clock(event["step"], event["total_steps"])
                on_step()

        objective = plugins.objectives.get("ce")(task.num_labels)
        read = {"read_every": spec["read_every"]} if "read_every" in spec else {}  # not in earlier commits' fit
        fit(cfg, spec["lr"], model, objective, task, train, {}, progress, **read)
    return clock.rate(spec["warmup"], batch)


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


def rounds(
    spec: dict, count: int, label: str, sides: tuple[str, ...] = SIDES, options: tuple[str, ...] = ()
) -> list[float]:
    """``count`` rounds of ``sides`` (by default all three: the fast Trainer, run_glue.py's pad-128
    Trainer, the harness) and of the harness with each of ``options`` (``OPTIONS``), each in a fresh
    process (``in_fresh_process``), the order rotating from round to round; prints each round and the
    median and range of harness / fast Trainer (the headline), harness / pad-128 Trainer (labelled)
    and, per option, option / Trainer and option / harness defaults; on a GPU in bf16 also each side's
    MFU (``mfu``). Returns the headline ratios."""
    import torch

    cuda = torch.cuda.is_available()
    runs = [(side, side, spec) for side in sides] + [
        (f"harness {name}", "harness", {**spec, **extra}) for name, extra in (variant(o, cuda) for o in options)
    ]
    ratios: dict[str, list[float]] = {peer: [] for peer in sides if peer != "harness"}
    against = {key: ([], []) for key, side, _ in runs if key != side}  # option / Trainer, option / harness
    medians: dict[str, list[float]] = {key: [] for key, _, _ in runs}
    for r in range(count):
        rates = {}
        for key, side, s in runs[r % len(runs) :] + runs[: r % len(runs)]:
            rates[key] = in_fresh_process(time_side, side, s)
            medians[key].append(rates[key])
        for peer in ratios:
            ratios[peer].append(rates["harness"] / rates[peer])
        peers = " | ".join(f"{LABELS[p]} {rates[p]:.1f} samples/s ({ratios[p][-1]:.2f}x)" for p in ratios)
        print(f"{label} round {r + 1}: harness {rates['harness']:.1f} samples/s | {peers}", flush=True)
        for key, (to_trainer, to_harness) in against.items():
            to_trainer.append(rates[key] / rates["trainer"])
            to_harness.append(rates[key] / rates["harness"])
            print(f"{label} round {r + 1}: {key} {rates[key]:.1f} samples/s ({to_trainer[-1]:.2f}x the Trainer, "
                  f"{to_harness[-1]:.2f}x the harness's defaults)", flush=True)  # fmt: skip
    for peer, values in ratios.items():
        name = "Trainer" if peer == "trainer" else "run_glue.py defaults"
        print(f"{label} ratio harness / {name}: {_spread(values, count)}")
    for key, (to_trainer, to_harness) in against.items():
        print(f"{label} ratio {key} / Trainer: {_spread(to_trainer, count)}; / harness defaults: "
              f"{_spread(to_harness, count)}")  # fmt: skip
    if cuda and spec["bf16"]:
        mfu(spec, {key: statistics.median(v) for key, v in medians.items()}, label)
    return ratios["trainer"]


def _spread(values: list[float], count: int) -> str:
    return f"median {statistics.median(values):.2f}x (range {min(values):.2f}-{max(values):.2f}, {count} rounds)"


BF16_PEAK = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12}


def mfu(spec: dict, rates: dict[str, float], label: str) -> None:
    """Model FLOPs utilisation of each side at its median samples/s: 6 x non-embedding parameters x
    the mean non-pad tokens of an example (forward and backward; attention's own products left
    out, small at these lengths) per second, over the card's dense bf16 peak."""
    import torch

    from harness import plugins as plugin_loader
    from harness.data import tokenize
    from harness.models import resolve

    name = torch.cuda.get_device_name()
    peak = next((v for k, v in BF16_PEAK.items() if k in name), None)
    if peak is None:
        print(f"{label} MFU: no bf16 peak known for {name}")
        return
    plugins = plugin_loader.load()
    suite = plugins.suites.get(spec["suite"])
    task = suite.task(spec["task"])
    data = suite.load(task, Path(spec["data_dir"]) if spec.get("data_dir") else None)
    tok, model = resolve(spec["model"], plugins.models).load(task.num_labels)
    lengths = tokenize(task, data, tok, 128, spec["steps"] * spec["batch"] or None)["train"]["length"]
    tokens = sum(lengths) / len(lengths)  # the examples the sides trained on
    embedding = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding))
    flops = 6 * (sum(p.numel() for p in model.parameters()) - embedding) * tokens
    shares = ", ".join(f"{key} {100 * rate * flops / peak:.1f}%" for key, rate in rates.items())
    print(f"{label} MFU ({name}, bf16 peak {peak / 1e12:.0f} TFLOP/s, {tokens:.1f} tokens an example): {shares}")


if __name__ == "__main__":  # one timed side: python peer.py SIDE SPEC_JSON (what ``rounds`` runs)
    p = argparse.ArgumentParser()
    p.add_argument("side", choices=SIDES)
    p.add_argument("spec")
    a = p.parse_args()
    print(json.dumps(time_side(a.side, json.loads(a.spec))))
