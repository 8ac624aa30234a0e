"""Instance HA's planner (openstack/evacuation.py): table cases, and a simulated cloud driven by
hypothesis, with the evacuator crashing between any two steps."""
from __future__ import annotations

import dataclasses
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stackfleet.openstack.evacuation import (
    CloseEpoch,
    ComputeService,
    Evacuate,
    ForceDown,
    HostDown,
    Instance,
    LiftForcedDown,
    MarkReturned,
    Migration,
    Note,
    OpenEpoch,
    Progress,
    World,
    plan,
)

HOSTS = ("compute-01", "compute-02", "compute-03")
NOW = 1000.0


def service(host: str, forced_down: bool = False, updated_at: float | None = NOW - 5) -> ComputeService:
    return ComputeService(host, f"svc-{host}", forced_down, updated_at)


def server(i: int, host: str, vm_state: str = "active", task_state: str | None = None,
           **metadata: str) -> Instance:
    return Instance(f"id{i}", f"vm{i}", host, vm_state, task_state, metadata)


def world(members: tuple[str, ...] = HOSTS[1:], services: tuple[ComputeService, ...] | None = None,
          instances: tuple[Instance, ...] = (), migrations: tuple[Migration, ...] = (),
          hosts_down: dict[str, HostDown] | None = None,
          progress: dict[tuple[str, str], Progress] | None = None, enabled: bool = True,
          bound: int = 3) -> World:
    return World(frozenset(members), services if services is not None else tuple(service(h) for h in HOSTS),
                 instances, migrations, hosts_down or {}, progress or {}, enabled, NOW, bound)


DOWN = {"compute-01": HostDown("compute-01", "e1", NOW - 10)}


def kinds(actions: list[object]) -> list[str]:
    return [type(a).__name__ for a in actions]


# -- table cases ----------------------------------------------------------------------------
def test_a_dead_host_first_gets_an_epoch_and_nothing_is_evacuated_in_that_pass() -> None:
    actions = plan(world(instances=(server(1, "compute-01"),)))
    assert kinds(actions) == ["OpenEpoch"] and actions[0].host == "compute-01"  # type: ignore[attr-defined]


def test_a_member_host_is_left_alone() -> None:
    assert plan(world(members=HOSTS, instances=(server(1, "compute-01"),))) == []


def test_with_an_epoch_it_forces_the_host_down_then_evacuates_each_instance() -> None:
    actions = plan(world(instances=(server(1, "compute-01"), server(2, "compute-01"), server(3, "compute-02")),
                         hosts_down=DOWN))
    assert kinds(actions) == ["ForceDown", "Evacuate", "Evacuate"]
    assert [(a.instance_id, a.retry) for a in actions[1:]] == [("id1", False), ("id2", False)]  # type: ignore[attr-defined]


def test_every_dead_host_is_forced_down_before_any_evacuation() -> None:
    down = {**DOWN, "compute-02": HostDown("compute-02", "e2", NOW - 3)}
    actions = plan(world(members=("compute-03",), instances=(server(1, "compute-01"), server(2, "compute-02")),
                         hosts_down=down))
    assert kinds(actions) == ["ForceDown", "ForceDown", "Evacuate", "Evacuate"]
    # A second dead host still without an epoch: no evacuation yet (it could be picked).
    actions = plan(world(members=("compute-03",), instances=(server(1, "compute-01"),), hosts_down=DOWN))
    assert kinds(actions) == ["ForceDown", "OpenEpoch"]


def test_no_more_than_the_bound_is_in_flight() -> None:
    instances = tuple(server(i, "compute-01") for i in range(5))
    progress = {("e1", "id0"): Progress("e1", "id0", "compute-01", "requested")}
    actions = plan(world(services=(service("compute-01", True), service("compute-02")), instances=instances,
                         hosts_down=DOWN, progress=progress, bound=3))
    assert [a.instance_id for a in actions if isinstance(a, Evacuate)] == ["id1", "id2"]


def test_opted_out_and_unevacuable_instances_are_skipped_once() -> None:
    instances = (server(1, "compute-01", HA_Enabled="False"), server(2, "compute-01", vm_state="shelved_offloaded"),
                 server(3, "compute-01", HA_Enabled="true"))
    actions = plan(world(services=(service("compute-01", True),), instances=instances, hosts_down=DOWN))
    assert kinds(actions) == ["Note", "Note", "Evacuate"]
    notes = [a.progress for a in actions if isinstance(a, Note)]
    assert [(p.instance_id, p.state, p.detail) for p in notes] == [
        ("id1", "skipped", "opted out"), ("id2", "skipped", "shelved_offloaded")]
    assert "HA_Enabled=False" in actions[0].event  # type: ignore[union-attr]
    progress = {("e1", p.instance_id): p for p in notes}
    again = plan(world(services=(service("compute-01", True),), instances=instances, hosts_down=DOWN,
                       progress=progress))
    assert kinds(again) == ["Evacuate"]


