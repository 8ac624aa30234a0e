"""Values stored in etcd, as typed records with one JSON encoding."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

DesiredState = Literal["inactive", "loaded", "launched"]
DESIRED_STATES: tuple[DesiredState, ...] = ("inactive", "loaded", "launched")

R = TypeVar("R", bound="Record")


class Record:
    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()  # type: ignore[call-overload]

    @classmethod
    def decode(cls: type[R], raw: bytes) -> R:
        data: dict[str, Any] = json.loads(raw)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})  # type: ignore[attr-defined]


@dataclass(frozen=True)
class MachineRecord(Record):
    id: str
    name: str
    public_ip: str
    metadata: dict[str, str] = field(default_factory=dict)
    state_dir: str = ""
    netns: str = ""


def machine_label(machine_id: str, machine: MachineRecord | None, full: bool = False) -> str:
    """fleetctl's MACHINE column: a short id and, for a known machine, its address."""
    ident = machine_id if full else f"{machine_id[:8]}..."
    return f"{ident}/{machine.public_ip}" if machine else ident


@dataclass(frozen=True)
class JobRecord(Record):
    name: str
    hash: str
    desired: DesiredState
    constraints: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScheduleEntry(Record):
    desired: DesiredState
    hash: str
    exclusive: bool


@dataclass(frozen=True)
class UnitState(Record):
    """What an agent reports about one unit on its machine (systemd's three states)."""

    name: str
    machine: str
    hash: str
    load: str  # loaded / not-found
    active: str  # active / activating / deactivating / inactive / failed
    sub: str  # running / dead / failed / auto-restart / ...
    since: str = ""  # ISO time of the last state change
    main_pid: int = 0


@dataclass(frozen=True)
class EventRecord(Record):
    time: float
    kind: str
    unit: str
    machine: str
    text: str
