"""A lease and the loop that keeps it alive.

The keeper remembers when the last *successful* renewal was sent. etcd extends the
lease from the moment it receives that renewal, which is later, so
`last_renewal_sent + ttl` is a safe lower bound of the expiry at etcd. The agent's
fencing deadline is derived from it.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Protocol

from .connection import EtcdConnection, EtcdUnavailable

log = logging.getLogger(__name__)


class LeaseExpired(Exception):
    pass


class Leases(Protocol):
    """Where leases live: etcd, or the fake registry's memory."""

    async def grant(self, ttl: int) -> int:
        """A new lease's id."""

    async def refresh(self, lease_id: int, timeout: float) -> int:
        """Renew the lease; its remaining TTL, or 0 when it has expired."""

    async def revoke(self, lease_id: int) -> None: ...


class EtcdLeases:
    def __init__(self, conn: EtcdConnection) -> None:
        self.conn = conn

    async def grant(self, ttl: int) -> int:
        lease = await self.conn.call(lambda c: c.lease(ttl))
        return int(lease.id)

    async def refresh(self, lease_id: int, timeout: float) -> int:
        reply = await self.conn.call(lambda c: c.refresh_lease(lease_id), timeout=timeout)
        return 0 if reply is None else max(0, int(reply.TTL))

    async def revoke(self, lease_id: int) -> None:
        await self.conn.call(lambda c: c.revoke_lease(lease_id))


class LeaseKeeper:
    def __init__(
        self,
        leases: Leases,
        ttl: int,
        on_renewed: Callable[[float], None] | None = None,
    ) -> None:
        self.leases = leases
        self.ttl = ttl
        self.lease_id = 0
        self.last_renewal_sent = 0.0  # time.monotonic() of the last renewal that etcd accepted
        self._on_renewed = on_renewed
        # Several renewals fit in one TTL, so a single lost reply or a failover costs nothing.
        self.interval = max(0.2, ttl / 6)

    @property
    def expires_no_earlier_than(self) -> float:
        return self.last_renewal_sent + self.ttl

    async def grant(self) -> int:
        sent = time.monotonic()
        self.lease_id = await self.leases.grant(self.ttl)
        self._renewed(sent)
        return self.lease_id

    async def adopt(self, lease_id: int) -> bool:
        """Take over a lease granted by an earlier process of ours, if it is still alive."""
        self.lease_id = lease_id
        try:
            await self.renew()
        except LeaseExpired:
            self.lease_id = 0
            return False
        return True

    async def renew(self) -> None:
        sent = time.monotonic()
        if await self.leases.refresh(self.lease_id, timeout=self.interval * 2) <= 0:
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

    async def revoke(self) -> None:
        if self.lease_id:
            await self.leases.revoke(self.lease_id)
            self.lease_id = 0
