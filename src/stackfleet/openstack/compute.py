"""The compute role: a hypervisor, Neutron's agents for its guests, and nova-compute against the
controller's address.

That address is the controller's VIP (vip.py), which moves with the role: nothing here restarts on a
controller failover; nova-compute and the agents reconnect to the new broker by themselves. What the
original's hostsctl.sh did by rewriting /etc/hosts, this does only when the address itself changes
(a new `vip` setting, or `vip none` and a moved controller): it re-renders the configs and restarts
nova-compute and the agents. libvirtd and Open vSwitch keep running, and with them the guests.

The virt driver is libvirt (libvirtd.py, QEMU with the cluster's `virt_type`: qemu in the lab,
kvm on real hosts). `STACKFLEET_VIRT_DRIVER=fake` selects Nova's fake driver instead, for fast
tests of the control plane only (tests/openstack's stand-alone cloud on one host): servers go
ACTIVE with no guest, and this role then runs no data plane (no Open vSwitch, no agents). Their
ports bind only where an OVS agent runs under the same host name.
"""
from __future__ import annotations

import shutil

from stackfleet.openstack import configs, libvirtd, neutron_agents, ovs, shared_data
from stackfleet.openstack.role_context import RoleRun
from stackfleet.openstack.role_supervisor import ServiceSpec

ROLE = "compute"
TOOLS = ("ovsdb-server", "ovs-vswitchd", "ethtool", libvirtd.LIBVIRTD, "qemu-system-x86_64",
         "qemu-img", "unshare")


async def start_hypervisor(run: RoleRun) -> None:
    root = libvirtd.state_root(run.ctx.state_dir)
    libvirtd.prepare(root)
    run.sup.start(libvirtd.spec(root, run.ctx.host, run.log("libvirtd"), ovs.ovs_env(run)))


async def serve(run: RoleRun) -> None:
    say = run.ctx.say
    driver = configs.virt_driver()
    for tool in TOOLS if driver != "fake" else ():
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: run scripts/install-openstack")
    settings = await run.settings()
    fake = driver == "fake"
    tunnel_ip = "" if fake else await neutron_agents.start_datapath(run, settings, ROLE)
    if not fake:
        await start_hypervisor(run)
    names = () if fake else neutron_agents.agents(ROLE, settings.ha_mode)
    say(f"compute: {driver} driver (virt_type {settings.virt_type}), VXLAN from {tunnel_ip}; "
        "waiting for the controller's address")
    async for controller in run.ctx.link.controller_address_changes():
        settings = await run.settings()
        shared_data.check(run.shared, shared_data.Marker(settings.ha_mode, settings.release))
        site = run.site(settings, controller, tunnel_ip)
        (run.ctx.state_dir / "nova").mkdir(parents=True, exist_ok=True)
        neutron_agents.prepare_dirs(run)
        run.write_configs({"nova/nova-compute.conf": configs.nova_compute_conf(site, driver),
                           **({} if fake else neutron_agents.render(site, ROLE))})
        if run.sup.pid("nova-compute") is not None:
            say(f"compute: controller moved to {controller}; restarting nova-compute")
            await run.sup.stop_service("nova-compute")
        else:
            say(f"compute: controller at {controller}; starting nova-compute "
                f"{'and ' + ', '.join(names) if names else '(no data plane)'}")
        await neutron_agents.restart(run, names)
        run.sup.start(ServiceSpec(
            "nova-compute",
            [run.bin("nova-compute"), "--config-file", run.etc("nova/nova-compute.conf")],
            run.log("nova-compute"), ovs.ovs_env(run)))
