"""[X-Stackfleet] FenceOnLeaseLoss=true on the lab: a partitioned machine kills every process of
such a global unit (a detached child too) before its lease can expire at etcd, and starts it again
only once healed and a member again; a global unit without the option runs on, as in fleet.

Timestamps, all on this host's clock (one kernel for the whole lab):
- a process's death: the first poll (every 5 ms) that no longer finds it alive, which is no
  earlier than the death itself;
- the lease's expiry: no earlier than `sent + TTL` of every LeaseTimeToLive answer, with `sent`
  the moment the question left and TTL the whole seconds etcd says remain (it truncates). The
  largest such bound is within a poll of the real expiry.
So `last death seen < expiry bound` proves that every process died before the lease expired.
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest

from stackfleet.lab import nsprocs, ops
from stackfleet.lab.state import LabInfo
from stackfleet.registry.store import Registry
from stackfleet.runtime import ProcessRuntime

from .conftest import poll
from .faults import cli, machine_processes, with_registry

pytestmark = pytest.mark.lab
START_TIMEOUT = 60.0
FENCED, PLAIN = "fenced-probe.service", "plain-probe.service"


def probe(tag: str, fenced: bool) -> str:
    """A global unit on compute machines whose shell forks a detached child (own session, not
    the shim's child), then becomes a long sleep."""
    own = "\n[X-Stackfleet]\nFenceOnLeaseLoss=true\n" if fenced else ""
    return ("[Service]\n"
            f"ExecStart=/bin/sh -c 'setsid sh -c \"sleep {tag}1 & exit\"; exec sleep {tag}2'\n"
            "[X-Fleet]\nGlobal=true\nMachineMetadata=role=compute\n" + own)


class DeathWatch(threading.Thread):
    """Polls the PIDs every 5 ms and notes when each is first seen dead (gone or a zombie)."""

    def __init__(self, pids: set[int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.dead_at: dict[int, float] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set() and len(self.dead_at) < len(self.pids):
            now = time.time()
            for pid in self.pids - set(self.dead_at):
                if not nsprocs.is_alive(pid):
                    self.dead_at[pid] = now
            time.sleep(0.005)

    def stop(self) -> None:
        self._halt.set()
        self.join()


async def lease_of(registry: Registry, machine_id: str) -> int:
    got = await registry.conn.call(lambda c: c.get(registry.keys.machine(machine_id)))
    assert got is not None, "the machine is not registered"
    return int(got.lease)


async def expiry_bound(registry: Registry, lease: int, timeout: float) -> tuple[float, float]:
    """Polls the lease until etcd says it is gone: (lower bound of its expiry, when seen gone)."""
    bound = 0.0
    deadline = time.time() + timeout
    while time.time() < deadline:
        sent = time.time()
        info = await registry.conn.call(lambda c: c.get_lease_info(lease, keys=False))
        if info is None or info.TTL < 0:
            return bound, time.time()
        bound = max(bound, sent + info.TTL)
        await asyncio.sleep(0.02)
    raise AssertionError(f"lease {lease:x} did not expire within {timeout} s")


def unit_pids(lab: LabInfo, machine: str, name: str, tag: str) -> set[int]:
    """Every process of the unit: its cgroup's members (when the runtime has cgroups), and the
    probe's processes by command line, which must be among them."""
    found = set(machine_processes(lab, machine, f"sleep {tag}"))
    runtime = ProcessRuntime(Path(lab.machine(machine).state_dir) / "runtime", hostname=machine)  # type: ignore[union-attr]
    group = runtime._recorded_group(name)
    if runtime.contained() and group is not None:
        members = set(group.pids())
        assert found <= members, (found, members)  # the detached child is still in the unit's cgroup
        found |= members
    return found


@contextmanager
def running(lab: LabInfo, tmp_path: Path, machine: str) -> Iterator[tuple[set[int], set[int]]]:
    paths = []
    for name, tag, fenced in ((FENCED, "4242431", True), (PLAIN, "4242441", False)):
        path = tmp_path / name
        path.write_text(probe(tag, fenced))
        paths.append(str(path))
    done = cli(lab, "start", "--block-attempts", "60", *paths)
    assert done.returncode == 0, done.stderr
    try:
        for tag in ("4242431", "4242441"):
            assert poll(lambda t=tag: len(machine_processes(lab, machine, f"sleep {t}")) == 2,  # type: ignore[misc]
                        START_TIMEOUT)
        yield unit_pids(lab, machine, FENCED, "4242431"), unit_pids(lab, machine, PLAIN, "4242441")
    finally:
        cli(lab, "destroy", FENCED, PLAIN)


def test_partition_kills_a_fenced_global_unit_before_the_lease_expires_and_spares_a_plain_one(
        lab: LabInfo, tmp_path: Path) -> None:
    if "agent" not in lab.processes:
        pytest.skip("this lab runs no agents")
    compute = next(m for m in lab.machines if m.role == "compute")
    root = Path(lab.root)
    with running(lab, tmp_path, compute.name) as (fenced, plain):
        lease = with_registry(lab, lambda r: lease_of(r, compute.machine_id))
        watch = DeathWatch(fenced | plain)
        watch.start()
        partitioned_at = time.time()
        ops.partition(root, compute.name)
        try:
            bound, gone_seen = with_registry(lab, lambda r: expiry_bound(r, lease, 4 * lab.ttl))
            time.sleep(1.0)  # well past the expiry: the plain unit still runs
            plain_alive = {p for p in plain if nsprocs.is_alive(p)}
        finally:
            healed_at = time.time()
            ops.heal(root, compute.name)
            watch.stop()
        deaths = {p: watch.dead_at.get(p) for p in fenced}
        assert None not in deaths.values(), f"alive after the lease expired: {deaths}"
        last_death = max(t for t in deaths.values() if t is not None)
        print(f"partitioned at 0; fenced unit's {len(fenced)} processes all dead by "
              f"{last_death - partitioned_at:.3f} s; lease expired no earlier than "
              f"{bound - partitioned_at:.3f} s (seen gone at {gone_seen - partitioned_at:.3f} s): "
              f"{bound - last_death:.3f} s to spare")
        assert last_death < bound, (deaths, bound)
        assert plain_alive == plain, "a global unit without FenceOnLeaseLoss must run on"

        # Healed: the machine joins again with a new lease, and only then starts the unit again.
        runtime = ProcessRuntime(Path(compute.state_dir) / "runtime", hostname=compute.name)
        assert poll(lambda: runtime.status(FENCED).active == "active", 30)
        since = datetime.fromisoformat(runtime.status(FENCED).since or "").timestamp()
        assert since > healed_at, "started again while the machine was cut off"
        machines = with_registry(lab, lambda r: r.machines())
        assert compute.machine_id in machines
        assert with_registry(lab, lambda r: lease_of(r, compute.machine_id)) != lease
