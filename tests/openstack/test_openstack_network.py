"""The network role with real Neutron agents on Open vSwitch's userspace datapath (127.0.0.1)."""
from __future__ import annotations

import json
import subprocess
import time

import pytest

pytestmark = pytest.mark.openstack


def _host_links() -> set[str]:
    out = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    return {line.split()[0].split("@")[0] for line in out.splitlines() if line.strip()}


def _report(cloud) -> dict:
    return json.loads(cloud.workflow("network-report", cloud.root / "record.json"))


def test_agents_serve_the_ha_router_and_dhcp_then_leave_nothing_behind(cloud):
    host_namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True,
                                     text=True).stdout
    links_before = _host_links()
    cloud.start("controller", "ctl1")
    cloud.wait_ready()
    cloud.start("network", "net1")
    cloud.start("compute", "cmp1")
    started = time.monotonic()
    agents = cloud.wait_agents("net1")
    assert [a["agent_mode"] for a in agents if a["type"] == "L3 agent"] == ["legacy"]
    cloud.measured["network role start to 4 agents alive, s"] = time.monotonic() - started
    cloud.workflow("seed", cloud.root / "record.json")
    record = json.loads((cloud.root / "record.json").read_text())

    deadline = time.monotonic() + 120
    while True:
        report = _report(cloud)
        active = [h for h in report["router_hosts"] if h["ha_state"] == "active"]
        dhcp_up = [p for p in report["dhcp_ports"] if p["status"] == "ACTIVE"]
        if active and dhcp_up or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert active == [{"host": "net1", "ha_state": "active"}], report
    # Bound for real by the openvswitch driver to the agent's host, not by the fallback.
    assert dhcp_up and all(p["host"] == "net1" and p["vif_type"] == "ovs" for p in dhcp_up)

    inside = cloud.role_namespaces("network")
    assert f"qrouter-{record['router_id']}" in inside
    assert f"qdhcp-{record['private_network_id']}" in inside
    # The role's namespaces are its own: the host's list did not change.
    assert subprocess.run(["ip", "netns", "list"], capture_output=True,
                          text=True).stdout == host_namespaces

    cloud.measured["network PSS, MiB"] = cloud.pss_mib("network")
    code, survivors = cloud.stop_role("network")
    assert code == 0 and survivors == []
    # Bridges (ovs-vswitchd exit --cleanup) and veth ends go too; the kernel tears down the
    # role's namespaces, and the veth pairs in them, asynchronously once their last process died.
    deadline = time.monotonic() + 30
    while _host_links() - links_before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _host_links() - links_before == set()
    cloud.stop_all()
