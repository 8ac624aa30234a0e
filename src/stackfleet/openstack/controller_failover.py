"""One controller failover, measured as a user sees it: shared by the main job, the lab's
end-to-end tests and bench/failover.py --openstack."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..failover import FailoverTiming, measure_failover
from ..registry.store import Registry
from .admin import wait_apis, wait_controller_ready
from .compute_failover import nova
from .link import ClusterLink

UNIT = "controller.service"
SERVICES_SETTLE = 120.0  # Nova's service_down_time is 60 s; agents report every 10 s


@dataclass(frozen=True)
class ControllerFailover:
    victim: str  # the machine that was faulted
    machine: str  # where the controller runs now
    address: str
    timing: FailoverTiming  # detection, placement, role started
    answered: dict[str, float]  # API -> seconds after the fault until it answered
    ready: float  # seconds until the controller reported every service ready
    fault_at: float  # time.monotonic() of the fault

    def rows(self) -> list[tuple[str, float]]:
        rows = [("detected (lease expired)", self.timing.detected), ("placed on another machine", self.timing.placed),
                ("role started", self.timing.running)]
        rows += [(f"{api} answers", seconds) for api, seconds in sorted(self.answered.items(), key=lambda kv: kv[1])]
        return rows + [("every service ready", self.ready)]


async def fail_over_controller(registry: Registry, link: ClusterLink, fault: Callable[[str], object],
                               timeout: float = 600.0) -> ControllerFailover:
    """Apply fault(machine name) to the controller's machine and wait until the cloud is back."""
    record = await link.controller()
    address = str(record["address"])
    old_id = next(iter((await registry.schedule())[UNIT]))
    machines = await registry.machines()
    victim = machines[old_id].name
    fault_at = time.monotonic()
    fault(victim)
    timing = await measure_failover(registry, UNIT, old_id, fault_at, timeout=timeout)
    new = (await registry.machines())[timing.machine]
    # The same address as before the fault: the VIP moved with the role.
    answered = await wait_apis(address, fault_at, timeout)
    now_at = await wait_controller_ready(link, timeout, not_on=victim)
    return ControllerFailover(victim, new.name, now_at, timing, answered, time.monotonic() - fault_at, fault_at)


def still_down(record: Path, env: dict[str, str], timeout: float = SERVICES_SETTLE) -> list[str]:
    """Waits until no Nova service is down and every Neutron agent is alive; what is still down
    after `timeout` (a ghost of a machine the controller left would stay for ever)."""
    deadline = time.monotonic() + timeout
    while True:
        down: list[str] = nova("down-services", record, env)
        if not down or time.monotonic() > deadline:
            return down
        time.sleep(5)


def shared_record(shared: Path) -> Path:
    """Where the sample workflow's record of what it created is kept."""
    return shared / "openstack-seed.json"
