"""Atomic JSON files: readers see the old or the new content, never a torn one."""
from __future__ import annotations

import json
import os
from pathlib import Path


def write_json_atomic(path: Path, data: object) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, sort_keys=True)
    os.replace(tmp, path)


def read_json(path: Path) -> object | None:
    """The decoded content, or None when the file is missing or not valid JSON."""
    try:
        with open(path, encoding="utf-8") as handle:
            data: object = json.load(handle)
    except (OSError, ValueError):
        return None
    return data
