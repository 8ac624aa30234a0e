"""What holds a unit's processes: its cgroup, User=/Group=, limits, and a shim that neither
stalls on file I/O nor wakes up without a reason.

Uses the fixtures of test_runtime_process (each test runs with cgroups and with the process
tree fallback, unless it is about cgroups only).
"""
# ruff: noqa: F811  (the fixtures imported from test_runtime_process are test parameters here)
from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import pytest

from stackfleet.runtime import Fence, ProcessRuntime, write_fence
from stackfleet.runtime.cgroup import Group, Hierarchies, parse_mountinfo
from stackfleet.runtime.fence import now
from test_runtime_process import (  # noqa: F401
    NAME,
    NO_CGROUPS,
    alive,
    is_running,
    journal,
    runtime,
    script,
    service,
    wait_for,
    wait_shim_gone,
    wait_status,
)

# The runtime fixture in its cgroup mode only (it skips where cgroup v2 is missing).
with_cgroups = pytest.mark.parametrize(
    "runtime", [pytest.param("cgroup", marks=pytest.mark.cgroup)], indirect=True)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


def cgroup_of(pid: int) -> str:
    """The pid's cgroup v2 path ("0::/path")."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    raise AssertionError(f"{pid} has no cgroup v2 line")


def read_pid(path: Path) -> int:
    wait_for(lambda: path.exists() and path.read_text().endswith("\n"), what=f"{path}")
    return int(path.read_text())


def stop(runtime: ProcessRuntime) -> None:
    runtime.stop(NAME)
    wait_shim_gone(runtime)


def detach_script(tmp_path: Path, then: str) -> str:
    """A main process that starts a daemon in a session of its own by a double fork (the
    daemon leaves both the unit's session and its process tree), then runs `then`."""
    daemon = tmp_path / "daemon.pid"
    return script(tmp_path / "detach.sh",
                  f"setsid sh -c 'sleep 1000 & echo $! > {daemon}; exit'\n{then}\n")


# --- the unit's cgroup ----------------------------------------------------------------------


@with_cgroups
def test_every_process_of_the_unit_is_in_its_cgroup_and_the_shim_is_not(
        runtime: ProcessRuntime, tmp_path: Path) -> None:
    runtime.start(service(detach_script(tmp_path, "exec sleep 1000")))
    status = wait_status(runtime, is_running)
    daemon = read_pid(tmp_path / "daemon.pid")
    unit_group = "/" + runtime.cgroup_base.child(NAME).relative
    assert cgroup_of(status.main_pid) == unit_group  # type: ignore[arg-type]
    assert cgroup_of(daemon) == unit_group
    assert cgroup_of(status.shim_pid) != unit_group  # type: ignore[arg-type]
    runtime.stop(NAME)
    wait_shim_gone(runtime)
    assert not alive(daemon)
    assert not Path(f"/sys/fs/cgroup/unified{unit_group}").exists()  # the shim removed it


@with_cgroups
def test_a_daemon_that_left_the_session_is_orphaned_when_its_shim_dies_and_kill_ends_it(
        runtime: ProcessRuntime, tmp_path: Path) -> None:
    runtime.start(service(detach_script(tmp_path, "exec sleep 1000")))
    status = wait_status(runtime, is_running)
    daemon = read_pid(tmp_path / "daemon.pid")
    os.kill(status.shim_pid, signal.SIGKILL)  # type: ignore[arg-type]
    os.kill(status.main_pid, signal.SIGKILL)  # type: ignore[arg-type]
    wait_for(lambda: not alive(status.main_pid) and not alive(status.shim_pid))
    runtime.reap()
    # Only the daemon is left, in no session or process tree of the unit's.
    after = runtime.status(NAME)
    assert (after.active, after.result) == ("failed", "shim-died")
    assert after.orphaned and alive(daemon)
    with pytest.raises(RuntimeError, match="outlived its shim"):
        runtime.start(service("/bin/sleep 1000"))
    runtime.kill(NAME)
    assert not alive(daemon)
    assert not runtime.status(NAME).orphaned


@with_cgroups
def test_fence_kill_takes_a_daemon_that_left_the_session(
        runtime: ProcessRuntime, tmp_path: Path) -> None:
    fence = tmp_path / "fence.json"
    write_fence(fence, Fence(stop_at=now() + 60, kill_at=now() + 61))
    runtime.start(service(detach_script(tmp_path, "trap '' TERM\nwhile :; do sleep 1; done"),
                          timeout_stop_sec=60), fence_file=fence)
    wait_status(runtime, is_running)
    daemon = read_pid(tmp_path / "daemon.pid")
    kill_at = now() + 0.5
    write_fence(fence, Fence(stop_at=now(), kill_at=kill_at))
    wait_for(lambda: not alive(daemon), timeout=3.0)
    assert now() <= kill_at
    assert wait_shim_gone(runtime).result == "fenced"


@with_cgroups
def test_memory_max_and_cpu_quota_apply_and_usage_is_reported(
        runtime: ProcessRuntime, tmp_path: Path) -> None:
    runtime.start(service("/bin/sh -c 'while :; do :; done'", memory_max=64 * 1024 * 1024,
                          cpu_quota=0.2))
    status = wait_status(runtime, is_running)
    group = runtime.cgroup_base.child(NAME)
    memory = group.v1_path("memory") or group.path
    limit = (memory / "memory.limit_in_bytes") if (memory / "memory.limit_in_bytes").exists() \
        else (memory / "memory.max")
    assert int(limit.read_text()) == 64 * 1024 * 1024
    cpu = group.v1_path("cpu")
    if cpu is not None and (cpu / "cpu.cfs_quota_us").exists():
        assert int((cpu / "cpu.cfs_quota_us").read_text()) == 20_000
        assert cgroup_v1_of(status.main_pid, "cpu") == "/" + group.relative  # type: ignore[arg-type]
    else:
        assert (group.path / "cpu.max").read_text().split() == ["20000", "100000"]
    time.sleep(1.0)
    used = runtime.usage(NAME)
    assert used is not None
    assert used.memory_bytes is not None and used.memory_bytes > 0
    # A busy loop held to 20 % of a CPU: about 0.2 s in 1 s, surely below 0.5 s.
    assert used.cpu_usec is not None and 10_000 < used.cpu_usec < 500_000
    stop(runtime)


@with_cgroups
def test_usage_without_limits_counts_every_process_of_the_unit(
        runtime: ProcessRuntime, tmp_path: Path) -> None:
    runtime.start(service(detach_script(tmp_path, "exec sleep 1000")))
    status = wait_status(runtime, is_running)
    daemon = read_pid(tmp_path / "daemon.pid")
    # Read the processes' own sizes first: a process that is still starting only grows.
    resident = sum(int(Path(f"/proc/{p}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
                   for p in (status.main_pid, daemon))
    used = runtime.usage(NAME)
    assert used is not None and used.cpu_usec is not None
    assert used.memory_bytes is not None and used.memory_bytes >= resident > 0
    stop(runtime)


def cgroup_v1_of(pid: int, controller: str) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    raise AssertionError(f"{pid} is in no v1 {controller} group")


def test_parse_mountinfo_finds_v2_and_the_v1_controllers() -> None:
    text = (
        "30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
        "31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
        "32 30 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        "34 30 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    )
    v2, v1 = parse_mountinfo(text)
    assert v2 == [Path("/sys/fs/cgroup/unified")]
    assert v1 == {"cpu": Path("/sys/fs/cgroup/cpu"), "memory": Path("/sys/fs/cgroup/memory")}


def test_group_paths_mirror_into_v1_and_refuse_bad_names() -> None:
    hierarchies = Hierarchies(Path("/v2"), {"memory": Path("/mem")})
    group = Group(hierarchies, "stackfleet/x").child("a.service")
    assert group.path == Path("/v2/stackfleet/x/a.service")
    assert group.v1_path("memory") == Path("/mem/stackfleet/x/a.service")
    assert group.v1_path("cpu") is None
    assert Group.from_json(group.to_json()) == group
    for bad in ("", "..", "a/b"):
        with pytest.raises(ValueError):
            group.child(bad)


def test_a_runtime_without_cgroup_v2_says_so_loudly(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="stackfleet.runtime.process"):
        runtime = ProcessRuntime(tmp_path, hierarchies=NO_CGROUPS)
    assert not runtime.contained()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("no cgroup v2" in w and NO_CGROUPS.missing in w for w in warnings), warnings  # type: ignore[operator]


# --- User= and Group= -----------------------------------------------------------------------


@needs_root
def test_user_and_group_are_switched_before_exec(runtime: ProcessRuntime, tmp_path: Path) -> None:
    runtime.start(service("/bin/sh -c 'echo user=$USER; exec sleep 1000'", user="nobody",
                          group="nogroup"))
    status = wait_status(runtime, is_running)
    wait_for(lambda: "user=nobody" in journal(runtime))
    fields = dict(line.split(":\t", 1) for line in
                  Path(f"/proc/{status.main_pid}/status").read_text().splitlines() if ":\t" in line)
    assert fields["Uid"].split()[:2] == ["65534", "65534"]
    assert fields["Gid"].split()[:2] == ["65534", "65534"]
    assert fields["Groups"].split() == ["65534"]  # root's supplementary groups are gone
    stop(runtime)


def test_a_missing_user_refuses_the_start_with_a_journal_line(
        runtime: ProcessRuntime, tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    runtime.start(service(f"/bin/touch {ran}", user="no-such-user-here"))
    final = wait_shim_gone(runtime)
    assert (final.active, final.result) == ("failed", "exit-code")
    assert "User=no-such-user-here does not exist" in journal(runtime)
    assert not ran.exists()


# --- the shim's loop ------------------------------------------------------------------------


def test_a_hung_environment_file_does_not_delay_the_fence_kill(
        runtime: ProcessRuntime, tmp_path: Path) -> None:
    """Opening a FIFO without a writer blocks like a file on a dead NFS server."""
    fence = tmp_path / "fence.json"
    hung = tmp_path / "env.fifo"
    stubborn = tmp_path / "stubborn.pid"
    write_fence(fence, Fence(stop_at=now() + 60, kill_at=now() + 61))
    pre = script(tmp_path / "pre.sh", f"(trap '' TERM; exec sleep 1000) &\n"
                                      f"echo $! > {stubborn}\nmkfifo {hung}\n")
    spec = service("/bin/sleep 1000", exec_start_pre=[pre], timeout_stop_sec=60)
    spec.environment_files = [(str(hung), True)]  # missing at first: ExecStartPre runs
    runtime.start(spec, fence_file=fence)
    pid = read_pid(stubborn)
    wait_for(hung.exists)
    time.sleep(0.2)  # ExecStart's set-up now hangs on the FIFO
    kill_at = now() + 0.6
    write_fence(fence, Fence(stop_at=now() + 0.1, kill_at=kill_at))
    wait_for(lambda: not alive(pid), timeout=3.0)
    assert now() <= kill_at, f"killed {now() - kill_at:.3f}s after kill_at"
    assert wait_shim_gone(runtime).result == "fenced"


def test_an_idle_shim_wakes_only_for_fence_renewals(
        runtime: ProcessRuntime, tmp_path: Path) -> None:
    fence = tmp_path / "fence.json"
    write_fence(fence, Fence(stop_at=now() + 5, kill_at=now() + 8))
    runtime.start(service("/bin/sleep 1000"), fence_file=fence)
    status = wait_status(runtime, is_running)
    time.sleep(0.3)

    def switches() -> int:
        lines = Path(f"/proc/{status.shim_pid}/status").read_text().splitlines()
        return sum(int(line.split()[1]) for line in lines
                   if line.startswith("voluntary_ctxt_switches"))

    before = switches()
    for _ in range(4):  # 4 renewals in 2 s; a 50 ms poll would wake 40 times
        write_fence(fence, Fence(stop_at=now() + 5, kill_at=now() + 8))
        time.sleep(0.5)
    woken = switches() - before
    assert woken <= 16, f"the idle shim woke {woken} times in 2 s"
    assert is_running(runtime.status(NAME))
    stop(runtime)
