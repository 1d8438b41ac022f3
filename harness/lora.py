"""LoRA adapters through PEFT (``--peft lora --peft-args r=8,alpha=16,dropout=0.05,targets=all-linear``),
and QLoRA (``--peft qlora``): the same adapters on a 4-bit base.

Every objective and every teacher stage trains the same way: the base weights frozen, low-rank
adapters W + (alpha / r) * B A on the ``targets`` (``all-linear``: every Linear layer of the
transformer, PEFT's QLoRA-paper default), and the classification head, found by structure,
trained fully (``modules_to_save``: it is new, and rank r would cap a C-way head for nothing).
Defaults: r 8 and alpha 16 (alpha / r = 2, the scaling most LoRA fine-tuning recipes use),
dropout 0.05. Checkpoints then hold only what trains (harness.checkpoint), and a teacher or a
kept model is saved merged (W + (alpha / r) B A), a plain model its students load as any other.
"""

from __future__ import annotations

import functools
from typing import Any

from harness.errors import HarnessError
from harness.models import head_name

METHODS = ("lora", "qlora")
DEFAULTS: dict[str, Any] = {"r": 8, "alpha": 16, "dropout": 0.05, "targets": "all-linear"}
INSTALL = "pip install 'cmi-harness[llm]'"
NEEDS = {"lora": ("peft",), "qlora": ("peft", "bitsandbytes")}


def resolve(method: str | None, given: dict[str, Any]) -> dict[str, Any] | None:
    """The trial config's ``peft`` entry from ``--peft``/``--peft-args`` (text or YAML values), checked."""
    if not method:
        if given:
            raise HarnessError("--peft-args needs --peft lora or --peft qlora")
        return None
    if method not in METHODS:
        raise HarnessError(f"--peft {method}: one of {', '.join(METHODS)}")
    import importlib.util

    for package in NEEDS[method]:
        if importlib.util.find_spec(package) is None:
            raise HarnessError(f"--peft {method} needs the {package} package: {INSTALL}")
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
    if spec["method"] == "qlora":
        quantize(model, head)
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


@functools.cache
def _conv1d_4bit():
    import bitsandbytes as bnb

    class Conv1D4bit(bnb.nn.Linear4bit):
        """A GPT-2 ``Conv1D`` quantized: a Linear4bit holding its weight transposed; dequantized, a Conv1D again."""

    return Conv1D4bit


def quantize(model, head: str) -> None:
    """Replaces, in place, every ``torch.nn.Linear`` (and GPT-2 ``Conv1D``) of ``model`` outside its head
    ``head`` by a bitsandbytes 4-bit NormalFloat layer (double quantization) computing in the weights' dtype."""
    import bitsandbytes as bnb
    import torch
    from transformers.pytorch_utils import Conv1D

    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if type(child) not in (torch.nn.Linear, Conv1D) or full == head or full.startswith(f"{head}."):
                continue
            conv = type(child) is Conv1D
            weight = child.weight.data.t().contiguous() if conv else child.weight.data  # (out, in)
            kind = _conv1d_4bit() if conv else bnb.nn.Linear4bit
            layer = kind(
                weight.shape[1],
                weight.shape[0],
                bias=child.bias is not None,
                compute_dtype=weight.dtype,
                compress_statistics=True,
                quant_type="nf4",
                device="meta",
            )
            layer.weight = bnb.nn.Params4bit(weight, requires_grad=False, compress_statistics=True, quant_type="nf4")
            if child.bias is not None:
                layer.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
            layer = layer.to(weight.device)  # .to quantizes
            # bitsandbytes 0.50 repacks an AVX512-BF16 CPU's weights in place at the first no-grad
            # forward, for inference; a trial trains after evaluating, and the repacked weights break
            # its next step and the merge (dtype errors): the one CPU layout serves both here
            layer.support_avx512bf16_for_cpu = False
            setattr(module, child_name, layer)


def _dequantize(model) -> None:
    """Every 4-bit layer of ``model`` (``quantize``) back to the ``torch.nn.Linear`` or ``Conv1D`` it
    was, holding dequant(W), in place."""
    import bitsandbytes as bnb
    import torch
    from transformers.pytorch_utils import Conv1D

    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if not isinstance(child, bnb.nn.Linear4bit):
                continue
            packed: Any = child.weight  # a bitsandbytes Params4bit
            weight = bnb.functional.dequantize_4bit(packed.data, packed.quant_state)  # (out, in)
            if isinstance(child, _conv1d_4bit()):
                plain: torch.nn.Module = Conv1D(child.out_features, child.in_features)
                plain.weight = torch.nn.Parameter(weight.t().contiguous(), requires_grad=False)
            else:
                plain = torch.nn.Linear(child.in_features, child.out_features, bias=child.bias is not None)
                plain.weight = torch.nn.Parameter(weight, requires_grad=False)
            if child.bias is not None:
                plain.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
            setattr(module, child_name, plain.to(weight.device))


def merged(model):
    """A plain model with the adapters folded into its weights (the model itself when it has none).
    A 4-bit base is dequantized and the adapters' B A added in its dtype: the merge is exact, where
    PEFT's would quantize the merged weights again."""
    if not hasattr(model, "merge_and_unload"):
        return model
    from peft.tuners.lora import LoraLayer
    from transformers.pytorch_utils import Conv1D

    if not any(getattr(p, "quant_state", None) is not None for p in model.parameters()):
        return model.merge_and_unload()
    deltas = {
        name.removeprefix("base_model.model."): layer.get_delta_weight(layer.active_adapters[0])
        for name, layer in model.named_modules()
        if isinstance(layer, LoraLayer) and layer.active_adapters
    }
    base = model.unload()  # the base layers back in place, the trained head kept
    _dequantize(base)
    for name, delta in deltas.items():
        layer = base.get_submodule(name)
        delta = delta.t() if isinstance(layer, Conv1D) else delta  # a Conv1D holds W transposed
        layer.weight.data += delta.to(layer.weight.dtype)
    return base


def parameters(model) -> tuple[int, int]:
    """(trainable, total) parameters; a 4-bit weight counts its weights, not the bytes that pack them,
    and a ZeRO-3 one its whole shape, not this rank's partition."""

    def count(p) -> int:
        if getattr(p, "quant_state", None) is not None:
            return p.quant_state.shape.numel()
        return getattr(p, "ds_numel", None) or p.numel()

    params = list(model.parameters())
    return sum(count(p) for p in params if p.requires_grad), sum(count(p) for p in params)
