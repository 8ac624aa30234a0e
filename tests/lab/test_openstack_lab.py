"""The original's story end to end on the lab: a real OpenStack cloud (Keystone, Glance,
Placement, Nova, Neutron on MariaDB and RabbitMQ) started from unit files, seeded through the
real APIs, with a real guest (QEMU under libvirt) that the user reaches from the lab machine
`outside` by its floating IP; then the controller's machine halted, and later cut off: every
record and byte is still there on another controller, two MariaDB servers never ran on the
shared data, and the same guest still answers ssh.

One cloud for the whole module, the session's (conftest.py's l3ha_cloud), on which
test_openstack_lab_compute_ha.py goes on (few boots: the seeded server, one more for east-west,
and the boot checks after each failover)."""
from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackfleet.failover import patiently
from stackfleet.lab import ops
from stackfleet.lab.state import LabInfo
from stackfleet.openstack import network_failover, reach, router_state
from stackfleet.openstack.admin import wait_controller_ready, workflow
from stackfleet.openstack.controller_failover import ControllerFailover, fail_over_controller, still_down
from stackfleet.openstack.venv import default_venv
from stackfleet.registry.store import Registry

# READY_TIMEOUT and UNITS as well: test_openstack_lab_dvr.py imports them from here.
from tests.openstack.browser import ARTIFACTS, Browser, chromium_missing

from .faults import cli
from .openstack_cloud import READY_TIMEOUT, UNITS, on_link, openstack_venv_missing  # noqa: F401

pytestmark = [pytest.mark.lab, pytest.mark.openstack]
FAILOVER_TIMEOUT = 180.0
# From ACTIVE: TCG boot, DHCP, the key from metadata (the guest asks for up to 300 s, guest/init),
# dropbear.
SSH_TIMEOUT = 360.0
TENANT_MTU = 1450     # VXLAN's 50 bytes off the tunnel network's 1500

if openstack_venv_missing():
    pytest.skip("needs the OpenStack venv (scripts/install-openstack)", allow_module_level=True)


