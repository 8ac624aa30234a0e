"""The agent's decisions (agent/reconcile.py), one table row per case."""
from __future__ import annotations

import pytest

from stackfleet.agent.reconcile import (
    AwaitSupervisor,
    ClearState,
    Forget,
    ForgetLaunch,
    Kill,
    Launch,
    MarkFenced,
    NoteExclusive,
    ReleaseLock,
    Remove,
    Report,
    Stop,
    Task,
    Unfence,
    UnitMemory,
    fence_steps,
    fence_unit,
    lifts_fence,
    may_start,
    next_fence_check,
    reconcile_unit,
    state_to_report,
)
from stackfleet.registry.records import ScheduleEntry, UnitState
from stackfleet.runtime.base import UnitStatus

LOCKED = ScheduleEntry("launched", "h2", exclusive=True)  # an exclusive unit, body h2
GLOBAL = ScheduleEntry("launched", "h2", exclusive=False)
LOADED = ScheduleEntry("loaded", "h2", exclusive=True)
INACTIVE = ScheduleEntry("inactive", "h2", exclusive=True)
REPORTED = UnitState("u", "m", "h2", "loaded", "active", "running")


def status(active: str = "active", **kw: object) -> UnitStatus:
    sub = {"active": "running", "activating": "start", "deactivating": "stop-sigterm"}.get(active, "dead")
    return UnitStatus("u", active, sub, **kw)  # type: ignore[arg-type]


def mem(**kw: object) -> UnitMemory:
    return UnitMemory(**{"exclusive": True, **kw})  # type: ignore[arg-type]


CASES: list[tuple[str, ScheduleEntry | None, UnitStatus | None, UnitMemory, bool, list[Task]]] = [
    # id, entry, runtime status (None: runtime does not know it), memory, agent fenced, tasks
    ("new exclusive unit is launched", LOCKED, None, UnitMemory(), False,
     [NoteExclusive(True), Launch(LOCKED), Report(LOCKED)]),
    ("new global unit is launched", GLOBAL, None, UnitMemory(), False, [Launch(GLOBAL), Report(GLOBAL)]),
    ("running with its body: only report", LOCKED, status(), mem(launched_hash="h2"), False, [Report(LOCKED)]),
    ("adopted shim with its hash marker keeps running", LOCKED, status(), mem(launched_hash="h2", holds_lock=True),
     False, [Report(LOCKED)]),
    ("adopted shim without a marker is restarted under our control", LOCKED, status(), mem(), False,
     [Stop(), Report(LOCKED)]),
    ("new body hash while running: stop, then relaunch", LOCKED, status(), mem(launched_hash="h1"), False,
     [Stop(), Report(LOCKED)]),
    ("new body hash while it stops: wait", LOCKED, status("deactivating"), mem(launched_hash="h1"), False,
     [Report(LOCKED)]),
    ("stopped with the old body: launch the new one", LOCKED, status("inactive"), mem(launched_hash="h1"), False,
     [Launch(LOCKED), Report(LOCKED)]),
    ("failed after a launch of this body: left alone", LOCKED, status("failed"), mem(launched_hash="h2"), False,
     [Report(LOCKED)]),
    ("ended but its shim has not exited: wait for it before a launch", LOCKED,
     status("inactive", shim_alive=True), mem(launched_hash="h1"), False, [AwaitSupervisor()]),
    ("ended but its shim has not exited: wait for it before a removal", None,
     status("failed", shim_alive=True), mem(reported=REPORTED), False, [AwaitSupervisor()]),
    ("running with a live shim: only report", LOCKED, status(shim_alive=True), mem(launched_hash="h2"), False,
     [Report(LOCKED)]),
    ("orphaned processes are killed before anything else", LOCKED, status("inactive", orphaned=True),
     UnitMemory(), False, [Kill()]),
    ("fenced agent launches nothing", LOCKED, None, mem(), True, [Report(LOCKED)]),
    ("fenced agent does not restart a stopped body", LOCKED, status("inactive"), mem(launched_hash="h1"), True,
     [Report(LOCKED)]),
    ("fence lifted: the fenced unit starts again", LOCKED, status("failed"), mem(launched_hash="h2", fenced=True),
     False, [Unfence(), Launch(LOCKED), Report(LOCKED)]),
    ("fence lifted while still stopping: wait for the stop", LOCKED, status("deactivating"),
     mem(launched_hash="h2", fenced=True), False, [Report(LOCKED)]),
    ("still fenced: the fenced unit stays down", LOCKED, status("failed"), mem(launched_hash="h2", fenced=True),
     True, [Report(LOCKED)]),
    ("loaded while running: stop", LOADED, status(), mem(launched_hash="h2"), False, [Stop(), Report(LOADED)]),
    ("inactive while running: stop", INACTIVE, status(), mem(launched_hash="h2"), False,
     [Stop(), Report(INACTIVE)]),
    ("loaded while deactivating: no second stop", LOADED, status("deactivating"), mem(launched_hash="h2"), False,
     [Report(LOADED)]),
    ("loaded and stopped: forget the launch, release the held lock", LOADED, status("inactive"),
     mem(launched_hash="h2", holds_lock=True), False, [ForgetLaunch(), ReleaseLock(), Report(LOADED)]),
    ("loaded and stopped without the lock: nothing to release", LOADED, status("inactive"), mem(), False,
     [ForgetLaunch(), Report(LOADED)]),
    ("exclusive flag of a changed entry is remembered", GLOBAL, status(), mem(launched_hash="h2"), False,
     [NoteExclusive(False), Report(GLOBAL)]),
    ("removed entry while running: stop first", None, status(), mem(launched_hash="h2", reported=REPORTED), False,
     [Stop(), Report(None)]),
    ("removed entry with state reported: clean up everything", None, status("inactive"),
     mem(holds_lock=True, reported=REPORTED), False,
     [ForgetLaunch(), ReleaseLock(), Remove(), ClearState(), Forget()]),
    ("removed entry the runtime never knew, never reported", None, None, mem(), False, [ForgetLaunch(), Forget()]),
    ("removed entry while fenced is cleaned up too", None, status("failed"), mem(fenced=True), True,
     [ForgetLaunch(), Remove(), Forget()]),
]


