"""The Ray executor: each trial a Ray Tune trial running a Ray Train TorchTrainer of DeepSpeed workers."""

from rich.console import Console

from harness.planner import make_plan
from harness.runner import run_local


def test_ray_and_local_give_the_same_records(loaded, tmp_path):
    from harness.ray_executor import run_ray

    plan = make_plan(loaded, "smoke", ["sentiment"], ["ce"], "tiny", [1, 2], check_model=False, epochs=1, threads=1)
    local = run_local(plan, tmp_path / "local", loaded, Console(quiet=True), quiet=True)
    remote = run_ray(plan, tmp_path / "ray", Console(quiet=True))
    assert [r["status"] for r in remote] == ["completed", "completed"]
    for a, b in zip(local, remote, strict=True):
        assert a["trial_id"] == b["trial_id"]
        assert a["epochs"] == b["epochs"] and a["final"] == b["final"]  # the same numbers, bit for bit
    assert (tmp_path / "ray" / "trials" / local[0]["trial_id"] / "record.json").exists()


def test_unreachable_address_is_one_line_and_fast(cli, tmp_path):
    code, _, err = cli(
        "run",
        "--executor",
        "ray",
        "--address",
        "127.0.0.1:9",
        "--tasks",
        "sentiment",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--output-dir",
        str(tmp_path),
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--address 127.0.0.1:9: nothing answers there" in err
    assert not any(tmp_path.iterdir())  # refused before a run directory was made
