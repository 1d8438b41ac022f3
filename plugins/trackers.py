"""Built-in experiment trackers: TensorBoard (event files in the trial's directory), MLflow
(a local SQLite store in the output directory, or ``MLFLOW_TRACKING_URI``) and Weights & Biases
(run directories under the output directory's ``wandb/``, or ``WANDB_DIR``)."""

from __future__ import annotations

import os
from pathlib import Path

from harness import PER_STEP, Tracker, flat, hookimpl

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
        except MlflowException:  # made by another process since the look-up
            return self.client.get_experiment_by_name(name).experiment_id

    def params(self, values: dict) -> None:
        for key, value in flat(values).items():
            self.client.log_param(self.run_id, key, str(value)[:500])

    def metrics(self, values: dict, step: int) -> None:
        for key, value in values.items():
            self.client.log_metric(self.run_id, key.replace("/", "."), value, step=step)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class Wandb:
    """One W&B run per trial, named by its trial id, in the project ``cmi-harness`` (or
    ``WANDB_PROJECT``), its files under TRACKING_DIR/wandb (or ``WANDB_DIR``). Online or offline as
    wandb itself decides (``WANDB_MODE``; ``wandb sync`` uploads an offline run later).

    A W&B run's own step must only grow, and the harness logs the training loss at the optimiser
    step but everything else at the epoch (``run.log(values, step=epoch)`` after step 40 would be
    dropped), so each metric is plotted against an axis of its own: ``train/step`` or ``epoch``."""

    def __init__(self, trial_dir: Path, tracking_dir: Path, config: dict):
        import wandb

        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or "cmi-harness",
            name=trial_dir.name,
            dir=os.environ.get("WANDB_DIR") or str(tracking_dir),
            config=flat(config),
            reinit="create_new",  # a run per trial, however many trials this process runs, and none global
        )
        self.defined: set[str] = set()

    def params(self, values: dict) -> None:
        self.run.config.update(flat(values), allow_val_change=True)

    def metrics(self, values: dict, step: int) -> None:
        axis = "train/step" if set(values) == {PER_STEP} else "epoch"
        for key in values.keys() - self.defined:
            self.run.define_metric(key, step_metric=axis)
            self.defined.add(key)
        self.run.log({**values, axis: step})

    def close(self) -> None:
        self.run.finish()


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
        Tracker(
            "wandb",
            "Weights & Biases runs (under the output directory's wandb/; offline with WANDB_MODE=offline)",
            "wandb",
            INSTALL,
            Wandb,
        ),
    ]
