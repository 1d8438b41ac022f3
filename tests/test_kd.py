"""Distillation: the loss by hand, teacher planning, sharing, reuse, cache keys, layer dropping, guards."""

import json

import numpy as np
import pytest
import torch
from rich.console import Console

from harness.errors import TrialFailed
from harness.objective import Outputs
from harness.planner import make_plan
from harness.results import read_json, trial_records
from harness.rundir import RunDir
from harness.runner import run_local
from tests.helpers import SMALL_DATA, write_glue


def _dicts(records):
    return [r.to_dict() for r in records]


def test_kd_loss_by_hand(loaded):
    kd = loaded.objectives.get("kd")(2, alpha=0.5, temperature=2.0)
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[2.0 * np.log(3.0), 0.0]])  # softmax(z_t / 2) = (3/4, 1/4)
    out = kd.loss(Outputs(student, torch.tensor([0]), torch.arange(1), teacher_logits=teacher))
    # CE = ln 2 = .693147; KL((3/4, 1/4) || (1/2, 1/2)) = .75 ln 1.5 + .25 ln .5 = .130812; times T^2 = 4: .523248
    assert out.parts["ce"].item() == pytest.approx(0.693147, abs=1e-6)
    assert out.parts["kd"].item() == pytest.approx(0.523248, abs=1e-6)
    assert out.loss.item() == pytest.approx(0.5 * 0.693147 + 0.5 * 0.523248, abs=1e-6)


def test_alpha_zero_is_cross_entropy_exactly(loaded):
    kd = loaded.objectives.get("kd")(3, alpha=0.0)
    logits, labels = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    out = kd.loss(Outputs(logits, labels, torch.arange(4), teacher_logits=torch.randn(4, 3)))
    assert torch.equal(out.loss, torch.nn.functional.cross_entropy(logits, labels))


def _plan(loaded, store, objectives=("kd", "cmi_max_kd"), **settings):
    return make_plan(
        loaded,
        "smoke",
        ["nli"],
        list(objectives),
        "tiny:half",
        [1],
        check_model=False,
        teacher_model="tiny",
        teacher_store=str(store),
        **{"epochs": 1, **settings},
    )


def test_teachers_are_planned_first_once_and_shared(loaded, tmp_path):
    plan = _plan(loaded, tmp_path, objectives=("ce", "kd", "cmi_max_kd"))
    roles = [(c.objective, c.model, c.save_teacher) for c in plan.trials]
    assert roles == [
        ("ce", "tiny", True),
        ("ce", "tiny", True),
        ("cmi_max", "tiny", True),
        ("ce", "tiny:half", False),
        ("kd", "tiny:half", False),
        ("cmi_max_kd", "tiny:half", False),
    ]
    ce_teacher, control, cmi_teacher, _, kd, cmi_kd = plan.trials
    assert cmi_teacher.init_from == ce_teacher.trial_id()  # the max-CMI stage continues the ce teacher
    assert cmi_teacher.objective_args["centroids"] == "exact"  # Q from the fine-tuned teacher
    assert kd.teacher == control.trial_id() and cmi_kd.teacher == cmi_teacher.trial_id()
    # the matched control: the same continuation of the same teacher, the CMI term left out
    assert control.init_from == ce_teacher.trial_id() and control.epochs == cmi_teacher.epochs == 1
    differ = {k for k, v in control.to_dict().items() if cmi_teacher.to_dict()[k] != v}
    assert differ == {"objective", "objective_args"}


