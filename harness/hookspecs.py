"""The hooks a plugin may implement. Each returns a list of things to register.

A plugin is a module with functions decorated by ``harness.hookimpl`` and named after
these specs; it is found through the ``harness`` entry-point group (or ``--plugin MODULE``).
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@hookspec
def harness_objectives() -> list[type]:
    """Objective subclasses (harness.Objective) this plugin provides."""


@hookspec
def harness_models() -> list:
    """harness.models.ModelSpec entries this plugin provides."""


@hookspec
def harness_suites() -> list:
    """harness.suite.Suite entries this plugin provides."""


@hookspec
def harness_trackers() -> list:
    """harness.tracking.Tracker entries (experiment trackers a trial can log to: --tracker NAME)."""


@hookspec
def harness_reporters() -> list:
    """harness.report.Reporter entries (output formats of the comparison report)."""
