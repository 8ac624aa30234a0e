"""The agent's decisions, as pure functions: no I/O, no asyncio, no clock of their own.

From what the schedule says, what the runtime reports, what the agent remembers, the fence
state and the time, they return the tasks the agent then carries out in order (agent.py). Each
task is a small record; the agent's executor is the only code that touches the runtime, the
registry or files.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..registry.records import ScheduleEntry, UnitState
from ..runtime.base import UnitStatus

RUNNING = ("active", "activating", "deactivating", "reloading")


@dataclass
class UnitMemory:
    """What the agent remembers about one unit between reconcile passes."""

    launched_hash: str | None = None  # the body we started and have not been told to stop
    reported: UnitState | None = None
    exclusive: bool = False
    fence_on_lease_loss: bool = False  # [X-Stackfleet] FenceOnLeaseLoss= of the launched body
    holds_lock: bool = False  # we took its fencing lock and have not released it
    fenced: bool = False

    @property
    def fenced_by_lease(self) -> bool:
        """Whether the unit must be dead before the machine's lease can expire at etcd."""
        return self.exclusive or self.fence_on_lease_loss


# -- tasks ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Kill:
    """SIGKILL every process of the unit, its shim included."""


@dataclass(frozen=True)
class Stop:
    """Begin a graceful stop."""


@dataclass(frozen=True)
class NoteExclusive:
    exclusive: bool


@dataclass(frozen=True)
class Unfence:
    """The unit was fenced, not stopped on purpose: forget its launch so that it starts again."""


@dataclass(frozen=True)
class ForgetLaunch:
    """Forget the launched body, its marker file too."""


@dataclass(frozen=True)
class ReleaseLock:
    pass


@dataclass(frozen=True)
class Remove:
    """Make the runtime forget the unit."""


@dataclass(frozen=True)
class ClearState:
    """Delete the state we reported."""


@dataclass(frozen=True)
class Forget:
    """Drop the agent's memory of the unit."""


@dataclass(frozen=True)
class Launch:
    """Start the entry's body: fetch it, take the lock if exclusive, then ask may_start."""

    entry: ScheduleEntry


@dataclass(frozen=True)
class Report:
    entry: ScheduleEntry | None


@dataclass(frozen=True)
class MarkFenced:
    pass


@dataclass(frozen=True)
class AwaitSupervisor:
    """The unit has ended but its supervisor (shim) has not exited yet: look again shortly."""


Task = (Kill | Stop | NoteExclusive | Unfence | ForgetLaunch | ReleaseLock | Remove | ClearState
        | Forget | Launch | Report | MarkFenced | AwaitSupervisor)


# -- decisions ------------------------------------------------------------------------------
def reconcile_unit(entry: ScheduleEntry | None, status: UnitStatus | None, memory: UnitMemory,
                   fenced: bool) -> list[Task]:
    """One unit's tasks for this pass.

    `entry` is its schedule entry on this machine (None: not scheduled here), `status` what
    the runtime reports (None: the runtime holds no state for it), `fenced` whether the agent
    is fenced right now.
    """
    if status is not None and status.orphaned:
        return [Kill()]  # processes outlived their shim: nothing may start beside them
    running = status is not None and status.active in RUNNING
    if status is not None and status.shim_alive and not running:
        # Its final status is written, its exit is a moment away. Until then the runtime counts
        # it as running: a start would do nothing and a removal would fail.
        return [AwaitSupervisor()]
    stopping = status is not None and status.active == "deactivating"
    tasks: list[Task] = []
    if entry is not None and entry.exclusive != memory.exclusive:
        tasks.append(NoteExclusive(entry.exclusive))
    launched = memory.launched_hash
    if memory.fenced and not fenced and not running:
        tasks.append(Unfence())
        launched = None
    if entry is None or entry.desired != "launched":
        if running:
            if not stopping:
                tasks.append(Stop())
        else:
            tasks.append(ForgetLaunch())
            if memory.holds_lock:
                tasks.append(ReleaseLock())
            if entry is None:
                if status is not None:
                    tasks.append(Remove())
                if memory.reported is not None:
                    tasks.append(ClearState())
                return tasks + [Forget()]
    elif launched != entry.hash and not fenced:
        if running:
            if not stopping:
                tasks.append(Stop())  # an old body: restart with the new one once stopped
        else:
            tasks.append(Launch(entry))
    return tasks + [Report(entry)]


