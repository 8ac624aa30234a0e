"""One compute machine's failover, measured as a user sees it: the machine dies (halted, or cut
off), the evacuator (instance-ha.service) moves its instances, and each answers ssh again at its
floating IP. Shared by the main job, the lab's end-to-end tests and bench/failover.py --compute.

QemuWatch follows QEMU processes on /proc (the lab is one PID namespace): when each guest's QEMU
started and ended, by the instance disk it runs on, and on which machine. It proves that a dead
machine's guests were dead before their instances started elsewhere, and that no disk ever had two
QEMU processes on it.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..failover import patiently
from ..registry.progress import ProgressRecords
from ..registry.store import Registry
from ..runtime.procfs import read_stat
from . import reach
from .admin import admin_environment, workflow
from .instance_ha import EVENT_KIND, host_path
from .link import ClusterLink

FAILOVER_TIMEOUT = 180.0
WATCH_INTERVAL = 0.1  # the margins it proves are seconds: the fence runs well before the lease ends
# libvirt names each disk in QEMU's arguments; Nova keeps an instance's at INSTANCES/UUID/disk.
INSTANCE_DISK = re.compile(rb"(/[^\0\"]*/instances/([0-9a-f-]{36})/disk)(?![\w.])")
TICKS = os.sysconf("SC_CLK_TCK")
NsId = tuple[int, int]


@dataclass
class QemuRun:
    """One QEMU process: its instance disk, the network namespace (machine) it ran in, and its
    start (from /proc, exact to a clock tick) and end (the first scan that missed it: no earlier
    than its real end), as time.time()."""

    pid: int
    disk: str
    instance: str
    netns: NsId
    started: float
    ended: float | None = None

    def alive_at(self, moment: float) -> bool:
        return self.started < moment and (self.ended is None or self.ended >= moment)


def _qemu_disk(pid: str) -> tuple[str, str] | None:
    try:
        with open(f"/proc/{pid}/comm", "rb") as handle:
            if not handle.read().startswith(b"qemu-system"):
                return None
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            found = INSTANCE_DISK.search(handle.read())
    except OSError:
        return None
    return (found.group(1).decode(), found.group(2).decode()) if found else None


class QemuWatch(threading.Thread):
    """Polls /proc for guests' QEMU processes until stopped; `runs` holds every one seen."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.runs: list[QemuRun] = []
        self.done = threading.Event()
        self._live: dict[tuple[int, int], QemuRun] = {}  # by (pid, start ticks): PIDs get reused
        self._lock = threading.Lock()

    def start(self) -> None:
        self.scan()  # what runs already is known before the caller goes on to a fault
        super().start()

    def run(self) -> None:
        while not self.done.is_set():
            self.scan()
            time.sleep(WATCH_INTERVAL)

    def scan(self) -> None:
        wall, boot = time.time(), time.clock_gettime(time.CLOCK_BOOTTIME)
        seen = set()
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            disk = _qemu_disk(pid)
            stat = read_stat(int(pid)) if disk else None
            if disk is None or stat is None or not stat.alive:
                continue
            key = (stat.pid, stat.start_time)
            seen.add(key)
            if key not in self._live:
                try:
                    ns = os.stat(f"/proc/{pid}/ns/net")
                except OSError:
                    continue
                run = QemuRun(stat.pid, disk[0], disk[1], (ns.st_dev, ns.st_ino),
                              wall - (boot - stat.start_time / TICKS))
                with self._lock:
                    self._live[key] = run
                    self.runs.append(run)
        # Missed by this scan: gone by its end (a process read late in the scan may have died
        # only just before).
        ended = time.time()
        with self._lock:
            for key in set(self._live) - seen:
                self._live.pop(key).ended = ended

    def snapshot(self) -> list[QemuRun]:
        with self._lock:
            return [QemuRun(r.pid, r.disk, r.instance, r.netns, r.started, r.ended) for r in self.runs]

    def stop(self) -> list[QemuRun]:
        self.done.set()
        self.join()
        return self.snapshot()


def overlapping(runs: list[QemuRun]) -> list[tuple[QemuRun, QemuRun]]:
    """Pairs of QEMU processes that may have run on the same disk at once (pure). An end is an
    upper bound and a start exact, so an empty answer proves that no two ever did."""
    pairs = []
    by_disk: dict[str, list[QemuRun]] = {}
    for run in runs:
        by_disk.setdefault(run.disk, []).append(run)
    for same in by_disk.values():
        ordered = sorted(same, key=lambda r: r.started)
        for i, earlier in enumerate(ordered):
            pairs += [(earlier, later) for later in ordered[i + 1:]
                      if earlier.ended is None or later.started <= earlier.ended]
    return pairs


