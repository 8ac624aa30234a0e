"""argparse types for the values argparse can check itself.

One rule for the whole CLI: a value that is wrong on its face (a negative count, a TTL too short)
is a usage error, refused by argparse with its own message and exit code 2, before anything
runs. Bad input that needs the cluster or a file to judge is exit 1 (see cli.errors).
"""
from __future__ import annotations

import argparse

# The lease TTL must leave the agent at least this long between a renewal that etcd accepted and
# the graceful stop of its exclusive units (agent.fence: stop_at = sent + ttl - margin - grace).
# Less, and a unit is stopped as soon as one renewal is a little late.
FENCE_HEADROOM = 1.0


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None


def count(text: str) -> int:
    """A number of lines, machines, attempts: 0 or more."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give 0 or more")
    return value


def min_lease_ttl() -> int:
    """The smallest whole TTL whose fence leaves FENCE_HEADROOM before the graceful stop: 2 s."""
    from ..agent.fence import FencePolicy  # only when a --ttl is given

    ttl = 1
    while FencePolicy.for_ttl(ttl).stop_at(0.0) < FENCE_HEADROOM:
        ttl += 1
    return ttl


def lease_ttl(text: str) -> int:
    """A lease TTL in whole seconds, long enough for the fence margin and grace (see above)."""
    value = _int(text)
    least = min_lease_ttl()
    if value < least:
        raise argparse.ArgumentTypeError(
            f"{value} s is too short: the lease TTL is at least {least} s, because a machine stops its "
            f"exclusive units margin + grace (at least 1 s) before its lease can expire, and needs "
            f"{FENCE_HEADROOM:g} s more between renewals")
    return value
