"""An interrupted trial resumes from its epoch checkpoint and ends with the numbers of an uninterrupted run."""

import pytest

from harness.planner import make_plan
from harness.results import RECORD, read_json
from harness.trial import run_trial


class Interrupt(BaseException):
    """Stands for Ctrl-C or a killed process: not an Exception, so the trial does not catch it."""


@pytest.mark.parametrize("objective, args", [("ce", None), ("cmi_min", "cmi_min.lambda=1,cmi_min.centroids=epoch")])
def test_interrupted_trial_resumes_to_the_same_numbers(loaded, tmp_path, objective, args):
    plan = make_plan(loaded, "smoke", ["nli"], [objective], "tiny", [3], args, check_model=False, epochs=3)
    config = plan.trials[0].to_dict()
    straight = run_trial(config, tmp_path / "straight", plugins=loaded)

    def stop_in_third_epoch(event):
        if event["event"] == "step" and event["epoch"] == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_trial(config, tmp_path / "resumed", stop_in_third_epoch, plugins=loaded)
    assert (tmp_path / "resumed" / "checkpoint" / "state.json").exists()
    assert not (tmp_path / "resumed" / RECORD).exists()
    epochs_seen = []
    resumed = run_trial(config, tmp_path / "resumed", lambda e: epochs_seen.append(e.get("epoch")), plugins=loaded)
    assert set(epochs_seen) == {3}  # only the third epoch was trained again
    assert resumed["status"] == "completed"
    assert resumed["epochs"] == straight["epochs"]
    assert not (tmp_path / "resumed" / "checkpoint").exists()  # removed once the trial completed


def test_completed_trial_is_not_run_again(loaded, tmp_path):
    plan = make_plan(loaded, "smoke", ["sentiment"], ["ce"], "tiny", [1], check_model=False, epochs=1)
    config = plan.trials[0].to_dict()
    first = run_trial(config, tmp_path, plugins=loaded)
    calls = []
    again = run_trial(config, tmp_path, calls.append, plugins=loaded)
    assert again == first == read_json(tmp_path / RECORD) and calls == []


def test_cli_resume_finishes_only_what_is_missing(cli, tmp_path):
    code, out, _ = cli(
        "run", "--tasks", "sentiment", "--seeds", "1,2", "--epochs", "1", "--output-dir", str(tmp_path), "--quiet"
    )
    assert code == 0
    (run_dir,) = tmp_path.iterdir()
    records = sorted(run_dir.glob("trials/*/record.json"))
    kept, lost = records
    kept_bytes = kept.read_bytes()
    lost.unlink()  # as if the run had been killed before this trial finished
    code, out, err = cli("run", "--resume", str(run_dir), "--quiet")
    assert code == 0, err
    assert kept.read_bytes() == kept_bytes and lost.exists()
    assert read_json(lost)["status"] == "completed"


def test_resume_of_a_directory_without_a_run_is_refused(cli, tmp_path):
    code, _, err = cli("run", "--resume", str(tmp_path))
    assert code == 2 and "no run.json there" in err
