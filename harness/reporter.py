"""The reporter plugin type: an output format of the comparison report (``harness_reporters`` hook).

Kept apart from harness.report so that listing plugins does not load pandas and the statistics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.report import Report


@dataclass(frozen=True)
class Reporter:
    name: str
    description: str
    write: Callable[[Report, Path], list[Path]]  # (report, output directory) -> files written
