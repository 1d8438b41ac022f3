"""``PROVENANCE.yaml``: where each file of a local data copy comes from, for reports to quote.

A data directory may carry one, beside its task folders. Per task folder, per file:

    QQP:
      train.tsv: {rows: 8999, official_rows: 363846, official: false, note: "a random sample of ..."}
      dev.tsv: {rows: 1000, official_rows: 40430, official: false, note: "NOT the official dev set: ..."}

``rows``: rows in this file; ``official_rows``: rows of the official split it stands for (null
when there is none); ``official``: whether it *is* that split; ``note`` (optional): one line a
report quotes. A suite that reads a copy passes each file's entry on in ``TaskData.sources``,
every record keeps it, and the report's data table quotes it in every format. A malformed file
is refused naming the file and the entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import HarnessError

FILE = "PROVENANCE.yaml"
KEYS = {"rows": int, "official_rows": (int, type(None)), "official": bool, "note": str}
REQUIRED = ("rows", "official_rows", "official")


def load(data_dir: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """{task folder: {file name: entry}} of ``data_dir/PROVENANCE.yaml``; {} when there is none."""
    import yaml

    path = Path(data_dir) / FILE
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise HarnessError(f"{path}: cannot read it: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise HarnessError(f"{path}: expected a mapping of task folders to files, got {type(data).__name__}")
    for folder, files in data.items():
        if not isinstance(files, dict):
            raise HarnessError(f"{path}: {folder}: expected a mapping of file names to entries")
        for name, entry in files.items():
            where = f"{path}: {folder}/{name}"
            if not isinstance(entry, dict):
                raise HarnessError(f"{where}: expected {{rows, official_rows, official, note}}, got {entry!r}")
            missing = [k for k in REQUIRED if k not in entry]
            unknown = sorted(set(entry) - set(KEYS))
            if missing or unknown:
                raise HarnessError(
                    f"{where}: {'missing ' + ', '.join(missing) if missing else 'unknown ' + ', '.join(unknown)}; "
                    f"an entry has rows, official_rows, official and optionally note"
                )
            for key, kind in KEYS.items():
                value = entry.get(key)
                if key in entry and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):  # type: ignore[arg-type]
                    raise HarnessError(
                        f"{where}: {key} {value!r} is not a {getattr(kind, '__name__', 'number or null')}"
                    )
    return {str(k): {str(n): dict(e) for n, e in v.items()} for k, v in data.items()}
