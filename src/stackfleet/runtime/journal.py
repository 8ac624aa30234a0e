"""A unit's journal: one file, one line per output line, in journald's short-iso format."""
from __future__ import annotations

import contextlib
import os
from datetime import datetime
from pathlib import Path

# A line longer than this is cut into several, so that one chatty process cannot grow memory.
MAX_LINE = 64 * 1024


def format_line(when: datetime, host: str, ident: str, pid: int, text: str) -> str:
    return f"{when.strftime('%Y-%m-%dT%H:%M:%S.%f%z')} {host} {ident}[{pid}]: {text}\n"


class Journal:
    def __init__(self, path: Path, host: str, ident: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._host = host
        self._ident = ident

    def write(self, pid: int, text: str) -> None:
        line = format_line(datetime.now().astimezone(), self._host, self._ident, pid, text)
        # A full disk loses lines; it must not take the supervised unit down.
        with contextlib.suppress(OSError):
            os.write(self._fd, line.encode("utf-8", errors="replace"))

    def close(self) -> None:
        os.close(self._fd)


class LineSplitter:
    """Bytes from a pipe in, complete text lines out."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[str]:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        while len(self._buffer) > MAX_LINE:
            lines.append(self._buffer[:MAX_LINE])
            self._buffer = self._buffer[MAX_LINE:]
        return [line.decode("utf-8", errors="replace") for line in lines]

    def flush(self) -> list[str]:
        rest, self._buffer = self._buffer, b""
        return [rest.decode("utf-8", errors="replace")] if rest else []
