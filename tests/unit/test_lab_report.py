"""Machine states and the status table (pure)."""

from __future__ import annotations

import pytest

from stackfleet.lab.report import MachineStatus, format_status, machine_state


@pytest.mark.parametrize(
    "exists,links_up,procs,state",
    [(True, True, 3, "running"), (True, True, 0, "running"), (True, False, 2, "partitioned"),
     (True, False, 0, "halted"), (False, False, 0, "missing")],
)
def test_machine_state(exists: bool, links_up: bool, procs: int, state: str) -> None:
    assert machine_state(exists, links_up, procs) == state


def test_status_table_has_a_row_per_machine_and_a_total() -> None:
    rows = [
        MachineStatus("controller-01", "controller", "192.168.10.11", "running", 2, 30 * 1024**2),
        MachineStatus("compute-01", "compute", "192.168.10.31", "halted", 0, 0),
    ]
    lines = format_status(rows).splitlines()
    assert lines[0].split() == ["MACHINE", "ROLE", "MGMT", "IP", "STATE", "PROCESSES", "RSS"]
    assert lines[1].split() == ["controller-01", "controller", "192.168.10.11", "running", "2", "30.0", "MiB"]
    assert lines[2].split() == ["compute-01", "compute", "192.168.10.31", "halted", "0", "0", "B"]
    assert lines[3].split() == ["TOTAL", "2", "30.0", "MiB"]
    # columns line up: every row starts its STATE column at the same offset
    assert len({line.index(word) for line, word in zip(lines[1:3], ("running", "halted"), strict=True)}) == 1
