"""The trial record: one constructor per outcome, each writing exactly the keys it has, and the JSON
of earlier harness versions read back unchanged."""

import json

import pytest

from harness.config import TrialConfig
from harness.record import SCHEMA, Status, TrialRecord

CFG = TrialConfig(suite="glue", task="mnli", objective="cmi_min", model="tiny", seed=2)

# As the harness wrote it before TrialRecord existed (schema 2, key order and all).
COMPLETED = {
    "schema": 2,
    "trial_id": CFG.trial_id(),
    "status": "completed",
    "config": CFG.to_dict(),
    "harness": {"version": "0.1.0", "git_commit": None},
    "versions": {"python": "3.11.9"},
    "role": "trial",
    "arm": "cmi_min",
    "label_names": ["entailment", "neutral", "contradiction"],
    "primary_metric": "accuracy",
    "lr": 5e-5,
    "notes": [],
    "data": {"fingerprint": "abc", "train_examples": 10},
    "student_layers": None,
    "hparams": {"lambda": 0.1},
    "compare_to": ["ce"],
    "epochs": [{"epoch": 1, "train_loss": 1.0, "validation_matched": {"accuracy": 0.4}, "validation_mismatched": {}}],
    "final": {
        "validation_matched": {"accuracy": 0.5, "ncmi": 0.02},
        "validation_mismatched": {"accuracy": 0.25, "ncmi": 0.03},
    },
    "train_time_s": 2.0,
    "train_samples_per_s": 5.0,
    "predictions": "dev_predictions.safetensors",
    "wall_time_s": 3.0,
    "peak_memory_mb": 100.0,
}
SKIPPED = {"schema": 2, "trial_id": CFG.trial_id(), "status": "skipped", "config": CFG.to_dict(), "error": "teacher x"}


@pytest.mark.parametrize("written", [COMPLETED, SKIPPED], ids=["completed", "skipped"])
def test_a_record_reads_back_key_for_key_in_order(written):
    record = TrialRecord.from_dict(json.loads(json.dumps(written)))
    assert list(record.to_dict().items()) == list(written.items())


def test_each_outcome_writes_only_its_keys(tmp_path):
    skipped = TrialRecord.skipped(CFG, "teacher t failed")
    assert skipped.to_dict() == {**SKIPPED, "error": "teacher t failed"}
    stopped = TrialRecord.stopped(CFG, "stopped early by the scheduler after epoch 1", COMPLETED["epochs"])
    assert set(stopped.to_dict()) == {"schema", "trial_id", "status", "config", "error", "epochs"}
    assert stopped.to_dict()["status"] == "stopped"
    stopped.save(tmp_path)
    assert TrialRecord.load(tmp_path) == stopped
    assert TrialRecord.load(tmp_path / "nothing") is None


def test_a_running_record_completes_or_fails():
    record = TrialRecord.running(CFG, versions={"python": "3"})
    record.complete(COMPLETED["epochs"], COMPLETED["final"], train_time_s=4.0, samples=10, predictions="p")
    assert record.status == Status.COMPLETED and record.completed
    assert record.train_samples_per_s == 2.5
    failed = TrialRecord.running(CFG)
    failed.fail("ValueError: x", "Traceback ...")
    assert (failed.status, failed.error, failed.completed) == ("failed", "ValueError: x", False)


def test_headline_figures_come_from_the_first_dev_split():
    record = TrialRecord.from_dict(COMPLETED)
    assert record.headline_split == "validation_matched"
    assert record.score() == 0.5 and record.score("ncmi") == 0.02
    assert TrialRecord.dev_of(COMPLETED["epochs"][0]) == ("validation_matched", {"accuracy": 0.4})


def test_older_and_unknown_records():
    old = {k: v for k, v in SKIPPED.items() if k != "schema"}
    assert TrialRecord.from_dict(old).schema == 1  # before the schema key existed
    with pytest.raises(KeyError, match="surprise"):
        TrialRecord.from_dict({**SKIPPED, "surprise": 1})
    assert SCHEMA == 2
