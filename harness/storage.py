"""A run's storage when its nodes share no filesystem: a URI (``s3://bucket/runs``, ``gs://...``,
``file:///...``) read and written through pyarrow's filesystems, so credentials and endpoints come
from the environment as for any pyarrow or Ray user (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``...).

Layout under the URI, the same as under ``--output-dir``: ``RUN/trials/ID/`` for a trial's files,
``RUN/ray/`` for Ray Tune's experiment state, ``teachers/ID/`` for the teacher store. A trial runs
in a directory on its node's local disk and mirrors it to storage after each epoch and at its end;
the driver fetches each finished trial's record, predictions and logs into its own run directory,
and a student fetches its teachers' files before it starts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pyarrow import fs as pafs

from harness.config import TrialConfig
from harness.results import PREDICTIONS, RECORD

CHUNK = 16 * 2**20
FETCHED = (RECORD, PREDICTIONS)  # what the driver needs of a trial (+ worker logs)


class Storage:
    """The storage at ``uri``: trees of files put and got by paths relative to it."""

    def __init__(self, uri: str):
        self.uri = uri.rstrip("/")
        self.fs, self.root = pafs.FileSystem.from_uri(self.uri)

    @staticmethod
    def trial(run_name: str, cfg: TrialConfig) -> str:
        """Where a trial's files live, relative to the storage root."""
        return f"teachers/{cfg.trial_id()}" if cfg.save_teacher else f"{run_name}/trials/{cfg.trial_id()}"

    def put(self, local: Path, rel: str) -> None:
        """``local`` (a directory or one file) to ``rel``, overwriting; files gone locally stay there."""
        if local.exists():
            self.fs.create_dir(f"{self.root}/{rel}".rpartition("/")[0], recursive=True)
            pafs.copy_files(str(local), f"{self.root}/{rel}", pafs.LocalFileSystem(), self.fs)

    def get(self, rel: str, local: Path, only=None) -> None:
        """Files under ``rel`` into ``local`` (those whose name ``only`` accepts), if any."""
        base = f"{self.root}/{rel}"
        found = self.fs.get_file_info(pafs.FileSelector(base, allow_not_found=True, recursive=True))
        for info in found:
            name = info.path[len(base) + 1 :]
            if info.type != pafs.FileType.File or (only and not only(name)):
                continue
            (local / name).parent.mkdir(parents=True, exist_ok=True)
            with self.fs.open_input_stream(info.path) as src, open(local / name, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)  # streamed: a kept multi-GB model never sits in memory


def fetched(name: str) -> bool:
    """What the driver copies of a trial: its record, predictions and worker logs, not its weights."""
    return name in FETCHED or (name.startswith("worker-") and name.endswith(".log"))
