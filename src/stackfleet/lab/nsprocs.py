"""Processes by network namespace: find them in /proc, measure them, kill them by PID."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from stackfleet.lab.state import NETNS_DIR
from stackfleet.runtime.procfs import read_stat, send

PROC = Path("/proc")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

NsId = tuple[int, int]  # (st_dev, st_ino) of the namespace file


def netns_id(name: str) -> NsId | None:
    try:
        st = os.stat(NETNS_DIR / name)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


def proc_state(pid: int) -> str | None:
    """The one-letter state from /proc/PID/stat ('Z' for a zombie), None when the PID is gone."""
    stat = read_stat(pid)
    return None if stat is None else stat.state


def is_alive(pid: int) -> bool:
    """True while the PID runs; a zombie is dead (PID 1 here reaps orphans late)."""
    stat = read_stat(pid)
    return stat is not None and stat.alive


def all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir(PROC) if entry.isdigit()]


def pids_in_netns(ns: NsId) -> list[int]:
    """Live processes whose network namespace is `ns` (zombies have none and are left out)."""
    found: list[int] = []
    for pid in all_pids():
        try:
            st = os.stat(PROC / str(pid) / "ns" / "net")
        except OSError:
            continue  # gone meanwhile, or a zombie
        if (st.st_dev, st.st_ino) == ns and is_alive(pid):
            found.append(pid)
    return found


def rss_bytes(pid: int) -> int:
    try:
        resident_pages = int((PROC / str(pid) / "statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return resident_pages * PAGE_SIZE


def kill_netns(ns: NsId, timeout: float = 5.0) -> set[int]:
    """SIGKILL everything in `ns`, all at once, again until nothing is left: pulling the power.

    Repeats because a process may fork between the scan and the kill. Returns the PIDs killed.
    """
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while True:
        pids = pids_in_netns(ns)
        if not pids:
            return killed
        if time.monotonic() > deadline:
            raise TimeoutError(f"processes still alive in the namespace after SIGKILL: {pids}")
        send(pids, signal.SIGKILL)
        killed.update(pids)
        time.sleep(0.01)  # lets the kernel tear the killed processes down before the rescan


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Waits until none of `pids` runs; returns those still running at the timeout."""
    remaining = [p for p in pids if is_alive(p)]
    deadline = time.monotonic() + timeout
    while remaining and time.monotonic() < deadline:
        time.sleep(0.02)
        remaining = [p for p in remaining if is_alive(p)]
    return remaining


def terminate(pids: Iterable[int], grace: float = 3.0) -> None:
    """SIGTERM, then SIGKILL whatever still runs after `grace` seconds."""
    pids = list(pids)
    send(pids, signal.SIGTERM)
    stubborn = wait_gone(pids, grace)
    send(stubborn, signal.SIGKILL)
    wait_gone(stubborn, 2.0)
