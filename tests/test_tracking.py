"""Experiment trackers, for real: TensorBoard event files and MLflow's local SQLite store, read back."""

import pytest

from harness.results import trial_records
from tests.helpers import SMALL_DATA_FLAGS, tensorboard_scalars


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    from harness.cli import main

    out = tmp_path_factory.mktemp("tracked")
    args = ["run", "--tasks", "sentiment", "--objectives", "ce,cmi_min", "--seeds", "1", "--epochs", "2"]
    assert main([*args, *SMALL_DATA_FLAGS, "--tracker", "tensorboard,mlflow", "--output-dir", str(out), "--quiet"]) == 0
    run_dir = next(p for p in out.iterdir() if p.is_dir())
    return out, run_dir, {r["config"]["objective"]: r for r in trial_records(run_dir)}


def test_tensorboard_holds_each_steps_loss_and_each_epochs_dev_metrics(tracked):
    _, run_dir, records = tracked
    for record in records.values():
        scalars = tensorboard_scalars(run_dir / "trials" / record["trial_id"] / "tensorboard")
        steps = [s for s, _ in scalars["train/loss"]]
        per_epoch = -(-record["data"]["train_examples"] // 32)  # batch 32
        assert steps == list(range(1, 2 * per_epoch + 1))  # every step of both epochs, once
        dev = dict(scalars["validation/accuracy"])
        assert dev == pytest.approx({e["epoch"]: e["validation"]["accuracy"] for e in record["epochs"]})
        assert dict(scalars["validation/ncmi"])[2] == pytest.approx(record["final"]["validation"]["ncmi"])


def test_mlflow_holds_a_run_per_trial_with_its_config_and_metrics(tracked):
    import mlflow

    out, _, records = tracked
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("cmi-harness")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {r["trial_id"] for r in records.values()}
    cmi = runs[records["cmi_min"]["trial_id"]]
    assert cmi.data.params["objective"] == "cmi_min" and cmi.data.params["hparams.lambda"] == "0.1"
    final = records["cmi_min"]["final"]["validation"]
    assert cmi.data.metrics["final.validation.cmi"] == pytest.approx(final["cmi"])
    history = client.get_metric_history(cmi.info.run_id, "validation.accuracy")
    assert [m.step for m in history] == [1, 2] and cmi.info.status == "FINISHED"


def test_trackers_do_not_change_trial_ids_or_numbers(tracked, tmp_path):
    from harness.cli import main

    _, _, records = tracked
    args = ["run", "--tasks", "sentiment", "--objectives", "ce", "--seeds", "1", "--epochs", "2", "--quiet"]
    assert main([*args, *SMALL_DATA_FLAGS, "--output-dir", str(tmp_path)]) == 0
    (plain,) = trial_records(next(tmp_path.iterdir()))
    assert plain["trial_id"] == records["ce"]["trial_id"] and plain["epochs"] == records["ce"]["epochs"]


def test_a_tracker_whose_package_is_missing_is_refused_in_one_line(cli, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    code, _, err = cli("run", "--tracker", "mlflow", "--output-dir", str(tmp_path))
    assert code == 2 and "--tracker mlflow needs the mlflow package: pip install 'cmi-harness[track]'" in err
    assert not any(tmp_path.iterdir())
