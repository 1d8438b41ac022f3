"""A typed name -> entry registry whose lookup errors list the known names and a close match."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from harness.errors import HarnessError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    description: str
    source: str  # distribution (and version) or module the entry comes from


class Registry(Generic[T]):
    def __init__(self, kind: str, hint: str = ""):
        self.kind = kind  # "objective", "model", "suite"
        self.hint = hint  # what else the user may try, appended to unknown-name errors
        self._entries: dict[str, Entry[T]] = {}

    def add(self, name: str, obj: T, description: str, source: str) -> None:
        if name in self._entries:
            raise HarnessError(
                f"{self.kind} {name!r} is registered twice, by {self._entries[name].source} and by {source}; "
                f"uninstall one of them or rename it"
            )
        self._entries[name] = Entry(name, obj, description, source)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise HarnessError(self.unknown(name)) from None

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def unknown(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=1)
        guess = f" Did you mean {close[0]!r}?" if close else ""
        known = ", ".join(self.names()) or "none"
        return f"unknown {self.kind} {name!r}.{guess} Known {self.kind}s: {known}.{self.hint}"
