"""Helpers for fault tests on the lab: run the CLI, find a machine's processes, read the
beacon unit's log of where and when it ran."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from stackfleet.lab.nsprocs import netns_id, pids_in_netns
from stackfleet.lab.ops import admin_tls
from stackfleet.lab.state import ROOT_ENV, LabInfo
from stackfleet.registry.store import Registry
from stackfleet.runtime.procfs import send

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "units" / "examples"
T = TypeVar("T")


def cli(lab: LabInfo, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    # The lab's root, so that the CLI finds the lab's admin certificate by itself, as it does
    # for a lab at the default root.
    return subprocess.run(
        [sys.executable, "-m", "stackfleet.cli.main", "--endpoint", ",".join(lab.endpoints), *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, ROOT_ENV: lab.root},
    )


def pinned_unit(lab: LabInfo, machine: str, command: str) -> str:
    """A unit of `sh -c command` pinned to a machine by MachineID=: the lab has two compute
    machines, and a test that halts or inspects one must know which runs the unit."""
    info = lab.machine(machine)
    assert info is not None, machine
    return f"[Service]\nExecStart=/bin/sh -c '{command}'\n\n[X-Fleet]\nMachineID={info.machine_id}\n"


def with_registry(lab: LabInfo, body: Callable[[Registry], Awaitable[T]]) -> T:
    async def main() -> T:
        registry = Registry.open(lab.endpoints, tls=admin_tls(lab))
        try:
            return await body(registry)
        finally:
            await registry.close()

    return asyncio.run(main())


def machine_processes(lab: LabInfo, machine: str, needle: str) -> list[int]:
    """PIDs in the machine's namespace whose command line contains needle."""
    ns = netns_id(machine)
    assert ns is not None, f"{machine} has no namespace"
    found = []
    for pid in pids_in_netns(ns):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if needle in cmdline:
            found.append(pid)
    return found


def kill(pids: list[int]) -> None:
    send(pids, signal.SIGKILL)


@dataclass
class Run:
    """One copy of the beacon unit: from its start line to its last line."""

    machine: str
    start: float
    end: float
    stopped: bool  # ended with a stop line (graceful), not just silent (killed)


def beacon_runs(log: Path) -> list[Run]:
    """Copies are told apart by machine; a start line opens a new copy on that machine."""
    runs: list[Run] = []
    current: dict[str, Run] = {}
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        kind, stamp, machine = parts[0], float(parts[1]), parts[2]
        if kind == "start":
            current[machine] = Run(machine, stamp, stamp, False)
            runs.append(current[machine])
        elif machine in current:
            current[machine].end = stamp
            current[machine].stopped = kind == "stop"
    return runs


def overlaps(runs: list[Run]) -> list[tuple[Run, Run]]:
    ordered = sorted(runs, key=lambda r: r.start)
    return [(a, b) for a, b in zip(ordered, ordered[1:], strict=False) if b.start <= a.end]
