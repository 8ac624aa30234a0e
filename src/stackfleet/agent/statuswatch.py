"""Wake the agent when a unit's status file changes, instead of reading them all on a timer.

Shims write each unit's status.json atomically (write, then rename), so a rename into the
unit's directory, or a close after writing, is a state change. One inotify watch per unit
directory; `follow` keeps the watches in step with the units the runtime holds.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from ..runtime.layout import UnitPaths
from .inotify import IN_CLOSE_WRITE, IN_IGNORED, IN_MOVED_TO, IN_Q_OVERFLOW, Inotify

log = logging.getLogger(__name__)

STATUS_NAME = UnitPaths(Path(".")).status.name


class StatusWatch:
    def __init__(self, unit_dir: Callable[[str], Path], on_change: Callable[[], None]) -> None:
        self._unit_dir = unit_dir
        self._on_change = on_change
        self._inotify = Inotify()
        self._watches: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._inotify.fileno(), self._readable)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._inotify.fileno())
        self._inotify.close()

    def follow(self, names: Iterable[str]) -> bool:
        """Watch these units' directories, and only these. True if a watch was added: the status
        may have changed before it was, so the caller must read it once more."""
        wanted = set(names)
        for name in set(self._watches) - wanted:
            self._inotify.unwatch(self._watches.pop(name))
        added = False
        for name in sorted(wanted - set(self._watches)):
            try:
                self._watches[name] = self._inotify.watch_dir(self._unit_dir(name), IN_MOVED_TO | IN_CLOSE_WRITE)
            except OSError as err:  # not created yet, or gone: the next pass tries again
                log.debug("cannot watch %s yet: %s", name, err)
                continue
            added = True
        return added

    def _readable(self) -> None:
        events = self._inotify.read()
        gone = {e.wd for e in events if e.mask & IN_IGNORED}  # its directory was deleted
        self._watches = {name: wd for name, wd in self._watches.items() if wd not in gone}
        if any(e.mask & IN_Q_OVERFLOW or e.name == STATUS_NAME for e in events):
            self._on_change()
