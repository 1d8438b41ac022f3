"""Fixtures every test module may use: the plugins loaded once, `harness` run in process, and an
isolated cache; the environment set for fast in-process trials. Shared helpers that are not
fixtures live in tests/helpers.py."""

import os

# Set before anything loads torch's OpenMP: its threads sleep rather than spin while they wait for
# work. On this 2-core machine with a study running beside the tests, one tiny trial took 14-15 s
# instead of 23-43 s (the same thread count, so the same numbers).
os.environ["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
# Under pytest-xdist each worker gets its share of the cores, not all of them: on this 2-core machine
# three test files took 66 s on two workers at one thread each against 72 s at two threads each.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(share))

import pytest

from harness import plugins as plugin_loader
from harness.cli import main

os.environ.pop("HARNESS_GLUE_DIR", None)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["HARNESS_EXECUTOR"] = "local"  # fast in-process trials; tests of the Ray path say --executor ray


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    os.environ["HARNESS_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(autouse=True)
def _ray_only_where_marked(request, monkeypatch):
    """A test that starts Ray must say so with @pytest.mark.ray, so that -m "not ray" leaves out every one."""
    if request.node.get_closest_marker("ray") is None:
        import ray

        def refuse(*args, **kwargs):
            raise AssertionError(f"{request.node.nodeid} starts Ray; mark it @pytest.mark.ray")

        monkeypatch.setattr(ray, "init", refuse)


@pytest.fixture(scope="session")
def loaded():
    return plugin_loader.load()


@pytest.fixture
def cli(capsys):
    """Runs `harness ARGS` in process; returns (exit code, stdout, stderr)."""

    def run(*args: str):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse
            code = exc.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
