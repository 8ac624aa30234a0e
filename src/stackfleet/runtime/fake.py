"""A runtime that runs nothing, for fast tests of the agent: units change state at once.

Tests steer it: `orphan()` leaves processes behind a dead shim, `hold_stops` keeps stopping
units in `deactivating` until `finish_stop()`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from stackfleet.runtime.base import Runtime, UnitStatus
from stackfleet.runtime.spec import ServiceSpec


class FakeRuntime(Runtime):
    def __init__(self, journal_dir: Path) -> None:
        self.journal_dir = journal_dir
        self.statuses: dict[str, UnitStatus] = {}
        self.started: list[tuple[str, Path | None]] = []  # (unit, fence file) per start
        self.calls: list[tuple[str, str]] = []  # (method, unit) of every stop, kill and remove
        self.hold_stops = False
        self._pids = iter(range(1000, 1_000_000))

    def start(self, spec: ServiceSpec, fence_file: Path | None = None) -> None:
        current = self.status(spec.name)
        if current.orphaned:
            raise RuntimeError(f"{spec.name}: processes of an earlier run are left over")
        if current.running:
            return
        self.started.append((spec.name, fence_file))
        self.statuses[spec.name] = UnitStatus(spec.name, "active", "running", main_pid=next(self._pids))

    def stop(self, name: str) -> None:
        self.calls.append(("stop", name))
        if not self.status(name).running:
            return
        if self.hold_stops:
            self._set(name, "deactivating", "stop-sigterm")
        else:
            self._set(name, "inactive", "dead")

    def finish_stop(self, name: str) -> None:
        self._set(name, "inactive", "dead")

    def kill(self, name: str) -> None:
        self.calls.append(("kill", name))
        if name in self.statuses:
            self.statuses[name] = dataclasses.replace(self.statuses[name], active="failed", sub="failed",
                                                      result="signal", main_pid=None, orphaned=False)

    def orphan(self, name: str) -> None:
        self.statuses[name] = dataclasses.replace(self.status(name), shim_alive=False, orphaned=True)

    def status(self, name: str) -> UnitStatus:
        return dataclasses.replace(self.statuses.get(name) or UnitStatus(name))

    def units(self) -> list[str]:
        return sorted(self.statuses)

    def reap(self) -> None:
        pass

    def remove(self, name: str) -> None:
        self.calls.append(("remove", name))
        self.statuses.pop(name, None)

    def journal_path(self, name: str) -> Path:
        return self.journal_dir / f"{name}.log"

    def _set(self, name: str, active: str, sub: str) -> None:
        old = self.statuses[name]
        self.statuses[name] = dataclasses.replace(old, active=active, sub=sub,
                                                  main_pid=None if active == "inactive" else old.main_pid)
