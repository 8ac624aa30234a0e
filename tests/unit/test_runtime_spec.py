"""ServiceSpec from a unit's [Service] section, and its JSON form."""
from __future__ import annotations

import math
import os

import pytest

from stackfleet.runtime.spec import ServiceSpec, parse_memory_max
from stackfleet.unit.values import parse_exec


class FakeUnit:
    """The two things from_unit reads: a name and get(section, key) -> values."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self._entries: list[tuple[str, str, str]] = []
        section = ""
        for line in text.strip().splitlines():
            line = line.strip()
            if line.startswith("["):
                section = line.strip("[]")
            elif line:
                key, _, value = line.partition("=")
                self._entries.append((section, key, value))

    def get(self, section: str, key: str) -> list[str]:
        return [v for s, k, v in self._entries if (s, k) == (section, key)]


EXAMPLE = """
[Service]
Environment="A=1" B=2
EnvironmentFile=-/etc/default/x
EnvironmentFile=/etc/y
ExecStartPre=-/bin/rm -f /tmp/x
ExecStartPre=/bin/mkdir -p /tmp/y
ExecStart=/bin/sh -c 'echo hi; exec sleep 1000'
ExecStop=/bin/kill -TERM $MAINPID
Restart=on-failure
RestartSec=1
TimeoutStopSec=5
"""


def test_from_unit_reads_the_example() -> None:
    spec = ServiceSpec.from_unit(FakeUnit("x.service", EXAMPLE))
    assert spec.name == "x.service"
    assert spec.environment == {"A": "1", "B": "2"}
    assert spec.environment_files == [("/etc/default/x", True), ("/etc/y", False)]
    assert [c.argv for c in spec.exec_start_pre] == [
        ("/bin/rm", "-f", "/tmp/x"), ("/bin/mkdir", "-p", "/tmp/y")]
    assert [c.ignore_failure for c in spec.exec_start_pre] == [True, False]
    assert spec.exec_start.argv == ("/bin/sh", "-c", "echo hi; exec sleep 1000")
    assert spec.exec_stop[0].argv == ("/bin/kill", "-TERM", "$MAINPID")
    assert spec.restart == "on-failure"
    assert spec.restart_sec == 1.0
    assert spec.timeout_stop_sec == 5.0
    assert spec.timeout_start_sec == 90.0


def test_from_unit_defaults() -> None:
    spec = ServiceSpec.from_unit(FakeUnit("d.service", "[Service]\nExecStart=/bin/true"))
    assert (spec.restart, spec.restart_sec, spec.timeout_stop_sec, spec.type) == (
        "no", 0.1, 90.0, "simple")
    assert spec.exec_start_pre == [] and spec.environment == {} and not spec.remain_after_exit
    assert (spec.start_limit_interval_sec, spec.start_limit_burst) == (10.0, 5)


def test_from_unit_timeouts_and_limits() -> None:
    unit = FakeUnit("t.service", """
        [Unit]
        StartLimitIntervalSec=0
        StartLimitBurst=9
        [Service]
        ExecStart=/bin/true
        TimeoutSec=7
        TimeoutStartSec=0
        Type=oneshot
        RemainAfterExit=yes
        WorkingDirectory=-/srv
    """)
    spec = ServiceSpec.from_unit(unit)
    assert spec.timeout_start_sec == math.inf  # 0 disables, as in systemd
    assert spec.timeout_stop_sec == 7.0
    assert (spec.start_limit_interval_sec, spec.start_limit_burst) == (0.0, 9)
    assert spec.type == "oneshot" and spec.remain_after_exit
    assert spec.working_directory == "-/srv"


def test_from_unit_empty_value_resets_a_list() -> None:
    unit = FakeUnit("r.service", """
        [Service]
        ExecStartPre=/bin/a
        ExecStartPre=
        ExecStartPre=/bin/b
        ExecStart=/bin/true
    """)
    assert [c.argv[0] for c in ServiceSpec.from_unit(unit).exec_start_pre] == ["/bin/b"]


@pytest.mark.parametrize(
    ("service", "message"),
    [
        ("", "exactly one ExecStart"),
        ("ExecStart=/bin/a\nExecStart=/bin/b", "exactly one ExecStart"),
        ("ExecStart=/bin/a 'open", "ExecStart=/bin/a 'open: unbalanced"),
        ("ExecStart=/bin/a\nRestart=sometimes", "Restart=sometimes"),
        ("ExecStart=/bin/a\nRestartSec=soon", "RestartSec=soon"),
        ("ExecStart=/bin/a\nType=forking", "Type=forking"),
        ("ExecStart=/bin/a\nType=oneshot\nRestart=always", "not allowed for Type=oneshot"),
        ("ExecStart=/bin/a\nRemainAfterExit=maybe", "not a boolean"),
        ("ExecStart=/bin/a\nEnvironment=NOEQ", "NOEQ"),
    ],
)
def test_from_unit_errors_name_the_unit_and_key(service: str, message: str) -> None:
    with pytest.raises(ValueError, match="bad.service") as info:
        ServiceSpec.from_unit(FakeUnit("bad.service", "[Service]\n" + service))
    assert message in str(info.value)


def test_json_round_trip() -> None:
    spec = ServiceSpec.from_unit(FakeUnit("x.service", EXAMPLE))
    spec.timeout_start_sec = math.inf
    spec.exec_stop_post = [parse_exec("-@/bin/sh cleanup -c true")]
    assert ServiceSpec.from_json(spec.to_json()) == spec


def test_from_unit_user_group_and_resource_limits() -> None:
    unit = FakeUnit("x.service", """
        [Service]
        ExecStart=/bin/true
        User=nobody
        Group=65534
        MemoryMax=512M
        CPUQuota=150%
    """)
    spec = ServiceSpec.from_unit(unit)
    assert (spec.user, spec.group) == ("nobody", "65534")
    assert spec.memory_max == 512 * 1024 * 1024
    assert spec.cpu_quota == 1.5
    assert ServiceSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(("text", "expected"), [
    ("1024", 1024), ("2K", 2048), ("1.5G", 3 * 1024**3 // 2), ("infinity", None),
])
def test_memory_max_values(text: str, expected: int | None) -> None:
    assert parse_memory_max(text) == expected


def test_memory_max_percent_is_of_physical_memory() -> None:
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert parse_memory_max("50%") == physical // 2


@pytest.mark.parametrize(("key", "value", "message"), [
    ("MemoryMax", "lots", "MemoryMax=lots"),
    ("MemoryMax", "5Q", "suffix"),
    ("MemoryMax", "-1", "MemoryMax=-1"),
    ("CPUQuota", "20", "percentage"),
    ("CPUQuota", "0%", "above 0%"),
    ("User", "a:b", "user or group name"),
    ("Group", "-x", "user or group name"),
])
def test_bad_user_and_limits_are_refused(key: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match="bad.service") as info:
        ServiceSpec.from_unit(FakeUnit("bad.service", f"[Service]\nExecStart=/bin/a\n{key}={value}"))
    assert message in str(info.value)
