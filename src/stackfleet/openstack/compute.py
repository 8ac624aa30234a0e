"""The compute role: nova-compute against the current controller, following it when it moves.

What the original's hostsctl.sh did by rewriting /etc/hosts, this does by re-rendering nova-compute's
config with the new controller address and restarting nova-compute.
The virt driver is the fake one here (no hypervisor on these machines); `STACKFLEET_VIRT_DRIVER=libvirt`
selects libvirt on real hosts that have libvirtd and KVM.
"""
from __future__ import annotations

import os

from stackfleet.openstack import configs, shared_data
from stackfleet.openstack.role_context import RoleRun
from stackfleet.openstack.role_supervisor import ServiceSpec


def virt_driver() -> str:
    return os.environ.get("STACKFLEET_VIRT_DRIVER", "fake")


async def serve(run: RoleRun) -> None:
    say = run.ctx.say
    say("compute: waiting for the controller's address")
    async for controller in run.ctx.link.controller_address_changes():
        settings = await run.settings()
        shared_data.check(run.shared, shared_data.Marker(settings.ha_mode, settings.release))
        site = run.site(settings, controller)
        (run.ctx.state_dir / "nova").mkdir(parents=True, exist_ok=True)
        run.write_configs({"nova/nova-compute.conf": configs.nova_compute_conf(site, virt_driver())})
        if run.sup.pid("nova-compute") is not None:
            say(f"compute: controller moved to {controller}; restarting nova-compute")
            await run.sup.stop_service("nova-compute")
        else:
            say(f"compute: controller at {controller}; starting nova-compute")
        run.sup.start(ServiceSpec(
            "nova-compute",
            [run.bin("nova-compute"), "--config-file", run.etc("nova/nova-compute.conf")],
            run.log("nova-compute")))
