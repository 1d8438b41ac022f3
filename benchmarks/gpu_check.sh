#!/usr/bin/env bash
# GPU readiness for a machine with one CUDA GPU and no network (under 10 minutes): the harness's
# DeepSpeed loop in bf16 on a BERT-base-shaped model must learn, and its samples/s is printed
# against a Hugging Face Trainer on the same GPU. Needs cmi-harness installed (from carried
# wheels: pip install --no-index --find-links WHEELS -e .); no Hub, no download.
# `--dry` runs the same on the CPU with a tiny model (the tests do).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec timeout 600 "$PY" benchmarks/gpu_check.py "$@"
