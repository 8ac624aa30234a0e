"""Directives stackfleet accepts and ignores: verify warns, naming the line; the support
table agrees with what the runtime reads; --strict and --json carry the warnings."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stackfleet.cli.main import build_parser, main
from stackfleet.runtime.spec import SERVICE_TYPES, ServiceSpec
from stackfleet.unit import check_unit_set, parse_unit, unit_warnings, verify_paths
from stackfleet.unit.schema import TYPE_VALUES
from stackfleet.unit.support import DIRECTIVES, Support
from test_unit_support import SERVICE

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "units").glob("*.service")) + sorted((ROOT / "units" / "examples").glob("*.service"))


def warnings_of(text: str, name: str = "app.service") -> list[tuple[int, str, str]]:
    unit = parse_unit(text, name, f"/u/{name}")
    assert check_unit_set([unit]) == []  # a warning never refuses a unit
    return [(w.line, w.message, w.hint or "") for w in unit_warnings(unit)]


@pytest.mark.parametrize("text, line, shown, hint", [
    (SERVICE + "SupplementaryGroups=adm\n", 3, "SupplementaryGroups=", "groups of User="),
    (SERVICE + "PermissionsStartOnly=yes\n", 3, "PermissionsStartOnly=", "runs as User="),
    (SERVICE + "NoNewPrivileges=yes\n", 3, "NoNewPrivileges=", "sandboxing"),
    (SERVICE + "ProtectSystem=strict\n", 3, "ProtectSystem=", "sandboxing"),
    (SERVICE + "PrivateTmp=yes\n", 3, "PrivateTmp=", "sandboxing"),
    (SERVICE + "MemoryLimit=1G\n", 3, "MemoryLimit=", "resource limit"),
    (SERVICE + "TasksMax=10\n", 3, "TasksMax=", "resource limit"),
    (SERVICE + "LimitNOFILE=65536\n", 3, "LimitNOFILE=", "resource limit"),
    (SERVICE + "KillMode=process\n", 3, "KillMode=", "SIGTERM"),
    (SERVICE + "KillSignal=SIGINT\n", 3, "KillSignal=", "SIGTERM"),
    (SERVICE + "ExecReload=/bin/kill -HUP $MAINPID\n", 3, "ExecReload=", "no reload"),
    (SERVICE + "ExecCondition=/bin/false\n", 3, "ExecCondition=", "without running it"),
    (SERVICE + "SuccessExitStatus=3\n", 3, "SuccessExitStatus=", "exit status 0"),
    (SERVICE + "WatchdogSec=5\n", 3, "WatchdogSec=", "start and stop timeouts"),
    (SERVICE + "StandardOutput=null\n", 3, "StandardOutput=", "journal"),
    (SERVICE + "UnsetEnvironment=PATH\n", 3, "UnsetEnvironment=", "Environment="),
    (SERVICE + "StartLimitBurst=3\n", 3, "StartLimitBurst=", "[Unit]"),
    (SERVICE + "Type=notify\n", 3, "Type=notify", "Type=simple"),
    (SERVICE + "Type=idle\n", 3, "Type=idle", "Type=simple"),
    (SERVICE + "Restart=on-watchdog\n", 3, "Restart=on-watchdog", "Restart=on-failure"),
    ("[Unit]\nAfter=network-online.target\n" + SERVICE, 2, "After=", "MachineOf="),
    ("[Unit]\nRequires=db.service\n" + SERVICE, 2, "Requires=", "MachineOf="),
    ("[Unit]\nConditionPathExists=/etc/x\n" + SERVICE, 2, "ConditionPathExists=", "without this check"),
    ("[Unit]\nStartLimitAction=reboot\n" + SERVICE, 2, "StartLimitAction=", "job queue"),
    (SERVICE + "[Install]\nWantedBy=multi-user.target\n", 4, "WantedBy=", "stackfleet start"),
])
def test_ignored_directives_warn_at_their_line(text: str, line: int, shown: str, hint: str) -> None:
    [(w_line, message, w_hint)] = warnings_of(text)
    assert w_line == line
    assert message == f"{shown} is accepted and ignored"
    assert hint in w_hint


def test_every_warning_of_a_unit_in_line_order() -> None:
    text = "[Unit]\nAfter=a.service\n[Service]\nPrivateTmp=yes\nExecStart=/bin/true\nTasksMax=9\n"
    assert [(line, m.split(" ")[0]) for line, m, _ in warnings_of(text)] == [
        (2, "After="), (4, "PrivateTmp="), (6, "TasksMax=")]


def test_implemented_directives_do_not_warn() -> None:
    text = """\
