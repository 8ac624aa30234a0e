"""A stand-in `ip` on PATH that logs its arguments: the real one needs root and a network
namespace."""
from __future__ import annotations

from pathlib import Path

import pytest


def fake_ip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stderr: str = "", code: int = 0) -> Path:
    """An `ip` that appends `UPTIME ARGS` to the returned log and answers with stderr/code."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "ip.log"
    tool = bin_dir / "ip"
    tool.write_text(f"#!/bin/sh\necho \"$(cut -d' ' -f1 /proc/uptime) $*\" >> {log}\n"
                    f"printf '%s' '{stderr}' >&2\nexit {code}\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return log
