"""The run directory: every run gets a directory of its own, even runs started in the same second."""


def test_runs_started_at_the_same_instant_get_their_own_directories(tmp_path):
    """RunDir.create makes the name atomically: 30 threads in the same second, 30 directories."""
    from concurrent.futures import ThreadPoolExecutor

    from harness.rundir import RunDir

    with ThreadPoolExecutor(30) as pool:
        made = [run.path for run in pool.map(lambda _: RunDir.create(tmp_path, "smoke"), range(30))]
    assert len(set(made)) == 30 and all(p.is_dir() for p in made)
