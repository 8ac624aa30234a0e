"""A stand-alone cloud on 127.0.0.1 for the tests that run real OpenStack services.

Roles run as `python -m stackfleet.openstack role run ROLE` with a FileClusterLink, exactly as a
unit's ExecStart would run them; the sample workflow runs inside the OpenStack venv.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stackfleet.openstack.role_supervisor import _children_of
from stackfleet.openstack.venv import REPO_ROOT, default_venv
from stackfleet.runtime.procfs import is_running, send

from . import browser as browser_mod

ADDRESS = "127.0.0.1"
READY_TIMEOUT = 240.0
# Lines for the run's summary (where the screenshots are, what was measured): pytest captures a
# passing test's output, and CI's log should still say where the artifacts went.
SUMMARY: list[str] = []


def pytest_terminal_summary(terminalreporter) -> None:
    for line in dict.fromkeys(SUMMARY):
        terminalreporter.write_line(line)


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if not (default_venv() / "bin" / "nova-compute").exists():
        return "needs the OpenStack venv: run scripts/install-openstack"
    for tool in ("mariadbd", "memcached", "epmd"):
        if shutil.which(tool) is None:
            return f"needs {tool}: run scripts/install-openstack"
    return None


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(_children_of(current))
    return found


def alive(pid: int) -> bool:
    """Running and not a zombie (PID 1 here reaps late, so kill -0 is not enough)."""
    return is_running(pid, None)


class Cloud:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.cluster = root / "cluster"
        self.shared = root / "shared"
        self.procs: dict[str, subprocess.Popen] = {}
        # One host, one netns: the compute role runs Nova's fake driver and no data plane of its
        # own (a second Open vSwitch here would fight the network role's over br-int).
        self.env = {**os.environ, "STACKFLEET_STANDALONE_DIR": str(self.cluster),
                    "PYTHONPATH": str(REPO_ROOT / "src"), "STACKFLEET_VIRT_DRIVER": "fake"}
        self.measured: dict[str, float] = {}

    def cli(self, *args: str, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "stackfleet.openstack", *args], env=self.env,
                              stdin=stdin, capture_output=True, text=True, timeout=120)

    def start(self, role: str, host: str, address: str = ADDRESS) -> subprocess.Popen:
        out = open(self.root / f"{role}.out", "a")
        proc = subprocess.Popen(
            [sys.executable, "-m", "stackfleet.openstack", "role", "run", role,
             "--address", address, "--shared-dir", str(self.shared),
             "--state-dir", str(self.root / "state"), "--host", host],
            env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs[role] = proc
        return proc

    def output(self, role: str) -> str:
        return (self.root / f"{role}.out").read_text()

    def published(self) -> dict:
        try:
            return json.loads((self.cluster / "controller.json").read_text())
        except FileNotFoundError:
            return {}

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> float:
        started = time.monotonic()
        while True:
            ready = self.published().get("ready", {})
            if ready and all(ready.values()):
                return time.monotonic() - started
            proc = self.procs["controller"]
            if proc.poll() is not None:
                raise AssertionError(f"controller exited {proc.returncode}:\n"
                                     f"{self.output('controller')[-3000:]}")
            if time.monotonic() - started > timeout:
                raise AssertionError(f"controller not ready in {timeout} s: {ready}")
            time.sleep(0.2)

    def kill_role(self, role: str) -> int:
        """SIGKILL of the role and every process under it, all at once: a machine dying."""
        proc = self.procs.pop(role)
        pids = descendants(proc.pid)
        send(pids, signal.SIGKILL)
        proc.wait()
        return len(pids)

    def stop_role(self, role: str, timeout: float = 60) -> tuple[int, list[int]]:
        """SIGTERM; returns the exit code and the processes of the role that outlived it."""
        proc = self.procs.pop(role)
        pids = descendants(proc.pid)[1:]
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout)
        return code, [pid for pid in pids if alive(pid)]

    def credentials_env(self) -> dict[str, str]:
        result = self.cli("openstack", "credentials", "--format", "openrc")
        assert result.returncode == 0, result.stderr
        env = dict(self.env)
        for word in shlex.split(result.stdout, comments=True):
            if word != "export":
                key, value = word.split("=", 1)
                env[key] = value
        return env

    def workflow(self, command: str, record: Path, timeout: float = 300) -> str:
        result = subprocess.run(
            [str(default_venv() / "bin" / "python"), "-m", "stackfleet.openstack.workflow",
             command, str(record)], env=self.credentials_env(), capture_output=True, text=True,
            timeout=timeout)
        assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def wait_agents(self, host: str, timeout: float = 120) -> list[dict]:
        """Waits until the network role's four agents on `host` report alive."""
        wanted = {"Open vSwitch agent", "DHCP agent", "L3 agent", "Metadata agent"}
        started = time.monotonic()
        while True:
            agents = [a for a in json.loads(self.workflow("agents", self.root / "unused"))
                      if a["host"] == host and a["alive"]]
            if {a["type"] for a in agents} == wanted:
                return agents
            assert time.monotonic() - started < timeout, f"agents on {host}: {agents}"
            time.sleep(1)

    def role_namespaces(self, role: str) -> list[str]:
        """`ip netns list` inside the role's own mount namespace."""
        out = subprocess.run(["nsenter", "-m", "-t", str(self.procs[role].pid), "ip", "netns",
                              "list"], capture_output=True, text=True).stdout
        return [line.split()[0] for line in out.splitlines() if line.strip()]

    def pss_mib(self, role: str) -> float:
        """Proportional set size of the role's processes (shared pages counted once)."""
        total = 0
        for pid in descendants(self.procs[role].pid):
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def stop_all(self) -> None:
        for role in list(self.procs):
            proc = self.procs[role]
            if proc.poll() is None:
                self.stop_role(role)
            else:
                self.procs.pop(role)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    reason = _missing()
    if reason:
        pytest.skip(reason)
    cloud = Cloud(tmp_path_factory.mktemp("cloud"))
    # One host: no lab NICs, and no VIP (the controller serves at 127.0.0.1).
    for key in ("tunnel_interface", "external_interface", "vip"):
        assert cloud.cli("config", "set", key, "none").returncode == 0
    yield cloud
    cloud.stop_all()
    for name, value in cloud.measured.items():
        print(f"MEASURED {name}: {value:.1f}")
    shutil.rmtree(cloud.root, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    """One chromium per module: in the roles module it stays open while the controller moves."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    reason = browser_mod.chromium_missing()
    if reason:
        pytest.skip(reason)
    b = browser_mod.Browser(browser_mod.ARTIFACTS)
    yield b
    b.quit()
    SUMMARY.extend(f"screenshot {path}" for path in b.shots)
