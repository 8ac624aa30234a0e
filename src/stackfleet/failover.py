"""Measuring a failover from the outside, as a user would see it: shared by the main job,
the lab tests and bench/failover.py."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from .registry.connection import EtcdUnavailable
from .registry.store import Registry

T = TypeVar("T")

POLL = 0.02


@dataclass(frozen=True)
class FailoverTiming:
    """Seconds from the fault (time.monotonic() at the halt) to each step."""

    detected: float  # the dead machine's presence expired
    placed: float  # the engine scheduled the unit elsewhere
    running: float  # the new machine reports the unit active
    machine: str  # where it runs now


async def where_active(registry: Registry, unit: str) -> list[str]:
    return sorted(s.machine for s in await registry.states() if s.name == unit and s.active == "active")


async def patiently(probe: Callable[[], Awaitable[T]], fallback: T) -> T:
    """A probe inside a wait loop: while the fault being measured also costs etcd a member
    (a halted or cut-off controller runs one), a failed read means "not yet", not an error."""
    try:
        return await probe()
    except EtcdUnavailable:
        return fallback


async def wait_active(registry: Registry, unit: str, timeout: float) -> str:
    """The machine id where the unit is active, waiting up to timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        machines: list[str] = await patiently(lambda: where_active(registry, unit), [])
        if machines:
            return machines[0]
        await asyncio.sleep(POLL * 5)
    raise TimeoutError(f"{unit} is not active anywhere after {timeout:.0f} s")


async def measure_failover(registry: Registry, unit: str, old_machine: str, fault_at: float,
                           timeout: float = 120.0) -> FailoverTiming:
    detected = placed = 0.0
    deadline = fault_at + timeout
    while time.monotonic() < deadline:
        now = time.monotonic() - fault_at
        # a failed read keeps the old machine present and nothing placed: "not yet"
        if not detected:
            present: Mapping[str, object] = await patiently(registry.machines, {old_machine: None})
            if old_machine not in present:
                detected = now
        if not placed:
            schedule: Mapping[str, Mapping[str, object]] = await patiently(registry.schedule, {})
            entries = schedule.get(unit, {})
            if any(m != old_machine for m in entries):
                placed = now
        if placed:
            where: list[str] = await patiently(lambda: where_active(registry, unit), [])
            active = [m for m in where if m != old_machine]
            if active:
                return FailoverTiming(detected or now, placed, now, active[0])
        await asyncio.sleep(POLL)
    raise TimeoutError(f"{unit} did not come back on another machine within {timeout:.0f} s")
