"""The plugin API: the hooks a plugin implements to add objectives, models, suites, trackers and reporters.

A plugin is a module with functions decorated by ``harness.hookimpl`` and named after the hooks
below; it is found through the ``harness`` entry-point group of an installed distribution::

    # pyproject.toml of the plugin's distribution
    [project.entry-points.harness]
    focal = "harness_focal"

or named for one command with ``harness --plugin MODULE``. A plugin implements only the hooks it
needs. When plugins load (at the start of every command) each hook is called once per plugin,
without arguments, and returns a list of entries, each with a ``name`` (how users select it) and
a ``description`` (what ``harness list`` shows). Names are unique across all plugins: a second
entry of the same name stops the command, naming both sources.

The loader (``harness.plugins``) checks what a hook returns: an entry of the wrong type, or a hook
that raises, is refused with a warning naming the plugin and the hook, and that hook's entries
are skipped; the other plugins load. The built-ins (``harness_plugins``) use these hooks too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # the entry types are for readers and type checkers; importing this module stays light
    from harness.models import ModelSpec
    from harness.objective import Objective
    from harness.reporter import Reporter
    from harness.suite import Suite
    from harness.tracking import Tracker

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@hookspec
def harness_objectives() -> list[type[Objective]]:
    """The training objectives this plugin provides: subclasses of ``harness.Objective`` (the classes,
    not instances; the harness builds one per trial with the trial's hyper-parameters).

    Each class is checked when plugins load (``Objective.validate_class``: a string ``name`` and
    ``description``, known ``needs``); users select it with ``--objectives NAME`` and set its
    hyper-parameters with ``--objective-args NAME.KEY=VALUE``. The contract an objective
    implements is the docstring of ``harness.objective``.

    Example::

        from harness import LossOutput, Objective, hookimpl

        class Focal(Objective):
            name = "focal"
            description = "Focal loss"

            def loss(self, out):
                ...
                return LossOutput(loss)

        @hookimpl
        def harness_objectives():
            return [Focal]
    """


@hookspec
def harness_models() -> list[ModelSpec]:
    """The model names this plugin provides: ``harness.ModelSpec`` entries.

    ``ModelSpec.load(num_labels)`` returns ``(tokenizer, model for sequence classification)`` and
    is called in each trial, seeded, so it must not load anything at import time;
    ``defaults`` holds trial settings the model needs (e.g. ``{"lr": 2e-3}``), ``layers`` the
    number of transformer layers when known without loading. Users select it with ``--model NAME``
    (``NAME:half`` for a half-depth student). For a Hugging Face model,
    ``harness.pretrained(source, description, name)`` builds the spec.

    Example::

        from harness import hookimpl
        from harness import pretrained

        @hookimpl
        def harness_models():
            return [pretrained("roberta-base", "RoBERTa-base (Hub)", "roberta-base", layers=12)]
    """


@hookspec
def harness_suites() -> list[Suite]:
    """The task suites this plugin provides: ``harness.Suite`` entries.

    A suite names its tasks (``harness.Task``: label names, sentence pairs or not, metrics, dev
    splits; checked when the hook is called) and a ``load(task, data_dir)`` that returns a
    ``harness.TaskData``, called when a run plans (checks the data) or trains that task. Users select it with
    ``--suite NAME`` (``--tasks`` picks some of its tasks).

    Example::

        from harness import Suite, Task, TaskData, hookimpl

        def load(task, data_dir):
            return TaskData(make_splits(task), fingerprint="negation-v1")

        @hookimpl
        def harness_suites():
            task = Task("negated", ("positive", "negative"), pair=False, metrics=("accuracy",))
            return [Suite("negation", "one generated task", (task,), load)]
    """


@hookspec
def harness_trackers() -> list[Tracker]:
    """The experiment trackers this plugin provides: ``harness.Tracker`` entries.

    A tracker names the module it imports and how to install it (``--tracker NAME`` is refused
    before anything runs when that module is missing); in each trial ``open(trial_dir,
    tracking_dir, config)`` returns a run with ``params``, ``metrics`` and ``close``.

    Example::

        from harness import hookimpl
        from harness import Tracker

        @hookimpl
        def harness_trackers():
            return [Tracker("comet", "Comet experiments", "comet_ml", "pip install comet_ml", CometRun)]
    """


@hookspec
def harness_reporters() -> list[Reporter]:
    """The output formats of the comparison report this plugin provides: ``harness.Reporter``
    entries.

    ``write(report, out_dir)`` is called once per report with the computed tables and figures and
    returns the files it wrote; users pick formats with ``harness report --formats NAME,...``.

    Example::

        from harness import hookimpl
        from harness import Reporter

        def write_latex(report, out):
            ...
            return [out / "report.tex"]

        @hookimpl
        def harness_reporters():
            return [Reporter("latex", "report.tex: every table", write_latex)]
    """
