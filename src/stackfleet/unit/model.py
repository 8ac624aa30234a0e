"""The scheduling constraints of a unit, as the engine consumes them.

Kept apart from parsing so that the planner depends on this small model only.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Constraints:
    """The [X-Fleet] section of one unit, validated.

    machine_metadata maps a key to the set of values it may take: different keys
    are ANDed, the values of one key are ORed (fleet's rule).
    """

    machine_id: str | None = None
    machine_of: tuple[str, ...] = ()
    machine_metadata: dict[str, frozenset[str]] = field(default_factory=dict)
    conflicts: tuple[str, ...] = ()
    replaces: tuple[str, ...] = ()
    global_: bool = False

    @property
    def exclusive(self) -> bool:
        """A non-global unit runs as one copy in the cluster and is fenced by a lock."""
        return not self.global_

    def to_json(self) -> dict[str, object]:
        return {
            "MachineID": self.machine_id,
            "MachineOf": list(self.machine_of),
            "MachineMetadata": {k: sorted(v) for k, v in sorted(self.machine_metadata.items())},
            "Conflicts": list(self.conflicts),
            "Replaces": list(self.replaces),
            "Global": self.global_,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Constraints:
        meta = data.get("MachineMetadata") or {}
        assert isinstance(meta, dict)
        return cls(
            machine_id=data.get("MachineID") or None,  # type: ignore[arg-type]
            machine_of=tuple(data.get("MachineOf") or ()),  # type: ignore[arg-type]
            machine_metadata={k: frozenset(v) for k, v in meta.items()},
            conflicts=tuple(data.get("Conflicts") or ()),  # type: ignore[arg-type]
            replaces=tuple(data.get("Replaces") or ()),  # type: ignore[arg-type]
            global_=bool(data.get("Global")),
        )
