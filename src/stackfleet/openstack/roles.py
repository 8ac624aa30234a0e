"""`run_role`: the entry point a unit's ExecStart reaches (`stackfleet role run ROLE`).

The runner itself needs only the standard library and a ClusterLink, so it runs in the cluster
core's venv; every OpenStack process it starts comes from the OpenStack venv.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable, Mapping

from stackfleet.openstack import layout, settings as settings_mod
from stackfleet.openstack.configs import Site, site_to_dict
from stackfleet.openstack.link import ClusterLink
from stackfleet.openstack.mountns import private_netns_dir
from stackfleet.openstack.supervisor import Supervisor
from stackfleet.runtime.procfs import become_subreaper

ROLES = ("controller", "compute", "network")
REPO_ROOT = Path(__file__).resolve().parents[3]


def default_venv() -> Path:
    return Path(os.environ.get("STACKFLEET_OPENSTACK_VENV", REPO_ROOT / ".venv-openstack"))


def _log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


@dataclass
class RoleContext:
    address: str                  # this machine's management address
    shared_dir: Path              # the shared data (NFS or the lab's shared dir)
    state_dir: Path               # this machine's local state for the role
    link: ClusterLink
    host: str = field(default_factory=socket.gethostname)
    venv: Path = field(default_factory=default_venv)
    say: Callable[[str], None] = _log


class RoleRun:
    """What the role coroutines share: the context, the supervisor and file helpers."""

    def __init__(self, ctx: RoleContext, sup: Supervisor) -> None:
        self.ctx = ctx
        self.sup = sup
        self.shared = layout.SharedLayout(ctx.shared_dir)

    async def settings(self) -> settings_mod.Settings:
        """The cluster settings, with defaults and passwords generated and stored on first use."""
        current = await self.ctx.link.settings()
        added = settings_mod.missing_defaults(current)
        if added:
            current = await self.ctx.link.add_settings(added)
            self.ctx.say(f"stored first-use settings: {', '.join(sorted(added))}")
        return settings_mod.parse(current)

    def site(self, settings: settings_mod.Settings, controller: str) -> Site:
        return Site(settings=settings, controller=controller, address=self.ctx.address,
                    host=self.ctx.host, shared=self.shared, state=self.ctx.state_dir,
                    venv=self.ctx.venv)

    def write_configs(self, files: Mapping[str, str]) -> None:
        """Writes rendered files under STATE/etc, readable by root only (they hold passwords)."""
        for rel, text in files.items():
            path = self.ctx.state_dir / "etc" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)

    def etc(self, rel: str) -> str:
        return str(self.ctx.state_dir / "etc" / rel)

    def log(self, name: str) -> Path:
        return self.ctx.state_dir / "log" / f"{name}.log"

    def bin(self, tool: str) -> str:
        return str(self.ctx.venv / "bin" / tool)

    def write_site(self, site: Site) -> Path:
        path = self.ctx.state_dir / "run" / "site.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(site_to_dict(site), f)
        return path

    def helper_env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(REPO_ROOT / "src")}

    async def helper(self, module: str, *args: str, log: str) -> None:
        """Runs one of our modules inside the OpenStack venv to completion; raises if it fails."""
        code = await self.sup.run_once(
            module, [self.bin("python"), "-m", f"stackfleet.openstack.{module}", *args],
            self.log(log), env=self.helper_env())
        if code != 0:
            raise RuntimeError(f"{module} {' '.join(args[1:])} failed (exit {code}); "
                               f"see {self.log(log)}")


async def _serve(role: str, ctx: RoleContext) -> int:
    from stackfleet.openstack import compute, controller, network

    mains: dict[str, Callable[[RoleRun], Awaitable[None]]] = {
        "controller": controller.serve, "compute": compute.serve, "network": network.serve}
    sup = Supervisor(ctx.say)
    run = RoleRun(ctx, sup)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    main = loop.create_task(mains[role](run))
    stopper = loop.create_task(stop.wait())
    code = 0
    try:
        done, _ = await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if main in done and main.exception() is not None:
            raise main.exception()
        ctx.say(f"{role}: stopping every service")
    except layout.DataMismatch as exc:
        ctx.say(str(exc))
        code = 3
    except Exception as exc:  # the role failed to come up: say why, stop, let the unit restart us
        ctx.say(f"{role} failed: {exc}")
        code = 1
    finally:
        main.cancel()
        stopper.cancel()
        await sup.stop_all()
    ctx.say(f"{role}: stopped")
    return code


def run_role(role: str, ctx: RoleContext) -> int:
    """Runs a role until SIGTERM/SIGINT; returns the exit code (3: the data guard refused)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    ctx.state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(ctx.state_dir, 0o700)
    become_subreaper()
    if role == "network":
        try:
            private_netns_dir()
        except OSError as exc:
            ctx.say(f"network: WARNING: no private /run/netns ({exc}); router and DHCP namespace "
                    "names are shared with every other network role on this host")
    return asyncio.run(_serve(role, ctx))
