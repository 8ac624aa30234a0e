"""The evacuator's runner (openstack/instance_ha.py) on a fake Nova and in-memory records: the
order of its calls, its parallel evacuations, and a failover in the middle of an evacuation."""
from __future__ import annotations

import asyncio
import copy
from typing import Any

from stackfleet.openstack.instance_ha import Evacuator, NovaError, read_records
from stackfleet.registry.progress import MemoryRecords


class FakeNova:
    """Services and servers as Nova reports them; an evacuation moves the server to the first
    other host that is up and not forced down, once `finish()` is called."""

    def __init__(self, placement: dict[str, str], hosts: tuple[str, ...]) -> None:
        self.services = {h: {"host": h, "service_id": f"svc-{h}", "forced_down": False, "updated_at": 0.0}
                         for h in hosts}
        self.servers = {i: {"id": i, "name": f"vm-{i}", "host": h, "vm_state": "active", "task_state": None,
                            "metadata": {}} for i, h in placement.items()}
        self.migrations: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []
        self.gate: asyncio.Event | None = None  # while set up, evacuate calls wait on it
        self.concurrent = 0
        self.most_concurrent = 0

    async def call(self, op: str, **args: Any) -> dict[str, Any]:
        if op == "observe":
            return copy.deepcopy({"services": list(self.services.values()), "instances": list(self.servers.values()),
                                  "migrations": [m for m in self.migrations if m["source"] in args["hosts"]
                                                 or m["source"] not in args["members"]]})
        if op == "force_down":
            self.calls.append(("force_down" if args["down"] else "lift", args["service_id"]))
            host = args["service_id"].removeprefix("svc-")
            self.services[host]["forced_down"] = args["down"]
            return {"forced_down": args["down"]}
        assert op == "evacuate"
        server = self.servers[args["instance_id"]]
        if not self.services[server["host"]]["forced_down"]:
            raise NovaError("ComputeServiceInUse")
        self.concurrent += 1
        self.most_concurrent = max(self.most_concurrent, self.concurrent)
        try:
            if self.gate is not None:
                await self.gate.wait()
        finally:
            self.concurrent -= 1
        self.calls.append(("evacuate", args["instance_id"]))
        self.migrations.append({"id": str(len(self.migrations)), "instance_id": server["id"],
                                "source": server["host"], "dest": None, "status": "accepted", "created_at": 1e12})
        server["task_state"] = "rebuilding"
        return {}

    def finish(self, alive: set[str]) -> None:
        for m in self.migrations:
            server = self.servers[m["instance_id"]]
            if m["status"] == "accepted":
                target = sorted(h for h in alive if not self.services[h]["forced_down"])[0]
                server.update(host=target, task_state=None)
                m.update(status="done", dest=target)


def evacuator(records: MemoryRecords, nova: FakeNova, members: set[str], events: list[str],
              enabled: bool = True, bound: int = 3) -> Evacuator:
    async def event(host: str, text: str) -> None:
        events.append(text)

    async def on() -> bool:
        return enabled

    return Evacuator(records, nova, event, lambda: frozenset(members), on, bound=bound, clock=lambda: 1e12)


HOSTS = ("compute-01", "compute-02")


def test_a_dead_hosts_instances_are_evacuated_in_parallel_after_its_force_down() -> None:
    async def main() -> None:
        nova = FakeNova({f"i{n}": "compute-01" for n in range(4)} | {"i9": "compute-02"}, HOSTS)
        records, events, members = MemoryRecords(), [], {"compute-02"}
        ha = evacuator(records, nova, members, events, bound=3)
        await ha.step()  # the epoch
        nova.gate = asyncio.Event()
        second = asyncio.create_task(ha.step())
        await asyncio.sleep(0.05)
        assert nova.concurrent == 3  # in parallel, as many as the bound
        nova.gate.set()
        await second
        assert nova.calls[0] == ("force_down", "svc-compute-01")
        assert sorted(c for c in nova.calls if c[0] == "evacuate") == [("evacuate", f"i{n}") for n in range(3)]
        nova.finish({"compute-02"})
        await ha.step()  # settles three, evacuates the fourth
        nova.finish({"compute-02"})
        await ha.step()
        assert all(s["host"] == "compute-02" for s in nova.servers.values())
        _, progress = read_records(records.data)
        assert {p.instance_id: p.state for p in progress.values()} == {f"i{n}": "active" for n in range(4)}
        assert any("is ACTIVE on compute-02" in e for e in events)
        assert any("forced_down" in e for e in events) and any(e.startswith("evacuating vm-i0") for e in events)

    asyncio.run(main())


