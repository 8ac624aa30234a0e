"""Wake the agent when a unit's supervisor (shim) exits: its death writes no status file.

A pidfd (Linux 5.3+) becomes readable once its process has ended, whoever its parent is, so
the asyncio loop waits on it like on a socket. The pid is checked alive (with its start time)
just before the pidfd is opened; should it end and be reused in between, the safety pass
still finds the change.
"""
from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping


class ExitWatch:
    def __init__(self, on_exit: Callable[[], None]) -> None:
        self._on_exit = on_exit
        self._loop = asyncio.get_running_loop()
        self._watched: dict[str, tuple[int, int]] = {}  # unit -> (pid, pidfd)

    def follow(self, pids: Mapping[str, int]) -> None:
        """Watch these processes, and only these (unit name -> pid)."""
        for name, (pid, _) in list(self._watched.items()):
            if pids.get(name) != pid:
                self._drop(name)
        for name, pid in pids.items():
            if name in self._watched:
                continue
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                self._on_exit()  # gone already
                continue
            self._watched[name] = (pid, fd)
            self._loop.add_reader(fd, self._ended, name)

    def close(self) -> None:
        for name in list(self._watched):
            self._drop(name)

    def _ended(self, name: str) -> None:
        self._drop(name)
        self._on_exit()

    def _drop(self, name: str) -> None:
        _, fd = self._watched.pop(name)
        self._loop.remove_reader(fd)
        os.close(fd)
