"""A run whose nodes share no filesystem: `--storage s3://...` against a real S3-compatible server
(moto's standalone server on 127.0.0.1, started and stopped here by process id), through the
harness's own code path: trials work in directories of their own, keep everything in the bucket,
students fetch their teachers from it, and the driver fetches records from it."""

import socket
import subprocess
import sys
import time

import pytest
from pyarrow import fs as pafs

from harness.results import read_json
from tests.helpers import SMALL_DATA_FLAGS

pytestmark = pytest.mark.ray

KEYS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def s3(monkeypatch):
    """A moto S3 server with a bucket ``runs``; the environment points pyarrow (and Ray's workers) at it."""
    pytest.importorskip("moto", reason="needs moto's server: pip install 'moto[server]'")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        endpoint = f"127.0.0.1:{port}"
        for key, value in {**KEYS, "AWS_ENDPOINT_URL": f"http://{endpoint}"}.items():
            monkeypatch.setenv(key, value)
        bucket = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", allow_bucket_creation=True)
        bucket.create_dir("runs")
        yield bucket
    finally:
        server.kill()
        server.wait(10)


def _files(bucket: pafs.S3FileSystem, prefix: str) -> list[str]:
    found = bucket.get_file_info(pafs.FileSelector(prefix, allow_not_found=True, recursive=True))
    return sorted(i.path[len(prefix) + 1 :] for i in found if i.type == pafs.FileType.File)


def test_a_run_on_s3_keeps_everything_there_and_fetches_what_the_driver_reads(s3, cli, tmp_path):
    args = ["--objectives", "kd", "--teacher-model", "tiny", "--seeds", "1", "--epochs", "1", "--threads", "1"]
    args += [*SMALL_DATA_FLAGS, "--quiet"]
    code, _, err = cli("run", *args, "--executor", "local", "--output-dir", str(tmp_path / "local"))
    assert code == 0, err
    out = tmp_path / "driver"
    code, _, err = cli("run", *args, "--executor", "ray", "--storage", "s3://runs/study", "--output-dir", str(out))
    assert code == 0, err
    (run_dir,) = [p for p in out.iterdir() if p.name != "teachers"]
    # in the bucket: each trial's files, the teacher's weights and train logits, Ray's experiment state
    trials = {p.split("/")[0] for p in _files(s3, f"runs/study/{run_dir.name}/trials")}
    students = {p.name for p in (run_dir / "trials").iterdir() if not p.name.startswith("teacher-")}
    assert trials == students and len(trials) >= 2  # (the run keeps copies of its teachers' records too)
    for trial in trials:
        assert {"record.json", "dev_predictions.safetensors", "worker-0.log"} <= set(
            _files(s3, f"runs/study/{run_dir.name}/trials/{trial}")
        )
    (student,) = [t for t in trials if t.startswith("sentiment-kd-")]
    teacher_files = _files(s3, "runs/study/teachers")
    assert any(p.endswith("record.json") for p in teacher_files) and any("logits" in p for p in teacher_files)
    assert any(p.startswith("stage") for p in _files(s3, f"runs/study/{run_dir.name}/ray"))
    # the driver fetched records, predictions and logs, never weights or checkpoints
    local = {p.name for p in out.rglob("*") if p.is_file() and ("trials" in p.parts or "teachers" in p.parts)}
    assert local and set(local) <= {"record.json", "dev_predictions.safetensors", "worker-0.log"}
    # the student read its teacher's logits from the bucket: the same numbers as the local executor's
    remote = read_json(run_dir / "trials" / student / "record.json")
    (same,) = [read_json(p) for p in (tmp_path / "local").glob(f"*/trials/{student}/record.json")]
    assert remote["status"] == "completed" and remote["epochs"] == same["epochs"]
    assert (run_dir / "report" / "report.md").exists()