def test_a_failover_in_the_middle_of_an_evacuation_evacuates_nothing_twice() -> None:
    async def main() -> None:
        nova = FakeNova({f"i{n}": "compute-01" for n in range(3)}, HOSTS)
        records, events, members = MemoryRecords(), [], {"compute-02"}
        first = evacuator(records, nova, members, events)
        await first.step()
        nova.gate = asyncio.Event()
        dying = asyncio.create_task(first.step())
        await asyncio.sleep(0.05)
        dying.cancel()  # the controller moves: claims are written, no call has returned
        await asyncio.gather(dying, return_exceptions=True)
        nova.gate = None
        claimed = [k for k, v in records.data.items() if v.get("state") == "claimed"]
        assert len(claimed) == 3
        second = evacuator(records, nova, members, events)  # the new copy, from etcd alone
        await second.step()
        await second.step()
        assert sorted(c for c in nova.calls if c[0] == "evacuate") == [("evacuate", f"i{n}") for n in range(3)]
        nova.finish({"compute-02"})
        await second.step()
        await second.step()
        assert sorted(c for c in nova.calls if c[0] == "evacuate") == [("evacuate", f"i{n}") for n in range(3)]
        assert all(s["host"] == "compute-02" for s in nova.servers.values())

    asyncio.run(main())


def test_return_lifts_forced_down_after_a_heartbeat_and_closes_the_epoch() -> None:
    async def main() -> None:
        nova = FakeNova({"i1": "compute-01"}, HOSTS)
        records, events, members = MemoryRecords(), [], {"compute-02"}
        ha = evacuator(records, nova, members, events)
        for _ in range(2):
            await ha.step()
        nova.finish({"compute-02"})
        members.add("compute-01")
        await ha.step()  # settles i1, notes the return
        assert records.data["hosts/compute-01"]["back_since"] == 1e12
        await ha.step()
        assert nova.services["compute-01"]["forced_down"]  # no heartbeat since its return yet
        nova.services["compute-01"]["updated_at"] = 1e12 + 5
        await ha.step()
        assert nova.calls[-1] == ("lift", "svc-compute-01")
        await ha.step()
        assert records.data == {}
        assert events[-1] == "compute host compute-01 is back in service"

    asyncio.run(main())


def test_the_setting_off_leaves_a_dead_host_alone() -> None:
    async def main() -> None:
        nova = FakeNova({"i1": "compute-01"}, HOSTS)
        records, events = MemoryRecords(), []
        ha = evacuator(records, nova, {"compute-02"}, events, enabled=False)
        for _ in range(3):
            await ha.step()
        assert nova.calls == [] and records.data == {} and events == []

    asyncio.run(main())


def test_the_nova_worker_answers_each_request_and_reports_errors() -> None:
    import json
    from datetime import UTC, datetime

    from stackfleet.openstack.nova_ha import serve, stamp

    class Nova:
        def evacuate(self, instance_id: str) -> dict[str, Any]:
            if instance_id == "busy":
                raise RuntimeError("HTTP 409: ComputeServiceInUse")
            return {}

    requests = [{"id": 1, "op": "evacuate", "instance_id": "a"}, {"id": 2, "op": "evacuate", "instance_id": "busy"},
                {"id": 3, "op": "__init__"}]
    out: list[str] = []
    serve(Nova(), [json.dumps(r) + "\n" for r in requests], out.append)
    replies = {r["id"]: r for r in map(json.loads, out)}
    assert replies[1] == {"id": 1, "ok": {}}
    assert "ComputeServiceInUse" in replies[2]["error"]
    assert "unknown op" in replies[3]["error"]
    assert stamp("2026-12-02T01:40:00.000000") == datetime(2026, 12, 2, 1, 40, tzinfo=UTC).timestamp()
    assert stamp("2026-12-02T01:40:00Z") == stamp("2026-12-02T01:40:00+00:00") and stamp(None) is None


def test_instance_ha_service_is_one_copy_on_a_controller_running_the_role() -> None:
    from pathlib import Path

    from stackfleet.openstack.roles import OPENSTACK_ROLES
    from stackfleet.unit import load_unit_file

    unit = load_unit_file(str(Path(__file__).resolve().parents[2] / "units" / "instance-ha.service"))
    assert unit.constraints.exclusive and unit.constraints.machine_metadata == {"role": frozenset({"controller"})}
    assert unit.get("Service", "ExecStart") == ["stackfleet role run instance-ha"]
    assert "instance-ha" in OPENSTACK_ROLES


def test_passes_come_soon_while_a_host_is_down_and_rarely_when_all_is_well() -> None:
    from stackfleet.openstack.instance_ha import AFTER_ACTION, IDLE_INTERVAL, PASS_INTERVAL

    async def main() -> None:
        nova = FakeNova({"i1": "compute-01"}, HOSTS)
        records, events, members = MemoryRecords(), [], {"compute-01", "compute-02"}
        ha = evacuator(records, nova, members, events)
        await ha.step()
        assert ha.interval == IDLE_INTERVAL  # a membership change wakes it at once
        members.discard("compute-01")
        await ha.step()  # the epoch
        assert ha.interval == AFTER_ACTION
        await ha.step()  # forced down, evacuation asked
        await ha.step()  # nothing to do until Nova is done
        assert ha.interval == PASS_INTERVAL
        assert IDLE_INTERVAL > PASS_INTERVAL > AFTER_ACTION

    asyncio.run(main())
