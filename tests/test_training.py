"""Tiny-model training on the generated smoke suite: it must learn, be deterministic, and record it all;
a loss that turns non-finite fails its trial clearly and the run goes on."""

import json
import platform

import numpy as np
import pytest

from harness.metrics import cmi_stats, glue_metrics
from harness.report import build
from harness.results import read_predictions, trial_records
from tests.helpers import SMALL_DATA_FLAGS, write_glue


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The suite's one full training run (both smoke tasks, 2 seeds, 3 epochs of 2,000 examples: about
    30 s); the tests that read it are marked slow."""
    from harness.cli import main

    out = tmp_path_factory.mktemp("runs")
    assert (
        main(["run", "--objectives", "ce", "--seeds", "1,2", "--epochs", "3", "--output-dir", str(out), "--quiet"]) == 0
    )
    (run_dir,) = out.iterdir()
    return run_dir


def _by(records, task, seed):
    return [r for r in records if r["config"]["task"] == task and r["config"]["seed"] == seed]


@pytest.mark.slow
def test_tiny_model_beats_chance_clearly(smoke_run):
    records = trial_records(smoke_run)
    assert len(records) == 4 and all(r["status"] == "completed" for r in records)
    for r in records:
        acc = r["final"]["validation"]["accuracy"]
        chance = 1 / (3 if r["config"]["task"] == "nli" else 2)
        assert acc > chance + 0.3, (r["config"]["task"], acc)  # labels are 10% noisy: the ceiling is ~0.9
        losses = [e["train_loss"] for e in r["epochs"]]
        assert losses[-1] < losses[0]


@pytest.mark.slow
def test_same_seed_same_numbers_other_seed_other_numbers(smoke_run, tmp_path):
    from harness.cli import main

    args = ["run", "--objectives", "ce", "--tasks", "nli", "--seeds", "1"]
    assert main([*args, "--output-dir", str(tmp_path), "--quiet"]) == 0
    (again,) = trial_records(next(tmp_path.iterdir()))
    records = trial_records(smoke_run)
    (first,) = _by(records, "nli", 1)
    (other,) = _by(records, "nli", 2)
    assert again["trial_id"] == first["trial_id"]
    assert again["epochs"] == first["epochs"]  # every loss, metric and CMI value, bit for bit
    assert [e["train_loss"] for e in other["epochs"]] != [e["train_loss"] for e in first["epochs"]]


@pytest.mark.slow
def test_record_holds_what_a_reader_needs(smoke_run):
    (r,) = _by(trial_records(smoke_run), "nli", 2)
    for key in (
        "config",
        "harness",
        "versions",
        "epochs",
        "final",
        "wall_time_s",
        "train_samples_per_s",
        "peak_memory_mb",
        "status",
        "primary_metric",
        "data",
    ):
        assert key in r, key
    assert r["versions"]["torch"] and r["versions"]["deepspeed"] and r["harness"]["version"]
    assert r["node"] == {"host": platform.node(), "ray_node": None}  # the local executor: no Ray node
    assert len(r["epochs"]) == 3 and set(r["final"]["validation"]) >= {"accuracy", "cmi", "gamma", "ncmi"}
    assert r["train_samples_per_s"] > 0 and r["peak_memory_mb"] > 0
    assert r["data"]["train_examples"] == 2000


@pytest.mark.slow
def test_dev_predictions_recompute_the_recorded_metrics(smoke_run):
    for r in trial_records(smoke_run):
        trial_dir = smoke_run / "trials" / r["trial_id"]
        preds = read_predictions(trial_dir / r["predictions"])["validation"]
        assert preds["probs"].shape == (400, 3 if r["config"]["task"] == "nli" else 2)
        assert np.array_equal(preds["idx"], np.arange(400))
        got = glue_metrics(("accuracy",), preds["labels"], preds["probs"].argmax(1))
        got.update(cmi_stats(preds["probs"], preds["labels"], preds["probs"].shape[1]))
        assert got == pytest.approx(r["final"]["validation"], rel=1e-4, abs=1e-6)


@pytest.mark.slow
def test_run_json_lists_the_plan(smoke_run):
    run = json.loads((smoke_run / "run.json").read_text())
    assert len(run["trials"]) == 4 and {t["config"]["task"] for t in run["trials"]} == {"sentiment", "nli"}


NAN_PLUGIN = """
from harness import Objective, LossOutput, hookimpl

