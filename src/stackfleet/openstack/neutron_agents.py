"""Neutron's agents on network and compute machines: which run where, their files, their specs.

Network machines run all four (L2, DHCP, L3, metadata). Compute machines run the L2 agent, which
binds their servers' ports and builds their VXLAN tunnels; with DVR also an L3 agent in `dvr` mode
(floating IPs leave from the compute machine) and the metadata agent its routers' proxies use.
"""
from __future__ import annotations

import os

from stackfleet.openstack import configs, ovs
from stackfleet.openstack.configs import Site
from stackfleet.openstack.role_context import RoleRun
from stackfleet.openstack.role_supervisor import ServiceSpec
from stackfleet.openstack.settings import NO_INTERFACE, Settings

# name -> its own file under STATE/etc/neutron (beside neutron.conf)
INI = {"neutron-openvswitch-agent": "openvswitch_agent.ini",
       "neutron-dhcp-agent": "dhcp_agent.ini", "neutron-l3-agent": "l3_agent.ini",
       "neutron-metadata-agent": "metadata_agent.ini"}


def agents(role: str, ha_mode: str) -> tuple[str, ...]:
    """The agents a machine of `role` runs (pure)."""
    if role == "network":
        return tuple(INI)
    if ha_mode == "DVR":
        return ("neutron-openvswitch-agent", "neutron-l3-agent", "neutron-metadata-agent")
    return ("neutron-openvswitch-agent",)


def render(site: Site, role: str) -> dict[str, str]:
    renderers = {
        "neutron-openvswitch-agent": lambda: configs.openvswitch_agent_ini(site, role),
        "neutron-dhcp-agent": lambda: configs.dhcp_agent_ini(site),
        "neutron-l3-agent": lambda: configs.l3_agent_ini(site, role),
        "neutron-metadata-agent": lambda: configs.metadata_agent_ini(site),
    }
    files = {"neutron/neutron.conf": configs.neutron_agent_conf(site)}
    names = agents(role, site.settings.ha_mode)
    files.update({f"neutron/{INI[name]}": renderers[name]() for name in names})
    if "neutron-dhcp-agent" in names:
        files["neutron/dnsmasq.conf"] = configs.dnsmasq_conf(site)
    return files


def agent_env(run: RoleRun) -> dict[str, str]:
    # The L3 agent starts neutron-keepalived-state-change by name, from PATH.
    return {**ovs.ovs_env(run), "PATH": f"{run.ctx.venv / 'bin'}:{os.environ.get('PATH', '')}"}


def agent_spec(run: RoleRun, name: str) -> ServiceSpec:
    argv = [run.bin(name), "--config-file", run.etc("neutron/neutron.conf"),
            "--config-file", run.etc(f"neutron/{INI[name]}")]
    return ServiceSpec(name, argv, run.log(name), agent_env(run), stop_timeout=5)


def prepare_dirs(run: RoleRun) -> None:
    for d in ("neutron/lock", "neutron/ha_confs"):
        (run.ctx.state_dir / d).mkdir(parents=True, exist_ok=True)


async def restart(run: RoleRun, names: tuple[str, ...]) -> None:
    """Starts `names`, stopping any that runs first (a moved controller: new configs)."""
    for name in names:
        if run.sup.pid(name) is not None:
            await run.sup.stop_service(name)
    for name in names:
        run.sup.start(agent_spec(run, name))


async def start_datapath(run: RoleRun, settings: Settings, role: str) -> str:
    """Open vSwitch with br-phy (and br-ex where needed); returns this machine's tunnel IP, or ""
    without a tunnel NIC (VXLAN then leaves from the management address)."""
    await ovs.start(run)
    tunnel_ip = ""
    if settings.tunnel_interface != NO_INTERFACE:
        tunnel_ip = await ovs.add_tunnel_bridge(run, settings.tunnel_interface)
    if configs.has_external_bridge(settings.ha_mode, role):
        await ovs.add_external_bridge(run, settings.external_interface)
    return tunnel_ip
