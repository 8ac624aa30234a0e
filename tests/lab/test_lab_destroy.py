"""`lab destroy` leaves nothing of the lab: processes, namespaces, links, address, root; but
for the shared data (the whole cloud), which only `--purge` deletes."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from stackfleet.lab import client, net, nsprocs, ops
from stackfleet.lab.plan import BRIDGES
from stackfleet.lab.state import LabInfo, load_lab

from .conftest import LAB_COUNTS

pytestmark = pytest.mark.lab


def lab_pids(lab: LabInfo) -> set[int]:
    pids: set[int] = set()
    for m in lab.machines:
        ns = nsprocs.netns_id(m.netns)
        assert ns is not None
        pids.update(nsprocs.pids_in_netns(ns))
    return pids


def our_zombies() -> list[int]:
    me = str(os.getpid())
    zombies = []
    for pid in nsprocs.all_pids():
        try:
            stat = (nsprocs.PROC / str(pid) / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state == "Z" and ppid == me:
            zombies.append(pid)
    return zombies


def assert_nothing_left(lab: LabInfo, pids: set[int], supervisor: int) -> None:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert [m.name for m in lab.machines if m.netns in netns.split()] == []
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert [line for line in links.splitlines() if " sf-" in line] == []
    addresses = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    assert "192.168.10.1/" not in addresses
    assert [p for p in pids if nsprocs.proc_state(p) is not None] == []  # not even zombies
    assert not nsprocs.is_alive(supervisor)
    assert our_zombies() == []
    assert not Path(lab.root).exists()


def test_destroy_leaves_nothing(lab: LabInfo) -> None:
    root = Path(lab.root)
    supervisor = client.ping(root)
    assert supervisor is not None
    pids = lab_pids(lab)
    assert pids

    ops.destroy(root, purge=True)

    assert_nothing_left(lab, pids, supervisor)
    assert load_lab(root) is None


def test_destroy_keeps_the_shared_data_and_the_next_lab_uses_it(lab: LabInfo) -> None:
    root = Path(lab.root)
    shared = Path(lab.shared_dir)
    marker = shared / "mysql" / "ibdata1"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("the cloud")
    supervisor = client.ping(root)
    assert supervisor is not None
    pids = lab_pids(lab)

    ops.destroy(root)

    assert not nsprocs.is_alive(supervisor)
    assert [p for p in pids if nsprocs.is_alive(p)] == []
    assert all(not net.link_exists(b) for b in BRIDGES)
    assert load_lab(root) is None
    assert sorted(p.name for p in root.iterdir()) == ["shared"]
    assert marker.read_text() == "the cloud"

    again = ops.up(root, LAB_COUNTS, kinds=tuple(lab.processes))
    assert again.shared_dir == lab.shared_dir and marker.read_text() == "the cloud"


def test_destroy_works_after_the_supervisor_crashed(lab: LabInfo) -> None:
    root = Path(lab.root)
    supervisor = client.ping(root)
    assert supervisor is not None
    pids = lab_pids(lab)
    os.kill(supervisor, signal.SIGKILL)
    assert nsprocs.wait_gone([supervisor], 5.0) == []
    assert client.ping(root) is None

    ops.destroy(root, purge=True)

    # The supervisor's orphans went to PID 1, which reaps late here: they must be dead,
    # but may linger as zombies of PID 1 for a while.
    assert [p for p in pids if nsprocs.is_alive(p)] == []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert [m.name for m in lab.machines if m.netns in netns.split()] == []
    assert all(not net.link_exists(b) for b in BRIDGES)
    assert not root.exists()
