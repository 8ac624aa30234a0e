"""Who may read and write which keys: etcd's users and roles for the key schema.

With client-certificate auth, etcd takes a client certificate's common name as the user, so
each daemon's certificate names one of the users below. Pure: the policy is data, applied to
a cluster by authsetup.py.

- root (the admin, the CLI): everything.
- agent-MACHINE_ID: its own machine record, its own unit states, its own schedule (read),
  unit bodies (read), the fencing locks and the event log. Not the jobs (desired state), not
  the schedule of any machine, not the settings.
- engine-NAME: reads machines, jobs, the schedule and the reasons; writes the schedule, the
  reasons, the leader key and the event log. Not the jobs, not the settings.
- units-MACHINE_ID: what the OpenStack role units of that machine need, and that only units
  which declare `EtcdAccess=true` get: the settings (sealed passwords), the published services,
  machines and schedule (read), and for instance-ha.service its records (`instance-ha/`) and
  the event log (write).

Leases need no grant: etcd lets every authenticated user grant and renew leases, and revoking
one needs write access to each key attached to it.
"""
from __future__ import annotations

from dataclasses import dataclass

from .keys import KeySchema, prefix_end

READ, WRITE, READWRITE = "READ", "WRITE", "READWRITE"  # authpb.Permission.Type
ROOT = "root"
AGENT_ROLE = "agent"
ENGINE_ROLE = "engine"
UNITS_ROLE = "units"


@dataclass(frozen=True)
class Grant:
    kind: str  # READ, WRITE or READWRITE
    key: bytes
    prefix: bool = False  # every key that starts with `key`, else that key alone

    @property
    def range_end(self) -> bytes:
        """etcd's range_end: empty for one key, the key's successor for a prefix."""
        return prefix_end(self.key) if self.prefix else b""


@dataclass(frozen=True)
class Role:
    name: str
    grants: tuple[Grant, ...]


@dataclass(frozen=True)
class User:
    name: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    roles: tuple[Role, ...]
    users: tuple[User, ...]


def agent_user(machine_id: str) -> str:
    return f"agent-{machine_id}"


def engine_user(name: str) -> str:
    return f"engine-{name}"


def units_user(machine_id: str) -> str:
    return f"units-{machine_id}"


def _machine_role(machine_id: str) -> str:
    return f"machine-{machine_id}"


def shared_roles(keys: KeySchema) -> tuple[Role, ...]:
    return (
        Role(AGENT_ROLE, (
            Grant(READ, keys.bodies(), prefix=True),
            Grant(READWRITE, keys.locks(), prefix=True),
            Grant(WRITE, keys.events(), prefix=True),
        )),
        Role(ENGINE_ROLE, (
            Grant(READ, keys.machines(), prefix=True),
            Grant(READ, keys.jobs(), prefix=True),
            Grant(READWRITE, keys.schedules(), prefix=True),
            Grant(READWRITE, keys.reasons(), prefix=True),
            # A prefix, not the key alone: a standby's watch of the leader reads it as a range
            # (watch.py), which etcd refused with only the key granted; the standbys then
            # started over twice a second, a new lease each time (issue 9's idle writes).
            Grant(READWRITE, keys.leader(), prefix=True),
            Grant(READWRITE, keys.events(), prefix=True),
        )),
        Role(UNITS_ROLE, (
            Grant(READWRITE, keys.settings(), prefix=True),
            Grant(READWRITE, keys.services(), prefix=True),
            Grant(READ, keys.machines(), prefix=True),
            Grant(READ, keys.schedules(), prefix=True),
            # instance-ha.service: its evacuation records, and every step in the event log
            Grant(READWRITE, keys.instance_ha_dir(), prefix=True),
            Grant(WRITE, keys.events(), prefix=True),
        )),
    )


def machine_role(keys: KeySchema, machine_id: str) -> Role:
    """What only this machine's agent may touch: keys that carry its machine id."""
    return Role(_machine_role(machine_id), (
        Grant(READWRITE, keys.machine(machine_id)),
        Grant(READWRITE, keys.state(machine_id, ""), prefix=True),
        Grant(READ, keys.schedule_of(machine_id), prefix=True),
    ))


def policy(keys: KeySchema, machine_ids: list[str], engines: list[str]) -> Policy:
    """The roles and users of a cluster with these machines and engines."""
    roles = shared_roles(keys) + tuple(machine_role(keys, m) for m in sorted(machine_ids))
    users = [User(ROOT, (ROOT,))]
    for machine_id in sorted(machine_ids):
        users.append(User(agent_user(machine_id), (AGENT_ROLE, _machine_role(machine_id))))
        users.append(User(units_user(machine_id), (UNITS_ROLE,)))
    users += [User(engine_user(name), (ENGINE_ROLE,)) for name in sorted(engines)]
    return Policy(roles, tuple(users))