[Unit]
Description=d
Documentation=https://example.org
StartLimitIntervalSec=10
StartLimitBurst=3
[Service]
Type=exec
Environment=A=1
EnvironmentFile=-/etc/default/app
WorkingDirectory=/tmp
ExecStartPre=/bin/true
ExecStart=/bin/true
ExecStartPost=/bin/true
ExecStop=/bin/true
ExecStopPost=/bin/true
Restart=on-failure
RestartSec=1
TimeoutSec=5
TimeoutStartSec=5
TimeoutStopSec=5
RemainAfterExit=no
[X-Fleet]
MachineMetadata=role=a
"""
    assert warnings_of(text) == []


def test_reset_directives_and_later_overrides_do_not_warn() -> None:
    assert warnings_of(SERVICE + "PrivateTmp=\n") == []
    assert warnings_of(SERVICE + "PrivateTmp=yes\nPrivateTmp=\n") == []
    assert [line for line, _, _ in warnings_of(
        "[Unit]\nAfter=a\nAfter=\nAfter=b\nAfter=c\n" + SERVICE)] == [4, 5]
    assert warnings_of(SERVICE + "Type=notify\nType=simple\n") == []


class RecordingUnit:
    """A unit that records which (section, key) ServiceSpec.from_unit asks for."""

    name = "app.service"

    def __init__(self) -> None:
        self.asked: set[tuple[str, str]] = set()

    def get(self, section: str, key: str) -> list[str]:
        self.asked.add((section, key))
        return ["/bin/true"] if (section, key) == ("Service", "ExecStart") else []


def test_the_table_says_supported_exactly_for_what_the_runtime_reads() -> None:
    """When the runtime learns a directive (as it learnt User=), this fails until its row says SUPPORTED."""
    unit = RecordingUnit()
    ServiceSpec.from_unit(unit)
    metadata = {("Unit", "Description"), ("Unit", "Documentation"), ("Unit", "SourcePath")}
    supported = {(section, key) for section, rows in DIRECTIVES.items()
                 for key, row in rows.items() if row.support is Support.SUPPORTED}
    assert supported - metadata == unit.asked


def test_the_type_values_the_runtime_lacks_are_refused() -> None:
    refused = {value for value, row in DIRECTIVES["Service"]["Type"].values.items()
               if row.support is Support.REFUSED}
    assert refused == set(TYPE_VALUES) - set(SERVICE_TYPES)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_units_verify_clean_without_warnings(path: Path) -> None:
    units, errors = verify_paths([str(path)])
    assert errors == [] and [unit_warnings(u) for u in units] == [[]]


# --- the CLI -----------------------------------------------------------------------------------

def run_verify(*argv: str) -> int:
    return main(["verify", *argv])


@pytest.fixture
def warned(tmp_path: Path) -> Path:
    path = tmp_path / "app.service"
    path.write_text(SERVICE + "PrivateTmp=yes\n")
    return path


def test_warnings_do_not_change_the_exit_code(warned: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_verify(str(warned)) == 0
    out, err = capsys.readouterr()
    assert f"{warned}:3: warning: PrivateTmp= is accepted and ignored (the unit runs without this sandboxing)" in err
    assert "ok (app.service" in out and "1 warning(s)" in out


def test_strict_makes_warnings_errors(warned: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert run_verify("--strict", str(warned)) == 1
    out, err = capsys.readouterr()
    assert out == "" and f"{warned}:3: warning: PrivateTmp=" in err
    clean = tmp_path / "clean.service"
    clean.write_text(SERVICE)
    assert run_verify("--strict", str(clean)) == 0


def test_strict_is_documented_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser("verify").parse_args(["verify", "--help"])
    out = capsys.readouterr().out
    assert "--strict" in out and "warnings as errors" in out


def test_json_carries_warnings_apart_from_errors(warned: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.service"
    bad.write_text(SERVICE + "Type=forking\n")
    result = subprocess.run([sys.executable, "-m", "stackfleet.cli.main", "verify", "--json",
                             str(warned), str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    parsed = {u["name"]: u for u in json.loads(result.stdout)}
    assert parsed["app.service"]["warnings"] == [{
        "path": str(warned), "line": 3, "message": "PrivateTmp= is accepted and ignored",
        "hint": "the unit runs without this sandboxing"}]
    assert parsed["bad.service"]["warnings"] == []
    assert f"{bad}:3: Type=forking is not supported" in result.stderr
