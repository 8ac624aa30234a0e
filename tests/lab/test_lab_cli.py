"""The `stackfleet lab` sub-commands through argparse: exit codes and messages."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from stackfleet.lab.cli import register
from stackfleet.lab.state import LabInfo

pytestmark = pytest.mark.lab


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="stackfleet")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_unknown_machine_lists_the_valid_names(lab: LabInfo, capsys) -> None:
    code, _, err = run(capsys, "lab", "halt", "--root", lab.root, "controller-09")
    assert code == 1
    assert "unknown machine 'controller-09'" in err
    assert ", ".join(lab.machine_names()) in err
    assert "Traceback" not in err


def test_commands_without_a_lab_say_how_to_start_one(tmp_path: Path, capsys) -> None:
    for command in ("status", "halt", "partition", "heal"):
        argv = ["lab", command, "--root", str(tmp_path)] + ([] if command == "status" else ["compute-01"])
        code, _, err = run(capsys, *argv)
        assert code == 1
        assert "stackfleet lab up" in err


def test_a_lab_of_another_shape_is_refused(lab: LabInfo, capsys) -> None:
    code, _, err = run(capsys, "lab", "up", "--root", lab.root, "--controllers", "5")
    assert code == 1
    assert "destroy" in err


def test_status_prints_a_row_per_machine_and_the_total(lab: LabInfo, capsys) -> None:
    code, out, _ = run(capsys, "lab", "status", "--root", lab.root)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["MACHINE", "ROLE"]
    assert [line.split()[0] for line in lines[1:]] == lab.machine_names() + ["TOTAL"]


def test_exec_returns_the_command_exit_code(lab: LabInfo, capsys) -> None:
    code, _, _ = run(capsys, "lab", "exec", "--root", lab.root, "compute-01", "--", "sh", "-c", "exit 3")
    assert code == 3