@pytest.mark.parametrize(("entry", "runtime", "memory", "fenced", "tasks"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_reconcile_unit(entry: ScheduleEntry | None, runtime: UnitStatus | None, memory: UnitMemory,
                        fenced: bool, tasks: list[Task]) -> None:
    before = UnitMemory(**vars(memory))
    assert reconcile_unit(entry, runtime, memory, fenced) == tasks
    assert memory == before  # decisions only; the agent carries them out


@pytest.mark.parametrize(("entry", "holds_lock", "now", "allowed"), [
    (GLOBAL, False, 99.0, True),  # no lock, no deadline for a global unit
    (LOCKED, False, 1.0, False),  # exclusive lock not yet held: the previous holder's lease lives
    (LOCKED, True, 1.0, True),
    (LOCKED, True, 10.0, False),  # past stop_at before launch: the lock was won too late
    (LOCKED, True, 12.0, False),
], ids=["global", "lock not held", "lock held in time", "at stop_at", "past stop_at"])
def test_may_start(entry: ScheduleEntry, holds_lock: bool, now: float, allowed: bool) -> None:
    assert may_start(entry, holds_lock, now, stop_at=10.0) is allowed


@pytest.mark.parametrize(("memory", "kill", "running", "tasks"), [
    (mem(exclusive=False, launched_hash="h2"), True, True, []),  # global units are never fenced
    (mem(launched_hash="h2"), False, True, [Stop(), MarkFenced()]),
    (mem(), False, True, []),  # not launched by us: left to the kill pass
    (mem(), True, True, [Kill(), MarkFenced()]),
    (mem(launched_hash="h2"), True, False, [MarkFenced()]),
], ids=["global", "graceful", "graceful, not ours", "kill", "kill, already down"])
def test_fence_unit(memory: UnitMemory, kill: bool, running: bool, tasks: list[Task]) -> None:
    assert fence_unit(memory, kill, running) == tasks


# A global unit with [X-Stackfleet] FenceOnLeaseLoss=true is fenced as an exclusive one is.
FENCED_GLOBAL = {"exclusive": False, "fence_on_lease_loss": True}


@pytest.mark.parametrize(("memory", "kill", "running", "tasks"), [
    (mem(**FENCED_GLOBAL, launched_hash="h2"), False, True, [Stop(), MarkFenced()]),
    (mem(**FENCED_GLOBAL), False, True, []),
    (mem(**FENCED_GLOBAL), True, True, [Kill(), MarkFenced()]),  # an adopted or orphaned copy too
    (mem(**FENCED_GLOBAL, launched_hash="h2"), True, False, [MarkFenced()]),
], ids=["graceful", "graceful, not ours", "kill", "kill, already down"])
def test_fence_unit_of_a_global_unit_fenced_on_lease_loss(memory: UnitMemory, kill: bool, running: bool,
                                                         tasks: list[Task]) -> None:
    assert memory.fenced_by_lease
    assert fence_unit(memory, kill, running) == tasks


@pytest.mark.parametrize(("now", "allowed"), [(1.0, True), (10.0, False), (12.0, False)],
                         ids=["in time", "at stop_at", "past stop_at"])
def test_a_global_unit_fenced_on_lease_loss_starts_only_before_the_deadline(now: float, allowed: bool) -> None:
    assert may_start(GLOBAL, False, now, stop_at=10.0, fence_on_lease_loss=True) is allowed


def test_a_fenced_unit_is_not_launched_while_the_agent_is_fenced() -> None:
    memory = mem(**FENCED_GLOBAL, fenced=True)
    assert reconcile_unit(GLOBAL, status("failed"), memory, fenced=True) == [Report(GLOBAL)]
    assert reconcile_unit(GLOBAL, status("failed"), memory, fenced=False) == [
        Unfence(), Launch(GLOBAL), Report(GLOBAL)]


@pytest.mark.parametrize(("now", "fenced", "steps"), [
    (4.9, False, []),
    (5.0, False, ["stop"]),
    (5.5, True, []),  # the graceful stop begins once
    (7.0, False, ["stop", "kill"]),
    (7.0, True, ["kill"]),
])
def test_fence_steps(now: float, fenced: bool, steps: list[str]) -> None:
    assert fence_steps(now, stop_at=5.0, kill_at=7.0, fenced=fenced) == steps


@pytest.mark.parametrize("now, sleep", [(1.0, 4.0), (5.0, 2.0), (6.5, 0.5), (7.0, None), (9.0, None)])
def test_the_watchdog_sleeps_until_the_next_fence_deadline(now: float, sleep: float | None) -> None:
    assert next_fence_check(now, stop_at=5.0, kill_at=7.0) == sleep


@pytest.mark.parametrize(("fenced", "now", "lifted"), [(True, 4.0, True), (True, 5.0, False), (False, 4.0, False)])
def test_lifts_fence(fenced: bool, now: float, lifted: bool) -> None:
    assert lifts_fence(fenced, now, stop_at=5.0) is lifted


def test_a_new_lease_does_not_lift_the_fence_before_the_machine_is_a_member_again() -> None:
    assert lifts_fence(True, 4.0, stop_at=5.0, member=False) is False


def test_state_to_report() -> None:
    assert state_to_report("m", "u", LOCKED, status(main_pid=7, since="t")) == \
        UnitState("u", "m", "h2", "loaded", "active", "running", "t", 7)
    assert state_to_report("m", "u", None, UnitStatus("u")) == UnitState("u", "m", "", "loaded", "inactive", "dead")
