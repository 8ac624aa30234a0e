"""Reaching servers as their user does: from the lab machine `outside` (the laptop of the original
README), by floating IP, with ping and with `ssh -i myKey.pem cirros@FLOATING_IP`.

The argv builders and the ping parser are pure; `run` executes inside the outside machine's
network namespace, as `stackfleet lab exec outside -- ...` does.
"""
from __future__ import annotations

import re
import shlex
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stackfleet.lab.plan import OUTSIDE_NAME

GUEST_USER = "cirros"
# A fresh server has a fresh host key, and the same floating IP may come back on another server.
SSH_OPTIONS = ("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR")
RTT = re.compile(r"= [\d.]+/([\d.]+)/[\d.]+(?:/[\d.]+)? ms")
RECEIVED = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")


def ssh_argv(key: Path, address: str, command: str) -> list[str]:
    return ["ssh", *SSH_OPTIONS, "-i", str(key), f"{GUEST_USER}@{address}", command]


def ssh_via_argv(key: Path, jump: str, address: str, command: str) -> list[str]:
    """ssh to a server that has no floating IP (`address`, its fixed IP) through the one at `jump`
    (its floating IP): the guest's dropbear forwards the TCP connection (`ssh -W`). ProxyCommand
    rather than -J, which would not pass the key and options on to the jump."""
    proxy = shlex.join(["ssh", *SSH_OPTIONS, "-i", str(key), "-W", "%h:%p", f"{GUEST_USER}@{jump}"])
    return ["ssh", *SSH_OPTIONS, "-o", f"ProxyCommand={proxy}", "-i", str(key),
            f"{GUEST_USER}@{address}", command]


def ping_argv(address: str, count: int = 3, interval: float = 0.2, wait: int = 2) -> list[str]:
    return ["ping", "-n", "-c", str(count), "-i", str(interval), "-W", str(wait), address]


@dataclass(frozen=True)
class PingResult:
    sent: int
    received: int
    avg_ms: float | None


def parse_ping(output: str) -> PingResult:
    """iputils' (and busybox's) summary lines (pure)."""
    counts = RECEIVED.search(output)
    rtt = RTT.search(output)
    return PingResult(sent=int(counts.group(1)) if counts else 0,
                      received=int(counts.group(2)) if counts else 0,
                      avg_ms=float(rtt.group(1)) if rtt else None)


def outside_argv(argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", OUTSIDE_NAME, *argv]


def run(argv: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Runs `argv` on the outside machine; a timeout comes back as exit code 124."""
    try:
        return subprocess.run(outside_argv(argv), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return subprocess.CompletedProcess(list(argv), 124, out, "timed out")


def ping(address: str, count: int = 3) -> PingResult:
    return parse_ping(run(ping_argv(address, count), timeout=count + 10).stdout)


def ssh(key: Path, address: str, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run(ssh_argv(key, address, command), timeout)


def wait_for_ssh(key: Path, address: str, timeout: float) -> float:
    """Seconds until `ssh ... true` logs in; raises TimeoutError with the last error."""
    started = time.monotonic()
    while True:
        done = ssh(key, address, "true", timeout=15)
        if done.returncode == 0:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"no ssh login to {address} in {timeout:.0f} s: "
                               f"{(done.stderr or done.stdout).strip()[-300:]}")
        time.sleep(1)
