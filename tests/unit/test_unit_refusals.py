"""Unit files that parsed before but cannot run: each refused with file:line and a fix.

Two layers: parse_unit refuses what no systemd-style runtime can run (bad bytes, bad
values); check_unit_set, which verify, submit and start all call, refuses what
stackfleet's own runtime cannot run (support.py).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from stackfleet.unit import check_unit_set, load_unit_file, parse_unit, verify_paths
from test_unit_support import SERVICE, one_error

LONG = "x" * 2048


@pytest.mark.parametrize("text, line, fragment, hint", [
    # bytes that cannot reach exec or the environment
    (SERVICE + "Environment=A=x\0y\n", 3, "NUL byte", "remove it"),
    ("[Service]\nExecStart=/bin/echo \0\n", 2, "NUL byte", "remove it"),
    (SERVICE + "ExecStartPre=/bin/echo one \\\n  two\0\n", 4, "NUL byte", "remove it"),
    (SERVICE + "ExecStartPre=/bin/echo \\x00\n", 3, "escaped NUL", "Command lines"),
    (SERVICE + 'Environment="A=\\000"\n', 3, "escaped NUL", "NAME=value"),
    # fleet's server refuses (go-systemd SYSTEMD_LINE_MAX); old systemd truncated
    (SERVICE + f"ExecStartPre=/bin/echo {LONG}\n", 3, "longer than 2047 bytes", "backslash"),
    (SERVICE + "Environment=A=" + "é" * 1020 + "\n", 3, "longer than 2047 bytes", "backslash"),
    # start limits: the runtime parses them from [Unit]
    ("[Unit]\nStartLimitBurst=many\n" + SERVICE, 2, "StartLimitBurst=many", "count"),
    ("[Unit]\nStartLimitBurst=-1\n" + SERVICE, 2, "StartLimitBurst=-1", "count"),
    ("[Unit]\nStartLimitBurst=1.5\n" + SERVICE, 2, "StartLimitBurst=1.5", "count"),
    ("[Unit]\nStartLimitBurst=²\n" + SERVICE, 2, "StartLimitBurst=²", "count"),
    ("[Unit]\nStartLimitBurst=4294967296\n" + SERVICE, 2, "StartLimitBurst=4294967296", "count"),
    ("[Unit]\nStartLimitIntervalSec=soon\n" + SERVICE, 2, "StartLimitIntervalSec=soon", "5s"),
    ("[Unit]\nStartLimitIntervalSec=-5s\n" + SERVICE, 2, "StartLimitIntervalSec=-5s", "5s"),
    (SERVICE + "StartLimitBurst=x\n", 3, "StartLimitBurst=x", "count"),
    (SERVICE + "StartLimitInterval=x\n", 3, "StartLimitInterval=x", "5s"),
    # paths the agent would resolve against its own directory, on whichever machine
    (SERVICE + "EnvironmentFile=env\n", 3, "not an absolute path", "EnvironmentFile=-/etc"),
    (SERVICE + "EnvironmentFile=-./env\n", 3, "not an absolute path", "EnvironmentFile=-/etc"),
    (SERVICE + "EnvironmentFile=-\n", 3, "not an absolute path", "EnvironmentFile=-/etc"),
    (SERVICE + "EnvironmentFile=/etc/env.d/*.conf\n", 3, "wildcard", "each file"),
    (SERVICE + "EnvironmentFile=-/etc/env?\n", 3, "wildcard", "each file"),
    (SERVICE + "WorkingDirectory=srv/web\n", 3, "not an absolute path", "WorkingDirectory=/"),
    (SERVICE + "WorkingDirectory=-~/x\n", 3, "not an absolute path", "WorkingDirectory=/"),
])
def test_parse_refuses(text: str, line: int, fragment: str, hint: str) -> None:
    err = one_error(text)
    assert (err.line, err.path) == (line, "app.service")
    assert fragment in err.message
    assert err.hint and hint in err.hint


@pytest.mark.parametrize("text", [
    "[Unit]\nStartLimitBurst=0\nStartLimitIntervalSec=0\n" + SERVICE,
    "[Unit]\nStartLimitBurst=4294967295\nStartLimitIntervalSec=infinity\n" + SERVICE,
    SERVICE + "StartLimitInterval=30s\n",
    SERVICE + "EnvironmentFile=-/etc/default/app\nEnvironmentFile=/run/app.env\n",
    SERVICE + "WorkingDirectory=~\n",
    SERVICE + "WorkingDirectory=-/srv/app\n",
    SERVICE + "EnvironmentFile=\nWorkingDirectory=\n",
    "# " + LONG + "\n# \0 in a comment is dropped before anything runs\n" + SERVICE,
    SERVICE + "ExecStartPre=/bin/echo " + "x" * 2000 + "\n",
])
def test_parse_accepts(text: str) -> None:
    parse_unit(text, "app.service")


def test_a_template_path_is_judged_per_instance() -> None:
    text = SERVICE + "WorkingDirectory=%i\n"
    parse_unit(text, "app@.service")
    assert "not an absolute path" in one_error(text, "app@rel.service").message


def run_errors(text: str, name: str = "app.service") -> list[tuple[int, str, str]]:
    """(line, message, hint) of what stackfleet's runtime refuses in a unit that parses."""
    return [(e.line, e.message, e.hint or "") for e in
            check_unit_set([parse_unit(text, name, f"/u/{name}")])]


