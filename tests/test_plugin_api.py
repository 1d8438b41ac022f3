"""The plugin API: typed hook specs, what the loader refuses, objectives' needs per instance, and
the built-ins' layout (the tiny model's vocabulary comes from a neutral word list, not a suite)."""

import hashlib
import inspect
import json
import subprocess
import sys
import textwrap

import pytest

from harness import hookspecs
from harness import plugins as plugin_loader
from harness.cli import main
from harness.objective import HParam, Objective

SPECS = [name for name in dir(hookspecs) if name.startswith("harness_")]

# sha256 of json.dumps of the tiny tokenizer's (token, id) pairs in id order, and of the word list,
# computed before the word list moved out of the smoke suite: smoke results depend on both.
TINY_VOCAB_SHA256 = "b14617dd921d14c2df3faa0fca42fb095a06a7a07245a95a73a0c24438005113"
WORDS_SHA256 = "e6bca76c258de122e1fd0e003a25e6d6e21dc5a9023aea2cb30be9754d3fe970"


def _plugin(tmp_path, monkeypatch, name, body):
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    return plugin_loader.load((name,))


def _details(capsys, name):
    assert main(["list", "--details", name]) == 0
    return capsys.readouterr().out


# -- the specs ------------------------------------------------------------------------------------


def test_importing_the_hookspecs_does_not_load_torch():
    code = "import sys, harness.hookspecs; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_every_hook_is_typed_documented_and_checked_by_the_loader():
    assert SPECS == sorted(hook.name for hook in plugin_loader.HOOKS)
    for name in SPECS:
        spec = getattr(hookspecs, name)
        returns = inspect.signature(spec).return_annotation
        assert returns.startswith("list[") and returns != "list[Any]", (name, returns)
        assert "Example::" in spec.__doc__ and "@hookimpl" in spec.__doc__, name


# -- what the loader refuses ----------------------------------------------------------------------

WRONG = {  # hook -> (what a careless plugin returns, what the refusal says each entry must be)
    "harness_objectives": ("[dict]", "<class 'dict'> is not a subclass of harness.Objective"),
    "harness_models": ("['bert-base-cased']", "'bert-base-cased' is not a harness.models.ModelSpec"),
    "harness_suites": ("[{'name': 'mine'}]", "{'name': 'mine'} is not a harness.Suite"),
    "harness_reporters": ("[print]", "<built-in function print> is not a harness.reporter.Reporter"),
    "harness_trackers": ("[42]", "42 is not a harness.tracking.Tracker"),
}


@pytest.mark.parametrize("hook", sorted(WRONG))
def test_an_entry_of_the_wrong_type_is_refused_naming_plugin_and_hook(tmp_path, monkeypatch, hook):
    returned, message = WRONG[hook]
    name = f"wrong_{hook}"
    loaded = _plugin(
        tmp_path, monkeypatch, name, f"from harness import hookimpl\n@hookimpl\ndef {hook}():\n    return {returned}\n"
    )
    assert f"plugin {name!r}: {hook} failed and is skipped: TypeError: {message}" in loaded.warnings
    assert "ce" in loaded.objectives and "tiny" in loaded.models  # the built-ins still load


GOOD = """
    from harness import LossOutput, Objective, hookimpl

    class Mine(Objective):
        name = "mine"
        description = "my objective"
        def loss(self, out):
            return LossOutput(out.logits.sum())
"""


def test_a_hook_that_returns_one_entry_instead_of_a_list_is_refused(tmp_path, monkeypatch):
    body = GOOD + "\n    @hookimpl\n    def harness_objectives():\n        return Mine\n"
    loaded = _plugin(tmp_path, monkeypatch, "not_a_list", body)
    (warning,) = [w for w in loaded.warnings if "not_a_list" in w]
    assert warning.startswith("plugin 'not_a_list': harness_objectives failed and is skipped: TypeError: returned ")
    assert warning.endswith("it must return a list, each entry a subclass of harness.Objective")
    assert "mine" not in loaded.objectives


def test_one_wrong_entry_refuses_the_whole_list(tmp_path, monkeypatch):
    body = GOOD + "\n    @hookimpl\n    def harness_objectives():\n        return [Mine, 'cmi']\n"
    loaded = _plugin(tmp_path, monkeypatch, "half_wrong", body)
    assert any(w.startswith("plugin 'half_wrong': harness_objectives failed") for w in loaded.warnings)
    assert "mine" not in loaded.objectives


# -- needs, per instance --------------------------------------------------------------------------


def test_cmi_min_needs_features_only_in_the_features_space(loaded):
    cmi_min = loaded.objectives.get("cmi_min")
    assert cmi_min(2).needs == {"logits"}
    assert cmi_min(2, space="logits").needs == {"logits"}
    assert cmi_min(2, space="features").needs == {"logits", "features"}
    assert cmi_min.needs_by_setting() == {"": {"logits"}, "space=features": {"logits", "features"}}


