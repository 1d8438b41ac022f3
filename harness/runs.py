"""The runs a report reads: every trial record of its run directories, checked (readable, of a schema
this harness reads, comparable across runs), optionally each task from the last run that holds it."""

from __future__ import annotations

from pathlib import Path

from harness.config import TRAINING
from harness.errors import HarnessError
from harness.grouping import completed, key_of
from harness.record import SCHEMA, TrialRecord
from harness.results import RECORD, read_json
from harness.rundir import RunDir


def load_records(run_dirs: list[Path], supersede: bool = False) -> tuple[list[TrialRecord], dict[str, Path], list[str]]:
    """Every trial record of the runs (a trial in two runs counts once), where each lives, and the
    runs' notes; a record that cannot be read, or is of a newer schema, is refused by path. With
    ``supersede``, a task's trials come from the last run that holds the task (a rerun of it at
    another budget), and a note says which runs' trials of it were left out."""
    records, where, origin, notes = [], {}, {}, []
    for index, run_dir in enumerate(run_dirs):
        notes += [n for n in RunDir(run_dir).notes() if n not in notes]
        for path in sorted((run_dir / "trials").glob(f"*/{RECORD}")):
            try:
                raw = read_json(path)
                newer = isinstance(raw, dict) and raw.get("schema", 1) > SCHEMA
                r, why = (None, "") if newer else (TrialRecord.from_dict(raw), "")
            except ValueError as exc:
                raw, r, why = None, None, f"not valid JSON: {exc}"
            except (KeyError, TypeError) as exc:
                r, why = None, f"it lacks or garbles {exc}"
            if why:
                raise HarnessError(
                    f"{path}: not a trial record ({why}); move it away, or rerun that trial with "
                    f"`harness run --resume {run_dir}`"
                )
            if r is None:
                raise HarnessError(
                    f"{path}: record schema {raw['schema']} is newer than this harness reads ({SCHEMA}); "
                    f"upgrade cmi-harness to report it"
                )
            if r.trial_id not in where:
                records.append(r)
                where[r.trial_id], origin[r.trial_id] = path.parent, index
    if supersede:
        records, superseded = _latest_per_task(records, origin, run_dirs)
        notes += superseded
    records.sort(key=lambda r: tuple(key_of(r).values()))
    return records, where, notes


def _latest_per_task(
    records: list[TrialRecord], origin: dict[str, int], run_dirs: list[Path]
) -> tuple[list[TrialRecord], list[str]]:
    """Each task's records from the last of ``run_dirs`` that holds it, and a note per task whose
    trials in earlier runs were left out."""
    runs_of: dict[tuple[str, str], set[int]] = {}
    for r in records:
        runs_of.setdefault((r.config.suite, r.config.task), set()).add(origin[r.trial_id])
    notes = [
        f"{task}: trials from {run_dirs[max(runs)]}, superseding those in "
        f"{', '.join(str(run_dirs[i]) for i in sorted(runs - {max(runs)}))} (--supersede)"
        for (_, task), runs in runs_of.items()
        if len(runs) > 1
    ]
    kept = [r for r in records if origin[r.trial_id] == max(runs_of[r.config.suite, r.config.task])]
    return kept, notes


def check_comparable(records: list[TrialRecord]) -> None:
    """The seeds of one arm must differ only in their seed: runs with other training settings or data
    (merged by ``harness report A B``) are refused, naming two trials and what differs."""
    keys = (*TRAINING, "data_fingerprint")
    first: dict[tuple, TrialRecord] = {}
    for r in completed(records):
        group = tuple(key_of(r).values())[:-1]
        seen = first.setdefault(group, r)
        differ = [k for k in keys if getattr(r.config, k) != getattr(seen.config, k)]
        if differ:
            raise HarnessError(
                f"trials {seen.trial_id} and {r.trial_id} ({' '.join(map(str, group))}) differ in "
                f"{', '.join(differ)}, not only in their seed: report those runs separately, or with "
                "--supersede take each task from the last run given that holds it"
            )
