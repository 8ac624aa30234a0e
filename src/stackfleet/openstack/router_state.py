"""Which network machine holds an HA router (L3_HA's router, or DVR's HA SNAT), as keepalived
itself says: the L3 agent writes keepalived's state ("primary" or "backup") to
STATE/network/neutron/ha_confs/ROUTER_ID/state on each machine that hosts the router. Neutron's
API reports the same with a delay, and it said "one active" during the split brain that these
files showed (issue 11)."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

PRIMARY = "primary"


def state_file(machine_state_dir: Path, router_id: str) -> Path:
    return machine_state_dir / "network" / "neutron" / "ha_confs" / router_id / "state"


def keepalived_states(machines: Mapping[str, Path], router_id: str) -> dict[str, str]:
    """Machine name -> keepalived's state of the router there ("none" where it has none)."""
    states = {}
    for name, state_dir in machines.items():
        path = state_file(state_dir, router_id)
        try:
            states[name] = path.read_text().strip() or "none"
        except FileNotFoundError:
            states[name] = "none"
    return states


def primaries(states: Mapping[str, str]) -> list[str]:
    return sorted(name for name, state in states.items() if state == PRIMARY)
