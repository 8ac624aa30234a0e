"""Decoded watch updates: what a typed watch of the registry yields."""
from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


@dataclass
class Changes(Generic[K, V]):
    """One batch of changes under a watched prefix.

    The first batch (and every batch after a resync) is a reset: `changes` then holds the
    complete content and the consumer drops whatever it had. A None value is a deletion.
    """

    reset: bool
    changes: list[tuple[K, V | None]] = field(default_factory=list)

    def merge_into(self, target: MutableMapping[K, V]) -> None:
        """The one way a watched mapping is kept in step with the registry."""
        if self.reset:
            target.clear()
        for key, value in self.changes:
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
