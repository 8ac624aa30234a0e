"""A lease and the loop that keeps it alive.

The keeper remembers when the last *successful* renewal was sent. etcd extends the
lease from the moment it receives that renewal, which is later, so
`last_renewal_sent + ttl` is a safe lower bound of the expiry at etcd. The agent's
fencing deadline is derived from it.

Renewals go over one long-lived LeaseKeepAlive stream per keeper. aetcd's
`refresh_lease` opens a new gRPC stream for every renewal, which cost each etcd member
several stream set-ups a second in an idle lab.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

import grpc
from aetcd import rpc

from .connection import RETRYABLE, EtcdConnection, EtcdUnavailable

log = logging.getLogger(__name__)

# The agent's fence stops exclusive units 0.6 TTL after the last accepted renewal was sent.
# Renewing every 0.2 TTL, with each attempt given 0.2 TTL, survives one hung member: wait,
# time out, fail over and renew on the next member all fit in that window. Faster buys nothing.
RENEW_FRACTION = 0.2
MIN_INTERVAL = 0.2


class LeaseExpired(Exception):
    pass


class _StreamBroken(Exception):
    """The keep-alive stream ended or failed; a new one is opened on the next renewal."""


class LeaseKeeper:
    def __init__(
        self,
        conn: EtcdConnection,
        ttl: int,
        on_renewed: Callable[[float], None] | None = None,
    ) -> None:
        self.conn = conn
        self.ttl = ttl  # what etcd granted, once granted or adopted
        self.lease_id = 0
        self.last_renewal_sent = 0.0  # time.monotonic() of the last renewal that etcd accepted
        self._on_renewed = on_renewed
        self._stream: Any = None  # the LeaseKeepAlive call, bound to one client generation
        self._stream_generation = -1

    @property
    def interval(self) -> float:
        return max(MIN_INTERVAL, self.ttl * RENEW_FRACTION)

    @property
    def expires_no_earlier_than(self) -> float:
        return self.last_renewal_sent + self.ttl

    async def grant(self) -> int:
        sent = time.monotonic()
        lease = await self.conn.call(lambda c: c.lease(self.ttl))
        self.lease_id = lease.id
        self.ttl = int(lease.ttl)
        self._renewed(sent)
        return self.lease_id

    async def adopt(self, lease_id: int) -> bool:
        """Take over a lease granted by an earlier process of ours, if it is still alive.

        The lease keeps the TTL it was granted with, which may differ from ours: the fence must
        be computed from that one.
        """
        sent = time.monotonic()
        info = await self.conn.call(lambda c: c.get_lease_info(lease_id, keys=False))
        if info is None or info.TTL <= 0:
            return False
        self.lease_id = lease_id
        self.ttl = int(info.grantedTTL)
        try:
            await self.renew()
        except LeaseExpired:
            self.lease_id = 0
            return False
        # The lookup proved the lease alive when it was sent; the renewal proves more.
        self.last_renewal_sent = max(self.last_renewal_sent, sent)
        return True

    async def renew(self) -> None:
        """One renewal; raises LeaseExpired, or EtcdUnavailable when no member answered."""
        last: BaseException | None = None
        for _ in range(len(self.conn.endpoints)):
            generation = self.conn.generation
            sent = time.monotonic()
            try:
                ttl = await asyncio.wait_for(self._exchange(), self.interval)
            except (_StreamBroken, *RETRYABLE) as err:
                last = err
                self._drop_stream()
                await self.conn.failover(generation)
                continue
            if ttl <= 0:
                raise LeaseExpired(f"lease {self.lease_id:x} expired at etcd")
            self._renewed(sent)
            return
        raise EtcdUnavailable(self.conn.endpoints, last)

    async def _exchange(self) -> int:
        stream = await self._open_stream()
        self.conn.requests += 1
        try:
            await stream.write(rpc.LeaseKeepAliveRequest(ID=self.lease_id))
            reply = await stream.read()
        except (grpc.RpcError, asyncio.InvalidStateError) as err:
            raise _StreamBroken(repr(err)) from None
        if reply is grpc.aio.EOF:
            raise _StreamBroken("the keep-alive stream was closed")
        return int(reply.TTL)

    async def _open_stream(self) -> Any:
        client = await self.conn.client()
        if self._stream is None or self._stream_generation != self.conn.generation:
            self._drop_stream()
            self._stream = client.leasestub.LeaseKeepAlive(metadata=client.metadata)
            self._stream_generation = self.conn.generation
        return self._stream

    def _drop_stream(self) -> None:
        if self._stream is not None:
            self._stream.cancel()
            self._stream = None

    def _renewed(self, sent: float) -> None:
        self.last_renewal_sent = sent
        if self._on_renewed:
            self._on_renewed(sent)

    async def run(self) -> None:
        """Renew until the lease is found expired (raises LeaseExpired); etcd outages are ridden out."""
        try:
            while True:
                try:
                    await self.renew()
                except EtcdUnavailable as err:
                    log.warning("lease %x: renewal failed: %s", self.lease_id, err)
                await asyncio.sleep(self.interval)
        finally:
            self._drop_stream()

    async def revoke(self) -> None:
        self._drop_stream()
        if self.lease_id:
            await self.conn.call(lambda c: c.revoke_lease(self.lease_id))
            self.lease_id = 0