def test_an_instance_busy_with_a_task_waits() -> None:
    actions = plan(world(services=(service("compute-01", True),), hosts_down=DOWN,
                         instances=(server(1, "compute-01", task_state="rebooting"),)))
    assert actions == []


def test_the_setting_off_stops_new_work_but_still_settles_and_cleans_up() -> None:
    assert plan(world(instances=(server(1, "compute-01"),), enabled=False)) == []
    assert plan(world(instances=(server(1, "compute-01"),), hosts_down=DOWN, enabled=False)) == []
    moved = server(1, "compute-02")
    progress = {("e1", "id1"): Progress("e1", "id1", "compute-01", "requested")}
    actions = plan(world(instances=(moved,), hosts_down=DOWN, progress=progress, enabled=False))
    assert kinds(actions) == ["Note"] and actions[0].progress.state == "active"  # type: ignore[union-attr]


def test_a_requested_evacuation_settles_active_on_its_new_host_or_failed() -> None:
    progress = {("e1", "id1"): Progress("e1", "id1", "compute-01", "requested"),
                ("e1", "id2"): Progress("e1", "id2", "compute-01", "requested"),
                ("e1", "id3"): Progress("e1", "id3", "compute-01", "requested")}
    instances = (server(1, "compute-02"), server(2, "compute-01", vm_state="error"),
                 server(3, "compute-03", task_state="rebuilding"))
    actions = plan(world(services=(service("compute-01", True),), instances=instances, hosts_down=DOWN,
                         progress=progress))
    assert [(a.progress.instance_id, a.progress.state, a.progress.detail) for a in actions  # type: ignore[union-attr]
            ] == [("id1", "active", "compute-02"), ("id2", "failed", "error")]
    assert "ACTIVE on compute-02" in actions[0].event


def test_a_claim_without_a_migration_is_asked_again_and_one_with_a_migration_is_not() -> None:
    progress = {("e1", "id1"): Progress("e1", "id1", "compute-01", "claimed"),
                ("e1", "id2"): Progress("e1", "id2", "compute-01", "claimed")}
    migration = Migration("m7", "id2", "compute-01", None, "accepted", NOW - 2)
    old = Migration("m1", "id1", "compute-01", "compute-02", "completed", NOW - 500)  # an earlier epoch's
    actions = plan(world(services=(service("compute-01", True),), hosts_down=DOWN, progress=progress,
                         instances=(server(1, "compute-01"), server(2, "compute-01")), migrations=(migration, old)))
    assert kinds(actions) == ["Evacuate", "Note"]
    assert actions[0] == Evacuate("e1", "id1", "compute-01", True, actions[0].event)  # type: ignore[union-attr]
    assert actions[1].progress.state == "requested" and actions[1].progress.detail == "m7"  # type: ignore[union-attr]


def test_a_returned_host_keeps_what_was_not_moved_and_is_lifted_only_after_its_cleanup() -> None:
    members = HOSTS
    progress = {("e1", "id1"): Progress("e1", "id1", "compute-01", "active", "compute-02")}
    instances = (server(1, "compute-02"), server(2, "compute-01"))
    done = Migration("m1", "id1", "compute-01", "compute-02", "done", NOW - 8)
    started = service("compute-01", True, updated_at=NOW - 1)
    actions = plan(world(members=members, services=(started,), instances=instances, migrations=(done,),
                         hosts_down=DOWN, progress=progress))
    assert kinds(actions) == ["Note", "MarkReturned"]
    assert actions[0].progress.detail == "host returned"  # type: ignore[union-attr]
    progress[("e1", "id2")] = actions[0].progress  # type: ignore[union-attr]
    back = {"compute-01": dataclasses.replace(DOWN["compute-01"], back_since=NOW - 3)}
    stale = service("compute-01", True, updated_at=NOW - 4)  # no heartbeat since it came back
    assert plan(world(members=members, services=(stale,), instances=instances, migrations=(done,),
                      hosts_down=back, progress=progress)) == []
    actions = plan(world(members=members, services=(started,), instances=instances, migrations=(done,),
                         hosts_down=back, progress=progress))
    assert actions == [LiftForcedDown("compute-01", "svc-compute-01", actions[0].event)]  # type: ignore[union-attr]
    lifted = dataclasses.replace(started, forced_down=False)
    actions = plan(world(members=members, services=(lifted,), instances=instances, migrations=(done,),
                         hosts_down=back, progress=progress))
    assert actions == [CloseEpoch("compute-01", "e1", actions[0].event)]  # type: ignore[union-attr]