class MariadbWatch(threading.Thread):
    """Polls /proc (one PID namespace for the whole lab) for mariadbd on the shared datadir."""

    def __init__(self, datadir: Path) -> None:
        super().__init__(daemon=True)
        self.needle = f"--datadir={datadir}".encode()
        self.most = 0
        self.seen: set[int] = set()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            live = []
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    if self.needle in (entry / "cmdline").read_bytes() and \
                            (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                        live.append(int(entry.name))
                except OSError:
                    continue
            self.seen.update(live)
            self.most = max(self.most, len(live))
            time.sleep(0.02)


@pytest.fixture(scope="module")
def cloud(l3ha_cloud: dict[str, object]) -> dict[str, object]:
    """The session's L3_HA cloud (conftest.py): test_openstack_lab_compute_ha.py goes on with it."""
    return l3ha_cloud


def _seeded(cloud: dict[str, object]) -> dict[str, str]:
    return json.loads(Path(cloud["record"]).read_text())  # type: ignore[arg-type]


def _guest_ssh(seeded: dict[str, str], command: str) -> str:
    done = reach.ssh(Path(seeded["key_file"]), seeded["floating_ip"], command)
    assert done.returncode == 0, f"ssh {command!r}: {done.returncode} {done.stderr}"
    return done.stdout


# The first test of the module also pays for the cloud fixture (pytest-timeout counts fixtures).
@pytest.mark.timeout(1500)
def test_the_seed_booted_a_guest_with_a_floating_ip(cloud: dict[str, object]) -> None:
    seeded = _seeded(cloud)
    assert seeded["guest_image_id"] and seeded["floating_ip"].startswith("10.0.5.")
    assert seeded["server_host"].startswith("compute-")
    assert Path(seeded["key_file"]).stat().st_mode & 0o077 == 0  # ssh refuses a readable key
    print(f"cloud up and seeded in {cloud['cold_start']:.0f} s")


@pytest.mark.timeout(450)
def test_the_user_pings_and_sshs_into_the_guest_from_outside(cloud: dict[str, object]) -> None:
    seeded = _seeded(cloud)
    seconds = reach.wait_for_ssh(Path(seeded["key_file"]), seeded["floating_ip"], SSH_TIMEOUT)
    print(f"ssh cirros@{seeded['floating_ip']} logged in {seconds:.1f} s after the seed")
    pinged = reach.ping(seeded["floating_ip"], count=5)
    assert pinged.received >= 4, pinged
    print(f"ping from outside: {pinged.received}/{pinged.sent}, avg {pinged.avg_ms} ms")
    assert _guest_ssh(seeded, "id -un").strip() == "cirros"


@pytest.mark.timeout(120)
def test_the_guest_took_its_address_and_mtu_from_dhcp(cloud: dict[str, object]) -> None:
    seeded = _seeded(cloud)
    out = _guest_ssh(seeded, "ip -4 -o addr show dev eth0; cat /sys/class/net/eth0/mtu")
    assert f" {seeded['fixed_ip']}/24 " in out, out
    assert out.split()[-1] == str(TENANT_MTU), out


@pytest.mark.timeout(120)
def test_the_key_came_from_the_metadata_service(cloud: dict[str, object]) -> None:
    seeded = _seeded(cloud)
    lab: LabInfo = cloud["lab"]  # type: ignore[assignment]
    console = Path(lab.shared_dir) / "nova" / "instances" / seeded["server_id"] / "console.log"
    assert "stackfleet-guest: key from metadata (ssh-ed25519)" in console.read_text(errors="replace")
    asked = _guest_ssh(seeded, "wget -q -O - http://169.254.169.254/openstack/latest/meta_data.json")
    assert json.loads(asked)["uuid"] == seeded["server_id"]


@pytest.mark.timeout(120)
def test_the_guest_reaches_the_router_gateway_and_outside(cloud: dict[str, object]) -> None:
    seeded = _seeded(cloud)
    for address in (seeded["router_gateway_ip"], "10.0.5.1"):
        out = _guest_ssh(seeded, f"ping -c 3 -W 2 {address}")
        assert reach.parse_ping(out).received >= 2, out


@pytest.mark.timeout(360)
def test_east_west_between_compute_machines_over_vxlan_on_the_tunnel_network(
        cloud: dict[str, object]) -> None:
    seeded = _seeded(cloud)
    lab: LabInfo = cloud["lab"]  # type: ignore[assignment]
    env: dict[str, str] = cloud["env"]  # type: ignore[assignment]
    computes = sorted(m.name for m in lab.machines if m.role == "compute")
    other = next(name for name in computes if name != seeded["server_host"])
    booted = workflow("boot", Path(cloud["record"]), env, "east-west", other)  # type: ignore[arg-type]
    assert booted.returncode == 0, booted.stdout + booted.stderr
    peer = json.loads(booted.stdout.strip().splitlines()[-1])
    try:
        assert peer["host"] == other
        deadline = time.monotonic() + SSH_TIMEOUT
        while True:  # the peer is still booting: it answers once its DHCP is done
            out = reach.ssh(Path(seeded["key_file"]), seeded["floating_ip"],
                            f"ping -c 2 -W 2 {peer['fixed_ip']}").stdout
            if reach.parse_ping(out).received or time.monotonic() > deadline:
                break
        assert reach.parse_ping(out).received, out
        # The tunnel between the two machines runs from br-phy's address on the tunnel network.
        tunnel = {m.name: m.ips["tunnel"] for m in lab.machines}
        for name in computes:
            ports = _vxlan_ports(lab, name)
            assert ports and all(p[0] == tunnel[name] for p in ports), ports
            assert tunnel[next(n for n in computes if n != name)] in {p[1] for p in ports}
    finally:
        workflow("delete-server", Path(cloud["record"]), env, peer["id"])  # type: ignore[arg-type]


def _vxlan_ports(lab: LabInfo, machine: str) -> list[tuple[str, str]]:
    """(local_ip, remote_ip) of the machine's VXLAN ports, from its own ovsdb."""
    info = next(m for m in lab.machines if m.name == machine)
    db = Path(info.state_dir) / "compute" / "ovs" / "db.sock"
    out = subprocess.run(
        ["ip", "netns", "exec", machine, "ovs-vsctl", f"--db=unix:{db}", "--format=json",
         "--columns=options", "find", "interface", "type=vxlan"],
        capture_output=True, text=True, check=True).stdout
    rows = json.loads(out)["data"]
    return [(opts["local_ip"], opts["remote_ip"]) for opts in
            (dict(row[0][1]) for row in rows)]


@pytest.mark.timeout(60)
def test_l3_ha_exactly_one_network_machine_holds_the_router(cloud: dict[str, object]) -> None:
    seeded = _seeded(cloud)
    lab: LabInfo = cloud["lab"]  # type: ignore[assignment]
    for _ in range(10):
        states = _router_states(lab, seeded["router_id"])
        assert sorted(states.values()) == ["backup", "primary"], states
        time.sleep(1)


# Before the controller tests: they bring every machine back first (ensure_up).
@pytest.mark.timeout(420)
def test_a_network_machine_halt_moves_the_router_and_the_floating_ip_answers_again(
        cloud: dict[str, object]) -> None:
    seeded = _seeded(cloud)
    lab: LabInfo = cloud["lab"]  # type: ignore[assignment]
    network = {m.name: Path(m.state_dir) for m in lab.machines if m.role == "network"}
    moved = network_failover.fail_over_network(
        network, seeded["router_id"], seeded["floating_ip"], lambda name: ops.halt(Path(lab.root), name))
    seen = moved.pings
    print(f"halted {moved.victim} (primary): {moved.new_primary} primary after {moved.took_over:.1f} s, "
          f"{seen.lost} of {seen.sent} pings lost ({seen.outage:.1f} s), last loss {seen.last_loss} s after the halt")
    assert moved.new_primary != moved.victim
    assert seen.answering, f"the floating IP does not answer after the takeover: {moved}"
    reach.wait_for_ssh(Path(seeded["key_file"]), seeded["floating_ip"], 60)
    cloud["session"].ensure_up()  # type: ignore[attr-defined]
    # The returned machine's network role starts again (a Global unit); it must not take the
    # router back while the other one holds it.
    network_failover.back_as_backup(network, seeded["router_id"], moved.victim, timeout=240)
    assert reach.ping(seeded["floating_ip"], count=5).received >= 4


def _router_states(lab: LabInfo, router_id: str) -> dict[str, str]:
    network = {m.name: Path(m.state_dir) for m in lab.machines if m.role == "network"}
    return router_state.keepalived_states(network, router_id)


def _fail_over(cloud: dict[str, object], fault: str, tmp_path: Path) -> ControllerFailover:
    # Every machine back first (an earlier test halted one): etcd needs two of three members.
    lab: LabInfo = cloud["session"].ensure_up()  # type: ignore[attr-defined]
    on_link(lab, lambda link: _all_machines_present(link.registry, lab))
    before = _user_credentials(lab, tmp_path)
    watch = MariadbWatch(Path(lab.shared_dir) / "mysql")
    watch.start()
    faulted: list[str] = []

    def inject(machine: str) -> None:
        faulted.append(machine)
        getattr(ops, fault)(Path(lab.root), machine)

    try:
        moved = on_link(lab, lambda link: fail_over_controller(link.registry, link, inject, FAILOVER_TIMEOUT))
    finally:
        if fault == "partition" and faulted:
            ops.heal(Path(lab.root), faulted[0])
        watch.done.set()
        watch.join()
    assert watch.most == 1, f"{watch.most} MariaDB servers ran on the shared datadir at once"
    assert len(watch.seen) >= 2, "the new controller started its own MariaDB"
    assert moved.machine != moved.victim
    print(f"{fault}: " + ", ".join(f"{label} {seconds:.1f} s" for label, seconds in moved.rows()))
    # The VIP moved with the role: what the user took before the fault still works, unedited.
    assert moved.address == VIP
    _credentials_still_work(before, _seeded(cloud)["server_id"])
    return moved


def _only_the_controller_answers_for_the_vip(cloud: dict[str, object]) -> None:
    """Powered on again (halt) or healed (partition), the old machine must not answer for the
    VIP: only the controller's NIC does, as ARP from a third machine sees it."""
    lab: LabInfo = cloud["session"].ensure_up()  # type: ignore[attr-defined]
    on_link(lab, lambda link: wait_controller_ready(link, FAILOVER_TIMEOUT))
    machine = str(on_link(lab, lambda link: link.controller())["machine"])
    owners = _vip_owners(lab, next(m.name for m in lab.machines if m.role == "compute"))
    assert owners == {_mac(machine, MGMT_NIC)}, f"VIP owners {owners}; the controller runs on {machine}"


VIP = "192.168.10.10"  # the vip setting's default: the lab's management network
MGMT_NIC = "eth3"


def _user_credentials(lab: LabInfo, into: Path) -> dict[str, Path]:
    """`stackfleet openstack credentials` as the user saves it: a clouds.yaml and an openrc."""
    saved = {}
    for form in ("clouds", "openrc"):
        done = cli(lab, "openstack", "credentials", "--format", form)
        assert done.returncode == 0, done.stderr
        saved[form] = into / ("clouds.yaml" if form == "clouds" else "openrc")
        saved[form].write_text(done.stdout.split("\n", 1)[1])  # without the "# clouds.yaml" title
    assert VIP in saved["openrc"].read_text()
    return saved


def _credentials_still_work(saved: dict[str, Path], server_id: str) -> None:
    client = default_venv() / "bin" / "openstack"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    runs = {
        "clouds.yaml": [str(client), "--os-cloud", "stackfleet", "server", "show", server_id, "-f", "value",
                        "-c", "status"],
        "openrc": ["bash", "-c", f". {saved['openrc']} && {client} server show {server_id} -f value -c status"],
    }
    for label, argv in runs.items():
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                              env=env | {"OS_CLIENT_CONFIG_FILE": str(saved["clouds"])})
        assert done.returncode == 0 and done.stdout.strip() == "ACTIVE", f"{label}: {done.stdout}{done.stderr}"


