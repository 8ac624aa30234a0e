"""The fencing deadline, shared by the agent and every exclusive unit's shim.

From the send time of the last renewal that etcd accepted, the lease cannot expire at
etcd before `sent + ttl`. Exclusive units must be stopped before that moment, so a
copy started elsewhere (which needs the lease-bound lock) never overlaps with ours.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..runtime.fence import Fence
from ..runtime.fence import now as shims_clock

# The one clock of every fencing deadline: the lease keeper's renewal times, the agent's
# watchdog and the fence file the shims read. It is the shims' clock, CLOCK_BOOTTIME, which
# keeps counting through a suspend: a lease keeps expiring at etcd while this machine sleeps.
fence_clock = shims_clock


@dataclass(frozen=True)
class FencePolicy:
    ttl: float
    margin: float  # kill this long before the earliest possible expiry
    grace: float  # begin a graceful stop this long before the kill

    @classmethod
    def for_ttl(cls, ttl: float) -> FencePolicy:
        return cls(ttl=ttl, margin=max(0.5, ttl * 0.2), grace=max(0.5, ttl * 0.2))

    def kill_at(self, renewal_sent: float) -> float:
        return renewal_sent + self.ttl - self.margin

    def stop_at(self, renewal_sent: float) -> float:
        return self.kill_at(renewal_sent) - self.grace

    def fence(self, renewal_sent: float) -> Fence:
        return Fence(stop_at=self.stop_at(renewal_sent), kill_at=self.kill_at(renewal_sent))
