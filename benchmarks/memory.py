"""Peak training memory and samples/s of the harness against its named peer, a Hugging Face ``Trainer``
(with PEFT for LoRA) configured as its users configure it (dynamic padding, length-grouped batches),
on the same decoder, data, batch and steps: full fine-tuning; LoRA (r 8, alpha 16, dropout 0.05,
all-linear, the head trained fully); LoRA with gradient checkpointing; QLoRA (the same adapters on a
4-bit NormalFloat base with double quantization; the Trainer side loads it the usual way,
``BitsAndBytesConfig`` in ``from_pretrained``). Each side of each row in a fresh process
(``peer.in_fresh_process``).

On a GPU the memory figure is ``torch.cuda.max_memory_allocated`` over the training steps; on the
CPU it is the process's peak resident memory over the training steps (sampled every 5 ms). The MB
columns are that peak less the memory in use once the model and data are loaded (what training
adds: gradients, optimizer state, activations); "in all" is the peak itself, the model included
(what must fit on one card). samples/s: the examples of the steps after the warm-up ones over the
time from the end of the warm-up to the end of the last step, on both sides. ``--rounds R`` repeats
every row R times, the sides' order alternating, and reports the median and range of each ratio.
The model is a randomly initialised decoder (no Hub) with the smoke vocabulary's tokenizer, its
embedding as wide as the shape's real vocabulary.

    python benchmarks/memory.py                          # Llama-shaped, hidden 1024, 8 layers (88.8M)
    python benchmarks/memory.py --shape qwen2-0.5b       # Qwen2-0.5B's shape (494M)
    python benchmarks/memory.py --shape llama3-8b --dtype bf16 --methods lora+checkpointing  # on a GPU
    python benchmarks/memory.py --dry                    # tiny, 3 steps: what the tests run
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
from pathlib import Path

from peer import StepClock, in_fresh_process

LORA = {"r": 8, "alpha": 16, "dropout": 0.05, "targets": "all-linear"}
SIDES = ("trainer", "harness")
METHODS = ("full", "lora", "lora+checkpointing", "qlora")
SHAPES = {  # the config of each shape's decoder (Qwen2-0.5B's from its config.json)
    "llama-88m": {"kind": "llama", "hidden_size": 1024, "intermediate_size": 2752, "num_hidden_layers": 8,
                  "num_attention_heads": 8, "num_key_value_heads": 2, "vocab_size": None},
    "llama3-8b": {"kind": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                  "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256},  # Llama 3 8B's
    "qwen2-0.5b": {"kind": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
                   "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936},
    "dry": {"kind": "llama", "hidden_size": 128, "intermediate_size": 344, "num_hidden_layers": 2,
            "num_attention_heads": 1, "num_key_value_heads": 1, "vocab_size": None},
}  # fmt: skip


def save_decoder(directory: Path, shape: dict, dtype: str = "fp32") -> int:
    """A random decoder sequence classifier of ``shape`` (``SHAPES``) in ``dtype`` as a model folder; its
    parameters. Built on the GPU where there is one (an 8B model initialises there in seconds)."""
    import torch
    from harness_plugins.models import tiny_tokenizer
    from transformers import LlamaConfig, LlamaForSequenceClassification, Qwen2Config, Qwen2ForSequenceClassification

    from harness.trial import DTYPES

    torch.manual_seed(0)
    tok = tiny_tokenizer()
    config_class, model_class = {
        "llama": (LlamaConfig, LlamaForSequenceClassification),
        "qwen2": (Qwen2Config, Qwen2ForSequenceClassification),
    }[shape["kind"]]
    sizes = {k: v for k, v in shape.items() if k != "kind"}
    sizes["vocab_size"] = sizes["vocab_size"] or len(tok)
    config = config_class(**sizes, max_position_embeddings=256, num_labels=2, pad_token_id=tok.pad_token_id)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = model_class._from_config(config, dtype=DTYPES[dtype])
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return sum(p.numel() for p in model.parameters())


class _PeakResident:
    """The process's peak resident memory (MB) from ``start`` on, sampled every 5 ms by a thread (the
    kernel's own peak, ru_maxrss, also counts what loading the model took)."""

    def __init__(self):
        import psutil

        self.process, self.peak, self.stop = psutil.Process(), 0.0, threading.Event()

    def start(self) -> float:
        now = self.process.memory_info().rss / 2**20
        self.peak = now
        threading.Thread(target=self._sample, daemon=True).start()
        return now

    def _sample(self) -> None:
        while not self.stop.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss / 2**20)


