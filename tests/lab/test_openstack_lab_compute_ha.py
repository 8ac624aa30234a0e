"""Instance HA with real QEMU guests: the original's compute-node fail test, without the human who
ran `nova evacuate`. On the session's L3_HA cloud, after test_openstack_lab.py (files run in name
order; this one must come before test_openstack_lab_dvr.py, which resets the data).

The compute machine that runs the seeded server is halted: the evacuator (instance-ha.service)
brings every instance of it up ACTIVE on the other compute machine, where the user logs in at the
same floating IP and finds the file written to /data before the fault. The machine comes back:
nothing runs twice, no disk is deleted, forced_down is lifted. Then the server's machine is cut
off (links down, processes alive): its fence kills its QEMU processes before any instance starts
elsewhere, and it comes back in the same way.

A QemuWatch follows every guest's QEMU process on /proc for the whole module: when it started
and ended, by instance disk and machine. No disk may ever have two."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackfleet.lab import ops
from stackfleet.lab.nsprocs import netns_id
from stackfleet.lab.state import LabInfo
from stackfleet.openstack import reach
from stackfleet.openstack.admin import admin_environment, wait_controller_ready
from stackfleet.openstack.compute_failover import (
    ComputeFailover,
    QemuWatch,
    back_in_service,
    fail_over_compute,
    instances_on,
    nova,
    overlapping,
)

from .faults import cli
from .openstack_cloud import on_link, openstack_venv_missing
from .test_openstack_lab import _all_machines_present, _seeded

pytestmark = [pytest.mark.lab, pytest.mark.openstack]
PROOF = "/data/instance-ha-proof"
RETURN_TIMEOUT = 240.0  # the machine's agent joins, then compute.service starts (OVS, libvirtd, nova-compute)

if openstack_venv_missing():
    pytest.skip("needs the OpenStack venv (scripts/install-openstack)", allow_module_level=True)


@pytest.fixture(scope="module")
def cloud(l3ha_cloud: dict[str, object]) -> dict[str, object]:
    return l3ha_cloud


@pytest.fixture(scope="module")
def story(cloud: dict[str, object]) -> Iterator[dict[str, object]]:
    """What one test leaves to the next (the fault, its victim, the proof file), and the watch."""
    watch = QemuWatch()
    watch.start()
    yield {"watch": watch}
    watch.stop()


def _env(lab: LabInfo) -> dict[str, str]:
    address = on_link(lab, lambda link: wait_controller_ready(link, 180))
    return on_link(lab, lambda link: admin_environment(link, address))  # type: ignore[no-any-return]


def _servers(cloud: dict[str, object]) -> dict[str, dict[str, str]]:
    lab: LabInfo = cloud["lab"]  # type: ignore[assignment]
    return {s["id"]: s for s in nova("servers", cloud["record"], _env(lab))}  # type: ignore[arg-type]


def _journal(lab: LabInfo) -> str:
    """The evacuator's last steps, for a failure's report."""
    return cli(lab, "journal", "--lines", "40", "instance-ha.service").stdout


def _proof(seeded: dict[str, str]) -> str:
    done = reach.ssh(Path(seeded["key_file"]), seeded["floating_ip"], f"cat {PROOF}")
    assert done.returncode == 0, f"ssh cat {PROOF}: {done.returncode} {done.stderr}"
    return done.stdout


def _fail(cloud: dict[str, object], story: dict[str, object], fault: str) -> ComputeFailover:
    """Write the proof file in the seeded guest, then fault its compute machine: once it is
    ACTIVE elsewhere and answers ssh at its floating IP, the file reads the same."""
    lab: LabInfo = cloud["session"].ensure_up()  # type: ignore[attr-defined]
    on_link(lab, lambda link: _all_machines_present(link.registry, lab))
    seeded = _seeded(cloud)
    reach.wait_for_ssh(Path(seeded["key_file"]), seeded["floating_ip"], 120)
    servers = _servers(cloud)
    victim = servers[seeded["server_id"]]["host"]
    on_victim = instances_on(list(servers.values()), victim)
    text = f"written {time.time():.3f} before the {fault} of {victim}\n"
    wrote = reach.ssh(Path(seeded["key_file"]), seeded["floating_ip"], f"echo '{text.strip()}' > {PROOF} && sync")
    assert wrote.returncode == 0, wrote.stderr
    story.update(fault=fault, victim=victim, instances=on_victim, text=text)
    watch: QemuWatch = story["watch"]  # type: ignore[assignment]
    try:
        moved = on_link(lab, lambda link: fail_over_compute(
            link.registry, link, cloud["record"], victim, on_victim,  # type: ignore[arg-type]
            {seeded["server_id"]: seeded["floating_ip"]}, Path(seeded["key_file"]),
            lambda name: getattr(ops, fault)(Path(lab.root), name), watch))
    except BaseException:
        if fault == "partition":
            ops.heal(Path(lab.root), victim)
        print(_journal(lab))
        raise
    story["moved_at"] = moved.fault_at
    print(f"{fault} of {victim} ({len(on_victim)} instances): "
          + ", ".join(f"{label} {seconds:.1f} s" for label, seconds in moved.rows()))
    now = _servers(cloud)
    for instance in on_victim:
        assert now[instance]["status"] == "ACTIVE" and now[instance]["host"] not in (victim, None), now[instance]
    assert set(moved.hosts) == set(on_victim)
    assert _proof(seeded) == text, "the file written to /data before the fault changed"
    assert not overlapping(watch.snapshot()), overlapping(watch.snapshot())
    return moved


def _returns(cloud: dict[str, object], story: dict[str, object]) -> None:
    """The faulted machine is back: the evacuator closed its epoch, Nova shows its nova-compute
    up and not forced down, every instance that moved still runs once, where it moved, on its
    disk, and no QEMU for it started on the returned machine."""
    lab: LabInfo = cloud["lab"]  # type: ignore[assignment]
    victim: str = story["victim"]  # type: ignore[assignment]
    returned_at = time.time()
    if story["fault"] == "partition":
        ops.heal(Path(lab.root), victim)
    else:
        ops.up_machine(Path(lab.root), victim)  # `stackfleet lab up NAME`
    try:
        seconds = on_link(lab, lambda link: back_in_service(link.registry, victim, RETURN_TIMEOUT))
    except BaseException:
        print(_journal(lab))
        raise
    print(f"{victim} back in service {seconds:.1f} s after its return (forced_down lifted)")
    services = nova("compute-services", cloud["record"], _env(lab))  # type: ignore[arg-type]
    mine = [s for s in services if s["host"] == victim]
    assert mine and not any(s["forced_down"] for s in mine), services
    assert all(s["state"] == "up" for s in mine), services
    servers = _servers(cloud)
    instances: list[str] = story["instances"]  # type: ignore[assignment]
    watch: QemuWatch = story["watch"]  # type: ignore[assignment]
    runs = watch.snapshot()
    victim_ns = netns_id(victim)
    instances_dir = Path(lab.shared_dir) / "nova" / "instances"
    for instance in instances:
        assert servers[instance]["status"] == "ACTIVE" and servers[instance]["host"] != victim, servers[instance]
        disk = instances_dir / instance / "disk"
        assert disk.is_file() and disk.stat().st_size > 0, f"{disk} was deleted"
        live = [r for r in runs if r.instance == instance and r.ended is None]
        assert len(live) == 1 and live[0].netns != victim_ns, live
        assert not [r for r in runs if r.instance == instance and r.started >= returned_at], \
            "a QEMU started again for an instance that had moved away"
    assert not overlapping(runs), overlapping(runs)
    assert _proof(_seeded(cloud)) == story["text"]


# The first test of the module pays for the cloud fixture when the module runs alone.
@pytest.mark.timeout(1500)
def test_halt_of_a_compute_machine_brings_its_instances_up_on_the_other(
        cloud: dict[str, object], story: dict[str, object]) -> None:
    moved = _fail(cloud, story, "halt")
    assert moved.fenced < moved.detected, moved  # the halt killed the guests


@pytest.mark.timeout(400)
def test_the_halted_machine_returns_without_running_anything_twice(
        cloud: dict[str, object], story: dict[str, object]) -> None:
    _returns(cloud, story)


@pytest.mark.timeout(400)
def test_partition_of_a_compute_machine_kills_its_guests_before_any_starts_elsewhere(
        cloud: dict[str, object], story: dict[str, object]) -> None:
    moved = _fail(cloud, story, "partition")
    watch: QemuWatch = story["watch"]  # type: ignore[assignment]
    runs = watch.snapshot()
    instances: list[str] = story["instances"]  # type: ignore[assignment]
    before = [r for r in runs if r.instance in instances and r.alive_at(moved.fault_at)]
    after = [r for r in runs if r.instance in instances and r.started >= moved.fault_at]
    assert before and after, runs
    assert all(r.ended is not None for r in before), f"a cut-off machine's guest still runs: {before}"
    last_end = max(r.ended for r in before if r.ended is not None)
    first_start = min(r.started for r in after)
    print(f"the cut-off machine's last guest ended {last_end - moved.fault_at:.2f} s after the partition, "
          f"the first guest elsewhere started {first_start - moved.fault_at:.2f} s after it")
    assert last_end < first_start, (before, after)
    assert {r.netns for r in before} == {netns_id(story["victim"])}  # type: ignore[arg-type]


@pytest.mark.timeout(400)
def test_the_partitioned_machine_returns_without_running_anything_twice(
        cloud: dict[str, object], story: dict[str, object]) -> None:
    _returns(cloud, story)
