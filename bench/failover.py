#!/usr/bin/env python3
"""Failover times on the lab, over several halts of the machine that runs a unit.

It brings the lab up if needed, starts the exclusive sample unit (units/examples/beacon.service),
then repeatedly pulls the power of its machine (`stackfleet lab halt`), measures from the
halt until the machine is declared dead (detection), the unit is scheduled elsewhere
(placement) and reported running there (total), and powers the machine back on.

With --openstack the unit is controller.service with a seeded cloud: it also measures when
Keystone, Glance, Nova and Neutron each answer on the new controller, when every service is
ready, and when the sample workflow's data has been verified intact (image bytes included).

With --network it halts the network machine whose keepalived holds the seeded router (primary:
L3_HA's router, or DVR's HA SNAT, per the cluster's HA_MODE), while the lab machine `outside`
pings the server's floating IP every 0.1 s and a second server, without a floating IP, pings
`outside` through the router's SNAT: the packets lost on each path while the other network
machine takes the router over, and when it reported itself primary.

With --compute it halts the compute machine that runs the seeded server and a second one booted
beside it, each with a floating IP: when the machine was declared dead (detection), its guests
were dead (fence: a halt kills them at once), the evacuator (instance-ha.service) forced its
nova-compute down and Nova accepted the first evacuation, every instance was ACTIVE on the other
compute machine, and each answered ssh at its floating IP from `outside`. Goal: ssh within 60 s.

    .venv/bin/python bench/failover.py --rounds 5              # needs root
    .venv/bin/python bench/failover.py --openstack --rounds 3
    .venv/bin/python bench/failover.py --network --rounds 2
    .venv/bin/python bench/failover.py --compute --rounds 3
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from stackfleet.discovery import open_registry
from stackfleet.failover import FailoverTiming, measure_failover, wait_active
from stackfleet.lab import ops
from stackfleet.lab.state import LabInfo, default_root, load_lab
from stackfleet.openstack import reach
from stackfleet.openstack.admin import admin_environment, wait_controller_ready, workflow
from stackfleet.openstack.compute_failover import (
    QemuWatch,
    back_in_service,
    fail_over_compute,
    instances_on,
    nova,
)
from stackfleet.openstack.controller_failover import SERVICES_SETTLE, fail_over_controller, shared_record, still_down
from stackfleet.openstack.etcdlink import EtcdClusterLink, key_file
from stackfleet.openstack.network_failover import back_as_backup, fail_over_network, guest_pinger, wait_through_snat
from stackfleet.openstack.workflow import PUBLIC_GATEWAY
from stackfleet.registry.store import Registry

UNITS = Path(__file__).resolve().parents[1] / "units"
UNIT = UNITS / "examples" / "beacon.service"
ROLES = ("controller.service", "network.service", "compute.service", "instance-ha.service")
SECOND = "ha-bench-2"  # the second instance on the halted compute machine
SNAT_PEER = "snat-bench"  # a server without a floating IP, behind the router's SNAT
SSH_GOAL = 60.0
API_GOAL, READY_GOAL = 12.0, 18.0  # controller failover, s after the machine dies (issue 8)


def stackfleet(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "stackfleet.cli.main", *args], check=True, stdout=subprocess.DEVNULL)


async def rounds(count: int) -> list[FailoverTiming]:
    root = default_root()
    lab = load_lab(root)
    assert lab is not None
    registry = open_registry()
    results = []
    try:
        stackfleet("start", str(UNIT))
        for i in range(count):
            machine_id = await wait_active(registry, UNIT.name, 60)
            name = next(m.name for m in lab.machines if m.machine_id == machine_id)
            fault_at = time.monotonic()
            ops.halt(root, name)
            timing = await measure_failover(registry, UNIT.name, machine_id, fault_at)
            results.append(timing)
            print(f"round {i + 1}: halted {name}: detected {timing.detected:.2f} s, placed {timing.placed:.2f} s, "
                  f"running {timing.running:.2f} s", flush=True)
            ops.up_machine(root, name)
            while machine_id not in await registry.machines():
                await asyncio.sleep(0.1)
    finally:
        stackfleet("destroy", UNIT.name)
        await registry.close()
    return results


def cloud_lab() -> tuple[Path, LabInfo, Registry, EtcdClusterLink]:
    """The default lab, its registry and the roles' link (the caller closes the registry)."""
    root = default_root()
    lab = load_lab(root)
    assert lab is not None
    registry = open_registry()
    return root, lab, registry, EtcdClusterLink(registry, key_file(Path(lab.shared_dir)))