def measure(side: str, method: str, spec: dict) -> dict:
    """Peak training memory (MB) and samples/s of one side for ``method`` (``METHODS``), in this process."""
    import torch
    from transformers import set_seed

    from harness import plugins as plugin_loader
    from harness.data import tokenize
    from harness.models import loading_in, pretrained
    from harness.trial import DTYPES

    torch.set_num_threads(spec["threads"])
    cuda = torch.cuda.is_available()
    smoke = plugin_loader.load().suites.get("smoke")
    task = smoke.task("sentiment")
    data = smoke.load(task, None)
    n = spec["steps"] * spec["batch"]
    set_seed(1)
    dtype = DTYPES[spec["dtype"]]
    with loading_in(dtype):  # both sides train the weights in the dtype they load in (--model-dtype)
        tok, model = pretrained(spec["model"], "benchmark decoder").load(task.num_labels)
    if side == "trainer" and method == "qlora":  # quantized as it loads, as Trainer users do
        from transformers import AutoModelForSequenceClassification, BitsAndBytesConfig

        quantization = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype, llm_int8_skip_modules=["score"],
        )  # fmt: skip
        model = AutoModelForSequenceClassification.from_pretrained(
            spec["model"], quantization_config=quantization, dtype=dtype, num_labels=task.num_labels,
            device_map={"": 0} if cuda else None,
        )  # fmt: skip
    elif cuda:
        model = model.cuda()
    trainable, resident, clock = None, _PeakResident(), StepClock()

    if side == "trainer":
        from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments

        class Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                clock(state.global_step, state.max_steps)

        if method != "full":
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(
                task_type="SEQ_CLS", r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                target_modules=LORA["targets"],
            ))  # fmt: skip
        train = tokenize(task, data, tok, 128, n)["train"].remove_columns(["idx", "length"])
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        with tempfile.TemporaryDirectory() as out:
            args = TrainingArguments(
                output_dir=out, per_device_train_batch_size=spec["batch"], max_steps=spec["steps"],
                learning_rate=1e-4, report_to=[], logging_strategy="no", save_strategy="no",
                use_cpu=not cuda, dataloader_num_workers=0, seed=1, disable_tqdm=True,
                train_sampling_strategy="group_by_length",
                gradient_checkpointing=method == "lora+checkpointing",
                gradient_checkpointing_kwargs={"use_reentrant": False}, bf16=spec["dtype"] == "bf16",
            )  # fmt: skip
            collator = DataCollatorWithPadding(tok)
            trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=collator, callbacks=[Clock()])
            before = _start(cuda, resident)
            trainer.train()
    else:
        from harness import lora
        from harness.batching import Columns
        from harness.config import TrialConfig
        from harness.engine import init_process_group
        from harness.trainer import fit

        peft = None if method == "full" else lora.resolve("qlora" if method == "qlora" else "lora", {})
        model = lora.apply(model, peft)
        trainable = lora.parameters(model)[0]
        cfg = TrialConfig(suite="smoke", task="sentiment", objective="ce", model=spec["model"], seed=1, epochs=1,
                          batch_size=spec["batch"], max_train_samples=n, peft=peft,
                          model_dtype=None if spec["dtype"] == "fp32" else spec["dtype"], precision=spec["dtype"],
                          gradient_checkpointing=method == "lora+checkpointing")  # fmt: skip
        train = Columns(tokenize(task, data, tok, 128, n)["train"], tok.pad_token_id)
        objective = plugin_loader.load().objectives.get("ce")(task.num_labels)
        init_process_group()  # DeepSpeed imported and its group made before the count, as the Trainer is built
        before = _start(cuda, resident)
        timed = lambda e: e["event"] == "step" and clock(e["step"], e["total_steps"])  # noqa: E731
        fit(cfg, 1e-4, model, objective, task, train, {}, timed)
    if cuda:
        total = torch.cuda.max_memory_allocated() / 2**20
    else:
        resident.stop.set()
        total = resident.peak
    rate = clock.rate(spec["warmup"], spec["batch"])
    return {"peak_mb": total - before, "total_mb": total, "trainable": trainable, "samples_per_s": rate}


