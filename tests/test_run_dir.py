"""The run directory: every run gets a directory of its own, even runs started in the same second."""


def test_runs_started_at_the_same_instant_get_their_own_directories(tmp_path):
    """RunDir.create makes the name atomically: 30 threads in the same second, 30 directories."""
    from concurrent.futures import ThreadPoolExecutor

    from harness.rundir import RunDir

    with ThreadPoolExecutor(30) as pool:
        made = [run.path for run in pool.map(lambda _: RunDir.create(tmp_path, "smoke"), range(30))]
    assert len(set(made)) == 30 and all(p.is_dir() for p in made)


def test_storage_round_trips_a_trial_and_the_driver_fetches_no_weights(tmp_path):
    from harness.storage import Storage, fetched

    trial = tmp_path / "node" / "trial"
    for name, data in {"record.json": b"{}", "dev_predictions.safetensors": b"p", "worker-0.log": b"l"}.items():
        (trial / name).parent.mkdir(parents=True, exist_ok=True)
        (trial / name).write_bytes(data)
    (trial / "checkpoint").mkdir()
    (trial / "checkpoint" / "model.safetensors").write_bytes(b"w" * 100)
    store = Storage(str(tmp_path / "bucket"))
    store.put(trial, "run/trials/x")
    store.get("run/trials/x", tmp_path / "again")
    assert (tmp_path / "again" / "checkpoint" / "model.safetensors").read_bytes() == b"w" * 100
    store.get("run/trials/x", tmp_path / "driver", only=fetched)
    got = sorted(p.relative_to(tmp_path / "driver").as_posix() for p in (tmp_path / "driver").rglob("*"))
    assert got == ["dev_predictions.safetensors", "record.json", "worker-0.log"]
    store.get("run/trials/none", tmp_path / "nothing")  # nothing stored yet: nothing fetched, no error
    assert not (tmp_path / "nothing").exists()


def test_storage_streams_files_in_chunks(tmp_path, monkeypatch):
    """A kept model of several GB is copied a chunk at a time, never read whole into memory."""
    from harness import storage

    monkeypatch.setattr(storage, "CHUNK", 7)
    data = bytes(range(256)) * 40  # 10,240 bytes: many chunks, and a last one shorter
    (tmp_path / "t" / "model").mkdir(parents=True)
    (tmp_path / "t" / "model" / "model.safetensors").write_bytes(data)
    store = storage.Storage(str(tmp_path / "bucket"))
    store.put(tmp_path / "t", "run/trials/x")
    store.get("run/trials/x", tmp_path / "back")
    assert (tmp_path / "back" / "model" / "model.safetensors").read_bytes() == data


def test_the_driver_fetches_a_trial_until_its_record_is_complete(loaded, tmp_path, monkeypatch):
    from harness import ray_executor
    from harness.planner import make_plan
    from harness.record import Status, TrialRecord
    from harness.rundir import RunDir
    from harness.storage import Storage
    from tests.helpers import SMALL_DATA

    (cfg,) = make_plan(loaded, "smoke", ["nli"], ["ce"], "tiny", [1], check_model=False, **SMALL_DATA).trials
    run, opts = RunDir(tmp_path / "run"), ray_executor.RayOptions(storage=str(tmp_path / "bucket"))
    gets = []
    monkeypatch.setattr(Storage, "get", lambda self, rel, into, only=None: gets.append(rel))
    ray_executor._fetch(cfg, run, opts)  # nothing here yet
    run.write(TrialRecord.failed(cfg, "killed"))
    ray_executor._fetch(cfg, run, opts)  # a failed record may be followed by a retry's
    assert len(gets) == 2
    run.write(TrialRecord(cfg.trial_id(), Status.COMPLETED, cfg))
    ray_executor._fetch(cfg, run, opts)  # complete: final, not fetched again
    assert len(gets) == 2
