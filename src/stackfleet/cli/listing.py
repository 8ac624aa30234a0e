"""list-machines, list-units, list-unit-files: one-shot reads over etcd's JSON gateway."""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..registry.gateway import GatewayReader
from ..registry.records import UnitState
from .table import render, select_fields
from .view import ClusterView


def list_machines(reader: GatewayReader, args: argparse.Namespace) -> int:
    view = ClusterView.read(reader)
    available = ("machine", "ip", "metadata", "name")
    fields = select_fields(args.fields, available, "machine,ip,metadata")
    rows = []
    for m in sorted(view.machines.values(), key=lambda m: (m.name, m.id)):
        cells = {
            "machine": m.id if args.full else f"{m.id[:8]}...",
            "ip": m.public_ip,
            "metadata": ",".join(f"{k}={v}" for k, v in sorted(m.metadata.items())) or "-",
            "name": m.name,
        }
        rows.append([cells[f] for f in fields])
    print(render([f.upper() for f in fields], rows, not args.no_legend), end="")
    return 0


def list_units(reader: GatewayReader, args: argparse.Namespace) -> int:
    view = ClusterView.read(reader)
    available = ("unit", "machine", "active", "sub", "load", "hash", "dstate")
    fields = select_fields(args.fields, available, "unit,machine,active,sub")
    rows = []
    for name in sorted(set(view.jobs) | {s.name for s in view.states}):
        job = view.jobs.get(name)
        states = view.states_of(name)
        if not states and (job is None or job.desired == "inactive"):
            continue
        each: Sequence[UnitState | None] = states or [None]  # a job placed nowhere still gets its row
        for s in each:
            cells = {
                "unit": name,
                "machine": view.label(s.machine, args.full) if s else "-",
                "active": s.active if s else "-",
                "sub": s.sub if s else "-",
                "load": s.load if s else "-",
                "hash": (s.hash if args.full else s.hash[:7]) if s else "-",
                "dstate": job.desired if job else "-",
            }
            rows.append([cells[f] for f in fields])
    print(render([f.upper() for f in fields], rows, not args.no_legend), end="")
    return 0


def list_unit_files(reader: GatewayReader, args: argparse.Namespace) -> int:
    view = ClusterView.read(reader)
    available = ("unit", "hash", "dstate", "state", "target", "global")
    fields = select_fields(args.fields, available, "unit,hash,dstate,state,target")
    rows = []
    for name, job in sorted(view.jobs.items()):
        targets = sorted(view.schedule.get(name, {}))
        is_global = bool(job.constraints.get("Global"))
        cells = {
            "unit": name,
            "hash": job.hash if args.full else job.hash[:7],
            "dstate": job.desired,
            "state": view.current_state(name),
            "target": ("global" if is_global else ",".join(view.label(t, args.full) for t in targets)) or "-",
            "global": "true" if is_global else "false",
        }
        rows.append([cells[f] for f in fields])
    print(render([f.upper() for f in fields], rows, not args.no_legend), end="")
    return 0
