"""The shim: supervises one unit as its processes' parent, like podman's conmon.

    python -m stackfleet.runtime.shim UNIT_DIR

It runs ExecStartPre=, ExecStart= (in its own process group), ExecStartPost=, restarts per
Restart=, and on SIGTERM runs ExecStop=, SIGTERMs what is left, SIGKILLs it after TimeoutStopSec=
and runs ExecStopPost=. Output goes to the unit's journal, state to status.json. It outlives
the agent that started it. With a fence file it stops the unit when the fence expires and
SIGKILLs every process of the unit by the fence's kill_at.

The code reads top-down like the unit's life; everything waits through pump(), which reads
output, reaps children, checks the fence and never blocks longer than TICK.
"""
from __future__ import annotations

import contextlib
import fcntl
import math
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Callable

from stackfleet.runtime import procfs
from stackfleet.runtime.base import UnitStatus
from stackfleet.runtime.fence import FenceWatch, read_fence
from stackfleet.runtime.files import read_json, write_json_atomic
from stackfleet.runtime.journal import Journal, LineSplitter
from stackfleet.runtime.layout import ShimConfig, UnitPaths
from stackfleet.runtime.policy import (EXIT_CHDIR, EXIT_EXEC, Exit, should_restart,
                                       start_limit_hit)
from stackfleet.unit.values import ExecCommand, expand_argv, parse_environment_file

TICK = 0.05  # the fence is checked at least this often
READS_PER_PUMP = 16  # 64 KiB reads per pipe between two fence checks
KILL_WAIT = 5.0  # how long SIGKILLed processes get to vanish before the shim gives up waiting
EXIT_LOCKED = 75  # another shim already supervises this unit


@dataclass
class _Output:
    """The read end of one command's stdout+stderr pipe."""

    pid: int
    file: IO[bytes]
    splitter: LineSplitter = field(default_factory=LineSplitter)


class _Failed(Exception):
    """A command could not be started; result is systemd's Result= for it."""

    def __init__(self, result: str) -> None:
        super().__init__(result)
        self.result = result


