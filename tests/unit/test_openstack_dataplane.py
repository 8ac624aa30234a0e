"""The data plane's pure parts: libvirtd's namespace and config, br-phy's address, who runs which
agent."""
import json
from pathlib import Path

import pytest

from stackfleet.openstack import libvirtd, neutron_agents, ovs

IP_JSON = json.dumps([{"ifname": "eth2", "address": "3a:1f:00:00:00:31", "addr_info": [
    {"family": "inet6", "local": "fe80::1", "prefixlen": 64},
    {"family": "inet", "local": "172.16.0.31", "prefixlen": 24}]}])


def test_the_tunnel_address_comes_from_the_nic_then_from_the_record():
    nic = ovs.parse_nic(IP_JSON)
    assert nic == ovs.Nic("3a:1f:00:00:00:31", ("172.16.0.31/24",))
    assert ovs.tunnel_address(nic, None) == "172.16.0.31/24"
    # A restart: br-phy went with the last ovs-vswitchd, and its address with it.
    moved = ovs.Nic(nic.mac, ())
    assert ovs.tunnel_address(moved, "172.16.0.31/24") == "172.16.0.31/24"
    with pytest.raises(RuntimeError, match="no IPv4"):
        ovs.tunnel_address(moved, None)
    with pytest.raises(RuntimeError):
        ovs.parse_nic("[]")


def test_qemu_stays_in_the_units_cgroup_and_writes_its_own_logs():
    conf = libvirtd.qemu_conf()
    for line in ('stdio_handler = "file"', 'security_driver = "none"', "cgroup_controllers = [  ]",
                 "namespaces = [  ]", 'user = "root"', "dynamic_ownership = 0"):
        assert line in conf.splitlines()


def test_libvirtd_gets_private_dirs_then_becomes_the_process():
    root = Path("/state/libvirt")
    script = libvirtd.launch_script(root).splitlines()
    assert script[-1].startswith(f"exec {libvirtd.LIBVIRTD} ")
    for src, target in libvirtd.MOUNTS:
        assert f"mkdir -p {target} && mount --bind {root / src} {target}" in script
    assert libvirtd.connection_uri(root) == \
        "qemu+unix:///system?socket=/state/libvirt/run/libvirt-sock"
    assert 'auth_unix_rw = "none"' in libvirtd.libvirtd_conf(root)


def test_libvirtd_copy_of_etc_drops_the_default_network(tmp_path, monkeypatch):
    host = tmp_path / "host-etc"
    (host / "qemu/networks/autostart").mkdir(parents=True)
    (host / "qemu/networks/autostart/default.xml").write_text("<network/>")
    (host / "qemu/networks/default.xml").write_text("<network/>")
    monkeypatch.setattr(libvirtd, "HOST_ETC", host)
    root = tmp_path / "libvirt"
    libvirtd.prepare(root)
    assert not (root / "etc" / libvirtd.DEFAULT_NETWORK).exists()
    assert (root / "etc/qemu/networks/default.xml").exists()
    assert (root / "etc/qemu.conf").read_text() == libvirtd.qemu_conf()
    assert all((root / src).is_dir() for src, _ in libvirtd.MOUNTS)


@pytest.mark.parametrize("role,mode,wanted", [
    ("network", "L3_HA", 4), ("network", "DVR", 4),
    ("compute", "L3_HA", 1), ("compute", "DVR", 3)])
def test_compute_runs_the_l2_agent_and_with_dvr_the_l3_and_metadata_agents(role, mode, wanted):
    names = neutron_agents.agents(role, mode)
    assert len(names) == wanted and names[0] == "neutron-openvswitch-agent"
    assert ("neutron-l3-agent" in names) == (role == "network" or mode == "DVR")