def test_needs_declared_on_the_class_hold_for_every_instance(loaded):
    assert loaded.objectives.get("kd")(2).needs == {"logits", "teacher_logits"}
    assert loaded.objectives.get("ce")(2).needs == {"logits"}


def test_unknown_needs_are_refused_when_the_plugin_loads(tmp_path, monkeypatch):
    body = (
        GOOD
        + """
    class Spaced(Mine):
        name = "spaced"
        hparams = (HParam("space", "logits", "where", choices=("logits", "features")),)

        @classmethod
        def needs_for(cls, hp):
            return {"logits", "featurs"} if hp["space"] == "features" else {"logits"}

    @hookimpl
    def harness_objectives():
        return [Spaced]
    """
    )
    loaded = _plugin(tmp_path, monkeypatch, "bad_needs", body.replace("import LossOutput", "import HParam, LossOutput"))
    assert (
        "plugin 'bad_needs': harness_objectives failed and is skipped: TypeError: Spaced: objective "
        "spaced[space=features] needs unknown outputs ['featurs']; known: features, logits, teacher_logits"
    ) in loaded.warnings
    assert "spaced" not in loaded.objectives


def test_unknown_needs_that_only_one_setting_shows_are_refused_per_instance():
    class Tapped(Objective):
        name = "tapped"
        description = "needs hidden states from some depth on, which the loop cannot hand over"
        hparams = (HParam("depth", 0, "layer to tap"),)

        @classmethod
        def needs_for(cls, hp):
            return {"logits", "hidden_states"} if hp["depth"] > 3 else {"logits"}

        def loss(self, out):
            raise NotImplementedError

    Tapped.validate_class()  # the defaults are fine; an int has no listed values to try
    assert Tapped(2).needs == {"logits"}
    with pytest.raises(TypeError, match=r"objective tapped\[depth=5\] needs unknown outputs \['hidden_states'\]"):
        Tapped(2, depth=5)


def test_list_details_shows_the_needs_of_each_setting(capsys):
    assert "\nneeds: logits (space=features: logits, features)\n" in _details(capsys, "cmi_min")
    assert "\nneeds: logits, teacher_logits\n" in _details(capsys, "kd")
    assert "\nneeds: logits\n" in _details(capsys, "ce")


# -- the built-ins' layout ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_in_a_fresh_process():
    """The tiny tokenizer built in a process that imported only the models plugin."""
    code = textwrap.dedent("""
        import hashlib, json, sys
        from harness_plugins.models import tiny_tokenizer
        pairs = sorted(tiny_tokenizer().get_vocab().items(), key=lambda kv: kv[1])
        print(json.dumps({
            "sha256": hashlib.sha256(json.dumps(pairs).encode()).hexdigest(),
            "size": len(pairs),
            "suites": sorted(m for m in sys.modules if m.startswith("harness_plugins.suite")),
        }))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_tiny_tokenizer_keeps_its_vocabulary(tiny_in_a_fresh_process):
    assert tiny_in_a_fresh_process["size"] == 160
    assert tiny_in_a_fresh_process["sha256"] == TINY_VOCAB_SHA256


def test_the_tiny_model_does_not_depend_on_a_suite(tiny_in_a_fresh_process):
    assert tiny_in_a_fresh_process["suites"] == []


def test_the_shared_word_list_is_unchanged():
    from harness_plugins.words import VOCABULARY

    assert hashlib.sha256(json.dumps(VOCABULARY).encode()).hexdigest() == WORDS_SHA256


def test_an_objective_without_loss_is_refused_when_its_plugin_loads(tmp_path, monkeypatch):
    """It used to load, be listed, and fail every trial at its first step."""
    body = """
    from harness import Objective, hookimpl

    class Lossless(Objective):
        name = "lossless"
        description = "has a name and a description, nothing else"

    @hookimpl
    def harness_objectives():
        return [Lossless]
    """
    loaded = _plugin(tmp_path, monkeypatch, "lossless_plugin", body)
    assert any("Lossless must define loss(self, out)" in w and "lossless_plugin" in w for w in loaded.warnings)
    assert "lossless" not in loaded.objectives


def test_built_in_plugins_and_the_examples_import_only_the_public_api():
    """`from harness import NAME` with NAME in harness.__all__ (or a public helper module): an internal
    move can then never break a third-party plugin written like the built-in ones."""
    import ast
    from pathlib import Path

    import harness

    root = Path(__file__).parent.parent
    files = [*root.glob("plugins/*.py"), *root.glob("examples/*/*.py")]
    assert len(files) >= 8
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness"):
                assert node.module == "harness", f"{path.name}: from {node.module} import ... (use `from harness`)"
                for alias in node.names:
                    assert alias.name in harness.__all__ or alias.name in harness.PUBLIC_MODULES, (
                        path.name,
                        alias.name,
                    )
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("harness.") for a in node.names), path.name
    for name in harness.__all__:
        assert getattr(harness, name) is not None  # every public name resolves
