"""The evacuator against real Nova (fake virt driver), stand-alone on 127.0.0.1: two compute
hosts, one dies with three servers; the evacuator forces it down and Nova rebuilds two of them on
the other, in parallel, while the third (metadata HA_Enabled=False) stays; the host comes back,
cleans up, and forced_down is lifted.

Membership is given by the test (the stand-alone cloud has no etcd): the evacuator's planner,
runner and Nova worker are the real ones, its records are in memory.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from stackfleet.openstack.evacuation import IN_FLIGHT
from stackfleet.openstack.instance_ha import Evacuator, NovaWorker, read_records
from stackfleet.openstack.venv import default_venv
from stackfleet.registry.progress import MemoryRecords

from .conftest import ADDRESS

pytestmark = pytest.mark.openstack
TIMEOUT = 180.0
# Two more servers on the seeded network, the second opted out (runs in the OpenStack venv).
MORE_SERVERS = """
import json, sys
from stackfleet.openstack.workflow import boot_server, connect_from_env
record = json.load(open(sys.argv[1]))
cloud = connect_from_env()
ids = [boot_server(cloud, name, record["image_id"], record["private_network_id"]).id
       for name in ("demo02", "optout")]
cloud.compute.set_server_metadata(ids[1], HA_Enabled="False")
print(json.dumps(ids))
"""


class Counting:
    def __init__(self, worker: NovaWorker) -> None:
        self.worker = worker
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def call(self, op: str, **args: Any) -> dict[str, Any]:
        if op != "observe":
            self.calls.append((op, args))
        return await self.worker.call(op, **args)


async def until(check: Callable[[], Any], step: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not await check():
        assert time.monotonic() < deadline, f"not within {TIMEOUT} s: {what}"
        await step()
        await asyncio.sleep(1)


def test_a_dead_compute_hosts_server_is_evacuated_and_the_host_lifted_when_back(cloud):
    cloud.start("controller", "ctl1")
    cloud.wait_ready()
    cloud.start("compute", "cmp1")
    cloud.workflow("seed", cloud.root / "record.json")
    record = json.loads((cloud.root / "record.json").read_text())
    assert record["server_host"] == "cmp1"
    booted = subprocess.run(
        [str(default_venv() / "bin" / "python"), "-c", MORE_SERVERS, str(cloud.root / "record.json")],
        env=cloud.credentials_env(), capture_output=True, text=True, timeout=300)
    assert booted.returncode == 0, booted.stderr
    second_id, opted_out_id = json.loads(booted.stdout)
    evacuated = sorted([record["server_id"], second_id])
    second = open(cloud.root / "compute-b.out", "a")
    other = subprocess.Popen(
        [sys.executable, "-m", "stackfleet.openstack", "role", "run", "compute", "--address", ADDRESS,
         "--shared-dir", str(cloud.shared), "--state-dir", str(cloud.root / "state-b"), "--host", "cmp2"],
        env=cloud.env, stdout=second, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    cloud.procs["compute-b"] = other
    members = {"ctl1", "cmp1", "cmp2"}
    events: list[str] = []

    async def main() -> None:
        log = open(cloud.root / "nova-ha.log", "ab")
        worker = await NovaWorker.start(str(default_venv() / "bin" / "python"), cloud.credentials_env(), log)
        nova = Counting(worker)
        records = MemoryRecords()

        async def event(host: str, text: str) -> None:
            events.append(f"{time.monotonic() - died:.1f}s {text}")

        async def on() -> bool:
            return True

        ha = Evacuator(records, nova, event, lambda: frozenset(members), on)

        async def observed() -> dict[str, Any]:
            return await worker.call("observe", hosts=["cmp1"])

        async def nothing() -> None:
            return None

        async def both_up() -> bool:
            now = time.time()
            found = {s["host"]: s for s in (await observed())["services"]}
            return all(h in found and (found[h]["updated_at"] or 0) > now - 20 for h in ("cmp1", "cmp2"))

        died = time.monotonic()
        try:
            await until(both_up, nothing, "both nova-compute services report")
            await ha.step()
            assert nova.calls == []  # both members: nothing to do
            cloud.kill_role("compute")  # cmp1 dies with everything under it
            members.discard("cmp1")
            died = time.monotonic()

            async def moved() -> bool:
                servers = {i["id"]: i for i in (await observed())["instances"]}
                return all(servers[i]["host"] == "cmp2" and servers[i]["vm_state"] == "active"
                           and servers[i]["task_state"] is None for i in evacuated)

            await until(moved, ha.step, "both servers ACTIVE on cmp2")
            moved_after = time.monotonic() - died
            await ha.step()  # settles their records
            _, progress = read_records(records.data)
            assert sorted((p.instance_id, p.state, p.detail) for p in progress.values()) == sorted(
                [(i, "active", "cmp2") for i in evacuated] + [(opted_out_id, "skipped", "opted out")])
            assert [op for op, _ in nova.calls] == ["force_down", "evacuate", "evacuate"]
            assert sorted(args["instance_id"] for op, args in nova.calls if op == "evacuate") == evacuated

            cloud.start("compute", "cmp1")  # back: its nova-compute starts, cleans up, heartbeats
            members.add("cmp1")

            async def lifted() -> bool:
                services = {s["host"]: s for s in (await observed())["services"]}
                return records.data == {} and not services["cmp1"]["forced_down"]

            await until(lifted, ha.step, "cmp1 lifted and its epoch closed")
            assert [op for op, _ in nova.calls] == ["force_down", "evacuate", "evacuate", "force_down"]
            assert nova.calls[-1][1]["down"] is False
            servers = {i["id"]: i for i in (await observed())["instances"]}
            assert [(servers[i]["host"], servers[i]["vm_state"]) for i in evacuated] == [("cmp2", "active")] * 2
            assert servers[opted_out_id]["host"] == "cmp1"  # never evacuated
            migrations = (await observed())["migrations"]
            assert [m["status"] for m in migrations] == ["completed"] * 2  # cmp1's cleanup ran
            assert not any(p.state in IN_FLIGHT for p in read_records(records.data)[1].values())
            cloud.measured["evacuation: host death to server ACTIVE elsewhere, s"] = moved_after
        finally:
            print("\n".join(events))
            await worker.close()
            log.close()

    asyncio.run(main())
