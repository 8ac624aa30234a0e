"""What `stackfleet lab status` shows: machine states and the table. Pure."""

from __future__ import annotations

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


def machine_state(netns_exists: bool, links_up: bool, processes: int) -> str:
    """A machine with its cables in runs; cables out with processes left is a partition;
    cables out and nothing running is a halted machine."""
    if not netns_exists:
        return "missing"
    if links_up:
        return "running"
    return "partitioned" if processes else "halted"


def format_status(rows: list[MachineStatus]) -> str:
    headers = ("MACHINE", "ROLE", "MGMT IP", "STATE", "PROCESSES", "RSS")
    cells = [
        (r.name, r.role, r.mgmt_ip, r.state, str(r.processes), human_bytes(r.rss)) for r in rows
    ]
    total = ("TOTAL", "", "", "", str(sum(r.processes for r in rows)),
             human_bytes(sum(r.rss for r in rows)))
    widths = [max(len(row[i]) for row in (headers, *cells, total)) for i in range(len(headers))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()

    return "\n".join([line(headers), *(line(c) for c in cells), line(total)])
