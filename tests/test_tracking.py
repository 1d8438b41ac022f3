"""Experiment trackers, for real: TensorBoard event files, MLflow's local SQLite store and W&B's
offline run files, read back."""

import importlib.util

import psutil
import pytest

from harness.results import trial_records
from tests.helpers import SMALL_DATA_FLAGS, tensorboard_scalars, wandb_runs

HAS_WANDB = importlib.util.find_spec("wandb") is not None


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One run of two trials logged to every tracker at once (W&B offline, if wandb is installed)."""
    from harness.cli import main

    out = tmp_path_factory.mktemp("tracked")
    args = ["run", "--tasks", "sentiment", "--objectives", "ce,cmi_min", "--seeds", "1", "--epochs", "2"]
    trackers = "tensorboard,mlflow" + (",wandb" if HAS_WANDB else "")
    with pytest.MonkeyPatch.context() as env:
        for name in ("WANDB_DIR", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_API_KEY", "WANDB_RUN_ID", "WANDB_NAME"):
            env.delenv(name, raising=False)
        env.setenv("WANDB_MODE", "offline")  # no account, no network: files only
        env.setenv("WANDB_SILENT", "true")
        for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):  # nothing into ~
            env.setenv(name, str(tmp_path_factory.mktemp(name.lower())))
        try:
            code = main([*args, *SMALL_DATA_FLAGS, "--tracker", trackers, "--output-dir", str(out), "--quiet"])
        finally:
            if HAS_WANDB:
                import wandb

                wandb.teardown()  # stops this process's wandb-core service (atexit would, at the session's end)
    assert code == 0
    run_dir = next(p for p in out.iterdir() if p.is_dir() and p.name != "wandb")
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


@pytest.mark.skipif(not HAS_WANDB, reason="wandb is not installed (pip install 'cmi-harness[track]')")
def test_wandb_holds_an_offline_run_per_trial_with_its_config_and_metrics(tracked):
    out, run_dir, records = tracked
    runs = wandb_runs(out / "wandb")  # the output directory's wandb/, as MLflow's store is there too
    assert set(runs) == {r["trial_id"] for r in records.values()}
    for record in records.values():
        run = runs[record["trial_id"]]
        assert run["project"] == "cmi-harness" and run["exit_code"] == 0 and run["dir"].name.startswith("offline-run-")
        assert run["config"]["objective"] == record["config"]["objective"]
        losses = [(row["train/step"], row["train/loss"]) for row in run["history"] if "train/loss" in row]
        per_epoch = -(-record["data"]["train_examples"] // 32)  # batch 32
        assert [s for s, _ in losses] == list(range(1, 2 * per_epoch + 1))  # every step of both epochs, once
        board = tensorboard_scalars(run_dir / "trials" / record["trial_id"] / "tensorboard")["train/loss"]
        assert [v for _, v in losses] == pytest.approx([v for _, v in board], rel=1e-6)  # TensorBoard keeps float32
        dev = {row["epoch"]: row["validation/accuracy"] for row in run["history"] if "validation/accuracy" in row}
        assert dev == pytest.approx({e["epoch"]: e["validation"]["accuracy"] for e in record["epochs"]})
        ncmi = [row["validation/ncmi"] for row in run["history"] if "validation/ncmi" in row]
        assert ncmi[-1] == pytest.approx(record["final"]["validation"]["ncmi"])
        (final,) = [row for row in run["history"] if "final/validation/cmi" in row]
        assert final["final/validation/cmi"] == pytest.approx(record["final"]["validation"]["cmi"])
        assert final["epoch"] == 2
    cmi = runs[records["cmi_min"]["trial_id"]]["config"]
    assert cmi["hparams.lambda"] == 0.1 and cmi["lr"] == records["cmi_min"]["lr"]
    left = [p.name() for p in psutil.Process().children(recursive=True) if "wandb" in p.name()]
    assert not left, f"wandb service processes still running after wandb.teardown(): {left}"


def test_trackers_do_not_change_trial_ids_or_numbers(tracked, tmp_path):
    from harness.cli import main

    _, _, records = tracked
    args = ["run", "--tasks", "sentiment", "--objectives", "ce", "--seeds", "1", "--epochs", "2", "--quiet"]
    assert main([*args, *SMALL_DATA_FLAGS, "--output-dir", str(tmp_path)]) == 0
    (plain,) = trial_records(next(tmp_path.iterdir()))
    assert plain["trial_id"] == records["ce"]["trial_id"] and plain["epochs"] == records["ce"]["epochs"]


@pytest.mark.parametrize("tracker", ["mlflow", "wandb"])  # each imports the module of its own name
def test_a_tracker_whose_package_is_missing_is_refused_in_one_line(cli, tmp_path, monkeypatch, tracker):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == tracker else real(name, *a))
    code, _, err = cli("run", "--tracker", tracker, "--output-dir", str(tmp_path))
    assert code == 2 and f"--tracker {tracker} needs the {tracker} package: pip install 'cmi-harness[track]'" in err
    assert not any(tmp_path.iterdir())