async def power_back(root: Path, lab: LabInfo, registry: Registry, name: str) -> None:
    """`lab up` of a halted machine, then wait until it is a member again."""
    ops.up_machine(root, name)
    machine_id = next(m.machine_id for m in lab.machines if m.name == name)
    while machine_id not in await registry.machines():
        await asyncio.sleep(0.2)


async def seeded_cloud(link: EtcdClusterLink, shared: Path) -> dict[str, str]:
    """The roles started and the sample workflow seeded (once): its record."""
    stackfleet("start", "--no-block", *(str(UNITS / r) for r in ROLES))
    address = await wait_controller_ready(link, 600)
    record = shared_record(shared)
    if not record.exists():
        seeded = workflow("seed", record, await admin_environment(link, address))
        assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    data: dict[str, str] = json.loads(record.read_text())
    return data


def snat_peer(record: Path, env: dict[str, str], key: Path, fip: str) -> str:
    """A fresh server without a floating IP, which reaches outside only through the router's SNAT:
    its fixed IP, once it pings outside."""
    for old in (s["id"] for s in nova("servers", record, env) if s["name"] == SNAT_PEER):  # an earlier run's
        workflow("delete-server", record, env, old)
    booted: dict[str, str] = nova("boot", record, env, SNAT_PEER)
    wait_through_snat(key, fip, booted["fixed_ip"], PUBLIC_GATEWAY, 360)
    return booted["fixed_ip"]


async def network_rounds(count: int) -> dict[str, list[float]]:
    root, lab, registry, link = cloud_lab()
    network = {m.name: Path(m.state_dir) for m in lab.machines if m.role == "network"}
    columns: dict[str, list[float]] = {}
    try:
        seeded = await seeded_cloud(link, Path(lab.shared_dir))
        fip, router, key = seeded["floating_ip"], seeded["router_id"], Path(seeded["key_file"])
        reach.wait_for_ssh(key, fip, 180)
        env = await admin_environment(link, await wait_controller_ready(link, 600))
        inside = snat_peer(shared_record(Path(lab.shared_dir)), env, key, fip)
        for i in range(count):
            moved = fail_over_network(network, router, fip, lambda name: ops.halt(root, name),
                                      inside=lambda: guest_pinger(key, fip, inside, PUBLIC_GATEWAY))
            rows = moved.rows()
            for label, value in rows:
                columns.setdefault(label, []).append(value)
            print(f"round {i + 1}: halted {moved.victim} (primary), {moved.new_primary} took over: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in rows)
                  + f"; {moved.pings.received}/{moved.pings.sent} answered", flush=True)
            await power_back(root, lab, registry, moved.victim)
            back_as_backup(network, router, moved.victim)
    finally:
        await registry.close()
    return columns


