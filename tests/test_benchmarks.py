"""The benchmark scripts the project's figures come from run, here in their CPU dry modes."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_mode_learns_and_reports_a_ratio_per_round():
    done = subprocess.run([str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    learned = re.search(r"learns: sentiment dev accuracy ([\d.]+)", done.stdout)
    assert learned and float(learned.group(1)) >= 75
    rounds = re.findall(r"^sentiment round \d: HF Trainer \(dynamic padding, length-grouped\) .* ratio [\d.]+x "
                        r"\([\d.]+x against pad 128\)$", done.stdout, re.M)  # fmt: skip
    assert len(rounds) == 2
    assert re.search(r"ratio harness / Trainer: median [\d.]+x \(range [\d.]+-[\d.]+, 2 rounds\)", done.stdout)
    assert re.search(r"ratio harness / run_glue.py defaults: median [\d.]+x", done.stdout)
