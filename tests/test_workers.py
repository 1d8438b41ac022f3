"""Two gloo workers with the same global batch follow the one-worker loss curve."""

import os
import socket

import pytest
import torch.multiprocessing as mp

from harness.planner import make_plan
from harness.results import RECORD, read_json
from harness.trial import run_trial


def _worker(rank: int, world: int, port: int, config: dict, trial_dir: str, cache: str) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        HARNESS_CACHE=cache,
    )
    record = run_trial(config, trial_dir)
    assert record["status"] == "completed", record.get("error")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NO_DROPOUT = """
from harness import hookimpl
from harness.models import ModelSpec
from harness_plugins.models import tiny_tokenizer


def load(num_labels):
    from transformers import BertConfig, BertForSequenceClassification

    tok = tiny_tokenizer()
    config = BertConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, num_labels=num_labels, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    return tok, BertForSequenceClassification(config)


@hookimpl
def harness_models():
    return [ModelSpec("tiny-nodrop", "tiny without dropout", load, {"lr": 2e-3})]
"""


@pytest.mark.parametrize("objective, args", [("ce", None), ("cmi_min", "cmi_min.lambda=1,cmi_min.beta=0.1")])
def test_two_workers_follow_the_one_worker_loss_curve(tmp_path, monkeypatch, objective, args):
    # Without dropout the only randomness is the batch order, which both runs share: the two
    # workers' half batches must give the one worker's whole-batch curve up to float rounding.
    from harness import plugins as plugin_loader

    (tmp_path / "nodrop_plugin.py").write_text(NO_DROPOUT)
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = plugin_loader.load(("nodrop_plugin",))
    plan = make_plan(
        loaded,
        "smoke",
        ["nli"],
        [objective],
        "tiny-nodrop",
        [1],
        args,  # cmi_min: the class centroids must cover the global batch, not each worker's half
        check_model=False,
        epochs=2,
        threads=1,
        plugins=("nodrop_plugin",),
    )
    config = plan.trials[0].to_dict()
    one = run_trial(config, tmp_path / "one", plugins=loaded)
    mp.spawn(_worker, args=(2, _free_port(), config, str(tmp_path / "two"), os.environ["HARNESS_CACHE"]), nprocs=2)
    two = read_json(tmp_path / "two" / RECORD)
    curve_one = [e["train_loss"] for e in one["epochs"]]
    curve_two = [e["train_loss"] for e in two["epochs"]]
    assert curve_two == pytest.approx(curve_one, rel=1e-3)
    parts = lambda record: [e["train_parts"] for e in record["epochs"]]  # noqa: E731
    assert parts(two) == [pytest.approx(p, rel=1e-3) for p in parts(one)]
    assert two["final"]["validation"]["accuracy"] == pytest.approx(one["final"]["validation"]["accuracy"], abs=0.01)
    assert two["data"]["train_examples"] == one["data"]["train_examples"]