def test_a_host_that_dies_again_before_it_is_back_in_service_gets_a_new_epoch() -> None:
    back = {"compute-01": dataclasses.replace(DOWN["compute-01"], back_since=NOW - 3)}
    actions = plan(world(services=(service("compute-01", True),), instances=(server(1, "compute-01"),),
                         hosts_down=back))
    assert kinds(actions) == ["CloseEpoch"]


def test_a_claim_that_never_reached_nova_is_dropped_once_the_host_is_back() -> None:
    progress = {("e1", "id1"): Progress("e1", "id1", "compute-01", "claimed")}
    actions = plan(world(members=HOSTS, services=(service("compute-01", True),), hosts_down=DOWN,
                         progress=progress, instances=(server(1, "compute-01"),)))
    assert kinds(actions) == ["Note", "MarkReturned"]
    assert (actions[0].progress.state, actions[0].progress.detail) == ("skipped", "host returned")  # type: ignore[union-attr]


def test_a_returned_host_waits_for_evacuations_in_flight() -> None:
    progress = {("e1", "id1"): Progress("e1", "id1", "compute-01", "requested")}
    actions = plan(world(members=HOSTS, services=(service("compute-01", True, NOW),),
                         instances=(server(1, "compute-02", task_state="rebuilding"),),
                         hosts_down={"compute-01": dataclasses.replace(DOWN["compute-01"], back_since=NOW - 3)},
                         progress=progress))
    assert actions == []  # heartbeats since its return, but an evacuation of it is still open


# -- a simulated cloud ----------------------------------------------------------------------
@dataclasses.dataclass
class Cloud:
    """Nova, etcd and stackfleet's membership, as the planner's inputs, and the effects of its
    actions. An evacuation rebuilds the instance on the first live, not forced-down host after
    `delay` ticks; a returned host's nova-compute heartbeats and cleans up after `boot` ticks."""

    members: set[str]
    instances: dict[str, Instance]
    forced: set[str] = dataclasses.field(default_factory=set)
    heartbeat: dict[str, float] = dataclasses.field(default_factory=dict)
    migrations: list[Migration] = dataclasses.field(default_factory=list)
    hosts_down: dict[str, HostDown] = dataclasses.field(default_factory=dict)
    progress: dict[tuple[str, str], Progress] = dataclasses.field(default_factory=dict)
    evacuate_calls: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)
    pending: list[tuple[int, str, str]] = dataclasses.field(default_factory=list)  # (due, instance, migration)
    returned_at: dict[str, int] = dataclasses.field(default_factory=dict)
    cleaned: set[str] = dataclasses.field(default_factory=set)
    now: int = 0
    delay: int = 2
    boot: int = 2
    enabled: bool = True
    bound: int = 2

    def world(self) -> World:
        return World(frozenset(self.members),
                     tuple(ComputeService(h, f"svc-{h}", h in self.forced, self.heartbeat.get(h)) for h in HOSTS),
                     tuple(self.instances.values()), tuple(self.migrations), dict(self.hosts_down),
                     dict(self.progress), self.enabled, float(self.now), self.bound)

    def tick(self) -> None:
        self.now += 1
        for host, at in self.returned_at.items():
            if self.now == at + self.boot:  # nova-compute's init_host: the cleanup, once
                self.cleaned.add(host)
                self.migrations = [dataclasses.replace(m, status="completed")
                                   if m.source == host and m.status in ("accepted", "pre-migrating", "done")
                                   else m for m in self.migrations]
            if self.now >= at + self.boot:
                self.heartbeat[host] = float(self.now)
        for due, instance_id, migration_id in [p for p in self.pending if p[0] <= self.now]:
            self.pending.remove((due, instance_id, migration_id))
            targets = sorted(h for h in self.members if h not in self.forced and h != self.instances[instance_id].host)
            m = next(m for m in self.migrations if m.id == migration_id)
            if not targets:
                self.instances[instance_id] = dataclasses.replace(self.instances[instance_id], vm_state="error",
                                                                  task_state=None)
                self._migration(migration_id, status="error")
                continue
            self.instances[instance_id] = dataclasses.replace(self.instances[instance_id], host=targets[0],
                                                              task_state=None)
            self._migration(migration_id, status="done", dest=targets[0])
            assert m.source != targets[0]

    def _migration(self, migration_id: str, **changes: object) -> None:
        self.migrations = [dataclasses.replace(m, **changes) if m.id == migration_id else m  # type: ignore[arg-type]
                           for m in self.migrations]

    def run(self, actions: list[object], crash_after: int | None) -> None:
        """The runner: each action in order, its effects; it may die after `crash_after` steps
        (a claim is one step, the evacuate call the next)."""
        steps = 0

        def step() -> bool:
            nonlocal steps
            steps += 1
            return crash_after is not None and steps > crash_after

        for action in actions:
            match action:
                case OpenEpoch(host):
                    if step():
                        return
                    self.hosts_down.setdefault(host, HostDown(host, f"{host}@{self.now}", float(self.now)))
                case ForceDown(host):
                    if step():
                        return
                    self.forced.add(host)
                case Evacuate(epoch, instance_id, host, retry):
                    if step():
                        return
                    key = (epoch, instance_id)
                    if not retry:
                        if key in self.progress:
                            continue  # another runner claimed it
                        self.progress[key] = Progress(epoch, instance_id, host, "claimed")
                    if step():
                        return
                    instance = self.instances[instance_id]
                    assert host in self.forced, "evacuated before its host was forced down"
                    assert instance.task_state is None and instance.host == host
                    self.evacuate_calls[key] += 1
                    migration = Migration(f"m{len(self.migrations)}", instance_id, host, None, "accepted",
                                          float(self.now))
                    self.migrations.append(migration)
                    self.instances[instance_id] = dataclasses.replace(instance, task_state="rebuilding")
                    self.pending.append((self.now + self.delay, instance_id, migration.id))
                    if step():
                        return
                    self.progress[key] = Progress(epoch, instance_id, host, "requested", migration.id)
                case Note(progress):
                    if step():
                        return
                    self.progress[(progress.epoch, progress.instance_id)] = progress
                case MarkReturned(host):
                    if step():
                        return
                    self.hosts_down[host] = dataclasses.replace(self.hosts_down[host], back_since=float(self.now))
                case LiftForcedDown(host):
                    if step():
                        return
                    assert host in self.members, "lifted while the host is dead"
                    assert host in self.cleaned, "lifted before the host's nova-compute cleaned up"
                    self.forced.discard(host)
                case CloseEpoch(host, epoch):
                    if step():
                        return
                    del self.hosts_down[host]
                    self.progress = {k: v for k, v in self.progress.items() if k[0] != epoch}


