import json
import textwrap


def test_config_file_sets_options_and_the_command_line_wins(cli, tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(
        textwrap.dedent("""
        tasks: [sentiment]
        objectives: [cmi_min]
        seeds: [1]
        epochs: 2
        objective_args:
          cmi_min: {lambda: 0.3, beta: 0.02}
    """)
    )
    code, _, err = cli("run", "--config", str(path), "--epochs", "1", "--output-dir", str(tmp_path / "o"), "--quiet")
    assert code == 0, err
    (record,) = (tmp_path / "o").glob("*/trials/*/record.json")
    r = json.loads(record.read_text())
    assert r["config"]["task"] == "sentiment" and r["config"]["epochs"] == 1  # the flag beat the file's 2
    assert r["hparams"]["lambda"] == 0.3 and r["hparams"]["beta"] == 0.02


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
