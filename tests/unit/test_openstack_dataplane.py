"""The data plane's pure parts: libvirtd's namespace and config, br-phy's address, who runs which
agent."""
import json
import shlex
from pathlib import Path

import pytest
from tests.unit.test_openstack_configs import ini, make_site

from stackfleet.openstack import libvirtd, neutron_agents, ovs, reach, router_state

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
    script = libvirtd.launch_script(root, "compute-02").splitlines()
    assert script[-1].startswith(f"exec {libvirtd.LIBVIRTD} ")
    # Nova names the compute node after the hypervisor's host name: one per machine.
    assert "hostname compute-02" in script
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


def test_ping_summaries_of_iputils_and_busybox_parse():
    iputils = ("5 packets transmitted, 4 received, 20% packet loss, time 4005ms\n"
               "rtt min/avg/max/mdev = 0.512/1.250/2.001/0.400 ms\n")
    assert reach.parse_ping(iputils) == reach.PingResult(5, 4, 1.25)
    busybox = ("3 packets transmitted, 3 packets received, 0% packet loss\n"
               "round-trip min/avg/max = 0.9/1.1/1.4 ms\n")
    assert reach.parse_ping(busybox) == reach.PingResult(3, 3, 1.1)
    assert reach.parse_ping("connect: Network is unreachable") == reach.PingResult(0, 0, None)


def test_ssh_goes_as_cirros_with_the_key_from_outside():
    argv = reach.outside_argv(reach.ssh_argv(Path("/s/myKey.pem"), "10.0.5.101", "true"))
    assert argv[:4] == ["ip", "netns", "exec", "outside"]
    assert argv[-3:] == ["/s/myKey.pem", "cirros@10.0.5.101", "true"]


def test_a_server_without_a_floating_ip_is_reached_through_the_one_with_it():
    argv = reach.ssh_via_argv(Path("/s/myKey.pem"), "10.0.5.101", "10.10.0.7", "true")
    assert argv[-2:] == ["cirros@10.10.0.7", "true"]
    proxy = next(a.split("=", 1)[1] for a in argv if a.startswith("ProxyCommand="))
    # The jump gets the same key and options, and forwards to the fixed IP ssh was given (%h:%p).
    words = shlex.split(proxy)
    assert words[0] == "ssh" and words[-3:] == ["-W", "%h:%p", "cirros@10.0.5.101"]
    assert "/s/myKey.pem" in words and "StrictHostKeyChecking=no" in words


def test_keepalived_states_name_the_primary(tmp_path):
    machines = {"network-01": tmp_path / "n1", "network-02": tmp_path / "n2"}
    for name, state in (("network-01", "backup"), ("network-02", "primary\n")):
        path = router_state.state_file(machines[name], "r1")
        path.parent.mkdir(parents=True)
        path.write_text(state)
    states = router_state.keepalived_states({**machines, "network-03": tmp_path / "n3"}, "r1")
    assert states == {"network-01": "backup", "network-02": "primary", "network-03": "none"}
    assert router_state.primaries(states) == ["network-02"]


def test_dnsmasq_keeps_root_where_the_dhcp_agent_runs():
    files = neutron_agents.render(make_site(), "network")
    dhcp = ini(files["neutron/dhcp_agent.ini"])
    assert dhcp["DEFAULT"]["dnsmasq_config_file"] == "/state/etc/neutron/dnsmasq.conf"
    assert files["neutron/dnsmasq.conf"] == "user=root\n"
    assert "neutron/dnsmasq.conf" not in neutron_agents.render(make_site(), "compute")
