"""A read-only picture of the cluster, loaded once per command."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..registry.records import JobRecord, MachineRecord, ScheduleEntry, UnitState, machine_label

if TYPE_CHECKING:
    from ..registry.gateway import GatewayReader
    from ..registry.store import Registry


@dataclass
class ClusterView:
    machines: dict[str, MachineRecord]
    jobs: dict[str, JobRecord]
    schedule: dict[str, dict[str, ScheduleEntry]]
    states: list[UnitState]
    reasons: dict[str, str]

    @classmethod
    async def load(cls, registry: Registry) -> ClusterView:
        """Over the registry (gRPC), for commands that go on to write or watch."""
        import asyncio

        machines, jobs, schedule, states, reasons = await asyncio.gather(
            registry.machines(), registry.jobs(), registry.schedule(), registry.states(), registry.reasons()
        )
        return cls(machines, jobs, schedule, states, reasons)

    @classmethod
    def read(cls, reader: GatewayReader) -> ClusterView:
        """Over etcd's JSON gateway, in one round trip, for the one-shot read-only commands."""
        return cls(*reader.cluster())

    def label(self, machine_id: str, full: bool = False) -> str:
        return machine_label(machine_id, self.machines.get(machine_id), full)

    def states_of(self, unit: str) -> list[UnitState]:
        return sorted((s for s in self.states if s.name == unit), key=lambda s: s.machine)

    def find_machine(self, ref: str) -> MachineRecord | None:
        """A machine by name, full id or unique id prefix."""
        for m in self.machines.values():
            if ref in (m.name, m.id):
                return m
        hits = [m for m in self.machines.values() if m.id.startswith(ref.rstrip("."))]
        return hits[0] if len(hits) == 1 else None

    def current_state(self, unit: str) -> str:
        """fleet's STATE column: launched if it runs somewhere, loaded if scheduled, else inactive."""
        states = self.states_of(unit)
        if any(s.active == "active" for s in states):
            return "launched"
        if self.schedule.get(unit) or states:
            return "loaded"
        return "inactive"
