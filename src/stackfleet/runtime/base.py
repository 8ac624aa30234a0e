"""The interface every runtime (process, podman, systemd) offers the agent.

All methods are synchronous and return at once: the agent runs an asyncio loop and polls.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from stackfleet.runtime.cgroup import Usage
from stackfleet.runtime.spec import ServiceSpec

# systemd's ActiveState and SubState values that runtimes report.
ACTIVE_STATES = ("active", "activating", "deactivating", "inactive", "failed")
SUB_STATES = ("running", "start-pre", "start", "start-post", "auto-restart", "stop",
              "stop-sigterm", "stop-sigkill", "stop-post", "exited", "dead", "failed")
# UnitStatus fields that the runtime fills in when asked, never stored in status.json.
DERIVED_FIELDS = ("shim_alive", "orphaned")


@dataclass
class UnitStatus:
    name: str
    active: str = "inactive"
    sub: str = "dead"
    # systemd's Result=: success, exit-code, signal, core-dump, timeout, start-limit-hit,
    # resources, plus 'fenced' (stopped because the machine lost its lease) and 'shim-died'.
    result: str = "success"
    main_pid: int | None = None
    since: str | None = None  # wall-clock ISO time of the last state change
    restarts: int = 0
    fenced: bool = False
    exit_code: str | None = None  # the main process's last end: exited, killed or dumped
    exit_status: int | None = None
    shim_pid: int | None = None
    shim_start_time: int | None = None
    # Filled in by the runtime, not stored: is the supervisor alive, and are processes of the
    # unit left running without one (then kill() them).
    shim_alive: bool = False
    orphaned: bool = False

    @property
    def running(self) -> bool:
        return self.active in ("active", "activating", "deactivating")

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> UnitStatus:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})  # type: ignore[arg-type]


class Runtime(ABC):
    @abstractmethod
    def start(self, spec: ServiceSpec, fence_file: Path | None = None) -> None:
        """Start the unit; nothing happens if it is already running. With a fence file the
        unit is stopped when the fence expires (see stackfleet.runtime.fence). Raises
        RuntimeError while processes of an earlier run are left over (status().orphaned)."""

    @abstractmethod
    def stop(self, name: str) -> None:
        """Begin a graceful stop (ExecStop=, SIGTERM, SIGKILL after TimeoutStopSec=)."""

    @abstractmethod
    def kill(self, name: str) -> None:
        """SIGKILL every process of the unit now, its supervisor included."""

    @abstractmethod
    def status(self, name: str) -> UnitStatus:
        """The unit's state; an unknown unit is inactive/dead."""

    @abstractmethod
    def units(self) -> list[str]:
        """Every unit this runtime holds state for, also those started by an earlier agent."""

    @abstractmethod
    def reap(self) -> None:
        """Collect exited supervisors that this object started, so no zombies stay."""

    @abstractmethod
    def remove(self, name: str) -> None:
        """Forget an inactive unit; its journal is kept."""

    @abstractmethod
    def journal_path(self, name: str) -> Path:
        """The file holding the unit's output lines."""

    def release_addresses(self, name: str) -> list[str]:
        """Delete the addresses the unit added to this machine's interfaces (addresses.py), for
        a unit that ended without its supervisor; those deleted. None where the runtime keeps
        none."""
        return []

    def usage(self, name: str) -> Usage | None:
        """The unit's memory in use and CPU time used, from its cgroup (processes that left
        the unit's session included); None where the runtime cannot tell."""
        return None

    def contained(self) -> bool:
        """True if every process of a unit is held by the unit's cgroup (so none can outlive
        stop, fence or kill); False where the runtime falls back to the process tree."""
        return False
