"""What `stackfleet lab status` shows: machine states, the machines' table and the units'
memory and CPU (from each unit's cgroup). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stackfleet.lab.plan import human_bytes


@dataclass(frozen=True)
class MachineStatus:
    name: str
    role: str
    mgmt_ip: str
    state: str
    processes: int
    rss: int  # bytes, summed over every process in the machine's namespace


@dataclass(frozen=True)
class UnitUsage:
    unit: str
    machine: str
    active: str
    memory: int | None  # bytes in use now; None: no accounting for it
    cpu_usec: int | None  # CPU time used since the unit's cgroup was made


def human_cpu(usec: int) -> str:
    """CPU time as systemd's status shows it: 850ms, 12.345s, 3min 2.500s."""
    if usec < 1_000_000:
        return f"{usec // 1000}ms"
    seconds = usec / 1_000_000
    if seconds < 60:
        return f"{seconds:.3f}s"
    return f"{int(seconds // 60)}min {seconds % 60:.3f}s"


def machine_state(netns_exists: bool, links_up: bool, processes: int) -> str:
    """A machine with its cables in runs; cables out with processes left is a partition;
    cables out and nothing running is a halted machine."""
    if not netns_exists:
        return "missing"
    if links_up:
        return "running"
    return "partitioned" if processes else "halted"


def table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Left-aligned columns, two spaces apart, no trailing blanks."""
    widths = [max(len(row[i]) for row in (headers, *rows)) for i in range(len(headers))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in (headers, *rows)]


def format_units(rows: list[UnitUsage]) -> str:
    """One line per unit; '-' where its cgroup gives no figure."""
    cells = [(r.unit, r.machine, r.active,
              human_bytes(r.memory) if r.memory is not None else "-",
              human_cpu(r.cpu_usec) if r.cpu_usec is not None else "-") for r in rows]
    return "\n".join(table(("UNIT", "MACHINE", "ACTIVE", "MEMORY", "CPU"), cells))


def format_status(rows: list[MachineStatus]) -> str:
    headers = ("MACHINE", "ROLE", "MGMT IP", "STATE", "PROCESSES", "RSS")
    cells = [
        (r.name, r.role, r.mgmt_ip, r.state, str(r.processes), human_bytes(r.rss)) for r in rows
    ]
    total = ("TOTAL", "", "", "", str(sum(r.processes for r in rows)),
             human_bytes(sum(r.rss for r in rows)))
    return "\n".join(table(headers, [*cells, total]))
