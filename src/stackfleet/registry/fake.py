"""An in-memory registry for fast tests of the engine and the agent: no etcd, no network.

It keeps etcd's semantics where they matter to its callers: one revision counter, values
bound to leases vanish when the lease expires or is revoked, locks and the leader key are
create-if-absent, guarded commits fail once the leader key is another one, and watches send
the full content first and every later change in order.
"""
from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .changes import Changes
from .connection import EtcdUnavailable
from .interface import MachineIdTaken
from .keys import DEFAULT_PREFIX
from .lease import LeaseKeeper
from .records import DesiredState, EventRecord, JobRecord, MachineRecord, ScheduleEntry, UnitState

Path = tuple[str, ...]
K = TypeVar("K")
LEADER: Path = ("engine", "leader")


@dataclass(frozen=True)
class FakeOp:
    path: Path
    value: object | None  # None deletes
    lease: int = 0


class FakeLeases:
    def __init__(self, registry: FakeRegistry) -> None:
        self.registry = registry

    async def grant(self, ttl: int) -> int:
        return self.registry.grant_lease(ttl)

    async def refresh(self, lease_id: int, timeout: float) -> int:
        if self.registry.partitioned:
            raise EtcdUnavailable([], None)
        return self.registry.refresh_lease(lease_id)

    async def granted_ttl(self, lease_id: int) -> int:
        return self.registry.granted_ttl(lease_id)

    async def revoke(self, lease_id: int) -> None:
        self.registry.expire_lease(lease_id)


