"""LoRA through PEFT: every objective and teacher stage trains adapters and the head; checkpoints hold
only what trains and resume to the uninterrupted numbers; teachers and kept models are saved merged."""

import pytest
from safetensors.torch import load_file

from harness.errors import HarnessError
from harness.lora import resolve
from harness.planner import make_plan
from harness.results import read_json
from harness.trial import run_trial
from tests.helpers import SMALL_DATA
from tests.test_resume import Interrupt

LORA = resolve("lora", {"r": "4", "alpha": "8"})


def test_a_lora_trial_checkpoints_only_what_trains_and_resumes_to_the_same_numbers(loaded, tmp_path):
    plan = make_plan(loaded, "smoke", ["nli"], ["cmi_min"], "tiny", [3], check_model=False, epochs=3,
                     peft=LORA, **SMALL_DATA)  # fmt: skip
    (config,) = plan.trials
    straight = run_trial(config, tmp_path / "straight", plugins=loaded)
    assert straight.completed and 0 < straight.trainable_parameters < straight.total_parameters / 4

    def stop_in_third_epoch(event):
        if event["event"] == "step" and event["epoch"] == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_trial(config, tmp_path / "resumed", stop_in_third_epoch, plugins=loaded)
    saved = load_file(str(tmp_path / "resumed" / "checkpoint" / "model.safetensors"))
    assert all("lora_" in k or "classifier" in k for k in saved)  # no frozen base weight
    assert sum(v.numel() for v in saved.values()) < 0.25 * straight.total_parameters
    resumed = run_trial(config, tmp_path / "resumed", plugins=loaded)
    assert resumed.epochs == straight.epochs


def test_lora_teachers_and_students_train_and_the_teacher_is_stored_merged(cli, tmp_path):
    args = ["--objectives", "kd,cmi_max_kd", "--model", "tiny:half", "--teacher-model", "tiny", "--peft", "lora"]
    args += ["--peft-args", "r=4,alpha=8,targets=query+value", "--tasks", "sentiment", "--seeds", "1"]
    code, _, err = cli(
        "run", *args, "--epochs", "1", "--max-train-samples", "128", "--quiet", "--output-dir", str(tmp_path)
    )
    assert code == 0, err
    records = [read_json(p) for p in tmp_path.glob("*/trials/*/record.json")]
    assert len(records) == 5 and {r["status"] for r in records} == {"completed"}
    assert all(r["trainable_parameters"] < r["total_parameters"] for r in records)
    (store,) = [p for p in (tmp_path / "teachers").glob("teacher-*-cmi_max-*")]
    weights = load_file(str(store / "model.safetensors"))
    assert not any("lora_" in k or k.startswith("base_model") for k in weights)  # a plain model a student loads


@pytest.mark.parametrize(
    "method,args,message",
    [
        ("lora", {"rank": "8"}, "--peft-args rank=8: unknown; known: r, alpha, dropout, targets"),
        ("lora", {"r": "eight"}, "--peft-args r=eight: not a int"),
        ("qlora", {}, "4-bit QLoRA needs CUDA and bitsandbytes"),
        (None, {"r": "8"}, "--peft-args needs --peft lora"),
    ],
)
def test_bad_peft_settings_are_one_line(method, args, message):
    with pytest.raises(HarnessError) as exc:
        resolve(method, args)
    assert message in str(exc.value)


def test_targets_that_match_no_module_are_refused_before_anything_trains(cli, tmp_path):
    args = ["--peft", "lora", "--peft-args", "targets=no_such_proj", "--objectives", "ce", "--seeds", "1"]
    code, _, err = cli("run", *args, "--output-dir", str(tmp_path))
    assert code == 2 and "targets=no_such_proj" in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_a_bf16_base_with_fp32_adapters_trains_and_fp16_is_refused_on_cpu(cli, loaded, tmp_path):
    """The usual LLM recipe: the frozen base in bf16, the LoRA adapters (PEFT's default) in fp32."""
    from harness.models import resolve

    args = ["--peft", "lora", "--objectives", "ce", "--seeds", "1", "--epochs", "1", "--max-train-samples", "64"]
    args += ["--tasks", "sentiment", "--quiet", "--output-dir", str(tmp_path)]
    code, _, err = cli("run", "--model-dtype", "bf16", *args)
    assert code == 0, err
    (record,) = [read_json(p) for p in tmp_path.glob("*/trials/*/record.json")]
    assert record["status"] == "completed" and record["config"]["model_dtype"] == "bf16"
    _, model = resolve("tiny", loaded.models).load(2)
    from harness import lora

    wrapped = lora.apply(model.to(__import__("torch").bfloat16), LORA)
    dtypes = {n.split(".")[-2]: p.dtype for n, p in wrapped.named_parameters() if "lora_A" in n}
    assert set(map(str, dtypes.values())) == {"torch.float32"}
    code, _, err = cli("run", "--model-dtype", "fp16", *args)
    assert code == 2 and "--model-dtype fp16 needs a GPU" in err
