"""The lab's links, through iproute2: bridges, namespaces, veth pairs, addresses.

Deliberately absent: default routes in the namespaces, ip_forward, NAT. The lab can reach only
the addresses it creates.
"""

from __future__ import annotations

import json
import subprocess
import time

from stackfleet.lab.plan import BRIDGES, NETWORKS, MachinePlan


class IpError(RuntimeError):
    """An `ip` command failed; the message holds the command and its stderr."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise IpError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def host_routes() -> list[dict[str, object]]:
    routes: list[dict[str, object]] = json.loads(
        ip("-j", "-4", "route", "show", "table", "all").stdout or "[]"
    )
    return routes


def link_exists(name: str, netns: str | None = None) -> bool:
    prefix = ("-n", netns) if netns else ()
    return ip(*prefix, "link", "show", "dev", name, check=False).returncode == 0


def netns_list() -> list[str]:
    out = ip("-j", "netns", "list").stdout.strip()
    return [entry["name"] for entry in json.loads(out)] if out else []


def create_bridges() -> None:
    for net in NETWORKS:
        if not link_exists(net.bridge):
            ip("link", "add", net.bridge, "type", "bridge")
        ip("link", "set", net.bridge, "up")
        if net.host_address is not None:
            ip("addr", "replace", f"{net.host_address}/{net.subnet.prefixlen}", "dev", net.bridge)


def create_machine(machine: MachinePlan) -> None:
    """The machine's namespace and links, with addresses; leaves existing pieces as they are."""
    if machine.netns not in netns_list():
        ip("netns", "add", machine.netns)
    ip("-n", machine.netns, "link", "set", "lo", "up")
    for link in machine.links:
        if not link_exists(link.host_end):
            ip("link", "add", link.host_end, "type", "veth",
               "peer", "name", link.machine_end, "netns", machine.netns)
            # Only on a new link: a machine's roles may have moved the address since (the tunnel
            # address onto br-phy), and a second copy on the NIC cuts the VXLAN tunnels.
            ip("-n", machine.netns, "addr", "replace", link.cidr, "dev", link.machine_end)
        ip("link", "set", link.host_end, "master", link.network.bridge)
    set_links(machine, up=True)


def disable_tx_checksum(machine: MachinePlan) -> None:
    """The cloud's machines forward with Open vSwitch's userspace datapath, which does not
    complete partial checksums: a machine that talks TCP to them sends full ones (DESIGN.md)."""
    for link in machine.links:
        subprocess.run(["ip", "netns", "exec", machine.netns, "ethtool", "-K", link.machine_end,
                        "tx", "off"], capture_output=True, check=False)


def set_links(machine: MachinePlan, up: bool) -> None:
    """Both ends of every link of the machine up or down: the cable in or out."""
    state = "up" if up else "down"
    for link in machine.links:
        ip("link", "set", link.host_end, state)
        ip("-n", machine.netns, "link", "set", link.machine_end, state)


def forget_runtime_addresses(machine: MachinePlan) -> list[str]:
    """What a power cut does to the addresses that the machine's software added to its NICs (a
    VIP): they are gone when it boots again. The planned ones stay. Returns those deleted."""
    deleted = []
    for link in machine.links:
        out = ip("-j", "-n", machine.netns, "-4", "address", "show", "dev", link.machine_end).stdout
        for entry in json.loads(out or "[]"):
            for info in entry.get("addr_info", []):
                cidr = f"{info['local']}/{info['prefixlen']}"
                if cidr != link.cidr:
                    ip("-n", machine.netns, "address", "del", cidr, "dev", link.machine_end)
                    deleted.append(cidr)
    return deleted


def links_up(machine: MachinePlan) -> bool:
    """True when every machine-side link is administratively up."""
    out = ip("-j", "-n", machine.netns, "link", "show").stdout
    flags = {entry["ifname"]: entry.get("flags", []) for entry in json.loads(out or "[]")}
    return all("UP" in flags.get(link.machine_end, []) for link in machine.links)


def delete_machine(machine: MachinePlan, timeout: float = 5.0) -> None:
    """Deleting the namespace destroys its veth ends, and with them the host ends, but
    asynchronously: the kernel tears a namespace down in the background."""
    if machine.netns in netns_list():
        ip("netns", "del", machine.netns)
    deadline = time.monotonic() + timeout
    for link in machine.links:
        while link_exists(link.host_end):
            ip("link", "del", link.host_end, check=False)  # may race with the kernel's own
            if time.monotonic() > deadline:
                raise IpError(f"could not delete {link.host_end}")
            time.sleep(0.02)


def delete_bridges() -> None:
    """Deleting a bridge removes the host address on it too."""
    for bridge in BRIDGES:
        if link_exists(bridge):
            ip("link", "del", bridge)
