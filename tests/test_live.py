"""The live progress of Ray trials: counts by state, and each running trial's epoch and dev metric."""

import io
from types import SimpleNamespace

from rich.console import Console

from harness.live import LiveProgress


def _text(renderable) -> str:
    out = Console(file=io.StringIO(), width=100)
    out.print(renderable)
    return out.file.getvalue()


def test_progress_counts_trials_by_state_and_shows_the_running_ones(tmp_path):
    printed = Console(file=io.StringIO(), width=100)
    progress = LiveProgress(
        printed,
        total=4,
        describe=lambda config: (config["id"], f"trial {config['id']}", 3),
        outcome=lambda key, errored, state: ("failed" if errored else "done", f"{state.label} ended"),
        quiet=True,  # no terminal here: the table is checked directly
    )
    a, b, c = (SimpleNamespace(config={"id": k}) for k in "abc")
    for trial in (a, b, c):
        progress.on_trial_start(0, [], trial)
    progress.on_trial_result(0, [], a, {"epoch": 2, "metric": "accuracy", "score": 0.8125})
    progress.on_trial_complete(0, [], b)
    progress.on_trial_error(0, [], c)
    shown = _text(progress._render())
    assert "trials: 1 pending, 1 running, 1 done, 1 failed" in shown
    assert "trial a" in shown and "2/3" in shown and "accuracy 81.25" in shown
    assert "trial b" not in shown and "trial c" not in shown  # only running trials get a row
    assert progress.trials["a"].reports == [{"epoch": 2, "metric": "accuracy", "score": 0.8125}]
    assert printed.file.getvalue() == ""  # quiet: no per-trial lines either


def test_progress_shows_the_step_a_running_trial_last_wrote():
    steps = {"a": {"epoch": 1, "step": 40, "total_steps": 120, "loss": 0.6931}}
    progress = LiveProgress(
        Console(file=io.StringIO(), width=100, force_terminal=True),
        total=2,
        describe=lambda config: (config["id"], f"trial {config['id']}", 3),
        outcome=lambda key, errored, state: ("done", ""),
        peek=steps.get,
    )
    with progress:
        for k in "ab":
            progress.on_trial_start(0, [], SimpleNamespace(config={"id": k}))
        progress.on_step_end(0, [])
    shown = _text(progress._render())
    assert "40/120" in shown and "0.6931" in shown  # trial a, read through peek
    assert progress.trials["b"].step == {}  # nothing written yet: shown as "-"
