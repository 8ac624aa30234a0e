"""The data-plane story again with HA_MODE=DVR: the compute machines run the L3 agent in `dvr`
mode, and the floating IP leaves from the compute machine that runs the server; the router's SNAT
is a keepalived pair on the network machines (HA SNAT), which survives the loss of one.

Runs after test_openstack_lab.py on the same lab: it stops the roles, resets the shared data and
sets HA_MODE=DVR, then seeds a cloud of its own; at the end it puts HA_MODE back."""
from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackfleet.lab import ops
from stackfleet.openstack import network_failover, reach
from stackfleet.openstack.admin import admin_environment, wait_controller_ready, workflow
from stackfleet.openstack.compute_failover import nova
from stackfleet.openstack.workflow import PUBLIC_GATEWAY

from . import test_openstack_lab as l3ha
from .faults import cli, machine_processes
from .test_openstack_lab import READY_TIMEOUT, SSH_TIMEOUT, UNITS, _seeded, on_link

pytestmark = [pytest.mark.lab, pytest.mark.openstack]
ROLE_UNITS = ("controller.service", "network.service", "compute.service")
OUTSIDE = PUBLIC_GATEWAY  # the lab machine outside: reached from a guest only through the router


def _set_ha_mode(lab, mode: str) -> None:  # type: ignore[no-untyped-def]
    cli(lab, "destroy", *ROLE_UNITS)
    deadline = time.monotonic() + 90
    while True:  # refused until the stopped controller's record expired with its lease
        reset = cli(lab, "data", "reset", "--yes", "--shared-dir", lab.shared_dir)
        if reset.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert reset.returncode == 0, reset.stdout + reset.stderr
    done = cli(lab, "config", "set", "HA_MODE", mode)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def cloud(lab_session) -> Iterator[dict[str, object]]:  # type: ignore[no-untyped-def]
    lab = lab_session.ensure_up()
    if "agent" not in lab.processes:
        pytest.skip("this lab runs no agents")
    _set_ha_mode(lab, "DVR")
    started = time.monotonic()
    result = cli(lab, "start", "--block-attempts", "120", *UNITS, timeout=300)
    assert result.returncode == 0, result.stderr
    address = on_link(lab, lambda link: wait_controller_ready(link, READY_TIMEOUT))
    env = on_link(lab, lambda link: admin_environment(link, address))
    record = Path(lab.shared_dir) / "seed-record-dvr.json"
    seeded = workflow("seed", record, env)
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    assert '"router_mode": "distributed"' in record.read_text()
    yield {"lab": lab, "session": lab_session, "record": record, "env": env,
           "cold_start": time.monotonic() - started}
    _set_ha_mode(lab, "L3_HA")


# First, so that it pays for the fixture (a data reset, a cold start and a seed).
test_the_seed_booted_a_guest_with_a_floating_ip = l3ha.test_the_seed_booted_a_guest_with_a_floating_ip
# The data-plane tests of the L3_HA module, on this module's cloud; bound here in this order.
test_the_user_pings_and_sshs_into_the_guest_from_outside = \
    l3ha.test_the_user_pings_and_sshs_into_the_guest_from_outside
test_the_guest_took_its_address_and_mtu_from_dhcp = l3ha.test_the_guest_took_its_address_and_mtu_from_dhcp
test_the_key_came_from_the_metadata_service = l3ha.test_the_key_came_from_the_metadata_service
test_the_guest_reaches_the_router_gateway_and_outside = \
    l3ha.test_the_guest_reaches_the_router_gateway_and_outside
test_east_west_between_compute_machines_over_vxlan_on_the_tunnel_network = \
    l3ha.test_east_west_between_compute_machines_over_vxlan_on_the_tunnel_network
# HA SNAT: the router's SNAT is a keepalived pair on the network machines, as L3_HA's router is.
test_ha_snat_exactly_one_network_machine_holds_the_snat = \
    l3ha.test_l3_ha_exactly_one_network_machine_holds_the_router


@pytest.mark.timeout(60)
def test_the_floating_ip_leaves_from_the_servers_compute_machine(cloud: dict[str, object]) -> None:
    seeded = _seeded(cloud)
    lab = cloud["lab"]
    assert seeded["router_mode"] == "distributed"
    namespaces = _namespaces(lab, seeded["server_host"], "compute")
    # DVR: the compute machine's own fip- namespace answers for the floating IP.
    assert f"fip-{seeded['public_network_id']}" in namespaces, namespaces


def _namespaces(lab, machine: str, role: str) -> str:  # type: ignore[no-untyped-def]
    """`ip netns list` of the role's own /run/netns on the machine (mountns.py)."""
    runner = next(pid for pid in machine_processes(lab, machine, f"role run {role}"))
    return subprocess.run(["nsenter", "-m", "-t", str(runner), "ip", "netns", "list"],
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.timeout(600)
def test_a_halt_of_the_snat_primary_moves_the_snat_and_the_floating_ip_keeps_answering(
        cloud: dict[str, object]) -> None:
    """HA SNAT: the router's SNAT is a keepalived pair on the network machines. A server without a
    floating IP reaches outside only through it; the floating IP lives on the compute machine."""
    seeded = _seeded(cloud)
    lab = cloud["lab"]
    record, env = Path(cloud["record"]), cloud["env"]  # type: ignore[arg-type]
    network = {m.name: Path(m.state_dir) for m in lab.machines if m.role == "network"}  # type: ignore[attr-defined]
    key, fip = Path(seeded["key_file"]), seeded["floating_ip"]
    peer = nova("boot", record, env, "snat-peer")  # type: ignore[arg-type]
    try:
        network_failover.wait_through_snat(key, fip, peer["fixed_ip"], OUTSIDE, SSH_TIMEOUT)
        moved = network_failover.fail_over_network(
            network, seeded["router_id"], fip, lambda name: ops.halt(Path(lab.root), name),  # type: ignore[attr-defined]
            inside=lambda: network_failover.guest_pinger(key, fip, peer["fixed_ip"], OUTSIDE))
        seen, snat = moved.pings, moved.snat
        assert snat is not None
        print(f"halted {moved.victim} (the SNAT's primary): {moved.new_primary} primary after "
              f"{moved.took_over:.1f} s; floating IP: {seen.lost} of {seen.sent} pings lost "
              f"({seen.outage:.1f} s); SNAT: {snat.lost} of {snat.sent} lost ({snat.outage:.1f} s), "
              f"last loss about {snat.last_loss or 0:.1f} s after the halt")
        assert moved.new_primary != moved.victim
        # DVR: the floating IP lives on the server's compute machine, not on a network machine.
        assert seen.answering and seen.outage < 1.0, seen
        assert snat.answering, f"the SNAT did not come back on {moved.new_primary}: {snat}"
        reach.wait_for_ssh(key, fip, 60)
        cloud["session"].ensure_up()  # type: ignore[attr-defined]
        # The returned machine must not take the SNAT back while the other one holds it.
        network_failover.back_as_backup(network, seeded["router_id"], moved.victim, timeout=240)
    finally:
        workflow("delete-server", record, env, peer["id"])  # type: ignore[arg-type]
