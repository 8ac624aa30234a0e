"""Instance HA's decisions, as one pure function (standard library only: both venvs import it).

`plan(world)` takes what the evacuator sees (stackfleet's members, Nova's compute services,
instances and evacuation migrations, and its own progress records in etcd) and returns the
actions that bring it one step on. The runner (instance_ha.py) carries them out in order, records
each in the event log, and plans again; it keeps no state of its own between passes, so a new
evacuator after a failover takes over from the records alone.

Why a host counts as dead: its machine is not a stackfleet member. compute.service has
FenceOnLeaseLoss=true, so a machine that is not a member runs no nova-compute and no guest: cut
off, it killed them before its lease could expire; halted, they died with it; not joined yet, it
never started them. Only then may Nova be told the service is down and its instances rebuilt
elsewhere from their disks on the shared storage.

Per dead host, one epoch (records/hosts/HOST): opened when the evacuator first sees it dead,
closed once the host is back, cleaned up and no longer forced down. Each instance of the host
gets at most one progress record per epoch, created (create-if-absent) *before* the evacuate
call: an instance is never evacuated twice in one epoch. A record that is only claimed (the
evacuator died before or during the call) is asked again only while Nova shows no evacuation
migration for it and the instance is still on the dead host, idle.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

FAILED_MIGRATION = ("failed", "error")
EVACUABLE = ("active", "stopped", "error")  # Nova's evacuate takes these vm_states
OPT_OUT_KEY = "HA_Enabled"
FALSE_WORDS = ("false", "0", "no", "off")
DEFAULT_BOUND = 3  # evacuations in flight at once (Masakari runs 3 threads)

State = Literal["claimed", "requested", "active", "failed", "skipped"]
IN_FLIGHT: tuple[State, ...] = ("claimed", "requested")


@dataclass(frozen=True)
class ComputeService:
    host: str
    service_id: str
    forced_down: bool
    updated_at: float | None  # seconds since the epoch of its last heartbeat (Nova's clock)


@dataclass(frozen=True)
class Instance:
    id: str
    name: str
    host: str | None
    vm_state: str
    task_state: str | None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Migration:
    id: str
    instance_id: str
    source: str
    dest: str | None
    status: str
    created_at: float


@dataclass(frozen=True)
class HostDown:
    host: str
    epoch: str
    since: float  # when the evacuator saw the host dead
    back_since: float | None = None  # when it saw the host a member again, in this epoch


@dataclass(frozen=True)
class Progress:
    epoch: str
    instance_id: str
    host: str  # the dead host it is evacuated from
    state: State
    detail: str = ""


@dataclass(frozen=True)
class World:
    members: frozenset[str]  # the names of the machines that are stackfleet members now
    services: tuple[ComputeService, ...]
    instances: tuple[Instance, ...]
    migrations: tuple[Migration, ...]  # evacuations only
    hosts_down: Mapping[str, HostDown]
    progress: Mapping[tuple[str, str], Progress]  # by (epoch, instance id)
    enabled: bool  # the cluster setting instance_ha
    now: float
    bound: int = DEFAULT_BOUND


# -- actions ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class OpenEpoch:
    host: str
    event: str


@dataclass(frozen=True)
class ForceDown:
    host: str
    service_id: str
    event: str


@dataclass(frozen=True)
class Evacuate:
    """Claim the instance's record (unless `retry`: it is ours already), then ask Nova."""

    epoch: str
    instance_id: str
    host: str
    retry: bool
    event: str


@dataclass(frozen=True)
class Note:
    """Write the instance's record in this state."""

    progress: Progress
    event: str


@dataclass(frozen=True)
class MarkReturned:
    """Note in the host's epoch when it was first seen a member again."""

    host: str
    event: str


@dataclass(frozen=True)
class LiftForcedDown:
    host: str
    service_id: str
    event: str


@dataclass(frozen=True)
class CloseEpoch:
    """Delete the host's epoch and every progress record of it."""

    host: str
    epoch: str
    event: str


