"""Shared lab fixtures: one small lab per test session, brought back to full health per test.

`lab` (function scope) yields a LabInfo for a lab of 3 controllers, 2 network and 2 compute machines in a temporary
root. Every test gets every machine up, links up and etcd healthy, whatever the previous test
did (halt, partition, even destroy). The session always ends with `lab destroy`.

Which processes run: $STACKFLEET_LAB_PROCESSES (comma list of etcd,engine,agent) if set;
otherwise all of them when `stackfleet agent --help` works, else etcd alone.

The lab's root is temporary. With $STACKFLEET_LAB_LOGS set to a folder, the session copies every
log of it there before the destroy (machines' daemons, roles, unit journals): what a failure in
CI leaves to read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stackfleet.lab import net, ops
from stackfleet.lab.plan import BRIDGES, Counts
from stackfleet.lab.processes import PROCESS_KINDS
from stackfleet.lab.state import LabInfo

# Two network machines (L3_HA's primary and backup) and two compute machines (east-west
# traffic between guests crosses the tunnel network).
LAB_COUNTS = Counts(controllers=3, network=2, compute=2, nova_docker=0)
ETCDCTL_TIMEOUT = 15.0


def lab_processes() -> tuple[str, ...]:
    chosen = os.environ.get("STACKFLEET_LAB_PROCESSES")
    if chosen:
        return tuple(k.strip() for k in chosen.split(","))
    stackfleet = Path(sys.prefix) / "bin" / "stackfleet"
    works = all(
        subprocess.run([stackfleet, cmd, "--help"], capture_output=True).returncode == 0
        for cmd in ("agent", "engine")
    )
    return PROCESS_KINDS if works else ("etcd",)


def lab_prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "the lab tests need root"
    missing = [tool for tool in ("ip", "etcd", "etcdctl") if shutil.which(tool) is None]
    return f"missing tools: {', '.join(missing)}" if missing else None


@dataclass
class LabSession:
    root: Path
    kinds: tuple[str, ...]

    def ensure_up(self) -> LabInfo:
        return ops.up(self.root, LAB_COUNTS, ttl=None, kinds=self.kinds)


@pytest.fixture(scope="session")
def lab_session() -> Iterator[LabSession]:
    reason = lab_prerequisites()
    if reason:
        pytest.skip(reason)
    if any(net.link_exists(b) for b in BRIDGES):
        pytest.fail(f"a lab is already up on this host ({', '.join(BRIDGES)} exist); "
                    "`stackfleet lab destroy` it before running the lab tests")
    root = Path(tempfile.mkdtemp(prefix="stackfleet-lab-test-"))
    session = LabSession(root, lab_processes())
    try:
        yield session
    finally:
        try:
            keep_logs(root, os.environ.get("STACKFLEET_LAB_LOGS"))
            ops.destroy(root)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def keep_logs(root: Path, into: str | None) -> None:
    if not into:
        return
    for log in root.rglob("*.log"):
        if log.is_file() and not log.is_symlink():
            copy = Path(into) / log.relative_to(root)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(log, copy)


@pytest.fixture
def lab(lab_session: LabSession) -> LabInfo:
    """The lab, every machine up and etcd healthy."""
    return lab_session.ensure_up()


@pytest.fixture
def compute(lab: LabInfo) -> str:
    """The first compute machine, for a test that runs a unit there (faults.pinned_unit)."""
    if "agent" not in lab.processes:
        pytest.skip("this lab runs no agents")
    return next(m.name for m in lab.machines if m.role == "compute")


Etcdctl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def etcdctl(lab: LabInfo) -> Etcdctl:
    """etcdctl(*args, endpoints=[...], timeout=s) against the lab (all endpoints by default)."""

    def run(*args: str, endpoints: list[str] | None = None,
            timeout: float = ETCDCTL_TIMEOUT) -> subprocess.CompletedProcess[str]:
        admin = ops.admin_tls(lab)  # the lab is TLS only: etcdctl needs the admin's certificate
        command = ["etcdctl", "--endpoints", ",".join(endpoints or lab.endpoints),
                   f"--cacert={admin.ca_file}", f"--cert={admin.cert_file}", f"--key={admin.key_file}",
                   "--dial-timeout=1s", "--command-timeout=2s", *args]
        env = dict(os.environ, ETCDCTL_API="3")
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)

    return run


def poll(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """True as soon as `condition()` holds; False if it still does not after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


@pytest.fixture
def wait_until() -> Callable[[Callable[[], bool], float], bool]:
    return poll


@pytest.fixture(scope="session")
def l3ha_cloud(lab_session: LabSession) -> Iterator[dict[str, object]]:
    """The L3_HA cloud, seeded, for every module that tells a story on it (openstack_cloud.py):
    one cold start per session."""
    from .openstack_cloud import openstack_venv_missing, start_and_seed, stop

    if openstack_venv_missing():
        pytest.skip("needs the OpenStack venv (scripts/install-openstack)")
    if "agent" not in lab_session.ensure_up().processes:
        pytest.skip("this lab runs no agents")
    cloud = start_and_seed(lab_session, "seed-record.json")
    yield cloud
    stop(cloud["lab"])
