"""cmi-harness: fine-tune transformer classifiers on GLUE under pluggable training objectives.

The public names below load on first use (PEP 562), so ``import harness`` (and a command that
is refused before it needs them) does not pay for torch, DeepSpeed or datasets.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

_PUBLIC = {  # the plugin API: what a third-party plugin (and every built-in one) imports, from here only
    "HParam": "harness.objective",
    "LossOutput": "harness.objective",
    "Objective": "harness.objective",
    "Outputs": "harness.objective",
    "TeacherStage": "harness.objective",
    "ModelSpec": "harness.models",
    "pretrained": "harness.models",
    "Suite": "harness.suite",
    "Task": "harness.suite",
    "TaskData": "harness.suite",
    "split_from_columns": "harness.suite",
    "Tracker": "harness.tracking",
    "PER_STEP": "harness.tracking",
    "flat": "harness.tracking",
    "Reporter": "harness.reporter",
    "Report": "harness.report",
    "sections": "harness.render",
    "markdown_table": "harness.render",
    "atomic_write": "harness.results",
    "HarnessError": "harness.errors",
    "hookimpl": "harness.hookspecs",
    "sum_over_ranks": "harness.engine",
}
PUBLIC_MODULES = ("hub", "provenance")  # helpers a suite plugin may use: `from harness import hub`

try:
    __version__ = version("cmi-harness")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
