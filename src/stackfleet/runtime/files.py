"""Atomic files: readers see the old or the new content, never a torn one."""
from __future__ import annotations

import json
import os
from pathlib import Path


def write_text_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Replaces path with text; with mode (e.g. 0o600 for files that hold passwords) the file has
    that mode from its first byte on, whatever a leftover temporary file had."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 if mode is None else mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        if mode is not None:
            os.fchmod(handle.fileno(), mode)
        handle.write(text)
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: object, mode: int | None = None,
                      indent: int | None = None) -> None:
    write_text_atomic(path, json.dumps(data, sort_keys=True, indent=indent), mode)


def read_json(path: Path) -> object | None:
    """The decoded content, or None when the file is missing or not valid JSON."""
    try:
        with open(path, encoding="utf-8") as handle:
            data: object = json.load(handle)
    except (OSError, ValueError):
        return None
    return data
