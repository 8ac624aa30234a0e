"""The etcd key schema. Every key stackfleet uses is built here and nowhere else."""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "/stackfleet"


def prefix_end(prefix: bytes) -> bytes:
    """etcd's range_end for "every key that starts with prefix" (prefixes here end in '/')."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


@dataclass(frozen=True)
class KeySchema:
    prefix: str = DEFAULT_PREFIX

    def _k(self, *parts: str) -> bytes:
        return "/".join((self.prefix.rstrip("/"),) + parts).encode()

    def _dir(self, *parts: str) -> bytes:
        return self._k(*parts) + b"/"

    # machines: presence bound to the agent's lease, value holds metadata
    def machine(self, machine_id: str) -> bytes:
        return self._k("machines", machine_id)

    def machines(self) -> bytes:
        return self._dir("machines")

    # unit bodies are content-addressed so that an update is a new key, never an edit
    def body(self, unit_hash: str) -> bytes:
        return self._k("bodies", unit_hash)

    def bodies(self) -> bytes:
        return self._dir("bodies")

    # a job: the submitted unit's name, body hash, constraints and desired state
    def job(self, name: str) -> bytes:
        return self._k("jobs", name)

    def jobs(self) -> bytes:
        return self._dir("jobs")

    # the schedule is per machine so that an agent watches only its own prefix
    def schedule(self, machine_id: str, name: str) -> bytes:
        return self._k("schedule", machine_id, name)

    def schedule_of(self, machine_id: str) -> bytes:
        return self._dir("schedule", machine_id)

    def schedules(self) -> bytes:
        return self._dir("schedule")

    # reported states are bound to the reporting agent's lease, so they vanish with it
    def state(self, machine_id: str, name: str) -> bytes:
        return self._k("states", machine_id, name)

    def states(self) -> bytes:
        return self._dir("states")

    # fencing lock of an exclusive unit, bound to the lease of the machine that runs it
    def lock(self, name: str) -> bytes:
        return self._k("locks", name)

    def locks(self) -> bytes:
        return self._dir("locks")

    def reason(self, name: str) -> bytes:
        return self._k("reasons", name)

    def reasons(self) -> bytes:
        return self._dir("reasons")

    def event(self, stamp: str) -> bytes:
        return self._k("events", stamp)

    def events(self) -> bytes:
        return self._dir("events")

    def leader(self) -> bytes:
        return self._k("engine", "leader")

    def setting(self, key: str) -> bytes:
        return self._k("settings", key)

    def settings(self) -> bytes:
        return self._dir("settings")

    def service(self, name: str) -> bytes:
        return self._k("services", name)

    def services(self) -> bytes:
        return self._dir("services")

    # the evacuator's progress (openstack/instance_ha.py): permanent, until it closes an epoch
    def instance_ha(self, *parts: str) -> bytes:
        return self._k("instance-ha", *parts)

    def instance_ha_dir(self, *parts: str) -> bytes:
        return self._dir("instance-ha", *parts)

    def split(self, key: bytes, base: bytes) -> list[str]:
        """The path parts of key below base, e.g. schedule/M/U -> [M, U]."""
        return key[len(base):].decode().split("/")
