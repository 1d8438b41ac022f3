"""Plugin discovery with pluggy: entry points of the ``harness`` group, then ``--plugin`` modules.

Built-in plugins are declared in cmi-harness's own ``pyproject.toml`` under the same
group, so they load exactly like a third-party package's. Environment switches:

* ``HARNESS_DISABLE_PLUGIN_AUTOLOAD=1``: load only cmi-harness's own entry points
  (and modules named with ``--plugin``), not those of other installed packages.
* ``HARNESS_TRACE_HOOKS=1``: print every hook call to stderr.

A plugin that fails to import, or whose hook raises, is named in a warning and skipped;
a hook implementation whose name matches no spec (a typo) is reported with a close match.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points

import pluggy

from harness import hookspecs
from harness.errors import HarnessError
from harness.objective import Objective
from harness.registry import Registry

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
    _collect(pm, "harness_objectives", out, sources, _add_objective)
    _collect(pm, "harness_models", out, sources, lambda reg, m, src: reg.models.add(m.name, m, m.description, src))
    _collect(pm, "harness_suites", out, sources, lambda reg, s, src: reg.suites.add(s.name, s, s.description, src))
    _collect(
        pm, "harness_reporters", out, sources, lambda reg, r, src: reg.reporters.add(r.name, r, r.description, src)
    )
    _collect(pm, "harness_trackers", out, sources, lambda reg, t, src: reg.trackers.add(t.name, t, t.description, src))
    return out


def _register(pm: pluggy.PluginManager, module: object, name: str) -> None:
    if pm.is_registered(module):  # two entry points pointing at one module
        return
    pm.register(module, name=name)


def _add_objective(reg: Plugins, cls: type, src: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Objective)):
        raise TypeError(f"{cls!r} is not a subclass of harness.Objective")
    cls.validate_class()
    reg.objectives.add(cls.name, cls, cls.description, src)


def _collect(pm, hook_name, out: Plugins, sources, add) -> None:
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        src = sources.get(impl.plugin_name, impl.plugin_name)
        try:
            for item in impl.function() or ():
                add(out, item, src)
        except HarnessError:
            raise
        except Exception as exc:
            out.warnings.append(f"plugin {impl.plugin_name!r}: {hook_name} failed and is skipped: {_brief(exc)}")


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
