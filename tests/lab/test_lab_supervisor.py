"""The supervisor: parent and reaper of every lab process, adopted orphans included."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from stackfleet.lab import client, nsprocs, ops, supervisor
from stackfleet.lab.state import LabInfo
from stackfleet.runtime import cgroup

pytestmark = pytest.mark.lab


def ppid_of(pid: int) -> int:
    stat = (nsprocs.PROC / str(pid) / "stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_an_orphan_is_adopted_and_reaped_after_halt(lab: LabInfo, wait_until) -> None:
    root = Path(lab.root)
    supervisor = client.ping(root)
    seconds = str(1000 + time.monotonic_ns() % 9000)  # tells our sleeper from any other
    marker = f"sleep\0{seconds}\0".encode()
    # The shell leaves a sleeper behind and exits: a daemon that double-forks.
    reply = client.request(root, {"op": "start", "machine": "compute-01", "processes": [
        {"name": "orphan-maker", "argv": ["sh", "-c", "sleep $0 & exit 0", seconds]},
    ]})
    maker = reply["started"]["orphan-maker"]

    def orphan() -> int | None:
        for pid in nsprocs.pids_in_netns(nsprocs.netns_id("compute-01") or (0, 0)):
            if marker in (nsprocs.PROC / str(pid) / "cmdline").read_bytes():
                return pid
        return None

    assert wait_until(lambda: orphan() is not None and nsprocs.proc_state(maker) is None, 5.0)
    sleeper = orphan()
    assert sleeper is not None and ppid_of(sleeper) == supervisor
    log = Path(lab.machine("compute-01").state_dir) / "logs" / "orphan-maker.log"  # type: ignore[union-attr]
    assert log.exists()

    ops.halt(root, "compute-01")

    assert wait_until(lambda: nsprocs.proc_state(sleeper) is None, 5.0)  # killed and reaped


def test_status_reports_children_and_their_exit(lab: LabInfo, wait_until) -> None:
    root = Path(lab.root)
    reply = client.request(root, {"op": "start", "machine": "compute-01", "processes": [
        {"name": "short-lived", "argv": ["sh", "-c", "exit 4"]},
    ]})
    pid = reply["started"]["short-lived"]

    def record() -> dict | None:
        children = client.request(root, {"op": "status"})["children"]
        return next((c for c in children if c["pid"] == pid), None)

    assert wait_until(lambda: (record() or {}).get("running") is False, 5.0)
    assert record() == {"machine": "compute-01", "name": "short-lived", "pid": pid,
                        "running": False, "exit": 4}
    assert nsprocs.proc_state(pid) is None  # reaped


def test_starting_a_running_process_again_is_a_no_op(lab: LabInfo) -> None:
    root = Path(lab.root)
    etcd = [{"name": "etcd", "argv": ["false"]}]
    reply = client.request(root, {"op": "start", "machine": "controller-01", "processes": etcd})
    assert reply["started"] == {}
    assert "etcd" in reply["running"]


def test_bad_requests_get_an_error_and_the_supervisor_lives_on(lab: LabInfo) -> None:
    root = Path(lab.root)
    with pytest.raises(client.SupervisorError, match="unknown op"):
        client.request(root, {"op": "reboot-the-world"})
    with pytest.raises(client.SupervisorError, match="no network namespace"):
        client.request(root, {"op": "start", "machine": "nowhere-01", "processes": []})
    assert client.ping(root) is not None


def test_a_new_supervisor_refuses_to_double_a_machine_it_did_not_start(lab: LabInfo) -> None:
    root = Path(lab.root)
    old = client.ping(root)
    assert old is not None
    os.kill(old, signal.SIGKILL)  # the machines' processes live on, orphaned
    assert nsprocs.wait_gone([old], 5.0) == []
    ns = nsprocs.netns_id("controller-01")
    assert ns is not None
    before = nsprocs.pids_in_netns(ns)
    assert before

    with pytest.raises(client.SupervisorError, match="lab halt controller-01"):
        ops.up_machine(root, "controller-01")
    assert client.ping(root) not in (None, old)  # a new supervisor was started
    assert sorted(nsprocs.pids_in_netns(ns)) == sorted(before)  # and nothing was doubled

    ops.halt(root, "controller-01")
    ops.up_machine(root, "controller-01")
    assert client.request(root, {"op": "status"})["children"]
    for machine in lab.machine_names():  # the next test's lab fixture restarts them supervised
        ops.halt(root, machine)


def test_a_machine_left_frozen_by_a_halt_that_gave_up_comes_up_thawed(
        lab: LabInfo, compute: str) -> None:
    """A halt whose kill times out leaves the machine's cgroup frozen (cgroup.Group.kill); the
    next power-on must thaw it, or every daemon put in it freezes and the lab never heals."""
    root = Path(lab.root)
    group = supervisor.machine_group(cgroup.detect(), compute)
    if group is None:
        pytest.skip("no cgroup v2")
    ops.halt(root, compute)
    (group.path / "cgroup.freeze").write_text("1")  # as the timed-out kill leaves it
    ops.up_machine(root, compute)
    agents = [c["pid"] for c in client.request(root, {"op": "status"})["children"]
              if c["machine"] == compute and c["running"]]
    assert agents
    assert (group.path / "cgroup.freeze").read_text().strip() == "0"
    assert "frozen 0" in (group.path / "cgroup.events").read_text()
