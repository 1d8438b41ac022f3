"""The files a trial leaves: ``record.json`` (harness.record) and ``dev_predictions.safetensors``
(per dev split: probs (N, C), labels, idx), and what every record says about where it ran.

Every file is written to a temporary name and renamed into place, so a reader (or a
resumed run) sees a whole file or none.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

RECORD = "record.json"
PREDICTIONS = "dev_predictions.safetensors"
LIBRARIES = ("torch", "transformers", "datasets", "deepspeed", "ray", "pluggy", "numpy", "scikit-learn")


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=False, allow_nan=True) + "\n").encode())


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def write_predictions(path: Path, predictions: dict) -> None:
    """``predictions``: dev split -> trainer.Predictions; stored as ``{split}.probs`` etc."""
    from safetensors.numpy import save

    tensors = {}
    for split, p in predictions.items():
        tensors[f"{split}.probs"] = np.ascontiguousarray(p.probs)
        tensors[f"{split}.labels"] = np.ascontiguousarray(p.labels)
        tensors[f"{split}.idx"] = np.ascontiguousarray(p.idx)
    atomic_write(path, save(tensors))


def read_predictions(path: Path) -> dict[str, dict[str, np.ndarray]]:
    from safetensors.numpy import load_file

    out: dict[str, dict[str, np.ndarray]] = {}
    for key, value in load_file(str(path)).items():
        split, field = key.rsplit(".", 1)
        out.setdefault(split, {})[field] = value
    return out


def trial_records(run_dir: Path) -> list[dict]:
    """A run's records as the JSON on disk (scripts and tests; the harness reads harness.record)."""
    return [read_json(p) for p in sorted((Path(run_dir) / "trials").glob(f"*/{RECORD}"))]


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            found[lib] = version(lib)
        except PackageNotFoundError:
            found[lib] = None
    return found


def node() -> dict[str, str | None]:
    """Where this process runs: the host, and the Ray node when it is a Ray worker (several nodes can
    share a host)."""
    ray_node = None
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():  # never imports Ray itself
        ray_node = sys.modules["ray"].get_runtime_context().get_node_id()
    return {"host": platform.node(), "ray_node": ray_node}


def git_commit() -> str | None:
    """The commit of the harness source tree, when it runs from a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out + ("-dirty" if dirty else "")
