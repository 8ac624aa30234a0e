"""The network role: Open vSwitch on its userspace datapath (ovs.py), and Neutron's L2, DHCP, L3
and metadata agents (neutron_agents.py), against the controller's address (its VIP: a failover
restarts nothing here; a changed address re-renders and restarts the agents).

The role's router and DHCP namespaces live in a /run/netns of its own (see mountns.py).
"""
from __future__ import annotations

import shutil

from stackfleet.openstack import configs, neutron_agents, shared_data
from stackfleet.openstack.role_context import RoleRun

ROLE = "network"


async def serve(run: RoleRun) -> None:
    say = run.ctx.say
    for tool in ("ovsdb-server", "ovs-vswitchd", "dnsmasq", "keepalived", "haproxy",
                 "iptables-save", "ethtool"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: run scripts/install-openstack")
    settings = await run.settings()
    tunnel_ip = await neutron_agents.start_datapath(run, settings, ROLE)
    names = neutron_agents.agents(ROLE, settings.ha_mode)
    say(f"network: Open vSwitch runs on the userspace datapath, VXLAN from {tunnel_ip} via "
        "br-phy; waiting for the controller")
    async for controller in run.ctx.link.controller_address_changes():
        settings = await run.settings()
        shared_data.check(run.shared, shared_data.Marker(settings.ha_mode, settings.release))
        site = run.site(settings, controller, tunnel_ip)
        neutron_agents.prepare_dirs(run)
        run.write_configs(neutron_agents.render(site, ROLE))
        say(f"network: controller at {controller}; (re)starting {', '.join(names)} "
            f"(l3 agent_mode {configs.l3_agent_mode(settings.ha_mode, ROLE)})")
        await neutron_agents.restart(run, names)
