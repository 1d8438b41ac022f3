"""Built-in experiment trackers: TensorBoard (event files in the trial's directory) and MLflow
(a local SQLite store in the output directory, or ``MLFLOW_TRACKING_URI``)."""

from __future__ import annotations

import os
from pathlib import Path

from harness import hookimpl
from harness.tracking import Tracker, flat

INSTALL = "pip install 'cmi-harness[track]'"


class TensorBoard:
    """Scalars under TRIAL_DIR/tensorboard; `tensorboard --logdir RUN_DIR/trials` shows every trial."""

    def __init__(self, trial_dir: Path, tracking_dir: Path, config: dict):
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(logdir=str(trial_dir / "tensorboard"))

    def params(self, values: dict) -> None:
        text = "\n".join(f"{k}: {v}" for k, v in flat(values).items())
        self.writer.add_text("config", text)

    def metrics(self, values: dict, step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


class MLflow:
    """One MLflow run per trial, named by its trial id, in the experiment ``cmi-harness``."""

    def __init__(self, trial_dir: Path, tracking_dir: Path, config: dict):
        import mlflow

        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(tracking_dir).resolve() / 'mlflow.db'}"
        self.client = mlflow.MlflowClient(tracking_uri=uri)
        eid = self._experiment("cmi-harness")
        self.run_id = self.client.create_run(eid, run_name=trial_dir.name).info.run_id

    def _experiment(self, name: str) -> str:
        """The experiment's id, made if need be (two trials starting together may both try: one wins)."""
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found:
            return found.experiment_id
        try:
            return self.client.create_experiment(name)
        except MlflowException:
            return self.client.get_experiment_by_name(name).experiment_id

    def params(self, values: dict) -> None:
        for key, value in flat(values).items():
            self.client.log_param(self.run_id, key, str(value)[:500])

    def metrics(self, values: dict, step: int) -> None:
        for key, value in values.items():
            self.client.log_metric(self.run_id, key.replace("/", "."), value, step=step)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


@hookimpl
def harness_trackers():
    return [
        Tracker(
            "tensorboard", "TensorBoard event files in each trial's directory", "tensorboardX", INSTALL, TensorBoard
        ),
        Tracker(
            "mlflow",
            "MLflow runs (local SQLite store in the output directory, or MLFLOW_TRACKING_URI)",
            "mlflow",
            INSTALL,
            MLflow,
        ),
    ]
