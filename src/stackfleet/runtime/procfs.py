"""Process facts from /proc. PIDs get reused and PID 1 here reaps orphans late, so a process is
identified by (pid, start time) and a zombie counts as dead."""
from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcStat:
    pid: int
    state: str
    ppid: int
    pgrp: int
    session: int
    start_time: int  # clock ticks since boot, field 22 of /proc/PID/stat
    comm: str = ""
    cpu_ticks: int = 0  # utime + stime
    reaped_ticks: int = 0  # cutime + cstime: children that ended and were waited for
    rss_pages: int = 0

    @property
    def alive(self) -> bool:
        return self.state not in ("Z", "X", "x")


def parse_stat(pid: int, text: str) -> ProcStat:
    """The fields of the text of /proc/PID/stat (proc(5)) that stackfleet uses."""
    # The command name (field 2) may hold spaces and parentheses: it ends at the last ')'.
    head, _, rest = text.rpartition(")")
    fields = rest.split()  # fields[0] is field 3, the state
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return ProcStat(
        pid=pid,
        state=fields[0],
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        session=int(fields[3]),
        start_time=int(fields[19]),
        comm=head.partition("(")[2],
        cpu_ticks=utime + stime,
        reaped_ticks=cutime + cstime,
        rss_pages=int(fields[21]),
    )


def read_stat(pid: int) -> ProcStat | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            return parse_stat(pid, handle.read())
    except OSError:
        return None


def all_stats() -> list[ProcStat]:
    stats = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = read_stat(int(entry))
            if stat is not None:
                stats.append(stat)
    return stats


def is_running(pid: int, start_time: int | None) -> bool:
    """True if pid is a live (non-zombie) process and, when given, started at start_time."""
    stat = read_stat(pid)
    if stat is None or not stat.alive:
        return False
    return start_time is None or stat.start_time == start_time


def send_signal(pid: int, signum: int) -> None:
    """Signal pid; one that has already gone is no error."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def unit_processes(shim_pid: int, stats: list[ProcStat]) -> list[ProcStat]:
    """The live processes of the unit whose shim has shim_pid, the shim excluded: its session
    (the shim is a session leader, and the session id stays reserved while members live)
    plus its descendants (daemons that called setsid are reparented to the subreaper shim)."""
    children: dict[int, list[ProcStat]] = {}
    for stat in stats:
        children.setdefault(stat.ppid, []).append(stat)
    found = {s.pid: s for s in stats if s.session == shim_pid and s.pid != shim_pid}
    todo = [shim_pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child.pid not in found:
                found[child.pid] = child
            todo.append(child.pid)
    return [s for s in found.values() if s.alive]


def exited_children() -> Iterator[tuple[int, int]]:
    """(pid, wait status) of every exited child, ours or adopted as subreaper, without blocking."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status


PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Orphaned descendants (daemons that double-fork) are reparented to us, not to PID 1,
    which here reaps them late."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def send(pids: Iterable[int], sig: int) -> None:
    """Signal each process; one that is already gone is not an error."""
    for pid in pids:
        send_signal(pid, sig)