scenario = st.fixed_dictionaries({
    "placement": st.lists(st.sampled_from(HOSTS[:2]), min_size=1, max_size=6),
    "opt_out": st.lists(st.booleans(), min_size=6, max_size=6),
    "crashes": st.lists(st.one_of(st.none(), st.integers(0, 6)), min_size=30, max_size=30),
    "return_at": st.one_of(st.none(), st.integers(1, 12)),
    "bound": st.integers(1, 3),
    "delay": st.integers(1, 3),
})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario)
def test_every_instance_of_a_dead_host_is_evacuated_once_even_with_crashes(case: dict[str, object]) -> None:
    placement: list[str] = case["placement"]  # type: ignore[assignment]
    opt_out: list[bool] = case["opt_out"]  # type: ignore[assignment]
    instances = {f"id{i}": Instance(f"id{i}", f"vm{i}", host, "active", None,
                                    {"HA_Enabled": "False"} if opt_out[i] else {})
                 for i, host in enumerate(placement)}
    cloud = Cloud(members={"compute-02", "compute-03"}, instances=instances, bound=case["bound"],  # type: ignore[arg-type]
                  delay=case["delay"], heartbeat={h: -1.0 for h in HOSTS})  # type: ignore[arg-type]
    on_dead = {i for i, inst in instances.items() if inst.host == "compute-01"}
    crashes: list[int | None] = case["crashes"]  # type: ignore[assignment]
    return_at: int | None = case["return_at"]  # type: ignore[assignment]
    for crash_after in crashes + [None] * 30:
        if return_at is not None and cloud.now == return_at:
            cloud.members.add("compute-01")
            cloud.returned_at["compute-01"] = cloud.now
        actions = plan(cloud.world())
        for action in actions:  # never a fresh claim of a recorded instance, never a live host's
            if isinstance(action, Evacuate):
                assert action.retry == ((action.epoch, action.instance_id) in cloud.progress), action
                assert action.host not in cloud.members, action
        cloud.run(actions, crash_after)
        in_flight = sum(p.state in ("claimed", "requested") for p in cloud.progress.values())
        assert in_flight <= cloud.bound
        cloud.tick()
    assert all(n == 1 for n in cloud.evacuate_calls.values()), cloud.evacuate_calls
    evacuated = {i for (_, i) in cloud.evacuate_calls}
    assert evacuated <= on_dead  # nothing of a live host
    assert not any(opt_out[int(i[2:])] for i in evacuated)  # never an opted-out one
    if return_at is None:
        wanted = {i for i in on_dead if not opt_out[int(i[2:])]}
        assert evacuated == wanted
        assert all(cloud.instances[i].host != "compute-01" and cloud.instances[i].vm_state == "active"
                   for i in wanted)
    else:
        # Back in service: forced_down lifted, the epoch closed, nothing left in flight.
        assert "compute-01" not in cloud.forced and cloud.hosts_down == {}
        assert cloud.pending == []
