"""The shim: supervises one unit as its processes' parent, like podman's conmon.

    python -m stackfleet.runtime.shim UNIT_DIR

It runs ExecStartPre=, ExecStart= (in its own process group), ExecStartPost=, restarts per
Restart=, and on SIGTERM runs ExecStop=, SIGTERMs what is left, SIGKILLs it after TimeoutStopSec=
and runs ExecStopPost=. Output goes to the unit's journal, state to status.json. It outlives
the agent that started it. With a fence file it stops the unit when the fence expires and
SIGKILLs every process of the unit by the fence's kill_at.

Where the host has cgroup v2 the unit's processes live in the unit's own cgroup (the shim
stays outside it): "what is left of the unit" is the cgroup's `populated`, and a kill freezes
and then kills the whole cgroup, so no daemon that left the session escapes.

The code reads top-down like the unit's life; everything waits through _pump(), which sleeps
in poll() until something happens: output, a child's exit (SIGCHLD via the wakeup fd), a stop
signal, a rewrite of the fence file (inotify), the cgroup emptying (cgroup.events), or the
next deadline (a CLOCK_BOOTTIME timerfd armed for the nearest of: the caller's deadline, the
fence's stop_at, the fence's kill deadline). No file on shared storage is touched in the
loop: commands are set up in the forked child (spawn.py).
"""
from __future__ import annotations

import contextlib
import fcntl
import math
import os
import select
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

from stackfleet.runtime import addresses, procfs
from stackfleet.runtime.base import DERIVED_FIELDS, UnitStatus
from stackfleet.runtime.fence import FenceWatch, now, read_fence
from stackfleet.runtime.files import read_json, write_json_atomic
from stackfleet.runtime.journal import Journal, LineSplitter
from stackfleet.runtime.layout import ShimConfig, UnitPaths
from stackfleet.runtime.policy import Exit, should_restart, start_limit_hit
from stackfleet.runtime.spawn import Launch, exec_child, parse_report
from stackfleet.runtime.waits import Alarm, FileWatch
from stackfleet.unit.values import ExecCommand

