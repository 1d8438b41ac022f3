"""Plugin discovery with pluggy: entry points of the ``harness`` group, then ``--plugin`` modules.

Built-in plugins are declared in cmi-harness's own ``pyproject.toml`` under the same
group, so they load exactly like a third-party package's. Environment switches:

* ``HARNESS_DISABLE_PLUGIN_AUTOLOAD=1``: load only cmi-harness's own entry points
  (and modules named with ``--plugin``), not those of other installed packages.
* ``HARNESS_TRACE_HOOKS=1``: print every hook call to stderr.

What each hook returns is checked against its spec (``harness.hookspecs``): a plugin that fails
to import, a hook that raises or returns something other than a list of its entry type, is named
(plugin and hook) in a warning and that hook's entries are skipped; a hook implementation whose
name matches no spec (a typo) is reported with a close match.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from harness import hookspecs
from harness.errors import HarnessError
from harness.models import ModelSpec
from harness.objective import Objective
from harness.registry import Registry
from harness.reporter import Reporter
from harness.suite import Suite
from harness.tracking import Tracker

GROUP = "harness"
OWN_DIST = "cmi-harness"
DISABLE_AUTOLOAD = "HARNESS_DISABLE_PLUGIN_AUTOLOAD"
TRACE = "HARNESS_TRACE_HOOKS"
MODEL_HINT = " Or pass a local model directory, or a Hugging Face Hub id such as 'bert-base-uncased' via hf:ID."


@dataclass
class Plugins:
    objectives: Registry = field(default_factory=lambda: Registry("objective"))
    models: Registry = field(default_factory=lambda: Registry("model", MODEL_HINT))
    suites: Registry = field(default_factory=lambda: Registry("suite"))
    reporters: Registry = field(default_factory=lambda: Registry("reporter"))
    trackers: Registry = field(default_factory=lambda: Registry("tracker"))
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Hook:
    """How the entries one hook returns are checked and registered."""

    name: str  # the hook spec, e.g. "harness_models"
    registry: str  # the Plugins field its entries go to
    expected: str  # what each entry must be, as a refusal says it
    accepts: Callable[[Any], bool]  # is an entry of that type
    validate: Callable[[Any], None] = lambda entry: None  # further checks of an accepted entry; raises TypeError


def _is_objective(item: object) -> bool:
    return isinstance(item, type) and issubclass(item, Objective)


HOOKS = (  # in the order they are collected; each matches a return type in harness.hookspecs
    Hook(
        "harness_objectives",
        "objectives",
        "a subclass of harness.Objective",
        _is_objective,
        lambda cls: cls.validate_class(),
    ),
    Hook("harness_models", "models", "a harness.models.ModelSpec", lambda x: isinstance(x, ModelSpec)),
    Hook("harness_suites", "suites", "a harness.Suite", lambda x: isinstance(x, Suite)),
    Hook("harness_reporters", "reporters", "a harness.reporter.Reporter", lambda x: isinstance(x, Reporter)),
    Hook("harness_trackers", "trackers", "a harness.tracking.Tracker", lambda x: isinstance(x, Tracker)),
)


def load(extra_modules: tuple[str, ...] = ()) -> Plugins:
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    if os.environ.get(TRACE):
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    out = Plugins()
    sources: dict[str, str] = {}
    only_own = os.environ.get(DISABLE_AUTOLOAD, "") not in ("", "0")
    for ep in sorted(entry_points(group=GROUP), key=lambda e: (e.dist.name if e.dist else "", e.name)):
        dist = ep.dist.name if ep.dist else "?"
        if only_own and dist != OWN_DIST:
            continue
        name = f"{dist}:{ep.name}"
        try:
            _register(pm, ep.load(), name)
        except Exception as exc:  # a broken third-party plugin must not take the harness down
            out.warnings.append(f"plugin {ep.name!r} from {dist} failed to load and is skipped: {_brief(exc)}")
            continue
        sources[name] = f"{dist} {ep.dist.version}" if ep.dist else dist
    for module in extra_modules:
        try:
            mod = importlib.import_module(module)
        except Exception as exc:
            raise HarnessError(
                f"--plugin {module}: cannot import it ({_brief(exc)}); check the module name and that it is on "
                f"PYTHONPATH"
            ) from exc
        try:
            _register(pm, mod, module)
        except Exception as exc:
            raise HarnessError(f"--plugin {module}: {_brief(exc)}") from exc
        sources[module] = f"{module} (--plugin)"
    out.warnings += _unknown_hooks(pm)
    for hook in HOOKS:
        _collect(pm, hook, out, sources)
    return out


def _register(pm: pluggy.PluginManager, module: object, name: str) -> None:
    if pm.is_registered(module):  # two entry points pointing at one module
        return
    pm.register(module, name=name)


def _collect(pm: pluggy.PluginManager, hook: Hook, out: Plugins, sources: dict[str, str]) -> None:
    """Each plugin's entries for ``hook``, all checked before any is registered: a plugin whose hook
    raises or returns a wrong type is named in a warning and none of that hook's entries are kept."""
    registry: Registry = getattr(out, hook.registry)
    for impl in getattr(pm.hook, hook.name).get_hookimpls():
        where = f"plugin {impl.plugin_name!r}: {hook.name}"
        try:
            items = _checked(impl.function(), hook)
        except HarnessError:
            raise
        except Exception as exc:
            out.warnings.append(f"{where} failed and is skipped: {_brief(exc)}")
            continue
        for item in items:  # a name registered twice stops the command (HarnessError)
            registry.add(item.name, item, item.description, sources.get(impl.plugin_name, impl.plugin_name))


def _checked(returned: object, hook: Hook) -> list:
    """``returned`` as a list, refused (TypeError) unless it is a list or tuple of ``hook``'s entry type."""
    if returned is None:  # a hook with nothing to add this time
        return []
    if not isinstance(returned, (list, tuple)):
        raise TypeError(f"returned {_short(returned)}; it must return a list, each entry {hook.expected}")
    for item in returned:
        if not hook.accepts(item):
            raise TypeError(f"{_short(item)} is not {hook.expected}")
        hook.validate(item)
    return list(returned)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _unknown_hooks(pm: pluggy.PluginManager) -> list[str]:
    """check_pending() as warnings: hook implementations whose name matches no hook spec."""
    specs = [n for n in dir(hookspecs) if n.startswith("harness_")]
    found = []
    for name, caller in vars(pm.hook).items():
        if isinstance(caller, pluggy.HookCaller) and not caller.has_spec():
            for impl in caller.get_hookimpls():
                if not impl.optionalhook:
                    close = difflib.get_close_matches(name, specs, n=1)
                    guess = f"; did you mean {close[0]!r}?" if close else f"; known hooks: {', '.join(specs)}"
                    found.append(f"plugin {impl.plugin_name!r} implements unknown hook {name!r}{guess}")
    return found


def _brief(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
