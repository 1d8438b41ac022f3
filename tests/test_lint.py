"""The code is linted and formatted as ruff says, and type-checks under mypy (the same checks as `tox -e lint`)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PATHS = ["harness", "plugins", "tests", "benchmarks", "examples"]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff(command):
    ruff = shutil.which("ruff") or str(Path(__import__("sys").executable).parent / "ruff")
    result = subprocess.run([ruff, *command, *PATHS], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow  # about 20 s without a cache
def test_mypy_finds_no_type_errors_in_the_package_and_its_plugins():
    mypy = shutil.which("mypy") or str(Path(__import__("sys").executable).parent / "mypy")
    result = subprocess.run([mypy], cwd=ROOT, capture_output=True, text=True)  # [tool.mypy] in pyproject.toml
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
