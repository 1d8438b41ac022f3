"""The package's layering: imports flow one way, from the command line down to the files, with no circle.

Read from the source (every import statement, also those inside functions; those under
``if TYPE_CHECKING:`` are for readers and type checkers and do not count)."""

import ast
from pathlib import Path

import harness

PACKAGE = Path(harness.__file__).parent

# Top to bottom: a module may import only modules listed after it. A new module gets its place here.
ORDER = [
    "__main__",
    "cli",  # the parser
    "arguments",
    "tune",  # commands
    "search",
    "commands",
    "predict",
    "options",  # defaults < YAML < command line, checked once
    "converters",
    "planner",  # options -> trial configs
    "ray_executor",  # executors: the Ray driver,
    "ray_callbacks",
    "ray_trial",  # what runs inside a Tune trial
    "runner",
    "live",
    "render",  # the report
    "report",
    "comparison",
    "cmi_tables",
    "runs",
    "manipulation",
    "grouping",
    "plots",
    "reference",
    "rundir",  # the run directory
    "storage",
    "trial",  # one trial
    "teachers",
    "kept",
    "lora",
    "chance",
    "significance",
    "plugins",  # the plugin manager and the plugin types
    "hookspecs",
    "registry",
    "reporter",
    "tracking",
    "trainer",  # training
    "forward",
    "checkpoint",
    "last_layer",
    "cpu_dropout",
    "engine",
    "embedding_rows",
    "batching",
    "data",
    "files",
    "models",
    "hub",
    "provenance",
    "objective",
    "suite",
    "metrics",
    "record",  # the files
    "config",
    "results",
    "errors",
    "__init__",
]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    typing_only = {
        id(node)
        for branch in ast.walk(tree)
        if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
        for stmt in branch.body
        for node in ast.walk(stmt)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module == "harness":
            found |= {a.name for a in node.names if (PACKAGE / f"{a.name}.py").exists()}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("harness.")}
    return found - {path.stem}


GRAPH = {p.stem: _imports(p) for p in sorted(PACKAGE.glob("*.py"))}


def test_every_module_has_its_place_in_the_order():
    assert sorted(GRAPH) == sorted(ORDER)


def test_imports_only_flow_down():
    upward = [
        f"{module} imports {dep}"
        for module, deps in GRAPH.items()
        for dep in deps
        if ORDER.index(dep) <= ORDER.index(module)
    ]
    assert upward == []


def test_the_checker_sees_an_upward_import(tmp_path):
    """The check reads what it should: a function-level import counts, a TYPE_CHECKING one does not."""
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from harness.cli import main\n"
        "def f():\n    from harness.options import Options\n    import harness.rundir\n"
    )
    assert _imports(module) == {"options", "rundir"}
