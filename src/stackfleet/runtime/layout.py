"""The files of one unit under the runtime root, and the launch file the shim reads."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from stackfleet.runtime.cgroup import Group
from stackfleet.runtime.spec import ServiceSpec


@dataclass(frozen=True)
class UnitPaths:
    dir: Path

    @property
    def spec(self) -> Path:
        return self.dir / "spec.json"

    @property
    def status(self) -> Path:
        return self.dir / "status.json"

    @property
    def journal(self) -> Path:
        return self.dir / "journal.log"

    @property
    def lock(self) -> Path:
        """Held (flock) by the unit's shim for its whole life: one shim per unit at most."""
        return self.dir / "lock"

    @property
    def addresses(self) -> Path:
        """The addresses the unit claimed (runtime/addresses.py), released when it ends."""
        return self.dir / "addresses"

    @property
    def shim_log(self) -> Path:
        """The shim's own stderr: tracebacks if it ever crashes."""
        return self.dir / "shim.log"


@dataclass
class ShimConfig:
    """Everything the shim needs, written to spec.json by the runtime before launching it."""

    service: ServiceSpec
    hostname: str
    fence_file: str | None = None
    # The environment every command starts from, before Environment= and EnvironmentFile=.
    base_environment: dict[str, str] = field(default_factory=dict)
    # The unit's own cgroup, None where the host has no usable cgroup v2.
    cgroup: Group | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "service": self.service.to_json(),
            "hostname": self.hostname,
            "fence_file": self.fence_file,
            "base_environment": dict(self.base_environment),
            "cgroup": self.cgroup.to_json() if self.cgroup is not None else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ShimConfig:
        fence = data.get("fence_file")
        group = data.get("cgroup")
        return cls(
            service=ServiceSpec.from_json(data["service"]),  # type: ignore[arg-type]
            hostname=str(data["hostname"]),
            fence_file=str(fence) if fence is not None else None,
            base_environment=dict(data.get("base_environment") or {}),  # type: ignore[call-overload]
            cgroup=Group.from_json(group) if isinstance(group, dict) else None,
        )
