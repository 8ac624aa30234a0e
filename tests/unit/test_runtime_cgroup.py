"""cgroup v2 groups on this host: a kill takes every process in the group, however it left
its parent's session or network namespace. Root and cgroup v2 only."""
from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackfleet.lab.supervisor import kill_machine, machine_group
from stackfleet.runtime.cgroup import Group, detect
from stackfleet.runtime.procfs import read_stat

HIERARCHIES = detect()
pytestmark = [pytest.mark.cgroup,
              pytest.mark.skipif(not HIERARCHIES.usable,
                                 reason=f"no usable cgroup v2: {HIERARCHIES.missing}")]
NO_NETNS = (0, 0)  # no namespace has this id: kill_machine's sweep finds nothing


def alive(pid: int) -> bool:
    stat = read_stat(pid)
    return stat is not None and stat.alive


def spawn_escapees(group: Group, tmp_path: Path) -> list[int]:
    """In the group: a daemon in a session of its own (double fork) and one in a network
    namespace of its own. Returns their PIDs once both run."""
    pids = tmp_path / "pids"
    join = f"echo 0 > {group.path}/cgroup.procs"
    subprocess.run(["sh", "-c", f"{join}; setsid sh -c 'sleep 1000 & echo $! >> {pids}; "
                                f"unshare --net sleep 1000 & echo $! >> {pids}; exit'"],
                   check=True)
    deadline = time.monotonic() + 5
    while not (pids.exists() and len(pids.read_text().split()) == 2):
        assert time.monotonic() < deadline, "the daemons did not start"
        time.sleep(0.01)
    return [int(p) for p in pids.read_text().split()]


@pytest.fixture
def group(tmp_path: Path) -> Iterator[Group]:
    created = Group(HIERARCHIES, f"stackfleet-test/{os.getpid()}-{tmp_path.name}")
    created.create()
    yield created
    created.kill()
    created.remove()
    Group(HIERARCHIES, "stackfleet-test").path.rmdir()


def test_kill_takes_detached_daemons_and_other_namespaces(group: Group, tmp_path: Path) -> None:
    pids = spawn_escapees(group, tmp_path)
    assert set(pids) <= set(group.pids()) and group.populated()
    killed = group.kill()
    assert set(pids) <= set(killed)
    assert not any(alive(p) for p in pids)
    assert not group.populated()
    assert (group.path / "cgroup.freeze").read_text().strip() == "0"  # ready for reuse


def test_kill_machine_takes_the_machine_and_its_units(tmp_path: Path) -> None:
    machine = f"unit-test-{os.getpid()}"
    top = machine_group(HIERARCHIES, machine)
    assert top is not None
    unit = top.child("units").child("a.service")
    unit.create()
    try:
        pids = spawn_escapees(unit, tmp_path)
        killed = kill_machine(HIERARCHIES, machine, NO_NETNS)
        assert set(pids) <= killed
        assert not any(alive(p) for p in pids)
    finally:
        top.kill()
        top.remove()
        with contextlib.suppress(OSError):  # only if no lab uses it
            top.path.parent.rmdir()
