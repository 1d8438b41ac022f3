"""LoRA adapters through PEFT (``--peft lora --peft-args r=8,alpha=16,dropout=0.05,targets=all-linear``).

Every objective and every teacher stage trains the same way: the base weights frozen, low-rank
adapters W + (alpha / r) * B A on the ``targets`` (``all-linear``: every Linear layer of the
transformer, PEFT's QLoRA-paper default), and the classification head, found by structure,
trained fully (``modules_to_save``: it is new, and rank r would cap a C-way head for nothing).
Defaults: r 8 and alpha 16 (alpha / r = 2, the scaling most LoRA fine-tuning recipes use),
dropout 0.05. Checkpoints then hold only what trains (harness.checkpoint), and a teacher or a
kept model is saved merged (W + (alpha / r) B A), a plain model its students load as any other.
"""

from __future__ import annotations

from typing import Any

from harness.errors import HarnessError
from harness.models import head_name

METHODS = ("lora",)
DEFAULTS: dict[str, Any] = {"r": 8, "alpha": 16, "dropout": 0.05, "targets": "all-linear"}
INSTALL = "pip install 'cmi-harness[llm]'"


def resolve(method: str | None, given: dict[str, Any]) -> dict[str, Any] | None:
    """The trial config's ``peft`` entry from ``--peft``/``--peft-args`` (text or YAML values), checked."""
    if not method:
        if given:
            raise HarnessError("--peft-args needs --peft lora")
        return None
    if method not in METHODS:
        hint = (
            " (4-bit QLoRA needs CUDA and bitsandbytes, neither of which this harness drives yet)"
            if method == "qlora"
            else ""
        )
        raise HarnessError(f"--peft {method}: one of {', '.join(METHODS)}{hint}")
    import importlib.util

    if importlib.util.find_spec("peft") is None:
        raise HarnessError(f"--peft lora needs the peft package: {INSTALL}")
    out = {"method": method, **DEFAULTS}
    for key, value in given.items():
        if key not in DEFAULTS:
            raise HarnessError(f"--peft-args {key}={value}: unknown; known: {', '.join(DEFAULTS)}")
        try:
            if key == "targets":
                out[key] = value if isinstance(value, list) else str(value).replace("+", ",")
            else:
                out[key] = type(DEFAULTS[key])(str(value))
        except ValueError:
            raise HarnessError(f"--peft-args {key}={value}: not a {type(DEFAULTS[key]).__name__}") from None
    if out["r"] < 1 or out["alpha"] <= 0 or not 0 <= out["dropout"] < 1:
        raise HarnessError("--peft-args: r must be >= 1, alpha > 0, dropout in [0, 1)")
    return out


def apply(model, spec: dict[str, Any] | None):
    """``model`` wrapped with LoRA adapters per ``spec`` (or unchanged without one)."""
    if not spec:
        return model
    from peft import LoraConfig, TaskType, get_peft_model

    targets = spec["targets"]
    if isinstance(targets, str) and targets != "all-linear":
        targets = [t for t in targets.split(",") if t]
    head = head_name(model)
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=spec["r"],
        lora_alpha=spec["alpha"],
        lora_dropout=spec["dropout"],
        target_modules=targets,
        modules_to_save=[head],
        exclude_modules=[head],
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise HarnessError(f"--peft-args targets={spec['targets']}: {first}") from None


def merged(model):
    """A plain model with the adapters folded into its weights (the model itself when it has none)."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def parameters(model) -> tuple[int, int]:
    """(trainable, total) parameters."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
