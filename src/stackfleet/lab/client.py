"""Talking to the lab supervisor over its unix socket, and starting it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from stackfleet.lab import nsprocs
from stackfleet.lab.supervisor import PID_NAME, SOCKET_NAME, read_line


class SupervisorUnavailable(RuntimeError):
    """No supervisor answers at this lab root."""


class SupervisorError(RuntimeError):
    """The supervisor answered with an error."""


def request(root: Path, payload: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    path = root / SOCKET_NAME
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise SupervisorUnavailable(f"no lab supervisor at {path}") from exc
        sock.sendall(json.dumps(payload).encode() + b"\n")
        data = read_line(sock)
    finally:
        sock.close()
    if not data:
        raise SupervisorUnavailable(f"the lab supervisor at {path} closed the connection")
    reply: dict[str, Any] = json.loads(data)
    if not reply.get("ok"):
        raise SupervisorError(str(reply.get("error")))
    return reply


def ping(root: Path) -> int | None:
    """The supervisor's PID when it answers, else None."""
    try:
        return int(request(root, {"op": "ping"}, timeout=2.0)["pid"])
    except (SupervisorUnavailable, OSError):
        return None


def recorded_pid(root: Path) -> int | None:
    """The PID in ROOT/supervisor.pid, if that process still runs the supervisor."""
    try:
        pid = int((root / PID_NAME).read_text())
        cmdline = (nsprocs.PROC / str(pid) / "cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"stackfleet.lab.supervisor" in cmdline and nsprocs.is_alive(pid) else None


def ensure_running(root: Path, timeout: float = 10.0) -> int:
    """The supervisor's PID, starting it (detached, outliving the caller) when none answers."""
    pid = ping(root)
    if pid is not None:
        return pid
    launcher = subprocess.run(
        [sys.executable, "-m", "stackfleet.lab.supervisor", "--detach", str(root)],
        capture_output=True, text=True,
    )
    if launcher.returncode != 0:
        raise SupervisorUnavailable(f"could not start the lab supervisor: {launcher.stderr}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = ping(root)
        if pid is not None:
            return pid
        time.sleep(0.05)
    raise SupervisorUnavailable(
        f"the lab supervisor did not answer within {timeout:.0f} s; see {root / 'supervisor.log'}"
    )

