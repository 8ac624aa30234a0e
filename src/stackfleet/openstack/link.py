"""The roles' one door to the cluster: settings, and the controller's address and readiness.

`ClusterLink` is what a role needs; the cluster core implements it over etcd. `FileClusterLink`
implements it over a directory for stand-alone use and tests.
"""
from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncGenerator, Mapping
from pathlib import Path
from typing import Any, Protocol

from stackfleet.runtime.files import write_json_atomic
from stackfleet.runtime.procfs import is_running, read_stat


class ClusterLink(Protocol):
    async def settings(self) -> dict[str, str]:
        """All cluster settings."""
        ...

    async def set_setting(self, key: str, value: str) -> None:
        """Stores one (already validated) setting."""
        ...

    async def add_settings(self, values: Mapping[str, str]) -> dict[str, str]:
        """Stores each key only if it is absent (atomically, so two machines generating passwords at
        once agree on one), and returns all settings afterwards."""
        ...

    async def publish_controller(self, address: str, ready: Mapping[str, bool], machine: str) -> None:
        """Announces the controller's address (the VIP, where one is set), its per-service
        readiness and the machine that runs it."""
        ...

    async def controller(self) -> dict[str, object]:
        """The controller's record ({} when no controller role runs): it lives exactly as long
        as the role that published it (an etcd lease; in a directory, the publisher's pid)."""
        ...

    def controller_address_changes(self) -> AsyncGenerator[str, None]:
        """Yields the current controller address (once one is published), then each new one."""
        ...


def followed_address(record: Mapping[str, object]) -> str | None:
    """The address that compute and network follow: a controller's, once its services have
    booted. A controller announces itself before it boots, so that `data reset` refuses from
    then on; followers that moved then would reach a broker and a conductor that are not up."""
    address = record.get("address")
    return address if isinstance(address, str) and address and record.get("ready") else None


def _write_private(path: Path, data: object) -> None:
    """Readable by root only: the settings hold the passwords."""
    write_json_atomic(path, data, mode=0o600, indent=1)


class FileClusterLink:
    """A ClusterLink in one directory: settings.json and controller.json. One machine only."""

    def __init__(self, root: Path, poll_interval: float = 0.5) -> None:
        self.root = root
        self.poll_interval = poll_interval
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)

    def _read(self, name: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.root / name).read_text())
        except FileNotFoundError:
            return {}
        return data

    async def settings(self) -> dict[str, str]:
        return self._read("settings.json")

    async def set_setting(self, key: str, value: str) -> None:
        current = self._read("settings.json")
        current[key] = value
        _write_private(self.root / "settings.json", current)

    async def add_settings(self, values: Mapping[str, str]) -> dict[str, str]:
        current = self._read("settings.json")
        merged = {**values, **current}
        if merged != current:
            _write_private(self.root / "settings.json", merged)
        return merged

    async def publish_controller(self, address: str, ready: Mapping[str, bool], machine: str) -> None:
        me = read_stat(os.getpid())
        _write_private(self.root / "controller.json", {
            "address": address, "ready": dict(ready), "machine": machine, "pid": os.getpid(),
            "started": me.start_time if me else None})

    async def controller(self) -> dict[str, object]:
        record = self._read("controller.json")
        pid = record.get("pid")
        alive = isinstance(pid, int) and is_running(pid, record.get("started"))
        return record if alive else {}

    async def controller_address_changes(self) -> AsyncGenerator[str, None]:
        last = None
        while True:
            address = followed_address(self._read("controller.json"))
            if address and address != last:
                last = address
                yield address
            await asyncio.sleep(self.poll_interval)
