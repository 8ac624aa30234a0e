"""What a role's coroutine works with: its machine's facts (`RoleContext`) and `RoleRun`, which
adds the supervisor, the cluster settings and the file helpers. Kept apart from roles.py, which
imports every role module, so that a role module can import this without an import circle."""
from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from stackfleet.openstack import settings as settings_mod
from stackfleet.openstack.configs import Site, site_to_dict
from stackfleet.openstack.link import ClusterLink
from stackfleet.openstack.role_supervisor import Supervisor
from stackfleet.openstack.shared_data import SharedLayout
from stackfleet.openstack.venv import default_venv, source_env
from stackfleet.runtime.files import write_json_atomic, write_text_atomic

# Rendered configs and the site file hold passwords: readable by root only.
PRIVATE = 0o600


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
        self.shared = SharedLayout(ctx.shared_dir)

    async def settings(self) -> settings_mod.Settings:
        """The cluster settings, with defaults and passwords generated and stored on first use."""
        current = await self.ctx.link.settings()
        added = settings_mod.missing_defaults(current)
        if added:
            current = await self.ctx.link.add_settings(added)
            self.ctx.say(f"stored first-use settings: {', '.join(sorted(added))}")
        return settings_mod.parse(current)

    def site(self, settings: settings_mod.Settings, controller: str, tunnel_ip: str = "") -> Site:
        return Site(settings=settings, controller=controller, address=self.ctx.address,
                    host=self.ctx.host, shared=self.shared, state=self.ctx.state_dir,
                    venv=self.ctx.venv, tunnel_ip=tunnel_ip)

    def write_configs(self, files: Mapping[str, str]) -> None:
        """Writes rendered files under STATE/etc."""
        for rel, text in files.items():
            path = self.ctx.state_dir / "etc" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, text, PRIVATE)

    def etc(self, rel: str) -> str:
        return str(self.ctx.state_dir / "etc" / rel)

    def log(self, name: str) -> Path:
        return self.ctx.state_dir / "log" / f"{name}.log"

    def bin(self, tool: str) -> str:
        return str(self.ctx.venv / "bin" / tool)

    def write_site(self, site: Site) -> Path:
        path = self.ctx.state_dir / "run" / "site.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, site_to_dict(site), PRIVATE)
        return path

    def helper_env(self) -> dict[str, str]:
        return source_env()

    async def helper(self, module: str, *args: str, log: str) -> None:
        """Runs one of our modules inside the OpenStack venv to completion; raises if it fails."""
        code = await self.sup.run_once(
            module, [self.bin("python"), "-m", f"stackfleet.openstack.{module}", *args],
            self.log(log), env=self.helper_env())
        if code != 0:
            raise RuntimeError(f"{module} {' '.join(args[1:])} failed (exit {code}); "
                               f"see {self.log(log)}")
