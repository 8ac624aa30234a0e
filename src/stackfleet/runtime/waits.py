"""Kernel wake-up sources for the shim's loop, which sleeps in poll() until one fires.

- Alarm: a timerfd on CLOCK_BOOTTIME, so a deadline set before a suspend fires at once on
  resume (a poll() timeout would count only the time awake).
- FileWatch: inotify on one file's directory, so a rewritten fence wakes the shim at once.

Python 3.11 has neither in os, hence ctypes.
"""
from __future__ import annotations

import ctypes
import math
import os
import struct
import time
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)

TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC
TFD_TIMER_ABSTIME = 1
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_DELETE = 0x200
IN_MOVED_FROM = 0x040
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


class Alarm:
    """A one-shot alarm at an absolute CLOCK_BOOTTIME time; its fd is readable once due."""

    def __init__(self) -> None:
        self.fd = _check(_libc.timerfd_create(time.CLOCK_BOOTTIME, TFD_NONBLOCK | TFD_CLOEXEC),
                         "timerfd_create")
        self.at = math.inf

    def set(self, at: float) -> None:
        """Fire at `at` (fence.now() seconds); math.inf disarms. A past time fires at once."""
        if at == self.at:
            return
        self.at = at
        spec = _Itimerspec()
        if at != math.inf:
            # 0 would disarm: the earliest expressible time means "now" for a past deadline.
            seconds = max(at, 1e-9)
            spec.it_value.tv_sec = int(seconds)
            spec.it_value.tv_nsec = max(1, int((seconds - int(seconds)) * 1e9))
        _check(_libc.timerfd_settime(self.fd, TFD_TIMER_ABSTIME, ctypes.byref(spec), None),
               "timerfd_settime")

    def clear(self) -> None:
        """Consume a fired expiry (the alarm stays set at the same time: re-arm with set)."""
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            pass
        self.at = math.nan  # forces the next set() to re-arm, even to the same time

    def close(self) -> None:
        os.close(self.fd)


class FileWatch:
    """Readable when `path` is replaced (renamed onto), written or deleted."""

    def __init__(self, path: Path) -> None:
        self.name = path.name.encode()
        self.fd = _check(_libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC), "inotify_init1")
        # Not IN_CREATE: a writer's temporary file would wake us once more per renewal.
        mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM
        _check(_libc.inotify_add_watch(self.fd, os.fsencode(path.parent), mask),
               f"inotify_add_watch {path.parent}")

    def changed(self) -> bool:
        """Consume pending events; True if one concerned the watched file."""
        hit = False
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return hit
            offset = 0
            while offset < len(data):
                _, _, _, length = _EVENT.unpack_from(data, offset)
                start = offset + _EVENT.size
                if data[start:start + length].rstrip(b"\0") == self.name:
                    hit = True
                offset = start + length

    def close(self) -> None:
        os.close(self.fd)
