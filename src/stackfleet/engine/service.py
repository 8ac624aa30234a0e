"""The engine process: elect one leader, keep a model of the cluster from watches,
plan, and write the plan's actions in leader-guarded transactions."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from ..registry.changes import Changes
from ..registry.connection import EtcdUnavailable
from ..registry.interface import Op, RegistryAPI
from ..registry.lease import LeaseExpired
from ..registry.records import EventRecord, JobRecord, MachineRecord, ScheduleEntry, machine_label
from ..unit.model import Constraints
from .model import (
    Action,
    ClearReason,
    DesiredState,
    Job,
    Machine,
    RecordReason,
    Schedule,
    Snapshot,
    Unschedule,
    apply_in_place,
)
from .planner import plan

log = logging.getLogger(__name__)
C = TypeVar("C")

# Changes that arrive within this window are planned together: one plan, few transactions.
DEBOUNCE = 0.02
EVENT_TRIM_EVERY = 30.0
RETRY_PAUSE = 0.5


@dataclass
class ClusterModel:
    """The engine's view, fed by watches; the schedule is kept in the planner's form."""

    machines: dict[str, MachineRecord] = field(default_factory=dict)
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    schedule: dict[str, dict[str, DesiredState]] = field(default_factory=dict)
    hashes: dict[str, dict[str, str]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    # Each record's parsed form, reused while the record object is unchanged: a plan runs on
    # every batch of changes, and re-parsing 10,000 constraints each time dominated it.
    _parsed: dict[str, tuple[JobRecord, Job]] = field(default_factory=dict)

    def job(self, record: JobRecord) -> Job:
        cached = self._parsed.get(record.name)
        if cached is None or cached[0] is not record:
            job = Job(record.name, record.desired, Constraints.from_json(record.constraints), record.hash)
            cached = self._parsed[record.name] = (record, job)
        return cached[1]

    def snapshot(self) -> Snapshot:
        """The planner's input. It shares the model's dicts: plan() reads them and returns
        before any watch or write can change them."""
        for gone in self._parsed.keys() - self.jobs.keys():
            del self._parsed[gone]
        return Snapshot(
            machines={m.id: Machine(m.id, dict(m.metadata)) for m in self.machines.values()},
            jobs={name: self.job(record) for name, record in self.jobs.items()},
            schedule=self.schedule,
            reasons=self.reasons,
            hashes=self.hashes,
        )

    def apply(self, actions: Iterable[Action]) -> None:
        apply_in_place(self.schedule, self.hashes, self.reasons, actions)

    def merge_schedule(self, changes: Changes[tuple[str, str], ScheduleEntry]) -> None:
        """The schedule watch's report, as the actions that would have written it."""
        if changes.reset:
            self.schedule.clear()
            self.hashes.clear()
        self.apply(Unschedule(unit, machine, "gone from the registry") if entry is None
                   else Schedule(unit, machine, entry.desired, entry.hash)
                   for (unit, machine), entry in changes.changes)


