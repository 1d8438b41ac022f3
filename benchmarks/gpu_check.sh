#!/usr/bin/env bash
# GPU readiness for a machine with one CUDA GPU and no network (under 10 minutes): the harness's
# DeepSpeed loop in bf16 on a BERT-base-shaped model must learn, and its samples/s is printed
# against a Hugging Face Trainer on the same GPU. Needs cmi-harness installed (from carried
# wheels: pip install --no-index --find-links WHEELS -e .); no Hub, no download.
# Then the decoder check: peak training memory and samples/s of a Qwen2-0.5B-shaped decoder, full,
# LoRA, LoRA with checkpointing and QLoRA, against a Trainer (+ PEFT) on the same GPU
# (benchmarks/memory.py, a few minutes).
# `--dry` runs the first part on the CPU with a tiny model (the tests do; memory.py has its own
# dry test).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
timeout 600 "$PY" benchmarks/gpu_check.py "$@"
if [ "${1:-}" != "--dry" ]; then
    timeout 420 "$PY" benchmarks/memory.py --shape qwen2-0.5b --steps 20
fi
