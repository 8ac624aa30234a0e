"""Permanent JSON records for one job's progress, under a key directory: the evacuator's epochs
and per-instance records (openstack/instance_ha.py). `create` is etcd's create-if-absent, so of
two writers one wins, and a record once created is never created again."""
from __future__ import annotations

import copy
import json
from typing import Any

from aetcd import transactions as tx

from .store import Registry
from .watch import list_prefix


class ProgressRecords:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.base = registry.keys.instance_ha_dir()

    def _key(self, path: str) -> bytes:
        return self.registry.keys.instance_ha(*path.split("/"))

    async def all(self) -> dict[str, dict[str, Any]]:
        """Every record, by its path below the directory (e.g. hosts/compute-01)."""
        items = (await list_prefix(self.registry.conn, self.base)).items
        return {k[len(self.base):].decode(): json.loads(v) for k, v in items.items()}

    async def create(self, path: str, value: dict[str, Any]) -> bool:
        """Store the record unless one exists; True if this call stored it."""
        key, raw = self._key(path), json.dumps(value, sort_keys=True).encode()
        ok, _ = await self.registry.conn.call(
            lambda c: c.transaction(compare=[tx.Create(key) == 0], success=[tx.Put(key, raw)], failure=[]))
        return bool(ok)

    async def put(self, path: str, value: dict[str, Any]) -> None:
        key, raw = self._key(path), json.dumps(value, sort_keys=True).encode()
        await self.registry.conn.call(lambda c: c.put(key, raw))

    async def delete_below(self, path: str) -> None:
        """Delete the record at path and every record below it."""
        key = self._key(path)
        await self.registry.conn.call(lambda c: c.delete(key))
        await self.registry.conn.call(lambda c: c.delete_prefix(key + b"/"))


class MemoryRecords:
    """The same records in memory: for tests, and for the evacuator driven without etcd."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}

    async def all(self) -> dict[str, dict[str, Any]]:
        return copy.deepcopy(self.data)

    async def create(self, path: str, value: dict[str, Any]) -> bool:
        if path in self.data:
            return False
        self.data[path] = json.loads(json.dumps(value))
        return True

    async def put(self, path: str, value: dict[str, Any]) -> None:
        self.data[path] = json.loads(json.dumps(value))

    async def delete_below(self, path: str) -> None:
        self.data = {k: v for k, v in self.data.items() if k != path and not k.startswith(path + "/")}