class FakeRegistry:
    def __init__(self, prefix: str = DEFAULT_PREFIX, clock: Callable[[], float] = time.monotonic) -> None:
        self._prefix = prefix
        self.clock = clock
        self.revision = 0
        self._data: dict[Path, object] = {}
        self._created: dict[Path, int] = {}
        self._lease_of: dict[Path, int] = {}
        self._leases: dict[int, tuple[int, float]] = {}  # id -> (ttl, expiry on self.clock)
        self._ids = itertools.count(0x1000)
        self._stamps = itertools.count()
        self._watchers: list[tuple[Path, asyncio.Queue[list[tuple[Path, object | None]]]]] = []
        self.leases = FakeLeases(self)
        # While set, lease renewals fail as if etcd could not be reached (the lease runs on).
        self.partitioned = False

    # -- the store ------------------------------------------------------------
    def _commit(self, ops: Iterable[FakeOp]) -> None:
        self._expire_due()
        changed: list[tuple[Path, object | None]] = []
        self.revision += 1
        for op in ops:
            if op.value is None:
                if self._data.pop(op.path, None) is not None:
                    self._created.pop(op.path, None)
                    self._lease_of.pop(op.path, None)
                    changed.append((op.path, None))
                continue
            if op.lease and op.lease not in self._leases:
                raise LookupError(f"lease {op.lease:x} not found")
            self._created.setdefault(op.path, self.revision)
            self._data[op.path] = op.value
            if op.lease:
                self._lease_of[op.path] = op.lease
            else:
                self._lease_of.pop(op.path, None)
            changed.append((op.path, op.value))
        for prefix, queue in self._watchers:
            mine = [(p, v) for p, v in changed if p[: len(prefix)] == prefix]
            if mine:
                queue.put_nowait(mine)

    def _get(self, path: Path) -> Any:
        self._expire_due()
        return self._data.get(path)

    def _below(self, prefix: Path) -> dict[Path, Any]:
        self._expire_due()
        return {p[len(prefix):]: v for p, v in sorted(self._data.items()) if p[: len(prefix)] == prefix}

    def _put(self, path: Path, value: object, lease: int = 0) -> None:
        self._commit([FakeOp(path, value, lease)])

    def _delete(self, path: Path) -> None:
        self._commit([FakeOp(path, None)])

    # -- leases ------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        return self._prefix

    async def close(self) -> None:
        pass

    def lease_keeper(self, ttl: int, on_renewed: Callable[[float], None] | None = None,
                     clock: Callable[[], float] = time.monotonic) -> LeaseKeeper:
        return LeaseKeeper(self.leases, ttl, on_renewed=on_renewed, clock=clock)

    def grant_lease(self, ttl: int) -> int:
        lease = next(self._ids)
        self._leases[lease] = (ttl, self.clock() + ttl)
        return lease

    def refresh_lease(self, lease_id: int) -> int:
        self._expire_due()
        if lease_id not in self._leases:
            return 0
        ttl, _ = self._leases[lease_id]
        self._leases[lease_id] = (ttl, self.clock() + ttl)
        return ttl

    def granted_ttl(self, lease_id: int) -> int:
        self._expire_due()
        return self._leases[lease_id][0] if lease_id in self._leases else 0

    def expire_lease(self, lease_id: int) -> None:
        """What etcd does when the lease runs out: everything bound to it goes."""
        self._leases.pop(lease_id, None)
        bound = [p for p, lease in self._lease_of.items() if lease == lease_id]
        if bound:
            self._commit(FakeOp(p, None) for p in bound)

    def _expire_due(self) -> None:
        now = self.clock()
        for lease_id in [i for i, (_, expiry) in self._leases.items() if expiry <= now]:
            self.expire_lease(lease_id)

    # -- machines, jobs and bodies ------------------------------------------------
    async def register_machine(self, machine: MachineRecord, lease: int) -> None:
        path = ("machines", machine.id)
        holder = self._get(path)
        if holder is not None and self._lease_of.get(path) != lease:
            raise MachineIdTaken(machine.id, holder)
        self._put(path, machine, lease)

    async def machines(self) -> dict[str, MachineRecord]:
        return {p[0]: v for p, v in self._below(("machines",)).items()}

    async def job(self, name: str) -> JobRecord | None:
        job: JobRecord | None = self._get(("jobs", name))
        return job

    async def jobs(self) -> dict[str, JobRecord]:
        return {p[0]: v for p, v in self._below(("jobs",)).items()}

    async def body(self, unit_hash: str) -> str | None:
        text: str | None = self._get(("bodies", unit_hash))
        return text

    async def submit(self, job: JobRecord, text: str, replace: bool) -> str:
        current = await self.job(job.name)
        if current is not None and current.hash == job.hash:
            return "unchanged"
        if current is not None and not replace:
            return "exists"
        stored = job if current is None else dataclasses.replace(job, desired=current.desired)
        self._commit([FakeOp(("bodies", job.hash), text), FakeOp(("jobs", job.name), stored)])
        return "created" if current is None else "replaced"

    async def set_desired(self, name: str, desired: DesiredState) -> bool:
        job = await self.job(name)
        if job is None:
            return False
        if job.desired != desired:
            self._put(("jobs", name), dataclasses.replace(job, desired=desired))
        return True

    async def destroy(self, name: str) -> bool:
        job = await self.job(name)
        if job is None:
            return False
        self._delete(("jobs", name))
        if not any(j.hash == job.hash for j in (await self.jobs()).values()):
            self._delete(("bodies", job.hash))
        return True

    # -- schedule, states, locks, reasons, events -----------------------------------
    async def schedule(self) -> dict[str, dict[str, ScheduleEntry]]:
        result: dict[str, dict[str, ScheduleEntry]] = {}
        for (machine, unit), entry in self._below(("schedule",)).items():
            result.setdefault(unit, {})[machine] = entry
        return result

    async def report_state(self, state: UnitState, lease: int) -> None:
        self._commit([self.state_op(state, lease)])

    async def clear_state(self, machine_id: str, name: str) -> None:
        self._delete(("states", machine_id, name))

    async def states(self) -> list[UnitState]:
        return list(self._below(("states",)).values())

    async def acquire_lock(self, name: str, machine_id: str, lease: int) -> bool:
        path = ("locks", name)
        holder = self._get(path)
        if holder is None:
            self._put(path, machine_id, lease)
            return True
        return holder == machine_id and self._lease_of.get(path) == lease

    async def release_lock(self, name: str, machine_id: str) -> None:
        if self._get(("locks", name)) == machine_id:
            self._delete(("locks", name))

    async def locks(self) -> dict[str, str]:
        return {p[0]: v for p, v in self._below(("locks",)).items()}

    async def reasons(self) -> dict[str, str]:
        return {p[0]: v for p, v in self._below(("reasons",)).items()}

    async def log_event(self, kind: str, unit: str, machine: str, text: str) -> None:
        self._commit([self.event_op(EventRecord(time.time(), kind, unit, machine, text))])

    async def events(self, limit: int = 50) -> list[EventRecord]:
        return list(self._below(("events",)).values())[-limit:]

    async def trim_events(self, keep: int = 2000) -> None:
        stamps = list(self._below(("events",)))
        self._commit(FakeOp(("events",) + p, None) for p in stamps[: max(0, len(stamps) - keep)])

    # -- typed watches ---------------------------------------------------------------
    async def _watch(self, prefix: Path, key: Callable[[Path], K]) -> AsyncIterator[Changes[K, Any]]:
        queue: asyncio.Queue[list[tuple[Path, object | None]]] = asyncio.Queue()
        watcher = (prefix, queue)
        self._watchers.append(watcher)
        try:
            yield Changes(True, [(key(p), v) for p, v in self._below(prefix).items()])
            while True:
                batch = await queue.get()
                while not queue.empty():
                    batch += queue.get_nowait()
                yield Changes(False, [(key(p[len(prefix):]), v) for p, v in batch])
        finally:
            self._watchers.remove(watcher)

    def watch_machines(self) -> AsyncIterator[Changes[str, MachineRecord]]:
        return self._watch(("machines",), lambda p: p[0])

    def watch_jobs(self) -> AsyncIterator[Changes[str, JobRecord]]:
        return self._watch(("jobs",), lambda p: p[0])

    def watch_reasons(self) -> AsyncIterator[Changes[str, str]]:
        return self._watch(("reasons",), lambda p: p[0])

    def watch_schedule(self) -> AsyncIterator[Changes[tuple[str, str], ScheduleEntry]]:
        return self._watch(("schedule",), lambda p: (p[1], p[0]))

    def watch_schedule_of(self, machine_id: str) -> AsyncIterator[Changes[str, ScheduleEntry]]:
        return self._watch(("schedule", machine_id), lambda p: p[0])

    def watch_leader(self) -> AsyncIterator[Changes[str, str]]:
        return self._watch(LEADER, lambda p: "")

    def watch_published(self, name: str) -> AsyncIterator[Changes[str, str]]:
        return self._watch(("services", name), lambda p: "")

    # -- engine leadership and guarded writes -------------------------------------
    async def campaign(self, name: str, lease: int) -> int | None:
        if self._get(LEADER) is not None:
            return None
        self._put(LEADER, name, lease)
        return self._created[LEADER]

    async def leader(self) -> str | None:
        name: str | None = self._get(LEADER)
        return name

    def schedule_op(self, unit: str, machine: str, entry: ScheduleEntry) -> FakeOp:
        return FakeOp(("schedule", machine, unit), entry)

    def unschedule_op(self, unit: str, machine: str) -> FakeOp:
        return FakeOp(("schedule", machine, unit), None)

    def reason_op(self, unit: str, reason: str) -> FakeOp:
        return FakeOp(("reasons", unit), reason)

    def clear_reason_op(self, unit: str) -> FakeOp:
        return FakeOp(("reasons", unit), None)

    def event_op(self, event: EventRecord) -> FakeOp:
        return FakeOp(("events", f"{next(self._stamps):020d}"), event)

    def state_op(self, state: UnitState, lease: int) -> FakeOp:
        return FakeOp(("states", state.machine, state.name), state, lease)

    async def commit_as_leader(self, ops: Sequence[FakeOp], leader_revision: int, chunk: int = 128) -> bool:
        if self._get(LEADER) is None or self._created[LEADER] != leader_revision:
            return False
        self._commit(ops)
        return True

    async def put_many(self, ops: Iterable[FakeOp], chunk: int = 128) -> None:
        self._commit(ops)

    # -- cluster settings and published services ------------------------------------
    async def settings(self) -> dict[str, str]:
        return {p[0]: v for p, v in self._below(("settings",)).items()}

    async def set_setting(self, key: str, value: str) -> None:
        self._put(("settings", key), value)

    async def setting_if_absent(self, key: str, value: str) -> str:
        stored: str | None = self._get(("settings", key))
        if stored is None:
            self._put(("settings", key), value)
            return value
        return stored

    async def publish(self, name: str, value: str, lease: int) -> None:
        self._put(("services", name), value, lease)

    async def published(self, name: str) -> str | None:
        value: str | None = self._get(("services", name))
        return value
