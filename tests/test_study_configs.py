"""The committed study configs load and plan offline (the GPU one cannot run here: no Hub, no GPU)."""

from pathlib import Path

from harness.cli import parse
from tests.helpers import write_glue

ROOT = Path(__file__).resolve().parents[1]
GLUE = ("cola", "sst2", "mrpc", "qqp", "mnli", "qnli", "rte", "wnli")


def plan_of(loaded, name: str, data_dir: Path):
    _, opts = parse(["run", "--config", str(ROOT / "benchmarks" / name), "--data-dir", str(data_dir)])
    return opts.plan(loaded, opts.seeds, check_model=False)


def test_the_gpu_study_is_the_papers_setting(loaded, tmp_path):
    plan = plan_of(loaded, "paper_gpu.yaml", write_glue(tmp_path / "glue"))
    trials = plan.trials
    assert {c.task for c in trials} == set(GLUE)
    arms = {(c.model, c.objective, c.save_teacher) for c in trials}
    assert arms == {
        ("bert-base", "ce", True),  # the ce arm, and the students' first teacher stage: one trial
        ("bert-base", "cmi_max", True),
        ("bert-base", "cmi_min", False),
        ("distilbert-base", "ce", False),
        ("distilbert-base", "kd", False),
        ("distilbert-base", "cmi_max_kd", False),
    }
    assert all((c.lr, c.batch_size, c.max_seq_length, c.precision) == (2e-5, 32, 128, "bf16") for c in trials)
    seeds = {t: sorted({c.seed for c in trials if c.task == t}) for t in GLUE}
    assert seeds["sst2"] == [1, 2, 3, 4, 5] and seeds["rte"] == list(range(1, 11))
    per_seed = [c for c in trials if c.task == "sst2" and c.seed == 1]
    assert len(per_seed) == 3 + 1 + 3  # teachers (ce, ce control, cmi_max), cmi_min, three students


def test_the_cpu_study_plans_every_glue_task_whole_task_by_whole_task(loaded, tmp_path):
    plan = plan_of(loaded, "paper_cpu.yaml", write_glue(tmp_path / "glue"))
    assert {c.task for c in plan.trials} == set(GLUE)
    assert {c.model for c in plan.trials} == {"minilm-l6", "minilm-l6:half"}
    assert all(len({c.seed for c in plan.trials if c.task == t}) >= 3 for t in GLUE)
    order = [c.task for c in plan.trials]
    assert order == sorted(order, key=order.index) and order[0] == "wnli"  # one task after another
    mnli = next(c for c in plan.trials if c.task == "mnli")
    assert (mnli.max_train_samples, mnli.max_dev_samples, mnli.lr) == (1000, 1000, 5e-5)