class Engine:
    def __init__(self, registry: RegistryAPI, name: str, ttl: int) -> None:
        self.registry = registry
        self.name = name
        self.keeper = registry.lease_keeper(ttl)
        self.model = ClusterModel()
        self._dirty = asyncio.Event()
        self.plans = 0

    async def run(self) -> None:
        while True:
            try:
                await self.keeper.grant()
                keeper = asyncio.create_task(self.keeper.run())
                try:
                    await self._campaign_forever(keeper)
                finally:
                    keeper.cancel()
            except LeaseExpired:
                log.warning("engine %s: lease expired; starting over", self.name)
            except EtcdUnavailable as err:
                log.warning("engine %s: %s; starting over", self.name, err)
            except Exception:  # a daemon must outlive one bad plan; the log says what broke
                log.exception("engine %s: failed; starting over", self.name)
            await asyncio.sleep(RETRY_PAUSE)

    async def _campaign_forever(self, keeper: asyncio.Task[None]) -> None:
        while True:
            revision = await self.registry.campaign(self.name, self.keeper.lease_id)
            if revision is not None:
                log.info("engine %s: elected leader (revision %d)", self.name, revision)
                await self.registry.log_event("leader", "", self.name, f"engine {self.name} became leader")
                await self._lead(revision, keeper)
                log.warning("engine %s: lost leadership", self.name)
            else:
                await self._wait_for_vacancy(keeper)

    async def _wait_for_vacancy(self, keeper: asyncio.Task[None]) -> None:
        async def vacant() -> None:
            leader: dict[str, str] = {}
            async for changes in self.registry.watch_leader():
                changes.merge_into(leader)
                if not leader:
                    return

        await _first(vacant(), keeper)

    async def _lead(self, revision: int, keeper: asyncio.Task[None]) -> None:
        self.model = model = ClusterModel()
        feeds = [
            self._feed(self.registry.watch_machines(), lambda c: c.merge_into(model.machines)),
            self._feed(self.registry.watch_jobs(), lambda c: c.merge_into(model.jobs)),
            self._feed(self.registry.watch_schedule(), model.merge_schedule),
            self._feed(self.registry.watch_reasons(), lambda c: c.merge_into(model.reasons)),
        ]
        await _first(self._plan_loop(revision), keeper, *feeds)

    async def _feed(self, watch: AsyncIterator[C], merge: Callable[[C], None]) -> None:
        async for changes in watch:
            merge(changes)
            self._dirty.set()

    async def _plan_loop(self, revision: int) -> None:
        last_trim = time.monotonic()
        while True:
            await self._dirty.wait()
            await asyncio.sleep(DEBOUNCE)
            self._dirty.clear()
            ops, actions = self._plan_ops()
            if ops and not await self.registry.commit_as_leader(ops, revision):
                return
            # Our own writes come back through the watches later; until then a plan on the
            # old model would place the same unit twice.
            self.model.apply(actions)
            if time.monotonic() - last_trim > EVENT_TRIM_EVERY:
                last_trim = time.monotonic()
                await self.registry.trim_events()

    def _plan_ops(self) -> tuple[list[Op], list[Action]]:
        """Plan on the current model; return the registry operations and the actions they write."""
        self.plans += 1
        snapshot = self.model.snapshot()
        actions = plan(snapshot)
        return self._ops(snapshot, actions), actions

    def _ops(self, snapshot: Snapshot, actions: list[Action]) -> list[Op]:
        registry, now = self.registry, time.time()
        ops: list[Op] = []

        def event(kind: str, unit: str, machine: str, text: str) -> None:
            ops.append(registry.event_op(EventRecord(now, kind, unit, machine, text)))

        for action in actions:
            match action:
                case Schedule(unit, machine, desired, unit_hash):
                    exclusive = snapshot.jobs[unit].constraints.exclusive
                    ops.append(registry.schedule_op(unit, machine, ScheduleEntry(desired, unit_hash, exclusive)))
                    if machine not in snapshot.schedule.get(unit, {}):
                        event("scheduled", unit, machine, f"scheduled to {self._machine_label(machine)}")
                case Unschedule(unit, machine, why):
                    ops.append(registry.unschedule_op(unit, machine))
                    event("unscheduled", unit, machine, f"unscheduled from {self._machine_label(machine)}: {why}")
                case RecordReason(unit, reason):
                    ops.append(registry.reason_op(unit, reason))
                    event("unschedulable", unit, "", reason)
                case ClearReason(unit):
                    ops.append(registry.clear_reason_op(unit))
        return ops

    def _machine_label(self, machine_id: str) -> str:
        return machine_label(machine_id, self.model.machines.get(machine_id))


async def _first(*aws: Awaitable[None]) -> None:
    """Run until the first of these finishes; cancel the rest; re-raise its error."""
    tasks = [a if isinstance(a, asyncio.Task) else asyncio.ensure_future(a) for a in aws]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for t in pending:
        if not isinstance(aws[tasks.index(t)], asyncio.Task):
            t.cancel()
    for t in done:
        t.result()
