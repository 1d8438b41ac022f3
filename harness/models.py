"""Model specs: how a name on the command line becomes a tokenizer and a classifier.

``--model`` takes a registered name (``harness list``), a local directory holding a
Hugging Face model, or a Hub id written ``hf:ID`` or ``org/name``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

Loaded = tuple[Any, Any]  # (tokenizer, model for sequence classification)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    load: Callable[[int], Loaded]  # num_labels -> (tokenizer, model); seeded by the caller
    defaults: dict[str, Any] = field(default_factory=dict)  # trial settings this model needs, e.g. {"lr": 1e-3}


def pretrained(source: str | Path, description: str, name: str | None = None, **defaults: Any) -> ModelSpec:
    """A spec that loads ``source`` (directory or Hub id) with the Auto classes."""

    def load(num_labels: int) -> Loaded:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # the "newly initialized classifier" notice is expected
        hf_logging.disable_progress_bar()
        logging.getLogger("transformers").setLevel(logging.ERROR)
        try:
            tok = AutoTokenizer.from_pretrained(str(source))
            model = AutoModelForSequenceClassification.from_pretrained(str(source), num_labels=num_labels)
        except Exception as exc:
            where = "directory" if Path(source).exists() else "Hugging Face Hub id"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise HarnessError(
                f"cannot load a model from {where} {str(source)!r}: {first}. It needs config.json, weights and "
                f"tokenizer files; offline, use a local directory or a built-in model such as minilm-l6 or tiny"
            ) from exc
        return tok, model

    return ModelSpec(name or str(source), description, load, dict(defaults))


def resolve(name: str, registry) -> ModelSpec:
    """Registered name first, then an existing directory, then an explicit Hub id."""
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
