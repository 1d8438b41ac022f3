"""Peak training memory of the harness against its named peer, a Hugging Face ``Trainer`` (with PEFT for
LoRA) configured as its users configure it (dynamic padding, length-grouped batches), on the same
decoder, data, batch and steps; full fine-tuning, LoRA (r 8, alpha 16, dropout 0.05, all-linear,
the head trained fully) and QLoRA (the same adapters on a 4-bit NormalFloat base with double
quantization; the Trainer side loads it the usual way, ``BitsAndBytesConfig`` in ``from_pretrained``),
each side in a fresh process.

On a GPU the figure is ``torch.cuda.max_memory_allocated`` over the training steps; on the CPU it is
the process's peak resident memory over the training steps (sampled every 5 ms) less its resident
memory once the model and data are loaded (what training adds: gradients, optimizer state, activations). The model is a
randomly initialised Llama-shaped decoder (no Hub) with the smoke vocabulary's tokenizer.

    python benchmarks/memory.py                      # Llama-shaped, hidden 1024, 8 layers, 12 steps
    python benchmarks/memory.py --dry                # tiny, 3 steps: what the tests run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from peer import _single_process_env

LORA = {"r": 8, "alpha": 16, "dropout": 0.05, "targets": "all-linear"}
SIDES = ("trainer", "harness")


def save_decoder(directory: Path, hidden: int, layers: int) -> None:
    """A random Llama-shaped sequence classifier (``hidden`` wide, ``layers`` deep) as a model folder."""
    import torch
    from harness_plugins.models import tiny_tokenizer
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(0)
    tok = tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=int(2.6875 * hidden), num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 128), num_key_value_heads=max(1, hidden // 512),
        max_position_embeddings=256, num_labels=2, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    LlamaForSequenceClassification(config).save_pretrained(directory)
    tok.save_pretrained(directory)


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
    """Peak training memory (MB) of one side for ``method`` (full or lora); runs in this process."""
    import torch
    from transformers import set_seed

    from harness import plugins as plugin_loader
    from harness.data import tokenize
    from harness.models import pretrained

    torch.set_num_threads(spec["threads"])
    cuda = torch.cuda.is_available()
    smoke = plugin_loader.load().suites.get("smoke")
    task = smoke.task("sentiment")
    data = smoke.load(task, None)
    n = spec["steps"] * spec["batch"]
    set_seed(1)
    tok, model = pretrained(spec["model"], "benchmark decoder").load(task.num_labels)
    if side == "trainer" and method == "qlora":  # quantized as it loads, as Trainer users do
        from transformers import AutoModelForSequenceClassification, BitsAndBytesConfig

        quantization = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.float32, llm_int8_skip_modules=["score"],
        )  # fmt: skip
        model = AutoModelForSequenceClassification.from_pretrained(
            spec["model"], quantization_config=quantization, dtype=torch.float32, num_labels=task.num_labels,
            device_map={"": 0} if cuda else None,
        )  # fmt: skip
    elif cuda:
        model = model.cuda()
    trainable, resident = None, _PeakResident()
    if side == "trainer":
        from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

        if method in ("lora", "qlora"):
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
            )  # fmt: skip
            trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=DataCollatorWithPadding(tok))
            before = _start(cuda, resident)
            trainer.train()
    else:
        from harness import lora
        from harness.batching import Columns
        from harness.config import TrialConfig
        from harness.engine import init_process_group
        from harness.trainer import fit

        peft = lora.resolve(method, {}) if method in ("lora", "qlora") else None
        model = lora.apply(model, peft)
        trainable = lora.parameters(model)[0]
        cfg = TrialConfig(suite="smoke", task="sentiment", objective="ce", model=spec["model"], seed=1, epochs=1,
                          batch_size=spec["batch"], max_train_samples=n, peft=peft)  # fmt: skip
        train = Columns(tokenize(task, data, tok, 128, n)["train"], tok.pad_token_id)
        objective = plugin_loader.load().objectives.get("ce")(task.num_labels)
        init_process_group()  # DeepSpeed imported and its group made before the count, as the Trainer is built
        before = _start(cuda, resident)
        fit(cfg, 1e-4, model, objective, task, train, {})
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20 - before
    else:
        resident.stop.set()
        peak = resident.peak - before
    return {"peak_mb": peak, "trainable": trainable}


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
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    a = p.parse_args()
    if a.dry:
        a.hidden, a.layers, a.steps, a.batch = 128, 2, 3, 8
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "decoder"
        save_decoder(model, a.hidden, a.layers)
        spec = {"model": str(model), "steps": a.steps, "batch": a.batch, "threads": a.threads}
        where = "GPU max_memory_allocated" if _cuda() else "CPU peak resident memory added by training"
        print(f"Llama-shaped decoder, hidden {a.hidden}, {a.layers} layers, batch {a.batch}, {a.steps} steps; {where}")
        print("| method | trainable parameters | Trainer (+ PEFT) MB | harness MB | harness / Trainer |")
        print("|---|---|---|---|---|")
        for method in ("full", "lora", "qlora"):
            got = {}
            for side in SIDES:
                cmd = [sys.executable, __file__, "--side", side, method, json.dumps(spec)]
                done = subprocess.run(cmd, capture_output=True, text=True, env=_single_process_env())
                if done.returncode != 0:
                    raise SystemExit(f"{side} {method} failed:\n{done.stderr[-3000:]}")
                got[side] = json.loads(done.stdout.strip().splitlines()[-1])
            t, h = got["trainer"], got["harness"]
            print(f"| {method} | {h['trainable']:,} (Trainer {t['trainable']:,}) | {t['peak_mb']:.0f} | "
                  f"{h['peak_mb']:.0f} | {h['peak_mb'] / t['peak_mb']:.2f}x |", flush=True)  # fmt: skip


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--side":  # one measured side: memory.py --side SIDE METHOD SPEC
        print(json.dumps(measure(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))))
    else:
        main()
