"""Control groups: what holds every process of a unit (or of a lab machine), and kills them.

A process cannot leave its cgroup by setsid or a double fork, so a group is the one reliable
answer to "what is left of this unit" (cgroup.events `populated`) and the one reliable kill
(cgroup.freeze, then cgroup.kill, then wait until unpopulated). That needs cgroup v2.

Limits (MemoryMax=, CPUQuota=) take the v2 controller where the host enables it, else the
cgroup v1 hierarchy of that controller: some hosts mount v2 with no memory or cpu controller
and keep those on v1. A v1 group mirrors the v2 group's path under the v1 hierarchy's root.
"""
from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
KILL_TIMEOUT = 5.0
V1_CONTROLLERS = ("memory", "cpu")
CPU_PERIOD_USEC = 100_000
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Hierarchies:
    """The cgroup file systems of this host, as far as this process may use them."""

    v2: Path | None
    v1: Mapping[str, Path] = field(default_factory=dict)  # controller -> v1 mount point
    missing: str | None = None  # why there is no v2 containment, for the warning

    @property
    def usable(self) -> bool:
        return self.v2 is not None


def parse_mountinfo(text: str) -> tuple[list[Path], dict[str, Path]]:
    """(cgroup2 mount points, {v1 controller: mount point}) from /proc/self/mountinfo."""
    v2: list[Path] = []
    v1: dict[str, Path] = {}
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fstype, _, options = (right.split() + ["", "", ""])[:3]
        mount_point = Path(left.split()[4].replace("\\040", " "))
        if fstype == "cgroup2":
            v2.append(mount_point)
        elif fstype == "cgroup":
            for option in options.split(","):
                if option in V1_CONTROLLERS:
                    v1.setdefault(option, mount_point)
    return v2, v1


def detect() -> Hierarchies:
    try:
        v2_mounts, v1 = parse_mountinfo(MOUNTINFO.read_text())
    except OSError as exc:
        return Hierarchies(None, missing=f"cannot read {MOUNTINFO}: {exc.strerror}")
    if not v2_mounts:
        return Hierarchies(None, v1, missing="no cgroup2 file system is mounted")
    root = v2_mounts[0]
    if not os.access(root, os.W_OK):
        return Hierarchies(None, v1, missing=f"{root} is not writable (not root?)")
    return Hierarchies(root, v1)