@dataclass(frozen=True)
class ComputeFailover:
    victim: str  # the compute machine that was faulted
    fault_at: float  # time.time() of the fault
    detected: float  # seconds after the fault: the machine was no member (its lease expired)
    fenced: float  # ... the last QEMU process of its instances ended
    forced_down: float  # ... the evacuator marked its nova-compute forced_down
    evacuating: float  # ... Nova accepted the first evacuation
    active: dict[str, float]  # instance id -> seconds until ACTIVE on another machine
    hosts: dict[str, str]  # instance id -> where it runs now
    ssh: dict[str, float]  # floating IP -> seconds until ssh logged in

    def rows(self) -> list[tuple[str, float]]:
        return [("detected (lease expired)", self.detected), ("guests dead (fenced)", self.fenced),
                ("nova-compute forced_down", self.forced_down), ("evacuation accepted", self.evacuating),
                ("every instance ACTIVE", max(self.active.values())),
                ("ssh answers (every one)", max(self.ssh.values()))]


def instances_on(servers: list[dict[str, str]], host: str) -> list[str]:
    return sorted(s["id"] for s in servers if s["host"] == host)


def nova(command: str, record: Path, env: dict[str, str], *extra: str, timeout: float = 600) -> Any:
    """A workflow command that prints JSON (in the OpenStack venv), read."""
    done = workflow(command, record, env, *extra, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"workflow {command}: {done.stdout[-500:]}{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _first_event(events: list[tuple[float, str]], since: float, prefix: str) -> float:
    """When the first event since `since` that starts with prefix was logged; NaN if none was."""
    return min((at for at, text in events if at >= since and text.startswith(prefix)
                and "Nova refused" not in text), default=float("nan"))


async def _members(registry: Registry) -> set[str] | None:
    """The machine ids that are members, or None while etcd does not answer."""
    return set(await registry.machines())


def ssh_answers(key: Path, address: str, since: float, timeout: float) -> float:
    """Seconds from `since` (time.time()) until ssh logs in at address."""
    reach.wait_for_ssh(key, address, timeout)
    return time.time() - since


async def fail_over_compute(registry: Registry, link: ClusterLink, record: Path, victim: str, instances: list[str],
                            floating: dict[str, str], key: Path, fault: Callable[[str], object],
                            watch: QemuWatch, timeout: float = FAILOVER_TIMEOUT) -> ComputeFailover:
    """Apply fault(victim) to the compute machine that runs `instances`, and wait until each is
    ACTIVE elsewhere and those in `floating` (id -> floating IP) answer ssh. `watch` must run."""
    victim_id = next(i for i, m in (await registry.machines()).items() if m.name == victim)
    env = await admin_environment(link, str((await link.controller())["address"]))
    ids = sorted(instances)
    fault_at = time.time()
    fault(victim)
    # Nova is asked from the fault on: its answer says when each instance was first seen ACTIVE.
    moving = asyncio.create_task(asyncio.to_thread(nova, "wait-moved", record, env, victim, str(timeout), *ids))
    try:
        while (members := await patiently(lambda: _members(registry), None)) is None or victim_id in members:
            if time.time() - fault_at > timeout:
                raise TimeoutError(f"{victim} still a member {timeout:.0f} s after the fault")
            await asyncio.sleep(0.1)
        detected = time.time() - fault_at
        moved: dict[str, dict[str, Any]] = await moving
    finally:
        moving.cancel()
    ssh = dict(zip(floating.values(), await asyncio.gather(
        *(asyncio.to_thread(ssh_answers, key, address, fault_at, timeout) for address in floating.values())),
        strict=True))
    # The instances' QEMU processes at the fault ran on the victim: when the last one ended.
    ends = [r.ended for r in watch.snapshot() if r.instance in ids and r.alive_at(fault_at)]
    fenced = float("inf") if None in ends or not ends else max(e for e in ends if e is not None) - fault_at
    events = [(e.time, e.text) for e in await registry.events(limit=2000) if e.kind == EVENT_KIND]
    return ComputeFailover(
        victim, fault_at, detected,
        fenced=fenced,
        forced_down=_first_event(events, fault_at, f"marked nova-compute on {victim} forced_down") - fault_at,
        evacuating=_first_event(events, fault_at, "evacuating ") - fault_at,
        active={i: float(m["at"]) - fault_at for i, m in moved.items()},
        hosts={i: str(m["host"]) for i, m in moved.items()}, ssh=ssh)


async def back_in_service(registry: Registry, host: str, timeout: float = FAILOVER_TIMEOUT) -> float:
    """Seconds until the returned host is a member and the evacuator has closed its epoch: its
    nova-compute started, cleaned up, and is no longer forced down."""
    started = time.monotonic()
    records = ProgressRecords(registry)

    async def done() -> bool:
        members = {m.name for m in (await registry.machines()).values()}
        return host in members and host_path(host) not in await records.all()

    while not await patiently(done, False):
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{host} not back in service within {timeout:.0f} s")
        await asyncio.sleep(0.5)
    return time.monotonic() - started