class Nan(Objective):
    name = "nan_after_3"
    description = "returns NaN from its fourth step on"
    calls = 0
    def loss(self, out):
        import torch.nn.functional as F
        Nan.calls += 1
        ce = F.cross_entropy(out.logits, out.labels)
        return LossOutput(ce * float("nan") if Nan.calls > 3 else ce)

@hookimpl
def harness_objectives():
    return [Nan]
"""


def test_non_finite_loss_fails_the_trial_clearly_and_the_run_goes_on(cli, tmp_path, monkeypatch):
    (tmp_path / "nan_plugin.py").write_text(NAN_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, _ = cli(
        "--plugin",
        "nan_plugin",
        "run",
        "--tasks",
        "sentiment",
        "--objectives",
        "nan_after_3,ce",
        "--seeds",
        "1",
        "--epochs",
        "1",
        *SMALL_DATA_FLAGS,  # 8 steps an epoch: the fourth is reached
        "--output-dir",
        str(tmp_path / "o"),
        "--quiet",
    )
    assert code == 1  # some trial failed
    records = {
        json.loads(p.read_text())["config"]["objective"]: json.loads(p.read_text())
        for p in (tmp_path / "o").glob("*/trials/*/record.json")
    }
    bad = records["nan_after_3"]
    assert bad["status"] == "failed"
    assert bad["error"].startswith("non-finite loss nan (parts {}) at epoch 1, step 4; lower the learning rate")
    assert records["ce"]["status"] == "completed"
    assert "failed" in out


def test_max_train_samples_is_a_fixed_subsample(tmp_path):
    import datasets

    from harness.data import subsample

    ds = datasets.Dataset.from_dict({"idx": list(range(100))})
    first, again = subsample(ds, 10)["idx"], subsample(ds, 10)["idx"]
    assert first == again and len(set(first)) == 10 and first == sorted(first)
    assert len(subsample(ds, 1000)) == 100


def test_tokenization_is_cached_on_disk(loaded):
    import os
    from pathlib import Path

    from harness.data import tokenize

    suite = loaded.suites.get("smoke")
    task = suite.task("sentiment")
    tok, _ = loaded.models.get("tiny").load(2)
    first = tokenize(task, suite.load(task, None), tok, 64, 100)
    cached = list((Path(os.environ["HARNESS_CACHE"]) / "tokenized").glob("sentiment-*"))
    assert cached
    again = tokenize(task, suite.load(task, None), tok, 64, 100)
    assert again["train"]["input_ids"] == first["train"]["input_ids"] and len(again["train"]) == 100
    assert again["train"].cache_files  # read back from the Arrow files


def test_glue_task_with_a_missing_optional_split_runs_and_says_so(cli, tmp_path):
    data = write_glue(tmp_path / "glue")
    code, out, err = cli(
        "run",
        "--suite",
        "glue",
        "--tasks",
        "mnli",
        "--objectives",
        "ce",
        "--data-dir",
        str(data),
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--output-dir",
        str(tmp_path / "o"),
        "--quiet",
    )
    assert code == 0, err
    assert "note: mnli: validation_mismatched is not evaluated" in out and "dev_mismatched.tsv not found" in out
    (record,) = trial_records(next((tmp_path / "o").iterdir()))
    assert record["status"] == "completed" and list(record["final"]) == ["validation_matched"]
    assert record["notes"] and "validation_mismatched" in record["notes"][0]
    # ... and the report says so, with the data's provenance, in every format
    run_dir = next((tmp_path / "o").iterdir())
    (data,) = build([run_dir]).tables["data"].itertuples()
    assert data.train == "3 used of 3 rows; the official split has 392,702 (a sample of the official train split)"
    assert data.dev == (
        "validation_matched: 1 rows; the official split has 9,815; validation_mismatched: missing, not evaluated"
    )
    assert data._5 == "mnli m acc (validation_mismatched missing)"  # what the task score averages
    md = (run_dir / "report" / "report.md").read_text()
    assert "validation_mismatched: missing, not evaluated" in md and "Notes on the data" in md
    html = (run_dir / "report" / "report.html").read_text()
    assert "validation_mismatched: missing, not evaluated" in html
    doc = json.loads((run_dir / "report" / "report.json").read_text())
    assert doc["tables"]["data"][0]["task score"] == data._5
    assert "missing, not" in out.replace("│", " ")  # the terminal too (a rich table, wrapped)
    ref = doc["tables"]["reference"]
    assert {r["metric"] for r in ref if r["task"] == "mrpc" and r["model"] == "bert-base"} == {
        "not stated by the paper (GLUE reports F1 and accuracy)"
    }


@pytest.mark.slow  # a fresh interpreter that imports torch and DeepSpeed: about 12 s
def test_a_first_run_compiles_no_deepspeed_op_and_imports_nothing_it_does_not_use(tmp_path):
    """DeepSpeed's CPU shared-memory op (inference all-reduce) is never used, so never built: a fresh
    extensions directory stays empty after a trial (it cost 40 s and two compilers on a new machine).
    A trial without --peft or trackers never imports PEFT, bitsandbytes or MLflow, though all three are
    installed here (5 s of CPU in every trial process, through transformers' and DeepSpeed's imports)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path / "ext")}
    args = ["run", "--executor", "local", "--tasks", "sentiment", "--objectives", "ce", "--seeds", "1", "--epochs", "1"]
    args += [*SMALL_DATA_FLAGS, "--quiet", "--output-dir", str(tmp_path / "o")]
    code = (
        "import sys\n"
        "from harness.cli import main\n"
        f"code = main({args!r})\n"
        "print('loaded:', [m for m in ('peft', 'bitsandbytes', 'mlflow') if m in sys.modules])\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "loaded: []" in done.stdout, done.stdout
    assert not (tmp_path / "ext").exists() or not any((tmp_path / "ext").iterdir())


@pytest.mark.slow  # a bf16 trial on the CPU: about 15 s
def test_bf16_is_mixed_precision_that_learns(loaded, tmp_path):
    """--precision bf16 keeps fp32 weights under a plain AdamW and autocasts the products to bf16, as a
    Trainer does; DeepSpeed's bf16 weights would wrap the optimizer in one that syncs once per tensor."""
    import torch

    from harness import engine as ds_engine
    from harness.cli import main
    from harness.config import TrialConfig
    from harness.models import resolve

    cfg = TrialConfig(suite="smoke", task="sentiment", objective="ce", model="tiny", seed=1, precision="bf16")
    _, model = resolve("tiny", loaded.models).load(2)
    engine = ds_engine.build(model, cfg, 1e-3, total_steps=10)
    assert type(engine.optimizer) is torch.optim.AdamW
    assert {p.dtype for p in engine.module.parameters()} == {torch.float32}
    seen = []
    linear = next(m for m in engine.module.modules() if isinstance(m, torch.nn.Linear))
    linear.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    engine(input_ids=torch.tensor([[2, 5, 6, 3]]))
    assert seen == [torch.bfloat16]
    args = ["run", "--executor", "local", "--tasks", "sentiment", "--objectives", "ce", "--seeds", "1"]
    args += ["--precision", "bf16"]
    assert main([*args, "--quiet", "--output-dir", str(tmp_path)]) == 0
    (record,) = trial_records(next(tmp_path.iterdir()))
    assert record["config"]["precision"] == "bf16"
    assert record["final"]["validation"]["accuracy"] > 0.8  # chance 0.5; labels 10% noisy


def test_the_learning_rate_schedule_is_transformers_linear_warm_up_and_decay():
    """engine.linear_schedule: worked by hand for 2 warm-up steps of 6, and equal to transformers'
    get_linear_schedule_with_warmup step by step wherever warm-up and length meet."""
    from functools import partial

    import torch
    from transformers import get_linear_schedule_with_warmup

    from harness.engine import linear_schedule

    assert [linear_schedule(s, warmup=2, total=6) for s in range(8)] == [0, 0.5, 1, 0.75, 0.5, 0.25, 0, 0]

    def lrs(schedule, steps):
        seen = []
        for _ in range(steps):
            seen.append(schedule.get_last_lr()[0])
            schedule.optimizer.step()
            schedule.step()
        return seen

    def optimizer():
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)

    for warmup, total in [(0, 10), (1, 1), (3, 10), (10, 10), (0, 1)]:
        ours = torch.optim.lr_scheduler.LambdaLR(optimizer(), partial(linear_schedule, warmup=warmup, total=total))
        theirs = get_linear_schedule_with_warmup(optimizer(), warmup, total)
        assert lrs(ours, total + 2) == lrs(theirs, total + 2), (warmup, total)


