"""A lease and the loop that keeps it alive.

The keeper remembers when the last *successful* renewal was sent. etcd extends the
lease from the moment it receives that renewal, which is later, so
`last_renewal_sent + ttl` is a safe lower bound of the expiry at etcd. The agent's
fencing deadline is derived from it.

On etcd, renewals go over one long-lived LeaseKeepAlive stream per keeper. aetcd's
`refresh_lease` opens a new gRPC stream for every renewal, which cost each etcd member
several stream set-ups a second in an idle lab.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import grpc
from aetcd import rpc
from aetcd.exceptions import ClientError

from .connection import RETRYABLE, EtcdConnection, EtcdUnavailable

log = logging.getLogger(__name__)

# The agent's fence stops exclusive units 0.6 TTL after the last accepted renewal was sent.
# Renewing every 0.2 TTL, with each attempt given 0.2 TTL, survives one hung member: wait,
# time out, fail over and renew on the next member all fit in that window. Faster buys nothing.
RENEW_FRACTION = 0.2
MIN_INTERVAL = 0.2


class LeaseExpired(Exception):
    pass


class Leases(Protocol):
    """Where leases live: etcd, or the fake registry's memory."""

    async def grant(self, ttl: int) -> int:
        """A new lease's id."""

    async def refresh(self, lease_id: int, timeout: float) -> int:
        """Renew the lease; its remaining TTL, or 0 when it has expired."""

    async def granted_ttl(self, lease_id: int) -> int:
        """The TTL the lease was granted with, or 0 when it has expired."""

    async def revoke(self, lease_id: int) -> None: ...


class _StreamBroken(Exception):
    """The keep-alive stream ended or failed; a new one is opened on the next renewal."""


_RENEWAL_ERRORS: tuple[type[BaseException], ...] = (_StreamBroken, *RETRYABLE)


class EtcdLeases:
    def __init__(self, conn: EtcdConnection) -> None:
        self.conn = conn
        self._stream: Any = None  # the LeaseKeepAlive call, bound to one client generation
        self._stream_generation = -1

    async def grant(self, ttl: int) -> int:
        lease = await self.conn.call(lambda c: c.lease(ttl))
        return int(lease.id)

    async def granted_ttl(self, lease_id: int) -> int:
        info = await self.conn.call(lambda c: c.get_lease_info(lease_id, keys=False))
        return 0 if info is None or info.TTL <= 0 else int(info.grantedTTL)

    async def refresh(self, lease_id: int, timeout: float) -> int:
        last: BaseException | None = None
        for _ in range(len(self.conn.endpoints)):
            generation = self.conn.generation
            try:
                return max(0, await asyncio.wait_for(self._exchange(lease_id), timeout))
            except _RENEWAL_ERRORS as err:
                last = err
                self._drop_stream()
                await self.conn.failover(generation)
        raise EtcdUnavailable(self.conn.endpoints, last)

    async def _exchange(self, lease_id: int) -> int:
        client = await self.conn.client()
        if self._stream is None or self._stream_generation != self.conn.generation:
            self._drop_stream()
            self._stream = client.leasestub.LeaseKeepAlive(metadata=client.metadata)
            self._stream_generation = self.conn.generation
        self.conn.requests += 1
        try:
            await self._stream.write(rpc.LeaseKeepAliveRequest(ID=lease_id))
            reply = await self._stream.read()
        except (grpc.RpcError, asyncio.InvalidStateError) as err:
            raise _StreamBroken(repr(err)) from None
        if reply is grpc.aio.EOF:
            raise _StreamBroken("the keep-alive stream was closed")
        return int(reply.TTL)

    def _drop_stream(self) -> None:
        if self._stream is not None:
            self._stream.cancel()
            self._stream = None

    async def revoke(self, lease_id: int) -> None:
        """Revoke the lease; one that is gone already is no error."""
        self._drop_stream()
        try:
            await self.conn.call(lambda c: c.revoke_lease(lease_id))
        except ClientError as err:
            if "lease not found" not in str(err):
                raise


class LeaseKeeper:
    def __init__(
        self,
        leases: Leases,
        ttl: int,
        on_renewed: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.leases = leases
        # Renewal times feed the fence deadlines, so they are read off the fence's clock.
        self.clock = clock
        self.ttl = ttl  # what the lease was granted with, once granted or adopted
        self.lease_id = 0
        self.last_renewal_sent = 0.0  # self.clock() of the last renewal that etcd accepted
        self._on_renewed = on_renewed

    @property
    def interval(self) -> float:
        return max(MIN_INTERVAL, self.ttl * RENEW_FRACTION)

    @property
    def expires_no_earlier_than(self) -> float:
        return self.last_renewal_sent + self.ttl

    async def grant(self) -> int:
        sent = self.clock()
        self.lease_id = await self.leases.grant(self.ttl)
        self._renewed(sent)
        return self.lease_id

    async def adopt(self, lease_id: int) -> bool:
        """Take over a lease granted by an earlier process of ours, if it is still alive.

        The lease keeps the TTL it was granted with, which may differ from ours: the fence
        must be computed from that one.
        """
        granted = await self.leases.granted_ttl(lease_id)
        if granted <= 0:
            return False
        self.lease_id, self.ttl = lease_id, granted
        try:
            await self.renew()
        except LeaseExpired:
            self.lease_id = 0
            return False
        return True

    async def renew(self) -> None:
        sent = self.clock()
        if await self.leases.refresh(self.lease_id, timeout=self.interval) <= 0:
            raise LeaseExpired(f"lease {self.lease_id:x} expired at etcd")
        self._renewed(sent)

    def _renewed(self, sent: float) -> None:
        self.last_renewal_sent = sent
        if self._on_renewed:
            self._on_renewed(sent)

    async def run(self) -> None:
        """Renew until the lease is found expired (raises LeaseExpired); etcd outages are ridden out."""
        while True:
            try:
                await self.renew()
            except EtcdUnavailable as err:
                log.warning("lease %x: renewal failed: %s", self.lease_id, err)
            await asyncio.sleep(self.interval)

    async def discard(self, lease_id: int) -> None:
        """Revoke a lease of an earlier process of ours that could not be adopted."""
        await self.leases.revoke(lease_id)

    async def revoke(self) -> None:
        if self.lease_id:
            await self.leases.revoke(self.lease_id)
            self.lease_id = 0
