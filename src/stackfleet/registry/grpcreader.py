"""The one-shot reader of gateway.py over gRPC, for https:// clusters.

etcd's JSON gateway does not carry a client certificate's identity to the server: with
client-certificate auth it refuses a request whose certificate has a common name, and forwards
one without as no user at all. So over TLS the read-only commands read over gRPC, with the same
certificates as every other command, still in one transaction (one round trip, one revision).
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aetcd import transactions as tx

from .connection import EtcdConnection
from .gateway import KV, GatewayReader
from .keys import DEFAULT_PREFIX, prefix_end
from .tlsfiles import TLSFiles


class GrpcReader(GatewayReader):
    def __init__(self, endpoints: list[str], prefix: str = DEFAULT_PREFIX, timeout: float = 2.0,
                 tls: TLSFiles | None = None) -> None:
        super().__init__(endpoints, prefix, timeout, tls)
        self._etcd = EtcdConnection(endpoints, timeout=timeout, tls=tls)
        self._runner = asyncio.Runner()

    def ranges(self, prefixes: Iterable[bytes], keys: Iterable[bytes] = ()) -> list[KV]:
        ops: list[Any] = [tx.Get(p, range_end=prefix_end(p)) for p in prefixes]
        ops += [tx.Get(k) for k in keys]

        async def read() -> list[KV]:
            _, responses = await self._etcd.call(lambda c: c.transaction(compare=[], success=ops, failure=[]))
            return [{kv.key: kv.value for kv in _kvs(r)} for r in responses]

        return self._runner.run(read())

    def close(self) -> None:
        self._runner.run(self._etcd.close())
        self._runner.close()


def _kvs(response: Any) -> list[Any]:
    """The key-values of one range response of a transaction, as aetcd decodes it."""
    return [kv for _, kv in response] if response else []