@pytest.mark.parametrize("text, line, fragment, hint", [
    (SERVICE + "Type=forking\n", 3, "Type=forking is not supported", "foreground"),
    (SERVICE + "Type=dbus\nBusName=a.b\n", 3, "Type=dbus is not supported", "Type=simple"),
    ("[Service]\nType=oneshot\nExecStart=/bin/a\nExecStart=/bin/b\n", 4,
     "more than one ExecStart=", "ExecStartPre="),
    ("[Service]\nType=oneshot\nExecStart=/bin/a\nRestart=always\n", 4,
     "Restart=always cannot be used with Type=oneshot", "on-failure"),
    ("[Service]\nRestart=on-success\nExecStart=/bin/a\nType=oneshot\n", 4,
     "Restart=on-success cannot be used with Type=oneshot", "on-failure"),
])
def test_run_refuses(text: str, line: int, fragment: str, hint: str) -> None:
    [(err_line, message, err_hint)] = run_errors(text)
    assert err_line == line and fragment in message and hint in err_hint


@pytest.mark.parametrize("name, text", [
    ("web.socket", "[Socket]\nListenStream=8080\n"),
    ("all.target", "[Unit]\nDescription=group\n"),
    ("t@.timer", "[Timer]\nOnCalendar=daily\n"),
])
def test_only_services_run(name: str, text: str) -> None:
    [(line, message, hint)] = run_errors(text, name)
    assert line == 0 and "cannot run in stackfleet" in message and ".service" in hint


@pytest.mark.parametrize("text", [
    SERVICE + "Type=simple\n",
    SERVICE + "Type=exec\nRestart=always\n",
    "[Service]\nType=oneshot\nExecStart=/bin/a\nRestart=on-failure\n",
    "[Service]\nType=oneshot\nExecStart=/bin/a\nExecStart=\nExecStart=/bin/b\n",
    SERVICE + "Type=forking\nType=simple\n",  # the last one counts
    SERVICE + "Type=forking\nType=\n",  # reset to the default
])
def test_run_accepts(text: str) -> None:
    assert run_errors(text) == []


def test_a_template_type_is_judged_per_instance() -> None:
    text = SERVICE + "Type=%i\n"
    assert run_errors(text, "app@.service") == []
    assert "Type=forking" in run_errors(text, "app@forking.service")[0][1]


def test_verify_reports_run_errors_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "daemon.service"
    path.write_text(SERVICE + "Type=forking\n")
    units, errors = verify_paths([str(path)])
    assert [u.name for u in units] == ["daemon.service"]
    assert [str(e).split(" (")[0] for e in errors] == [
        f"{path}:3: Type=forking is not supported by stackfleet"]
    # the runtime (and so start) would have refused it too: the same rule, one place
    assert check_unit_set([load_unit_file(str(path))]) == errors