class Shim:
    def __init__(self, paths: UnitPaths, config: ShimConfig) -> None:
        self.paths = paths
        self.spec = config.service
        self.config = config
        self.fence_path = Path(config.fence_file) if config.fence_file else None
        self.fence = FenceWatch()
        self._fence_read_at = -math.inf
        self.stop_requested = False
        self.journal = Journal(paths.journal, config.hostname, self.spec.name)
        self.pid = os.getpid()
        stat = procfs.read_stat(self.pid)
        self.status = UnitStatus(
            name=self.spec.name, shim_pid=self.pid,
            shim_start_time=stat.start_time if stat else None, shim_alive=True,
        )
        self.main: int | None = None
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._exits: dict[int, int] = {}  # reaped child pid -> wait status
        self._pipes: dict[int, _Output] = {}  # by file descriptor
        self._wakeup_r, wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wakeup_w)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_stop_signal)
        # A Python-level handler makes SIGCHLD reach the wakeup fd, so exits are seen at once.
        signal.signal(signal.SIGCHLD, lambda *_: None)

    def _on_stop_signal(self, signum: int, frame: object) -> None:
        self.stop_requested = True

    # --- the unit's life ----------------------------------------------------------------

    def run(self) -> None:
        starts: list[float] = []
        result = "success"
        self._set_state("activating", "start-pre")
        self._check_fence()
        while not self._halted():
            now = time.monotonic()
            if start_limit_hit(starts, now, self.spec.start_limit_interval_sec,
                               self.spec.start_limit_burst):
                self.log(f"{self.spec.name}: Start request repeated too quickly.")
                result = "start-limit-hit"
                self.log(f"{self.spec.name}: Failed with result '{result}'.")
                break
            starts.append(now)
            result = self._run_once()
            if result not in ("success", "fenced"):
                self.log(f"{self.spec.name}: Failed with result '{result}'.")
            if self._halted() or not should_restart(self.spec.restart, result):
                break
            self.status.restarts += 1
            self.status.result = result
            self._set_state("activating", "auto-restart")
            self.log(f"{self.spec.name}: Scheduled restart job, restart counter is at "
                     f"{self.status.restarts}.")
            self._sleep(self.spec.restart_sec)
        self._finish("fenced" if self.fence.expired else result)

    def _run_once(self) -> str:
        self.status.result = "success"
        self._set_state("activating", "start-pre")
        self.log(f"Starting {self.spec.name}...")
        deadline = time.monotonic() + self.spec.timeout_start_sec
        for cmd in self.spec.exec_start_pre:
            result = self._run_control(cmd, deadline, interruptible=True)
            if result != "success":
                return self._stop_sequence(result, started=False)
        if self._halted():
            return self._stop_sequence(self._halt_result(), started=False)
        try:
            self.main = self._spawn(self.spec.exec_start, {})
        except _Failed as failure:
            return self._stop_sequence(failure.result, started=False)
        self.status.main_pid = self.main
        if self.spec.type == "oneshot":
            # A oneshot is started when its main process has ended well.
            self._set_state("activating", "start")
            self._wait_until(lambda: self._main_ended() or self._halted(), deadline)
            ended = self._collect_main()
            if ended is None:
                result = self._halt_result() if self._halted() else self._timed_out("start")
                return self._stop_sequence(result, started=False)
            if ended != "success":
                return self._stop_sequence(ended, started=False)
        result = self._start_post(deadline)
        if result != "success":
            return self._stop_sequence(result, started=False)
        self.log(f"{'Finished' if self.spec.type == 'oneshot' else 'Started'} {self.spec.name}.")
        if self.spec.type != "oneshot":
            self._set_state("active", "running")
            self._wait_until(lambda: self._main_ended() or self._halted(), math.inf)
            result = self._collect_main() or "success"  # None: still running, being stopped
        if result == "success" and self.spec.remain_after_exit and not self._halted():
            self._set_state("active", "exited")
            self._wait_until(self._halted, math.inf)
        return self._stop_sequence(result, started=True)

    def _main_ended(self) -> bool:
        return self.main is not None and self.main in self._exits

    def _start_post(self, deadline: float) -> str:
        if not self.spec.exec_start_post:
            return "success"
        self._set_state("activating", "start-post")
        main_env = {} if self._main_ended() else {"MAINPID": str(self.main)}
        for cmd in self.spec.exec_start_post:
            result = self._run_control(cmd, deadline, interruptible=True, extra=main_env)
            if result != "success":
                return result
        return "success"

    def _collect_main(self) -> str | None:
        """Record and log the end of the main process; its result, or None if it runs."""
        if self.main is None or self.main not in self._exits:
            return None
        ended = Exit.from_wait_status(self._exits.pop(self.main))
        self.status.exit_code, self.status.exit_status = ended.code, ended.status
        self.status.main_pid = None
        self.log(f"{self.spec.name}: Main process exited, {ended.describe()}")
        return ended.result

    def _stop_sequence(self, result: str, started: bool) -> str:
        """ExecStop= (only after a successful start), SIGTERM/SIGKILL to what is left,
        ExecStopPost=. Returns the unit's result."""
        main_alive = self.main is not None and self.main not in self._exits
        if self._halted():
            self.log(f"Stopping {self.spec.name}...")
        self._set_state("deactivating", "stop")
        main_env = {"MAINPID": str(self.main)} if main_alive else {}
        if started:
            deadline = time.monotonic() + self.spec.timeout_stop_sec
            for cmd in self.spec.exec_stop:
                stopped = self._run_control(cmd, deadline, interruptible=False, extra=main_env)
                if result == "success" and stopped != "success":
                    result = stopped
        if not self._terminate(None, "stop-sigterm") and result == "success":
            result = "timeout"
        self._reap()
        self._collect_main()
        self.main = None
        self.status.main_pid = None
        if self.spec.exec_stop_post:
            self._set_state("deactivating", "stop-post")
            post_env = {
                "SERVICE_RESULT": result,
                "EXIT_CODE": self.status.exit_code or "",
                "EXIT_STATUS": "" if self.status.exit_status is None
                else str(self.status.exit_status),
            }
            deadline = time.monotonic() + self.spec.timeout_stop_sec
            for cmd in self.spec.exec_stop_post:
                self._run_control(cmd, deadline, interruptible=False, extra=post_env)
            self._terminate(None, "stop-post")
        return "fenced" if self.fence.expired else result

    def _finish(self, result: str) -> None:
        self.status.result = result
        if result == "fenced":
            self.status.fenced = True
            self.log(f"{self.spec.name}: Fenced: the machine's lease was not renewed in time.")
            self._set_state("failed", "failed")
        elif result == "success":
            self.log(f"{self.spec.name}: Deactivated successfully.")
            self._set_state("inactive", "dead")
        else:
            self._set_state("failed", "failed")
        if self.stop_requested or result == "fenced":
            self.log(f"Stopped {self.spec.name}.")

    # --- commands -----------------------------------------------------------------------

    def _run_control(self, cmd: ExecCommand, deadline: float, interruptible: bool,
                     extra: dict[str, str] | None = None) -> str:
        """Run one ExecStartPre=/ExecStop=/... command to its end; return its result.
        An interruptible command is abandoned when a stop is asked for or the fence expires."""
        if interruptible and self._halted():
            return self._halt_result()
        try:
            pid = self._spawn(cmd, extra or {})
        except _Failed as failure:
            return "success" if cmd.ignore_failure else failure.result
        status = self._wait_pid(pid, deadline, self._halted if interruptible else _never)
        if status is None:
            halted = interruptible and self._halted()
            result = self._halt_result() if halted else self._timed_out("control process")
            self._terminate(pid, "stop-sigterm")
            self._reap()
            self._exits.pop(pid, None)
            return result
        ended = Exit.from_wait_status(status)
        if ended.result != "success":
            ignoring = " (ignoring)" if cmd.ignore_failure else ""
            self.log(f"{self.spec.name}: Control process exited, {ended.describe()}{ignoring}")
            if not cmd.ignore_failure:
                return ended.result
        return "success"

    def _halt_result(self) -> str:
        """The result of a start cut short: a stop that was asked for is a success."""
        return "fenced" if self.fence.expired else "success"

    def _timed_out(self, what: str) -> str:
        self.log(f"{self.spec.name}: {what} timed out. Terminating.")
        return "timeout"

    def _spawn(self, cmd: ExecCommand, extra: dict[str, str]) -> int:
        if self.fence.must_kill(time.monotonic()):
            self.log(f"Not executing {cmd.argv[0]}: the fence has expired.")
            raise _Failed("fenced")
        env = self._environment(extra)
        argv = expand_argv(cmd, env)
        cwd = self._working_directory(env)
        try:
            child = subprocess.Popen(
                [cmd.argv0 or argv[0], *argv[1:]], executable=argv[0], env=env, cwd=cwd,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                process_group=0,
            )
        except OSError as exc:
            code = EXIT_CHDIR if cwd and exc.filename == cwd else EXIT_EXEC
            self.log(f"{self.spec.name}: Failed to execute {argv[0]}: {exc.strerror} "
                     f"(status={code})")
            raise _Failed("exit-code") from None
        assert child.stdout is not None
        os.set_blocking(child.stdout.fileno(), False)
        self._pipes[child.stdout.fileno()] = _Output(child.pid, child.stdout)
        self._children[child.pid] = child
        return child.pid

    def _environment(self, extra: dict[str, str]) -> dict[str, str]:
        env = dict(self.config.base_environment)
        env.update(self.spec.environment)
        # Read at each command, like systemd, so ExecStartPre= can write a file ExecStart= reads.
        for path, optional in self.spec.environment_files:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                if optional:
                    continue
                self.log(f"{self.spec.name}: Failed to load environment file {path}: "
                         f"{exc.strerror}")
                raise _Failed("resources") from None
            try:
                env.update(parse_environment_file(text))
            except ValueError as exc:
                self.log(f"{self.spec.name}: Bad environment file {path}: {exc}")
                raise _Failed("resources") from None
        env.update(extra)
        return env

    def _working_directory(self, env: dict[str, str]) -> str | None:
        directory = self.spec.working_directory
        if not directory:
            return None
        optional = directory.startswith("-")
        directory = directory.removeprefix("-")
        if directory == "~":
            directory = env.get("HOME", "/")
        if optional and not os.path.isdir(directory):
            return None
        return directory

    # --- waiting and killing ------------------------------------------------------------

    def _halted(self) -> bool:
        return self.stop_requested or self.fence.expired

    def _wait_pid(self, pid: int, deadline: float, interrupt: Callable[[], bool]) -> int | None:
        """The wait status of child pid, or None when interrupted or past the deadline."""
        self._wait_until(lambda: pid in self._exits or interrupt(), deadline)
        return self._exits.pop(pid, None)

    def _wait_until(self, condition: Callable[[], bool], deadline: float) -> bool:
        while not condition():
            if time.monotonic() >= deadline:
                return False
            self._pump(deadline)
        return True

    def _sleep(self, seconds: float) -> None:
        self._wait_until(self._halted, time.monotonic() + seconds)

    def _terminate(self, pgid: int | None, sub: str) -> bool:
        """SIGTERM the unit's processes (or one process group), SIGKILL them after
        TimeoutStopSec=. Returns False if it came to SIGKILL."""
        if not self._unit_pids(pgid):
            return True
        if pgid is None:
            self._set_state("deactivating", sub)
        self._signal_all(pgid, signal.SIGTERM)
        self._signal_all(pgid, signal.SIGCONT)
        deadline = time.monotonic() + self.spec.timeout_stop_sec
        if self._wait_until(lambda: not self._unit_pids(pgid), deadline):
            return True
        self.log(f"{self.spec.name}: State '{sub}' timed out. Killing.")
        if pgid is None:
            self._set_state("deactivating", "stop-sigkill")
        self._kill_until_gone(pgid)
        return False

    def _kill_until_gone(self, pgid: int | None) -> None:
        deadline = time.monotonic() + KILL_WAIT
        while self._signal_all(pgid, signal.SIGKILL) and time.monotonic() < deadline:
            self._pump(time.monotonic() + 0.01)

    def _unit_pids(self, pgid: int | None) -> list[int]:
        return [s.pid for s in procfs.unit_processes(self.pid, procfs.all_stats())
                if pgid is None or s.pgrp == pgid]

    def _has_children(self) -> bool:
        return any(s.ppid == self.pid for s in procfs.all_stats())

    def _signal_all(self, pgid: int | None, signum: int) -> bool:
        """Send signum to every live process of the unit (or of one group); False if none."""
        pids = self._unit_pids(pgid)
        for pid in pids:
            procfs.send_signal(pid, signum)
        return bool(pids)

    def _pump(self, until: float) -> None:
        """Wait for output, child exits or a signal, at most until `until` and at most TICK."""
        now = time.monotonic()
        timeout = max(0.0, min(TICK, until - now))
        kill_deadline = self.fence.kill_deadline
        if kill_deadline is not None and kill_deadline > now:  # wake up right on time
            timeout = min(timeout, kill_deadline - now)
        readable, _, _ = select.select([self._wakeup_r, *self._pipes], [], [], timeout)
        for fd in readable:
            if fd == self._wakeup_r:
                _drain(fd)
            else:
                self._read_pipe(fd)
        self._reap()
        self._check_fence()

    def _check_fence(self) -> None:
        if self.fence_path is None:
            return
        now = time.monotonic()
        if now - self._fence_read_at >= TICK:
            self._fence_read_at = now
            was_expired = self.fence.expired
            self.fence.observe(read_fence(self.fence_path), now)
            if self.fence.expired and not was_expired:
                kill_in = max(0.0, (self.fence.kill_deadline or now) - now)
                self.log(f"{self.spec.name}: Fence expired: stopping, SIGKILL in {kill_in:.3f}s.")
        if self.fence.must_kill(now):
            if self.main is not None and self.main in self._children:
                # Unreaped, so its group id cannot have been reused: one cheap syscall for
                # the main group first, then the full /proc scan for everything else.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.main, signal.SIGKILL)
            self._signal_all(None, signal.SIGKILL)

    def _reap(self) -> None:
        for pid, status in procfs.exited_children():
            child = self._children.pop(pid, None)
            if child is None:
                continue  # an orphan reparented to us as subreaper: reaped, nothing to record
            child.returncode = os.waitstatus_to_exitcode(status)
            self._exits[pid] = status
            # Take what it wrote before its end, so its last lines precede our exit message.
            assert child.stdout is not None
            if not child.stdout.closed:
                self._read_pipe(child.stdout.fileno())

    def _read_pipe(self, fd: int) -> None:
        output = self._pipes[fd]
        # Bounded, so that a flood of output cannot delay the fence check.
        for _ in range(READS_PER_PUMP):
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            if not data:
                for line in output.splitter.flush():
                    self.journal.write(output.pid, line)
                del self._pipes[fd]
                output.file.close()
                return
            for line in output.splitter.feed(data):
                self.journal.write(output.pid, line)

    # --- status -------------------------------------------------------------------------

    def log(self, text: str) -> None:
        self.journal.write(self.pid, text)

    def _set_state(self, active: str, sub: str) -> None:
        if (self.status.active, self.status.sub) != (active, sub) or self.status.since is None:
            self.status.since = datetime.now().astimezone().isoformat()
        self.status.active, self.status.sub = active, sub
        data = self.status.to_json()
        for derived in ("shim_alive", "orphaned"):
            data.pop(derived)
        try:
            write_json_atomic(self.paths.status, data)
        except OSError as exc:  # e.g. a full disk: keep supervising, say so where we can
            self.log(f"{self.spec.name}: cannot write {self.paths.status}: {exc.strerror}")

    def close(self) -> None:
        """Leave nothing behind: kill what is left of the unit and reap it."""
        self._kill_until_gone(None)
        deadline = time.monotonic() + KILL_WAIT
        while self._has_children() and time.monotonic() < deadline:
            self._pump(time.monotonic() + 0.01)
        self._reap()
        for fd in list(self._pipes):
            self._read_pipe(fd)
        for output in self._pipes.values():
            output.file.close()
        self._pipes.clear()
        self.journal.close()


def _never() -> bool:
    return False


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m stackfleet.runtime.shim UNIT_DIR", file=sys.stderr)
        return 2
    paths = UnitPaths(Path(argv[0]))
    lock_fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"another shim already supervises {paths.dir}", file=sys.stderr)
        return EXIT_LOCKED
    data = read_json(paths.spec)
    if not isinstance(data, dict):
        print(f"{paths.spec}: missing or not JSON", file=sys.stderr)
        return 1
    procfs.become_subreaper()
    # lock_fd stays open (and locked) until this process ends.
    shim = Shim(paths, ShimConfig.from_json(data))
    try:
        shim.run()
    finally:
        shim.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
