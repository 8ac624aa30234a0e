"""ProcessRuntime and its shim, with real processes (no root, no etcd).

Every unit process carries a marker variable in its environment; after each test nothing
with the marker may still run, and no zombie child of the test process may remain.

Each test runs twice: with each unit in its own cgroup (as root, with cgroup v2; marked
`cgroup`) and with the process-tree fallback that hosts without cgroup v2 get.
"""
from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fakeip import fake_ip
from stackfleet.runtime import Fence, ProcessRuntime, ServiceSpec, UnitStatus, write_fence
from stackfleet.runtime.cgroup import Hierarchies, detect
from stackfleet.runtime.fence import now as clock  # the fence file's clock
from stackfleet.runtime.process import default_base_environment
from stackfleet.runtime.procfs import all_stats, read_stat, unit_processes
from stackfleet.unit.values import parse_exec

MARKER = "STACKFLEET_TEST_MARKER"
NAME = "t.service"
HOST = "testhost"


def wait_for(condition: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.01)


def alive(pid: int | None) -> bool:
    stat = read_stat(pid) if pid else None
    return stat is not None and stat.alive


def marked_processes(marker: str) -> list[int]:
    """Live processes whose environment or command line carries the marker: unit processes
    and shims (whose command line holds the unit directory under tmp_path)."""
    found = []
    needle = marker.encode()
    for stat in all_stats():
        if not stat.alive or stat.pid == os.getpid():
            continue
        for part in ("environ", "cmdline"):
            try:
                data = Path(f"/proc/{stat.pid}/{part}").read_bytes()
            except OSError:
                continue
            if needle in data:
                found.append(stat.pid)
                break
    return found


def zombie_children() -> list[int]:
    return [s.pid for s in all_stats() if s.ppid == os.getpid() and not s.alive]


NO_CGROUPS = Hierarchies(None, missing="turned off by the test")
CGROUPS_MISSING = detect().missing


def make_runtime(root: Path, marker: str, hierarchies: Hierarchies | None = None) -> ProcessRuntime:
    env = default_base_environment()
    env[MARKER] = marker
    return ProcessRuntime(root, hostname=HOST, base_environment=env, hierarchies=hierarchies)


def containment(mode: str) -> Hierarchies | None:
    """The runtime's hierarchies for a test mode: the host's own cgroups, or none."""
    if mode == "tree":
        return NO_CGROUPS
    if CGROUPS_MISSING:
        pytest.skip(f"no usable cgroup v2: {CGROUPS_MISSING}")
    return None


