"""`stackfleet status UNIT` and `stackfleet lab status` show a unit's memory and CPU, read from
its cgroup: CPU that a process which left the unit's session burnt counts too."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from stackfleet.lab.state import LabInfo

from .conftest import poll
from .faults import cli, pinned_unit

pytestmark = pytest.mark.lab
# Up to two seconds of CPU, burnt by a detached child, then idle.
BURN = 'setsid -f timeout 2 sh -c "while :; do :; done"; exec sleep 4242431'


def cpu_seconds(text: str) -> float:
    match = re.search(r"(\d+(?:\.\d+)?)(ms|s)\b", text)
    assert match, text
    return float(match[1]) / (1000 if match[2] == "ms" else 1)


def test_status_and_lab_status_show_memory_and_cpu_per_unit(
        lab: LabInfo, compute: str, tmp_path: Path) -> None:
    unit = tmp_path / "burn.service"
    unit.write_text(pinned_unit(lab, compute, BURN))
    done = cli(lab, "start", "--block-attempts", "60", str(unit))
    assert done.returncode == 0, done.stderr
    try:
        def cpu_line() -> str:
            out = cli(lab, "status", "burn.service").stdout
            return next((line for line in out.splitlines() if line.strip().startswith("CPU:")), "")

        assert poll(lambda: bool(cpu_line()) and cpu_seconds(cpu_line()) >= 0.3, 30), cpu_line()
        status = cli(lab, "status", "burn.service").stdout
        assert re.search(r"^\s+Memory: \d", status, re.M), status
        lab_status = subprocess.run(
            [sys.executable, "-m", "stackfleet.cli.main", "lab", "status", "--root", lab.root],
            capture_output=True, text=True, timeout=60)
        assert lab_status.returncode == 0, lab_status.stderr
        row = next(line for line in lab_status.stdout.splitlines() if line.startswith("burn.service"))
        assert row.split()[1:3] == [compute, "active"], lab_status.stdout
        assert cpu_seconds(row.split()[-1]) >= 0.3, row
    finally:
        cli(lab, "destroy", "burn.service")
