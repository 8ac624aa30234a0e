"""The main job on the built-in lab: the 2015 story, with a real OpenStack cloud.

Brings the lab up; starts controller.service, network.service and compute.service from
their unit files and waits, with progress, until the cloud is healthy; runs the original's
sample workflow through the real APIs (image, security group rules, external and private
networks, router, keypair, a server from stackfleet-guest under QEMU, a floating IP); from the
lab machine `outside` (the user's laptop) pings the floating IP, logs in with the keypair and
pings the router's gateway from inside the guest, and writes a file to its /data disk; then
pulls the power of the controller's machine and shows the controller running on another one
with the same image (checksum), networks and server, the failover timings, and the same guest
answering ssh. Then the original's compute-node fail test, with no `nova evacuate` typed: it
pulls the power of the server's compute machine, and the evacuator (instance-ha.service) brings
the server up ACTIVE on the other one, at the same floating IP, with the file on /data; the
timings, and the machine back in service. With --core it runs the quick story of two sample
units instead. Every cluster step is a real `stackfleet`
command, printed before it runs.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from .discovery import open_registry
from .failover import measure_failover, wait_active
from .lab.state import load_lab
from .openstack import reach
from .openstack.admin import admin_environment, wait_controller_ready, workflow
from .openstack.compute_failover import QemuWatch, back_in_service, fail_over_compute, instances_on, nova
from .openstack.controller_failover import fail_over_controller, shared_record
from .openstack.etcdlink import EtcdClusterLink, key_file
from .registry.store import Registry

REPO = Path(__file__).resolve().parents[2]
ROLE_UNITS = ("controller.service", "network.service", "compute.service", "instance-ha.service")
READY_TIMEOUT = 600.0
SSH_TIMEOUT = 180.0
PROOF = "/data/written-by-the-demo"


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def sh(*argv: str, check: bool = True) -> int:
    print(f"$ stackfleet {' '.join(shlex.quote(a) for a in argv)}", flush=True)
    rc = subprocess.call([sys.executable, "-m", "stackfleet.cli.main", *argv])
    if check and rc != 0:
        raise SystemExit(f"demo: `stackfleet {' '.join(argv)}` failed with exit code {rc}")
    return rc


def run_workflow(command: str, record: Path, env: dict[str, str], *extra: str) -> str:
    print(f"$ .venv-openstack/bin/python -m stackfleet.openstack.workflow {command} {record} "
          f"{' '.join(extra)}".rstrip(), flush=True)
    done = workflow(command, record, env, *extra)
    print(done.stdout, end="", flush=True)
    if done.returncode != 0:
        raise SystemExit(f"demo: workflow {command} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def user_story(seeded: dict[str, str], timings: dict[str, float]) -> str:
    """The end of the original README: the floating IP from the user's machine, ssh with the key,
    and a ping from inside the guest. Then a file on the guest's /data disk, for the compute
    failure to keep: its text."""
    key, fip = seeded["key_file"], seeded["floating_ip"]
    step(f"From outside (10.0.5.1, the user's laptop): the server's floating IP {fip}")
    started = time.monotonic()
    timings["server ACTIVE to ssh login"] = reach.wait_for_ssh(Path(key), fip, SSH_TIMEOUT)
    print(f"ssh answered {time.monotonic() - started:.1f} s after the seed finished")
    sh("lab", "exec", "outside", "--", *reach.ping_argv(fip, count=3))
    gateway = seeded["router_gateway_ip"]
    sh("lab", "exec", "outside", "--",
       *reach.ssh_argv(Path(key), fip, f"hostname; ip -4 -o addr show dev eth0; "
                                       f"ping -c 3 {gateway}"))
    text = f"written by the demo at {time.strftime('%H:%M:%S')}, before any fault"
    sh("lab", "exec", "outside", "--",
       *reach.ssh_argv(Path(key), fip, f"echo '{text}' > {PROOF} && sync && ls -l {PROOF}"))
    return text


async def machine_name(registry: Registry, machine_id: str) -> str:
    return (await registry.machines())[machine_id].name


async def rejoined(registry: Registry, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while name not in {m.name for m in (await registry.machines()).values()}:
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: {name} did not rejoin within {timeout:.0f} s")
        await asyncio.sleep(0.2)


async def core_story(registry: Registry) -> None:
    units = REPO / "units" / "examples"
    step("Start an exclusive unit (MachineMetadata=role=controller) and a Global unit (role=compute)")
    sh("start", str(units / "beacon.service"), str(units / "probe.service"))
    sh("list-units")
    old = await wait_active(registry, "beacon.service", 60)
    victim = await machine_name(registry, old)
    step(f"Pull the power of {victim}, the machine that runs beacon.service")
    fault_at = time.monotonic()
    sh("lab", "halt", victim)
    timing = await measure_failover(registry, "beacon.service", old, fault_at)
    sh("list-units")
    print(f"\nbeacon.service moved from {victim} to {await machine_name(registry, timing.machine)}: detected "
          f"{timing.detected:.2f} s, placed {timing.placed:.2f} s, running {timing.running:.2f} s after the halt")
    step(f"Power {victim} back on: it rejoins")
    sh("lab", "up", victim)
    await rejoined(registry, victim)
    sh("list-units")


async def openstack_story(registry: Registry, shared: Path) -> None:
    link = EtcdClusterLink(registry, key_file(shared))
    step("Start the OpenStack roles from their unit files")
    started = time.monotonic()
    sh("start", "--no-block", *(str(REPO / "units" / r) for r in ROLE_UNITS))
    address = await wait_controller_ready(link, READY_TIMEOUT,
                                          progress=lambda s: print(f"  controller {s}", flush=True))
    print(f"the cloud answers at {address} after {time.monotonic() - started:.0f} s")
    sh("list-units")
    sh("config", "show")

    step("The original's sample workflow, through the real APIs")
    record = shared_record(shared)
    # A second run of the main job seeds a second set of the README's names, suffixed.
    suffix = () if not record.exists() else (f"-{time.strftime('%H%M%S')}",)
    seeding = time.monotonic()
    env = await admin_environment(link, address)
    run_workflow("seed", record, env, *suffix)
    timings = {"cloud start to ready": seeding - started,
               "seed, server ACTIVE and floating IP": time.monotonic() - seeding}
    seeded = json.loads(record.read_text())
    proof = user_story(seeded, timings)

    step("Pull the power of the machine that runs controller.service")
    def halt(name: str) -> None:
        sh("lab", "halt", name)

    moved = await fail_over_controller(registry, link, halt)
    sh("list-units")

    # The VIP moved with the role: the credentials from before the halt, unchanged.
    step(f"The same cloud at the same address {moved.address}, now served by {moved.machine}")
    run_workflow("verify", record, env)
    print(f"image {seeded['image_id']}: sha256 {seeded['image_sha256']} (bytes re-read and compared)")
    run_workflow("boot-check", record, env)

    print(f"\ncontroller.service moved from {moved.victim} to {moved.machine}; seconds after the halt:")
    for label, seconds in moved.rows():
        print(f"  {label:<28} {seconds:6.1f}")
    victim = moved.victim

    step(f"The same server, by ssh from outside, after the controller moved to {moved.machine}")
    sh("lab", "exec", "outside", "--",
       *reach.ssh_argv(Path(seeded["key_file"]), seeded["floating_ip"], f"uptime; cat {PROOF}"))
    print("\ntimings, s:")
    for label, seconds in timings.items():
        print(f"  {label:<36} {seconds:6.1f}")
    print(f"  {'total so far':<36} {time.monotonic() - started:6.1f}")

    step(f"Power {victim} back on: it rejoins as a spare controller")
    sh("lab", "up", victim)
    await rejoined(registry, victim)
    sh("list-machines")
    await compute_story(registry, link, record, seeded, proof, env)


async def compute_story(registry: Registry, link: EtcdClusterLink, record: Path, seeded: dict[str, str],
                        proof: str, env: dict[str, str]) -> None:
    """The original's compute-node fail test, where a human ran `nova evacuate`: the evacuator
    (instance-ha.service) does it."""
    key, fip, server = Path(seeded["key_file"]), seeded["floating_ip"], seeded["server_id"]
    servers: list[dict[str, str]] = nova("servers", record, env)
    victim = next(s["host"] for s in servers if s["id"] == server)
    step(f"The compute-node fail test: pull the power of {victim}, which runs the server {server}")
    print("nobody types `nova evacuate`: instance-ha.service sees the machine's lease expire, forces its "
          "nova-compute down and evacuates its instances", flush=True)

    def halt(name: str) -> None:
        sh("lab", "halt", name)

    watch = QemuWatch()  # when each guest's QEMU ended and started: the fenced timing
    watch.start()
    try:
        moved = await fail_over_compute(registry, link, record, victim, instances_on(servers, victim),
                                        {server: fip}, key, halt, watch)
    finally:
        watch.stop()
    sh("journal", "--lines", "6", "instance-ha.service")
    now = next(s for s in nova("servers", record, env) if s["id"] == server)
    step(f"The same server, ACTIVE on {now['host']}: ssh from outside at the same floating IP {fip}")
    print(f"server {server}: {now['status']} on {now['host']}")
    sh("lab", "exec", "outside", "--", *reach.ssh_argv(key, fip, f"hostname; uptime; cat {PROOF}"))
    read = reach.ssh(key, fip, f"cat {PROOF}")
    if read.returncode != 0 or read.stdout.strip() != proof:
        raise SystemExit(f"demo: {PROOF} after the evacuation reads {read.stdout.strip()!r}, not {proof!r}")
    print(f"{PROOF} is intact: it was written before the fault, on the instance's disk on the shared storage")
    print(f"\n{victim} -> {now['host']}; seconds after the halt:")
    for label, seconds in moved.rows():
        print(f"  {label:<28} {seconds:6.1f}")

    step(f"Power {victim} back on: its nova-compute starts, finds the server moved, deletes nothing")
    sh("lab", "up", victim)
    seconds = await back_in_service(registry, victim)
    print(f"{victim} is back in service {seconds:.1f} s after power-on (forced_down lifted)")
    sh("journal", "--lines", "3", "instance-ha.service")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--core", action="store_true", help="only the cluster core, with two sample units (fast)")
    args = parser.parse_args(argv)
    step("Bring up the lab: 3 controllers (with etcd), 2 network, 2 compute, 2 nova-docker machines")
    sh("lab", "up")
    sh("list-machines")
    lab = load_lab()
    assert lab is not None

    async def story() -> None:
        registry = open_registry()
        try:
            if args.core:
                await core_story(registry)
            else:
                await openstack_story(registry, Path(lab.shared_dir))
        finally:
            await registry.close()

    asyncio.run(story())
    print("\nThe lab keeps running. Try `stackfleet list-units`, `stackfleet journal -f controller.service`,"
          " `stackfleet connect controller.service`, `stackfleet lab status`;"
          " `stackfleet lab destroy` removes it but keeps the cloud's shared data, `--purge` deletes that too.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