@pytest.fixture(params=[pytest.param("cgroup", marks=pytest.mark.cgroup), "tree"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ProcessRuntime]:
    marker = str(tmp_path)
    rt = make_runtime(tmp_path / "rt", marker, containment(request.param))
    yield rt
    left_running = marked_processes(marker)
    for name in rt.units():  # clean up even after a failed test, then judge
        rt.kill(name)
    for pid in left_running:
        os.kill(pid, signal.SIGKILL)

    def clean() -> bool:
        rt.reap()
        return not marked_processes(marker) and not zombie_children()

    wait_for(clean, what="the unit's processes to be gone and reaped")
    if rt.contained():
        rt.cgroup_base.remove()  # empty by now; the shims removed their own groups
    assert left_running == [], f"processes left running by the test: {left_running}"


def service(start: str, **fields: object) -> ServiceSpec:
    for key in ("exec_start_pre", "exec_start_post", "exec_stop", "exec_stop_post"):
        if key in fields:
            fields[key] = [parse_exec(c) for c in fields[key]]  # type: ignore[attr-defined]
    return ServiceSpec(name=NAME, exec_start=parse_exec(start), **fields)  # type: ignore[arg-type]


def script(path: Path, body: str) -> str:
    path.write_text(body)
    return f"/bin/sh {path}"


def wait_status(rt: ProcessRuntime, check: Callable[[UnitStatus], bool],
                timeout: float = 5.0) -> UnitStatus:
    wait_for(lambda: check(rt.status(NAME)), timeout, what="unit status")
    return rt.status(NAME)


def is_running(status: UnitStatus) -> bool:
    return (status.active, status.sub) == ("active", "running")


def wait_shim_gone(rt: ProcessRuntime, timeout: float = 5.0) -> UnitStatus:
    status = wait_status(rt, lambda s: s.shim_pid is not None and not s.shim_alive, timeout)
    rt.reap()
    return status


def journal(rt: ProcessRuntime) -> str:
    path = rt.journal_path(NAME)
    return path.read_text() if path.exists() else ""


# --- start, stop, commands ----------------------------------------------------------------


def test_start_runs_main_in_own_group_and_stop_runs_exec_stop(
        runtime: ProcessRuntime, tmp_path: Path) -> None:
    seen = tmp_path / "mainpid"
    runtime.start(service(
        "/bin/sh -c 'echo hello; exec sleep 1000'",
        exec_stop=[f"/bin/sh -c 'echo \"$1\" > {seen}' sh $MAINPID"],
    ))
    status = wait_status(runtime, is_running)
    main, shim = read_stat(status.main_pid), read_stat(status.shim_pid)  # type: ignore[arg-type]
    assert main is not None and shim is not None
    assert main.ppid == shim.pid
    assert main.pgrp == main.pid != shim.pgrp  # its own group, to be killed as a whole
    assert shim.session == shim.pid  # the shim leads its own session, apart from the agent
    assert status.shim_start_time == shim.start_time
    wait_for(lambda: f"{HOST} {NAME}[{main.pid}]: hello" in journal(runtime))

    runtime.stop(NAME)
    final = wait_shim_gone(runtime)
    assert (final.active, final.sub, final.result) == ("inactive", "dead", "success")
    assert seen.read_text().strip() == str(main.pid)  # $MAINPID reached ExecStop
    assert not alive(main.pid)


def test_start_is_idempotent(runtime: ProcessRuntime) -> None:
    runtime.start(service("/bin/sleep 1000"))
    first = wait_status(runtime, is_running)
    runtime.start(service("/bin/sleep 1000"))
    again = runtime.status(NAME)
    assert (again.shim_pid, again.main_pid) == (first.shim_pid, first.main_pid)
    assert journal(runtime).count(f"Starting {NAME}...") == 1
    runtime.stop(NAME)
    wait_shim_gone(runtime)


def test_start_twice_at_once_launches_one_shim(runtime: ProcessRuntime) -> None:
    runtime.start(service("/bin/sleep 1000"))
    runtime.start(service("/bin/sleep 1000"))  # before the first shim took its lock
    wait_status(runtime, is_running)
    assert journal(runtime).count(f"Starting {NAME}...") == 1
    runtime.stop(NAME)
    wait_shim_gone(runtime)


def test_stop_during_exec_start_pre_never_starts_main(
        runtime: ProcessRuntime, tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    runtime.start(service(f"/bin/touch {ran}", exec_start_pre=["/bin/sleep 1000"]))
    shim = wait_status(runtime, lambda s: s.sub == "start-pre" and bool(s.shim_start_time)).shim_pid
    wait_for(lambda: unit_processes(shim, all_stats()))  # type: ignore[arg-type]
    runtime.stop(NAME)
    final = wait_shim_gone(runtime, timeout=3.0)
    assert (final.active, final.result) == ("inactive", "success")
    assert not ran.exists()


def test_timeout_start_sec_fails_a_slow_start(runtime: ProcessRuntime, tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    runtime.start(service(f"/bin/touch {ran}", exec_start_pre=["/bin/sleep 1000"],
                          timeout_start_sec=0.3))
    final = wait_shim_gone(runtime, timeout=3.0)
    assert (final.active, final.result) == ("failed", "timeout")
    assert not ran.exists()
    assert "control process timed out" in journal(runtime)


def test_exec_stop_timeout_fails_the_unit_and_still_stops_it(runtime: ProcessRuntime) -> None:
    runtime.start(service("/bin/sleep 1000", exec_stop=["/bin/sleep 1000"],
                          timeout_stop_sec=0.3))
    status = wait_status(runtime, is_running)
    runtime.stop(NAME)
    final = wait_shim_gone(runtime, timeout=3.0)
    assert (final.active, final.result) == ("failed", "timeout")
    assert (final.exit_code, final.exit_status) == ("killed", signal.SIGTERM)
    assert not alive(status.main_pid)


def test_exec_start_pre_runs_in_order_and_dash_ignores_failure(
        runtime: ProcessRuntime, tmp_path: Path) -> None:
    out = tmp_path / "order"
    runtime.start(service(
        f"/bin/sh -c 'echo main >> {out}; exec sleep 1000'",
        exec_start_pre=[
            "-/bin/false",
            f"/bin/sh -c 'echo one >> {out}'",
            f"/bin/sh -c 'echo two >> {out}'",
        ],
        exec_start_post=[f"/bin/sh -c 'echo post $MAINPID >> {out}'"],
    ))
    status = wait_status(runtime, is_running)
    wait_for(lambda: out.exists() and "main" in out.read_text())
    lines = out.read_text().split("\n")
    assert lines[:2] == ["one", "two"]
    # ExecStartPost runs after the main process started, which it may overtake
    assert sorted(lines[2:4]) == sorted(["main", f"post {status.main_pid}"])
    assert "status=1/FAILURE (ignoring)" in journal(runtime)
    runtime.stop(NAME)
    wait_shim_gone(runtime)


def test_failing_exec_start_pre_fails_the_unit(runtime: ProcessRuntime, tmp_path: Path) -> None:
    ran = tmp_path / "main-ran"
    runtime.start(service(f"/bin/touch {ran}", exec_start_pre=["/bin/sh -c 'exit 4'"],
                          exec_stop_post=[f"/bin/sh -c 'echo $SERVICE_RESULT > {ran}.post'"]))
    final = wait_shim_gone(runtime)
    assert (final.active, final.sub, final.result) == ("failed", "failed", "exit-code")
    assert not ran.exists()
    assert Path(f"{ran}.post").read_text().strip() == "exit-code"  # ExecStopPost still runs
    assert "Control process exited, code=exited, status=4" in journal(runtime)


def test_exec_failure_fails_the_unit(runtime: ProcessRuntime) -> None:
    runtime.start(service("/nonexistent/program"))
    final = wait_shim_gone(runtime)
    assert (final.active, final.result) == ("failed", "exit-code")
    assert "Failed to execute /nonexistent/program" in journal(runtime)


def test_environment_files_working_directory_and_argv0(
        runtime: ProcessRuntime, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text('# settings\nFROM_FILE="file value"\nOVERRIDDEN=by-file\n')
    out = tmp_path / "out"
    runtime.start(service(
        "@/bin/sh named-shell -c 'echo \"$0|$A|$B|$FROM_FILE|$OVERRIDDEN|$(pwd)\" > out; "
        "exec sleep 1000'",
        environment={"A": "1", "B": "two words", "OVERRIDDEN": "by-environment"},
        environment_files=[(str(tmp_path / "missing"), True), (str(env_file), False)],
        working_directory=str(tmp_path),
    ))
    wait_for(out.exists)
    wait_for(lambda: out.read_text().endswith("\n"))
    assert out.read_text().strip() == (
        f"named-shell|1|two words|file value|by-file|{tmp_path}")
    runtime.stop(NAME)
    wait_shim_gone(runtime)


def test_missing_environment_file_fails_the_unit(runtime: ProcessRuntime, tmp_path: Path) -> None:
    runtime.start(service("/bin/sleep 1000", environment_files=[(str(tmp_path / "nope"), False)]))
    final = wait_shim_gone(runtime)
    assert (final.active, final.result) == ("failed", "resources")
    assert "Failed to load environment file" in journal(runtime)


def test_a_non_utf8_environment_file_fails_the_unit_naming_the_line(
        runtime: ProcessRuntime, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_bytes(b"A=1\nB=caf\xe9\n")  # latin-1, not UTF-8
    runtime.start(service("/bin/sleep 1000", environment_files=[(str(env_file), False)]))
    final = wait_shim_gone(runtime)
    assert (final.active, final.result) == ("failed", "resources")
    assert f"Bad environment file {env_file}: line 2: not valid UTF-8" in journal(runtime)


def test_oneshot_remain_after_exit(runtime: ProcessRuntime) -> None:
    runtime.start(service("/bin/true", type="oneshot", remain_after_exit=True))
    status = wait_status(runtime, lambda s: (s.active, s.sub) == ("active", "exited"))
    assert status.shim_alive
    runtime.stop(NAME)
    final = wait_shim_gone(runtime)
    assert (final.active, final.sub, final.result) == ("inactive", "dead", "success")


# --- restarts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "exit_code", "restarts"),
    [
        ("no", 3, False),
        ("on-failure", 3, True),
        ("on-failure", 0, False),
        ("always", 0, True),
        ("on-success", 0, True),
        ("on-success", 3, False),
        ("on-abnormal", 3, False),
    ],
)
def test_restart_policy(runtime: ProcessRuntime, tmp_path: Path, policy: str, exit_code: int,
                        restarts: bool) -> None:
    runs = tmp_path / "runs"
    runtime.start(service(
        f"/bin/sh -c 'echo run >> {runs}; exit {exit_code}'",
        restart=policy, restart_sec=0.05, start_limit_burst=2,
    ))
    final = wait_shim_gone(runtime)
    assert runs.read_text().count("run") == (2 if restarts else 1)
    # NRestarts counts scheduled restarts, as in systemd: the second is refused by the
    # start limit (StartLimitBurst=2).
    assert final.restarts == (2 if restarts else 0)
    if restarts:
        assert (final.active, final.result) == ("failed", "start-limit-hit")
        assert "Scheduled restart job, restart counter is at 1." in journal(runtime)
    else:
        expected = ("inactive", "success") if exit_code == 0 else ("failed", "exit-code")
        assert (final.active, final.result) == expected


def test_restart_sec_is_respected(runtime: ProcessRuntime, tmp_path: Path) -> None:
    stamps = tmp_path / "stamps"
    runtime.start(service(
        f"/bin/sh -c 'date +%s.%N >> {stamps}; exit 1'",
        restart="on-failure", restart_sec=0.4, start_limit_burst=3,
    ))
    final = wait_shim_gone(runtime)
    times = [float(line) for line in stamps.read_text().split()]
    assert len(times) == 3 and final.restarts == 3 and final.result == "start-limit-hit"
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(0.4 <= gap < 3.0 for gap in gaps), gaps


def test_restarting_unit_shows_auto_restart(runtime: ProcessRuntime) -> None:
    runtime.start(service("/bin/false", restart="always", restart_sec=30))
    status = wait_status(runtime, lambda s: s.sub == "auto-restart")
    assert (status.active, status.result) == ("activating", "exit-code")
    runtime.stop(NAME)  # a stop ends the wait at once
    final = wait_shim_gone(runtime, timeout=3.0)
    assert final.restarts == 1


# --- stopping and killing -------------------------------------------------------------------


def test_timeout_stop_sigkills_the_whole_group(runtime: ProcessRuntime, tmp_path: Path) -> None:
    child_file = tmp_path / "child"
    # The shell and the child it forks both ignore SIGTERM.
    runtime.start(service(
        script(tmp_path / "stubborn.sh",
               f"trap '' TERM\nsleep 1000 &\necho $! > {child_file}\nwait\n"),
        timeout_stop_sec=0.5,
    ))
    status = wait_status(runtime, is_running)
    wait_for(lambda: child_file.exists() and child_file.read_text().endswith("\n"))
    child = int(child_file.read_text())
    assert read_stat(child).pgrp == status.main_pid  # type: ignore[union-attr]
    began = time.monotonic()
    runtime.stop(NAME)
    final = wait_shim_gone(runtime)
    took = time.monotonic() - began
    assert not alive(status.main_pid) and not alive(child)
    assert (final.active, final.result) == ("failed", "timeout")
    assert (final.exit_code, final.exit_status) == ("killed", signal.SIGKILL)
    assert "State 'stop-sigterm' timed out. Killing." in journal(runtime)
    assert 0.5 <= took < 5.0


def test_daemonized_grandchild_is_adopted_and_killed(
        runtime: ProcessRuntime, tmp_path: Path) -> None:
    pid_file = tmp_path / "daemon"
    runtime.start(service(script(
        tmp_path / "daemonize.sh",
        f"( setsid /bin/sh -c 'echo $$ > {pid_file}; exec sleep 1000' & )\nexec sleep 1000\n")))
    status = wait_status(runtime, is_running)
    wait_for(lambda: pid_file.exists() and pid_file.read_text().endswith("\n"))
    daemon = int(pid_file.read_text())
    # orphaned by its parent and in a session of its own: reparented to the subreaper shim
    wait_for(lambda: read_stat(daemon).ppid == status.shim_pid)  # type: ignore[union-attr]
    assert read_stat(daemon).session == daemon  # type: ignore[union-attr]
    runtime.stop(NAME)
    wait_shim_gone(runtime)
    assert read_stat(daemon) is None  # killed and reaped by the shim, not left to PID 1


def test_kill_is_immediate(runtime: ProcessRuntime, tmp_path: Path) -> None:
    runtime.start(service(script(tmp_path / "s.sh", "trap '' TERM\nsleep 1000 &\nwait\n"),
                          timeout_stop_sec=60))
    status = wait_status(runtime, is_running)
    runtime.kill(NAME)
    wait_for(lambda: not alive(status.main_pid) and not alive(status.shim_pid), timeout=1.0)
    after = runtime.status(NAME)
    assert (after.active, after.sub, after.result) == ("failed", "dead", "shim-died")
    wait_for(lambda: not runtime.status(NAME).orphaned, timeout=1.0)


def test_status_is_honest_when_the_shim_dies(runtime: ProcessRuntime) -> None:
    runtime.start(service("/bin/sleep 1000"))
    status = wait_status(runtime, is_running)
    os.kill(status.shim_pid, signal.SIGKILL)  # type: ignore[arg-type]
    after = wait_status(runtime, lambda s: not s.shim_alive)
    assert (after.active, after.sub, after.result) == ("failed", "dead", "shim-died")
    assert after.orphaned and alive(status.main_pid)  # the main process outlived its shim
    with pytest.raises(RuntimeError, match="kill"):
        runtime.start(service("/bin/sleep 1000"))  # no second copy beside the leftovers
    runtime.kill(NAME)
    wait_for(lambda: not alive(status.main_pid))
    wait_for(lambda: not runtime.status(NAME).orphaned)
    runtime.start(service("/bin/sleep 1000"))  # now a fresh start is allowed
    assert wait_status(runtime, is_running).main_pid != status.main_pid
    runtime.stop(NAME)
    wait_shim_gone(runtime)


def test_unknown_unit_is_inactive(runtime: ProcessRuntime) -> None:
    status = runtime.status("nothing.service")
    assert (status.active, status.sub, status.shim_alive) == ("inactive", "dead", False)
    with pytest.raises(ValueError):
        runtime.status("../escape")


def test_remove_keeps_the_journal(runtime: ProcessRuntime) -> None:
    runtime.start(service("/bin/sleep 1000"))
    wait_status(runtime, is_running)
    with pytest.raises(RuntimeError, match="still running"):
        runtime.remove(NAME)
    runtime.stop(NAME)
    wait_shim_gone(runtime)
    runtime.remove(NAME)
    assert runtime.units() == []
    assert runtime.status(NAME).active == "inactive"
    assert f"Stopped {NAME}." in journal(runtime)


def test_journal_lines_are_in_journald_short_format(runtime: ProcessRuntime) -> None:
    runtime.start(service("/bin/sh -c 'printf \"a\\nb\\npartial\"; exec sleep 1000'"))
    status = wait_status(runtime, is_running)
    runtime.stop(NAME)
    wait_shim_gone(runtime)
    lines = journal(runtime).splitlines()
    pattern = re.compile(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d{4} " + HOST + " " + re.escape(NAME)
        + r"\[(\d+)\]: (.*)")
    parsed = [pattern.fullmatch(line) for line in lines]
    assert all(parsed), lines
    by_main = [m.group(2) for m in parsed if m and int(m.group(1)) == status.main_pid]
    assert by_main == ["a", "b", "partial"]
    shim_lines = [m.group(2) for m in parsed if m and int(m.group(1)) == status.shim_pid]
    assert shim_lines[0] == f"Starting {NAME}..."
    for expected in (f"Started {NAME}.", f"Stopping {NAME}...", f"Stopped {NAME}.",
                     f"{NAME}: Main process exited, code=killed, status=15/TERM"):
        assert expected in shim_lines


# --- adoption by a new agent ----------------------------------------------------------------


def test_second_runtime_adopts_and_stops(runtime: ProcessRuntime, tmp_path: Path) -> None:
    runtime.start(service("/bin/sleep 1000"))
    first = wait_status(runtime, is_running)
    successor = make_runtime(runtime.root_dir, str(tmp_path), runtime.hierarchies)
    assert successor.units() == [NAME]
    seen = successor.status(NAME)
    assert is_running(seen) and seen.shim_alive and seen.main_pid == first.main_pid
    successor.start(service("/bin/sleep 1000"))  # still idempotent across agents
    assert successor.status(NAME).shim_pid == first.shim_pid
    successor.stop(NAME)
    final = wait_status(successor, lambda s: not s.shim_alive)
    assert (final.active, final.sub) == ("inactive", "dead")
    assert not alive(first.main_pid)
    runtime.reap()


def test_second_runtime_can_kill(runtime: ProcessRuntime, tmp_path: Path) -> None:
    runtime.start(service("/bin/sh -c 'sleep 1000 & exec sleep 1000'"))
    first = wait_status(runtime, is_running)
    successor = make_runtime(runtime.root_dir, str(tmp_path), runtime.hierarchies)
    successor.kill(NAME)
    wait_for(lambda: not alive(first.main_pid) and not alive(first.shim_pid), timeout=1.0)
    wait_for(lambda: not successor.status(NAME).orphaned, timeout=1.0)
    assert successor.status(NAME).active == "failed"


# --- fencing --------------------------------------------------------------------------------


def test_expired_fence_kills_the_group_by_kill_at(runtime: ProcessRuntime, tmp_path: Path) -> None:
    fence = tmp_path / "fence.json"
    now = clock()
    write_fence(fence, Fence(stop_at=now + 60, kill_at=now + 61))
    child_file = tmp_path / "child"
    runtime.start(service(
        script(tmp_path / "stubborn.sh",
               f"trap '' TERM\nsleep 1000 &\necho $! > {child_file}\nwait\n"),
        timeout_stop_sec=60,  # only the fence can make this stop quick
    ), fence_file=fence)
    status = wait_status(runtime, is_running)
    wait_for(lambda: child_file.exists() and child_file.read_text().endswith("\n"))
    pids = [status.main_pid, int(child_file.read_text())]

    now = clock()
    stop_at, kill_at = now + 0.3, now + 0.9
    write_fence(fence, Fence(stop_at=stop_at, kill_at=kill_at))
    wait_for(lambda: not any(alive(p) for p in pids), timeout=3.0)
    gone_at = clock()
    assert gone_at <= kill_at, f"killed {gone_at - kill_at:.3f}s after kill_at"
    assert gone_at > stop_at + 0.2  # they ignore SIGTERM: the SIGKILL did it, near kill_at

    final = wait_shim_gone(runtime)
    assert final.fenced
    assert (final.active, final.sub, final.result) == ("failed", "failed", "fenced")
    assert "Fence expired" in journal(runtime)


def test_expired_fence_releases_the_units_addresses_by_kill_at(
        runtime: ProcessRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel keeps an address after its unit died: the shim deletes what the unit listed.
    log = fake_ip(tmp_path, monkeypatch)
    fence = tmp_path / "fence.json"
    now = clock()
    write_fence(fence, Fence(stop_at=now + 60, kill_at=now + 61))
    runtime.start(service(script(tmp_path / "claims.sh",
                                 'echo "192.168.10.10/24 eth3" > "$STACKFLEET_ADDRESSES"\nexec sleep 1000\n')),
                  fence_file=fence)
    wait_status(runtime, is_running)
    claims = tmp_path / "rt" / "units" / NAME / "addresses"
    wait_for(claims.exists)
    now = clock()
    kill_at = now + 0.9
    write_fence(fence, Fence(stop_at=now + 0.3, kill_at=kill_at))
    wait_for(lambda: not claims.exists(), timeout=3.0)
    released_at, args = log.read_text().split(" ", 1)
    assert args == "address del 192.168.10.10/24 dev eth3\n"
    assert float(released_at) <= kill_at + 0.01  # /proc/uptime: CLOCK_BOOTTIME in 10 ms steps
    assert wait_shim_gone(runtime).fenced
    assert "Released address 192.168.10.10/24 from eth3" in journal(runtime)


def test_killing_a_unit_whose_shim_died_releases_its_addresses(
        runtime: ProcessRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = fake_ip(tmp_path, monkeypatch)
    runtime.start(service(script(tmp_path / "claims.sh",
                                 'echo "10.0.0.5/32 lo" > "$STACKFLEET_ADDRESSES"\nexec sleep 1000\n')))
    status = wait_status(runtime, is_running)
    wait_for((tmp_path / "rt" / "units" / NAME / "addresses").exists)
    os.kill(status.shim_pid, signal.SIGKILL)  # type: ignore[arg-type]
    wait_status(runtime, lambda s: not s.shim_alive)
    runtime.kill(NAME)
    assert log.read_text().split(" ", 1)[1] == "address del 10.0.0.5/32 dev lo\n"


def test_renewed_fence_keeps_running_and_stop_is_graceful(
        runtime: ProcessRuntime, tmp_path: Path) -> None:
    fence = tmp_path / "fence.json"

    def renew() -> tuple[float, float]:
        now = clock()
        write_fence(fence, Fence(stop_at=now + 0.8, kill_at=now + 3.0))
        return now + 0.8, now + 3.0

    renew()
    stopped = tmp_path / "stopped"
    runtime.start(service("/bin/sleep 1000", exec_stop=[f"/bin/touch {stopped}"]),
                  fence_file=fence)
    first = wait_status(runtime, is_running)
    until = clock() + 1.0
    while clock() < until:  # renewals every 0.1 s, well inside the 0.8 s
        renew()
        assert is_running(runtime.status(NAME))
        time.sleep(0.1)
    _, kill_at = renew()
    final = wait_shim_gone(runtime)
    assert clock() < kill_at  # graceful: ExecStop and SIGTERM sufficed
    assert stopped.exists()
    assert (final.result, final.fenced, final.restarts) == ("fenced", True, 0)
    assert (final.exit_code, final.exit_status) == ("killed", signal.SIGTERM)
    assert not alive(first.main_pid)


def test_missing_fence_file_prevents_start(runtime: ProcessRuntime, tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    runtime.start(service(f"/bin/touch {ran}", exec_start_pre=[f"/bin/touch {ran}"]),
                  fence_file=tmp_path / "no-fence.json")
    final = wait_shim_gone(runtime)
    assert (final.active, final.result, final.fenced) == ("failed", "fenced", True)
    assert not ran.exists()


def test_fence_stops_a_restarting_unit(runtime: ProcessRuntime, tmp_path: Path) -> None:
    fence = tmp_path / "fence.json"
    now = clock()
    write_fence(fence, Fence(stop_at=now + 0.5, kill_at=now + 1.0))
    runtime.start(service("/bin/false", restart="always", restart_sec=0.2,
                          start_limit_interval_sec=0), fence_file=fence)
    final = wait_shim_gone(runtime)
    assert clock() < now + 1.5
    assert final.result == "fenced" and final.restarts >= 1
