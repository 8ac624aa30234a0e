"""Bad input on the command line: one clear line, the README's exit code, and nothing changes."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stackfleet.cli.arguments import min_lease_ttl
from stackfleet.registry.localetcd import free_port


def stackfleet(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stackfleet.cli.main", *args], capture_output=True, text=True,
                          timeout=60, env=env)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("endpoint", ["http://h:99999", "http://[::1", ",", "ftp://h:2379"])
@pytest.mark.parametrize("verb", [["list-units"], ["stop", "x.service"], ["config", "show"]])
def test_a_malformed_endpoint_is_bad_input(endpoint: str, verb: list[str]) -> None:
    result = stackfleet("--endpoint", endpoint, *verb)
    assert result.returncode == 1
    assert repr(endpoint) in one_line_error(result)


def test_a_malformed_endpoint_from_the_environment_is_bad_input_too(tmp_path: Path) -> None:
    import os

    result = stackfleet("list-units", env={**os.environ, "STACKFLEET_ENDPOINT": "http://h:99999"})
    assert result.returncode == 1 and "STACKFLEET_ENDPOINT" in one_line_error(result)


@pytest.mark.parametrize("argv, says", [
    (["journal", "--lines", "-1", "x.service"], "-1 is negative"),
    (["status", "-n", "-3", "x.service"], "-3 is negative"),
    (["start", "--block-attempts", "-1", "x.service"], "-1 is negative"),
    (["stop", "--block-attempts", "-1", "x.service"], "-1 is negative"),
    (["openstack", "credentials", "--timeout", "-1"], "more than 0 seconds"),
    (["engine", "--ttl", "1"], "at least 2 s"),
    (["agent", "--ttl", "1", "--public-ip", "127.0.0.1", "--state-dir", "/nonexistent", "--shared-dir", "/x"],
     "at least 2 s"),
    (["lab", "up", "--ttl", "1"], "at least 2 s"),
    (["lab", "up", "--compute", "-1"], "-1 is negative"),
])
def test_values_argparse_can_check_are_usage_errors(argv: list[str], says: str) -> None:
    result = stackfleet("--endpoint", f"http://127.0.0.1:{free_port()}", *argv)
    assert result.returncode == 2
    assert says in result.stderr and "Traceback" not in result.stderr


def test_the_lease_ttl_leaves_room_for_the_fence_margin_and_grace() -> None:
    from stackfleet.agent.fence import FencePolicy

    least = min_lease_ttl()
    assert least == 2
    policy = FencePolicy.for_ttl(least)
    assert policy.margin + policy.grace >= 1.0 and policy.stop_at(0.0) >= 1.0
    assert FencePolicy.for_ttl(least - 1).stop_at(0.0) < 1.0


VERBS = [
    ["list-machines"], ["list-units"], ["list-unit-files"], ["status", "x.service"], ["cat", "x.service"],
    ["journal", "x.service"], ["connect", "x.service"], ["stop", "x.service"], ["unload", "x.service"],
    ["destroy", "x.service"], ["start", "x.service"], ["load", "x.service"], ["submit", "x.service"],
    ["config", "show"], ["config", "get", "region"], ["config", "set", "region", "RegionTwo"],
    ["openstack", "credentials"],
]


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: " ".join(v))
def test_every_verb_exits_69_when_etcd_is_unreachable(verb: list[str], tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    import os

    env = {**os.environ, "STACKFLEET_SHARED_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "stackfleet.cli.main", "--endpoint", endpoint, *verb],
                            capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert result.returncode == 69, result.stderr
    assert endpoint in result.stderr and "Traceback" not in result.stderr
