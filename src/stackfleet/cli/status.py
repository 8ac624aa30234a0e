"""`stackfleet status`: the state of units, their memory and CPU, and the end of their journal,
read in one shot.

Memory and CPU come from the unit's cgroup, read where the journal is read: in the machine's
state dir, so on that machine, or from anywhere in the lab (whose machines share this host).
Agents do not report them to etcd: that would be a write per unit per period, for a figure
that only `status` shows."""
from __future__ import annotations

import argparse
import os
from collections import deque
from pathlib import Path

from ..lab.plan import human_bytes
from ..lab.report import human_cpu
from ..registry.gateway import GatewayReader
from ..registry.records import MachineRecord
from ..runtime import ProcessRuntime
from ..runtime.cgroup import Usage
from ..unit import UnitInvalid, parse_unit
from .errors import EXIT_NO_SUCH_UNIT, EXIT_NOT_ACTIVE, CommandError
from .view import ClusterView


def runtime_of(machine: MachineRecord) -> ProcessRuntime:
    """The runtime layout an agent keeps under its state dir (see cli.daemons.agent)."""
    return ProcessRuntime(Path(machine.state_dir) / "runtime")


def unit_name(view: ClusterView, ref: str) -> str:
    """The unit that ref (a name or a path) names, if the cluster knows it."""
    name = os.path.basename(ref)
    if name not in view.jobs and not view.states_of(name):
        raise CommandError(f"no such unit in the cluster: {name} (see `stackfleet list-unit-files`)", EXIT_NO_SUCH_UNIT)
    return name


def status(reader: GatewayReader, args: argparse.Namespace) -> int:
    view = ClusterView.read(reader)
    names = [unit_name(view, ref) for ref in args.units]
    bodies = reader.bodies(view.jobs[n].hash for n in names if n in view.jobs)
    code = 0
    for name in names:
        job = view.jobs.get(name)
        states = view.states_of(name)
        body = bodies.get(job.hash) if job else None
        description = _description(name, body) if body else ""
        print(f"● {name}" + (f" - {description}" if description else ""))
        print(f"   Target: {job.desired if job else 'destroyed'}" + (f" (hash {job.hash[:7]})" if job else ""))
        if not states:
            reason = view.reasons.get(name)
            print("   Active: inactive (dead)" + (f" — not scheduled: {reason}" if reason else ""))
            code = EXIT_NOT_ACTIVE
        for s in states:
            m = view.machines.get(s.machine)
            print(f"  Machine: {view.label(s.machine)}" + (f" ({m.name})" if m else ""))
            print(f"   Active: {s.active} ({s.sub})" + (f" since {s.since}" if s.since else ""))
            if s.main_pid:
                print(f" Main PID: {s.main_pid}")
            if m is not None:
                runtime = runtime_of(m)
                for line in usage_lines(runtime.usage(name)):
                    print(line)
                print()
                for line in tail(runtime.journal_path(name), args.lines):
                    print(line)
            if s.active != "active":
                code = EXIT_NOT_ACTIVE
        print()
    return code


def usage_lines(usage: Usage | None) -> list[str]:
    """systemctl status's Memory: and CPU: lines, from the unit's cgroup where this host can read
    it (as the journal, in the machine's state dir: on that machine, or anywhere in the lab)."""
    if usage is None:
        return []
    lines = []
    if usage.memory_bytes is not None:
        lines.append(f"   Memory: {human_bytes(usage.memory_bytes)}")
    if usage.cpu_usec is not None:
        lines.append(f"      CPU: {human_cpu(usage.cpu_usec)}")
    return lines


def _description(name: str, body: str) -> str:
    try:
        return " ".join(parse_unit(body, name).get("Unit", "Description"))
    except UnitInvalid:
        return ""


def tail(path: Path, lines: int) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n") for line in deque(f, maxlen=lines)]
    except FileNotFoundError:
        return []
