"""cat, journal, connect: looking at units where they run (status is in status.py)."""
from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import subprocess
import sys
from pathlib import Path

from ..registry.records import MachineRecord
from ..registry.store import Registry
from .errors import EXIT_NO_SUCH_UNIT, EXIT_NOT_ACTIVE, CommandError
from .status import runtime_of, tail, unit_name
from .view import ClusterView


async def _unit_view(registry: Registry, ref: str) -> tuple[ClusterView, str]:
    view = await ClusterView.load(registry)
    return view, unit_name(view, ref)


def _unit_machine(view: ClusterView, name: str) -> MachineRecord:
    for s in view.states_of(name):
        if s.active == "active" and s.machine in view.machines:
            return view.machines[s.machine]
    for machine_id in sorted(view.schedule.get(name, {})):
        if machine_id in view.machines:
            return view.machines[machine_id]
    reason = view.reasons.get(name)
    raise CommandError(f"{name} is not scheduled to any machine" + (f": {reason}" if reason else ""), EXIT_NOT_ACTIVE)


async def cat(registry: Registry, args: argparse.Namespace) -> int:
    view, name = await _unit_view(registry, args.unit)
    job = view.jobs.get(name)
    body = await registry.body(job.hash) if job else None
    if body is None:
        raise CommandError(f"{name}: its unit body is missing from the cluster", EXIT_NO_SUCH_UNIT)
    print(body, end="" if body.endswith("\n") else "\n")
    return 0


async def journal(registry: Registry, args: argparse.Namespace) -> int:
    view, name = await _unit_view(registry, args.unit)
    machine = _unit_machine(view, name)
    path = runtime_of(machine).journal_path(name)
    if not path.exists():
        return _remote(machine, ["tail", "-n", str(args.lines)] + (["-F"] if args.follow else []) + [str(path)])
    for line in tail(path, args.lines):
        print(line)
    if args.follow:
        await _follow(path)
    return 0


async def _follow(path: Path) -> None:
    with open(path, encoding="utf-8", errors="replace") as f:
        f.seek(0, os.SEEK_END)
        while True:
            line = f.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                await asyncio.sleep(0.2)


async def connect(registry: Registry, args: argparse.Namespace) -> int:
    view = await ClusterView.load(registry)
    ref = os.path.basename(args.target)
    machine = view.find_machine(args.target)
    unit = None
    if machine is None:
        if ref not in view.jobs:
            names = ", ".join(sorted(m.name for m in view.machines.values()))
            raise CommandError(f"{args.target} is neither a unit nor a machine of the cluster (machines: {names})",
                               EXIT_NO_SUCH_UNIT)
        machine, unit = _unit_machine(view, ref), ref
    env = dict(os.environ, STACKFLEET_MACHINE_NAME=machine.name, STACKFLEET_MACHINE_ID=machine.id,
               STACKFLEET_PUBLIC_IP=machine.public_ip, PS1=f"{machine.name}:\\w# ")
    if unit:
        env["STACKFLEET_UNIT"] = unit
    env.update(await _admin_shell_env(registry))
    command = [c for i, c in enumerate(args.remote_command) if i or c != "--"] or ["bash", "--norc", "-i"]
    return _remote(machine, command, env)


async def _admin_shell_env(registry: Registry) -> dict[str, str]:
    """The cloud admin's OS_* variables and the openstack CLI on PATH, once a controller answers
    (the original's `connect` loaded them too); nothing before that."""
    from ..discovery import shared_dir
    from ..openstack.admin import admin_environment
    from ..openstack.etcdlink import EtcdClusterLink, key_file
    from ..openstack.settings import SettingsError
    from ..openstack.venv import default_venv

    link = EtcdClusterLink(registry, key_file(shared_dir()))
    address = (await link.controller()).get("address")
    if not address:
        return {}
    try:
        env = await admin_environment(link, str(address))
    except SettingsError:
        return {}
    return env | {"PATH": f"{default_venv() / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"}


def _remote(machine: MachineRecord, command: list[str], env: dict[str, str] | None = None) -> int:
    """Run a command on the machine: inside its namespace in the lab, else over ssh as fleetctl does."""
    if machine.netns and Path(f"/run/netns/{machine.netns}").exists():
        argv = ["ip", "netns", "exec", machine.netns] + command
    else:
        argv = ["ssh", "-t", f"root@{machine.public_ip}", " ".join(shlex.quote(c) for c in command)]
    sys.stdout.flush()
    return subprocess.call(argv, env=env)
