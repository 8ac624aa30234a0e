"""systemd's decisions about exits and restarts, as pure functions."""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass

# systemd counts these signals as a clean end of a service (is_clean_exit()).
CLEAN_SIGNALS = frozenset({signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE})
EXIT_CHDIR = 200
EXIT_EXEC = 203
EXIT_GROUP = 216
EXIT_USER = 217
EXIT_CGROUP = 219
EXIT_NAMESPACE = 226
_EXIT_NAMES = {0: "SUCCESS", 1: "FAILURE", 2: "INVALIDARGUMENT", 3: "NOTIMPLEMENTED",
               4: "NOPERMISSION", 5: "NOTINSTALLED", 6: "NOTCONFIGURED", 7: "NOTRUNNING",
               EXIT_CHDIR: "CHDIR", EXIT_EXEC: "EXEC", EXIT_GROUP: "GROUP", EXIT_USER: "USER",
               EXIT_CGROUP: "CGROUP", EXIT_NAMESPACE: "NAMESPACE"}


@dataclass(frozen=True)
class Exit:
    """How a process ended: code is 'exited', 'killed' or 'dumped' (as systemd prints it)."""

    code: str
    status: int

    @classmethod
    def from_wait_status(cls, status: int) -> Exit:
        if os.WIFSIGNALED(status):
            return cls("dumped" if os.WCOREDUMP(status) else "killed", os.WTERMSIG(status))
        return cls("exited", os.waitstatus_to_exitcode(status))

    @property
    def result(self) -> str:
        """systemd's service result for this exit."""
        if self.code == "exited":
            return "success" if self.status == 0 else "exit-code"
        if self.status in CLEAN_SIGNALS:
            return "success"
        return "core-dump" if self.code == "dumped" else "signal"

    def describe(self) -> str:
        if self.code == "exited":
            name = _EXIT_NAMES.get(self.status)
            return f"code=exited, status={self.status}" + (f"/{name}" if name else "")
        try:
            name = signal.Signals(self.status).name.removeprefix("SIG")
        except ValueError:
            name = str(self.status)
        return f"code={self.code}, status={self.status}/{name}"


def should_restart(policy: str, result: str) -> bool:
    """Restart= of systemd.service(5); a stop that was asked for never gets here."""
    if result == "start-limit-hit":
        return False
    if policy == "always":
        return True
    if policy == "on-success":
        return result == "success"
    if policy == "on-failure":
        return result != "success"
    if policy == "on-abnormal":
        return result in ("signal", "core-dump", "timeout", "watchdog")
    if policy == "on-abort":
        return result in ("signal", "core-dump")
    if policy == "on-watchdog":
        return result == "watchdog"
    return False


def start_limit_hit(starts: list[float], now: float, interval: float, burst: int) -> bool:
    """StartLimitIntervalSec=/StartLimitBurst=: True if one more start at `now` would be the
    (burst+1)-th within interval. An interval or burst of 0 turns the limit off."""
    if interval <= 0 or burst <= 0:
        return False
    return sum(1 for t in starts if now - t < interval) >= burst
