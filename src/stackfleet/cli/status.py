"""`stackfleet status`: the state of units and the end of their journal, read in one shot."""
from __future__ import annotations

import argparse
import os
from collections import deque
from pathlib import Path

from ..registry.gateway import GatewayReader
from ..registry.records import MachineRecord
from ..runtime import ProcessRuntime
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
                print()
                for line in tail(runtime_of(m).journal_path(name), args.lines):
                    print(line)
            if s.active != "active":
                code = EXIT_NOT_ACTIVE
        print()
    return code


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
