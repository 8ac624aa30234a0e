"""`lab up` returns only once every machine's agent has joined: the wait, against real etcd."""
from __future__ import annotations

import asyncio

from stackfleet.lab.ops import wait_agents
from stackfleet.lab.state import LabInfo, MachineInfo
from stackfleet.registry.localetcd import LocalEtcd
from stackfleet.registry.records import MachineRecord
from stackfleet.registry.store import Registry


def lab_of(endpoint: str, *ids: str) -> LabInfo:
    machines = [MachineInfo(f"m{i}", "compute", mid, f"m{i}", {"mgmt": f"10.0.0.{i}"}, "/nonexistent")
                for i, mid in enumerate(ids)]
    return LabInfo("/nonexistent", "t", {"compute": len(ids)}, 5, ["etcd", "agent"], "", [endpoint], "", machines)


def test_wait_agents_names_the_machines_that_have_not_joined(etcd: LocalEtcd) -> None:
    async def register(machine_id: str) -> None:
        async with Registry.open([etcd.endpoint]) as r:
            lease = await r.lease_keeper(30).grant()
            await r.register_machine(MachineRecord(machine_id, machine_id, "10.0.0.9"), lease)

    lab = lab_of(etcd.endpoint, "a" * 32, "b" * 32)
    asyncio.run(register("a" * 32))
    assert wait_agents(lab, timeout=0.5) == ["m1"]
    asyncio.run(register("b" * 32))
    assert wait_agents(lab, timeout=5) == []


def test_wait_agents_rides_out_an_unreachable_cluster() -> None:
    lab = lab_of("http://127.0.0.1:9", "a" * 32)
    assert wait_agents(lab, timeout=0.3) == ["m0"]