Action = OpenEpoch | ForceDown | Evacuate | Note | MarkReturned | LiftForcedDown | CloseEpoch


def opted_out(instance: Instance) -> bool:
    value = instance.metadata.get(OPT_OUT_KEY)
    return value is not None and value.strip().lower() in FALSE_WORDS


def _settle(record: Progress, instance: Instance | None, migrations: list[Migration]) -> Note | None:
    """A record in flight whose outcome Nova now shows, or None while it is still open."""
    where = instance.host if instance else None
    if instance is None:
        return Note(_with(record, "skipped", "deleted"), f"{record.instance_id} was deleted during its evacuation")
    if any(m.status in FAILED_MIGRATION for m in migrations) or instance.vm_state == "error":
        return Note(_with(record, "failed", instance.vm_state),
                    f"evacuation of {instance.name} ({instance.id}) failed: vm_state {instance.vm_state}")
    if where != record.host and instance.task_state is None and instance.vm_state in ("active", "stopped"):
        return Note(_with(record, "active", where or ""),
                    f"{instance.name} ({instance.id}) is {instance.vm_state.upper()} on {where}, "
                    f"evacuated from {record.host}")
    if record.state == "claimed" and migrations:
        return Note(_with(record, "requested", migrations[-1].id),
                    f"evacuation of {instance.name} ({instance.id}) was accepted by Nova "
                    f"(migration {migrations[-1].id})")
    return None


def _with(record: Progress, state: State, detail: str) -> Progress:
    return Progress(record.epoch, record.instance_id, record.host, state, detail)


def _evacuations_of(world: World, down: HostDown, instance_id: str) -> list[Migration]:
    return sorted((m for m in world.migrations
                   if m.instance_id == instance_id and m.source == down.host and m.created_at >= down.since - 1),
                  key=lambda m: (m.created_at, m.id))


def _cleaned_up(down: HostDown, service: ComputeService | None) -> bool:
    """The returned host's nova-compute has started and removed its copies of what moved away.

    Nova's Service.start runs init_host, and in it _destroy_evacuated_instances, before it saves
    the service or sends its first heartbeat. The nova-compute that ran before the host died was
    killed by the fence, so a heartbeat newer than the host's return comes from one started since,
    whose cleanup is over. (Its cleanup marks each evacuation 'completed', but an evacuation that
    ends after it is marked 'done' again by the destination: statuses cannot tell.)
    """
    return (service is not None and service.updated_at is not None and down.back_since is not None
            and service.updated_at > down.back_since)


def plan(world: World) -> list[Action]:
    services = {s.host: s for s in world.services}
    dead = sorted(h for h in set(services) | set(world.hosts_down) if h not in world.members)
    back = sorted(h for h in world.hosts_down if h in world.members)
    actions, in_flight = _follow_up(world)
    # Every dead host is forced down before any evacuation, so that Nova's scheduler cannot pick
    # one whose service still looks up (it does so for service_down_time after the death).
    unready = False
    for host in dead:
        service, down = services.get(host), world.hosts_down.get(host)
        if down is not None and down.back_since is not None:
            # Died again before it was back in service: a new epoch, once this one has settled.
            unready = True
            if not _has_open(world, down):
                actions.append(CloseEpoch(host, down.epoch, f"compute host {host} died again before it was "
                                                            "back in service; a new evacuation follows"))
        elif down is None:
            if world.enabled and service is not None:
                unready = True
                actions.append(OpenEpoch(host, f"compute host {host} is not a stackfleet member: its lease "
                                               "expired and its guests are fenced; evacuating it"))
        elif world.enabled and service is not None and not service.forced_down:
            actions.append(ForceDown(host, service.service_id, f"marked nova-compute on {host} forced_down"))
    if world.enabled and not unready:
        actions += _evacuations(world, dead, max(0, world.bound - in_flight))
    for host in back:
        actions += _returned(world, world.hosts_down[host], services.get(host))
    return actions


