"""The CLI's offline behaviour: verify, tables, argument checks, an unreachable cluster."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stackfleet.cli.context import CommandError
from stackfleet.cli.daemons import parse_metadata
from stackfleet.cli.table import render
from stackfleet.registry.localetcd import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "units" / "examples"


def stackfleet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stackfleet.cli.main", *args],
                          capture_output=True, text=True, timeout=60)


def test_verify_accepts_the_examples_and_prints_constraints_as_json() -> None:
    result = stackfleet("verify", "--json", str(EXAMPLES / "beacon.service"), str(EXAMPLES / "probe.service"))
    assert result.returncode == 0, result.stderr
    parsed = {u["name"]: u for u in json.loads(result.stdout)}
    assert parsed["beacon.service"]["exclusive"] is True
    assert parsed["beacon.service"]["constraints"]["MachineMetadata"] == {"role": ["controller"]}
    assert parsed["probe.service"]["constraints"]["Global"] is True


def test_verify_reports_file_line_and_exits_non_zero(tmp_path: Path) -> None:
    bad = tmp_path / "bad.service"
    bad.write_text("[Service]\nExecStart=/bin/true\n\n[X-Fleet]\nGlobal=true\nMachineID=abc\n")
    good = tmp_path / "good.service"
    good.write_text("[Service]\nExecStart=/bin/true\n")
    result = stackfleet("verify", str(good), str(bad))
    assert result.returncode == 1
    assert f"{bad}:6:" in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_cluster_exits_69_without_a_traceback() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    result = stackfleet("--endpoint", endpoint, "list-units")
    assert result.returncode == 69
    assert endpoint in result.stderr and "Traceback" not in result.stderr


def test_usage_errors_exit_2() -> None:
    assert stackfleet("start").returncode == 2
    assert stackfleet("no-such-verb").returncode == 2


def test_tables_align_like_fleetctl_tabwriter() -> None:
    out = render(["UNIT", "MACHINE", "ACTIVE", "SUB"],
                 [["controller.service", "01df5f39.../192.168.10.13", "active", "running"],
                  ["compute.service", "68b75b56.../192.168.10.31", "active", "running"]])
    assert out.splitlines() == [
        "UNIT\t\t\tMACHINE\t\t\t\tACTIVE\tSUB",
        "controller.service\t01df5f39.../192.168.10.13\tactive\trunning",
        "compute.service\t\t68b75b56.../192.168.10.31\tactive\trunning",
    ]
    assert render(["A", "B"], [["x", "y"]], legend=False) == "x\ty\n"


def test_metadata_flags_parse_and_reject_malformed_pairs() -> None:
    assert parse_metadata(["role=controller,disk=ssd", "zone=a"]) == {"role": "controller", "disk": "ssd", "zone": "a"}
    for bad in ("role", "=x", "role="):
        with pytest.raises(CommandError):
            parse_metadata([bad])
