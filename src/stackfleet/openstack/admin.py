"""The admin's side of the cloud on the cluster: credentials from the cluster's settings,
the sample workflow, and watching the APIs answer. Shared by the main job, the lab's
end-to-end tests and bench/failover.py --openstack."""
from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from ..failover import patiently
from . import services
from . import settings as settings_mod
from .configs import admin_credentials
from .link import ClusterLink
from .probes import http_answers
from .venv import default_venv, source_env


async def controller_record(link: ClusterLink) -> dict[str, object]:
    return await link.controller()


async def wait_controller_ready(link: ClusterLink, timeout: float, not_on: str | None = None,
                                progress: Callable[[str], None] | None = None) -> str:
    """The controller's address once it reports every service ready (on another machine than
    not_on)."""
    deadline = time.monotonic() + timeout
    said = ""
    while time.monotonic() < deadline:
        record: dict[str, object] = await patiently(lambda: controller_record(link), {})
        address = str(record.get("address", ""))
        machine = str(record.get("machine", ""))
        ready = record.get("ready") or {}
        assert isinstance(ready, dict)
        if address and machine != not_on and ready and all(ready.values()):
            return address
        states = ", ".join(f"{k} {'up' if v else 'starting'}" for k, v in sorted(ready.items()))
        news = f"{address or 'no controller yet'}{f' on {machine}' if machine else ''}: " + (states or "starting")
        if progress and news != said:
            progress(news)
            said = news
        await asyncio.sleep(1)
    raise TimeoutError(f"the controller did not report ready within {timeout:.0f} s")


async def admin_environment(link: ClusterLink, address: str) -> dict[str, str]:
    """OS_* variables for the admin, from the same code as `openstack credentials`."""
    return admin_credentials(settings_mod.parse(await link.settings()), address)


def workflow(command: str, record: Path, admin_env: dict[str, str], *extra: str,
             timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the original's sample workflow (seed, verify, boot-check...) in the OpenStack venv."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")} | admin_env
    env.update(source_env())
    python = str(default_venv() / "bin" / "python")
    return subprocess.run([python, "-m", "stackfleet.openstack.workflow", command, str(record), *extra],
                          env=env, capture_output=True, text=True, timeout=timeout)


def user_apis() -> dict[str, tuple[int, str]]:
    """Service name -> (port, probe path) of the APIs a user's clients talk to."""
    return {svc.name: (proc.port, proc.probe_path) for svc, proc in services.apis()
            if proc.user_api and proc.port is not None and proc.probe_path is not None}


async def wait_apis(address: str, since: float, timeout: float) -> dict[str, float]:
    """Seconds from `since` (monotonic) until each user API first answers at address."""
    apis = user_apis()
    answered: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(answered) < len(apis) and time.monotonic() < deadline:
        for name, (port, path) in apis.items():
            if name not in answered and await http_answers(address, port, path, timeout=1.0):
                answered[name] = time.monotonic() - since
        await asyncio.sleep(0.2)
    missing = sorted(set(apis) - set(answered))
    if missing:
        raise TimeoutError(f"{', '.join(missing)} did not answer at {address} within {timeout:.0f} s")
    return answered
