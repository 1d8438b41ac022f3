"""Ray settings checked before any Ray starts: Ray is the default executor, an address where nothing
answers and a dashboard without its packages are each refused in one line, before a run directory
exists. (No test here starts Ray, so none is marked ``ray``.)"""

import importlib.util
import time

import pytest


def test_the_default_executor_is_ray(monkeypatch):
    from harness.cli import parse

    monkeypatch.delenv("HARNESS_EXECUTOR")
    assert parse(["run"])[1].executor == "ray"


@pytest.mark.parametrize("command", [["run", "--executor", "ray"], ["tune", "--search", "lr=choice:1e-5"]])
def test_unreachable_address_is_one_line_and_fast(cli, tmp_path, command):
    started = time.monotonic()
    code, _, err = cli(*command, "--address", "127.0.0.1:9", "--tasks", "sentiment", "--output-dir", str(tmp_path))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--address 127.0.0.1:9: nothing answers there" in err
    assert time.monotonic() - started < 30
    assert not any(tmp_path.iterdir())  # refused before a run directory was made


def test_a_dashboard_without_its_packages_is_refused_in_one_line(cli, tmp_path):
    if importlib.util.find_spec("aiohttp"):
        pytest.skip("ray[default] is installed here")
    code, _, err = cli("run", "--executor", "ray", "--dashboard", "--output-dir", str(tmp_path))
    assert code == 2 and "--dashboard needs Ray's dashboard packages: pip install 'ray[default]'" in err
    assert not any(tmp_path.iterdir())


def test_tune_state_saved_before_the_driver_split_still_finds_its_trainable():
    """Tune pickles the trainable by reference into a run's saved state (`harness tune --resume` restores
    it); runs saved before the Ray driver and the trial code were split name harness.ray_executor._trainable."""
    import pickle

    from harness.ray_trial import trainable

    assert pickle.loads(b"charness.ray_executor\n_trainable\n.") is trainable
