"""Open vSwitch on its userspace datapath, for the network and compute roles.

The kernel here has no openvswitch module, but ovs-vswitchd runs without it when every bridge has
datapath_type=netdev (the userspace datapath): its ports are taps and AF_PACKET sockets. Open vSwitch
runs as the role's own child with its database and sockets in this machine's state dir, recreated
on every start (the agents rebuild their bridges and flows from Neutron).

Two bridges are ours, the rest are the OVS agent's:
- br-phy holds the tunnel NIC, and the tunnel address moves onto br-phy. OVS's userspace VXLAN
  routes and ARPs only through a bridge's own port: with the address left on the NIC, not one
  packet crosses ("native tunnel routing failed"), which split L3_HA's VRRP. The kernel still sees
  the frames on the NIC, and would answer VXLAN with port-unreachable: rp_filter=1 on the NIC
  drops them (its route now goes through br-phy). See DESIGN.md, "The data plane".
- br-ex holds the external NIC: Neutron's flat `external` network (bridge_mappings external:br-ex).
"""
from __future__ import annotations

import ipaddress
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackfleet.openstack.probes import wait_until
from stackfleet.openstack.role_context import RoleRun
from stackfleet.openstack.role_supervisor import ServiceSpec
from stackfleet.openstack.settings import NO_INTERFACE
from stackfleet.runtime.files import write_json_atomic

OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
EXTERNAL_BRIDGE = "br-ex"
TUNNEL_BRIDGE = "br-phy"
# Outside the ovs/ dir, which every start recreates: where the tunnel address was found first.
TUNNEL_RECORD = "tunnel-address.json"


@dataclass(frozen=True)
class Nic:
    mac: str
    addresses: tuple[str, ...]  # IPv4 CIDRs


def parse_nic(ip_json: str) -> Nic:
    """A NIC from `ip -j addr show dev NIC` (pure)."""
    entries: list[dict[str, Any]] = json.loads(ip_json or "[]")
    if not entries:
        raise RuntimeError("no such interface")
    entry = entries[0]
    cidrs = tuple(f"{a['local']}/{a['prefixlen']}" for a in entry.get("addr_info", [])
                  if a.get("family") == "inet")
    return Nic(mac=str(entry["address"]), addresses=cidrs)


def tunnel_address(nic: Nic, recorded: str | None) -> str:
    """The tunnel CIDR: the NIC's own on the first start, afterwards the recorded one (the
    address went to br-phy, and with br-phy when the last Open vSwitch stopped)."""
    if nic.addresses:
        return nic.addresses[0]
    if recorded:
        return recorded
    raise RuntimeError("the tunnel NIC has no IPv4 address and none was recorded")


def ovs_dir(run: RoleRun) -> Path:
    return run.ctx.state_dir / "ovs"


def ovs_env(run: RoleRun) -> dict[str, str]:
    """Points every OVS tool (also those the agents and libvirt call) at our ovsdb and sockets."""
    rundir = str(ovs_dir(run))
    return {"OVS_RUNDIR": rundir, "OVS_DBDIR": rundir, "OVS_LOGDIR": rundir,
            "OVS_SYSCONFDIR": rundir}


async def command(run: RoleRun, *argv: str, env: dict[str, str] | None = None) -> None:
    name = Path(argv[0]).name
    code = await run.sup.run_once(name, list(argv), run.log(name), env)
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} failed (exit {code}); see {run.log(name)}")


async def vsctl(run: RoleRun, *args: str) -> None:
    await command(run, "ovs-vsctl", "--timeout=10", *args, env=ovs_env(run))


async def read_nic(run: RoleRun, name: str) -> Nic:
    out = run.ctx.state_dir / "run" / f"ip-{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    code = await run.sup.run_once("ip", ["ip", "-j", "addr", "show", "dev", name], out)
    if code != 0:
        raise RuntimeError(f"interface {name} not found (ip exit {code})")
    try:
        return parse_nic(out.read_text())
    except RuntimeError as exc:
        raise RuntimeError(f"interface {name}: {exc}") from None


def set_rp_filter(nic: str, value: int) -> None:
    # /proc/sys/net is per network namespace: this is the machine's own.
    Path(f"/proc/sys/net/ipv4/conf/{nic}/rp_filter").write_text(f"{value}\n")


async def start(run: RoleRun) -> None:
    """ovsdb-server and ovs-vswitchd on a fresh database."""
    ovs = ovs_dir(run)
    shutil.rmtree(ovs, ignore_errors=True)  # recreated by design, see above
    ovs.mkdir(parents=True)
    db = ovs / "conf.db"
    await command(run, "ovsdb-tool", "create", str(db), OVS_SCHEMA)
    env = ovs_env(run)
    run.sup.start(ServiceSpec("ovsdb-server", [
        "ovsdb-server", str(db), f"--remote=punix:{ovs / 'db.sock'}",
        f"--unixctl={ovs / 'ovsdb-server.ctl'}", f"--pidfile={ovs / 'ovsdb-server.pid'}"],
        run.log("ovsdb-server"), env, stop_last=True))

    async def db_up() -> bool:
        return (ovs / "db.sock").exists()
    await wait_until(db_up, "ovsdb-server", 30, run.ctx.say)
    await vsctl(run, "--no-wait", "init")
    ctl = str(ovs / "ovs-vswitchd.ctl")
    run.sup.start(ServiceSpec(
        "ovs-vswitchd", ["ovs-vswitchd", f"unix:{ovs / 'db.sock'}", f"--unixctl={ctl}",
                         f"--pidfile={ovs / 'ovs-vswitchd.pid'}"],
        run.log("ovs-vswitchd"), env, stop_last=True,
        # --cleanup removes the bridges' tap devices, which a plain SIGTERM leaves behind.
        stop_command=["ovs-appctl", "-t", ctl, "exit", "--cleanup"]))


async def add_tunnel_bridge(run: RoleRun, nic_name: str) -> str:
    """br-phy on the tunnel NIC, the tunnel address moved onto it; returns the tunnel IP."""
    nic = await read_nic(run, nic_name)
    record = run.ctx.state_dir / TUNNEL_RECORD
    recorded = json.loads(record.read_text())["cidr"] if record.exists() else None
    cidr = tunnel_address(nic, recorded)
    write_json_atomic(record, {"nic": nic_name, "cidr": cidr})
    await vsctl(run, "--may-exist", "add-br", TUNNEL_BRIDGE, "--", "set", "bridge", TUNNEL_BRIDGE,
                "datapath_type=netdev", f"other_config:hwaddr={nic.mac}",
                "--", "--may-exist", "add-port", TUNNEL_BRIDGE, nic_name)
    await command(run, "ip", "addr", "flush", "dev", nic_name)
    await command(run, "ip", "addr", "replace", cidr, "dev", TUNNEL_BRIDGE)
    await command(run, "ip", "link", "set", TUNNEL_BRIDGE, "up")
    set_rp_filter(nic_name, 1)
    return str(ipaddress.IPv4Interface(cidr).ip)


async def add_external_bridge(run: RoleRun, nic_name: str) -> None:
    """br-ex with the external NIC in it ("none": no NIC): the flat `external` network's wire."""
    port: tuple[str, ...] = ()
    if nic_name != NO_INTERFACE:
        await read_nic(run, nic_name)  # fails early, naming a missing NIC
        port = ("--", "--may-exist", "add-port", EXTERNAL_BRIDGE, nic_name)
    await vsctl(run, "--may-exist", "add-br", EXTERNAL_BRIDGE, "--", "set", "bridge",
                EXTERNAL_BRIDGE, "datapath_type=netdev", *port)
