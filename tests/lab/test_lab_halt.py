"""Processes that leave their unit: `lab halt` must still take them, and so must the agent
when the unit's shim dies. A process belongs to a machine if it runs in the machine's network
namespace, or descends from such a process into a namespace of its own (nested namespaces
count: QEMU guests, Neutron's dnsmasq and haproxy)."""
from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from stackfleet.lab import client, nsprocs, ops
from stackfleet.lab.state import LabInfo
from stackfleet.runtime import ProcessRuntime
from stackfleet.runtime.procfs import all_stats, read_stat

from .conftest import poll
from .faults import cli, pinned_unit

pytestmark = pytest.mark.lab
START_TIMEOUT = 60.0
KILL_TIMEOUT = 15.0


# The daemons leave the unit's session and process tree by setsid and a double fork; one of
# them also enters a network namespace of its own.
ESCAPE = ('setsid sh -c "unshare --net sleep 4242401 & sleep 4242402 & exit"; '
          'exec sleep 4242403')
DETACH = 'setsid sh -c "sleep 4242411 & exit"; exec sleep 4242412'
# setsid -f forks a child that leaves the unit's session; it enters a network namespace of its
# own (unshare, then exec): a daemon the unit's process tree and session have both lost.
NESTED = "setsid -f unshare --net sleep 4242421; exec sleep 4242422"


def find(needle: str, ignore: frozenset[int] = frozenset()) -> list[int]:
    """Live processes whose command line contains needle, but for those in ignore."""
    found = []
    for stat in all_stats():
        try:
            cmdline = Path(f"/proc/{stat.pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if stat.alive and needle.encode() in cmdline and stat.pid not in ignore:
            found.append(stat.pid)
    return found


def netns_of(pid: int) -> tuple[int, int] | None:
    try:
        st = os.stat(f"/proc/{pid}/ns/net")
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def holders(namespaces: set[tuple[int, int]]) -> list[int]:
    """Every process in /proc whose network namespace is one of these (a zombie has none)."""
    return [pid for pid in nsprocs.all_pids() if netns_of(pid) in namespaces]


def machine_processes(netns: str) -> set[int]:
    """Every live process in the namespace, plus their descendants in other namespaces."""
    ns = nsprocs.netns_id(netns)
    assert ns is not None
    stats = [s for s in all_stats() if s.alive]
    found = {s.pid for s in stats if netns_of(s.pid) == ns}
    grown = True
    while grown:
        more = {s.pid for s in stats if s.ppid in found and s.pid not in found}
        found |= more
        grown = bool(more)
    return found


@contextmanager
def started(lab: LabInfo, machine: str, tmp_path: Path, name: str, command: str, needle: str,
            count: int) -> Iterator[frozenset[int]]:
    """Starts a unit of command on machine; yields the PIDs that matched needle before (a
    failed earlier run)."""
    strangers = frozenset(find(needle))
    path = tmp_path / name
    path.write_text(pinned_unit(lab, machine, command))
    done = cli(lab, "start", "--block-attempts", "60", str(path))
    assert done.returncode == 0, done.stderr
    try:
        assert poll(lambda: len(find(needle, strangers)) == count, START_TIMEOUT), find(needle)
        yield strangers
    finally:
        cli(lab, "destroy", name)


def runtime_of(lab: LabInfo, machine: str) -> ProcessRuntime:
    info = lab.machine(machine)
    assert info is not None
    return ProcessRuntime(Path(info.state_dir) / "runtime", hostname=machine)


def test_halt_leaves_no_process_of_the_machine_alive(
        lab: LabInfo, compute: str, tmp_path: Path) -> None:
    root = Path(lab.root)
    with started(lab, compute, tmp_path, "escape.service", ESCAPE, "sleep 42424", 3) as strangers:
        ns = nsprocs.netns_id(compute)
        nested = find("sleep 4242401", strangers)
        assert nested and all(netns_of(p) != ns for p in nested)  # a namespace of its own
        before = machine_processes(compute) - strangers
        assert set(find("sleep 42424", strangers)) <= before
        try:
            killed = ops.halt(root, compute)
            assert [p for p in before if nsprocs.is_alive(p)] == []
            assert find("sleep 42424", strangers) == []
            assert before <= set(killed)
        finally:
            ops.up_machine(root, compute)


def test_halt_leaves_no_process_in_the_machines_network_namespaces_nested_ones_included(
        lab: LabInfo, compute: str, tmp_path: Path) -> None:
    root = Path(lab.root)
    with started(lab, compute, tmp_path, "nested.service", NESTED, "sleep 42424", 2) as strangers:
        machine_ns = nsprocs.netns_id(compute)
        (daemon,) = find("sleep 4242421", strangers)
        nested_ns = netns_of(daemon)
        assert machine_ns is not None and nested_ns is not None and nested_ns != machine_ns
        stat = read_stat(daemon)
        assert stat is not None and stat.session == daemon  # detached: a session of its own
        namespaces = {machine_ns, nested_ns}
        before = holders(namespaces)
        assert daemon in before and len(before) > 2  # the machine's daemons, the unit, the shim
        try:
            ops.halt(root, compute)
            assert holders(namespaces) == []
        finally:
            ops.up_machine(root, compute)


def test_a_detached_daemon_of_a_unit_whose_shim_died_is_killed_by_the_agent(
        lab: LabInfo, compute: str, tmp_path: Path) -> None:
    with started(lab, compute, tmp_path, "detach.service", DETACH, "sleep 42424", 2) as strangers:
        daemon, main = find("sleep 4242411", strangers), find("sleep 4242412", strangers)
        shim = runtime_of(lab, compute).status("detach.service").shim_pid
        assert shim is not None
        os.kill(shim, signal.SIGKILL)
        # The agent finds the unit's cgroup populated without a shim, kills it, restarts it.
        assert poll(lambda: not any(nsprocs.is_alive(p) for p in daemon + main), KILL_TIMEOUT)


def test_the_runtime_reports_a_dead_shims_detached_daemon_orphaned_and_kill_ends_it(
        lab: LabInfo, compute: str, tmp_path: Path) -> None:
    root = Path(lab.root)
    with started(lab, compute, tmp_path, "detach.service", DETACH, "sleep 42424", 2) as strangers:
        daemon, main = find("sleep 4242411", strangers), find("sleep 4242412", strangers)
        runtime = runtime_of(lab, compute)
        shim = runtime.status("detach.service").shim_pid
        agents = [c["pid"] for c in client.request(root, {"op": "status"})["children"]
                  if c["machine"] == compute and c["name"] == "agent" and c["running"]]
        assert shim is not None and len(agents) == 1
        try:
            os.kill(agents[0], signal.SIGKILL)  # no agent to clean up after the shim
            os.kill(shim, signal.SIGKILL)
            assert poll(lambda: not nsprocs.is_alive(shim) and not nsprocs.is_alive(agents[0]),
                        KILL_TIMEOUT)
            status = runtime.status("detach.service")
            assert (status.result, status.orphaned) == ("shim-died", True)
            assert all(nsprocs.is_alive(p) for p in daemon + main)
            runtime.kill("detach.service")
            assert not any(nsprocs.is_alive(p) for p in daemon + main)
            assert not runtime.status("detach.service").orphaned
        finally:
            ops.up_machine(root, compute)
