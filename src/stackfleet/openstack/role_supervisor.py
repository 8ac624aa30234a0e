"""Runs a role's services as children of this process: start, restart with backoff, stop.

PID 1 here reaps orphans late, and some daemons (dnsmasq, keepalived, haproxy started by the
Neutron agents) detach from their parent. So the runner makes itself a child subreaper, and one loop
reaps every child with waitpid(-1): managed services, one-shot commands, and adopted orphans alike.
One-shot commands go through the same loop (`run_once`), because a second waiter would race it.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stackfleet.runtime.procfs import all_stats, exited_children, send

REAP_INTERVAL = 0.1
STABLE_AFTER = 60.0  # a service that ran this long has its failure count reset


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    argv: Sequence[str]
    log: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    stop_signal: int = signal.SIGTERM
    # Infrastructure (databases, brokers) stops last, one by one in reverse start order;
    # everything else stops first, all at once.
    stop_last: bool = False
    stop_timeout: float = 10.0  # then SIGKILL
    # Asks the service to stop instead of stop_signal (e.g. so it can clean up on the way out).
    stop_command: Sequence[str] | None = None


def backoff(failures: int, base: float = 1.0, cap: float = 30.0) -> float:
    """Seconds to wait before restarting a service that failed `failures` times in a row."""
    return min(cap, float(base * 2 ** max(0, failures - 1)))


def _children_of(pid: int) -> list[int]:
    """Direct children of `pid`, zombies included, from /proc (includes adopted orphans)."""
    return [stat.pid for stat in all_stats() if stat.ppid == pid]


def _killpg_quietly(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class _Running:
    spec: ServiceSpec
    proc: subprocess.Popen[bytes]
    started: float
    failures: int = 0
    stopping: bool = False


class Supervisor:
    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.running: dict[str, _Running] = {}
        self.order: list[str] = []          # start order; stopping goes backwards
        # Popen objects are kept until reaped: a dropped one would be polled (and reaped) by subprocess.
        self._waiters: dict[int, tuple[subprocess.Popen[bytes], asyncio.Future[int]]] = {}
        self._stopping = False
        self._reaper: asyncio.Task[None] | None = None
        self._restarts: set[asyncio.Task[None]] = set()

    def _spawn(self, spec: ServiceSpec) -> subprocess.Popen[bytes]:
        spec.log.parent.mkdir(parents=True, exist_ok=True)
        with open(spec.log, "ab") as log:
            return subprocess.Popen(
                list(spec.argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, **spec.env}, cwd=spec.cwd,
                # Its own process group: stopping a service stops its workers too.
                start_new_session=True)

    def ensure_reaper(self) -> None:
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())

    def start(self, spec: ServiceSpec, failures: int = 0) -> None:
        self.ensure_reaper()
        proc = self._spawn(spec)
        self.running[spec.name] = _Running(spec, proc, time.monotonic(), failures)
        if spec.name not in self.order:
            self.order.append(spec.name)
        self.say(f"started {spec.name} (pid {proc.pid}), log {spec.log}")

    async def run_once(self, name: str, argv: Sequence[str], log: Path,
                       env: Mapping[str, str] | None = None) -> int:
        """Runs a command to completion and returns its exit code; output goes to `log`."""
        self.ensure_reaper()
        proc = self._spawn(ServiceSpec(name, argv, log, env or {}))
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters[proc.pid] = (proc, future)
        return await future

    def pid(self, name: str) -> int | None:
        entry = self.running.get(name)
        return entry.proc.pid if entry else None

    def _exited(self, pid: int, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        waiter = self._waiters.pop(pid, None)
        if waiter is not None:
            waiter[0].returncode = code
            waiter[1].set_result(code)
            return
        for name, entry in self.running.items():
            if entry.proc.pid == pid:
                entry.proc.returncode = code
                if not (self._stopping or entry.stopping):
                    _killpg_quietly(pid)  # its workers would hold the ports the restart needs
                    self._schedule_restart(name, entry, code)
                return
        # An adopted orphan: nothing to do but reap it.

    def _schedule_restart(self, name: str, entry: _Running, code: int) -> None:
        ran = time.monotonic() - entry.started
        failures = 1 if ran >= STABLE_AFTER else entry.failures + 1
        delay = backoff(failures)
        self.say(f"{name} exited with {code} after {ran:.1f} s; restart #{failures} in {delay:.0f} s")

        async def restart() -> None:
            await asyncio.sleep(delay)
            if not self._stopping and self.running.get(name) is entry:
                self.start(entry.spec, failures)

        task = asyncio.get_running_loop().create_task(restart())
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    def _reap_all(self) -> None:
        for pid, status in exited_children():
            self._exited(pid, status)

    async def _reap_forever(self) -> None:
        while True:
            self._reap_all()
            await asyncio.sleep(REAP_INTERVAL)

    async def stop_service(self, name: str) -> None:
        """Stops one service (no restart), its process group first gently, then by force."""
        entry = self.running.get(name)
        if entry is None:
            return
        entry.stopping = True
        try:
            await self._stop(name, entry, entry.spec.stop_timeout)
        finally:
            if self.running.get(name) is entry:
                del self.running[name]

    async def _stop(self, name: str, entry: _Running, timeout: float) -> None:
        if entry.proc.returncode is not None:
            return
        pgid = entry.proc.pid
        if entry.spec.stop_command:
            stopper = self._spawn(ServiceSpec(f"{name}-stop", entry.spec.stop_command,
                                              entry.spec.log, entry.spec.env))
            self._waiters[stopper.pid] = (stopper, asyncio.get_running_loop().create_future())
        else:
            try:
                os.killpg(pgid, entry.spec.stop_signal)
            except ProcessLookupError:
                return
        deadline = time.monotonic() + timeout
        while entry.proc.returncode is None and time.monotonic() < deadline:
            self._reap_all()
            await asyncio.sleep(0.05)
        if entry.proc.returncode is None:
            self.say(f"{name} did not stop in {timeout:.0f} s; killing it")
            _killpg_quietly(pgid)
            while entry.proc.returncode is None:
                self._reap_all()
                await asyncio.sleep(0.05)
        else:
            _killpg_quietly(pgid)  # workers of the group that outlived their leader
        self.say(f"stopped {name}")

    async def _stop_quietly(self, name: str) -> None:
        try:
            await self.stop_service(name)
        except Exception as exc:  # keep stopping the others; the orphan sweep follows
            self.say(f"stopping {name} failed: {exc!r}")

    async def stop_all(self) -> None:
        """Stops the services (see ServiceSpec.stop_last), then any adopted orphan; reaps them."""
        self._stopping = True
        for task in list(self._restarts):
            task.cancel()
        last = [n for n in reversed(self.order)
                if n in self.running and self.running[n].spec.stop_last]
        await asyncio.gather(*(self._stop_quietly(n) for n in list(self.running) if n not in last))
        for name in last:
            await self._stop_quietly(name)
        # Adopted orphans (dnsmasq, keepalived, haproxy...), and theirs as they get orphaned too.
        deadline = time.monotonic() + 5
        while (left := _children_of(os.getpid())) and time.monotonic() < deadline:
            send(left, signal.SIGKILL)
            self._reap_all()
            await asyncio.sleep(0.05)
        if self._reaper is not None:
            self._reaper.cancel()
