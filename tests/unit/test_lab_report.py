"""Machine states and the status table (pure)."""

from __future__ import annotations

import pytest

from stackfleet.lab.report import MachineStatus, UnitUsage, format_status, format_units, human_cpu, machine_state


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


def test_cpu_time_reads_as_systemd_shows_it() -> None:
    assert human_cpu(850_000) == "850ms"
    assert human_cpu(12_345_000) == "12.345s"
    assert human_cpu(182_500_000) == "3min 2.500s"


def test_unit_table_has_memory_and_cpu_and_a_dash_where_the_cgroup_gives_none() -> None:
    lines = format_units([
        UnitUsage("web.service", "compute-01", "active", 12 * 1024**2, 1_500_000),
        UnitUsage("db.service", "controller-01", "active", None, 20_000),
    ]).splitlines()
    assert lines[0].split() == ["UNIT", "MACHINE", "ACTIVE", "MEMORY", "CPU"]
    assert lines[1].split() == ["web.service", "compute-01", "active", "12.0", "MiB", "1.500s"]
    assert lines[2].split() == ["db.service", "controller-01", "active", "-", "20ms"]