@pytest.mark.slow  # a fresh interpreter that imports torch and DeepSpeed: about 10 s
def test_a_trial_process_opens_and_closes_its_process_group_without_loading_mlflow():
    """A 1-process group the harness opened is destroyed at exit, before interpreter shutdown could
    abort the process from one of its threads (seen once in CI: a benchmark's side exited 134).
    Opening it imports DeepSpeed without MLflow (1.1 s of every trial's start; the MLflow tracker
    is installed here), and MLflow stays importable afterwards."""
    import subprocess
    import sys

    code = (
        "import atexit, sys, torch.distributed as dist\n"
        "atexit.register(lambda: print('open at exit:', dist.is_initialized()))  # runs after the harness's\n"
        "from harness.engine import init_process_group\n"
        "init_process_group()\n"
        "print('open:', dist.is_initialized(), 'mlflow loaded:', 'mlflow' in sys.modules)\n"
        "import mlflow\n"
        "print('mlflow client:', hasattr(mlflow, 'MlflowClient'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "open: True mlflow loaded: False" in done.stdout and "open at exit: False" in done.stdout, done.stdout
    assert "mlflow client: True" in done.stdout


def test_a_finished_trial_leaves_no_engine_or_model_behind(loaded, tmp_path):
    """The engine and its model form a reference cycle; a process that runs trial after trial (a reused
    Ray actor, the local executor) grew by a model and its optimizer per trial until run_trial collected."""
    import gc

    import deepspeed
    import transformers

    from harness.planner import make_plan
    from harness.trial import run_trial
    from tests.helpers import SMALL_DATA

    plan = make_plan(loaded, "smoke", ["sentiment"], ["ce"], "tiny", [1, 2], check_model=False, epochs=1, **SMALL_DATA)
    gc.collect()
    for i, cfg in enumerate(plan.trials):
        assert run_trial(cfg, tmp_path / str(i), plugins=loaded).completed
        alive = [
            o for o in gc.get_objects() if isinstance(o, (deepspeed.DeepSpeedEngine, transformers.PreTrainedModel))
        ]
        assert alive == []


@pytest.mark.parametrize("accum", [1, 2])
def test_the_optimizer_steps_on_gradients_clipped_to_grad_clip_once_per_step(loaded, accum):
    """Without ZeRO the harness clips inside AdamW's fused kernel, DeepSpeed's rule: the gradient AdamW
    steps on is g min(1, c / (||g||_2 + 1e-6)), with g the whole accumulated gradient, once per step;
    with 0, g itself. After one step AdamW's first moment is (1 - beta1) times that gradient, so it
    shows what the kernel used."""
    import torch

    from harness import engine as ds_engine
    from harness.config import TrialConfig
    from harness.models import resolve
    from harness.trainer import train_step

    for clip in (1e-3, 0.0):
        cfg = TrialConfig(suite="smoke", task="sentiment", objective="ce", model="tiny", seed=1,
                          grad_clip=clip, grad_accum=accum, batch_size=8)  # fmt: skip
        torch.manual_seed(0)
        _, model = resolve("tiny", loaded.models).load(2)
        engine = ds_engine.build(model, cfg, 1e-3, total_steps=10)
        raw = {}

        def keep_gradients(optimizer, *_, raw=raw):
            raw.update({p: p.grad.clone() for g in optimizer.param_groups for p in g["params"] if p.grad is not None})

        engine.optimizer.register_step_pre_hook(keep_gradients)
        rows = torch.arange(8)
        batch = {"input_ids": (rows[:, None] + torch.arange(6)) % 20 + 4, "labels": rows % 2, "idx": rows}
        micro = [{k: v[i::accum] for k, v in batch.items()} for i in range(accum)]
        train_step(engine, loaded.objectives.get("ce")(2), micro, None, ds_engine.harness_clip(cfg))
        norm = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in raw.values()])))
        assert norm > 0.1  # far above 1e-3: clipping binds
        factor = min(1.0, clip / (norm + 1e-6)) if clip else 1.0
        beta1 = engine.optimizer.param_groups[0]["betas"][0]
        for p, g in raw.items():
            state = engine.optimizer.state[p]
            assert int(state["step"]) == 1  # one step for the accumulated micro-batches
            torch.testing.assert_close(state["exp_avg"] / (1 - beta1), g * factor, rtol=1e-5, atol=1e-12)
        # one worker: the norms were taken in the backward, by hooks the engine's end removes
        assert hasattr(engine, "harness_norms") == bool(clip)
        if clip:
            ds_engine.destroy(engine)
            model(input_ids=batch["input_ids"]).logits.sum().backward()
            assert engine.harness_norms.squares == {}
