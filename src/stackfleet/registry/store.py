"""The registry: stackfleet's only door to etcd.

Every read and write of cluster state goes through `Registry`; callers never see
keys, only records.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, TypeVar

from aetcd import rpc
from aetcd import transactions as tx

from .changes import Changes
from .connection import EtcdConnection
from .interface import MachineIdTaken
from .keys import DEFAULT_PREFIX, KeySchema
from .lease import EtcdLeases, LeaseKeeper
from .records import (
    DesiredState,
    EventRecord,
    JobRecord,
    MachineRecord,
    ScheduleEntry,
    UnitState,
)
from .tlsfiles import TLSFiles
from .watch import WatchUpdate, list_prefix, watch_prefix

# etcd refuses transactions with more operations than --max-txn-ops (128 by default).
TXN_OPS = 128
EVENTS_KEPT = 2000

Op = Any  # an aetcd transaction operation
K = TypeVar("K")
V = TypeVar("V")


class _LeaseOf(tx.BaseCompare):  # type: ignore[misc]  # aetcd ships no type information
    """Compare a key's lease (aetcd has no such compare). A missing key has lease 0."""

    def build_compare(self, compare: Any) -> None:
        compare.target = rpc.Compare.LEASE
        compare.lease = int(self.value)


class Registry:
    def __init__(self, conn: EtcdConnection, prefix: str = DEFAULT_PREFIX) -> None:
        self.conn = conn
        self.keys = KeySchema(prefix)

    @classmethod
    def open(cls, endpoints: list[str], prefix: str = DEFAULT_PREFIX, timeout: float = 2.0,
             tls: TLSFiles | None = None) -> Registry:
        return cls(EtcdConnection(endpoints, timeout=timeout, tls=tls), prefix)

    async def close(self) -> None:
        await self.conn.close()

    async def __aenter__(self) -> Registry:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- generic helpers -------------------------------------------------
    async def _get(self, key: bytes) -> bytes | None:
        got = await self.conn.call(lambda c: c.get(key))
        return None if got is None else got.value

    async def _list(self, prefix: bytes) -> dict[bytes, bytes]:
        return (await list_prefix(self.conn, prefix)).items

    async def _put(self, key: bytes, value: bytes, lease: int = 0) -> None:
        await self.conn.call(lambda c: c.put(key, value, lease=lease or None))

    async def _txn(self, compare: list[Any], success: list[Op], failure: list[Op] | None = None) -> bool:
        ok, _ = await self.conn.call(lambda c: c.transaction(compare=compare, success=success, failure=failure or []))
        return bool(ok)

    def watch(self, prefix: bytes) -> AsyncIterator[WatchUpdate]:
        """The raw watch of a key prefix; the typed watches below are built on it."""
        return watch_prefix(self.conn, prefix)

    async def _watch(self, prefix: bytes, key: Callable[[list[str]], K],
                     value: Callable[[bytes], V]) -> AsyncIterator[Changes[K, V]]:
        """Decode every update of a prefix: key path parts below it, and values, to records."""
        async for update in self.watch(prefix):
            pairs = update.items.items() if update.reset else update.changes
            yield Changes(update.reset, [(key(self.keys.split(k, prefix)), None if raw is None else value(raw))
                                         for k, raw in pairs])

    def watch_machines(self) -> AsyncIterator[Changes[str, MachineRecord]]:
        return self._watch(self.keys.machines(), _first_part, MachineRecord.decode)

    def watch_jobs(self) -> AsyncIterator[Changes[str, JobRecord]]:
        return self._watch(self.keys.jobs(), _first_part, JobRecord.decode)

    def watch_reasons(self) -> AsyncIterator[Changes[str, str]]:
        return self._watch(self.keys.reasons(), _first_part, bytes.decode)

    def watch_schedule(self) -> AsyncIterator[Changes[tuple[str, str], ScheduleEntry]]:
        """The whole schedule, keyed by (unit, machine)."""
        return self._watch(self.keys.schedules(), lambda parts: (parts[1], parts[0]), ScheduleEntry.decode)

    def watch_schedule_of(self, machine_id: str) -> AsyncIterator[Changes[str, ScheduleEntry]]:
        """One machine's schedule, keyed by unit."""
        return self._watch(self.keys.schedule_of(machine_id), _first_part, ScheduleEntry.decode)

    def watch_leader(self) -> AsyncIterator[Changes[str, str]]:
        """The engine leader's name, under the key ''."""
        return self._watch(self.keys.leader(), lambda parts: "", bytes.decode)

    # -- leases ------------------------------------------------------------
    @property
    def prefix(self) -> str:
        return self.keys.prefix

    def lease_keeper(self, ttl: int, on_renewed: Callable[[float], None] | None = None,
                     clock: Callable[[], float] = time.monotonic) -> LeaseKeeper:
        return LeaseKeeper(EtcdLeases(self.conn), ttl, on_renewed=on_renewed, clock=clock)

    # -- machines ----------------------------------------------------------
    async def register_machine(self, machine: MachineRecord, lease: int) -> None:
        key = self.keys.machine(machine.id)
        put = [tx.Put(key, machine.encode(), lease=lease)]
        for _ in range(10):
            ok, responses = await self.conn.call(
                lambda c: c.transaction(compare=[tx.Create(key) == 0], success=put, failure=[tx.Get(key)]))
            if ok:
                return
            if not responses[0]:
                continue  # its lease expired in between: create it again
            _, holder = responses[0][0]
            if holder.lease != lease:
                raise MachineIdTaken(machine.id, MachineRecord.decode(holder.value))
            if await self._txn([_LeaseOf(key) == lease], put):
                return
        raise RuntimeError(f"machine {machine.id}: its key kept changing under us")

    async def machines(self) -> dict[str, MachineRecord]:
        return {m.id: m for m in map(MachineRecord.decode, (await self._list(self.keys.machines())).values())}

    # -- jobs and bodies ---------------------------------------------------
    async def job(self, name: str) -> JobRecord | None:
        raw = await self._get(self.keys.job(name))
        return None if raw is None else JobRecord.decode(raw)

    async def jobs(self) -> dict[str, JobRecord]:
        return {j.name: j for j in map(JobRecord.decode, (await self._list(self.keys.jobs())).values())}

    async def body(self, unit_hash: str) -> str | None:
        raw = await self._get(self.keys.body(unit_hash))
        return None if raw is None else raw.decode()

    async def submit(self, job: JobRecord, text: str, replace: bool) -> str:
        """Store a unit. Returns 'created', 'unchanged', 'replaced' or 'exists' (different body, no replace)."""
        key = self.keys.job(job.name)
        body = [tx.Put(self.keys.body(job.hash), text.encode())]
        if await self._txn([tx.Create(key) == 0], body + [tx.Put(key, job.encode())]):
            return "created"
        current = await self.job(job.name)
        if current is None:
            return await self.submit(job, text, replace)
        if current.hash == job.hash:
            return "unchanged"
        if not replace:
            return "exists"
        updated = JobRecord(job.name, job.hash, current.desired, job.constraints)
        await self._txn([], body + [tx.Put(key, updated.encode())])
        return "replaced"

    async def set_desired(self, name: str, desired: DesiredState) -> bool:
        """Change a job's desired state; False if there is no such job."""
        key = self.keys.job(name)
        for _ in range(10):
            got = await self.conn.call(lambda c: c.get(key))
            if got is None:
                return False
            job = JobRecord.decode(got.value)
            if job.desired == desired:
                return True
            new = JobRecord(job.name, job.hash, desired, job.constraints)
            if await self._txn([tx.Mod(key) == got.mod_revision], [tx.Put(key, new.encode())]):
                return True
        raise RuntimeError(f"{name}: desired state kept changing under us")

    async def destroy(self, name: str) -> bool:
        job = await self.job(name)
        if job is None:
            return False
        await self.conn.call(lambda c: c.delete(self.keys.job(name)))
        still_used = any(j.hash == job.hash for j in (await self.jobs()).values())
        if not still_used:
            await self.conn.call(lambda c: c.delete(self.keys.body(job.hash)))
        return True

    # -- schedule ----------------------------------------------------------
    async def schedule(self) -> dict[str, dict[str, ScheduleEntry]]:
        """unit -> {machine: entry}."""
        base = self.keys.schedules()
        result: dict[str, dict[str, ScheduleEntry]] = {}
        for key, raw in (await self._list(base)).items():
            machine, unit = self.keys.split(key, base)
            result.setdefault(unit, {})[machine] = ScheduleEntry.decode(raw)
        return result

    # -- reported states -----------------------------------------------------
    async def report_state(self, state: UnitState, lease: int) -> None:
        await self._put(self.keys.state(state.machine, state.name), state.encode(), lease)

    async def clear_state(self, machine_id: str, name: str) -> None:
        await self.conn.call(lambda c: c.delete(self.keys.state(machine_id, name)))

    async def states(self) -> list[UnitState]:
        return [UnitState.decode(raw) for raw in (await self._list(self.keys.states())).values()]

    # -- fencing locks -------------------------------------------------------
    async def acquire_lock(self, name: str, machine_id: str, lease: int) -> bool:
        """Take the unit's lock for this machine, bound to its lease; True if we hold it now."""
        key = self.keys.lock(name)
        value = machine_id.encode()
        put = [tx.Put(key, value, lease=lease)]
        if await self._txn([tx.Create(key) == 0], put):
            return True
        # Held already: ours only under this very lease (an agent restarted with the lease it
        # adopted). A lock under another live lease is never rebound, even if it names our
        # machine: that is a second agent with our id (see register_machine).
        return await self._txn([tx.Value(key) == value, _LeaseOf(key) == lease], [])

    async def release_lock(self, name: str, machine_id: str) -> None:
        key = self.keys.lock(name)
        await self._txn([tx.Value(key) == machine_id.encode()], [tx.Delete(key)])

    async def locks(self) -> dict[str, str]:
        base = self.keys.locks()
        return {self.keys.split(k, base)[0]: v.decode() for k, v in (await self._list(base)).items()}

    # -- unscheduled reasons and the event log ------------------------------
    async def reasons(self) -> dict[str, str]:
        base = self.keys.reasons()
        return {self.keys.split(k, base)[0]: v.decode() for k, v in (await self._list(base)).items()}

    def event_op(self, event: EventRecord) -> Op:
        stamp = f"{time.time_ns():020d}-{uuid.uuid4().hex[:6]}"
        return tx.Put(self.keys.event(stamp), event.encode())

    async def log_event(self, kind: str, unit: str, machine: str, text: str) -> None:
        await self._txn([], [self.event_op(EventRecord(time.time(), kind, unit, machine, text))])

    async def events(self, limit: int = 50) -> list[EventRecord]:
        items = sorted((await self._list(self.keys.events())).items())
        return [EventRecord.decode(v) for _, v in items[-limit:]]

    async def trim_events(self, keep: int = EVENTS_KEPT) -> None:
        base = self.keys.events()
        resp = await self.conn.call(lambda c: c.get_prefix(base, keys_only=True))
        keys = sorted(kv.key for kv in resp.kvs)
        if len(keys) > keep:
            cut = keys[len(keys) - keep]
            await self.conn.call(lambda c: c.delete_range(base, cut))

    # -- engine leadership and guarded writes -------------------------------
    async def campaign(self, name: str, lease: int) -> int | None:
        """Become leader if nobody is; returns the leader key's create revision, or None."""
        key = self.keys.leader()
        ok, _ = await self.conn.call(
            lambda c: c.transaction(compare=[tx.Create(key) == 0],
                                    success=[tx.Put(key, name.encode(), lease=lease)], failure=[])
        )
        if not ok:
            return None
        got = await self.conn.call(lambda c: c.get(key))
        if got is None or got.value != name.encode():
            return None
        return int(got.create_revision)

    async def leader(self) -> str | None:
        raw = await self._get(self.keys.leader())
        return None if raw is None else raw.decode()

    def schedule_op(self, unit: str, machine: str, entry: ScheduleEntry) -> Op:
        return tx.Put(self.keys.schedule(machine, unit), entry.encode())

    def unschedule_op(self, unit: str, machine: str) -> Op:
        return tx.Delete(self.keys.schedule(machine, unit))

    def reason_op(self, unit: str, reason: str) -> Op:
        return tx.Put(self.keys.reason(unit), reason.encode())

    def clear_reason_op(self, unit: str) -> Op:
        return tx.Delete(self.keys.reason(unit))

    async def commit_as_leader(self, ops: Sequence[Op], leader_revision: int, chunk: int = TXN_OPS) -> bool:
        """Apply ops in transactions that succeed only while our leader key is the same one.

        Returns False (and stops) as soon as leadership is found lost.
        """
        guard = [tx.Create(self.keys.leader()) == leader_revision]
        for start in range(0, len(ops), chunk - 1):
            if not await self._txn(guard, list(ops[start : start + chunk - 1])):
                return False
        return True

    # -- cluster settings and published services -----------------------------
    async def settings(self) -> dict[str, str]:
        base = self.keys.settings()
        return {self.keys.split(k, base)[0]: v.decode() for k, v in (await self._list(base)).items()}

    async def set_setting(self, key: str, value: str) -> None:
        await self._put(self.keys.setting(key), value.encode())

    async def setting_if_absent(self, key: str, value: str) -> str:
        """Store value unless the key exists; return what is stored (first writer wins)."""
        k = self.keys.setting(key)
        ok, responses = await self.conn.call(
            lambda c: c.transaction(compare=[tx.Create(k) == 0], success=[tx.Put(k, value.encode())],
                                    failure=[tx.Get(k)])
        )
        return value if ok else responses[0][0][0].decode()

    async def publish(self, name: str, value: str, lease: int) -> None:
        await self._put(self.keys.service(name), value.encode(), lease)

    async def published(self, name: str) -> str | None:
        raw = await self._get(self.keys.service(name))
        return None if raw is None else raw.decode()

    def watch_published(self, name: str) -> AsyncIterator[Changes[str, str]]:
        """A published service's value, under the key ''."""
        return self._watch(self.keys.service(name), lambda parts: "", bytes.decode)

    async def put_many(self, ops: Iterable[Op], chunk: int = TXN_OPS) -> None:
        batch = list(ops)
        for start in range(0, len(batch), chunk):
            await self._txn([], batch[start : start + chunk])

    def state_op(self, state: UnitState, lease: int) -> Op:
        return tx.Put(self.keys.state(state.machine, state.name), state.encode(), lease=lease)


def _first_part(parts: list[str]) -> str:
    return parts[0]
