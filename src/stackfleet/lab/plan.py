"""The lab's address and name plan: which machines exist, their names, links and addresses.

Pure code: no I/O, so the whole layout can be checked by unit tests without root.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# (role, the tens digit of its addresses, the short tag used in host-side link names)
ROLES: tuple[tuple[str, int, str], ...] = (
    ("controller", 1, "c"),
    ("network", 2, "n"),
    ("compute", 3, "p"),
    ("nova-docker", 4, "d"),
)
ROLE_NAMES: tuple[str, ...] = tuple(role for role, _, _ in ROLES)
MAX_PER_ROLE = 9  # addresses are .N1-.N9 for role digit N
MAX_IFNAME = 15  # Linux IFNAMSIZ - 1

ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380

MACHINE_NAME = re.compile(r"^(controller|network|compute|nova-docker)-(\d\d)$")


@dataclass(frozen=True)
class Network:
    """One lab network: a bridge in the root namespace and an interface in each machine."""

    key: str  # "mgmt", "tunnel", "external"
    bridge: str
    iface: str  # the interface name inside every machine
    subnet: ipaddress.IPv4Network
    host_address: ipaddress.IPv4Address | None  # the root namespace's address, if any


NETWORKS: tuple[Network, ...] = (
    Network("external", "sf-ext", "eth1", ipaddress.IPv4Network("10.0.5.0/24"), None),
    Network("tunnel", "sf-tun", "eth2", ipaddress.IPv4Network("172.16.0.0/24"), None),
    # Like Vagrant's host-only adapter: the host's CLI reaches etcd over this one only.
    Network(
        "mgmt",
        "sf-mgmt",
        "eth3",
        ipaddress.IPv4Network("192.168.10.0/24"),
        ipaddress.IPv4Address("192.168.10.1"),
    ),
)
NETWORK_BY_KEY: dict[str, Network] = {n.key: n for n in NETWORKS}
BRIDGES: tuple[str, ...] = tuple(n.bridge for n in NETWORKS)


@dataclass(frozen=True)
class Link:
    """One veth pair: host end on the network's bridge, machine end inside the namespace."""

    network: Network
    host_end: str
    machine_end: str
    address: ipaddress.IPv4Address

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.network.subnet.prefixlen}"


@dataclass(frozen=True)
class MachinePlan:
    name: str
    role: str
    index: int  # 1-based within its role
    links: tuple[Link, ...]

    @property
    def netns(self) -> str:
        return self.name

    def ip(self, network_key: str) -> ipaddress.IPv4Address:
        return next(link.address for link in self.links if link.network.key == network_key)

    @property
    def mgmt_ip(self) -> ipaddress.IPv4Address:
        return self.ip("mgmt")


DEFAULT_TTL = 5  # the machine lease TTL of a new lab, in seconds


@dataclass(frozen=True)
class Counts:
    controllers: int = 3
    network: int = 2
    compute: int = 2
    nova_docker: int = 2

    def by_role(self) -> dict[str, int]:
        return {
            "controller": self.controllers,
            "network": self.network,
            "compute": self.compute,
            "nova-docker": self.nova_docker,
        }


class PlanError(ValueError):
    """A lab shape that cannot be built; the message says what is allowed."""


def machine_name(role: str, index: int) -> str:
    return f"{role}-{index:02d}"


def host_end_name(tag: str, index: int, network: Network) -> str:
    name = f"{network.bridge}-{tag}{index:02d}"  # e.g. sf-mgmt-c03
    assert len(name) <= MAX_IFNAME, name
    return name


def build_plan(counts: Counts) -> list[MachinePlan]:
    """Every machine of a lab with `counts`, in role order (controllers first)."""
    by_role = counts.by_role()
    if by_role["controller"] < 1:
        raise PlanError("the lab needs at least 1 controller (etcd runs on the controllers)")
    for role, count in by_role.items():
        if not 0 <= count <= MAX_PER_ROLE:
            raise PlanError(f"{role}: count must be between 0 and {MAX_PER_ROLE}, got {count}")
    machines: list[MachinePlan] = []
    for role, digit, tag in ROLES:
        for index in range(1, by_role[role] + 1):
            host_part = digit * 10 + index  # controller-03 -> .13, as in the original
            links = tuple(
                Link(
                    network=net,
                    host_end=host_end_name(tag, index, net),
                    machine_end=net.iface,
                    address=net.subnet.network_address + host_part,
                )
                for net in NETWORKS
            )
            machines.append(MachinePlan(machine_name(role, index), role, index, links))
    return machines


# The user's own machine, outside the cloud, like the laptop in the original README: on the external
# network only, with the original's gateway address. It runs no cluster process; it is where
# `stackfleet lab exec outside -- ssh ...` reaches floating IPs from. No route leaves it.
OUTSIDE_NAME = "outside"
OUTSIDE = MachinePlan(
    name=OUTSIDE_NAME, role="outside", index=1,
    links=(Link(network=NETWORK_BY_KEY["external"], host_end="sf-ext-out", machine_end="eth1",
                address=ipaddress.IPv4Address("10.0.5.1")),))


def etcd_client_urls(machines: list[MachinePlan]) -> list[str]:
    return [
        f"https://{m.mgmt_ip}:{ETCD_CLIENT_PORT}" for m in machines if m.role == "controller"
    ]


def etcd_initial_cluster(machines: list[MachinePlan]) -> str:
    return ",".join(
        f"{m.name}=https://{m.mgmt_ip}:{ETCD_PEER_PORT}" for m in machines if m.role == "controller"
    )


def overlapping_routes(
    routes: list[dict[str, object]], ours: set[str]
) -> list[tuple[ipaddress.IPv4Network, str]]:
    """Routes (from `ip -j route show table all`) that overlap a lab subnet on a device not ours.

    Returns (lab subnet, description of the route) pairs, one per subnet and device. The
    default route is not a conflict: only a more specific route means that something else
    already uses the address range.
    """
    conflicts: list[tuple[ipaddress.IPv4Network, str]] = []
    seen: set[tuple[ipaddress.IPv4Network, str]] = set()
    for route in routes:
        dst = route.get("dst")
        dev = str(route.get("dev", ""))
        if not isinstance(dst, str) or dst == "default" or dev in ours:
            continue
        try:
            network = ipaddress.IPv4Network(dst, strict=False)
        except ValueError:
            continue
        for net in NETWORKS:
            if network.overlaps(net.subnet) and (net.subnet, dev) not in seen:
                seen.add((net.subnet, dev))
                conflicts.append((net.subnet, f"{dst} dev {dev or '?'}"))
    return conflicts


def human_bytes(count: int) -> str:
    """1536 -> '1.5 KiB'; binary units, one decimal."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
