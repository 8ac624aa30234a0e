"""The agent: one per machine. It keeps the machine's presence lease, watches the
machine's schedule, drives the runtime to the desired state and reports states.

Safety: an exclusive unit is started only while this machine holds the unit's
lease-bound lock, and it is stopped before that lease can expire (see fence.py).
The shims enforce the same deadline on their own, so a dead or hung agent cannot
leave an exclusive unit running past it. A global unit with [X-Stackfleet]
FenceOnLeaseLoss=true is fenced the same way, without a lock, and starts again only
once the machine is a member again.

Nothing polls on a fixed short period. The watchdog sleeps until the next fence deadline
(a renewal moves it, so a renewal wakes it). A reconcile pass runs when the schedule
changes, a renewal lifts the fence, a unit's status file changes (inotify, see
statuswatch.py) or its shim exits (pidfd, exitwatch.py). A pass that acted on the runtime
looks again shortly after, because some changes announce nothing (killed orphans, runtimes
without status files, a lock that another machine still holds). A slow safety pass covers
events that were missed.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..discovery import secrets_dir
from ..registry.connection import EtcdUnavailable
from ..registry.interface import MachineIdTaken, RegistryAPI
from ..registry.lease import LeaseExpired
from ..registry.records import MachineRecord, ScheduleEntry
from ..runtime.base import Runtime
from ..runtime.fence import write_fence
from ..runtime.process import SOURCE_ROOT, ProcessRuntime
from ..runtime.spec import ServiceSpec
from ..unit import UnitInvalid, parse_unit
from . import fence as fencing
from . import reconcile as r
from .exitwatch import ExitWatch
from .fence import FencePolicy
from .statuswatch import StatusWatch
from .unitaccess import UnitAccess, wants_etcd

log = logging.getLogger(__name__)

# After a pass that acted on the runtime or waits for a lock: the next look, as the 0.2 s
# passes did before; only while something is in motion.
FOLLOW_UP = 0.2
AFTER_ERROR = 0.5
# With nothing in motion, a pass this often in case an event was missed: an inotify queue
# overflow, a shim that died without writing its status, a status written before its watch.
SAFETY_PASS = 5.0


@dataclass(frozen=True)
class AgentConfig:
    machine: MachineRecord
    state_dir: Path
    shared_dir: Path
    endpoints: list[str]
    ttl: int
    # What units see of the credentials; by default only the sealing key's directory is hidden.
    unit_access: UnitAccess | None = None

    @property
    def access(self) -> UnitAccess:
        return self.unit_access or UnitAccess((), secrets_dir(self.shared_dir), None, confine=os.geteuid() == 0)

    @property
    def fence_file(self) -> Path:
        return self.state_dir / "fence.json"

    @property
    def lease_file(self) -> Path:
        return self.state_dir / "agent.lease"

    @property
    def hashes_dir(self) -> Path:
        return self.state_dir / "agent" / "launched"


class Agent:
    def __init__(self, registry: RegistryAPI, config: AgentConfig, runtime: Runtime) -> None:
        self.registry = registry
        self.config = config
        self.runtime = runtime
        self.machine_id = config.machine.id
        self.keeper = registry.lease_keeper(config.ttl, on_renewed=self._on_renewed, clock=fencing.fence_clock)
        self.schedule: dict[str, ScheduleEntry] = {}
        self.units: dict[str, r.UnitMemory] = {}
        self._specs: dict[str, _Body] = {}
        self._wake = asyncio.Event()  # a reconcile pass is due
        self._renewed = asyncio.Event()  # the fence deadline moved
        self._schedule_known = asyncio.Event()  # no reconcile before the first full listing
        self.fenced = False
        # Whether the machine's record is bound to the lease we keep: False from the moment the
        # lease is found expired until the record is written again under a new one.
        self.member = False
        self._status_watch: StatusWatch | None = None
        self._exit_watch: ExitWatch | None = None

    @property
    def policy(self) -> FencePolicy:
        """From the TTL etcd granted: an adopted lease keeps its own, whatever --ttl says now."""
        return FencePolicy.for_ttl(self.keeper.ttl)

    # -- lifecycle ----------------------------------------------------------
    async def run(self) -> None:
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        self.config.hashes_dir.mkdir(parents=True, exist_ok=True)
        # Before any unit starts: a directory made later would not be hidden from it.
        self.config.access.secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.config.access.confine:
            log.warning("WARNING: not root: units run unconfined, and can read this agent's certificates "
                        "and the settings' sealing key (%s)", self.config.access.secrets_dir)
        self._adopt_local_units()
        await self._rejoin()
        self._exit_watch = ExitWatch(self._units_changed)
        # Status files exist only in the process runtime; other runtimes rely on follow-ups.
        if isinstance(self.runtime, ProcessRuntime):
            runtime = self.runtime
            self._status_watch = StatusWatch(lambda name: runtime.journal_path(name).parent, self._units_changed)
            self._status_watch.start()
        tasks = [asyncio.create_task(loop) for loop in
                 (self._keep_lease(), self._watch_schedule(), self._reconcile_loop(), self._fence_watchdog())]
        try:
            await asyncio.gather(*tasks)
        finally:  # one failed (MachineIdTaken on a rejoin) or we were cancelled: end them all
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._exit_watch.close()
            if self._status_watch:
                self._status_watch.close()
                self._status_watch = None

    def _adopt_local_units(self) -> None:
        """Units a previous agent process left running are ours to keep or clean up."""
        for name in self.runtime.units():
            marker = self.config.hashes_dir / name
            unit = self.units.setdefault(name, r.UnitMemory())
            status = self.runtime.status(name)
            if marker.exists():
                launched, *flags = marker.read_text().split()
                unit.launched_hash = r.adopted_launch(launched, status)
                unit.exclusive = unit.holds_lock = "exclusive" in flags
                unit.fence_on_lease_loss = "fence" in flags
            log.info("adopting %s left by an earlier agent", name)
            if not status.shim_alive:
                # Its addresses would still answer on this machine, for a unit that another
                # machine may run by now.
                self.runtime.release_addresses(name)

    async def _join(self) -> None:
        previous = _read_int(self.config.lease_file)
        adopted = bool(previous) and await self.keeper.adopt(previous)
        if adopted:
            log.info("kept lease %x of the previous agent process", previous)
        else:
            if previous:
                # Ours, and expired, but etcd revokes expired leases in passes of its own: until
                # then the machine record it holds looks like a second live agent with our id.
                await self.keeper.discard(previous)
            await self.keeper.grant()
            self.config.lease_file.write_text(str(self.keeper.lease_id))
        try:
            await self.registry.register_machine(self.config.machine, self.keeper.lease_id)
        except MachineIdTaken as err:
            log.error("%s", err)
            if not adopted:
                await self.keeper.revoke()
            raise
        self.member = True
        if r.lifts_fence(self.fenced, fencing.fence_clock(), self.policy.stop_at(self.keeper.last_renewal_sent)):
            log.warning("a member again; lifting the fence")
            self.fenced = False
        for unit in self.units.values():
            unit.reported = None  # states died with the old lease, if it expired
        await self.registry.log_event("machine", "", self.machine_id, f"{self.config.machine.name} joined")

    def _on_renewed(self, sent: float) -> None:
        write_fence(self.config.fence_file, self.policy.fence(sent))
        self._renewed.set()
        if r.lifts_fence(self.fenced, fencing.fence_clock(), self.policy.stop_at(sent), self.member):
            log.warning("lease renewed again; lifting the fence")
            self.fenced = False
            self._wake.set()

    def _units_changed(self) -> None:
        self._wake.set()
        self._renewed.set()  # past kill_at, the watchdog kills again whatever of ours runs

    async def _keep_lease(self) -> None:
        while True:
            try:
                await self.keeper.run()
            except LeaseExpired as err:
                log.error("%s; fencing and joining again", err)
                self.member = False
                self._fence(kill=True)
                await self._rejoin()

    async def _rejoin(self) -> None:
        while True:
            try:
                await self._join()
                self._wake.set()
                return
            except EtcdUnavailable as err:
                log.warning("cannot join yet: %s", err)
                await asyncio.sleep(self.keeper.interval)

    # -- fencing -------------------------------------------------------------
    async def _fence_watchdog(self) -> None:
        while True:
            self._renewed.clear()
            now = fencing.fence_clock()
            sent = self.keeper.last_renewal_sent
            stop_at, kill_at = self.policy.stop_at(sent), self.policy.kill_at(sent)
            for step in r.fence_steps(now, stop_at, kill_at, self.fenced):
                if step == "stop":
                    log.error("no lease renewal for %.1f s: fencing units bound to the lease", now - sent)
                self._fence(kill=step == "kill")
            try:
                await asyncio.wait_for(self._renewed.wait(), r.next_fence_check(now, stop_at, kill_at))
            except TimeoutError:
                pass

    def _fence(self, kill: bool) -> None:
        self.fenced = True
        for name, unit in self.units.items():
            status = self.runtime.status(name)
            # A dead shim's leftovers still run the unit's work: the kill pass takes them too.
            running = kill and unit.fenced_by_lease and (status.active in r.RUNNING or status.orphaned)
            for task in r.fence_unit(unit, kill, running):
                match task:
                    case r.Kill():
                        self.runtime.kill(name)
                    case r.Stop():
                        self.runtime.stop(name)
                    case r.MarkFenced():
                        unit.fenced = True

    # -- schedule -------------------------------------------------------------
    async def _watch_schedule(self) -> None:
        async for changes in self.registry.watch_schedule_of(self.machine_id):
            changes.merge_into(self.schedule)
            self._schedule_known.set()
            self._wake.set()

    async def _reconcile_loop(self) -> None:
        await self._schedule_known.wait()
        while True:
            self._wake.clear()
            try:
                delay = FOLLOW_UP if await self.reconcile() else SAFETY_PASS
            except Exception:  # one bad pass must not kill the agent; the next pass retries
                log.exception("reconcile failed")
                delay = AFTER_ERROR
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass

    async def reconcile(self) -> bool:
        """One pass over every unit; True if it is not settled: look again soon."""
        self.runtime.reap()
        present = set(self.runtime.units())
        # A new watch may have missed a status written before it: read once more.
        unsettled = bool(self._status_watch and self._status_watch.follow(present))
        shims: dict[str, int] = {}
        for name in sorted(set(self.schedule) | set(self.units) | present):
            unit = self.units.setdefault(name, r.UnitMemory())
            status = self.runtime.status(name) if name in present else None
            if status is not None and status.shim_alive and status.shim_pid:
                shims[name] = status.shim_pid
            for task in r.reconcile_unit(self.schedule.get(name), status, unit, self.fenced):
                unsettled |= await self._run(name, unit, task)
        if self._exit_watch:
            self._exit_watch.follow(shims)
        return unsettled

    async def _run(self, name: str, unit: r.UnitMemory, task: r.Task) -> bool:
        """Carry out one task of the reconciler; True if it set something in motion that may
        not announce its end (a kill, a stop, a launch, a lock still held elsewhere, a shim
        still exiting)."""
        match task:
            case r.Kill():
                self.runtime.kill(name)
                return True
            case r.Stop():
                self.runtime.stop(name)
                return True
            case r.NoteExclusive(exclusive):
                unit.exclusive = exclusive
            case r.Unfence():
                unit.fenced = False
                unit.launched_hash = None
            case r.ForgetLaunch():
                self._forget_launch(name, unit)
            case r.ReleaseLock():
                await self.registry.release_lock(name, self.machine_id)
                unit.holds_lock = False
            case r.Remove():
                self.runtime.remove(name)
                return True
            case r.ClearState():
                await self.registry.clear_state(self.machine_id, name)
            case r.Forget():
                self.units.pop(name, None)
            case r.Launch(entry):
                return await self._launch(name, entry, unit)
            case r.Report(entry):
                await self._report(name, entry, unit)
            case r.MarkFenced():
                unit.fenced = True
            case r.AwaitSupervisor():
                return True  # its exit writes no status: only the follow-up sees it
        return False

    async def _launch(self, name: str, entry: ScheduleEntry, unit: r.UnitMemory) -> bool:
        """Start the unit if it may; True if started or to be tried again soon."""
        body = await self._spec(name, entry.hash)
        if body is None:
            return False  # logged; only the safety pass tries again
        if entry.exclusive:
            unit.holds_lock = await self.registry.acquire_lock(name, self.machine_id, self.keeper.lease_id)
        now, stop_at = fencing.fence_clock(), self.policy.stop_at(self.keeper.last_renewal_sent)
        if not r.may_start(entry, unit.holds_lock, now, stop_at, body.fence_on_lease_loss):
            return True  # retried on the follow-up pass, unless fenced by then
        # Known before the start: the watchdog must fence what runs from its first moment.
        unit.fence_on_lease_loss = body.fence_on_lease_loss
        self.runtime.start(body.spec, self.config.fence_file if unit.fenced_by_lease else None)
        unit.launched_hash = entry.hash
        flags = ("exclusive" if entry.exclusive else "global") + (" fence" if body.fence_on_lease_loss else "")
        (self.config.hashes_dir / name).write_text(f"{entry.hash} {flags}")
        await self.registry.log_event("started", name, self.machine_id, f"started on {self.config.machine.name}")
        return True

    def _forget_launch(self, name: str, unit: r.UnitMemory) -> None:
        unit.launched_hash = None
        (self.config.hashes_dir / name).unlink(missing_ok=True)

    async def _spec(self, name: str, unit_hash: str) -> _Body | None:
        key = f"{name}@{unit_hash}"
        if key not in self._specs:
            text = await self.registry.body(unit_hash)
            if text is None:
                log.error("%s: body %s is missing from the registry", name, unit_hash)
                return None
            try:
                unit_file = parse_unit(text, name)
                spec = ServiceSpec.from_unit(unit_file)
                confined = self.config.access.confinement(wants_etcd(unit_file))
            except (UnitInvalid, ValueError) as err:
                log.error("%s: cannot run it: %s", name, err)
                return None
            environment = {**self._unit_environment(name), **confined.environment, **spec.environment}
            confined_spec = dataclasses.replace(spec, environment=environment, hidden_dirs=confined.hidden_dirs,
                                                kept_files=confined.kept_files)
            self._specs[key] = _Body(confined_spec, unit_file.options.fence_on_lease_loss)
        return self._specs[key]

    def _unit_environment(self, name: str) -> dict[str, str]:
        """What every unit learns about where it runs (the role runner reads these)."""
        m = self.config.machine
        venv_bin = str(Path(sys.executable).parent)
        return {
            "PATH": f"{venv_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            # `stackfleet ...` in an ExecStart runs the agent's own source tree, not whatever
            # the venv's install points at (a worktree's agent runs its own roles).
            "PYTHONPATH": SOURCE_ROOT,
            "STACKFLEET_ENDPOINTS": ",".join(self.config.endpoints),
            "STACKFLEET_PREFIX": self.registry.prefix,
            "STACKFLEET_MACHINE_ID": m.id,
            "STACKFLEET_MACHINE_NAME": m.name,
            "STACKFLEET_PUBLIC_IP": m.public_ip,
            "STACKFLEET_STATE_DIR": str(self.config.state_dir),
            "STACKFLEET_SHARED_DIR": str(self.config.shared_dir),
            "STACKFLEET_UNIT": name,
        }

    async def _report(self, name: str, entry: ScheduleEntry | None, unit: r.UnitMemory) -> None:
        # Read again: the tasks before may have changed it. An unknown unit is inactive/dead.
        state = r.state_to_report(self.machine_id, name, entry, self.runtime.status(name))
        if state != unit.reported:
            await self.registry.report_state(state, self.keeper.lease_id)
            unit.reported = state


@dataclass(frozen=True)
class _Body:
    """What the agent runs of one unit body: the runtime's spec, and how the agent fences it."""

    spec: ServiceSpec
    fence_on_lease_loss: bool


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0
