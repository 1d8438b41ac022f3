"""The benchmark scripts the project's figures come from run, here in their CPU dry modes."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import write_glue

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_mode_learns_and_reports_a_ratio_per_round_and_per_step_option():
    done = subprocess.run([str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    learned = re.search(r"learns: sentiment dev accuracy ([\d.]+)", done.stdout)
    assert learned and float(learned.group(1)) >= 75
    rounds = re.findall(r"^sentiment round \d: harness [\d.]+ samples/s \| HF Trainer \(dynamic padding, "
                        r"length-grouped\) [\d.]+ samples/s \([\d.]+x\) \| run_glue.py defaults \(pad 128\) "
                        r"[\d.]+ samples/s \([\d.]+x\)$", done.stdout, re.M)  # fmt: skip
    assert len(rounds) == 2
    assert re.search(r"ratio harness / Trainer: median [\d.]+x \(range [\d.]+-[\d.]+, 2 rounds\)", done.stdout)
    assert re.search(r"ratio harness / run_glue.py defaults: median [\d.]+x", done.stdout)
    for option in ("--pad-multiple 8", "loss read every 16 steps"):  # the CPU's non-defaults
        per_round = re.findall(rf"^sentiment round \d: harness {option} ([\d.]+) samples/s \(([\d.]+)x the Trainer, "
                               rf"([\d.]+)x the harness's defaults\)$", done.stdout, re.M)  # fmt: skip
        assert len(per_round) == 2 and all(float(rate) > 0 for rate, _, _ in per_round)
        assert re.search(rf"ratio harness {option} / Trainer: median [\d.]+x \(range [\d.]+-[\d.]+, 2 rounds\); "
                         rf"/ harness defaults: median [\d.]+x", done.stdout)  # fmt: skip


@pytest.fixture(scope="module")
def cola(tmp_path_factory):
    """A CoLA copy with 48 training rows of varied length: enough for a few steps of batch 8."""
    words = "the sailors rode a breeze over every quiet and distant grey sea".split()
    rows = [f"gj04\t{i % 2}\t\t{' '.join(words[: 3 + i % 9])}." for i in range(48)]
    return write_glue(tmp_path_factory.mktemp("glue"), replace={"CoLA/train.tsv": rows})


def _bench(script: str, data_dir: Path, *args: str) -> str:
    cmd = [sys.executable, script, "--data-dir", str(data_dir), "--task", "cola", "--batch-size", "8", "--rounds", "3"]
    done = subprocess.run([*cmd, "--warmup", "1", "--threads", "1", *args], cwd=ROOT / "benchmarks",
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow  # each loads the pretrained minilm-l6: about 10 s
def test_profile_step_splits_a_step_into_its_phases_and_lists_operators(cola):
    out = _bench("profile_step.py", cola, "--top", "5")
    step = float(re.search(r"^step ([\d.]+) ms$", out, re.M).group(1))
    phases = dict(re.findall(r"^  harness\.(\w+) +([\d.]+) ms", out, re.M))
    assert set(phases) == {"collate", "forward", "loss", "backward", "optimizer_step"}
    assert 0.8 * step < sum(map(float, phases.values())) <= step * 1.01  # the phases are the step
    assert "aten::mm" in out or "aten::addmm" in out


@pytest.mark.slow
@pytest.mark.parametrize("script, variants", [
    ("objective_step_cost.py", ["ce", "cmi_min", "cmi_min (features)"]),
    ("kd_step_cost.py", ["ce", "kd, cached teacher", "kd, teacher forward"]),
])  # fmt: skip
def test_step_cost_benchmarks_print_a_ratio_per_variant_against_ce(cola, script, variants):
    out = _bench(script, cola)
    ratios = dict(re.findall(r"^(.+?) +median step +[\d.]+ ms +ratio to ce ([\d.]+)x$", out, re.M))
    assert list(ratios) == variants and float(ratios["ce"]) == 1.0


@pytest.mark.slow  # eight short trainings in processes forked from a preloaded server: about 20 s
def test_memory_benchmark_dry_mode_prints_every_method_against_the_trainer():
    cmd = [sys.executable, "memory.py", "--dry", "--threads", "1", "--dtype", "bf16"]  # bf16: what a GPU runs
    done = subprocess.run(cmd, cwd=ROOT / "benchmarks", capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = dict(re.findall(r"^\| (full|lora|lora\+checkpointing|qlora) \| (.+) \|$", done.stdout, re.M))
    assert set(rows) == {"full", "lora", "lora+checkpointing", "qlora"}
    for row in rows.values():
        trainable, trainer_mb, harness_mb, mb_ratio, trainer_sps, harness_sps, sps_ratio, in_all = [
            c.strip() for c in row.split("|")
        ]
        trainer_all, harness_all = (float(x.replace(",", "")) for x in in_all.split(" / "))
        assert trainer_all > float(trainer_mb) and harness_all > float(harness_mb)  # the model's memory too
        ours, theirs = re.match(r"([\d,]+) \(Trainer ([\d,]+)\)", trainable).groups()
        assert ours == theirs  # the same parameters train on both sides
        assert float(trainer_mb) > 0 and float(harness_mb) > 0 and float(trainer_sps) > 0 and float(harness_sps) > 0
        for ratio, mine, peer in ((mb_ratio, harness_mb, trainer_mb), (sps_ratio, harness_sps, trainer_sps)):
            assert float(ratio.rstrip("x")) == pytest.approx(float(mine) / float(peer), rel=0.1, abs=0.05)
    full, lora, checkpointed, qlora = (
        int(rows[m].split("(")[0].replace(",", "")) for m in ("full", "lora", "lora+checkpointing", "qlora")
    )
    assert lora < full / 5 and checkpointed == qlora == lora
