"""The real Agent on the fake registry and the fake runtime: what it does with its schedule,
its locks, its lease and its fence, fast and without root or etcd."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from asyncwait import eventually
from stackfleet.agent.agent import Agent, AgentConfig
from stackfleet.registry.fake import FakeRegistry
from stackfleet.registry.records import DesiredState, JobRecord, MachineRecord, ScheduleEntry, UnitState
from stackfleet.runtime.base import UnitStatus
from stackfleet.runtime.fake import FakeRuntime

MACHINE = MachineRecord("m1", "compute-01", "10.0.0.1", {"role": "compute"})
DB, NOVA = "db.service", "nova.service"


def run(test: Callable[[FakeRegistry], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(FakeRegistry()), 20))


def config(tmp_path: Path) -> AgentConfig:
    return AgentConfig(MACHINE, tmp_path / "state", tmp_path / "shared", ["http://127.0.0.1:2379"], ttl=2)


@contextlib.asynccontextmanager
async def agent(registry: FakeRegistry, cfg: AgentConfig, runtime: FakeRuntime) -> AsyncIterator[Agent]:
    a = Agent(registry, cfg, runtime)
    task = asyncio.create_task(a.run())
    try:
        await eventually(registry.machines)
        yield a
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def schedule(registry: FakeRegistry, unit: str, body_hash: str, desired: DesiredState = "launched",
                   exclusive: bool = True, sections: str = "") -> None:
    body = f"[Service]\nExecStart=/bin/sleep {body_hash[1:]}\n{sections}"
    await registry.submit(JobRecord(unit, body_hash, desired), body, True)
    await registry.put_many([registry.schedule_op(unit, MACHINE.id, ScheduleEntry(desired, body_hash, exclusive))])


def active(runtime: FakeRuntime, unit: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return runtime.status(unit).active == "active"
    return check


def test_the_agent_runs_stops_and_forgets_what_its_schedule_says(tmp_path: Path) -> None:
    runtime = FakeRuntime(tmp_path)
    cfg = config(tmp_path)

    async def test(registry: FakeRegistry) -> None:
        async with agent(registry, cfg, runtime):
            await schedule(registry, DB, "h1")
            await schedule(registry, NOVA, "h1", exclusive=False)
            await eventually(active(runtime, DB))
            await eventually(active(runtime, NOVA))
            assert sorted(runtime.started) == [(DB, cfg.fence_file), (NOVA, None)]  # only exclusive units are fenced
            assert await registry.locks() == {DB: MACHINE.id}
            assert (cfg.hashes_dir / DB).read_text() == "h1 exclusive"

            async def reported() -> bool:
                found = {(s.name, s.hash, s.active) for s in await registry.states()}
                return found == {(DB, "h1", "active"), (NOVA, "h1", "active")}
            await eventually(reported)

            await schedule(registry, DB, "h2")  # a new body while running: stop, then start the new one
            await eventually(lambda: _true(runtime.started[-1] == (DB, cfg.fence_file) and len(runtime.started) == 3))
            assert ("stop", DB) in runtime.calls
            assert (cfg.hashes_dir / DB).read_text() == "h2 exclusive"

            await schedule(registry, DB, "h2", desired="loaded")  # stop, forget the launch, release the lock
            await eventually(lambda: _true(runtime.status(DB).active == "inactive"))
            await eventually(lambda: _true(not (cfg.hashes_dir / DB).exists()))
            await eventually(lambda: _equal(registry.locks(), {}))

            await registry.put_many([registry.unschedule_op(DB, MACHINE.id)])  # removed: forgotten everywhere
            await eventually(lambda: _true(DB not in runtime.units()))
            await eventually(lambda: _equal(_names(registry.states()), {NOVA}))

    run(test)


def test_an_exclusive_unit_waits_for_the_lock_another_machine_holds(tmp_path: Path) -> None:
    runtime = FakeRuntime(tmp_path)

    async def test(registry: FakeRegistry) -> None:
        other = registry.grant_lease(60)
        assert await registry.acquire_lock(DB, "m2", other)
        async with agent(registry, config(tmp_path), runtime):
            await schedule(registry, DB, "h1", desired="loaded")
            await asyncio.sleep(0.3)
            assert await registry.locks() == {DB: "m2"}  # not ours: left alone
            await schedule(registry, DB, "h1")
            await asyncio.sleep(0.3)
            assert runtime.started == []  # the previous holder's lease is alive
            registry.expire_lease(other)
            await eventually(active(runtime, DB))
            assert await registry.locks() == {DB: MACHINE.id}

    run(test)


def test_a_restarted_agent_adopts_the_running_unit_it_left(tmp_path: Path) -> None:
    runtime = FakeRuntime(tmp_path)
    runtime.statuses[DB] = UnitStatus(DB, "active", "running", main_pid=42)
    cfg = config(tmp_path)
    cfg.hashes_dir.mkdir(parents=True)
    (cfg.hashes_dir / DB).write_text("h1 exclusive")

    async def test(registry: FakeRegistry) -> None:
        await schedule(registry, DB, "h1")
        async with agent(registry, cfg, runtime):
            async def reported() -> bool:
                return [(s.name, s.main_pid) for s in await registry.states()] == [(DB, 42)]
            await eventually(reported)
            await asyncio.sleep(0.3)
            assert runtime.started == [] and runtime.calls == []  # kept running, not restarted

    run(test)


def test_a_restarted_agent_starts_again_a_run_its_machine_lost_but_not_one_that_failed(
        tmp_path: Path) -> None:
    runtime = FakeRuntime(tmp_path)
    # The machine was halted and is back within the TTL: the shim died with it.
    runtime.statuses[DB] = UnitStatus(DB, "failed", "dead", result="shim-died")
    # This one failed by itself (Restart=no): a new agent leaves it as it ended.
    runtime.statuses[NOVA] = UnitStatus(NOVA, "failed", "failed", result="exit-code")
    cfg = config(tmp_path)
    cfg.hashes_dir.mkdir(parents=True)
    (cfg.hashes_dir / DB).write_text("h1 exclusive")
    (cfg.hashes_dir / NOVA).write_text("h1 exclusive")

    async def test(registry: FakeRegistry) -> None:
        await schedule(registry, DB, "h1")
        await schedule(registry, NOVA, "h1")
        async with agent(registry, cfg, runtime):
            await eventually(active(runtime, DB))
            await asyncio.sleep(0.3)
            assert runtime.started == [(DB, cfg.fence_file)]
            assert await registry.locks() == {DB: MACHINE.id}  # started under its lock

    run(test)


def test_orphaned_processes_are_killed_before_a_start(tmp_path: Path) -> None:
    runtime = FakeRuntime(tmp_path)
    runtime.statuses[DB] = UnitStatus(DB, "inactive", "dead")
    runtime.orphan(DB)

    async def test(registry: FakeRegistry) -> None:
        await schedule(registry, DB, "h1")
        async with agent(registry, config(tmp_path), runtime):
            await eventually(active(runtime, DB))
            assert runtime.calls[0] == ("kill", DB)

    run(test)


def test_lost_renewals_fence_exclusive_units_and_a_renewal_in_time_lifts_the_fence(tmp_path: Path) -> None:
    runtime = FakeRuntime(tmp_path)

    async def test(registry: FakeRegistry) -> None:
        async with agent(registry, config(tmp_path), runtime) as a:
            await schedule(registry, DB, "h1")
            await schedule(registry, NOVA, "h1", exclusive=False)
            await eventually(active(runtime, DB))
            await eventually(active(runtime, NOVA))
            registry.partitioned = True  # renewals fail; etcd's lease still runs
            await eventually(lambda: _true(a.fenced), timeout=3)
            assert runtime.status(DB).active == "inactive"  # fenced
            assert runtime.status(NOVA).active == "active"  # a global unit is never fenced
            registry.partitioned = False
            await eventually(lambda: _true(not a.fenced), timeout=3)
            await eventually(active(runtime, DB))
            assert sorted(u for u, _ in runtime.started) == [DB, DB, NOVA]  # started again; the global one ran on

    run(test)


FENCED_GLOBAL = "[X-Fleet]\nGlobal=true\n[X-Stackfleet]\nFenceOnLeaseLoss=true\n"
COMPUTE = "compute.service"


def test_a_global_unit_with_fence_on_lease_loss_is_fenced_like_an_exclusive_one(tmp_path: Path) -> None:
    runtime = FakeRuntime(tmp_path)
    cfg = config(tmp_path)

    async def test(registry: FakeRegistry) -> None:
        async with agent(registry, cfg, runtime) as a:
            await schedule(registry, COMPUTE, "c1", exclusive=False, sections=FENCED_GLOBAL)
            await schedule(registry, NOVA, "h1", exclusive=False)
            await eventually(active(runtime, COMPUTE))
            await eventually(active(runtime, NOVA))
            assert sorted(runtime.started) == [(COMPUTE, cfg.fence_file), (NOVA, None)]  # its shim fences it too
            assert (cfg.hashes_dir / COMPUTE).read_text() == "c1 global fence"
            assert await registry.locks() == {}  # a global unit takes no lock
            registry.partitioned = True
            await eventually(lambda: _true(a.fenced), timeout=3)
            assert runtime.status(COMPUTE).active != "active"
            assert runtime.status(NOVA).active == "active"
            assert ("stop", COMPUTE) in runtime.calls and ("stop", NOVA) not in runtime.calls
            registry.partitioned = False  # renewed before the lease expired: still a member
            await eventually(active(runtime, COMPUTE))
            assert [u for u, _ in runtime.started] == [COMPUTE, NOVA, COMPUTE]

    run(test)


def test_a_unit_fenced_on_lease_loss_starts_again_only_once_the_machine_is_a_member(tmp_path: Path) -> None:
    runtime = FakeRuntime(tmp_path)
    cfg = config(tmp_path)

    async def test(registry: FakeRegistry) -> None:
        register = registry.register_machine
        seen: list[int] = []

        async def slow_register(machine: MachineRecord, lease: int) -> None:
            # Between the grant of the new lease and the machine's record: nothing may start.
            await asyncio.sleep(0.5)
            seen.append(len(runtime.started))
            await register(machine, lease)
        async with agent(registry, cfg, runtime) as a:
            await schedule(registry, COMPUTE, "c1", exclusive=False, sections=FENCED_GLOBAL)
            await eventually(active(runtime, COMPUTE))
            registry.partitioned = True
            await eventually(lambda: _true(a.fenced), timeout=3)
            await asyncio.sleep(cfg.ttl + 0.5)
            assert await registry.machines() == {}  # the lease expired at "etcd"
            assert runtime.status(COMPUTE).active != "active"
            registry.register_machine = slow_register  # type: ignore[method-assign]
            registry.partitioned = False
            await eventually(lambda: _true(bool(seen)), timeout=5)
            assert seen == [1], "started again before the machine's record was written"
            await eventually(active(runtime, COMPUTE))
            assert a.member and not a.fenced

    run(test)


async def _true(value: bool) -> bool:
    return value


async def _equal(got: Awaitable[object], expected: object) -> bool:
    return await got == expected


async def _names(states: Awaitable[list[UnitState]]) -> set[str]:
    return {s.name for s in await states}


def test_an_adopted_lease_fences_by_the_ttl_it_was_granted_with(tmp_path: Path) -> None:
    from stackfleet.agent.fence import FencePolicy
    from stackfleet.runtime.fence import read_fence

    cfg = config(tmp_path)  # --ttl 2 now; the earlier agent process was granted 7
    cfg.state_dir.mkdir(parents=True)

    async def test(registry: FakeRegistry) -> None:
        cfg.lease_file.write_text(str(registry.grant_lease(7)))
        async with agent(registry, cfg, FakeRuntime(tmp_path)) as a:
            assert a.keeper.ttl == 7
            fence = read_fence(cfg.fence_file)
            assert fence is not None
            assert fence == FencePolicy.for_ttl(7).fence(a.keeper.last_renewal_sent)

    run(test)


def test_an_idle_agent_makes_no_reconcile_passes_until_something_changes(tmp_path: Path) -> None:
    runtime = FakeRuntime(tmp_path)

    async def test(registry: FakeRegistry) -> None:
        async with agent(registry, config(tmp_path), runtime) as a:
            passes = 0
            reconcile = a.reconcile

            async def counted() -> bool:
                nonlocal passes
                passes += 1
                return await reconcile()
            a.reconcile = counted  # type: ignore[method-assign]
            await schedule(registry, DB, "h1")
            await eventually(active(runtime, DB))
            await asyncio.sleep(0.5)  # the follow-up passes after the launch are over
            settled = passes
            await asyncio.sleep(1.5)  # several lease renewals, no change
            assert passes == settled  # the old loop made a pass every 0.2 s
            await schedule(registry, DB, "h1", desired="loaded")  # a schedule event wakes it at once
            await eventually(lambda: _true(runtime.status(DB).active == "inactive"), timeout=1)

    run(test)


def test_a_second_agent_with_the_same_machine_id_refuses_to_run(tmp_path: Path) -> None:
    from stackfleet.registry.interface import MachineIdTaken

    runtime = FakeRuntime(tmp_path / "first")
    clone_runtime = FakeRuntime(tmp_path / "clone")
    clone_machine = MachineRecord(MACHINE.id, "clone-01", "10.0.0.2", MACHINE.metadata)
    clone_config = AgentConfig(clone_machine, tmp_path / "clone", tmp_path / "shared", ["http://127.0.0.1:2379"], ttl=2)

    async def test(registry: FakeRegistry) -> None:
        async with agent(registry, config(tmp_path), runtime) as first:
            await schedule(registry, DB, "h1")
            await eventually(active(runtime, DB))
            clone = Agent(registry, clone_config, clone_runtime)
            try:
                await asyncio.wait_for(clone.run(), 5)
            except MachineIdTaken as err:
                message = str(err)
            else:
                raise AssertionError("the clone ran")
            assert MACHINE.id in message and "compute-01 at 10.0.0.1" in message
            assert "systemd-machine-id-setup" in message
            assert clone.keeper.lease_id == 0  # its fresh lease was revoked
            assert clone_runtime.started == []
            await asyncio.sleep(0.5)
            assert runtime.status(DB).active == "active" and len(runtime.started) == 1
            assert await registry.locks() == {DB: MACHINE.id}
            assert registry._lease_of[("locks", DB)] == first.keeper.lease_id
            assert (await registry.machines())[MACHINE.id] == MACHINE

    run(test)


def test_a_restarted_agent_takes_over_the_record_of_its_own_expired_lease(tmp_path: Path) -> None:
    """etcd revokes expired leases in passes of its own: until then, the machine record of the
    previous process's lease is still there, and must not read as a second live agent."""
    cfg = config(tmp_path)
    cfg.state_dir.mkdir(parents=True)

    async def test(registry: FakeRegistry) -> None:
        old = registry.grant_lease(2)
        await registry.register_machine(MACHINE, old)
        cfg.lease_file.write_text(str(old))
        seen_by_etcd = registry.granted_ttl

        def expired_but_not_revoked(lease_id: int) -> int:
            return 0 if lease_id == old else seen_by_etcd(lease_id)
        registry.granted_ttl = expired_but_not_revoked  # type: ignore[method-assign]
        async with agent(registry, cfg, FakeRuntime(tmp_path)) as a:
            await eventually(lambda: _true(a.member))
            assert a.keeper.lease_id not in (0, old)
            assert registry._lease_of[("machines", MACHINE.id)] == a.keeper.lease_id

    run(test)
