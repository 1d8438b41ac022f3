"""Model specs: how a name on the command line becomes a tokenizer and a classifier.

``--model`` takes a registered name (``harness list``), a local directory holding a
Hugging Face model, or a Hub id written ``hf:ID`` or ``org/name``. A ``:half`` suffix
(``minilm-l6:half``) makes a DistilBERT-style student of that model: half its transformer
layers, spread evenly with the first and the last kept (``student_layers``), as DistilBERT
was initialised from BERT-base's layers 0, 2, 4, 7, 9, 11.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import hub
from harness.errors import HarnessError

Loaded = tuple[Any, Any]  # (tokenizer, model for sequence classification)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "tokenizer.model",
                   "spiece.model", "sentencepiece.bpe.model")  # fmt: skip  # any one: AutoTokenizer can load
_LOAD_DTYPE: ContextVar[Any] = ContextVar("load_dtype", default=None)


@contextmanager
def loading_in(dtype) -> Iterator[None]:
    """Pretrained weights load straight in torch ``dtype`` (``--model-dtype``): a bf16 7B model never
    passes through its 28 GB fp32 copy. Outside it they load in fp32, whatever dtype the checkpoint
    was saved in (transformers 5 would otherwise keep a bf16 checkpoint in bf16)."""
    token = _LOAD_DTYPE.set(dtype)
    try:
        yield
    finally:
        _LOAD_DTYPE.reset(token)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    load: Callable[[int], Loaded]  # num_labels -> (tokenizer, model); seeded by the caller
    defaults: dict[str, Any] = field(default_factory=dict)  # trial settings this model needs, e.g. {"lr": 1e-3}
    layers: int | None = None  # transformer layers, when known without loading (shown by `harness list`)


def pretrained(
    source: str | Path, description: str, name: str | None = None, layers: int | None = None, **defaults: Any
) -> ModelSpec:
    """A spec that loads ``source`` (directory or Hub id) with the Auto classes."""

    def load(num_labels: int) -> Loaded:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # the "newly initialized classifier" notice is expected
        hf_logging.disable_progress_bar()
        logging.getLogger("transformers").setLevel(logging.ERROR)
        local = Path(source).exists()
        cached_only = not local and not hub.reachable()  # offline: the local HF cache or one clear line
        try:
            tok = AutoTokenizer.from_pretrained(str(source), local_files_only=cached_only)
            model = AutoModelForSequenceClassification.from_pretrained(
                str(source),
                num_labels=num_labels,
                local_files_only=cached_only,
                ignore_mismatched_sizes=True,
                dtype=_LOAD_DTYPE.get() or torch.float32,
            )  # a head for another number of labels is replaced by a fresh one
        except Exception as exc:
            where = "directory" if local else "Hugging Face Hub id"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if cached_only:
                first = "the Hub is not reachable from here and no copy is in the local Hugging Face cache"
            elif local and _lacks_tokenizer(Path(source)):
                first = (
                    f"it has no tokenizer files (none of {', '.join(TOKENIZER_FILES)}); save the tokenizer "
                    f"beside the model: tokenizer.save_pretrained({str(source)!r})"
                )
            raise HarnessError(
                f"cannot load a model from {where} {str(source)!r}: {first}. It needs config.json, weights and "
                f"tokenizer files; offline, use a local directory or a built-in model such as minilm-l6 or tiny"
            ) from exc
        return for_classification(tok, model, str(source))

    return ModelSpec(name or str(source), description, load, dict(defaults), layers)


def _lacks_tokenizer(directory: Path) -> bool:
    """A readable config.json and none of the files a tokenizer loads from."""
    import json

    try:
        json.loads((directory / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return not any((directory / f).exists() for f in TOKENIZER_FILES)


def for_classification(tok, model, source: str) -> Loaded:
    """Ready for batched classification: a tokenizer without a pad token pads with its EOS token (as
    Llama-, Mistral- and GPT-2-style checkpoints ship, and as their users do), and the model's config
    learns the id, which is also how a decoder finds the last non-pad token it pools; no KV cache
    (nothing is generated, and a cache costs memory in training and evaluation)."""
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise HarnessError(
                f"the tokenizer of {source} has neither a pad token nor an EOS token to pad with; add a pad token "
                f"to its tokenizer files"
            )
        tok.pad_token = tok.eos_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tok.pad_token_id
    model.config.use_cache = False
    return tok, model


def head_of(model):
    """The layer that makes the class scores, found by structure, whatever it is called (BERT's
    ``classifier``, a decoder's ``score``, RoBERTa's ``classifier.out_proj``): the last Linear whose
    outputs are the labels."""
    import torch

    n = model.config.num_labels
    heads = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == n]
    if not heads:
        raise HarnessError(
            f"{type(model).__name__} has no Linear layer with {n} outputs, so 'features' are unavailable"
        )
    return heads[-1]


def head_name(model) -> str:
    """The qualified name of ``head_of(model)``, e.g. ``classifier`` or ``score``."""
    head = head_of(model)
    return next(name for name, module in model.named_modules() if module is head)


def layers_of(model):
    """The transformer block list: the ModuleList whose length is config.num_hidden_layers (or n_layers)."""
    import torch

    n = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layers", None)
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise HarnessError(f"cannot find the {n} transformer layers of {type(model).__name__} to make a :half student")


def student_layers(n: int) -> list[int]:
    """The ``n // 2`` layers a :half student keeps: round(i (n - 1) / (k - 1)) for i < k, i.e. evenly
    spread with the first and last included (12 -> 0, 2, 4, 7, 9, 11 as DistilBERT; 6 -> 0, 2, 5)."""
    k = max(1, n // 2)
    return [0] if k == 1 else [round(i * (n - 1) / (k - 1)) for i in range(k)]


def keep_half_of_layers(model):
    """Student from teacher: keep ``student_layers`` of its blocks; the config is updated to match
    and records which were kept (``config.student_layers``)."""
    import torch

    layers = layers_of(model)
    n, keep = len(layers), student_layers(len(layers))
    kept = torch.nn.ModuleList(layers[i] for i in keep)
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if child is layers:
                setattr(parent, child_name, kept)
    for new, layer in enumerate(kept):  # decoders index their cache and attention type by layer
        for module in layer.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = new
    for key, value in model.config.to_dict().items():  # per-layer entries, e.g. Qwen2's layer_types
        if isinstance(value, list) and len(value) == n and key != "student_layers":
            setattr(model.config, key, [value[i] for i in keep])
    key = "num_hidden_layers" if hasattr(model.config, "num_hidden_layers") else "n_layers"
    setattr(model.config, key, len(kept))
    model.config.student_layers = keep
    return model


def half(spec: ModelSpec, name: str) -> ModelSpec:
    def load(num_labels: int) -> Loaded:
        tok, model = spec.load(num_labels)
        return tok, keep_half_of_layers(model)

    kept = (
        f"layers {', '.join(map(str, student_layers(spec.layers)))} of {spec.layers}"
        if spec.layers
        else "half the layers"
    )
    description = f"{spec.name} keeping {kept}, first and last included (DistilBERT-style student)"
    return ModelSpec(name, description, load, spec.defaults, spec.layers and len(student_layers(spec.layers)))


def resolve(name: str, registry) -> ModelSpec:
    """Registered name first, then an existing directory, then an explicit Hub id; NAME:half halves it."""
    if name.endswith(":half"):
        return half(resolve(name[: -len(":half")], registry), name)
    if name in registry:
        return registry.get(name)
    path = Path(name).expanduser()
    if path.is_dir():
        return pretrained(path.resolve(), f"local model directory {path}", name=name)
    if name.startswith("hf:"):
        return pretrained(name[3:], f"Hugging Face Hub model {name[3:]}", name=name)
    if "/" in name and not path.exists() and not name.startswith((".", "/", "~")):
        return pretrained(name, f"Hugging Face Hub model {name}", name=name)
    if path.exists():
        raise HarnessError(f"--model {name}: {name} is a file; give the directory that holds the model")
    raise HarnessError(registry.unknown(name))
