"""The roles' ClusterLink over etcd, through the registry.

Settings live in etcd, the one source of truth. Service passwords are stored encrypted
(Fernet) with a key kept in a root-only file on the shared storage, so that reading
etcd alone does not give them away. The controller's record is bound to a lease the
role keeps alive: when the role or its machine dies, the record expires with it.
"""
from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncGenerator, Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from ..discovery import secrets_dir
from ..registry.interface import RegistryAPI
from ..registry.lease import LeaseKeeper
from ..runtime.files import write_json_atomic
from .link import followed_address
from .settings import PASSWORD_KEYS

CONTROLLER = "controller"
SECRET_PREFIX = "fernet:"


def key_file(shared_dir: Path) -> Path:
    """Where the cluster's settings key lives: on the shared storage, readable by root only."""
    return secrets_dir(shared_dir) / "settings.key"


def kept_settings_file(key: Path) -> Path:
    """The settings as stored in etcd (passwords sealed), kept beside their key on the shared
    storage: the data there was made with these passwords, and must find them again when a new
    etcd cluster (a `lab destroy` that kept the data, then `lab up`) knows none."""
    return key.parent / "settings.json"


class SecretBox:
    """Encrypts the password settings with a key file that only root may read."""

    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self._fernet: Fernet | None = None

    def _box(self) -> Fernet:
        if self._fernet is None:
            if not self.key_file.exists():
                self.key_file.parent.mkdir(parents=True, exist_ok=True)
                try:
                    fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    pass  # another machine made it first: use theirs
                else:
                    with os.fdopen(fd, "wb") as f:
                        f.write(Fernet.generate_key())
            self._fernet = Fernet(self.key_file.read_bytes().strip())
        return self._fernet

    def seal(self, key: str, value: str) -> str:
        if key not in PASSWORD_KEYS:
            return value
        token: bytes = self._box().encrypt(value.encode())
        return SECRET_PREFIX + token.decode()

    def open(self, key: str, value: str) -> str:
        if not value.startswith(SECRET_PREFIX):
            return value
        try:
            plain: bytes = self._box().decrypt(value[len(SECRET_PREFIX):].encode())
            return plain.decode()
        except InvalidToken:
            raise SystemExit(f"setting {key}: cannot decrypt it with {self.key_file}; "
                             "the shared storage's key file does not belong to this cluster") from None


class EtcdClusterLink:
    def __init__(self, registry: RegistryAPI, key_file: Path, ttl: int = 5) -> None:
        self.registry = registry
        self.box = SecretBox(key_file)
        self.ttl = ttl
        self._keeper: LeaseKeeper | None = None
        self._keeping: asyncio.Task[None] | None = None

    async def settings(self) -> dict[str, str]:
        return {k: self.box.open(k, v) for k, v in (await self.registry.settings()).items()}

    async def set_setting(self, key: str, value: str) -> None:
        await self.registry.set_setting(key, self.box.seal(key, value))
        await self._keep_copy()

    async def add_settings(self, values: Mapping[str, str]) -> dict[str, str]:
        """Kept settings come first, so the passwords the shared data was made with win over
        freshly generated ones."""
        kept = self._kept()
        for key, sealed in kept.items():
            await self.registry.setting_if_absent(key, sealed)
        for key, value in values.items():
            if key not in kept:
                await self.registry.setting_if_absent(key, self.box.seal(key, value))
        await self._keep_copy()
        return await self.settings()

    def _kept(self) -> dict[str, str]:
        try:
            kept = json.loads(kept_settings_file(self.box.key_file).read_text())
        except FileNotFoundError:
            return {}
        return {str(k): str(v) for k, v in kept.items()}

    async def _keep_copy(self) -> None:
        copy = kept_settings_file(self.box.key_file)
        copy.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_json_atomic(copy, await self.registry.settings(), mode=0o600, indent=1)

    async def publish_controller(self, address: str, ready: Mapping[str, bool], machine: str) -> None:
        if self._keeper is None:
            self._keeper = self.registry.lease_keeper(self.ttl)
            await self._keeper.grant()
            self._keeping = asyncio.create_task(self._keeper.run())
        record = json.dumps({"address": address, "ready": dict(ready), "machine": machine},
                            sort_keys=True)
        await self.registry.publish(CONTROLLER, record, self._keeper.lease_id)

    async def controller(self) -> dict[str, object]:
        raw = await self.registry.published(CONTROLLER)
        return json.loads(raw) if raw else {}

    async def controller_address_changes(self) -> AsyncGenerator[str, None]:
        last = None
        async for changes in self.registry.watch_published(CONTROLLER):
            for _, raw in changes.changes:
                address = followed_address(json.loads(raw)) if raw else None
                if address and address != last:
                    last = address
                    yield address
