"""Two real agents with one machine id (a cloned /etc/machine-id) on real etcd: the second
refuses to run, saying why and what to do; the first keeps its unit and its lock."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from stackfleet.registry.localetcd import LocalEtcd
from stackfleet.registry.records import JobRecord, ScheduleEntry
from stackfleet.registry.store import Registry
from stackfleet.runtime import ProcessRuntime

MACHINE_ID = "c" * 32
UNIT = "probe.service"


def start_agent(etcd: LocalEtcd, state_dir: Path, name: str, ip: str, stderr: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # type: ignore[call-overload]
        [sys.executable, "-m", "stackfleet.cli.main", "agent", "--endpoint", etcd.endpoint,
         "--machine-id", MACHINE_ID, "--name", name, "--public-ip", ip, "--ttl", "3",
         "--state-dir", str(state_dir), "--shared-dir", str(state_dir.parent / "shared")],
        stdout=subprocess.DEVNULL, stderr=stderr,
    )


async def wait_for(check, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        assert time.monotonic() < deadline, f"not reached within {timeout} s"
        await asyncio.sleep(0.1)
    return result


def test_a_second_agent_with_the_same_machine_id_exits_and_the_first_keeps_its_unit(
        etcd: LocalEtcd, tmp_path: Path) -> None:
    first_dir, clone_dir = tmp_path / "first", tmp_path / "clone"
    first_dir.mkdir()
    first = start_agent(etcd, first_dir, "first-01", "127.0.0.1", open(first_dir / "agent.log", "wb"))
    clone: subprocess.Popen[bytes] | None = None
    try:
        async def lock_lease(r: Registry) -> int:
            got = await r.conn.call(lambda c: c.get(r.keys.lock(UNIT)))
            return 0 if got is None else int(got.lease)

        async def running(r: Registry) -> bool:
            return any(s.name == UNIT and s.active == "active" for s in await r.states())

        async def first_part() -> int:
            async with Registry.open([etcd.endpoint]) as r:
                await wait_for(r.machines)
                await r.submit(JobRecord(UNIT, "h1", "launched"), "[Service]\nExecStart=/bin/sleep infinity\n", True)
                await r.put_many([r.schedule_op(UNIT, MACHINE_ID, ScheduleEntry("launched", "h1", True))])
                await wait_for(lambda: running(r))
                return await lock_lease(r)

        held = asyncio.run(first_part())
        assert held == int((first_dir / "agent.lease").read_text())

        clone = start_agent(etcd, clone_dir, "clone-01", "127.0.0.2", subprocess.PIPE)
        _, err = clone.communicate(timeout=30)
        message = err.decode()
        assert clone.returncode != 0
        assert MACHINE_ID in message and "first-01 at 127.0.0.1" in message
        assert "systemd-machine-id-setup" in message and "Traceback" not in message

        async def after() -> None:
            async with Registry.open([etcd.endpoint]) as r:
                await asyncio.sleep(2)  # longer than a renewal interval and a reconcile follow-up
                assert await lock_lease(r) == held  # never rebound to the clone's lease
                assert await running(r)
                assert (await r.machines())[MACHINE_ID].name == "first-01"

        asyncio.run(after())
        assert first.poll() is None
        assert not (clone_dir / "runtime" / "units" / UNIT).exists()  # the clone started nothing
    finally:
        for agent in (first, clone):
            if agent is not None and agent.poll() is None:
                agent.terminate()
                agent.communicate(timeout=10)
        ProcessRuntime(first_dir / "runtime").kill(UNIT)
