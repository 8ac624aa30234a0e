"""The process runtime: each unit is supervised by its own shim process (see shim.py).

Shims outlive the agent. A new agent finds them through the unit directories and /proc, so
nothing here depends on being the shim's parent, except reap() for the shims it launched.

Where the host has a writable cgroup v2, each unit's processes live in the unit's cgroup,
BASE/<unit>, and leftovers of a dead shim are found and killed through it. BASE is
$STACKFLEET_CGROUP (a path inside the cgroup v2 hierarchy, e.g. the lab machine's
stackfleet-lab/<machine>/units), else stackfleet/<a tag of the runtime root>. Elsewhere the
runtime falls back to the shim's process tree and session, which a daemon can leave.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import zlib
from collections.abc import Mapping
from pathlib import Path

import stackfleet
from stackfleet.runtime import addresses, cgroup, procfs
from stackfleet.runtime.base import Runtime, UnitStatus
from stackfleet.runtime.cgroup import Group, Hierarchies, Usage
from stackfleet.runtime.files import read_json, write_json_atomic
from stackfleet.runtime.layout import ShimConfig, UnitPaths
from stackfleet.runtime.spec import ServiceSpec

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Like systemd, units get a small, predictable environment rather than the agent's.
PASSED_VARIABLES = ("PATH", "LANG", "LC_ALL", "HOME", "USER", "LOGNAME", "SHELL", "TZ")
_FREEZE_ROUNDS = 20
SOURCE_ROOT = str(Path(stackfleet.__file__).resolve().parent.parent)
CGROUP_ENV = "STACKFLEET_CGROUP"
log = logging.getLogger(__name__)


def default_cgroup_base(root_dir: Path) -> str:
    """stackfleet/<tag>: one subtree per runtime root, so two runtimes on one host (tests, or
    a lab's machines without $STACKFLEET_CGROUP) never share a unit's cgroup."""
    tag = f"{zlib.crc32(str(Path(root_dir).resolve()).encode()):08x}"
    return f"stackfleet/{tag}"


def default_base_environment() -> dict[str, str]:
    env = {key: os.environ[key] for key in PASSED_VARIABLES if key in os.environ}
    env.setdefault("PATH", DEFAULT_PATH)
    return env


class ProcessRuntime(Runtime):
    def __init__(self, root_dir: Path, *, hostname: str | None = None,
                 base_environment: Mapping[str, str] | None = None,
                 python: str = sys.executable, cgroup_base: str | None = None,
                 hierarchies: Hierarchies | None = None) -> None:
        self.root_dir = Path(root_dir)
        self.hostname = hostname or socket.gethostname()
        self.base_environment = dict(base_environment if base_environment is not None
                                     else default_base_environment())
        self.python = python
        self._shims: dict[str, subprocess.Popen[bytes]] = {}
        self._groups: dict[str, tuple[int, Group | None]] = {}  # by unit: (spec mtime, group)
        self.hierarchies = hierarchies if hierarchies is not None else cgroup.detect()
        base = cgroup_base or os.environ.get(CGROUP_ENV) or default_cgroup_base(self.root_dir)
        self.cgroup_base = Group(self.hierarchies, base.strip("/"))
        if not self.hierarchies.usable:
            log.warning(
                "no cgroup v2 for units (%s): a unit's processes are found by process tree "
                "and session only, so a daemon that leaves both can outlive stop, fencing "
                "and kill; MemoryMax= and CPUQuota= are not applied",
                self.hierarchies.missing)

    def contained(self) -> bool:
        return self.hierarchies.usable

    def start(self, spec: ServiceSpec, fence_file: Path | None = None) -> None:
        paths = self._paths(spec.name)
        self.reap()
        paths.dir.mkdir(parents=True, exist_ok=True)
        # A shim launched a moment ago may not hold its lock yet.
        if spec.name in self._shims or self._locked(paths):
            return  # its shim is alive; a changed spec needs stop() first
        if self.status(spec.name).orphaned:
            # A second copy must never overlap with leftovers of the first.
            raise RuntimeError(f"processes of {spec.name} outlived its shim: kill() it first")
        config = ShimConfig(
            service=spec, hostname=self.hostname,
            fence_file=str(fence_file) if fence_file is not None else None,
            base_environment=self.base_environment,
            cgroup=self.cgroup_base.child(spec.name) if self.contained() else None,
        )
        write_json_atomic(paths.spec, config.to_json())
        # The old status belongs to the previous shim; the new one writes its own at once.
        paths.status.unlink(missing_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [SOURCE_ROOT, env.get("PYTHONPATH")]))
        with open(paths.shim_log, "ab") as log:
            self._shims[spec.name] = subprocess.Popen(
                [self.python, "-m", "stackfleet.runtime.shim", str(paths.dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd="/",
                start_new_session=True,
            )

    def stop(self, name: str) -> None:
        shim = self._live_shim(name)
        if shim is not None:
            procfs.send_signal(shim, signal.SIGTERM)

    def kill(self, name: str) -> None:
        shim_pid, owned = self._shim_identity(name)
        if owned and shim_pid is not None:
            # A stopped shim can neither restart the unit nor lose track of its children.
            procfs.send_signal(shim_pid, signal.SIGSTOP)
        group = self._recorded_group(name)
        if group is not None:
            try:
                group.kill()
            except TimeoutError as exc:  # a process stuck in the kernel: still orphaned
                log.warning("%s: %s", name, exc)
        if shim_pid is not None:
            # Without a cgroup the tree and session are all there is; with one, this also
            # takes a child forked a moment ago that has not joined the cgroup yet.
            self._kill_members(shim_pid, owned)
        if owned and shim_pid is not None:
            procfs.send_signal(shim_pid, signal.SIGKILL)
        if group is not None and not group.populated():
            with contextlib.suppress(OSError):
                group.remove()
        self.release_addresses(name)

    def release_addresses(self, name: str) -> list[str]:
        released = addresses.release(self._paths(name).addresses)
        for claim in released:
            log.warning("%s: released address %s from %s", name, claim.interface, claim.device)
        return [claim.interface for claim in released]

    def _kill_members(self, shim_pid: int, owned: bool) -> None:
        frozen: set[int] = set()
        # Freeze until the set is closed: a stopped process cannot fork a new one.
        for _ in range(_FREEZE_ROUNDS):
            fresh = [p for p in self._members(shim_pid, owned) if p not in frozen]
            if not fresh:
                break
            for pid in fresh:
                procfs.send_signal(pid, signal.SIGSTOP)
            frozen.update(fresh)
        for pid in frozen:
            procfs.send_signal(pid, signal.SIGKILL)

    def status(self, name: str) -> UnitStatus:
        paths = self._paths(name)
        data = read_json(paths.status)
        popen = self._shims.get(name)
        launching = popen is not None and popen.poll() is None
        if not isinstance(data, dict):
            if launching or (paths.dir.is_dir() and self._locked(paths)):
                # Launched, but the shim has not written its first status yet.
                return UnitStatus(name=name, active="activating", sub="start-pre",
                                  shim_pid=popen.pid if popen else None, shim_alive=True)
            if paths.spec.exists():
                status = UnitStatus(name=name, active="failed", sub="dead", result="shim-died")
                group = self._recorded_group(name)
                status.orphaned = group is not None and group.populated()
                return status
            return UnitStatus(name=name)
        status = UnitStatus.from_json(data)
        status.shim_alive = (status.shim_pid is not None
                             and procfs.is_running(status.shim_pid, status.shim_start_time))
        if not status.shim_alive:
            group = self._recorded_group(name)
            if status.running:
                status.active, status.sub, status.result = "failed", "dead", "shim-died"
                status.main_pid = None
            shim_pid, owned = self._shim_identity(name)
            status.orphaned = (group is not None and group.populated()) or (
                shim_pid is not None and bool(self._members(shim_pid, owned)))
        return status

    def usage(self, name: str) -> Usage | None:
        group = self._recorded_group(name)
        return group.usage() if group is not None else None

    def units(self) -> list[str]:
        units_dir = self.root_dir / "units"
        if not units_dir.is_dir():
            return []
        return sorted(d.name for d in units_dir.iterdir() if (d / "spec.json").exists())

    def reap(self) -> None:
        for name, popen in list(self._shims.items()):
            if popen.poll() is not None:
                del self._shims[name]

    def remove(self, name: str) -> None:
        paths = self._paths(name)
        self.reap()
        if name in self._shims or (paths.dir.is_dir() and self._locked(paths)):
            raise RuntimeError(f"{name} is still running: stop it before removing it")
        if self.status(name).orphaned:
            raise RuntimeError(f"processes of {name} outlived its shim: kill() it first")
        group = self._recorded_group(name)
        if group is not None:
            with contextlib.suppress(OSError):
                group.remove()
        for path in (paths.spec, paths.status, paths.lock, paths.shim_log):
            path.unlink(missing_ok=True)

    def journal_path(self, name: str) -> Path:
        return self._paths(name).journal

    # --- helpers ------------------------------------------------------------------------

    def _paths(self, name: str) -> UnitPaths:
        if not name or "/" in name or "\0" in name or name in (".", ".."):
            raise ValueError(f"invalid unit name {name!r}")
        return UnitPaths(self.root_dir / "units" / name)

    def _recorded_group(self, name: str) -> Group | None:
        """The cgroup the unit was started in, from its launch file (an earlier agent may
        have used another base); cached while the file is unchanged."""
        path = self._paths(name).spec
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        cached = self._groups.get(name)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        data = read_json(path)
        raw = data.get("cgroup") if isinstance(data, dict) else None
        group = None
        if isinstance(raw, dict):
            with contextlib.suppress(KeyError, ValueError, AssertionError):
                group = Group.from_json(raw)
        self._groups[name] = (stamp, group)
        return group

    @staticmethod
    def _locked(paths: UnitPaths) -> bool:
        """True while a shim holds the unit's lock; immune to PID reuse."""
        try:
            fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def _shim_identity(self, name: str) -> tuple[int | None, bool]:
        """(shim pid, whether that pid still is our shim, alive or zombie). (pid, False) means
        the shim is gone and its pid is free; (None, False) that no process can be ours."""
        data = read_json(self._paths(name).status)
        popen = self._shims.get(name)
        if isinstance(data, dict) and data.get("shim_pid"):
            pid, start_time = int(data["shim_pid"]), data.get("shim_start_time")
        elif popen is not None:
            pid, start_time = popen.pid, None  # our unreaped child: its pid cannot be reused
        else:
            return None, False
        stat = procfs.read_stat(pid)
        if stat is None:
            return pid, False
        if start_time is None or stat.start_time == start_time:
            return pid, True
        # The pid now names another process, so no session of ours can still have that id.
        return None, False

    def _live_shim(self, name: str) -> int | None:
        pid, owned = self._shim_identity(name)
        stat = procfs.read_stat(pid) if owned and pid is not None else None
        return pid if stat is not None and stat.alive else None

    @staticmethod
    def _members(shim_pid: int, owned: bool) -> list[int]:
        stats = procfs.all_stats()
        if owned:
            return [s.pid for s in procfs.unit_processes(shim_pid, stats)]
        # Without the shim only its session identifies the unit's processes.
        return [s.pid for s in stats if s.session == shim_pid and s.alive]
