"""A private /run/netns for the network role.

Neutron's agents name their namespaces after routers and networks (qrouter-ID, qdhcp-ID), and
`ip netns` keeps those names in /run/netns, which every lab machine on one host shares: two network
machines hosting the same HA router would fight over one qrouter-ID. In its own mount namespace
with an empty tmpfs on /run/netns, each network role sees only its own. A bonus: when the role's
last process exits, the mount namespace goes, and with it every namespace its agents made, so not
even a SIGKILL leaves them behind. From outside: `nsenter -m -t RUNNER_PID ip netns list`.
"""
from __future__ import annotations

import ctypes
import os

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
NETNS_DIR = "/run/netns"


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def private_netns_dir() -> None:
    """Moves this process into a new mount namespace with an empty /run/netns of its own.
    Must run before the process starts threads (unshare refuses a multi-threaded caller)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                           ctypes.c_char_p]
    os.makedirs(NETNS_DIR, exist_ok=True)
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # Nothing mounted from here on may propagate back to the machine.
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    _check(libc.mount(b"stackfleet-netns", NETNS_DIR.encode(), b"tmpfs", 0, b"mode=0755"),
           f"mount tmpfs on {NETNS_DIR}")