@dataclass(frozen=True)
class Group:
    """One group by its path relative to the hierarchies' roots, e.g. stackfleet/x/a.service."""

    hierarchies: Hierarchies
    relative: str

    @property
    def path(self) -> Path:
        assert self.hierarchies.v2 is not None
        return self.hierarchies.v2 / self.relative

    def v1_path(self, controller: str) -> Path | None:
        mount = self.hierarchies.v1.get(controller)
        return mount / self.relative if mount is not None else None

    def to_json(self) -> dict[str, object]:
        return {"v2": str(self.hierarchies.v2), "relative": self.relative,
                "v1": {c: str(p) for c, p in self.hierarchies.v1.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Group:
        v1 = data.get("v1") or {}
        assert isinstance(v1, dict)
        hierarchies = Hierarchies(Path(str(data["v2"])), {c: Path(p) for c, p in v1.items()})
        return cls(hierarchies, str(data["relative"]))

    def child(self, name: str) -> Group:
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"invalid cgroup name {name!r}")
        return Group(self.hierarchies, f"{self.relative}/{name}")

    # --- life ---------------------------------------------------------------------------

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def join(self, pid: int = 0) -> None:
        """Move pid (0: the caller) into the v2 group and any v1 groups already created."""
        write(self.path / "cgroup.procs", str(pid))
        for controller in V1_CONTROLLERS:
            v1 = self.v1_path(controller)
            if v1 is not None and v1.is_dir():
                write(v1 / "cgroup.procs", str(pid))

    def populated(self) -> bool:
        """True while any process is in the group or below it; a missing group is empty."""
        return read_keyed(self.path / "cgroup.events").get("populated", 0) == 1

    def pids(self) -> list[int]:
        """Every process in the group and its descendants."""
        found: list[int] = []
        for directory in _tree(self.path):
            try:
                found += [int(p) for p in (directory / "cgroup.procs").read_text().split()]
            except OSError:
                continue  # removed meanwhile
        return found

    def start_kill(self) -> None:
        """Freeze the group, so that nothing in it can fork or move away, and SIGKILL all of
        it; returns at once (populated() turns false when the kernel is done)."""
        write(self.path / "cgroup.freeze", "1")
        if (self.path / "cgroup.kill").exists():
            write(self.path / "cgroup.kill", "1")
            return
        for pid in self.pids():  # before Linux 5.14; frozen, the group cannot fork meanwhile
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def thaw(self) -> None:
        # A frozen empty group would freeze the next process put in it.
        write(self.path / "cgroup.freeze", "0")

    def kill(self, timeout: float = KILL_TIMEOUT) -> list[int]:
        """start_kill() and wait until the group is empty; returns the PIDs it held. Raises
        TimeoutError if it stays populated (a process stuck in the kernel, e.g. on a dead NFS
        server): the group is left frozen then."""
        if not self.path.is_dir():
            return []
        write(self.path / "cgroup.freeze", "1")
        pids = self.pids()
        self.start_kill()
        deadline = time.monotonic() + timeout
        while self.populated():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.path} still holds processes after cgroup.kill")
            time.sleep(0.002)
        self.thaw()
        return pids

    def remove(self) -> None:
        """Remove the group and its descendants in every hierarchy; each must be empty."""
        roots = [self.path] + [p for c in V1_CONTROLLERS if (p := self.v1_path(c)) is not None]
        for root in roots:
            for directory in reversed(list(_tree(root))):
                try:
                    directory.rmdir()
                except FileNotFoundError:
                    pass

    # --- limits and usage ---------------------------------------------------------------

    def set_limits(self, memory_max: int | None, cpu_quota: float | None) -> list[str]:
        """Apply MemoryMax= (bytes) and CPUQuota= (cores, 0.2 = 20 %) and create the v1
        groups they need. Returns what could not be applied, one line each."""
        problems: list[str] = []
        if memory_max is not None:
            problems += self._limit("memory", "memory.max", str(memory_max),
                                    {"memory.limit_in_bytes": str(memory_max)})
        if cpu_quota is not None:
            quota = max(1000, round(cpu_quota * CPU_PERIOD_USEC))
            problems += self._limit("cpu", "cpu.max", f"{quota} {CPU_PERIOD_USEC}",
                                    {"cpu.cfs_period_us": str(CPU_PERIOD_USEC),
                                     "cpu.cfs_quota_us": str(quota)})
        return problems

    def _limit(self, controller: str, v2_file: str, v2_value: str,
               v1_files: dict[str, str]) -> list[str]:
        if self._enable_v2(controller):
            write(self.path / v2_file, v2_value)
            return []
        v1 = self.v1_path(controller)
        if v1 is None:
            return [f"no {controller} controller, neither in cgroup v2 nor v1"]
        v1.mkdir(parents=True, exist_ok=True)
        for name, value in v1_files.items():
            write(v1 / name, value)
        return []

    def _enable_v2(self, controller: str) -> bool:
        """Enable controller for this group in every ancestor's subtree_control."""
        root = self.hierarchies.v2
        assert root is not None
        if controller not in (root / "cgroup.controllers").read_text().split():
            return False
        parent = root
        try:
            for part in Path(self.relative).parts:
                if controller not in (parent / "cgroup.subtree_control").read_text().split():
                    write(parent / "cgroup.subtree_control", f"+{controller}")
                parent = parent / part
        except OSError:
            return False  # e.g. an ancestor holds processes itself: v2 forbids it then
        return True

    def usage(self) -> Usage:
        """Memory in use now and CPU time used so far, by the group and its descendants.
        Memory comes from the memory controller where the group has one (v2, or the v1
        group that MemoryMax= creates), else it is the sum of its processes' resident sets."""
        cpu = read_keyed(self.path / "cpu.stat").get("usage_usec")
        memory = read_int(self.path / "memory.current")
        v1 = self.v1_path("memory")
        if memory is None and v1 is not None:
            memory = read_int(v1 / "memory.usage_in_bytes")
        if memory is None and self.path.is_dir():
            memory = sum(resident_bytes(pid) for pid in self.pids())
        return Usage(memory_bytes=memory, cpu_usec=cpu)


@dataclass(frozen=True)
class Usage:
    memory_bytes: int | None  # None: no memory accounting for this group
    cpu_usec: int | None


def write(path: Path, value: str) -> None:
    # One write(2) per value: cgroup files act on each write, and buffered I/O may split it.
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def read_keyed(path: Path) -> dict[str, int]:
    """A flat-keyed cgroup file ("key value" lines); {} when it is missing."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            values[key] = int(value)
    return values


def resident_bytes(pid: int) -> int:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * PAGE_SIZE


def read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _tree(root: Path) -> Iterator[Path]:
    """root and every directory below it, parents before children; nothing if it is gone."""
    if not root.is_dir():
        return
    for directory, _, _ in os.walk(root):
        yield Path(directory)
