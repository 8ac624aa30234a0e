"""Known sections and keys, value checks, and a service's ExecStart=."""
from __future__ import annotations

import pytest

from stackfleet.unit import parse_unit
from test_unit_support import SERVICE, errors_of, one_error


def test_a_realistic_unit_is_accepted() -> None:
    text = """\
[Unit]
Description=OpenStack controller
Documentation=https://example.org
After=network-online.target
Wants=network-online.target
ConditionPathExists=/etc/stackfleet
AssertVirtualization=!container

[Service]
Type=simple
Environment="HA_MODE=L3_HA" ROLE=controller
EnvironmentFile=-/etc/stackfleet/env
ExecStartPre=-/bin/mkdir -p /var/lib/stackfleet
ExecStart=/usr/bin/stackfleet role run controller
ExecStop=/bin/kill -TERM $MAINPID
Restart=on-failure
RestartSec=5
TimeoutStartSec=1min 30s
TimeoutStopSec=infinity
LimitNOFILE=65536
KillMode=mixed
RemainAfterExit=no

[Install]
WantedBy=multi-user.target

[X-Fleet]
MachineMetadata=role=controller
"""
    unit = parse_unit(text, "controller.service")
    assert unit.get("Service", "RestartSec") == ["5"]
    assert unit.constraints.machine_metadata == {"role": frozenset({"controller"})}


@pytest.mark.parametrize("text, line, fragment, hint", [
    ("[Service]\nExecStart=/bin/true\n[Servce]\n", 3, "unknown section [Servce]", "[Service]"),
    ("[Service]\nExecStart=/bin/true\n[Timer]\n", 3, "unknown section [Timer]", ".service unit"),
    ("[Service]\nExecStart=/bin/true\n[X-fleet]\n", 3, "unknown section [X-fleet]", "[X-Fleet]"),
    ("[Service]\nExecStart=/bin/true\n[X-Flet]\n", 3, "unknown section [X-Flet]", "[X-Fleet]"),
    ("[Service]\nExecStart=/bin/true\n[ Unit ]\n", 3, "unknown section [ Unit ]", "[Unit]"),
    ("[Unit]\nDescripton=x\n" + SERVICE, 2, "unknown setting Descripton=", "Description"),
    ("[Unit]\nafter=x\n" + SERVICE, 2, "unknown setting after=", "After"),
    (SERVICE + "ExecStrat=/bin/x\n", 3, "unknown setting ExecStrat=", "ExecStart"),
    (SERVICE + "[Install]\nWantedBy=a\nWanted=b\n", 5, "unknown setting Wanted=", "WantedBy"),
    (SERVICE + "Restart=sometimes\n", 3, "Restart=sometimes", "on-failure"),
    (SERVICE + "Type=daemon\n", 3, "Type=daemon", "oneshot"),
    (SERVICE + "KillMode=all\n", 3, "KillMode=all", "control-group"),
    (SERVICE + "RestartSec=soon\n", 3, "RestartSec=soon", "5s"),
    (SERVICE + "TimeoutStopSec=5 parsecs\n", 3, "TimeoutStopSec=5 parsecs", "5s"),
    (SERVICE + "TimeoutStartSec=-1\n", 3, "TimeoutStartSec=-1", "5s"),
    (SERVICE + "RemainAfterExit=perhaps\n", 3, "RemainAfterExit=perhaps", "true or false"),
    (SERVICE + "ExecStartPre=/bin/echo 'open\n", 3, "ExecStartPre=", "Command lines"),
    (SERVICE + "ExecStop=relative/path\n", 3, "ExecStop=", "Command lines"),
    (SERVICE + 'Environment="A=1\n', 3, "Environment=", "NAME=value"),
    (SERVICE + "Environment=1BAD=x\n", 3, "Environment=", "NAME=value"),
    ("[Unit]\nDescription=x\n", 0, "no ExecStart=", "add ExecStart="),
    ("[Service]\nType=simple\n", 1, "no ExecStart=", "add ExecStart="),
    ("[Service]\nExecStart=/bin/a\nExecStart=\n", 1, "no ExecStart=", "add ExecStart="),
    (SERVICE + "ExecStart=/bin/b\n", 3, "more than one ExecStart=", "ExecStartPre="),
])
def test_schema_errors(text: str, line: int, fragment: str, hint: str) -> None:
    err = one_error(text)
    assert err.line == line
    assert fragment in err.message
    assert err.hint and hint in err.hint


def test_condition_and_limit_families_are_allowed() -> None:
    text = "[Unit]\nConditionHost=a\nAssertPathExists=/x\n" + SERVICE + "LimitCORE=0\n"
    assert parse_unit(text, "a.service").get("Service", "LimitCORE") == ["0"]


def test_bare_condition_prefix_is_not_a_key() -> None:
    assert "Condition=" in one_error("[Unit]\nCondition=x\n" + SERVICE).message


def test_oneshot_may_have_several_exec_start() -> None:
    unit = parse_unit("[Service]\nType=oneshot\nExecStart=/bin/a\nExecStart=/bin/b\n", "a.service")
    assert unit.get("Service", "ExecStart") == ["/bin/a", "/bin/b"]


def test_exec_start_reset_then_one_is_fine() -> None:
    unit = parse_unit("[Service]\nExecStart=/bin/a\nExecStart=\nExecStart=/bin/b\n", "a.service")
    assert unit.get("Service", "ExecStart") == ["/bin/b"]


def test_empty_value_resets_without_value_check() -> None:
    unit = parse_unit(SERVICE + "Restart=\nRestartSec=\n", "a.service")
    assert unit.get("Service", "Restart") == []


def test_other_unit_types_need_no_exec_start_and_keep_their_keys() -> None:
    unit = parse_unit("[Socket]\nListenStream=8080\nAnything=goes\n", "web.socket")
    assert unit.get("Socket", "ListenStream") == ["8080"]
    assert parse_unit("[Unit]\nDescription=group\n", "all.target").unit_type == "target"


def test_foreign_extension_sections_are_ignored() -> None:
    unit = parse_unit(SERVICE + "[X-Mine]\nWhatever=1\n", "a.service")
    assert unit.get("X-Mine", "Whatever") == ["1"]


def test_values_are_checked_after_specifier_expansion() -> None:
    errors = errors_of("[Service]\nExecStart=/bin/true\nRestartSec=%i\n", "a@never.service")
    assert [e.line for e in errors] == [3]
    parse_unit("[Service]\nExecStart=/bin/true\nRestartSec=%i\n", "a@7.service")
