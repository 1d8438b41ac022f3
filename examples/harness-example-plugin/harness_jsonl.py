"""A third-party tracker for cmi-harness: ``jsonl``, one JSON line per logged event.

It shows the tracker contract (see harness.tracking): a ``Tracker`` names the module it imports
(``--tracker jsonl`` is refused before anything runs when that module is missing) and how to
install it; in each trial ``open(trial_dir, tracking_dir, config)`` returns a run with
``params``, ``metrics`` and ``close``. It is called from inside the trial, on either executor.
A tracker that raises costs the trial nothing: the harness logs the first error and stops calling it.
"""

import json
from pathlib import Path

from harness import Tracker, flat, hookimpl


class JsonLines:
    """OUTPUT_DIR/jsonl/TRIAL_ID.jsonl (the tracking directory is the run's output directory): a line
    ``{"params": {...}}``, then one ``{"step": N, "metrics": {...}}`` per logged event."""

    def __init__(self, trial_dir: Path, tracking_dir: Path, config: dict):
        path = Path(tracking_dir) / "jsonl" / f"{Path(trial_dir).name}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("a")

    def _write(self, event: dict) -> None:
        self.file.write(json.dumps(event, default=str) + "\n")
        self.file.flush()

    def params(self, values: dict) -> None:
        self._write({"params": flat(values)})

    def metrics(self, values: dict, step: int) -> None:
        self._write({"step": step, "metrics": values})

    def close(self) -> None:
        self.file.close()


@hookimpl
def harness_trackers():
    return [Tracker("jsonl", "JSON lines per trial, in the output directory's jsonl/ (an example tracker plugin)",
                    "json", "nothing to install: the standard library", JsonLines)]  # fmt: skip