async def openstack_rounds(count: int) -> dict[str, list[float]]:
    root, lab, registry, link = cloud_lab()
    shared = Path(lab.shared_dir)
    columns: dict[str, list[float]] = {}
    try:
        await seeded_cloud(link, shared)
        record = shared_record(shared)
        for i in range(count):
            moved = await fail_over_controller(registry, link, lambda name: ops.halt(root, name))
            verified = workflow("verify", record, await admin_environment(link, moved.address))
            assert verified.returncode == 0, verified.stdout
            rows = moved.rows() + [("all data verified", time.monotonic() - moved.fault_at)]
            for label, seconds in rows:
                columns.setdefault(label, []).append(seconds)
            print(f"round {i + 1}: {moved.victim} -> {moved.machine}: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in rows), flush=True)
            await power_back(root, lab, registry, moved.victim)
        down = still_down(record, await admin_environment(link, moved.address))
        print(f"after {count} failovers: " + (f"{len(down)} still down after {SERVICES_SETTLE:.0f} s: "
                                              f"{', '.join(down)}" if down else
                                              "no nova service down, every neutron agent alive"))
    finally:
        await registry.close()
    return columns


async def beside_the_seeded_server(record: Path, env: dict[str, str], seeded: dict[str, str]) -> dict[str, str]:
    """A fresh second instance on the seeded server's compute machine, with a floating IP of its
    own: instance id -> floating IP, for both."""
    servers: list[dict[str, str]] = nova("servers", record, env)
    host = next(s["host"] for s in servers if s["id"] == seeded["server_id"])
    for old in (s["id"] for s in servers if s["name"] == SECOND):  # from an earlier run
        workflow("delete-server", record, env, old)
    booted: dict[str, str] = nova("boot", record, env, SECOND, host)
    assert booted["host"] == host, booted
    added = workflow("add-floating-ip", record, env, booted["id"])
    assert added.returncode == 0, added.stdout + added.stderr
    return {seeded["server_id"]: seeded["floating_ip"], booted["id"]: added.stdout.strip().splitlines()[-1]}


async def compute_rounds(count: int) -> dict[str, list[float]]:
    root, lab, registry, link = cloud_lab()
    shared = Path(lab.shared_dir)
    columns: dict[str, list[float]] = {}
    watch = QemuWatch()
    watch.start()
    try:
        seeded = await seeded_cloud(link, shared)
        record = shared_record(shared)
        key = Path(seeded["key_file"])
        env = await admin_environment(link, await wait_controller_ready(link, 600))
        floating = await beside_the_seeded_server(record, env, seeded)
        for address in floating.values():
            reach.wait_for_ssh(key, address, 180)
        for i in range(count):
            servers: list[dict[str, str]] = nova("servers", record, env)
            victim = next(s["host"] for s in servers if s["id"] == seeded["server_id"])
            on_victim = instances_on(servers, victim)
            assert set(floating) <= set(on_victim), f"not both on {victim}: {servers}"
            moved = await fail_over_compute(registry, link, record, victim, on_victim, floating, key,
                                            lambda name: ops.halt(root, name), watch)
            for label, seconds in moved.rows():
                columns.setdefault(label, []).append(seconds)
            print(f"round {i + 1}: halted {victim} ({len(on_victim)} instances -> "
                  f"{', '.join(sorted(set(moved.hosts.values())))}): "
                  + ", ".join(f"{k} {v:.1f}" for k, v in moved.rows()), flush=True)
            ops.up_machine(root, victim)
            back = await back_in_service(registry, victim)
            print(f"  {victim} back in service (forced_down lifted) {back:.1f} s after lab up", flush=True)
    finally:
        watch.stop()
        await registry.close()
    return columns


def summary(label: str, values: list[float]) -> str:
    return f"{label:<28} {min(values):7.2f} {statistics.median(values):7.2f} {max(values):7.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=None, help="default 5, with --compute 3")
    parser.add_argument("--openstack", action="store_true",
                        help="fail over the OpenStack controller (at least 3 rounds)")
    parser.add_argument("--network", action="store_true",
                        help="halt the router's primary network machine (L3_HA, or DVR's HA SNAT); "
                             "floating-IP and SNAT ping loss")
    parser.add_argument("--compute", action="store_true",
                        help="halt the compute machine of two instances; evacuation and ssh times")
    args = parser.parse_args()
    if args.rounds is None:
        args.rounds = 3 if args.compute else 5
    if load_lab(default_root()) is None:
        stackfleet("lab", "up")
    if args.compute:
        columns = asyncio.run(compute_rounds(args.rounds))
        print(f"\n{'seconds after the halt':<28} {'min':>7} {'median':>7} {'max':>7}")
        for label, values in columns.items():
            print(summary(label, values))
        worst = max(columns["ssh answers (every one)"])
        print(f"goal: ssh answers within {SSH_GOAL:.0f} s of the machine dying, 2 instances on it: "
              f"{'met' if worst <= SSH_GOAL else 'MISSED'} (worst {worst:.1f} s)")
        return 0
    if args.network:
        columns = asyncio.run(network_rounds(args.rounds))
        print(f"\n{'after the halt':<28} {'min':>7} {'median':>7} {'max':>7}")
        for label, values in columns.items():
            print(summary(label, values))
        return 0
    if args.openstack:
        columns = asyncio.run(openstack_rounds(max(3, args.rounds)))
        print(f"\n{'seconds after the halt':<28} {'min':>7} {'median':>7} {'max':>7}")
        for label, values in columns.items():
            print(summary(label, values))
        apis = statistics.median(max(values) for values in
                                 zip(*(v for k, v in columns.items() if k.endswith(" answers")), strict=True))
        ready = statistics.median(columns["every service ready"])
        print(f"goal (medians): every API answers within {API_GOAL:.0f} s ({apis:.1f}), every service "
              f"ready within {READY_GOAL:.0f} s ({ready:.1f}): "
              f"{'met' if apis <= API_GOAL and ready <= READY_GOAL else 'MISSED'}")
        return 0
    results = asyncio.run(rounds(args.rounds))
    print(f"\n{'seconds after the halt':<28} {'min':>7} {'median':>7} {'max':>7}")
    print(summary("detection (lease expired)", [r.detected for r in results]))
    print(summary("placed on another machine", [r.placed for r in results]))
    print(summary("detection to running", [r.running - r.detected for r in results]))
    print(summary("running elsewhere (total)", [r.running for r in results]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