def test_teacher_ids_change_with_teacher_config_and_data(loaded, tmp_path):
    def teacher_id(**kw):
        return (
            make_plan(
                loaded,
                "glue",
                ["rte"],
                ["kd"],
                "tiny:half",
                [1],
                check_model=False,
                teacher_model="tiny",
                teacher_store=str(tmp_path),
                **{"epochs": 1, **kw},
            )
            .trials[0]
            .trial_id()
        )

    data = write_glue(tmp_path / "glue")
    first = teacher_id(data_dir=str(data))
    assert teacher_id(data_dir=str(data)) == first
    assert teacher_id(data_dir=str(data), lr=1e-3) != first
    (data / "RTE" / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n")
    assert teacher_id(data_dir=str(data)) != first


@pytest.mark.slow  # the max-CMI teacher must raise dev CMI over its control: 6 trials on 2,000 examples
def test_one_teacher_serves_two_students_and_a_second_run(loaded, tmp_path):
    store, console = tmp_path / "teachers", Console(quiet=True)
    plan = _plan(loaded, store)
    first_dir, second_dir = tmp_path / "run1", tmp_path / "run2"
    records = _dicts(run_local(plan, RunDir(first_dir), loaded, console, quiet=True))
    assert [r["status"] for r in records] == ["completed"] * 5
    teacher_files = {p: p.read_bytes() for p in store.rglob("record.json")}
    assert len(teacher_files) == 3  # the ce teacher and its two continuations (ce, cmi_max), nothing else
    again = _dicts(run_local(_plan(loaded, store, objectives=("kd",)), RunDir(second_dir), loaded, console, quiet=True))
    assert {p: p.read_bytes() for p in store.rglob("record.json")} == teacher_files  # reused, not retrained
    assert again[0]["trial_id"] == records[0]["trial_id"]
    published = {r["trial_id"] for r in trial_records(second_dir)}
    assert records[0]["trial_id"] in published  # the run's report sees its teacher
    cmi = {r["arm"]: r["final"]["validation"]["cmi"] for r in records[:3]}
    assert set(cmi) == {"ce", "ce→ce", "ce→cmi_max[centroids=exact]"}
    assert cmi["ce→cmi_max[centroids=exact]"] > cmi["ce→ce"]  # higher dev CMI than its matched control
    students = {r["arm"]: r for r in records[3:]}
    assert students["kd"]["config"]["teacher"] == records[1]["trial_id"]


def test_failed_teacher_skips_its_students_with_the_reason(loaded, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    plan = make_plan(
        loaded,
        "smoke",
        ["nli"],
        ["kd", "ce"],
        "tiny",
        [1],
        check_model=False,
        teacher_model=str(broken),
        teacher_store=str(tmp_path / "t"),
        epochs=1,
        **SMALL_DATA,
    )
    records = _dicts(run_local(plan, RunDir(tmp_path / "run"), loaded, Console(quiet=True), quiet=True))
    status = {r["config"]["objective"]: (r["status"], r.get("error", "")) for r in records}
    assert status["ce"][0] == "completed"
    assert status["kd"][0] == "skipped" and "teacher teacher-nli-ce-" in status["kd"][1] and "failed" in status["kd"][1]


def test_student_layers_are_spread_like_distilbert():
    from harness.models import student_layers

    assert student_layers(12) == [0, 2, 4, 7, 9, 11]  # DistilBERT's extraction from BERT-base
    assert student_layers(6) == [0, 2, 5]
    assert student_layers(2) == [0] and student_layers(4) == [0, 3]


def test_half_keeps_the_spread_layers_with_their_weights(loaded):
    from transformers import BertConfig, BertForSequenceClassification

    from harness.models import keep_half_of_layers

    torch.manual_seed(0)
    teacher = BertForSequenceClassification(
        BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=12, num_attention_heads=2, intermediate_size=32)
    )
    originals = [layer.state_dict() for layer in teacher.bert.encoder.layer]
    student = keep_half_of_layers(teacher)
    assert student.config.num_hidden_layers == 6 and len(student.bert.encoder.layer) == 6
    assert student.config.student_layers == [0, 2, 4, 7, 9, 11]
    for kept, source in zip(student.bert.encoder.layer, (0, 2, 4, 7, 9, 11), strict=True):
        assert all(torch.equal(v, originals[source][k]) for k, v in kept.state_dict().items())
    student(input_ids=torch.tensor([[1, 2, 3]]))  # still runs


def test_list_details_names_the_student_layers(cli):
    code, out, _ = cli("list", "--details", "minilm-l6:half")
    assert code == 0 and "layers 0, 2, 5 of 6" in out


def test_mismatched_label_space_is_refused(tmp_path):
    from harness_plugins.suite_smoke import TASKS
    from safetensors.torch import save_file

    from harness.batching import Columns
    from harness.config import TrialConfig
    from harness.record import Status, TrialRecord
    from harness.teachers import LOGITS, load_logits

    teacher = tmp_path / "t1"
    cfg = TrialConfig(suite="other", task="three", objective="ce", model="tiny", seed=1, save_teacher=True)
    TrialRecord("t1", Status.COMPLETED, cfg, label_names=["a", "b", "c"]).save(teacher)
    save_file({"logits": torch.zeros(4, 3), "idx": torch.arange(4)}, str(teacher / LOGITS))
    import datasets

    split = datasets.Dataset.from_dict(
        {"input_ids": [[1]] * 4, "label": [0, 1, 0, 1], "idx": [0, 1, 2, 3], "length": [1] * 4}
    )
    with pytest.raises(TrialFailed, match=r"teacher t1 predicts 3 classes.*task sentiment has 2.*same label space"):
        load_logits(tmp_path, "t1", TASKS[0], Columns(split, 0))


def test_kd_without_teacher_model_is_refused(cli, tmp_path):
    code, _, err = cli("run", "--objectives", "kd", "--output-dir", str(tmp_path))
    assert code == 2 and "give --teacher-model" in err


@pytest.mark.slow  # the student must learn (accuracy > 0.65): teachers and 3 students, 2 epochs of 2,000 examples
def test_smoke_end_to_end_for_all_three(cli, tmp_path):
    code, out, err = cli(
        "run",
        "--tasks",
        "sentiment",
        "--objectives",
        "ce,kd,cmi_max_kd",
        "--model",
        "tiny:half",
        "--teacher-model",
        "tiny",
        "--seeds",
        "1",
        "--epochs",
        "2",
        "--output-dir",
        str(tmp_path),
        "--quiet",
    )
    assert code == 0, err
    (run_dir,) = [d for d in tmp_path.iterdir() if d.name != "teachers"]
    records = {(r["config"]["objective"], r["config"]["model"]): r for r in trial_records(run_dir)}
    assert set(records) == {
        ("ce", "tiny"),
        ("cmi_max", "tiny"),
        ("ce", "tiny:half"),
        ("kd", "tiny:half"),
        ("cmi_max_kd", "tiny:half"),
    }
    assert all(r["status"] == "completed" for r in records.values())
    assert records[("kd", "tiny:half")]["epochs"][-1]["train_parts"]["kd"] > 0
    # chance 0.5; negations and "X but Y" contrasts keep a 1-layer student well under the 0.9 ceiling
    assert records[("kd", "tiny:half")]["final"]["validation"]["accuracy"] > 0.65
    assert "kd better than ce on" in out and "cmi_max_kd better than kd on" in out
    assert json.loads((run_dir / "report" / "report.json").read_text())["tables"]["wins"]
    assert read_json(run_dir / "run.json")["trials"][0]["config"]["save_teacher"] is True


def test_retrain_teachers_trains_a_stored_teacher_again(loaded, tmp_path):
    store, console = tmp_path / "teachers", Console(quiet=True)
    plan = _plan(loaded, store, objectives=("kd",), **SMALL_DATA)
    first = _dicts(run_local(plan, RunDir(tmp_path / "run1"), loaded, console, quiet=True))
    reused = _dicts(run_local(plan, RunDir(tmp_path / "run2"), loaded, console, quiet=True))
    again = _dicts(run_local(plan, RunDir(tmp_path / "run3"), loaded, console, quiet=True, retrain_teachers=True))
    assert reused[0]["wall_time_s"] == first[0]["wall_time_s"]  # the stored record, untouched
    assert again[0]["wall_time_s"] != first[0]["wall_time_s"]  # a new training run ...
    assert again[0]["epochs"] == first[0]["epochs"]  # ... with the same numbers (same seed)


def test_a_resumed_run_without_its_teacher_store_retrains_only_the_teachers_still_needed(loaded, tmp_path):
    """A run committed without its teacher store (weights stay behind): finished students keep their
    teachers' published records; a student still to run gets its teachers trained again."""
    import shutil

    console = Console(quiet=True)
    plan = _plan(loaded, tmp_path / "teachers", **SMALL_DATA)
    first = _dicts(run_local(plan, RunDir(tmp_path / "run"), loaded, console, quiet=True))
    before = {r["trial_id"]: r for r in first}
    shutil.rmtree(tmp_path / "teachers")  # a new checkout: the store is gone, the run's copies remain
    again = _dicts(run_local(plan, RunDir(tmp_path / "run"), loaded, console, quiet=True))
    assert {r["trial_id"]: r for r in again} == before and not (tmp_path / "teachers").exists()
    kd = next(r for r in first if r["config"]["objective"] == "kd")
    (tmp_path / "run" / "trials" / kd["trial_id"] / "record.json").unlink()  # kd must run again
    third = _dicts(run_local(plan, RunDir(tmp_path / "run"), loaded, console, quiet=True))
    retrained = {p.parent.name for p in (tmp_path / "teachers").glob("*/record.json")}
    assert retrained == {
        kd["config"]["teacher"],
        next(c.init_from for c in plan.trials if c.trial_id() == kd["config"]["teacher"]),
    }
    assert next(r for r in third if r["trial_id"] == kd["trial_id"])["final"] == kd["final"]  # same numbers
