"""Linux inotify through ctypes: directory watches on one non-blocking descriptor.

The descriptor becomes readable when events are queued, so an asyncio loop can wait on it
with `loop.add_reader(watcher.fileno(), ...)` instead of polling files.
"""
from __future__ import annotations

import ctypes
import errno
import os
import struct
from dataclasses import dataclass
from pathlib import Path

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_Q_OVERFLOW = 0x00004000  # the kernel's queue overflowed: events were lost
IN_IGNORED = 0x00008000  # the watch is gone (its directory was deleted, or it was removed)
IN_ONLYDIR = 0x01000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Event:
    wd: int  # -1 for IN_Q_OVERFLOW
    mask: int
    name: str  # the entry inside the watched directory; '' for events on the directory itself


class Inotify:
    def __init__(self) -> None:
        fd = _libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            raise _error("inotify_init1")
        self._fd = int(fd)

    def fileno(self) -> int:
        return self._fd

    def watch_dir(self, path: Path, mask: int) -> int:
        """Watch a directory's entries; the watch descriptor (the same one for the same directory)."""
        wd = _libc.inotify_add_watch(self._fd, os.fsencode(path), mask | IN_ONLYDIR)
        if wd < 0:
            raise _error("inotify_add_watch", path)
        return int(wd)

    def unwatch(self, wd: int) -> None:
        if _libc.inotify_rm_watch(self._fd, wd) < 0 and ctypes.get_errno() != errno.EINVAL:
            raise _error("inotify_rm_watch")  # EINVAL: the kernel dropped it already

    def read(self) -> list[Event]:
        """Every queued event; [] when there is none (the descriptor never blocks)."""
        try:
            data = os.read(self._fd, 64 * 1024)
        except BlockingIOError:
            return []
        events = []
        offset = 0
        while offset < len(data):
            wd, mask, _cookie, size = _HEADER.unpack_from(data, offset)
            offset += _HEADER.size
            name = data[offset:offset + size].split(b"\0", 1)[0]
            offset += size
            events.append(Event(wd, mask, os.fsdecode(name)))
        return events

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _error(call: str, path: Path | None = None) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{call}: {os.strerror(code)}", None if path is None else str(path))
