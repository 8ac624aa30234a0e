"""The engine's view of the cluster and the actions that change it.

Pure data. The registry reads a Snapshot out of etcd, the planner turns it into actions, and
`apply` is what those actions mean, so the engine can keep an in-memory copy in step with what
the registry writes.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping

from stackfleet.registry.records import DesiredState
from stackfleet.unit.model import Constraints

__all__ = ["DesiredState"]  # re-exported: the planner's model speaks the registry's states


@dataclass(frozen=True)
class Machine:
    id: str
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class Job:
    name: str
    desired: DesiredState
    constraints: Constraints


@dataclass(frozen=True)
class Snapshot:
    """Only live machines (presence lease alive) are in `machines`.

    `schedule` maps a unit to {machine id: desired state of that schedule entry}; it may still
    name dead machines and removed jobs, which is what the planner cleans up.
    `reasons` holds the "why unscheduled" text currently recorded per unit.
    """

    machines: Mapping[str, Machine]
    jobs: Mapping[str, Job]
    schedule: Mapping[str, Mapping[str, DesiredState]] = field(default_factory=dict)
    reasons: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Schedule:
    """Create or update the schedule entry unit@machine with this desired state."""

    unit: str
    machine: str
    desired: DesiredState


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
    reasons = dict(snapshot.reasons)
    for action in actions:
        match action:
            case Schedule(unit, machine, desired):
                schedule.setdefault(unit, {})[machine] = desired
            case Unschedule(unit, machine, _):
                entries = schedule.get(unit, {})
                entries.pop(machine, None)
                if not entries:
                    schedule.pop(unit, None)
            case RecordReason(unit, reason):
                reasons[unit] = reason
            case ClearReason(unit):
                reasons.pop(unit, None)
    return replace(snapshot, schedule=schedule, reasons=reasons)