def _follow_up(world: World) -> tuple[list[Action], int]:
    """Settle the records in flight that Nova now shows done; ask again for claimed ones that
    never reached Nova. Also how many stay in flight."""
    by_id = {i.id: i for i in world.instances}
    actions: list[Action] = []
    in_flight = 0
    open_records = sorted((p for p in world.progress.values() if p.state in IN_FLIGHT),
                          key=lambda p: (p.host, p.instance_id))
    for record in open_records:
        down = world.hosts_down.get(record.host)
        if down is None or down.epoch != record.epoch:
            continue  # an epoch already closed: its records go with it
        migrations = _evacuations_of(world, down, record.instance_id)
        note = _settle(record, by_id.get(record.instance_id), migrations)
        if note is not None:
            actions.append(note)
            in_flight += note.progress.state in IN_FLIGHT
            continue
        in_flight += 1
        instance = by_id[record.instance_id]
        if record.state != "claimed" or migrations or instance.host != record.host or instance.task_state:
            continue
        # Claimed by an evacuator that died before its call reached Nova: no evacuation exists.
        if record.host in world.members or not world.enabled:
            in_flight -= 1
            actions.append(Note(_with(record, "skipped", "host returned" if world.enabled else "instance HA off"),
                                f"{instance.name} ({instance.id}) stays on {record.host}: its evacuation "
                                "was claimed but never asked for"))
        else:
            actions.append(Evacuate(record.epoch, record.instance_id, record.host, True,
                                    f"asking Nova again to evacuate {instance.name} ({instance.id}) from "
                                    f"{record.host}: no evacuation of it was recorded"))
    return actions, in_flight


def _evacuations(world: World, dead: list[str], room: int) -> list[Action]:
    actions: list[Action] = []
    for host in dead:
        down = world.hosts_down.get(host)
        if down is None:
            continue
        for instance in sorted((i for i in world.instances if i.host == host), key=lambda i: i.id):
            if (down.epoch, instance.id) in world.progress:
                continue
            if opted_out(instance):
                actions.append(Note(Progress(down.epoch, instance.id, host, "skipped", "opted out"),
                                    f"{instance.name} ({instance.id}) on {host} is not evacuated: "
                                    f"metadata {OPT_OUT_KEY}={instance.metadata[OPT_OUT_KEY]}"))
            elif instance.vm_state not in EVACUABLE:
                actions.append(Note(Progress(down.epoch, instance.id, host, "skipped", instance.vm_state),
                                    f"{instance.name} ({instance.id}) on {host} is not evacuated: "
                                    f"vm_state {instance.vm_state}"))
            elif instance.task_state is None and room > 0:
                room -= 1
                actions.append(Evacuate(down.epoch, instance.id, host, False,
                                        f"evacuating {instance.name} ({instance.id}) from {host}"))
    return actions


def _returned(world: World, down: HostDown, service: ComputeService | None) -> list[Action]:
    """A dead host is a member again: what stayed on it stays; once its nova-compute has cleaned
    up, lift forced_down, then close the epoch."""
    host = down.host
    actions: list[Action] = []
    for instance in sorted((i for i in world.instances if i.host == host), key=lambda i: i.id):
        if (down.epoch, instance.id) not in world.progress:
            actions.append(Note(Progress(down.epoch, instance.id, host, "skipped", "host returned"),
                                f"{instance.name} ({instance.id}) stays on {host}: the host is back"))
    if down.back_since is None:
        return actions + [MarkReturned(host, f"compute host {host} is a stackfleet member again; waiting "
                                             "for its nova-compute to start and clean up")]
    if _has_open(world, down) or not _cleaned_up(down, service):
        return actions
    if service is not None and service.forced_down:
        actions.append(LiftForcedDown(host, service.service_id,
                                      f"nova-compute on {host} has started and cleaned up: lifted forced_down"))
    else:
        actions.append(CloseEpoch(host, down.epoch, f"compute host {host} is back in service"))
    return actions


def _has_open(world: World, down: HostDown) -> bool:
    return any(p.state in IN_FLIGHT and p.epoch == down.epoch for p in world.progress.values())