# Results of a run that its machine lost, not one that ended by itself: the shim died with the
# machine (a halt, a reboot), or the fence stopped the unit while no agent ran to lift it.
LOST_RESULTS = ("shim-died", "fenced")


def adopted_launch(marker_hash: str, status: UnitStatus) -> str | None:
    """The launch a new agent takes over from the marker an earlier agent left. A run the
    machine lost is not taken over, so that it starts again (under its lock, as any launch),
    as a machine starts its units at boot: else a machine back within the TTL, which the engine
    never saw leave, would keep its exclusive units failed for good."""
    if not status.running and status.result in LOST_RESULTS:
        return None
    return marker_hash


def may_start(entry: ScheduleEntry, holds_lock: bool, now: float, stop_at: float,
              fence_on_lease_loss: bool = False) -> bool:
    """Whether a launch may go ahead, once the lock of an exclusive unit was asked for.

    An exclusive unit starts only under its lock (the previous holder's lease may not have
    expired yet), and never past the fencing deadline: the lock may have been won just as
    renewals began failing. A global unit fenced on lease loss needs no lock, but it must not
    start past the deadline either: it would run on after the machine's lease expired.
    """
    if entry.exclusive:
        return holds_lock and now < stop_at
    return not fence_on_lease_loss or now < stop_at


def fence_unit(memory: UnitMemory, kill: bool, running: bool) -> list[Task]:
    """The tasks that fence one unit. A graceful pass stops what we launched; the kill pass
    SIGKILLs whatever of a unit fenced by the lease still runs, launched by us or not."""
    if not memory.fenced_by_lease:
        return []
    if kill:
        tasks: list[Task] = [Kill()] if running else []
        return [*tasks, MarkFenced()]
    if memory.launched_hash is None:
        return []  # nothing of ours to stop gracefully; the kill pass still checks it
    return [Stop(), MarkFenced()]


FenceStep = Literal["stop", "kill"]


def fence_steps(now: float, stop_at: float, kill_at: float, fenced: bool) -> list[FenceStep]:
    """What the watchdog does now: begin the graceful stop once, then kill from kill_at on."""
    steps: list[FenceStep] = []
    if now >= stop_at and not fenced:
        steps.append("stop")
    if now >= kill_at:
        steps.append("kill")
    return steps


def next_fence_check(now: float, stop_at: float, kill_at: float) -> float | None:
    """How long the watchdog may sleep, unless a renewal wakes it first: until the next of
    stop_at and kill_at. None once past both: then only a renewal (or a unit's change, which
    makes it kill again) can change what it must do."""
    for deadline in (stop_at, kill_at):
        if now < deadline:
            return deadline - now
    return None


def lifts_fence(fenced: bool, now: float, stop_at: float, member: bool = True) -> bool:
    """A renewal lifts the fence only if it came back before its own deadline, and only while
    the machine is a member: after its lease expired, the grant of a new one comes before the
    machine's record is written again, and fenced units wait for that record."""
    return fenced and member and now < stop_at


def state_to_report(machine_id: str, name: str, entry: ScheduleEntry | None, status: UnitStatus) -> UnitState:
    return UnitState(
        name=name,
        machine=machine_id,
        hash=entry.hash if entry else "",
        load="loaded",
        active=status.active,
        sub=status.sub,
        since=status.since or "",
        main_pid=status.main_pid or 0,
    )
