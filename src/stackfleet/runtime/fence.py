"""The fence file: the agent's promise of how long this machine may still run exclusive units.

Format: a JSON object {"stop_at": S, "kill_at": K}, replaced atomically (rename) by the agent
on each lease renewal. S and K are seconds on CLOCK_BOOTTIME, the value of now() below: a
system-wide clock that, unlike CLOCK_MONOTONIC, keeps counting while the machine is
suspended, so a machine that sleeps through its lease wakes up already fenced. The shim stops
its unit at stop_at and must have SIGKILLed it by kill_at. A missing or malformed file counts
as expired. Every writer and reader of the file takes its times from now().

The shim reads the file when it changes (inotify on its directory) and when the stop_at of
its last reading comes: a writer must rename a complete file into place, as write_fence does.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from stackfleet.runtime.files import read_json, write_json_atomic

# The shim sends SIGKILL this long before kill_at, so that its own wake-up latency, the cgroup's
# freeze and the kernel's teardown of the processes also fit before the deadline. 0.1 s was
# measured short once on an idle 2-core CI box (a detached daemon seen dead 0.066 s past
# kill_at); the grace between stop_at and kill_at is at least 0.5 s, so this stays inside it.
KILL_MARGIN = 0.25


def now() -> float:
    """The fence's clock: CLOCK_BOOTTIME seconds."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@dataclass(frozen=True)
class Fence:
    stop_at: float
    kill_at: float


def write_fence(path: Path, fence: Fence) -> None:
    write_json_atomic(path, {"stop_at": fence.stop_at, "kill_at": fence.kill_at})


def read_fence(path: Path) -> Fence | None:
    """The fence, or None when the file is missing or malformed (which counts as expired)."""
    data = read_json(path)
    if not isinstance(data, dict):
        return None
    try:
        return Fence(stop_at=float(data["stop_at"]), kill_at=float(data["kill_at"]))
    except (KeyError, TypeError, ValueError):
        return None


class FenceWatch:
    """Turns successive fence readings into one decision. Once expired it stays expired, and the
    kill deadline only ever moves earlier: a later renewal cannot undo a stop already begun."""

    def __init__(self) -> None:
        self.expired = False
        self.kill_at: float | None = None
        self._stop_at: float | None = None

    def observe(self, fence: Fence | None, now: float) -> None:
        if fence is not None and not self.expired and now < fence.stop_at:
            self.kill_at = fence.kill_at
            self._stop_at = fence.stop_at
            return
        # A missing fence keeps the last promised kill deadline; with none known, kill now.
        candidates = [t for t in (self.kill_at, fence.kill_at if fence else None) if t is not None]
        self.kill_at = min(candidates) if candidates else now
        self.expired = True

    @property
    def stop_at(self) -> float | None:
        """When the last fence read promised a stop, while not expired: the next time the
        fence file must be read again, unless it changes before."""
        return None if self.expired else self._stop_at

    @property
    def kill_deadline(self) -> float | None:
        """When the SIGKILL goes out: kill_at minus the margin, once expired."""
        if not self.expired or self.kill_at is None:
            return None
        return self.kill_at - KILL_MARGIN

    def must_kill(self, now: float) -> bool:
        deadline = self.kill_deadline
        return deadline is not None and now >= deadline
