"""The lab's address and name plan (pure)."""

from __future__ import annotations

import ipaddress

import pytest

from stackfleet.lab.plan import (
    MACHINE_NAME,
    MAX_IFNAME,
    NETWORKS,
    Counts,
    PlanError,
    build_plan,
    etcd_client_urls,
    etcd_initial_cluster,
    human_bytes,
    overlapping_routes,
)


def test_default_lab_has_the_original_machines() -> None:
    names = [m.name for m in build_plan(Counts())]
    assert names == [
        "controller-01", "controller-02", "controller-03",
        "network-01", "network-02",
        "compute-01", "compute-02",
        "nova-docker-01", "nova-docker-02",
    ]


def test_addresses_follow_the_original_layout() -> None:
    machines = {m.name: m for m in build_plan(Counts())}
    assert str(machines["controller-03"].mgmt_ip) == "192.168.10.13"
    assert str(machines["network-02"].ip("tunnel")) == "172.16.0.22"
    assert str(machines["compute-01"].ip("external")) == "10.0.5.31"
    assert str(machines["nova-docker-02"].mgmt_ip) == "192.168.10.42"


def test_interfaces_match_the_original_devices() -> None:
    ifaces = {n.key: n.iface for n in NETWORKS}
    assert ifaces == {"external": "eth1", "tunnel": "eth2", "mgmt": "eth3"}


def test_only_the_management_bridge_has_a_host_address() -> None:
    with_address = [n for n in NETWORKS if n.host_address is not None]
    assert [(n.key, str(n.host_address)) for n in with_address] == [("mgmt", "192.168.10.1")]


@pytest.mark.parametrize("counts", [Counts(), Counts(9, 9, 9, 9), Counts(1, 0, 0, 0)])
def test_every_name_and_address_is_unique_valid_and_in_its_subnet(counts: Counts) -> None:
    machines = build_plan(counts)
    links = [link for m in machines for link in m.links]
    host_ends = [link.host_end for link in links]
    assert len(set(host_ends)) == len(host_ends)
    assert all(len(name) <= MAX_IFNAME for name in host_ends)
    assert all(MACHINE_NAME.match(m.name) for m in machines)
    for net in NETWORKS:
        addresses = [link.address for link in links if link.network == net]
        assert len(set(addresses)) == len(addresses) == len(machines)
        assert all(a in net.subnet for a in addresses)
        assert net.host_address not in addresses
    assert sum(counts.by_role().values()) == len(machines)


@pytest.mark.parametrize("counts", [Counts(0, 1, 1, 1), Counts(10, 0, 0, 0), Counts(3, -1, 0, 0)])
def test_impossible_shapes_are_refused(counts: Counts) -> None:
    with pytest.raises(PlanError):
        build_plan(counts)


def test_etcd_urls_cover_the_controllers_only() -> None:
    machines = build_plan(Counts(controllers=2))
    assert etcd_client_urls(machines) == ["https://192.168.10.11:2379", "https://192.168.10.12:2379"]
    assert etcd_initial_cluster(machines) == (
        "controller-01=https://192.168.10.11:2380,controller-02=https://192.168.10.12:2380"
    )


def test_a_route_into_a_lab_subnet_on_a_foreign_device_conflicts() -> None:
    routes: list[dict[str, object]] = [
        {"dst": "default", "dev": "eth0"},
        {"dst": "192.0.2.0/24", "dev": "eth0"},
        {"dst": "192.168.0.0/16", "dev": "wg0"},
        {"dst": "172.16.0.5", "dev": "lo", "type": "local"},
        {"dst": "172.16.0.255", "dev": "lo", "type": "broadcast"},  # same device: reported once
    ]
    conflicts = overlapping_routes(routes, ours=set())
    assert [(str(s), r) for s, r in conflicts] == [
        ("192.168.10.0/24", "192.168.0.0/16 dev wg0"),
        ("172.16.0.0/24", "172.16.0.5 dev lo"),
    ]


def test_routes_on_our_own_bridges_are_not_conflicts() -> None:
    routes: list[dict[str, object]] = [{"dst": "192.168.10.0/24", "dev": "sf-mgmt"}]
    assert overlapping_routes(routes, ours={"sf-mgmt"}) == []
    assert overlapping_routes(routes, ours=set()) == [
        (ipaddress.IPv4Network("192.168.10.0/24"), "192.168.10.0/24 dev sf-mgmt")
    ]


@pytest.mark.parametrize(
    "count,text",
    [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (27 * 1024**2, "27.0 MiB"),
     (3 * 1024**4, "3072.0 GiB")],
)
def test_human_bytes(count: int, text: str) -> None:
    assert human_bytes(count) == text
