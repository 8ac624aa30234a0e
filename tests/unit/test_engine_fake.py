"""The real Engine on the in-memory registry: election, placement, re-placement, replaced
bodies and leader-guarded writes, in well under a second each (no etcd, no root)."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from asyncwait import eventually
from stackfleet.engine.service import Engine
from stackfleet.registry.fake import FakeRegistry
from stackfleet.registry.records import JobRecord, MachineRecord, ScheduleEntry
from stackfleet.unit.model import Constraints

CONTROLLER = Constraints(machine_metadata={"role": frozenset({"controller"})})
COMPUTE = Constraints(global_=True, machine_metadata={"role": frozenset({"compute"})})


def run(test: Callable[[FakeRegistry], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(FakeRegistry()), 20))


@contextlib.asynccontextmanager
async def engines(registry: FakeRegistry, *names: str) -> AsyncIterator[list[Engine]]:
    started = [Engine(registry, name, ttl=2) for name in names]
    tasks = [asyncio.create_task(e.run()) for e in started]
    try:
        yield started
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def join(registry: FakeRegistry, machine_id: str, role: str) -> int:
    lease = registry.grant_lease(60)
    machine = MachineRecord(machine_id, machine_id, f"10.0.0.{len(machine_id)}", {"role": role})
    await registry.register_machine(machine, lease)
    return lease


async def submit(registry: FakeRegistry, name: str, body_hash: str, constraints: Constraints,
                 replace: bool = False) -> None:
    job = JobRecord(name, body_hash, "launched", constraints.to_json())
    await registry.submit(job, f"[Service]\n# {body_hash}\n", replace)


async def placed(registry: FakeRegistry, unit: str) -> dict[str, ScheduleEntry]:
    return (await registry.schedule()).get(unit, {})


def test_one_engine_leads_and_another_takes_over_when_its_lease_ends() -> None:
    async def test(registry: FakeRegistry) -> None:
        async with engines(registry, "e1", "e2") as (e1, e2):
            first = await eventually(registry.leader)
            leader, other = (e1, e2) if first == "e1" else (e2, e1)
            await asyncio.sleep(0.1)
            assert await registry.leader() == first  # the other one waits
            registry.expire_lease(leader.keeper.lease_id)
            assert await eventually(registry.leader) == other.name

    run(test)


def test_exclusive_and_global_units_are_placed_and_follow_machines() -> None:
    async def test(registry: FakeRegistry) -> None:
        leases = {m: await join(registry, m, role) for m, role in
                  [("c1", "controller"), ("c2", "controller"), ("n1", "compute"), ("n2", "compute")]}
        async with engines(registry, "e1"):
            await submit(registry, "db.service", "h1", CONTROLLER)
            await submit(registry, "nova.service", "h1", COMPUTE)

            async def db_on_one_controller() -> set[str]:
                where = set(await placed(registry, "db.service"))
                return where if len(where) == 1 and where <= {"c1", "c2"} else set()

            (host,) = await eventually(db_on_one_controller)
            assert await placed(registry, "db.service") == {host: ScheduleEntry("launched", "h1", True)}
            assert await eventually(lambda: _machines(registry, "nova.service", {"n1", "n2"}))
            assert (await placed(registry, "nova.service"))["n1"] == ScheduleEntry("launched", "h1", False)

            registry.expire_lease(leases[host])  # the machine left: its unit moves to the other controller
            survivor = ({"c1", "c2"} - {host}).pop()
            assert await eventually(lambda: _machines(registry, "db.service", {survivor}))
            texts = [e.text for e in await registry.events(limit=100)]
            assert any(t.startswith(f"unscheduled from {host}") and t.endswith("machine lost") for t in texts)

    run(test)


def test_a_replaced_body_reaches_the_machines_already_running_it() -> None:
    async def test(registry: FakeRegistry) -> None:
        for m, role in [("c1", "controller"), ("n1", "compute"), ("n2", "compute")]:
            await join(registry, m, role)
        async with engines(registry, "e1"):
            await submit(registry, "db.service", "h1", CONTROLLER)
            await submit(registry, "nova.service", "h1", COMPUTE)
            assert await eventually(lambda: _machines(registry, "nova.service", {"n1", "n2"}))
            assert await eventually(lambda: _machines(registry, "db.service", {"c1"}))
            await submit(registry, "db.service", "h2", CONTROLLER, replace=True)
            await submit(registry, "nova.service", "h2", COMPUTE, replace=True)

            async def all_new() -> bool:
                schedule = await registry.schedule()
                return {(u, m, e.hash) for u, entries in schedule.items() for m, e in entries.items()} == \
                    {("db.service", "c1", "h2"), ("nova.service", "n1", "h2"), ("nova.service", "n2", "h2")}

            assert await eventually(all_new)

    run(test)


def test_a_deposed_leader_cannot_write() -> None:
    async def test(registry: FakeRegistry) -> None:
        await join(registry, "c1", "controller")
        async with engines(registry, "e1") as (e1,):
            await eventually(registry.leader)
            plans = e1.plans
            # Deposed: its lease is gone and another engine holds the leader key before e1 notices.
            registry.expire_lease(e1.keeper.lease_id)
            assert await registry.campaign("usurper", registry.grant_lease(60)) is not None
            await submit(registry, "db.service", "h1", CONTROLLER)
            await eventually(lambda: _true(e1.plans > plans))  # it planned, and tried to write
            await asyncio.sleep(0.2)
            assert await registry.schedule() == {}
            assert await registry.leader() == "usurper"

    run(test)


async def _machines(registry: FakeRegistry, unit: str, expected: set[str]) -> bool:
    return set(await placed(registry, unit)) == expected


async def _true(value: bool) -> bool:
    return value
