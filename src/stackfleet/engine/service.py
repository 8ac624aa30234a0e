"""The engine process: elect one leader, keep a model of the cluster from watches,
plan, and write the plan's actions in leader-guarded transactions."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, TypeVar

from ..registry.connection import EtcdUnavailable
from ..registry.lease import LeaseExpired, LeaseKeeper
from ..registry.records import EventRecord, JobRecord, MachineRecord, ScheduleEntry
from ..registry.store import Registry
from ..registry.watch import WatchUpdate
from ..unit.model import Constraints
from .model import Job, Machine, RecordReason, ClearReason, Schedule, Snapshot, Unschedule
from .planner import plan

log = logging.getLogger(__name__)
V = TypeVar("V")

# Changes that arrive within this window are planned together: one plan, few transactions.
DEBOUNCE = 0.02
EVENT_TRIM_EVERY = 30.0
RETRY_PAUSE = 0.5


@dataclass
class ClusterModel:
    """The engine's view, fed by watches; plain dicts keyed like etcd."""

    machines: dict[str, MachineRecord] = field(default_factory=dict)
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    schedule: dict[str, dict[str, ScheduleEntry]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    # Each record's parsed form, reused while the record object is unchanged: a plan runs on
    # every batch of changes, and re-parsing 10,000 constraints each time dominated it.
    _parsed: dict[str, tuple[JobRecord, Job]] = field(default_factory=dict)

    def job(self, record: JobRecord) -> Job:
        cached = self._parsed.get(record.name)
        if cached is None or cached[0] is not record:
            cached = (record, Job(record.name, record.desired, Constraints.from_json(record.constraints)))
            self._parsed[record.name] = cached
        return cached[1]

    def snapshot(self) -> Snapshot:
        for gone in self._parsed.keys() - self.jobs.keys():
            del self._parsed[gone]
        return Snapshot(
            machines={m.id: Machine(m.id, dict(m.metadata)) for m in self.machines.values()},
            jobs={name: self.job(record) for name, record in self.jobs.items()},
            schedule={u: {m: e.desired for m, e in entries.items()} for u, entries in self.schedule.items()},
            reasons=dict(self.reasons),
        )


class Engine:
    def __init__(self, registry: Registry, name: str, ttl: int) -> None:
        self.registry = registry
        self.keys = registry.keys
        self.name = name
        self.keeper = LeaseKeeper(registry.conn, ttl)
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
            async for update in self.registry.watch(self.keys.leader()):
                present = update.items if update.reset else {}
                if update.reset and not present:
                    return
                if any(value is None for _, value in update.changes):
                    return

        await _first(vacant(), keeper)

    async def _lead(self, revision: int, keeper: asyncio.Task[None]) -> None:
        self.model = ClusterModel()
        feeds = [
            self._feed(self.keys.machines(), self._on_machines),
            self._feed(self.keys.jobs(), self._on_jobs),
            self._feed(self.keys.schedules(), self._on_schedule),
            self._feed(self.keys.reasons(), self._on_reasons),
        ]
        await _first(self._plan_loop(revision), keeper, *feeds)

    async def _feed(self, prefix: bytes, apply: Callable[[WatchUpdate], None]) -> None:
        async for update in self.registry.watch(prefix):
            apply(update)
            self._dirty.set()

    def _on_machines(self, u: WatchUpdate) -> None:
        _merge(self.model.machines, u, self.keys.machines(), lambda parts, raw: (parts[0], MachineRecord.decode(raw)))

    def _on_jobs(self, u: WatchUpdate) -> None:
        _merge(self.model.jobs, u, self.keys.jobs(), lambda parts, raw: (parts[0], JobRecord.decode(raw)))

    def _on_reasons(self, u: WatchUpdate) -> None:
        _merge(self.model.reasons, u, self.keys.reasons(), lambda parts, raw: (parts[0], raw.decode()))

    def _on_schedule(self, u: WatchUpdate) -> None:
        base = self.keys.schedules()
        if u.reset:
            self.model.schedule.clear()
            changes: list[tuple[bytes, bytes | None]] = list(u.items.items())
        else:
            changes = u.changes
        for key, raw in changes:
            machine, unit = self.keys.split(key, base)
            if raw is None:
                _drop_entry(self.model.schedule, unit, machine)
            else:
                self.model.schedule.setdefault(unit, {})[machine] = ScheduleEntry.decode(raw)

    async def _plan_loop(self, revision: int) -> None:
        last_trim = time.monotonic()
        while True:
            await self._dirty.wait()
            await asyncio.sleep(DEBOUNCE)
            self._dirty.clear()
            ops, writes = self._plan_ops()
            if ops and not await self.registry.commit_as_leader(ops, revision):
                return
            # Our own writes come back through the watches later; until then a plan on the
            # old model would place the same unit twice.
            for write in writes:
                write()
            if time.monotonic() - last_trim > EVENT_TRIM_EVERY:
                last_trim = time.monotonic()
                await self.registry.trim_events()

    def _plan_ops(self) -> tuple[list[object], list[Callable[[], None]]]:
        """Plan on the current model; return the etcd operations and their effect on the model."""
        self.plans += 1
        model = self.model
        actions = plan(model.snapshot())
        ops: list[object] = []
        writes: list[Callable[[], None]] = []
        now = time.time()

        def put_entry(unit: str, machine: str, entry: ScheduleEntry) -> None:
            ops.append(self.registry.schedule_op(unit, machine, entry))
            writes.append(lambda: model.schedule.setdefault(unit, {}).__setitem__(machine, entry))

        def event(kind: str, unit: str, machine: str, text: str) -> None:
            ops.append(self.registry.event_op(EventRecord(now, kind, unit, machine, text)))

        for action in actions:
            if isinstance(action, Schedule):
                job = model.jobs[action.unit]
                entry = ScheduleEntry(action.desired, job.hash, model.job(job).constraints.exclusive)
                put_entry(action.unit, action.machine, entry)
                previous = model.schedule.get(action.unit, {}).get(action.machine)
                if previous is None:
                    event("scheduled", action.unit, action.machine, f"scheduled to {self._machine_label(action.machine)}")
            elif isinstance(action, Unschedule):
                ops.append(self.registry.unschedule_op(action.unit, action.machine))
                writes.append(partial(_drop_entry, model.schedule, action.unit, action.machine))
                event("unscheduled", action.unit, action.machine, f"unscheduled from {self._machine_label(action.machine)}: {action.why}")
            elif isinstance(action, RecordReason):
                ops.append(self.registry.reason_op(action.unit, action.reason))
                writes.append(partial(model.reasons.__setitem__, action.unit, action.reason))
                event("unschedulable", action.unit, "", action.reason)
            elif isinstance(action, ClearReason):
                ops.append(self.registry.clear_reason_op(action.unit))
                writes.append(partial(model.reasons.pop, action.unit, None))
        # A replaced unit body (--replace) must reach the machines that already run it.
        touched = {a.unit for a in actions if isinstance(a, (Schedule, Unschedule))}
        for unit, entries in list(model.schedule.items()):
            job = model.jobs.get(unit)
            if job is None or unit in touched:
                continue
            for machine, entry in list(entries.items()):
                if entry.hash != job.hash:
                    put_entry(unit, machine, ScheduleEntry(entry.desired, job.hash, entry.exclusive))
        return ops, writes

    def _machine_label(self, machine_id: str) -> str:
        m = self.model.machines.get(machine_id)
        return f"{machine_id[:8]}.../{m.public_ip}" if m else f"{machine_id[:8]}..."


def _drop_entry(schedule: dict[str, dict[str, ScheduleEntry]], unit: str, machine: str) -> None:
    entries = schedule.get(unit, {})
    entries.pop(machine, None)
    if not entries:
        schedule.pop(unit, None)


def _merge(target: dict[str, V], update: WatchUpdate, base: bytes,
           decode: Callable[[list[str], bytes], tuple[str, V]]) -> None:
    if update.reset:
        target.clear()
        changes: list[tuple[bytes, bytes | None]] = list(update.items.items())
    else:
        changes = update.changes
    for key, raw in changes:
        parts = key[len(base):].decode().split("/")
        if raw is None:
            target.pop(parts[0], None)
        else:
            k, v = decode(parts, raw)
            target[k] = v


async def _first(*aws: object) -> None:
    """Run until the first of these finishes; cancel the rest; re-raise its error."""
    tasks = [a if isinstance(a, asyncio.Task) else asyncio.ensure_future(a) for a in aws]  # type: ignore[arg-type]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for t in pending:
        if not isinstance(aws[tasks.index(t)], asyncio.Task):
            t.cancel()
    for t in done:
        t.result()
