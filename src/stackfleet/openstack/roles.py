"""`run_role`: the entry point a unit's ExecStart reaches (`stackfleet role run ROLE`), and the
table of roles.

The runner itself needs only the standard library and a ClusterLink, so it runs in the cluster
core's venv; every OpenStack process it starts comes from the OpenStack venv.
A new role is one `Role` entry here, its module (an async `serve(RoleRun)`) and its unit file in
units/.
"""
from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from stackfleet.openstack import compute, controller, instance_ha, network
from stackfleet.openstack.mountns import private_netns_dir
from stackfleet.openstack.role_context import RoleContext, RoleRun
from stackfleet.openstack.role_supervisor import Supervisor
from stackfleet.openstack.shared_data import DataMismatch
from stackfleet.runtime.procfs import become_subreaper


@dataclass(frozen=True)
class Role:
    serve: Callable[[RoleRun], Coroutine[Any, Any, None]]  # runs the role's services until cancelled
    # Neutron's agents name their namespaces after routers and networks: see mountns.py.
    private_netns: bool = False


OPENSTACK_ROLES: dict[str, Role] = {
    "controller": Role(controller.serve),
    # With DVR, the compute machine's L3 agent makes qrouter- and fip- namespaces.
    "compute": Role(compute.serve, private_netns=True),
    "network": Role(network.serve, private_netns=True),
    "instance-ha": Role(instance_ha.serve),
}


async def _serve(name: str, role: Role, ctx: RoleContext) -> int:
    sup = Supervisor(ctx.say)
    run = RoleRun(ctx, sup)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    main = loop.create_task(role.serve(run))
    stopper = loop.create_task(stop.wait())
    code = 0
    try:
        done, _ = await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)
        failure = main.exception() if main in done else None
        if failure is not None:
            raise failure
        ctx.say(f"{name}: stopping every service")
    except DataMismatch as exc:
        ctx.say(str(exc))
        code = 3
    except Exception as exc:  # the role failed to come up: say why, stop, let the unit restart us
        ctx.say(f"{name} failed: {exc}")
        code = 1
    finally:
        main.cancel()
        stopper.cancel()
        await sup.stop_all()
    ctx.say(f"{name}: stopped")
    return code


def run_role(name: str, ctx: RoleContext) -> int:
    """Runs a role until SIGTERM/SIGINT; returns the exit code (3: the data guard refused)."""
    role = OPENSTACK_ROLES.get(name)
    if role is None:
        raise ValueError(f"unknown role {name!r}; roles: {', '.join(OPENSTACK_ROLES)}")
    ctx.state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(ctx.state_dir, 0o700)
    become_subreaper()
    if role.private_netns:
        try:
            private_netns_dir()
        except OSError as exc:
            ctx.say(f"{name}: WARNING: no private /run/netns ({exc}); router and DHCP namespace "
                    f"names are shared with every other {name} role on this host")
    return asyncio.run(_serve(name, role, ctx))
