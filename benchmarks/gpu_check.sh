#!/usr/bin/env bash
# GPU readiness for a machine with one CUDA GPU and no network, in parts that each fit one
# 10-minute call (name some to run only those; none runs them all):
#   bert     the harness's DeepSpeed loop in bf16 on a BERT-base-shaped model must learn, and its
#            samples/s is printed against a Hugging Face Trainer on the same GPU, with MFU (gpu_check.py);
#   options  the same rounds with the harness's step options each away from its GPU defaults:
#            --pad-multiple 1 (default 8), the loss read every step (default every 16), --compile;
#   packing  eight 1-epoch minilm-l6 trials through Ray, one at a time on the whole card against
#            four at once at --gpus-per-worker 0.25: trials per hour (ray_overhead.py);
#   decoder  peak training memory and samples/s of a Qwen2-0.5B-shaped decoder, full, LoRA, LoRA
#            with checkpointing and QLoRA, against a Trainer (+ PEFT) on the same GPU (memory.py);
#   8b       the headline: a Llama-3-8B-shaped decoder in bf16 with LoRA and gradient checkpointing,
#            peak memory (the model's included) and samples/s on one card, against the Trainer + PEFT.
# Needs cmi-harness installed (from carried wheels: pip install --no-index --find-links WHEELS -e .);
# no Hub, no download. `--dry` runs the bert part on the CPU with a tiny model (the tests do;
# memory.py has its own dry test).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
if [ "${1:-}" = "--dry" ]; then
    exec timeout 600 "$PY" benchmarks/gpu_check.py --dry
fi
PARTS=("$@")
[ ${#PARTS[@]} -eq 0 ] && PARTS=(bert options packing decoder 8b)
for part in "${PARTS[@]}"; do
    case "$part" in
        bert) timeout 540 "$PY" benchmarks/gpu_check.py ;;
        options) timeout 540 "$PY" benchmarks/gpu_check.py --no-learn --options pad,reads,compile --rounds 2 ;;
        packing) timeout 540 "$PY" benchmarks/ray_overhead.py --model minilm-l6 --precision bf16 \
                --gpus-per-worker 0.25 --concurrent 4 --trials 8 --epochs 1 ;;
        decoder) timeout 540 "$PY" benchmarks/memory.py --shape qwen2-0.5b --steps 20 ;;
        8b) timeout 540 "$PY" benchmarks/memory.py --shape llama3-8b --dtype bf16 --methods lora+checkpointing \
                --steps 10 --batch 8 ;;
        *) echo "unknown part '$part': bert, options, packing, decoder or 8b (or --dry)" >&2; exit 2 ;;
    esac
done
