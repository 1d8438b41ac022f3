"""cmi-harness: fine-tune transformer classifiers on GLUE under pluggable training objectives."""

from importlib.metadata import PackageNotFoundError, version

from harness.engine import sum_over_ranks
from harness.hookspecs import hookimpl
from harness.objective import HParam, LossOutput, Objective
from harness.suite import Suite, Task, TaskData

try:
    __version__ = version("cmi-harness")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "HParam",
    "LossOutput",
    "Objective",
    "Suite",
    "Task",
    "TaskData",
    "__version__",
    "hookimpl",
    "sum_over_ranks",
]