TICK = 0.05  # how often a wait that /proc alone can answer looks again (no cgroup)
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
        # Every command learns where to list the addresses it adds (addresses.py).
        config.base_environment[addresses.ENV] = str(paths.addresses)
        self.fence_path = Path(config.fence_file) if config.fence_file else None
        self.fence = FenceWatch()
        # The fence file is local (the agent's state dir): watching it cannot hang.
        self.fence_watch = FileWatch(self.fence_path) if self.fence_path else None
        self._fence_changed = False
        self.alarm = Alarm()
        self.group = config.cgroup
        self._events: int | None = None  # cgroup.events of the unit's group, polled for PRI
        self._frozen = False
        self.stop_requested = False
        self.journal = Journal(paths.journal, config.hostname, self.spec.name)
        self.pid = os.getpid()
        stat = procfs.read_stat(self.pid)
        self.status = UnitStatus(
            name=self.spec.name, shim_pid=self.pid,
            shim_start_time=stat.start_time if stat else None, shim_alive=True,
        )
        self.main: int | None = None
        self._children: set[int] = set()  # forked, not yet reaped
        self._exits: dict[int, int] = {}  # reaped child pid -> wait status
        self._pipes: dict[int, _Output] = {}  # by file descriptor
        self._reports: dict[int, tuple[int, bytearray]] = {}  # report fd -> (pid, bytes so far)
        self._reported: dict[int, bytes] = {}  # pid -> its report, once complete
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
        if not self._open_cgroup():
            self._finish("resources")
            return
        while not self._halted():
            started = now()
            if start_limit_hit(starts, started, self.spec.start_limit_interval_sec,
                               self.spec.start_limit_burst):
                self.log(f"{self.spec.name}: Start request repeated too quickly.")
                result = "start-limit-hit"
                self.log(f"{self.spec.name}: Failed with result '{result}'.")
                break
            starts.append(started)
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

    def _open_cgroup(self) -> bool:
        """Create the unit's cgroup with its limits; False if the unit cannot be contained."""
        if self.group is None:
            if self.spec.memory_max is not None or self.spec.cpu_quota is not None:
                self.log(f"{self.spec.name}: MemoryMax=/CPUQuota= not applied: this machine "
                         "has no usable cgroup v2.")
            return True
        try:
            self.group.create()
            self.group.thaw()  # left frozen by a kill that timed out, and emptied since
            problems = self.group.set_limits(self.spec.memory_max, self.spec.cpu_quota)
            self._events = os.open(self.group.path / "cgroup.events", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            self.log(f"{self.spec.name}: Failed to set up cgroup {self.group.path}: "
                     f"{exc.strerror}")
            return False
        for problem in problems:
            self.log(f"{self.spec.name}: Limit not applied: {problem}.")
        return True

    def _run_once(self) -> str:
        self.status.result = "success"
        self._set_state("activating", "start-pre")
        self.log(f"Starting {self.spec.name}...")
        deadline = now() + self.spec.timeout_start_sec
        for cmd in self.spec.exec_start_pre:
            result = self._run_control(cmd, deadline, interruptible=True)
            if result != "success":
                return self._stop_sequence(result, started=False)
        if self._halted():
            return self._stop_sequence(self._halt_result(), started=False)
        try:
            self.main = self._spawn(self.spec.exec_start, {}, deadline, self._halted)
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
            deadline = now() + self.spec.timeout_stop_sec
            for cmd in self.spec.exec_stop:
                stopped = self._run_control(cmd, deadline, interruptible=False, extra=main_env)
                if result == "success" and stopped != "success":
                    result = stopped
        if not self._terminate(None, "stop-sigterm") and result == "success":
            result = "timeout"
        self._release_addresses()
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
            deadline = now() + self.spec.timeout_stop_sec
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
            pid = self._spawn(cmd, extra or {}, deadline,
                              self._halted if interruptible else _never)
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

    def _spawn(self, cmd: ExecCommand, extra: dict[str, str], deadline: float = math.inf,
               interrupt: Callable[[], bool] | None = None) -> int:
        """Fork the command and wait, through the loop, until it has exec'd or failed: its
        set-up runs in the child (see spawn.py), so a hung mount cannot stall the shim."""
        if self.fence.must_kill(now()):
            self.log(f"Not executing {cmd.argv[0]}: the fence has expired.")
            raise _Failed("fenced")
        launch = Launch(
            cmd=cmd, base_environment=self.config.base_environment,
            environment=self.spec.environment, environment_files=self.spec.environment_files,
            extra=extra, working_directory=self.spec.working_directory, user=self.spec.user,
            group=self.spec.group, cgroup=self.group, hidden_dirs=self.spec.hidden_dirs,
            kept_files=self.spec.kept_files,
        )
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        report_r, report_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            exec_child(launch, out_w, report_w)
        os.close(out_w)
        os.close(report_w)
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)  # also here, so that killpg(pid) works from now on
        os.set_blocking(out_r, False)
        os.set_blocking(report_r, False)
        self._pipes[out_r] = _Output(pid, os.fdopen(out_r, "rb", buffering=0))
        self._reports[report_r] = (pid, bytearray())
        self._children.add(pid)
        self._wait_until(lambda: pid in self._reported or (interrupt or _never)(), deadline)
        report = parse_report(self._reported.pop(pid, b""))
        if report is None:
            return pid
        result, message = report
        self.log(f"{self.spec.name}: {message}")
        # It exits right after its report: collect it, so it is not taken for a main exit.
        self._wait_until(lambda: pid in self._exits, now() + KILL_WAIT)
        self._exits.pop(pid, None)
        raise _Failed(result)

    # --- waiting and killing ------------------------------------------------------------

    def _halted(self) -> bool:
        return self.stop_requested or self.fence.expired

    def _wait_pid(self, pid: int, deadline: float, interrupt: Callable[[], bool]) -> int | None:
        """The wait status of child pid, or None when interrupted or past the deadline."""
        self._wait_until(lambda: pid in self._exits or interrupt(), deadline)
        return self._exits.pop(pid, None)

    def _wait_until(self, condition: Callable[[], bool], deadline: float,
                    rescan: bool = False) -> bool:
        """Pump until condition() holds; False at the deadline. `rescan`: the condition
        depends on /proc, which wakes no one, so look again every TICK."""
        while not condition():
            if now() >= deadline:
                return False
            self._pump(deadline, rescan)
        return True

    def _sleep(self, seconds: float) -> None:
        self._wait_until(self._halted, now() + seconds)

    def _terminate(self, pgid: int | None, sub: str) -> bool:
        """SIGTERM the unit's processes (or one process group), SIGKILL them after
        TimeoutStopSec=. Returns False if it came to SIGKILL."""
        if self._gone(pgid):
            return True
        if pgid is None:
            self._set_state("deactivating", sub)
        self._signal_all(pgid, signal.SIGTERM)
        self._signal_all(pgid, signal.SIGCONT)
        deadline = now() + self.spec.timeout_stop_sec
        if self._wait_until(lambda: self._gone(pgid), deadline, self._rescans(pgid)):
            return True
        self.log(f"{self.spec.name}: State '{sub}' timed out. Killing.")
        if pgid is None:
            self._set_state("deactivating", "stop-sigkill")
        self._kill_until_gone(pgid)
        return False

    def _kill_until_gone(self, pgid: int | None) -> None:
        deadline = now() + KILL_WAIT
        self._kill(pgid)
        while not self._gone(pgid) and now() < deadline:
            self._pump(min(deadline, now() + TICK), self._rescans(pgid))
            self._kill(pgid)  # again: without a cgroup, a process may have forked meanwhile
        if pgid is None and not self._gone(None):
            return  # stuck in the kernel: left frozen, the runtime reports it orphaned
        self._thaw()

    def _kill(self, pgid: int | None) -> None:
        """SIGKILL the unit (or one process group of it) at once."""
        if pgid is None and self.group is not None:
            with contextlib.suppress(OSError):
                self.group.start_kill()
                self._frozen = True
        # Without a cgroup; and children that have not joined it yet.
        self._signal_all(pgid, signal.SIGKILL)

    def _thaw(self) -> None:
        if self._frozen and self.group is not None:
            with contextlib.suppress(OSError):
                self.group.thaw()
        self._frozen = False

    def _rescans(self, pgid: int | None) -> bool:
        """Whether waiting for (part of) the unit to end needs /proc scans: cgroup.events
        wakes the loop when the unit's cgroup empties, nothing does for a process group."""
        return pgid is not None or self.group is None

    def _gone(self, pgid: int | None) -> bool:
        if pgid is None and self.group is not None:
            return not self._children and not self.group.populated()
        return not self._unit_pids(pgid)

    def _unit_pids(self, pgid: int | None) -> list[int]:
        if pgid is None and self.group is not None:
            return sorted(set(self.group.pids()) | self._children)
        return [s.pid for s in procfs.unit_processes(self.pid, procfs.all_stats())
                if pgid is None or s.pgrp == pgid]

    def _signal_all(self, pgid: int | None, signum: int) -> bool:
        """Send signum to every live process of the unit (or of one group); False if none."""
        pids = self._unit_pids(pgid)
        for pid in pids:
            procfs.send_signal(pid, signum)
        return bool(pids)

    def _pump(self, until: float, rescan: bool = False) -> None:
        """Sleep until output, a child's exit, a signal, a change of the fence file or of
        the unit's cgroup, the next fence deadline or `until`; then act on what happened."""
        wake = until
        for deadline in (self.fence.stop_at, self.fence.kill_deadline):
            if deadline is not None:
                wake = min(wake, deadline)
        self.alarm.set(wake)
        poller = select.poll()
        for fd in (self._wakeup_r, self.alarm.fd, *self._pipes, *self._reports):
            poller.register(fd, select.POLLIN)
        if self.fence_watch is not None:
            poller.register(self.fence_watch.fd, select.POLLIN)
        if self._events is not None:
            poller.register(self._events, select.POLLPRI)
        for fd, _ in poller.poll(TICK * 1000 if rescan else None):
            if fd == self._wakeup_r:
                _drain(fd)
            elif fd == self.alarm.fd:
                self.alarm.clear()
            elif self.fence_watch is not None and fd == self.fence_watch.fd:
                self._fence_changed |= self.fence_watch.changed()
            elif fd == self._events:
                os.pread(fd, 4096, 0)  # re-arms the notification; the state is read anew
            elif fd in self._reports:
                self._read_report(fd)
            elif fd in self._pipes:
                self._read_pipe(fd)
        self._reap()
        self._check_fence()

    def _check_fence(self) -> None:
        """Read the fence when it changed, or when the last reading's stop_at has come (the
        agent renews it well before; if it did not, this reading finds it expired)."""
        if self.fence_path is None:
            return
        current = now()
        stop_at = self.fence.stop_at
        due = stop_at is None and not self.fence.expired or (
            stop_at is not None and current >= stop_at)
        if self._fence_changed or due:
            self._fence_changed = False
            was_expired = self.fence.expired
            self.fence.observe(read_fence(self.fence_path), current)
            if self.fence.expired and not was_expired:
                kill_in = max(0.0, (self.fence.kill_deadline or current) - current)
                self.log(f"{self.spec.name}: Fence expired: stopping, SIGKILL in {kill_in:.3f}s.")
        if self.fence.must_kill(current):
            if self.main is not None and self.main in self._children:
                # Unreaped, so its group id cannot have been reused: one cheap syscall for
                # the main group first, then the rest of the unit.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.main, signal.SIGKILL)
            self._kill(None)
            # Now, not once the processes are gone: the deadline is the lease's, and the
            # machine that takes the unit over will claim the same address.
            self._release_addresses()

    def _release_addresses(self) -> None:
        for claim in addresses.release(self.paths.addresses):
            self.log(f"{self.spec.name}: Released address {claim.interface} from {claim.device}.")

    def _reap(self) -> None:
        for pid, status in procfs.exited_children():
            if pid not in self._children:
                continue  # an orphan reparented to us as subreaper: reaped, nothing to record
            self._children.discard(pid)
            self._exits[pid] = status
            # Take what it wrote before its end, so its last lines precede our exit message.
            for fd, output in list(self._pipes.items()):
                if output.pid == pid:
                    self._read_pipe(fd)

    def _read_report(self, fd: int) -> None:
        pid, data = self._reports[fd]
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        if chunk:
            data += chunk
            return
        # End of file: the child exec'd (close-on-exec) or ended.
        del self._reports[fd]
        os.close(fd)
        self._reported[pid] = bytes(data)

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
        for derived in DERIVED_FIELDS:
            data.pop(derived)
        try:
            write_json_atomic(self.paths.status, data)
        except OSError as exc:  # e.g. a full disk: keep supervising, say so where we can
            self.log(f"{self.spec.name}: cannot write {self.paths.status}: {exc.strerror}")

    def close(self) -> None:
        """Leave nothing behind: kill what is left of the unit, reap it, drop its cgroup."""
        self._kill_until_gone(None)
        deadline = now() + KILL_WAIT
        while _has_children() and now() < deadline:
            self._pump(min(deadline, now() + TICK), rescan=True)
        self._reap()
        for fd in list(self._pipes):
            self._read_pipe(fd)
        for output in self._pipes.values():
            output.file.close()
        self._pipes.clear()
        if self.group is not None and not self.group.populated():
            with contextlib.suppress(OSError):
                self.group.remove()
        self.journal.close()


def _never() -> bool:
    return False


def _has_children() -> bool:
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


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
