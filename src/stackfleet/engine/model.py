"""The engine's view of the cluster and the actions that change it.

Pure data. The registry reads a Snapshot out of etcd, the planner turns it into actions, and
`apply_in_place` is what those actions mean, the one definition of it: the engine keeps its
in-memory copy in step with what it writes (and with what its schedule watch reports) through it.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from stackfleet.registry.records import DesiredState
from stackfleet.unit.model import Constraints

__all__ = ["DesiredState"]  # re-exported: the planner's model speaks the registry's states
T = TypeVar("T")


@dataclass(frozen=True)
class Machine:
    id: str
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class Job:
    name: str
    desired: DesiredState
    constraints: Constraints
    hash: str = ""  # the unit body's content hash; every schedule entry of the job carries it


@dataclass(frozen=True)
class Snapshot:
    """Only live machines (presence lease alive) are in `machines`.

    `schedule` maps a unit to {machine id: desired state of that schedule entry}; it may still
    name dead machines and removed jobs, which is what the planner cleans up.
    `reasons` holds the "why unscheduled" text currently recorded per unit.
    `hashes` maps a unit to {machine: body hash that schedule entry carries}; a missing hash
    counts as "" (hand-made snapshots of jobs without hashes).
    """

    machines: Mapping[str, Machine]
    jobs: Mapping[str, Job]
    schedule: Mapping[str, Mapping[str, DesiredState]] = field(default_factory=dict)
    reasons: Mapping[str, str] = field(default_factory=dict)
    hashes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Schedule:
    """Create or update the schedule entry unit@machine with this desired state and body hash."""

    unit: str
    machine: str
    desired: DesiredState
    hash: str = ""


@dataclass(frozen=True)
class Unschedule:
    """Delete the schedule entry unit@machine."""

    unit: str
    machine: str
    why: str


@dataclass(frozen=True)
class RecordReason:
    """The unit cannot be placed now; `reason` tells the user why."""

    unit: str
    reason: str


@dataclass(frozen=True)
class ClearReason:
    unit: str


Action = Schedule | Unschedule | RecordReason | ClearReason


def apply(snapshot: Snapshot, actions: Iterable[Action]) -> Snapshot:
    """The snapshot after `actions`; the input is left untouched."""
    schedule = {unit: dict(entries) for unit, entries in snapshot.schedule.items()}
    hashes = {unit: dict(entries) for unit, entries in snapshot.hashes.items()}
    reasons = dict(snapshot.reasons)
    apply_in_place(schedule, hashes, reasons, actions)
    return replace(snapshot, schedule=schedule, hashes=hashes, reasons=reasons)


def apply_in_place(schedule: dict[str, dict[str, DesiredState]], hashes: dict[str, dict[str, str]],
                   reasons: dict[str, str], actions: Iterable[Action]) -> None:
    """Change a snapshot's schedule, hashes and reasons (held in these dicts) as `actions` say."""
    for action in actions:
        match action:
            case Schedule(unit, machine, desired, unit_hash):
                schedule.setdefault(unit, {})[machine] = desired
                hashes.setdefault(unit, {})[machine] = unit_hash
            case Unschedule(unit, machine, _):
                _drop(schedule, unit, machine)
                _drop(hashes, unit, machine)
            case RecordReason(unit, reason):
                reasons[unit] = reason
            case ClearReason(unit):
                reasons.pop(unit, None)


def _drop(table: dict[str, dict[str, T]], unit: str, machine: str) -> None:
    entries = table.get(unit, {})
    entries.pop(machine, None)
    if not entries:
        table.pop(unit, None)