def _start(cuda: bool, resident: _PeakResident) -> float:
    """Memory in use as training starts, from which the peak is counted."""
    import torch

    if cuda:
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**20
    return resident.start()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry", action="store_true", help="a tiny decoder and 3 steps (what the tests run)")
    p.add_argument("--shape", choices=[s for s in SHAPES if s != "dry"], default="llama-88m")
    p.add_argument("--methods", default=",".join(METHODS), help=f"a comma-separated subset of {', '.join(METHODS)}")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=2, help="steps left out of samples/s (default 2)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--rounds", type=int, default=1, help="repeats of each row, the sides' order alternating")
    dtype_help = "the weights' dtype on both sides (bf16: also bf16 autocast: Trainer bf16=True, --precision bf16)"
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help=dtype_help)
    a = p.parse_args()
    if a.dry:
        a.shape, a.steps, a.warmup, a.batch = "dry", 3, 1, 8
    methods = a.methods.split(",")
    if set(methods) - set(METHODS):
        p.error(f"--methods: one or more of {', '.join(METHODS)}")
    if not 0 < a.warmup < a.steps:
        p.error("--warmup: at least 1 and fewer than --steps")
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "decoder"
        params = save_decoder(model, SHAPES[a.shape], a.dtype)
        spec = {"model": str(model), "steps": a.steps, "warmup": a.warmup, "batch": a.batch, "threads": a.threads,
                "dtype": a.dtype}  # fmt: skip
        where = "GPU max_memory_allocated" if _cuda() else "CPU peak resident memory added by training"
        print(f"{a.shape} decoder, {params / 1e6:.1f}M parameters in {a.dtype}, batch {a.batch}, {a.steps} steps "
              f"({a.warmup} warm-up), {a.threads} threads, {a.rounds} round(s); MB: {where}, median of the rounds; "
              "in all: the peak with the model; ratios: median (range)")  # fmt: skip
        print("| method | trainable parameters | Trainer (+ PEFT) MB | harness MB | harness / Trainer | "
              "Trainer samples/s | harness samples/s | harness / Trainer | in all, Trainer / harness MB |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|")
        for method in methods:
            runs = []
            for r in range(a.rounds):
                got = {side: in_fresh_process(measure, side, method, spec) for side in SIDES[r % 2 :] + SIDES[: r % 2]}
                runs.append(got)
            t, h = ({k: statistics.median(run[side][k] for run in runs) for k in runs[0][side]} for side in SIDES)
            memory = _spread([run["harness"]["peak_mb"] / run["trainer"]["peak_mb"] for run in runs])
            speed = _spread([run["harness"]["samples_per_s"] / run["trainer"]["samples_per_s"] for run in runs])
            print(f"| {method} | {h['trainable']:,.0f} (Trainer {t['trainable']:,.0f}) | {t['peak_mb']:.0f} | "
                  f"{h['peak_mb']:.0f} | {memory} | {t['samples_per_s']:.2f} | {h['samples_per_s']:.2f} | {speed} | "
                  f"{t['total_mb']:,.0f} / {h['total_mb']:,.0f} |", flush=True)  # fmt: skip


def _spread(ratios: list[float]) -> str:
    """The median of ``ratios`` and, for more than one, their range."""
    middle = f"{statistics.median(ratios):.2f}x"
    return middle if len(ratios) == 1 else f"{middle} ({min(ratios):.2f}-{max(ratios):.2f})"


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
