"""Directories a unit must not see: hidden in a mount namespace of its own.

In the unit's forked child, before exec: a new mount namespace, nothing propagating back to
the machine, and an empty tmpfs over each hidden directory (mode 0711: a unit with User= can
reach the files it keeps, and list nothing). Files a unit may keep
from inside those directories (its own client certificate) are read first and written back
into the tmpfs at the same paths, 0600. Every process the unit starts inherits the namespace;
the machine and the other units keep seeing the real directories.
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 0x40000


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def hide(directories: list[str], kept: list[str], uid: int | None = None, gid: int | None = None) -> None:
    """Hides `directories` from this process and its children, keeping the files `kept` (owned
    by uid/gid, the unit's User=/Group=, when given). Single-threaded callers only (unshare
    refuses a multi-threaded one), e.g. after fork()."""
    if not directories:
        return
    contents = {path: Path(path).read_bytes() for path in kept}
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    for directory in directories:
        if os.path.isdir(directory):
            _check(libc.mount(b"stackfleet-private", directory.encode(), b"tmpfs", 0, b"mode=0711"),
                   f"mount tmpfs on {directory}")
    for path, data in contents.items():
        os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if uid is not None or gid is not None:
            os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
