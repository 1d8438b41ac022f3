import os
from pathlib import Path

import pytest

from harness import plugins as plugin_loader
from harness.cli import main

os.environ.pop("HARNESS_GLUE_DIR", None)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["HARNESS_EXECUTOR"] = "local"  # fast in-process trials; tests of the Ray path say --executor ray


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    os.environ["HARNESS_CACHE"] = str(tmp_path_factory.mktemp("cache"))


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


def files_of(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
