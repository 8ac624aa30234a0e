"""The network role: Open vSwitch on its userspace datapath, and Neutron's L2, DHCP, L3 and
metadata agents, following the controller when it moves.

The kernel here has no openvswitch module, but ovs-vswitchd runs without it when every bridge has
datapath_type=netdev (the userspace datapath): its ports are taps and AF_PACKET sockets. Open vSwitch
runs as our own child with its database and sockets in this machine's state dir, recreated on every
start (the agents rebuild their bridges and flows from Neutron). The role's router and DHCP
namespaces live in a /run/netns of its own (see mountns.py).
"""
from __future__ import annotations

import os
import shutil

from stackfleet.openstack import configs, shared_data
from stackfleet.openstack.configs import Site
from stackfleet.openstack.probes import wait_until
from stackfleet.openstack.role_context import RoleRun
from stackfleet.openstack.role_supervisor import ServiceSpec

OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
AGENTS = ("neutron-openvswitch-agent", "neutron-dhcp-agent", "neutron-l3-agent",
          "neutron-metadata-agent")
EXTERNAL_BRIDGE = "br-ex"


def render(site: Site) -> dict[str, str]:
    return {
        "neutron/neutron.conf": configs.neutron_agent_conf(site),
        "neutron/openvswitch_agent.ini": configs.openvswitch_agent_ini(site, "network"),
        "neutron/dhcp_agent.ini": configs.dhcp_agent_ini(site),
        "neutron/l3_agent.ini": configs.l3_agent_ini(site, "network"),
        "neutron/metadata_agent.ini": configs.metadata_agent_ini(site),
    }


def ovs_env(run: RoleRun) -> dict[str, str]:
    """Points every OVS tool (also those the agents call) at our own ovsdb and sockets."""
    rundir = str(run.ctx.state_dir / "ovs")
    return {"OVS_RUNDIR": rundir, "OVS_DBDIR": rundir, "OVS_LOGDIR": rundir,
            "OVS_SYSCONFDIR": rundir}


def agent_env(run: RoleRun) -> dict[str, str]:
    # The L3 agent starts neutron-keepalived-state-change by name, from PATH.
    return {**ovs_env(run), "PATH": f"{run.ctx.venv / 'bin'}:{os.environ.get('PATH', '')}"}


def agent_spec(run: RoleRun, name: str) -> ServiceSpec:
    own = {"neutron-openvswitch-agent": "openvswitch_agent.ini",
           "neutron-dhcp-agent": "dhcp_agent.ini", "neutron-l3-agent": "l3_agent.ini",
           "neutron-metadata-agent": "metadata_agent.ini"}[name]
    argv = [run.bin(name), "--config-file", run.etc("neutron/neutron.conf"),
            "--config-file", run.etc(f"neutron/{own}")]
    return ServiceSpec(name, argv, run.log(name), agent_env(run), stop_timeout=5)


async def vsctl(run: RoleRun, *args: str) -> None:
    code = await run.sup.run_once("ovs-vsctl", ["ovs-vsctl", "--timeout=10", *args],
                                  run.log("ovs-vsctl"), ovs_env(run))
    if code != 0:
        raise RuntimeError(f"ovs-vsctl {' '.join(args)} failed; see {run.log('ovs-vsctl')}")


async def start_ovs(run: RoleRun) -> None:
    ovs = run.ctx.state_dir / "ovs"
    shutil.rmtree(ovs, ignore_errors=True)  # recreated by design, see above
    ovs.mkdir(parents=True)
    db = ovs / "conf.db"
    code = await run.sup.run_once("ovsdb-tool", ["ovsdb-tool", "create", str(db), OVS_SCHEMA],
                                  run.log("ovsdb-tool"))
    if code != 0:
        raise RuntimeError(f"ovsdb-tool create failed; see {run.log('ovsdb-tool')}")
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
    await vsctl(run, "--may-exist", "add-br", EXTERNAL_BRIDGE, "--", "set", "bridge",
                EXTERNAL_BRIDGE, "datapath_type=netdev")


async def serve(run: RoleRun) -> None:
    say = run.ctx.say
    for tool in ("ovsdb-server", "ovs-vswitchd", "dnsmasq", "keepalived", "haproxy",
                 "iptables-save"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: run scripts/install-openstack")
    await start_ovs(run)
    say("network: Open vSwitch runs on the userspace datapath; waiting for the controller")
    async for controller in run.ctx.link.controller_address_changes():
        settings = await run.settings()
        shared_data.check(run.shared, shared_data.Marker(settings.ha_mode, settings.release))
        site = run.site(settings, controller)
        for d in ("neutron/lock", "neutron/ha_confs"):
            (run.ctx.state_dir / d).mkdir(parents=True, exist_ok=True)
        run.write_configs(render(site))
        restarting = [name for name in AGENTS if run.sup.pid(name) is not None]
        if restarting:
            say(f"network: controller moved to {controller}; restarting the agents")
        for name in restarting:
            await run.sup.stop_service(name)
        say(f"network: controller at {controller}; starting {', '.join(AGENTS)} "
            f"(l3 agent_mode {configs.l3_agent_mode(settings.ha_mode, 'network')})")
        for name in AGENTS:
            run.sup.start(agent_spec(run, name))