def _mac(machine: str, nic: str) -> str:
    link = json.loads(subprocess.run(["ip", "-j", "-n", machine, "link", "show", nic], capture_output=True,
                                     text=True, check=True).stdout)
    return str(link[0]["address"]).lower()


def _vip_owners(lab: LabInfo, asker: str) -> set[str]:
    """The MACs that answer ARP for the VIP on the management network, asked from `asker`."""
    out = subprocess.run(["ip", "netns", "exec", asker, "arping", "-c", "4", "-w", "5", "-I", MGMT_NIC, VIP],
                         capture_output=True, text=True, timeout=30).stdout
    return {mac.lower() for mac in re.findall(r"reply from \S+ \[([0-9A-Fa-f:]{17})\]", out)}


async def _all_machines_present(registry: Registry, lab: LabInfo) -> None:
    wanted = {m.machine_id for m in lab.machines}
    deadline = time.monotonic() + 60
    while not wanted <= set(await patiently(registry.machines, {})):
        assert time.monotonic() < deadline, "a machine did not rejoin"
        await asyncio.sleep(0.2)


def _everything_intact(cloud: dict[str, object], moved: ControllerFailover) -> None:
    env: dict[str, str] = cloud["env"]  # type: ignore[assignment]  # from before every fault
    verified = workflow("verify", cloud["record"], env)  # type: ignore[arg-type]
    assert verified.returncode == 0, verified.stdout + verified.stderr
    booted = workflow("boot-check", cloud["record"], env)  # type: ignore[arg-type]
    assert booted.returncode == 0, "compute must serve the new controller: " + booted.stdout + booted.stderr
    # The data plane never depended on the controller: the same guest answers ssh.
    seeded = _seeded(cloud)
    reach.wait_for_ssh(Path(seeded["key_file"]), seeded["floating_ip"], 60)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One chromium for the module: it stays open on the dashboard while the controller moves."""
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    opened = Browser(ARTIFACTS)
    yield opened
    opened.quit()
    for shot in opened.shots:
        print(f"screenshot {shot}")


def _admin(cloud: dict[str, object]) -> tuple[str, str]:
    env: dict[str, str] = cloud["env"]  # type: ignore[assignment]
    return env["OS_USERNAME"], env["OS_PASSWORD"]


@pytest.mark.timeout(300)
def test_the_dashboard_at_the_vip_lists_the_seeded_server(cloud: dict[str, object], browser: Browser) -> None:
    user, password = _admin(cloud)
    row = browser.lists_the_server(f"http://{VIP}", user, password, _seeded(cloud)["server_id"], "lab-1-at-vip")
    print(f"dashboard at http://{VIP}/: {row}")


def test_controller_halt_loses_nothing(cloud: dict[str, object], tmp_path: Path) -> None:
    _everything_intact(cloud, _fail_over(cloud, "halt", tmp_path))
    _only_the_controller_answers_for_the_vip(cloud)


@pytest.mark.timeout(300)
def test_the_same_dashboard_page_lists_the_server_again_after_the_controller_halt(
        cloud: dict[str, object], browser: Browser) -> None:
    """The page left open before the halt, at the same URL (the VIP), reloaded on the new
    controller: a login again (sessions were in the old machine's memcached), the same server."""
    user, password = _admin(cloud)
    assert browser.driver.current_url.startswith(f"http://{VIP}/project/instances"), browser.driver.current_url
    row = browser.reload_lists_the_server(user, password, _seeded(cloud)["server_id"], "lab-2-at-vip-after-halt")
    print(f"dashboard at the same URL after the halt: {row}")


def test_controller_partition_never_runs_two_databases(cloud: dict[str, object], tmp_path: Path) -> None:
    _everything_intact(cloud, _fail_over(cloud, "partition", tmp_path))
    _only_the_controller_answers_for_the_vip(cloud)
    # Two failovers in: no ghost services of the machines that the controller left (one host
    # name for its services), and every agent reconnected to the new broker by itself.
    down = still_down(cloud["record"], cloud["env"])  # type: ignore[arg-type]
    assert down == [], f"down after two controller failovers: {down}"
